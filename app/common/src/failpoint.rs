//! Failpoints: named places where a test makes a daemon die on the spot, as `kill -9` would, to
//! prove that what was half done there is made good after a restart. `EOS_FAILPOINT=<name>`
//! aborts the process the first time it passes that point, `<name>@<n>` the n-th time. Unset
//! (always, outside tests), a failpoint costs a check of a value read once.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a failpoint.
pub const FAILPOINT_VAR: &str = "EOS_FAILPOINT";

/// Every failpoint EOS has, where it sits, and what a crash there leaves half done.
pub const FAILPOINTS: &[(&str, &str)] = &[
    (
        "co.deploy.before_commit",
        "CO: a deployment and its site's manifestVersion are stored, the Git commit is not made",
    ),
    (
        "co.reports.before_commit",
        "CO: a batch of LO reports is applied in a transaction that is not committed",
    ),
    (
        "co.reports.before_ack",
        "CO: a batch of LO reports is committed, the acknowledgement is not sent",
    ),
    (
        "lo.desired.before_store",
        "LO: a new desired state is fetched and valid, not yet stored",
    ),
    (
        "lo.uplink.before_ack",
        "LO: the CO acknowledged reports, the LO has not released them from its outbox",
    ),
    (
        "en.apply.before_record",
        "EN: a component is started, not yet in the EN's run record",
    ),
];

fn armed() -> &'static Option<(String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let spec = std::env::var(FAILPOINT_VAR).ok()?;
        let (name, nth) = match spec.split_once('@') {
            Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        Some((name, nth))
    })
}

/// Aborts the process here when the failpoint `name` is armed and due.
pub fn failpoint(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((armed, nth)) = armed() else {
        return;
    };
    if armed == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn failpoint_names_are_unique_and_dotted() {
        let names: std::collections::BTreeSet<&str> =
            super::FAILPOINTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), super::FAILPOINTS.len());
        assert!(names.iter().all(|n| n.split('.').count() == 3), "{names:?}");
    }
}
