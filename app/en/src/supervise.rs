//! The EN's supervisor: restarts components that stopped running, by their restart policy
//! (`always` by default, `on-failure`, `never`; from `x-eos-extensions.restart`), with
//! exponential backoff, whether the LO is reachable or not, and tells the LO what it saw: the
//! crash with its reason, then the component running again.

use crate::link::Agent;
use crate::record::RunEntry;
use eos_domain::state::RestartPolicy;
use eos_driver::{Health, InstanceKey};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The wait before the first restart of a crashed component; it doubles with every restart.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait between restarts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A component that has run this long since its last restart counts as healthy again: its next
/// crash waits `BACKOFF_START` once more.
pub const STABLE_AFTER: Duration = Duration::from_secs(120);

/// The wait before restart number `restarts + 1`.
pub fn backoff(restarts: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1 << restarts.min(16))
        .min(BACKOFF_MAX)
}

/// What the supervisor knows of one component.
#[derive(Debug, Default)]
pub struct Watch {
    restarts: u32,
    last_restart: Option<Instant>,
    /// Set while the component is down: why, and when the next restart is due (`None`: never,
    /// by its restart policy).
    down: Option<(String, Option<Instant>)>,
    /// Crashes no LO heard of (no session was open), and the reason of the last; the next
    /// hello carries them.
    pub unreported: u32,
    pub last_crash: String,
}

impl Watch {
    /// Why the component is down, while it is.
    pub fn down_reason(&self) -> Option<&str> {
        self.down.as_ref().map(|(why, _)| why.as_str())
    }
}

/// What one look at a component calls for.
enum Step {
    Nothing,
    /// Newly down: tell the LO, restart later.
    Down(String),
    Restart(u32),
}

fn describe(health: &Health) -> Option<String> {
    match health {
        Health::Running => None,
        Health::Exited { code } => Some(format!("exited with status {code}")),
        Health::Failed { reason } => Some(reason.clone()),
        Health::Unknown => Some("not running (its driver does not know it)".into()),
    }
}

impl Agent {
    /// Looks at every component once, restarting those that are down and due.
    pub async fn supervise_once(&self) {
        let entries = self.records.entries();
        let keys: HashSet<InstanceKey> = entries.iter().map(key_of).collect();
        self.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keys.contains(k));
        for entry in entries {
            self.supervise(entry).await;
        }
    }

    async fn supervise(&self, entry: RunEntry) {
        let key = key_of(&entry);
        let Some(driver) = self.driver(&entry.spec.runtime) else {
            return;
        };
        let lock = self.component_lock(&key);
        // An operation from the LO is under way on this component: it decides, not us.
        let Ok(_guard) = lock.try_lock() else {
            return;
        };
        // Removed or replaced while we waited for the lock?
        let Some(entry) = self
            .records
            .get(&key.deployment_id, &key.component)
            .filter(|e| e.spec == entry.spec)
        else {
            return;
        };
        let health = driver.inspect(&key).await;
        let policy = entry.spec.restart_policy();
        let finished =
            matches!(health, Health::Exited { code: 0 }) && policy != RestartPolicy::Always;
        let now = Instant::now();
        let step = {
            let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
            let watch = watches.entry(key.clone()).or_default();
            match (describe(&health), &watch.down) {
                _ if finished => Step::Nothing,
                (None, _) => {
                    if watch
                        .last_restart
                        .is_some_and(|t| now.duration_since(t) >= STABLE_AFTER)
                    {
                        watch.restarts = 0;
                        watch.last_restart = None;
                    }
                    Step::Nothing
                }
                (Some(why), None) if policy == RestartPolicy::Never => {
                    let reason = format!("{why}; not restarted (restart: never)");
                    watch.down = Some((reason.clone(), None));
                    Step::Down(reason)
                }
                (Some(why), None) => {
                    let delay = backoff(watch.restarts);
                    let reason = format!("{why}; restarting in {}", seconds(delay));
                    watch.down = Some((reason.clone(), Some(now + delay)));
                    Step::Down(reason)
                }
                (Some(_), Some((_, Some(due)))) if *due <= now => Step::Restart(watch.restarts + 1),
                (Some(_), Some(_)) => Step::Nothing,
            }
        };
        match step {
            Step::Nothing => {}
            Step::Down(reason) => {
                tracing::warn!(instance = %key, %reason, "component down");
                if !self.observe(&key, "failed", reason.clone(), 0) {
                    let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
                    let watch = watches.entry(key.clone()).or_default();
                    watch.unreported += 1;
                    watch.last_crash = reason;
                }
            }
            Step::Restart(restarts) => {
                let outcome = match self.runnable(&entry.spec).await {
                    Ok(runnable) => driver.apply(&key, &runnable).await,
                    Err(e) => Err(e),
                };
                let now = Instant::now();
                let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
                let watch = watches.entry(key.clone()).or_default();
                watch.restarts = restarts;
                watch.last_restart = Some(now);
                match outcome {
                    Ok(handle) => {
                        watch.down = None;
                        drop(watches);
                        let _ = self.records.put(RunEntry { handle, ..entry });
                        tracing::info!(instance = %key, restarts, "component restarted");
                        self.observe(&key, "installed", String::new(), restarts);
                    }
                    Err(e) => {
                        let delay = backoff(restarts);
                        let reason = format!("cannot restart: {e}; next try in {}", seconds(delay));
                        watch.down = Some((reason.clone(), Some(now + delay)));
                        drop(watches);
                        tracing::warn!(instance = %key, %reason, restarts, "component restart failed");
                        self.observe(&key, "failed", reason, restarts);
                    }
                }
            }
        }
    }
}

fn key_of(entry: &RunEntry) -> InstanceKey {
    InstanceKey {
        deployment_id: entry.deployment_id.clone(),
        component: entry.spec.name.clone(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs().max(1))
}

/// Supervises until `stop`, one look at every component each `every`.
pub async fn run(agent: Arc<Agent>, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => agent.supervise_once().await,
            _ = eos_app_common::stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunRecord;
    use eos_adapter_grpc::pb::{self, en_message};
    use eos_domain::ids::DeviceId;
    use eos_domain::state::ComponentSpec;
    use eos_driver::mock::MockDriver;
    use tokio::sync::mpsc;

    fn observed(message: pb::EnMessage) -> pb::ComponentObserved {
        match message.body {
            Some(en_message::Body::Observed(o)) => o,
            other => panic!("expected an observation, got {other:?}"),
        }
    }

    /// An agent over one mock driver, keeping its records under `dir`, with its upstream
    /// messages coming out of the returned receiver.
    fn mock_agent(
        dir: &std::path::Path,
    ) -> (Agent, Arc<MockDriver>, mpsc::Receiver<pb::EnMessage>) {
        let mock = Arc::new(MockDriver::new());
        let device = DeviceId::parse("s/n1").unwrap();
        let drivers: Vec<Arc<dyn eos_driver::RuntimeDriver>> = vec![mock.clone()];
        let caps = crate::capabilities::detect(&device, &[]);
        let agent = Agent::new(
            device,
            caps,
            drivers,
            RunRecord::open(dir.to_owned()).unwrap(),
            eos_adapter_registry::ArtifactCache::new(
                dir.join("artifacts"),
                Default::default(),
                Vec::new(),
            ),
        );
        let (tx, rx) = mpsc::channel(16);
        *agent.upstream.lock().unwrap() = Some(tx);
        (agent, mock, rx)
    }

    #[tokio::test]
    async fn a_crashed_component_is_reported_then_restarted_after_its_backoff() {
        let tmp = tempfile::tempdir().unwrap();
        let (agent, mock, mut rx) = mock_agent(tmp.path());
        let spec = ComponentSpec {
            name: "c".into(),
            runtime: "mock".into(),
            repository: "mock://exits/3".into(),
            revision: "1".into(),
            app_version: "1".into(),
            parameters: Default::default(),
            settings: Default::default(),
            signatures: None,
            workload: None,
        };
        agent.apply("d1", &spec).await.unwrap();
        let applies = || {
            mock.calls()
                .iter()
                .filter(|c| c.starts_with("apply"))
                .count()
        };

        agent.supervise_once().await;
        let crash = observed(rx.try_recv().expect("the crash is reported"));
        assert_eq!(crash.state, "failed");
        assert_eq!(crash.error, "exited with status 3; restarting in 1 s");
        assert_eq!(
            (crash.deployment_id.as_str(), crash.component.as_str()),
            ("d1", "c")
        );

        // Not due yet: nothing happens, nothing more is said.
        agent.supervise_once().await;
        assert!(rx.try_recv().is_err());
        assert_eq!(applies(), 1);

        tokio::time::sleep(BACKOFF_START + Duration::from_millis(100)).await;
        agent.supervise_once().await;
        let back = observed(rx.try_recv().expect("the restart is reported"));
        assert_eq!((back.state.as_str(), back.restarts), ("installed", 1));
        assert_eq!(applies(), 2);

        // It exits again: the next wait is twice as long, and the hello says it is down.
        agent.supervise_once().await;
        let again = observed(rx.try_recv().unwrap());
        assert_eq!(again.error, "exited with status 3; restarting in 2 s");
        let Some(en_message::Body::Hello(hello)) = agent.hello().body else {
            panic!("not a hello");
        };
        assert_eq!(hello.running[0].state, "failed");
        assert_eq!(hello.running[0].error, again.error);
    }

    #[tokio::test]
    async fn restart_policies_decide_what_happens_after_a_component_stops() {
        let tmp = tempfile::tempdir().unwrap();
        let (agent, mock, mut rx) = mock_agent(tmp.path());
        let component = |name: &str, exits: i32, restart: &str| ComponentSpec {
            name: name.into(),
            runtime: "mock".into(),
            repository: format!("mock://exits/{exits}"),
            revision: "1".into(),
            app_version: "1".into(),
            parameters: Default::default(),
            settings: serde_json::json!({ "restart": restart }),
            signatures: None,
            workload: None,
        };
        // A job that finished (status 0) under on-failure: nothing to report, nothing to restart.
        agent
            .apply("d", &component("job", 0, "on-failure"))
            .await
            .unwrap();
        // A crash under never: reported once, never restarted.
        agent
            .apply("d", &component("once", 3, "never"))
            .await
            .unwrap();
        agent.supervise_once().await;
        let seen = observed(rx.try_recv().expect("the crash under never"));
        assert_eq!(seen.component, "once");
        assert_eq!(
            seen.error,
            "exited with status 3; not restarted (restart: never)"
        );
        assert!(rx.try_recv().is_err(), "the finished job says nothing");
        tokio::time::sleep(BACKOFF_START + Duration::from_millis(100)).await;
        agent.supervise_once().await;
        assert!(rx.try_recv().is_err());
        let applies = mock
            .calls()
            .iter()
            .filter(|c| c.starts_with("apply"))
            .count();
        assert_eq!(applies, 2, "neither was started again");
        // The default policy restarts even a clean exit.
        let spec = ComponentSpec {
            settings: Default::default(),
            ..component("service", 0, "always")
        };
        assert_eq!(spec.restart_policy(), RestartPolicy::Always);
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute() {
        let waits: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
