//! The conformance suite every runtime driver passes, built-in or plugin: the MUSTs of
//! `plugins/driver/CONTRACT.md` as executable checks. A driver's own tests call [`run`] with a
//! way to make the driver over a folder, and two specs: one that runs and one that cannot start.

use crate::{DriverError, Health, InstanceKey, RuntimeDriver};
use eos_domain::state::ComponentSpec;
use std::path::Path;
use std::sync::Arc;

/// What the suite needs from a driver's test.
pub struct Fixture<'a> {
    /// Makes the driver keeping its state under the folder; called again on the same folder to
    /// stand for the EN restarting.
    pub make: &'a (dyn Fn(&Path) -> Arc<dyn RuntimeDriver> + Sync),
    /// A component that starts and keeps running.
    pub runs: ComponentSpec,
    /// A component that cannot start (a bad artifact, a trap at start, ...).
    pub cannot_start: ComponentSpec,
}

fn key(deployment: &str, spec: &ComponentSpec) -> InstanceKey {
    InstanceKey {
        deployment_id: deployment.into(),
        component: spec.name.clone(),
    }
}

/// `spec` with a new app version and one more parameter: what an update of the deployment
/// brings the EN for the same key.
fn changed(spec: &ComponentSpec) -> ComponentSpec {
    let mut changed = spec.clone();
    changed.app_version = format!("{}-changed", spec.app_version);
    changed
        .parameters
        .insert("EOS_CONFORMANCE".into(), "changed".into());
    changed
}

/// Runs every check; panics with the rule a driver broke.
pub async fn run(fixture: Fixture<'_>) {
    let root = tempfile::tempdir().expect("a temporary folder");
    let driver = (fixture.make)(root.path());
    let info = driver.info();
    assert!(!info.runtime.is_empty(), "info: MUST name its runtime");
    assert!(
        !info.deployment_types.is_empty(),
        "info: MUST list the Margo deployment types it serves"
    );
    // The suite runs where the driver's runtime answers, so its fingerprint MUST say so.
    match driver.fingerprint().await {
        crate::Fingerprint::Ready { version } => assert!(
            !version.is_empty(),
            "fingerprint: MUST name the version of a runtime that answers"
        ),
        crate::Fingerprint::Unavailable { reason } => {
            panic!("fingerprint: MUST be Ready where the runtime answers, said: {reason}")
        }
    }

    // apply MUST start the component and MUST be idempotent.
    let a = key("conformance-a", &fixture.runs);
    let first = driver.apply(&a, &fixture.runs).await;
    let handle = first.unwrap_or_else(|e| panic!("apply: MUST start a valid component: {e}"));
    assert_eq!(
        driver.inspect(&a).await,
        Health::Running,
        "inspect: MUST say Running after a successful apply"
    );
    let again = driver
        .apply(&a, &fixture.runs)
        .await
        .unwrap_or_else(|e| panic!("apply: MUST accept the same spec twice: {e}"));
    assert_eq!(
        again, handle,
        "apply: the same spec twice MUST change nothing (same handle)"
    );
    assert_eq!(driver.inspect(&a).await, Health::Running);

    // A different spec for the same key MUST replace the running component: the new one runs
    // and is itself applied idempotently; going back to the first spec replaces it again.
    let changed = changed(&fixture.runs);
    let replaced = driver
        .apply(&a, &changed)
        .await
        .unwrap_or_else(|e| panic!("apply: MUST replace the component when its spec changes: {e}"));
    assert_eq!(
        driver.inspect(&a).await,
        Health::Running,
        "inspect: MUST say Running after a spec change"
    );
    let again = driver
        .apply(&a, &changed)
        .await
        .unwrap_or_else(|e| panic!("apply: MUST accept the changed spec twice: {e}"));
    assert_eq!(
        again, replaced,
        "apply: the changed spec twice MUST change nothing (same handle)"
    );
    let handle = driver
        .apply(&a, &fixture.runs)
        .await
        .unwrap_or_else(|e| panic!("apply: MUST replace the changed component back: {e}"));
    assert_eq!(driver.inspect(&a).await, Health::Running);
    driver
        .stats(&a)
        .await
        .unwrap_or_else(|e| panic!("stats: MUST answer for a running component: {e}"));
    driver
        .logs(&a, 10)
        .await
        .unwrap_or_else(|e| panic!("logs: MUST answer for a running component: {e}"));

    // A component that cannot start MUST fail apply with the reason, and not count as running.
    let b = key("conformance-b", &fixture.cannot_start);
    match driver.apply(&b, &fixture.cannot_start).await {
        Ok(_) => panic!("apply: MUST fail for a component that cannot start"),
        Err(DriverError::Start(reason) | DriverError::Fetch { reason, .. }) => {
            assert!(!reason.is_empty(), "apply: a failure MUST say why")
        }
        Err(DriverError::Other(reason)) => {
            assert!(!reason.is_empty(), "apply: a failure MUST say why")
        }
    }
    assert_ne!(
        driver.inspect(&b).await,
        Health::Running,
        "inspect: a component that failed to start MUST NOT be Running"
    );
    driver
        .remove(&b)
        .await
        .unwrap_or_else(|e| panic!("remove: MUST clean up after a failed apply: {e}"));

    // recover MUST find a component again from its handle after a restart (a new driver over
    // the same folder), and prune MUST remove what it was not told to keep.
    drop(driver);
    let restarted = (fixture.make)(root.path());
    restarted
        .recover(&a, &fixture.runs, &handle)
        .await
        .unwrap_or_else(|e| panic!("recover: MUST take a component back from its handle: {e}"));
    assert_eq!(
        restarted.inspect(&a).await,
        Health::Running,
        "inspect: MUST say Running after recover"
    );
    let leftover = key("conformance-c", &fixture.runs);
    restarted
        .apply(&leftover, &fixture.runs)
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    let pruned = restarted
        .prune(std::slice::from_ref(&a))
        .await
        .unwrap_or_else(|e| panic!("prune: {e}"));
    assert!(
        pruned.contains(&leftover) && !pruned.contains(&a),
        "prune: MUST remove exactly what is not kept, removed {pruned:?}"
    );
    assert_eq!(restarted.inspect(&a).await, Health::Running);
    assert_eq!(restarted.inspect(&leftover).await, Health::Unknown);

    // remove MUST stop the component, and removing what is not there MUST succeed.
    restarted
        .remove(&a)
        .await
        .unwrap_or_else(|e| panic!("remove: {e}"));
    assert_eq!(
        restarted.inspect(&a).await,
        Health::Unknown,
        "inspect: MUST say Unknown after remove"
    );
    restarted
        .remove(&a)
        .await
        .unwrap_or_else(|e| panic!("remove: removing twice MUST succeed: {e}"));
}
