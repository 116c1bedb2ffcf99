//! Fingerprinting: which runtimes answer on this node now. At start and every
//! `fingerprint_secs`, the EN connects the drivers of runtimes outside it that were absent (a
//! container engine or a cluster that came up later), asks every driver's fingerprint, and
//! when the ready runtimes or their versions change, sends its new capabilities to the LO: the
//! scheduler only places on a node what it can run now.

use crate::config::EnConfig;
use crate::link::Agent;
use eos_adapter_helm::HelmDriver;
use eos_adapter_oci::OciDriver;
use eos_domain::ids::DeviceId;
use eos_domain::margo::DeviceCapabilities;
use eos_driver::{DriverInfo, Fingerprint, RuntimeDriver};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long one driver's fingerprint may take before it counts as unavailable.
const FINGERPRINT_WITHIN: Duration = Duration::from_secs(10);
/// How many fingerprints in a row a runtime must miss before the node stops offering it: one
/// slow answer from a busy engine does not send its workloads elsewhere.
const DROP_AFTER_MISSES: u32 = 2;

/// What the EN needs to connect the drivers of runtimes that live outside it.
pub(crate) struct Engines {
    config: EnConfig,
    /// Fingerprints each runtime missed in a row since it was last ready.
    misses: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl Engines {
    pub(crate) fn new(config: &EnConfig) -> Self {
        Self {
            config: config.clone(),
            misses: Default::default(),
        }
    }

    /// Counts the misses of `found`, and forgives a runtime its first `DROP_AFTER_MISSES - 1`
    /// in a row: it stays offered as last found.
    fn debounce(
        &self,
        found: Vec<(DriverInfo, Fingerprint)>,
        offered: &DeviceCapabilities,
    ) -> Vec<(DriverInfo, Fingerprint)> {
        let mut misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        let last_version = |runtime: &str| {
            offered
                .labels
                .get(crate::capabilities::DRIVER_VERSIONS_LABEL)?
                .as_array()?
                .iter()
                .find_map(|v| {
                    v.as_str()?
                        .strip_prefix(runtime)?
                        .strip_prefix('=')
                        .map(str::to_owned)
                })
        };
        found
            .into_iter()
            .map(|(info, fingerprint)| {
                let missed = misses.entry(info.runtime.clone()).or_default();
                if fingerprint.is_ready() {
                    *missed = 0;
                    return (info, fingerprint);
                }
                *missed += 1;
                match last_version(&info.runtime) {
                    Some(version) if *missed < DROP_AFTER_MISSES => {
                        tracing::info!(runtime = %info.runtime, fingerprint = ?fingerprint, "runtime missed a fingerprint; still offered");
                        (info, Fingerprint::Ready { version })
                    }
                    _ => (info, fingerprint),
                }
            })
            .collect()
    }

    /// Connects the drivers not among `have` whose runtime answers now: `oci` and `compose`
    /// on the container engine, `helm` on the cluster of the kubeconfig. `quiet` logs a
    /// runtime that still does not answer at debug level (the periodic retries).
    pub(crate) async fn connect_missing(
        &self,
        have: &[Arc<dyn RuntimeDriver>],
        quiet: bool,
    ) -> Vec<Arc<dyn RuntimeDriver>> {
        let config = &self.config;
        let has = |runtime: &str| have.iter().any(|d| d.info().runtime == runtime);
        let mut found: Vec<Arc<dyn RuntimeDriver>> = Vec::new();
        if !has("oci") {
            let scope = config
                .container_scope
                .clone()
                .unwrap_or_else(|| config.device_id.clone());
            match OciDriver::connect(&config.container_socket, &scope, config.registries.clone())
                .await
            {
                Ok(oci) => {
                    let oci = oci.with_image_history(config.data_dir.join("images.json"));
                    tracing::info!(engine = %oci.info().version, socket = %config.container_socket, "oci and compose runtimes on");
                    found.push(Arc::new(
                        oci.compose_driver(config.data_dir.join("compose"))
                            .with_verifier(Arc::new(crate::CacheVerifier(crate::artifact_cache(
                                config,
                            )))),
                    ));
                    found.push(Arc::new(oci));
                }
                Err(e) if quiet => tracing::debug!(error = %e, "oci runtime still off"),
                Err(e) => tracing::info!(error = %e, "oci runtime off"),
            }
        }
        if let Some(kubeconfig) = config.kubeconfig.as_ref().filter(|_| !has("helm")) {
            match HelmDriver::connect(
                kubeconfig,
                &config.helm_namespace,
                config.data_dir.join("helm"),
            )
            .await
            {
                Ok(helm) => {
                    tracing::info!(cluster = %helm.info().version, "helm runtime on");
                    found.push(Arc::new(helm));
                }
                Err(e) if quiet => tracing::debug!(error = %e, "helm runtime still off"),
                Err(e) => tracing::info!(error = %e, "helm runtime off"),
            }
        }
        found
    }
}

/// Each driver's fingerprint, asked side by side; one that does not answer within
/// `FINGERPRINT_WITHIN` is unavailable.
pub(crate) async fn fingerprints(
    drivers: &[Arc<dyn RuntimeDriver>],
) -> Vec<(DriverInfo, Fingerprint)> {
    let asks = drivers.iter().map(|driver| async move {
        let found = tokio::time::timeout(FINGERPRINT_WITHIN, driver.fingerprint())
            .await
            .unwrap_or_else(|_| Fingerprint::Unavailable {
                reason: format!("no answer within {FINGERPRINT_WITHIN:?}"),
            });
        (driver.info(), found)
    });
    futures::future::join_all(asks).await
}

/// The node's capabilities with the drivers whose fingerprint is ready, and its own labels.
pub(crate) fn capabilities(
    device: &DeviceId,
    found: &[(DriverInfo, Fingerprint)],
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<DeviceCapabilities> {
    let ready: Vec<(DriverInfo, String)> = found
        .iter()
        .filter_map(|(info, fingerprint)| match fingerprint {
            Fingerprint::Ready { version } => Some((info.clone(), version.clone())),
            Fingerprint::Unavailable { .. } => None,
        })
        .collect();
    let mut caps = crate::capabilities::detect(device, &ready);
    crate::capabilities::add_labels(&mut caps, labels)?;
    Ok(caps)
}

/// One round: connects absent runtimes (taking back what the run record says they ran),
/// fingerprints every driver, and hands changed capabilities to the agent, which tells the LO.
pub(crate) async fn refresh(agent: &Agent, engines: &Engines) {
    let found = engines.connect_missing(&agent.drivers(), true).await;
    if !found.is_empty() {
        let runtimes: Vec<String> = found.iter().map(|d| d.info().runtime).collect();
        agent.add_drivers(found);
        agent.recover_runtimes(Some(&runtimes)).await;
    }
    let fingerprints =
        engines.debounce(fingerprints(&agent.drivers()).await, &agent.capabilities());
    let caps = match capabilities(agent.device(), &fingerprints, &engines.config.labels) {
        Ok(caps) => caps,
        Err(e) => {
            tracing::error!(error = %e, "cannot describe this node");
            return;
        }
    };
    if agent.set_capabilities(caps) {
        for (info, fingerprint) in &fingerprints {
            match fingerprint {
                Fingerprint::Ready { version } => {
                    tracing::info!(runtime = %info.runtime, %version, "runtime ready")
                }
                Fingerprint::Unavailable { reason } => {
                    tracing::warn!(runtime = %info.runtime, %reason, "runtime unavailable: nothing new is placed on it here")
                }
            }
        }
    }
}

/// Refreshes every `every` until `stop`.
pub(crate) async fn run(
    agent: Arc<Agent>,
    engines: Engines,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&agent, &engines).await,
            _ = eos_app_common::stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunRecord;
    use eos_adapter_grpc::pb::{self, en_message};
    use eos_driver::mock::MockDriver;
    use tokio::sync::mpsc;

    fn runtimes(caps: &DeviceCapabilities) -> serde_json::Value {
        caps.labels[eos_domain::placement::RUNTIMES_LABEL].clone()
    }

    #[tokio::test]
    async fn a_runtime_that_goes_and_comes_back_changes_the_capabilities_sent_up() {
        let tmp = tempfile::tempdir().unwrap();
        let config = EnConfig {
            device_id: "s/n1".into(),
            data_dir: tmp.path().to_owned(),
            // No engine answers here: nothing is connected besides the mock.
            container_socket: tmp.path().join("none.sock").display().to_string(),
            labels: [("line".to_owned(), "3".to_owned())].into(),
            ..EnConfig::default()
        };
        let engines = Engines::new(&config);
        let mock = Arc::new(MockDriver::new());
        let drivers: Vec<Arc<dyn RuntimeDriver>> = vec![mock.clone()];
        let device = DeviceId::parse("s/n1").unwrap();
        let found = fingerprints(&drivers).await;
        let caps = capabilities(&device, &found, &config.labels).unwrap();
        assert_eq!(runtimes(&caps), serde_json::json!(["mock"]));
        assert_eq!(caps.labels["line"], "3");
        let agent = Agent::new(
            device,
            caps,
            drivers,
            RunRecord::open(tmp.path().join("state")).unwrap(),
            eos_adapter_registry::ArtifactCache::new(
                tmp.path().join("artifacts"),
                Default::default(),
                Vec::new(),
            ),
        );
        let (tx, mut rx) = mpsc::channel(4);
        *agent.upstream.lock().unwrap() = Some(tx);
        let sent = |message: Option<pb::EnMessage>| match message.and_then(|m| m.body) {
            Some(en_message::Body::Capabilities(c)) => {
                DeviceCapabilities::from_json(&c.capabilities_json).unwrap()
            }
            other => panic!("expected capabilities, got {other:?}"),
        };

        // Nothing changed: nothing is sent.
        refresh(&agent, &engines).await;
        assert!(
            rx.try_recv().is_err(),
            "unchanged capabilities are not sent"
        );

        // One miss is forgiven; the second in a row drops the runtime.
        mock.set_unavailable(Some("the runtime's socket is gone"));
        refresh(&agent, &engines).await;
        assert!(rx.try_recv().is_err(), "a single miss changes nothing");
        refresh(&agent, &engines).await;
        let caps = sent(rx.try_recv().ok());
        assert_eq!(runtimes(&caps), serde_json::json!([]));
        assert_eq!(caps.labels["line"], "3", "the node's labels stay");
        let Some(en_message::Body::Hello(hello)) = agent.hello().body else {
            panic!("a hello");
        };
        assert_eq!(
            DeviceCapabilities::from_json(&hello.capabilities_json).unwrap(),
            caps,
            "the next hello carries the new capabilities"
        );

        mock.set_unavailable(None);
        refresh(&agent, &engines).await;
        let caps = sent(rx.try_recv().ok());
        assert_eq!(runtimes(&caps), serde_json::json!(["mock"]));
        assert_eq!(
            caps.labels[crate::capabilities::DRIVER_VERSIONS_LABEL],
            serde_json::json!([format!("mock={}", mock.info().version)])
        );
    }
}
