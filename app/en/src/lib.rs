//! The edge node agent: dials its LO, registers with its Margo device capabilities, heartbeats,
//! applies operations through runtime drivers and answers asynchronously
//! (installing → installed | failed; removed), and tells it when its runtimes come or go
//! (fingerprinting). A crash-safe record of what it runs lets a
//! restarted EN resume instead of redeploying; a supervisor restarts crashed components.

mod capabilities;
mod config;
mod fingerprint;
mod link;
mod record;
mod revocation;
mod supervise;
mod usage;

pub use config::EnConfig;

use eos_adapter_native::NativeDriver;
use eos_adapter_wasm::WasmDriver;
use eos_adapter_wasm_plugin::WasmPluginDriver;
use eos_driver::RuntimeDriver;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running EN.
pub struct En {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl En {
    pub async fn start(config: EnConfig) -> anyhow::Result<Self> {
        let device = eos_domain::ids::DeviceId::parse(&config.device_id)?;
        eos_app_common::private_data_dir(&config.data_dir)?;
        let records = record::RunRecord::open(config.data_dir.join("state"))?;
        let wasm: Arc<dyn RuntimeDriver> =
            Arc::new(WasmDriver::new(config.data_dir.join("workloads"))?);
        let mut drivers = vec![wasm];
        let engines = fingerprint::Engines::new(&config);
        drivers.extend(engines.connect_missing(&drivers, false).await);
        let plugin_dir = config
            .plugin_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("plugins"));
        let plugin_data = config.data_dir.join("plugin-data");
        let native = NativeDriver::load_dir(&plugin_dir, &plugin_data)
            .into_iter()
            .map(|loaded| {
                loaded
                    .map(|p| (p.path().to_owned(), Arc::new(p) as Arc<dyn RuntimeDriver>))
                    .map_err(|e| e.to_string())
            });
        let wasm_plugins = WasmPluginDriver::load_dir(&plugin_dir, &plugin_data)
            .into_iter()
            .map(|loaded| {
                loaded
                    .map(|p| (p.path().to_owned(), Arc::new(p) as Arc<dyn RuntimeDriver>))
                    .map_err(|e| e.to_string())
            });
        for loaded in native.chain(wasm_plugins) {
            match loaded {
                Ok((path, plugin)) => {
                    let info = plugin.info();
                    if drivers.iter().any(|d| d.info().runtime == info.runtime) {
                        tracing::error!(plugin = %path.display(), runtime = %info.runtime, "plugin refused: another driver runs that runtime already");
                        continue;
                    }
                    tracing::info!(plugin = %path.display(), runtime = %info.runtime, source = %info.source, version = %info.version, "plugin loaded");
                    drivers.push(plugin);
                }
                Err(e) => tracing::error!(error = %e, "plugin refused"),
            }
        }
        let found = fingerprint::fingerprints(&drivers).await;
        for (info, fingerprint) in &found {
            if let eos_driver::Fingerprint::Unavailable { reason } = fingerprint {
                tracing::warn!(runtime = %info.runtime, %reason, "runtime unavailable");
            }
        }
        let caps = fingerprint::capabilities(&device, &found, &config.labels)?;
        let artifacts = artifact_cache(&config);
        let tls = eos_adapter_pki::credentials(
            &config.tls_dir(),
            config.enrol_url.as_deref(),
            config.claim_token.as_deref(),
            &[],
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot enrol the EN: {e}"))?
        .map(grpc_tls);
        let enrolled = tls.is_some();
        if tls.is_none() {
            tracing::warn!(tls_dir = %config.tls_dir().display(), "no certificate: the link to the LO is plain gRPC, which a CO requiring mutual TLS refuses; enrol with a claim token (--claim-token, --enrol-url)");
        }
        let agent = Arc::new(
            link::Agent::new(device, caps, drivers, records, artifacts)
                .keep_artifacts(config.keep_artifacts)
                .protect(protected_folders(&config.data_dir))
                .ceiling(config.workload_policy.clone())
                .package_artifacts(eos_adapter_localstore::BlobStore::new(
                    config.data_dir.join("package-artifacts"),
                ))
                .file_roots(config.file_artifact_roots.clone())
                .lo_revocation_file(config.data_dir.join("lo-revoked-at"))
                .with_tls(tls),
        );
        agent.recover().await;
        agent.collect_package_artifacts();
        agent.collect_garbage().await;
        let (stop, stopped) = watch::channel(false);
        tracing::info!(device_id = %config.device_id, lo = %config.lo_endpoint, data_dir = %config.data_dir.display(), "edge node agent started");
        let every = std::time::Duration::from_secs(config.health_check_secs.max(1));
        let fingerprint_every = std::time::Duration::from_secs(config.fingerprint_secs.max(1));
        let mut renewal = None;
        let mut revocations = None;
        if let (true, Some(url)) = (enrolled, &config.enrol_url) {
            // Asked once before the first dial (briefly: a CO out of reach leaves the EN to
            // what it kept), so a revoked LO does not get the EN's first session.
            revocation::check_once(&agent, &config.tls_dir(), url).await;
            revocations = Some(tokio::spawn(revocation::watch(
                agent.clone(),
                config.tls_dir(),
                url.clone(),
                std::time::Duration::from_secs(config.revocation_check_secs.max(1)),
                stopped.clone(),
            )));
            let agent = agent.clone();
            renewal = Some(tokio::spawn(eos_adapter_pki::keep_renewed(
                config.tls_dir(),
                url.clone(),
                Vec::new(),
                std::time::Duration::from_secs(config.renew_check_secs.max(1)),
                config
                    .renew_within_secs
                    .map(|s| time::Duration::seconds(s as i64)),
                move |c| agent.set_tls(Some(grpc_tls(c))),
                stopped.clone(),
            )));
        }
        let mut tasks = vec![
            tokio::spawn(supervise::run(agent.clone(), every, stopped.clone())),
            tokio::spawn(fingerprint::run(
                agent.clone(),
                engines,
                fingerprint_every,
                stopped.clone(),
            )),
            tokio::spawn(link::run(agent, config, stopped)),
        ];
        tasks.extend(renewal);
        tasks.extend(revocations);
        Ok(Self { stop, tasks })
    }

    pub async fn shutdown(self) {
        eos_app_common::stop_tasks(&self.stop, self.tasks).await
    }
}

impl eos_app_common::Daemon for En {
    async fn shutdown(self) {
        En::shutdown(self).await
    }
}

/// The EN's cache of artifacts pulled from registries (and of what verified there).
pub(crate) fn artifact_cache(config: &EnConfig) -> eos_adapter_registry::ArtifactCache {
    let logins = config
        .registries
        .iter()
        .map(|(host, l)| {
            let login = eos_adapter_registry::Login {
                username: l.username.clone(),
                password: l.password.clone(),
                tenants: Vec::new(),
            };
            (host.clone(), login)
        })
        .collect();
    eos_adapter_registry::ArtifactCache::new(
        config.data_dir.join("artifacts"),
        logins,
        config.insecure_registries.clone(),
    )
}

/// Drivers verify the images an artifact names (a compose file's services) through the
/// artifact cache, as the EN verifies the artifacts themselves.
pub(crate) struct CacheVerifier(pub eos_adapter_registry::ArtifactCache);

#[async_trait::async_trait]
impl eos_driver::ImageVerifier for CacheVerifier {
    async fn verify(&self, image: &str, public_keys: &[String]) -> Result<String, String> {
        self.0
            .verify_signature(image, public_keys)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The gRPC link's view of enrolled credentials: the LO dialled must be the LO of this EN's
/// own site and tenant.
fn grpc_tls(c: eos_adapter_pki::Credentials) -> eos_adapter_grpc::Tls {
    eos_adapter_grpc::Tls {
        peer: eos_adapter_pki::tier_above(&c.certificate_pem),
        peer_check: None,
        certificate_pem: c.certificate_pem,
        key_pem: c.key_pem,
        ca_pem: c.ca_pem,
    }
}

/// The EN's data folder, as given and as its links resolve: never mounted into a workload.
fn protected_folders(data_dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![data_dir.display().to_string()];
    if let Ok(real) = std::fs::canonicalize(data_dir) {
        out.push(real.display().to_string());
    }
    if let Ok(cwd) = std::env::current_dir()
        && data_dir.is_relative()
    {
        out.push(cwd.join(data_dir).display().to_string());
    }
    out
}
