//! A scriptable in-memory driver for orchestration tests. A component's `repository` says what
//! it does: `mock://runs` starts and keeps running, `mock://fails` cannot start,
//! `mock://exits/<code>` starts and exits at once with that code, `mock://slow/<ms>` takes that
//! long to start. Every call is recorded, so a test can check what the orchestrator asked for.
//! [`MockDriver::set_unavailable`] makes its fingerprint say the runtime went away.

use crate::{DriverError, DriverInfo, Fingerprint, Handle, Health, InstanceKey, RuntimeDriver};
use eos_domain::state::ComponentSpec;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct MockDriver {
    instances: Mutex<HashMap<InstanceKey, (ComponentSpec, Health)>>,
    calls: Mutex<Vec<String>>,
    /// Why the runtime does not answer, while a test says so.
    unavailable: Mutex<Option<String>>,
}

/// What a `mock://` repository scripts.
#[derive(Debug, Clone, PartialEq)]
enum Script {
    Runs,
    Fails,
    Exits(i32),
    Slow(Duration),
}

fn script(repository: &str) -> Result<Script, DriverError> {
    let bad = || DriverError::Fetch {
        repository: repository.to_owned(),
        reason: "not a mock:// script (runs, fails, exits/<code>, slow/<ms>)".into(),
    };
    let rest = repository.strip_prefix("mock://").ok_or_else(bad)?;
    let (verb, arg) = rest.split_once('/').unwrap_or((rest, ""));
    match verb {
        "runs" => Ok(Script::Runs),
        "fails" => Ok(Script::Fails),
        "exits" => arg.parse().map(Script::Exits).map_err(|_| bad()),
        "slow" => arg
            .parse()
            .map(|ms| Script::Slow(Duration::from_millis(ms)))
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

impl MockDriver {
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls so far, as `apply <deployment>/<component>`, `remove ...`, `recover ...`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes the fingerprint say `Unavailable` with `reason` (`None`: ready again).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        *self.unavailable.lock().unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_owned);
    }

    fn record(&self, call: &str, key: &InstanceKey) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{call} {key}"));
    }

    fn handle(key: &InstanceKey, spec: &ComponentSpec) -> Handle {
        Handle {
            driver: "mock".into(),
            data: serde_json::json!({"instance": key.to_string(), "revision": spec.revision}),
        }
    }
}

#[async_trait::async_trait]
impl RuntimeDriver for MockDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            runtime: "mock".into(),
            source: "built-in".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            deployment_types: vec!["custom".into()],
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        match self
            .unavailable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(reason) => Fingerprint::Unavailable { reason },
            None => Fingerprint::Ready {
                version: self.info().version,
            },
        }
    }

    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        self.record("apply", key);
        let unchanged = matches!(
            self.instances.lock().unwrap_or_else(|e| e.into_inner()).get(key),
            Some((current, Health::Running)) if current == spec
        );
        if unchanged {
            return Ok(Self::handle(key, spec));
        }
        let health = match script(&spec.repository)? {
            Script::Runs => Health::Running,
            Script::Exits(code) => Health::Exited { code },
            Script::Fails => {
                self.instances
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
                return Err(DriverError::Start("scripted failure at start".into()));
            }
            Script::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Health::Running
            }
        };
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), (spec.clone(), health));
        Ok(Self::handle(key, spec))
    }

    async fn inspect(&self, key: &InstanceKey) -> Health {
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map_or(Health::Unknown, |(_, h)| h.clone())
    }

    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        self.record("remove", key);
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }

    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        handle: &Handle,
    ) -> Result<Handle, DriverError> {
        self.record("recover", key);
        if handle.driver != "mock" {
            return Err(DriverError::Other(format!(
                "a handle of driver {:?}, not mock",
                handle.driver
            )));
        }
        self.apply(key, spec).await
    }

    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let mut instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<InstanceKey> = instances
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        for key in &gone {
            instances.remove(key);
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(repository: &str) -> ComponentSpec {
        ComponentSpec {
            name: "c".into(),
            runtime: "mock".into(),
            repository: repository.into(),
            revision: "1".into(),
            app_version: "1".into(),
            parameters: Default::default(),
            settings: Default::default(),
            signatures: None,
            workload: None,
        }
    }

    #[tokio::test]
    async fn the_mock_passes_the_conformance_suite() {
        crate::conformance::run(crate::conformance::Fixture {
            make: &|_| std::sync::Arc::new(MockDriver::new()),
            runs: spec("mock://runs"),
            cannot_start: spec("mock://fails"),
        })
        .await;
    }

    #[tokio::test]
    async fn scripts_exits_and_bad_scripts_and_calls_are_recorded() {
        let d = MockDriver::new();
        let k = InstanceKey {
            deployment_id: "d".into(),
            component: "c".into(),
        };
        d.apply(&k, &spec("mock://exits/3")).await.unwrap();
        assert_eq!(d.inspect(&k).await, Health::Exited { code: 3 });
        let bad = d.apply(&k, &spec("mock://explode")).await.unwrap_err();
        assert!(bad.to_string().contains("not a mock:// script"), "{bad}");
        d.remove(&k).await.unwrap();
        assert_eq!(d.calls(), vec!["apply d/c", "apply d/c", "remove d/c"]);
    }

    /// A driver that breaks one rule: `remove` leaves the component running.
    struct NeverStops(MockDriver);

    #[async_trait::async_trait]
    impl RuntimeDriver for NeverStops {
        fn info(&self) -> DriverInfo {
            self.0.info()
        }
        async fn apply(&self, k: &InstanceKey, s: &ComponentSpec) -> Result<Handle, DriverError> {
            self.0.apply(k, s).await
        }
        async fn inspect(&self, k: &InstanceKey) -> Health {
            self.0.inspect(k).await
        }
        async fn remove(&self, _: &InstanceKey) -> Result<(), DriverError> {
            Ok(())
        }
        async fn recover(
            &self,
            k: &InstanceKey,
            s: &ComponentSpec,
            h: &Handle,
        ) -> Result<Handle, DriverError> {
            self.0.recover(k, s, h).await
        }
        async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
            self.0.prune(keep).await
        }
    }

    fn never_stops(_: &std::path::Path) -> std::sync::Arc<dyn RuntimeDriver> {
        std::sync::Arc::new(NeverStops(MockDriver::new()))
    }

    #[tokio::test]
    async fn the_suite_fails_a_driver_that_breaks_a_rule() {
        let outcome = tokio::spawn(crate::conformance::run(crate::conformance::Fixture {
            make: &never_stops,
            runs: spec("mock://runs"),
            cannot_start: spec("mock://fails"),
        }))
        .await;
        let panic = outcome.expect_err("the suite must fail").into_panic();
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(message.contains("Unknown after remove"), "{message}");
    }
}
