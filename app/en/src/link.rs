//! The EN's session with its LO: hello, heartbeats, and commands answered asynchronously.

use crate::config::EnConfig;
use crate::record::{RunEntry, RunRecord};
use crate::supervise::Watch;
use eos_adapter_grpc::pb::{self, en_message, lo_command};
use eos_adapter_grpc::{NodeLinkClient, spec_from_json, spec_to_json};
use eos_adapter_registry::{ArtifactCache, COMPOSE_LAYER, HELM_LAYER, WASM_LAYER};
use eos_domain::ids::DeviceId;
use eos_domain::margo::DeviceCapabilities;
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, InstanceKey, RuntimeDriver};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

/// How many components an EN recovers at the same time after a restart.
const RECOVER_AT_ONCE: usize = 16;
/// How many operations an EN carries out at the same time (each on a different component).
const OPERATIONS_AT_ONCE: usize = 8;

/// The lane of a command: its deployment and component (commands of one lane stay in order).
fn lane_of(command: &pb::LoCommand) -> String {
    let (deployment, spec) = match &command.body {
        Some(lo_command::Body::Apply(a)) => (&a.deployment_id, &a.spec_json),
        Some(lo_command::Body::Remove(r)) => (&r.deployment_id, &r.spec_json),
        Some(lo_command::Body::Inspect(_)) | None => return String::new(),
    };
    let component = spec_from_json(spec).map(|s| s.name).unwrap_or_default();
    format!("{deployment}/{component}")
}

pub struct Agent {
    device: DeviceId,
    /// What the node can run now, as its last fingerprint found.
    capabilities: Mutex<DeviceCapabilities>,
    /// Grows when a runtime outside the EN (an engine, a cluster) answers after start.
    drivers: RwLock<Vec<Arc<dyn RuntimeDriver>>>,
    pub(crate) records: RunRecord,
    /// One lock per component: an operation from the LO and a restart by the supervisor never
    /// overlap on the same component.
    locks: Mutex<HashMap<InstanceKey, Arc<tokio::sync::Mutex<()>>>>,
    /// What the supervisor knows of each component's crashes and restarts.
    pub(crate) watches: Mutex<HashMap<InstanceKey, Watch>>,
    /// The current session's outbound stream, for what the supervisor observes unasked.
    pub(crate) upstream: Mutex<Option<mpsc::Sender<pb::EnMessage>>>,
    /// Modules pulled from registries.
    artifacts: ArtifactCache,
    /// How many artifacts to keep per registry reference.
    keep_artifacts: usize,
    /// The EN's certificate, key and CA, when it is enrolled: the LO link is then mutual TLS.
    /// A renewal replaces them; the next dial uses the new ones.
    tls: RwLock<Option<eos_adapter_grpc::Tls>>,
    /// The EN's own folders (its data folder): never mounted into a workload.
    protected: Vec<String>,
    /// The most this device lets a workload ask (`en.toml`'s `[workload_policy]`).
    ceiling: eos_domain::workload::WorkloadPolicy,
    /// Files packages carry, fetched from the LO by digest (`eos-artifact:` repositories).
    package_artifacts: Option<eos_adapter_localstore::BlobStore>,
    /// The folders `file://` repositories may name (`en.toml`'s `file_artifact_roots`).
    file_roots: Vec<std::path::PathBuf>,
    /// The current session's channel to the LO, for fetching package artifacts.
    lo_channel: Mutex<Option<tonic::transport::Channel>>,
    /// When the CO last revoked the site's LO (RFC 3339): its certificates issued until then
    /// are refused when the EN dials, so a revoked LO gives the EN no more commands.
    lo_revoked_at: RwLock<Option<String>>,
    /// Where `lo_revoked_at` is kept across restarts.
    lo_revocation_file: Option<std::path::PathBuf>,
    /// Rung when the session with the LO must end (the LO was revoked).
    pub(crate) relink: tokio::sync::Notify,
}

/// The most bytes a package artifact or a `file://` artifact may hold.
pub const MAX_FILE_ARTIFACT_BYTES: u64 = 256 * 1024 * 1024;

impl Agent {
    pub fn new(
        device: DeviceId,
        capabilities: DeviceCapabilities,
        drivers: Vec<Arc<dyn RuntimeDriver>>,
        records: RunRecord,
        artifacts: ArtifactCache,
    ) -> Self {
        Self {
            device,
            capabilities: Mutex::new(capabilities),
            drivers: RwLock::new(drivers),
            records,
            locks: Mutex::new(HashMap::new()),
            watches: Mutex::new(HashMap::new()),
            upstream: Mutex::new(None),
            artifacts,
            keep_artifacts: 2,
            tls: RwLock::new(None),
            protected: Vec::new(),
            ceiling: Default::default(),
            package_artifacts: None,
            file_roots: Vec::new(),
            lo_channel: Mutex::new(None),
            lo_revoked_at: RwLock::new(None),
            lo_revocation_file: None,
            relink: tokio::sync::Notify::new(),
        }
    }

    /// Keeps when the site's LO was revoked in `file` (and reads it back now).
    pub fn lo_revocation_file(mut self, file: std::path::PathBuf) -> Self {
        let known = std::fs::read_to_string(&file)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        *self
            .lo_revoked_at
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = known;
        self.lo_revocation_file = Some(file);
        self
    }

    /// The CO revoked the site's LO at `at`: its certificates issued until then are refused
    /// from now on (kept across restarts), and the session with it ends.
    pub(crate) fn lo_revoked(&self, at: String) {
        let mut known = self
            .lo_revoked_at
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // Only ever later: an earlier time (an impostor's answer) takes nothing back.
        if known
            .as_deref()
            .is_some_and(|k| eos_domain::service::revocation_covers(k, &at))
        {
            return;
        }
        let kept = self.lo_revocation_file.as_ref().map(|file| {
            let next = file.with_extension("next");
            std::fs::write(&next, at.as_bytes()).and_then(|()| std::fs::rename(&next, file))
        });
        if let Some(Err(e)) = kept {
            tracing::error!(error = %e, "cannot keep the LO's revocation");
        }
        tracing::warn!(revoked_at = %at, "the site's LO was revoked: its commands are refused");
        *known = Some(at);
        drop(known);
        self.relink.notify_one();
    }

    /// The TLS to dial the LO with: refusing an LO certificate issued before the LO's
    /// revocation.
    fn lo_tls(&self) -> Option<eos_adapter_grpc::Tls> {
        let mut tls = self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()?;
        if let Some(at) = self
            .lo_revoked_at
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            tls.peer_check = Some(eos_adapter_grpc::PeerCheck(Arc::new(move |der| {
                eos_adapter_pki::revoked_by(der, &at)
                    .then(|| format!("the LO's certificate was revoked at {at}"))
            })));
        }
        Some(tls)
    }

    /// Keeps the files packages carry in `store`, fetched from the LO by digest.
    pub fn package_artifacts(mut self, store: eos_adapter_localstore::BlobStore) -> Self {
        self.package_artifacts = Some(store);
        self
    }

    /// Lets `file://` repositories name files under `roots` only (none by default).
    pub fn file_roots(mut self, roots: Vec<std::path::PathBuf>) -> Self {
        self.file_roots = roots
            .into_iter()
            .map(|r| std::fs::canonicalize(&r).unwrap_or(r))
            .collect();
        self
    }

    /// The file a `file://` repository names, resolved: it must lie (as its links resolve)
    /// under one of the folders `en.toml` allows, and be a plain file within the size cap (a
    /// Helm chart may be a folder). The driver gets the resolved path, so a link swapped
    /// after the check changes nothing; the refusal never quotes the file, nor says whether a
    /// path outside the folders exists.
    fn local_file(&self, path: &str, runtime: &str) -> Result<std::path::PathBuf, DriverError> {
        let refuse = |why: String| DriverError::Fetch {
            repository: format!("file://{path}"),
            reason: why,
        };
        let outside = || {
            refuse(
                "file:// artifacts are read only under the folders en.toml's \
                 file_artifact_roots names (none by default); a package's own files reach the \
                 EN through its LO"
                    .into(),
            )
        };
        let real = std::fs::canonicalize(path).map_err(|_| outside())?;
        if !self.file_roots.iter().any(|root| real.starts_with(root)) {
            return Err(outside());
        }
        let meta = std::fs::metadata(&real)
            .map_err(|e| refuse(format!("cannot open it: {}", e.kind())))?;
        if meta.is_dir() && runtime == "helm" {
            return Ok(real);
        }
        if !meta.is_file() {
            return Err(refuse("not a plain file".into()));
        }
        if meta.len() > MAX_FILE_ARTIFACT_BYTES {
            return Err(refuse(format!(
                "{} bytes; an artifact holds at most {MAX_FILE_ARTIFACT_BYTES}",
                meta.len()
            )));
        }
        Ok(real)
    }

    /// The EN's copy of the package artifact `digest`, fetched from the LO (and checked
    /// against the digest) when it has none.
    async fn package_artifact(&self, digest: &str) -> Result<std::path::PathBuf, String> {
        let store = self
            .package_artifacts
            .as_ref()
            .ok_or("this EN keeps no package artifacts")?;
        if let Some(path) = store.path(digest) {
            return Ok(path);
        }
        let channel = self
            .lo_channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or("the EN has no copy and is not connected to its LO")?;
        let stream = NodeLinkClient::new(channel)
            .artifact(pb::ArtifactRequest {
                digest: digest.to_owned(),
            })
            .await
            .map_err(|s| format!("the LO: {}", s.message()))?
            .into_inner();
        let mut writer = store
            .writer(digest, MAX_FILE_ARTIFACT_BYTES)
            .map_err(|e| e.to_string())?;
        eos_adapter_grpc::receive_artifact(stream, MAX_FILE_ARTIFACT_BYTES, |chunk| {
            writer.write(chunk).map_err(|e| e.to_string())
        })
        .await?;
        let path = writer.finish().map_err(|e| e.to_string())?;
        tracing::info!(%digest, "artifact fetched from the lo");
        Ok(path)
    }

    /// Never mounts `folders` (the EN's data folder) into a workload, whatever a policy says.
    pub fn protect(mut self, folders: Vec<String>) -> Self {
        self.protected = folders;
        self
    }

    /// Lets workloads ask at most `ceiling` of this device, whatever a tenant was granted.
    pub fn ceiling(mut self, ceiling: eos_domain::workload::WorkloadPolicy) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// Refuses, before any driver sees it, an `oci` component that asks more of the device
    /// than the workload security policy allows: the tenant's grants that the deployment
    /// carries (none: the strict default), within this device's ceiling, whatever the desired
    /// state in Git says. A host path is judged as written and, where it exists, as its
    /// symbolic links resolve. The spec a driver gets carries the narrowed policy (the compose
    /// driver judges its services' volumes by it).
    fn check_workload(&self, spec: &ComponentSpec) -> Result<ComponentSpec, DriverError> {
        use eos_domain::container::{VolumeMount, parse_volume};
        let protected: Vec<&str> = self.protected.iter().map(String::as_str).collect();
        let mut policy = spec
            .workload
            .clone()
            .unwrap_or_default()
            .within(&self.ceiling);
        // No grant reaches the EN's own folders (the compose driver judges by this policy).
        policy
            .host_paths
            .retain(|p| policy_of(p).allows_host_path(p, &protected).is_ok());
        let container = spec.settings.get("container");
        let refuse = |field: String, why: String| {
            DriverError::Start(format!(
                "refused by the workload security policy: container.{field}: {why}; nothing was \
                 started"
            ))
        };
        let devices = container
            .and_then(|c| c.get("devices"))
            .and_then(|v| v.as_array());
        for (i, device) in devices.into_iter().flatten().enumerate() {
            let Some(Ok((host, _))) = device.as_str().map(eos_domain::container::parse_device)
            else {
                continue;
            };
            let resolved = std::fs::canonicalize(&host)
                .ok()
                .map(|p| p.display().to_string());
            for path in std::iter::once(host.as_str()).chain(resolved.as_deref()) {
                policy
                    .allows_device(path)
                    .map_err(|why| refuse(format!("devices[{i}]"), why))?;
            }
        }
        if container.and_then(|c| c.get("gpus")).is_some() {
            policy
                .allows_gpus()
                .map_err(|why| refuse("gpus".into(), why))?;
        }
        let volumes = container
            .and_then(|c| c.get("volumes"))
            .and_then(|v| v.as_array());
        for (i, volume) in volumes.into_iter().flatten().enumerate() {
            let Some(Ok(VolumeMount::Host { source, .. })) = volume.as_str().map(parse_volume)
            else {
                continue;
            };
            let resolved = std::fs::canonicalize(&source)
                .ok()
                .map(|p| p.display().to_string());
            for path in std::iter::once(source.as_str()).chain(resolved.as_deref()) {
                policy.allows_host_path(path, &protected).map_err(|why| {
                    DriverError::Start(format!(
                        "refused by the workload security policy: container.volumes[{i}]: \
                             {why}; nothing was started"
                    ))
                })?;
            }
        }
        Ok(ComponentSpec {
            workload: (!policy.is_strict()).then_some(policy),
            ..spec.clone()
        })
    }

    /// Speaks mutual TLS to the LO with `tls` (the EN's enrolled certificate).
    pub fn with_tls(self, tls: Option<eos_adapter_grpc::Tls>) -> Self {
        self.set_tls(tls);
        self
    }

    /// Uses `tls` from the next dial on (a renewed certificate).
    pub fn set_tls(&self, tls: Option<eos_adapter_grpc::Tls>) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
    }

    /// Keeps `n` pulled artifacts per registry reference (the newest; at least one).
    pub fn keep_artifacts(mut self, n: usize) -> Self {
        self.keep_artifacts = n;
        self
    }

    /// Deletes the package artifacts no recorded component runs from. Called at start only,
    /// before any operation: a file fetched for an apply under way is not recorded yet.
    pub(crate) fn collect_package_artifacts(&self) {
        let Some(store) = &self.package_artifacts else {
            return;
        };
        let used: Vec<String> = self
            .records
            .entries()
            .iter()
            .filter_map(|e| e.spec.package_artifact().map(str::to_owned))
            .collect();
        for digest in store.retain(&used) {
            tracing::info!(%digest, "deleted a package artifact no component runs from");
        }
    }

    /// Deletes what was fetched beyond the newest `keep_artifacts` per repository: pulled
    /// modules, archives and charts in the artifact cache (never one a recorded component runs
    /// from), and the images of container drivers (never one a container runs from).
    pub(crate) async fn collect_garbage(&self) {
        let in_use: Vec<String> = self
            .records
            .entries()
            .iter()
            .filter_map(|e| e.spec.oci_reference())
            .collect();
        match self.artifacts.collect_garbage(self.keep_artifacts, &in_use) {
            Ok(deleted) => {
                for path in deleted {
                    tracing::info!(path = %path.display(), "deleted an artifact no longer kept");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot collect old artifacts"),
        }
        for driver in self.drivers() {
            match driver.collect_garbage(self.keep_artifacts).await {
                Ok(deleted) => {
                    for image in deleted {
                        tracing::info!(runtime = %driver.info().runtime, image = %image, "deleted an image no longer kept");
                    }
                }
                Err(e) => {
                    tracing::warn!(runtime = %driver.info().runtime, error = %e, "cannot collect old images")
                }
            }
        }
    }

    /// The spec a driver runs: a `wasm`, `compose` or `helm` component from a registry
    /// (`oci://`) is pulled (the module, the compose archive, or the chart) into
    /// the artifact cache first and run from there (from the cache alone when the registry is
    /// out of reach and it was pulled before). Under a signature policy the artifact's cosign
    /// signature is verified first and the artifact is run by the digest that verified; an
    /// artifact that does not verify is refused before any driver sees it. The run record keeps
    /// the spec as the LO sent it.
    pub(crate) async fn runnable(
        &self,
        spec: &ComponentSpec,
    ) -> Result<ComponentSpec, DriverError> {
        let narrowed = self.check_workload(spec)?;
        let spec = &narrowed;
        let resolved;
        let spec = match spec.repository.split_once("://") {
            Some(("file", path)) => {
                let real = self.local_file(path, &spec.runtime)?;
                resolved = ComponentSpec {
                    repository: format!("file://{}", real.display()),
                    ..spec.clone()
                };
                &resolved
            }
            Some(_) => spec,
            // No scheme: a bare or `./` path would be read wherever it leads.
            None if spec.package_artifact().is_some() => spec,
            None => {
                return Err(DriverError::Fetch {
                    repository: spec.repository.clone(),
                    reason: "not a repository the EN fetches (oci://, eos-artifact: or a \
                             file:// under en.toml's file_artifact_roots)"
                        .into(),
                });
            }
        };
        let verified;
        let spec = match &spec.signatures {
            Some(policy) if policy.required => {
                verified = self.verified(spec, policy).await?;
                &verified
            }
            _ => spec,
        };
        if let Some(digest) = spec.package_artifact() {
            let path =
                self.package_artifact(digest)
                    .await
                    .map_err(|reason| DriverError::Fetch {
                        repository: spec.repository.clone(),
                        reason,
                    })?;
            return Ok(ComponentSpec {
                repository: format!("file://{}", path.display()),
                ..spec.clone()
            });
        }
        let layer = match spec.runtime.as_str() {
            "wasm" => WASM_LAYER,
            "compose" => COMPOSE_LAYER,
            "helm" => HELM_LAYER,
            _ => return Ok(spec.clone()),
        };
        let Some(reference) = spec.oci_reference() else {
            return Ok(spec.clone());
        };
        let path =
            self.artifacts
                .fetch(&reference, layer)
                .await
                .map_err(|e| DriverError::Fetch {
                    repository: spec.repository.clone(),
                    reason: e.to_string(),
                })?;
        Ok(ComponentSpec {
            repository: format!("file://{}", path.display()),
            ..spec.clone()
        })
    }

    /// `spec` pinned to the digest whose signature verified under `policy`.
    async fn verified(
        &self,
        spec: &ComponentSpec,
        policy: &eos_domain::signing::SignaturePolicy,
    ) -> Result<ComponentSpec, DriverError> {
        let refuse = |why: String| {
            DriverError::Other(format!(
                "refused by the tenant's signature policy: {why}; nothing was started"
            ))
        };
        if !eos_domain::signing::SignaturePolicy::verifiable(&spec.runtime) {
            return Err(refuse(format!(
                "{} components cannot be verified (only {})",
                spec.runtime,
                eos_domain::signing::VERIFIABLE_RUNTIMES.join(" and ")
            )));
        }
        let Some(reference) = spec.oci_reference() else {
            return Err(refuse(format!(
                "{} is not in a registry (oci://…), so it carries no signature",
                spec.repository
            )));
        };
        let pinned = self
            .artifacts
            .verify_signature(&reference, &policy.public_keys)
            .await
            .map_err(|e| refuse(e.to_string()))?;
        tracing::info!(%reference, %pinned, "artifact signature verified");
        Ok(ComponentSpec {
            repository: format!("oci://{pinned}"),
            ..spec.clone()
        })
    }

    /// The lock of one component (see `locks`).
    pub(crate) fn component_lock(&self, key: &InstanceKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Locks nobody holds or waits for are dropped, so the map stays as small as the work.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(key.clone()).or_default().clone()
    }

    /// Sends what the supervisor saw to the LO, when a session is open (otherwise the next
    /// hello carries the component's state).
    /// Says whether a session took it.
    pub(crate) fn observe(
        &self,
        key: &InstanceKey,
        state: &str,
        error: String,
        restarts: u32,
    ) -> bool {
        let message = pb::EnMessage {
            body: Some(en_message::Body::Observed(pb::ComponentObserved {
                deployment_id: key.deployment_id.clone(),
                component: key.component.clone(),
                state: state.into(),
                error,
                restarts,
            })),
        };
        self.upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.try_send(message).is_ok())
    }

    pub(crate) fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The drivers the EN has now.
    pub(crate) fn drivers(&self) -> Vec<Arc<dyn RuntimeDriver>> {
        self.drivers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn driver(&self, runtime: &str) -> Option<Arc<dyn RuntimeDriver>> {
        self.drivers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|d| d.info().runtime == runtime)
            .cloned()
    }

    /// Takes up drivers whose runtime came to answer after start.
    pub(crate) fn add_drivers(&self, found: Vec<Arc<dyn RuntimeDriver>>) {
        self.drivers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(found);
    }

    /// What the node offers now.
    pub(crate) fn capabilities(&self) -> DeviceCapabilities {
        self.capabilities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the node's capabilities; when they changed, tells the LO at once if a session
    /// is open (otherwise the next hello carries them). Says whether they changed.
    pub(crate) fn set_capabilities(&self, caps: DeviceCapabilities) -> bool {
        let mut current = self.capabilities.lock().unwrap_or_else(|e| e.into_inner());
        if *current == caps {
            return false;
        }
        let message = pb::EnMessage {
            body: Some(en_message::Body::Capabilities(pb::CapabilitiesChanged {
                capabilities_json: caps.to_json(),
            })),
        };
        *current = caps;
        drop(current);
        let sent = self
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.try_send(message).is_ok());
        tracing::info!(told_lo = sent, "capabilities changed");
        true
    }

    /// Takes back what the record says runs here, before talking to anyone. Components are
    /// recovered several at a time: each may take a driver's whole start window.
    pub async fn recover(&self) {
        self.recover_runtimes(None).await
    }

    /// Recovers the recorded components of `runtimes` (all when `None`), then lets those
    /// runtimes' drivers prune what no record names. Called with the runtimes of drivers taken
    /// up after start, whose components could not be recovered then.
    pub(crate) async fn recover_runtimes(&self, runtimes: Option<&[String]>) {
        use futures::StreamExt;
        let chosen = |runtime: &str| runtimes.is_none_or(|r| r.iter().any(|x| x == runtime));
        let entries = self.records.entries();
        let recoveries = entries.into_iter().filter(|e| chosen(&e.spec.runtime)).map(|entry| async move {
            let key = InstanceKey {
                deployment_id: entry.deployment_id.clone(),
                component: entry.spec.name.clone(),
            };
            let Some(driver) = self.driver(&entry.spec.runtime) else {
                tracing::warn!(instance = %key, runtime = %entry.spec.runtime, "no driver to recover component");
                return;
            };
            let recovered = match self.runnable(&entry.spec).await {
                Ok(runnable) => driver.recover(&key, &runnable, &entry.handle).await,
                Err(e) => Err(e),
            };
            match recovered {
                Ok(_) => tracing::info!(instance = %key, "recovered component"),
                Err(e) => tracing::warn!(instance = %key, error = %e, "cannot recover component"),
            }
        });
        futures::stream::iter(recoveries)
            .buffer_unordered(RECOVER_AT_ONCE)
            .collect::<Vec<()>>()
            .await;
        let keep: Vec<InstanceKey> = self
            .records
            .entries()
            .into_iter()
            .map(|e| InstanceKey {
                deployment_id: e.deployment_id,
                component: e.spec.name,
            })
            .collect();
        for driver in self.drivers() {
            if !chosen(&driver.info().runtime) {
                continue;
            }
            match driver.prune(&keep).await {
                Ok(removed) => {
                    for key in removed {
                        tracing::warn!(instance = %key, "removed a component left over from a crash");
                    }
                }
                Err(e) => {
                    tracing::warn!(driver = %driver.info().runtime, error = %e, "cannot prune leftovers")
                }
            }
        }
    }

    /// The hello that opens a session. It hands over the crashes no LO has heard of yet: if
    /// this session fails before the LO reads it, they are not told again.
    pub(crate) fn hello(&self) -> pb::EnMessage {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let running = self
            .records
            .entries()
            .into_iter()
            .map(|e| {
                let key = InstanceKey {
                    deployment_id: e.deployment_id.clone(),
                    component: e.spec.name.clone(),
                };
                let watch = watches.get_mut(&key);
                let (state, error) = match watch.as_ref().and_then(|w| w.down_reason()) {
                    Some(reason) => ("failed", reason.to_owned()),
                    None => ("installed", String::new()),
                };
                let (unreported_crashes, last_crash) = watch
                    .map(|w| {
                        (
                            std::mem::take(&mut w.unreported),
                            std::mem::take(&mut w.last_crash),
                        )
                    })
                    .unwrap_or_default();
                pb::RunningComponent {
                    deployment_id: e.deployment_id,
                    spec_json: spec_to_json(&e.spec),
                    state: state.into(),
                    error,
                    unreported_crashes,
                    last_crash,
                }
            })
            .collect();
        drop(watches);
        let hello = pb::EnHello {
            device_id: self.device.to_string(),
            capabilities_json: self.capabilities().to_json(),
            running,
        };
        pb::EnMessage {
            body: Some(en_message::Body::Hello(hello)),
        }
    }

    pub(crate) async fn apply(
        &self,
        deployment_id: &str,
        spec: &ComponentSpec,
    ) -> Result<(), String> {
        let key = InstanceKey {
            deployment_id: deployment_id.to_owned(),
            component: spec.name.clone(),
        };
        let driver = self
            .driver(&spec.runtime)
            .ok_or_else(|| format!("no driver for runtime {:?} on this device", spec.runtime))?;
        let lock = self.component_lock(&key);
        let _guard = lock.lock().await;
        let runnable = self.runnable(spec).await.map_err(|e| e.to_string())?;
        let handle = driver
            .apply(&key, &runnable)
            .await
            .map_err(|e: DriverError| e.to_string())?;
        eos_app_common::failpoint("en.apply.before_record");
        self.records
            .put(RunEntry {
                deployment_id: deployment_id.to_owned(),
                spec: spec.clone(),
                handle,
            })
            .map_err(|e| e.to_string())?;
        if spec.oci_reference().is_some() {
            self.collect_garbage().await;
        }
        // Applied afresh: crashes before count no more.
        self.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        Ok(())
    }

    async fn remove(&self, deployment_id: &str, spec: &ComponentSpec) -> Result<(), String> {
        let key = InstanceKey {
            deployment_id: deployment_id.to_owned(),
            component: spec.name.clone(),
        };
        let lock = self.component_lock(&key);
        let _guard = lock.lock().await;
        if let Some(driver) = self.driver(&spec.runtime) {
            driver.remove(&key).await.map_err(|e| e.to_string())?;
        }
        self.records
            .remove(deployment_id, &spec.name)
            .map_err(|e| e.to_string())?;
        if spec.oci_reference().is_some() {
            self.collect_garbage().await;
        }
        Ok(())
    }

    /// How a deployment's components (or one of them) are doing now: what their drivers
    /// measure, and their last `lines` log lines (at most 1,000).
    pub(crate) async fn inspect(&self, question: &pb::Inspect) -> pb::InspectAnswer {
        let entries: Vec<RunEntry> = self
            .records
            .entries()
            .into_iter()
            .filter(|e| e.deployment_id == question.deployment_id)
            .filter(|e| question.component.is_empty() || e.spec.name == question.component)
            .collect();
        let mut answer = pb::InspectAnswer {
            request_id: question.request_id,
            error: String::new(),
            components: Vec::new(),
        };
        if entries.is_empty() {
            answer.error = match question.component.as_str() {
                "" => format!(
                    "{} runs nothing of deployment {}",
                    self.device, question.deployment_id
                ),
                c => format!(
                    "{} does not run {c} of deployment {}",
                    self.device, question.deployment_id
                ),
            };
            return answer;
        }
        let lines = question.lines.min(1000) as usize;
        for entry in entries {
            let key = InstanceKey {
                deployment_id: entry.deployment_id.clone(),
                component: entry.spec.name.clone(),
            };
            let mut live = pb::ComponentLive {
                component: entry.spec.name.clone(),
                runtime: entry.spec.runtime.clone(),
                ..Default::default()
            };
            let Some(driver) = self.driver(&entry.spec.runtime) else {
                live.error = format!("no {} driver on this EN", entry.spec.runtime);
                answer.components.push(live);
                continue;
            };
            let mut problems = Vec::new();
            match driver.stats(&key).await {
                Ok(stats) => {
                    live.cpu_percent = stats.cpu_percent;
                    live.memory_bytes = stats.memory_bytes;
                }
                Err(e) => problems.push(format!("stats: {e}")),
            }
            if lines > 0 {
                match driver.logs(&key, lines).await {
                    Ok(log) => live.log = log,
                    Err(e) => problems.push(format!("logs: {e}")),
                }
            }
            live.error = problems.join("; ");
            answer.components.push(live);
        }
        answer
    }

    /// Carries out one command, sending its results on `out`.
    async fn execute(&self, command: pb::LoCommand, out: &mpsc::Sender<pb::EnMessage>) {
        let (deployment_id, spec_json, removing) = match command.body {
            Some(lo_command::Body::Apply(a)) => (a.deployment_id, a.spec_json, false),
            Some(lo_command::Body::Remove(r)) => (r.deployment_id, r.spec_json, true),
            Some(lo_command::Body::Inspect(_)) | None => return,
        };
        let result = |state: &str, error: String, component: &str| pb::EnMessage {
            body: Some(en_message::Body::Result(pb::ComponentResult {
                op_id: command.op_id,
                deployment_id: deployment_id.clone(),
                component: component.to_owned(),
                state: state.into(),
                error,
                spec_json: spec_json.clone(),
            })),
        };
        let spec = match spec_from_json(&spec_json) {
            Ok(s) => s,
            Err(e) => {
                let _ = out.send(result("failed", e.to_string(), "")).await;
                return;
            }
        };
        let (busy, done) = if removing {
            ("removing", "removed")
        } else {
            ("installing", "installed")
        };
        let _ = out.send(result(busy, String::new(), &spec.name)).await;
        let outcome = if removing {
            self.remove(&deployment_id, &spec).await
        } else {
            self.apply(&deployment_id, &spec).await
        };
        let message = match outcome {
            Ok(()) => result(done, String::new(), &spec.name),
            Err(e) => {
                tracing::warn!(deployment_id, component = %spec.name, error = %e, "operation failed");
                result("failed", e, &spec.name)
            }
        };
        let _ = out.send(message).await;
    }
}

/// Keeps a session with the LO open until `stop`, reconnecting with backoff.
pub async fn run(agent: Arc<Agent>, config: EnConfig, stop: watch::Receiver<bool>) {
    let span = tracing::info_span!("en", device_id = %agent.device);
    let sessions = eos_app_common::reconnect("lo link", stop.clone(), || {
        session(agent.clone(), config.clone(), stop.clone())
    });
    sessions.instrument(span).await
}

async fn session(
    agent: Arc<Agent>,
    config: EnConfig,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tls = agent.lo_tls();
    let channel = eos_adapter_grpc::dial(&config.lo_endpoint, tls.as_ref()).await?;
    *agent.lo_channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel.clone());
    let mut client = NodeLinkClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::EnMessage>(256);
    tx.send(agent.hello()).await?;
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    tracing::info!(device_id = %agent.device, lo = %config.lo_endpoint, "connected to lo");
    *agent.upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx.clone());
    let (commands, mut queue) = mpsc::unbounded_channel::<pb::LoCommand>();
    let (worker_agent, worker_tx) = (agent.clone(), tx.clone());
    let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker_abandoned = abandoned.clone();
    // Commands for one component run in the order they came, each component in its own lane;
    // lanes run side by side, at most OPERATIONS_AT_ONCE operations at a time.
    let worker = tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(OPERATIONS_AT_ONCE));
        let mut lanes: HashMap<String, mpsc::UnboundedSender<pb::LoCommand>> = HashMap::new();
        let mut running = tokio::task::JoinSet::new();
        while let Some(command) = queue.recv().await {
            if worker_abandoned.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
            let lane = lanes.entry(lane_of(&command)).or_insert_with(|| {
                let (lane, mut work) = mpsc::unbounded_channel::<pb::LoCommand>();
                let (agent, out) = (worker_agent.clone(), worker_tx.clone());
                let (abandoned, permits) = (worker_abandoned.clone(), permits.clone());
                running.spawn(async move {
                    while let Some(command) = work.recv().await {
                        if abandoned.load(std::sync::atomic::Ordering::Acquire) {
                            break;
                        }
                        let Ok(_permit) = permits.acquire().await else {
                            break;
                        };
                        agent.execute(command, &out).await;
                    }
                });
                lane
            });
            let _ = lane.send(command);
        }
        drop(lanes);
        while running.join_next().await.is_some() {}
    });
    let mut heartbeat = tokio::time::interval(Duration::from_secs(config.heartbeat_secs.max(1)));
    let outcome = loop {
        tokio::select! {
            _ = agent.relink.notified() => {
                break Err(anyhow::anyhow!("the LO was revoked: its commands are refused"));
            }
            message = inbound.message() => match message {
                Ok(Some(pb::LoCommand { op_id, body: Some(lo_command::Body::Inspect(mut question)) })) => {
                    // Answered at once, beside any operation under way.
                    question.request_id = op_id;
                    let (agent, tx) = (agent.clone(), tx.clone());
                    tokio::spawn(async move {
                        let answer = agent.inspect(&question).await;
                        let _ = tx.send(pb::EnMessage { body: Some(en_message::Body::Answer(answer)) }).await;
                    });
                }
                Ok(Some(command)) => { let _ = commands.send(command); }
                Ok(None) => break Err(anyhow::anyhow!("lo closed the stream")),
                Err(status) => break Err(status.into()),
            },
            _ = heartbeat.tick() => {
                let usage = crate::usage::sample();
                let beat = pb::EnMessage { body: Some(en_message::Body::Heartbeat(pb::Heartbeat {
                    running: agent.records.entries().len() as u64,
                    cpu_load_1m: usage.cpu_load_1m,
                    memory_used_bytes: usage.memory_used_bytes,
                    memory_total_bytes: usage.memory_total_bytes,
                })) };
                if tx.send(beat).await.is_err() { break Err(anyhow::anyhow!("outbound stream closed")); }
            }
            _ = eos_app_common::stopped(&mut stop) => break Ok(()),
        }
    };
    // Commands still queued are dropped (the LO sends what it still wants again), but those
    // being carried out run to their end: cut short between starting a workload and recording
    // it, one would leave a workload running that the next hello does not mention.
    abandoned.store(true, std::sync::atomic::Ordering::Release);
    agent
        .upstream
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take_if(|current| current.same_channel(&tx));
    drop(commands);
    let _ = worker.await;
    outcome
}

/// A policy granting `path` alone.
fn policy_of(path: &str) -> eos_domain::workload::WorkloadPolicy {
    eos_domain::workload::WorkloadPolicy {
        host_paths: vec![path.to_owned()],
        cluster_scoped: false,
        ..Default::default()
    }
}

#[cfg(test)]
mod workload_tests {
    use super::*;
    use crate::record::RunRecord;

    fn agent(tmp: &std::path::Path) -> Agent {
        let device = DeviceId::parse("s/n1").unwrap();
        let caps = crate::fingerprint::capabilities(&device, &[], &Default::default()).unwrap();
        Agent::new(
            device,
            caps,
            Vec::new(),
            RunRecord::open(tmp.join("state")).unwrap(),
            eos_adapter_registry::ArtifactCache::new(
                tmp.join("artifacts"),
                Default::default(),
                Vec::new(),
            ),
        )
        .protect(vec![tmp.display().to_string()])
    }

    fn oci(volumes: &[&str]) -> ComponentSpec {
        ComponentSpec {
            name: "web".into(),
            runtime: "oci".into(),
            repository: "oci://127.0.0.1:5000/eos-test/busybox".into(),
            revision: "1.0.0".into(),
            app_version: "1.0.0".into(),
            parameters: Default::default(),
            settings: serde_json::json!({"container": {"volumes": volumes}}),
            signatures: None,
            workload: None,
        }
    }

    /// A repository the EN does not fetch (a bare or `./` path, which the WASM driver would
    /// read wherever it leads) is refused, and a `file://` one only runs under the folders
    /// `en.toml` allows, handed to the driver as its links resolve.
    #[tokio::test]
    async fn only_repositories_the_en_fetches_reach_a_driver() {
        let tmp = tempfile::tempdir().unwrap();
        let allowed = tmp.path().join("modules");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::write(allowed.join("real.wat"), "(module)").unwrap();
        std::os::unix::fs::symlink(allowed.join("real.wat"), allowed.join("alias.wat")).unwrap();
        let agent = agent(tmp.path()).file_roots(vec![allowed.clone()]);
        let wasm = |repository: String| ComponentSpec {
            runtime: "wasm".into(),
            repository,
            settings: serde_json::json!({}),
            ..oci(&[])
        };
        for bare in ["./../../../etc/passwd", "/etc/passwd", "hello.wat"] {
            let refused = agent.runnable(&wasm(bare.into())).await.unwrap_err();
            assert!(
                refused
                    .to_string()
                    .contains("not a repository the EN fetches"),
                "{bare}: {refused}"
            );
        }
        let outside = agent
            .runnable(&wasm("file:///etc/passwd".into()))
            .await
            .unwrap_err();
        assert!(
            outside.to_string().contains("file_artifact_roots"),
            "{outside}"
        );
        let runs = agent
            .runnable(&wasm(format!(
                "file://{}",
                allowed.join("alias.wat").display()
            )))
            .await
            .unwrap();
        let real = std::fs::canonicalize(allowed.join("real.wat")).unwrap();
        assert_eq!(runs.repository, format!("file://{}", real.display()));
    }

    /// The LO's revocation time only ever moves later (an earlier answer, an impostor's,
    /// takes nothing back), and is kept across restarts.
    #[test]
    fn the_los_revocation_only_moves_later_and_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("lo-revoked-at");
        let first = agent(tmp.path()).lo_revocation_file(file.clone());
        first.lo_revoked("2026-12-08T10:00:00Z".into());
        first.lo_revoked("1970-01-01T00:00:00Z".into());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "2026-12-08T10:00:00Z"
        );
        first.lo_revoked("2026-12-09T10:00:00Z".into());
        let again = agent(&tmp.path().join("again")).lo_revocation_file(file.clone());
        assert_eq!(
            again.lo_revoked_at.read().unwrap().as_deref(),
            Some("2026-12-09T10:00:00Z")
        );
    }

    /// Whatever the desired state in Git says, the EN runs no host mount: not `/`, not the
    /// engine socket, not its own data folder, not a link that leads to one of them.
    #[test]
    fn host_mounts_are_refused_before_any_driver_sees_them() {
        let tmp = tempfile::tempdir().unwrap();
        let agent = agent(tmp.path());
        let link = tmp.path().join("innocent");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let inside = format!("{}/state:/s", tmp.path().display());
        let linked = format!("{}:/s", link.display());
        for volume in [
            "/:/host",
            "/var/run/docker.sock:/s",
            "/srv/data:/d",
            &inside,
            &linked,
        ] {
            let refused = agent.check_workload(&oci(&[volume])).unwrap_err();
            assert!(
                refused.to_string().contains("workload security policy"),
                "{volume}: {refused}"
            );
        }
        assert!(agent.check_workload(&oci(&["state:/state"])).is_ok());
    }

    /// A tenant's grant counts only within the device's ceiling, and the spec a driver gets
    /// carries what is left of it.
    #[test]
    fn a_grant_counts_within_the_device_ceiling_only() {
        use eos_domain::workload::WorkloadPolicy;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("srv/data");
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink("/etc", data.join("escape")).unwrap();
        let granted = WorkloadPolicy {
            host_paths: vec![data.display().to_string()],
            cluster_scoped: false,
            ..Default::default()
        };
        let mut spec = oci(&[&format!("{}:/d", data.display())]);
        spec.workload = Some(granted.clone());
        let strict_device = agent(&tmp.path().join("en"));
        let refused = strict_device.check_workload(&spec).unwrap_err();
        assert!(
            refused.to_string().contains("allows no host paths"),
            "{refused}"
        );
        let device = agent(&tmp.path().join("en")).ceiling(WorkloadPolicy {
            host_paths: vec![tmp.path().join("srv").display().to_string()],
            cluster_scoped: false,
            ..Default::default()
        });
        let runnable = device.check_workload(&spec).unwrap();
        assert_eq!(runnable.workload, Some(granted));
        let mut escaping = oci(&[&format!("{}/escape:/d", data.display())]);
        escaping.workload = spec.workload.clone();
        let refused = device.check_workload(&escaping).unwrap_err();
        assert!(refused.to_string().contains("/etc"), "{refused}");
    }
}
