//! The built-in `oci` runtime driver: each component is one container, run through the Docker
//! Engine API (bollard; Podman's Docker-compatible socket works the same). The image comes from
//! the component's `repository` (`oci://HOST/NAME`) and `revision` (the tag), pulled with the
//! registry's credentials when the engine lacks it. Margo parameters become environment
//! variables; ports, volumes, limits and a health check come from the component's
//! `x-eos-extensions.container` ([`eos_domain::container`]).
//!
//! Containers carry labels naming the EN (`eos.scope`), the deployment, the component and a
//! digest of the spec they were made from. Applying the same spec again, or recovering after an
//! EN restart, adopts the running container instead of recreating it; a different spec
//! replaces it. Containers outlive the EN, so the restart policy is the EN's supervisor's, not
//! the engine's (`restart: no`): one place restarts, counts and reports crashes.

pub mod compose;
pub mod images;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, HealthConfig, HealthStatusEnum, HostConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use eos_domain::container::{ContainerSettings, VolumeMount};
use eos_domain::state::ComponentSpec;
use eos_driver::{
    DriverError, DriverInfo, Fingerprint, Handle, Health, InstanceKey, RuntimeDriver, Stats,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How long `apply` watches a new container before calling it started.
pub const START_WINDOW: Duration = Duration::from_millis(500);
/// How long a container gets to stop on SIGTERM before it is killed.
pub const STOP_GRACE_SECS: i32 = 10;

pub(crate) const LABEL_SCOPE: &str = "eos.scope";
/// The variable NVIDIA's container runtime hands GPUs by; `void` hands none.
pub(crate) const NVIDIA_VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";

/// The security option every container of EOS runs with.
pub(crate) const NO_NEW_PRIVILEGES: &str = "no-new-privileges";

/// The engine's request for `gpus` of the node (what `docker run --gpus` asks).
pub(crate) fn gpu_request(gpus: eos_domain::container::Gpus) -> bollard::models::DeviceRequest {
    use eos_domain::container::Gpus;
    bollard::models::DeviceRequest {
        count: Some(match gpus {
            Gpus::All(_) => -1,
            Gpus::Count(n) => i64::from(n),
        }),
        capabilities: Some(vec![vec!["gpu".into()]]),
        ..Default::default()
    }
}
pub(crate) const LABEL_DEPLOYMENT: &str = "eos.deployment";
pub(crate) const LABEL_COMPONENT: &str = "eos.component";
pub(crate) const LABEL_SPEC: &str = "eos.spec";

/// A login for one registry host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
}

pub struct OciDriver {
    docker: Docker,
    /// Names this EN's containers: several ENs may share one engine.
    scope: String,
    /// Logins by registry host (`127.0.0.1:5000`, `registry.example.com`).
    logins: BTreeMap<String, RegistryLogin>,
    engine: String,
    /// The images components were applied with, shared with the compose driver.
    images: std::sync::Arc<images::ImageHistory>,
}

impl OciDriver {
    /// Connects to the engine at `socket` (a Unix socket path), agreeing on an API version both
    /// sides speak. Fails when no engine answers there: the EN then runs without this driver.
    pub async fn connect(
        socket: &str,
        scope: &str,
        logins: BTreeMap<String, RegistryLogin>,
    ) -> Result<Self, DriverError> {
        let unreachable = |e: EngineError| {
            DriverError::Other(format!("no container engine answers at {socket}: {e}"))
        };
        let docker = Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(unreachable)?
            .negotiate_version()
            .await
            .map_err(unreachable)?;
        let engine = engine_version(&docker).await.map_err(unreachable)?;
        Ok(Self {
            docker,
            scope: scope.to_owned(),
            logins,
            engine,
            images: Default::default(),
        })
    }

    /// Keeps the history of images used (for garbage collection) in the file at `path`, so that
    /// it outlives the EN process.
    pub fn with_image_history(mut self, path: std::path::PathBuf) -> Self {
        self.images = std::sync::Arc::new(images::ImageHistory::load(path));
        self
    }

    /// The `compose` driver on the same engine, unpacking archives under `root`.
    pub fn compose_driver(&self, root: std::path::PathBuf) -> compose::ComposeDriver {
        compose::ComposeDriver::new(self.docker.clone(), &self.scope, root, self.logins.clone())
            .with_images(self.images.clone())
    }

    /// The container a component runs in.
    pub fn container_name(&self, key: &InstanceKey) -> String {
        instance_name(&self.scope, key)
    }

    fn volume_name(&self, key: &InstanceKey, volume: &str) -> String {
        format!("{}-{}", self.container_name(key), sanitize(volume))
    }

    async fn ensure_image(&self, spec: &ComponentSpec, image: &str) -> Result<(), DriverError> {
        pull_if_missing(&self.docker, image, &self.logins)
            .await
            .map_err(|reason| DriverError::Fetch {
                repository: spec.repository.clone(),
                reason,
            })?;
        self.images.used(image);
        Ok(())
    }

    fn container_body(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        image: String,
        settings: &ContainerSettings,
        digest: &str,
    ) -> ContainerCreateBody {
        let mut env: Vec<String> = spec
            .parameters
            .iter()
            .chain(&settings.env)
            .filter(|(k, _)| settings.gpus.is_some() || k.as_str() != NVIDIA_VISIBLE_DEVICES)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if settings.gpus.is_none() {
            // An engine whose default runtime is NVIDIA's hands GPUs to any container whose
            // environment (or image) asks: no grant, no GPU.
            env.push(format!("{NVIDIA_VISIBLE_DEVICES}=void"));
        }
        let labels = HashMap::from([
            (LABEL_SCOPE.to_owned(), self.scope.clone()),
            (LABEL_DEPLOYMENT.to_owned(), key.deployment_id.clone()),
            (LABEL_COMPONENT.to_owned(), key.component.clone()),
            (LABEL_SPEC.to_owned(), digest.to_owned()),
        ]);
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in settings.port_mappings() {
            let port = format!("{}/{}", p.container, if p.udp { "udp" } else { "tcp" });
            bindings
                .entry(port)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: None,
                    host_port: Some(p.host.to_string()),
                });
        }
        let binds: Vec<String> = settings
            .volume_mounts()
            .into_iter()
            .map(|v| match v {
                VolumeMount::Named { name, target } => {
                    format!("{}:{target}", self.volume_name(key, &name))
                }
                VolumeMount::Host {
                    source,
                    target,
                    read_only,
                } => format!("{source}:{target}{}", if read_only { ":ro" } else { "" }),
            })
            .collect();
        let healthcheck = settings.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_owned())
                    .chain(h.command.iter().cloned())
                    .collect(),
            ),
            interval: Some(i64::from(h.interval_seconds) * 1_000_000_000),
            retries: Some(i64::from(h.retries)),
            ..Default::default()
        });
        ContainerCreateBody {
            image: Some(image),
            cmd: (!settings.command.is_empty()).then(|| settings.command.clone()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: Some(bindings.keys().cloned().collect()),
            healthcheck,
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                binds: Some(binds),
                memory: settings
                    .memory_bytes()
                    .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
                nano_cpus: settings.cpus.map(|c| (c * 1e9) as i64),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                // The engine's init as PID 1: SIGTERM stops any workload, zombies are reaped.
                init: Some(true),
                // The workload security policy's default: nothing gains privileges on exec.
                security_opt: Some(vec![NO_NEW_PRIVILEGES.to_owned()]),
                // Devices and GPUs only as the EN found them granted (checked before apply).
                devices: Some(
                    settings
                        .device_mappings()
                        .into_iter()
                        .map(|(host, container)| bollard::models::DeviceMapping {
                            path_on_host: Some(host),
                            path_in_container: Some(container),
                            cgroup_permissions: Some("rwm".into()),
                        })
                        .collect(),
                ),
                device_requests: settings.gpus.map(|gpus| vec![gpu_request(gpus)]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Why a container that ended did so: its status and its last lines of output.
    async fn why_ended(&self, key: &InstanceKey, code: i64) -> String {
        let tail = container_logs(&self.docker, &self.container_name(key), 5)
            .await
            .unwrap_or_default();
        if tail.is_empty() {
            format!("exited with status {code}")
        } else {
            format!(
                "exited with status {code}; last output: {}",
                tail.join(" | ")
            )
        }
    }
}

/// How a container stands: running (or restarting, or paused), failed (unhealthy, or never
/// started), exited with its status, or unknown to the engine.
/// The engine's name and version as it reports them (`Docker Engine 26.1.5 (API 1.45)`).
pub(crate) async fn engine_version(docker: &Docker) -> Result<String, EngineError> {
    let version = docker.version().await?;
    Ok(format!(
        "{} {} (API {})",
        version
            .platform
            .as_ref()
            .map(|p| p.name.clone())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "container engine".into()),
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default()
    ))
}

/// Whether the engine answers now, and as which version.
pub(crate) async fn engine_fingerprint(docker: &Docker, prefix: &str) -> Fingerprint {
    match engine_version(docker).await {
        Ok(version) => Fingerprint::Ready {
            version: format!("{prefix}{version}"),
        },
        Err(e) => Fingerprint::Unavailable {
            reason: format!("the container engine does not answer: {e}"),
        },
    }
}

pub(crate) async fn container_health(docker: &Docker, name: &str) -> Health {
    let Ok(container) = docker.inspect_container(name, None).await else {
        return Health::Unknown;
    };
    let Some(state) = container.state else {
        return Health::Unknown;
    };
    let unhealthy = state
        .health
        .as_ref()
        .is_some_and(|h| h.status == Some(HealthStatusEnum::UNHEALTHY));
    match state.status {
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::RESTARTING)
            if unhealthy =>
        {
            let last = state
                .health
                .and_then(|h| h.log)
                .and_then(|l| l.last().cloned())
                .and_then(|r| r.output)
                .unwrap_or_default();
            Health::Failed {
                reason: format!("unhealthy: {}", last.trim()),
            }
        }
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::RESTARTING
            | ContainerStateStatusEnum::PAUSED,
        ) => Health::Running,
        Some(ContainerStateStatusEnum::CREATED) => Health::Failed {
            reason: "created but never started".into(),
        },
        _ => Health::Exited {
            code: i32::try_from(state.exit_code.unwrap_or(-1)).unwrap_or(-1),
        },
    }
}

/// Stops a container (SIGTERM, then SIGKILL after the grace) and removes it with its anonymous
/// volumes; one that is not there is fine.
pub(crate) async fn remove_container(docker: &Docker, name: &str) -> Result<(), DriverError> {
    let stop = StopContainerOptionsBuilder::default()
        .t(STOP_GRACE_SECS)
        .build();
    let _ = docker.stop_container(name, Some(stop)).await;
    let remove = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(remove)).await {
        Ok(()) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Ok(()),
        Err(e) => Err(DriverError::Other(format!(
            "cannot remove container {name}: {}",
            engine_message(&e)
        ))),
    }
}

/// One container's resource use: memory now, and CPU over the engine's last sampling second.
pub(crate) async fn container_stats(docker: &Docker, name: &str) -> Result<Stats, DriverError> {
    let first = stats_sample(docker, name).await?;
    let Some(first) = first else {
        return Ok(Stats::default());
    };
    // Docker's one-shot sample carries the previous one (`precpu_stats`); Podman's does not,
    // so a second sample a moment later gives the interval.
    let cpu = match cpu_between(first.precpu_stats.as_ref(), first.cpu_stats.as_ref()) {
        Some(cpu) => Some(cpu),
        None => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stats_sample(docker, name)
                .await?
                .and_then(|second| cpu_between(first.cpu_stats.as_ref(), second.cpu_stats.as_ref()))
        }
    };
    Ok(Stats {
        cpu_percent: cpu,
        memory_bytes: first.memory_stats.as_ref().and_then(|m| m.usage),
    })
}

async fn stats_sample(
    docker: &Docker,
    name: &str,
) -> Result<Option<bollard::models::ContainerStatsResponse>, DriverError> {
    let options = StatsOptionsBuilder::default().stream(false).build();
    let mut samples = docker.stats(name, Some(options));
    samples
        .next()
        .await
        .transpose()
        .map_err(|e| DriverError::Other(engine_message(&e)))
}

/// Percent of one core used between two CPU readings; `None` when either is missing or no
/// time passed between them.
fn cpu_between(
    before: Option<&bollard::models::ContainerCpuStats>,
    now: Option<&bollard::models::ContainerCpuStats>,
) -> Option<f64> {
    let (before, now) = (before?, now?);
    let used = now.cpu_usage.as_ref()?.total_usage? as f64
        - before.cpu_usage.as_ref()?.total_usage? as f64;
    let system = now.system_cpu_usage? as f64 - before.system_cpu_usage? as f64;
    let cpus = f64::from(now.online_cpus.unwrap_or(1));
    (system > 0.0 && before.system_cpu_usage? > 0).then(|| used.max(0.0) / system * cpus * 100.0)
}

/// The last `lines` lines a container wrote (stdout and stderr).
pub(crate) async fn container_logs(
    docker: &Docker,
    name: &str,
    lines: usize,
) -> Result<Vec<String>, DriverError> {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(name, Some(options));
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => text.push_str(&String::from_utf8_lossy(&chunk.into_bytes())),
            Err(e) if status_of(&e) == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(DriverError::Other(engine_message(&e))),
        }
    }
    Ok(text.lines().map(str::to_owned).collect())
}

/// `eos-<scope>-<deployment>-<component>`: what the engine's objects of one component (its
/// container, or a compose component's containers, networks and volumes) are named after.
pub(crate) fn instance_name(scope: &str, key: &InstanceKey) -> String {
    format!(
        "eos-{}-{}-{}",
        sanitize(scope),
        sanitize(&key.deployment_id),
        sanitize(&key.component)
    )
}

/// Pulls `image` unless the engine has it, with the login for its registry host.
pub(crate) async fn pull_if_missing(
    docker: &Docker,
    image: &str,
    logins: &BTreeMap<String, RegistryLogin>,
) -> Result<(), String> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let host = image.split('/').next().unwrap_or_default();
    let credentials = logins.get(host).map(|l| DockerCredentials {
        username: Some(l.username.clone()),
        password: Some(l.password.clone()),
        serveraddress: Some(host.to_owned()),
        ..Default::default()
    });
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut pull = docker.create_image(Some(options), None, credentials);
    while let Some(progress) = pull.next().await {
        progress.map_err(|e| engine_message(&e))?;
    }
    Ok(())
}

/// The image reference of a component: `oci://HOST/NAME` + `revision` as the tag.
pub fn image_of(spec: &ComponentSpec) -> Result<String, DriverError> {
    spec.oci_reference().ok_or_else(|| DriverError::Fetch {
        repository: spec.repository.clone(),
        reason: "an oci component's repository is oci://HOST/NAME".into(),
    })
}

/// A digest of everything that makes a container what it is.
pub(crate) fn spec_digest(spec: &ComponentSpec) -> String {
    let json = serde_json::to_vec(spec).expect("a spec serializes");
    hex::encode(&Sha256::digest(&json)[..12])
}

fn settings_of(spec: &ComponentSpec) -> Result<ContainerSettings, DriverError> {
    match spec.settings.get("container") {
        None => Ok(ContainerSettings::default()),
        Some(value) => ContainerSettings::from_value(value).map_err(|problems| {
            let text: Vec<String> = problems
                .into_iter()
                .map(|(field, message)| format!("container.{field}: {message}"))
                .collect();
            DriverError::Start(format!("invalid container settings: {}", text.join("; ")))
        }),
    }
}

/// Characters Docker accepts in names; anything else becomes `-`.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub(crate) fn status_of(e: &EngineError) -> Option<u16> {
    match e {
        EngineError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub(crate) fn engine_message(e: &EngineError) -> String {
    match e {
        EngineError::DockerResponseServerError { message, .. } => message.clone(),
        EngineError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn handle_of(name: &str, id: &str) -> Handle {
    Handle {
        driver: "oci".into(),
        data: serde_json::json!({"container": name, "id": id}),
    }
}

#[async_trait::async_trait]
impl RuntimeDriver for OciDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            runtime: "oci".into(),
            source: "built-in".into(),
            version: self.engine.clone(),
            deployment_types: vec!["custom".into()],
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        engine_fingerprint(&self.docker, "").await
    }

    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        let settings = settings_of(spec)?;
        let image = image_of(spec)?;
        let name = self.container_name(key);
        let digest = spec_digest(spec);
        match self.docker.inspect_container(&name, None).await {
            Ok(existing) => {
                let same = existing
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(LABEL_SPEC))
                    == Some(&digest);
                let running = existing
                    .state
                    .as_ref()
                    .and_then(|s| s.running)
                    .unwrap_or(false);
                let id = existing.id.unwrap_or_default();
                if same && running {
                    return Ok(handle_of(&name, &id));
                }
                // Made from another spec, or ended: it goes, and a fresh one comes.
                remove_container(&self.docker, &name).await?;
            }
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(DriverError::Other(engine_message(&e))),
        }
        self.ensure_image(spec, &image).await?;
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let body = self.container_body(key, spec, image, &settings, &digest);
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| {
                DriverError::Start(format!("cannot create {name}: {}", engine_message(&e)))
            })?;
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|e| {
                DriverError::Start(format!("cannot start {name}: {}", engine_message(&e)))
            })?;
        tokio::time::sleep(START_WINDOW).await;
        match self.inspect(key).await {
            Health::Running => Ok(handle_of(&name, &created.id)),
            Health::Exited { code } => Err(DriverError::Start(
                self.why_ended(key, i64::from(code)).await,
            )),
            Health::Failed { reason } => Err(DriverError::Start(reason)),
            Health::Unknown => Err(DriverError::Start(format!("{name} vanished after start"))),
        }
    }

    async fn inspect(&self, key: &InstanceKey) -> Health {
        container_health(&self.docker, &self.container_name(key)).await
    }

    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        let name = self.container_name(key);
        // The named volumes it mounted go with it: their names are in its binds.
        let volumes: Vec<String> = match self.docker.inspect_container(&name, None).await {
            Ok(c) => c
                .host_config
                .and_then(|h| h.binds)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|b| b.split(':').next().map(str::to_owned))
                .filter(|source| source.starts_with(&format!("{name}-")))
                .collect(),
            Err(_) => Vec::new(),
        };
        remove_container(&self.docker, &name).await?;
        for volume in volumes {
            if let Err(e) = self
                .docker
                .remove_volume(
                    &volume,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
                && status_of(&e) != Some(404)
            {
                return Err(DriverError::Other(format!(
                    "cannot remove volume {volume}: {}",
                    engine_message(&e)
                )));
            }
        }
        Ok(())
    }

    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        _handle: &Handle,
    ) -> Result<Handle, DriverError> {
        // A running container made from this spec is adopted as it is; anything else is made
        // good by applying.
        self.apply(key, spec).await
    }

    async fn stats(&self, key: &InstanceKey) -> Result<Stats, DriverError> {
        container_stats(&self.docker, &self.container_name(key)).await
    }

    async fn collect_garbage(&self, keep: usize) -> Result<Vec<String>, DriverError> {
        self.images
            .collect(&self.docker, keep)
            .await
            .map_err(DriverError::Other)
    }

    async fn logs(&self, key: &InstanceKey, lines: usize) -> Result<Vec<String>, DriverError> {
        container_logs(&self.docker, &self.container_name(key), lines).await
    }

    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_SCOPE}={}", self.scope)],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| DriverError::Other(engine_message(&e)))?;
        let mut removed = Vec::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let key = InstanceKey {
                deployment_id: labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
                component: labels.get(LABEL_COMPONENT).cloned().unwrap_or_default(),
            };
            if !keep.contains(&key) {
                self.remove(&key).await?;
                removed.push(key);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(repository: &str, revision: &str) -> ComponentSpec {
        ComponentSpec {
            name: "web".into(),
            runtime: "oci".into(),
            repository: repository.into(),
            revision: revision.into(),
            app_version: "1.0.0".into(),
            parameters: Default::default(),
            settings: Default::default(),
            signatures: None,
            workload: None,
        }
    }

    #[test]
    fn the_revision_is_the_tag_unless_the_repository_has_one() {
        let image = |r, v| image_of(&spec(r, v)).unwrap();
        assert_eq!(
            image("oci://127.0.0.1:5000/eos/web", "1.0.0"),
            "127.0.0.1:5000/eos/web:1.0.0"
        );
        assert_eq!(image("oci://registry/web:2", "1.0.0"), "registry/web:2");
        assert_eq!(
            image("oci://registry/web@sha256:ab", "1.0.0"),
            "registry/web@sha256:ab"
        );
        assert!(matches!(
            image_of(&spec("file:///x", "1")),
            Err(DriverError::Fetch { .. })
        ));
    }

    #[test]
    fn names_keep_to_what_docker_accepts_and_specs_differ_by_digest() {
        assert_eq!(sanitize("site-1/node 1"), "site-1-node-1");
        let a = spec("oci://r/web", "1.0.0");
        let mut b = a.clone();
        b.parameters.insert("MODE".into(), "x".into());
        assert_ne!(spec_digest(&a), spec_digest(&b));
        assert_eq!(spec_digest(&a), spec_digest(&a.clone()));
    }
}
