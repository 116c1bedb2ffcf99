//! Wall-clock time for the daemons, replaceable in tests. Only *timestamps* come from a
//! [`Clock`]: when something was observed, last contact, history. Liveness and retries run on
//! tokio's monotonic timers, so a step of the wall clock (NTP, a suspended machine, or a
//! [`SimClock`] jumping a day ahead) never marks a live node offline or fires a retry early.

use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::{Arc, Mutex};

/// Where a daemon reads the wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Now as RFC 3339 UTC with milliseconds, the form EOS stores and sends.
    fn now_rfc3339(&self) -> String {
        rfc3339(self.now())
    }
}

/// The form every EOS timestamp takes: RFC 3339, UTC, milliseconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The machine's clock by default.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that runs with real time from an offset the test moves forward: `advance(24h)` and
/// everything stamped afterwards is a day later, so a day-long outage takes seconds. Shared by
/// every tier of an in-process fleet, it keeps their timestamps consistent with each other.
#[derive(Debug, Default)]
pub struct SimClock {
    offset: Mutex<chrono::Duration>,
}

impl SimClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves the clock `by` forward (negative durations are refused: time never runs back).
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).expect("a duration chrono can hold");
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    /// How far ahead of the machine's clock this one is.
    pub fn offset(&self) -> std::time::Duration {
        self.offset
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .to_std()
            .unwrap_or_default()
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_sim_clock_moves_forward_by_what_it_is_advanced() {
        let clock = SimClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(24 * 3600));
        let after = clock.now();
        let elapsed = (after - before).to_std().unwrap();
        assert!(elapsed >= Duration::from_secs(24 * 3600), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(24 * 3600 + 60), "{elapsed:?}");
        assert_eq!(clock.offset(), Duration::from_secs(24 * 3600));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.5+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(t), "2026-11-24T08:00:00.500Z");
    }
}
