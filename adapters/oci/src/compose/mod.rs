//! The built-in `compose` runtime driver: a Margo compose component (a tar.gz archive holding one
//! folder with `compose.yaml`, pulled by the EN from its registry) run through the Docker Engine
//! API, with no compose binary and no Python on the device. The archive is checked before it is
//! unpacked (one top folder, no absolute paths, no `..`, no links leaving it, no setuid bits).
//! `${NAME}` and `${NAME:-default}` in `compose.yaml` take Margo parameters, which also become
//! every service's environment. Each network the file declares, and `default`, is the
//! component's own; services reach each other by name on a network they share. Services start
//! in `depends_on` order, waiting for health where a dependency asks for `service_healthy`.
//! Reading the file is `file`, checking and unpacking the archive is `archive`.

use crate::{
    LABEL_COMPONENT, LABEL_DEPLOYMENT, LABEL_SCOPE, LABEL_SPEC, engine_message, sanitize,
    spec_digest, status_of,
};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, ListContainersOptionsBuilder};
use eos_domain::state::ComponentSpec;
use eos_driver::{
    DriverError, DriverInfo, Fingerprint, Handle, Health, InstanceKey, RuntimeDriver, Stats,
};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod archive;
mod file;

pub use archive::{MAX_ENTRIES, MAX_UNPACKED_BYTES, unpack};
pub use file::*;

use archive::inside;
use file::{compose_memory, duration_ns};

const LABEL_SERVICE: &str = "eos.service";
/// The label on each named volume the driver makes: the project (component) it belongs to, so
/// removing a component removes its volumes and no sibling's whose name shares its prefix.
const LABEL_PROJECT: &str = "eos.project";
/// How long `apply` watches the services before calling them started.
pub const START_WINDOW: Duration = Duration::from_millis(700);
/// How long a dependency may take to become healthy.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

pub struct ComposeDriver {
    docker: Docker,
    scope: String,
    root: PathBuf,
    logins: BTreeMap<String, crate::RegistryLogin>,
    /// The images services were started from, shared with the oci driver of the same engine.
    images: std::sync::Arc<crate::images::ImageHistory>,
    /// Verifies the images services name when the component's signature policy requires it.
    verifier: Option<std::sync::Arc<dyn eos_driver::ImageVerifier>>,
}

impl ComposeDriver {
    /// A driver on `docker`, labelling its containers with `scope`, unpacking archives under
    /// `root`.
    pub fn new(
        docker: Docker,
        scope: &str,
        root: PathBuf,
        logins: BTreeMap<String, crate::RegistryLogin>,
    ) -> Self {
        Self {
            docker,
            scope: scope.to_owned(),
            root,
            logins,
            images: Default::default(),
            verifier: None,
        }
    }

    /// Verifies the images services name with `verifier` when a component's signature policy
    /// requires signatures (without one, such a component is refused).
    pub fn with_verifier(
        mut self,
        verifier: std::sync::Arc<dyn eos_driver::ImageVerifier>,
    ) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The image each of `services` runs: as named, or under a signature policy the reference
    /// pinned to the digest that verified (an unsigned image refuses the component).
    async fn images_to_run(
        &self,
        spec: &ComponentSpec,
        services: &[&str],
        file: &ComposeFile,
    ) -> Result<BTreeMap<String, String>, DriverError> {
        let mut images = BTreeMap::new();
        let policy = spec.signatures.as_ref().filter(|p| p.required);
        for name in services {
            let image = file.services[*name].image.clone();
            let run = match policy {
                None => image,
                Some(policy) => {
                    let verifier = self.verifier.as_ref().ok_or_else(|| {
                        DriverError::Other(format!(
                            "refused by the tenant's signature policy: service {name}: this EN \
                             cannot verify images; nothing was started"
                        ))
                    })?;
                    verifier
                        .verify(&image, &policy.public_keys)
                        .await
                        .map_err(|why| {
                            DriverError::Other(format!(
                                "refused by the tenant's signature policy: service {name}: \
                                 {why}; nothing was started"
                            ))
                        })?
                }
            };
            images.insert((*name).to_owned(), run);
        }
        Ok(images)
    }

    /// Records the images services start from in `images` (the oci driver's history).
    pub fn with_images(mut self, images: std::sync::Arc<crate::images::ImageHistory>) -> Self {
        self.images = images;
        self
    }

    /// The prefix of every name this component's containers, network and volumes get.
    pub fn project(&self, key: &InstanceKey) -> String {
        crate::instance_name(&self.scope, key)
    }

    /// The engine's name of the component's network `network` (`default` is the project).
    fn network_name(&self, key: &InstanceKey, network: &str) -> String {
        if network == "default" {
            self.project(key)
        } else {
            format!("{}-net-{}", self.project(key), sanitize(network))
        }
    }

    /// The engine filter for what carries this component's labels.
    fn component_filter(&self, key: &InstanceKey) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_SCOPE}={}", self.scope),
                format!("{LABEL_DEPLOYMENT}={}", key.deployment_id),
                format!("{LABEL_COMPONENT}={}", key.component),
            ],
        )])
    }

    /// The component's containers: their service, name and spec digest.
    async fn containers(&self, key: &InstanceKey) -> Result<Vec<ContainerInfo>, DriverError> {
        let filters = self.component_filter(key);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| DriverError::Other(engine_message(&e)))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                ContainerInfo {
                    service: labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.first().cloned())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_owned(),
                    digest: labels.get(LABEL_SPEC).cloned().unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn remove_all(&self, key: &InstanceKey) -> Result<(), DriverError> {
        for c in self.containers(key).await? {
            crate::remove_container(&self.docker, &c.name).await?;
        }
        let filters = self.component_filter(key);
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| DriverError::Other(engine_message(&e)))?;
        for n in networks.into_iter().filter_map(|n| n.name) {
            if let Err(e) = self.docker.remove_network(&n).await
                && status_of(&e) != Some(404)
            {
                return Err(DriverError::Other(format!(
                    "cannot remove network {n}: {}",
                    engine_message(&e)
                )));
            }
        }
        Ok(())
    }

    async fn healthy(&self, name: &str) -> bool {
        self.docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.health)
            .is_some_and(|h| h.status == Some(HealthStatusEnum::HEALTHY))
    }

    /// A service's last lines of output, on one line.
    async fn last_lines(&self, name: &str) -> String {
        crate::container_logs(&self.docker, name, 5)
            .await
            .unwrap_or_default()
            .join(" | ")
    }

    fn body(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        folder: &Path,
        digest: &str,
        plan: ServicePlan<'_>,
    ) -> Result<ContainerCreateBody, String> {
        let ServicePlan {
            name: service_name,
            service,
            network,
        } = plan;
        let project = self.project(key);
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        let files = match &service.env_file {
            None => Vec::new(),
            Some(OneOrMany::One(f)) => vec![f.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        for f in files {
            let path = inside(folder, &f)
                .ok_or_else(|| format!("service {service_name}: env_file {f} leaves the folder"))?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("service {service_name}: env_file {f}: {e}"))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if let Some((k, v)) = line.split_once('=') {
                    env.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        match &service.environment {
            None => {}
            Some(Environment::Map(m)) => {
                for (k, v) in m {
                    let v = match v {
                        None => String::new(),
                        Some(serde_yaml::Value::String(s)) => s.clone(),
                        Some(other) => serde_yaml::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    };
                    env.insert(k.clone(), v);
                }
            }
            Some(Environment::List(l)) => {
                for item in l {
                    let (k, v) = item.split_once('=').unwrap_or((item, ""));
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        for (k, v) in &spec.parameters {
            env.insert(k.clone(), v.clone());
        }
        // Compose services get no GPU: not even through NVIDIA's runtime and an image's
        // environment.
        env.insert(crate::NVIDIA_VISIBLE_DEVICES.to_owned(), "void".to_owned());
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &service.ports {
            let text = match p {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!(
                        "service {service_name}: ports take the short form (\"8080:80\"), not {other:?}"
                    ));
                }
            };
            let (ports, proto) = text.rsplit_once('/').unwrap_or((&text, "tcp"));
            let (host, container) = match ports.rsplit_once(':') {
                Some((h, c)) => (Some(h.rsplit(':').next().unwrap_or(h).to_owned()), c),
                None => (None, ports),
            };
            let container: u16 = container
                .parse()
                .map_err(|_| format!("service {service_name}: bad port {text:?}"))?;
            bindings
                .entry(format!("{container}/{proto}"))
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: None,
                    host_port: host,
                });
        }
        let mut binds = Vec::new();
        for v in &service.volumes {
            let parts: Vec<&str> = v.splitn(3, ':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [s, t] => (*s, *t, None),
                [s, t, m] => (*s, *t, Some(*m)),
                _ => {
                    return Err(format!(
                        "service {service_name}: volume {v:?} is not SOURCE:TARGET"
                    ));
                }
            };
            let source = if source.starts_with("./") || source.starts_with("../") {
                inside(folder, source)
                    .ok_or_else(|| format!("service {service_name}: {source} leaves the folder"))?
                    .display()
                    .to_string()
            } else if source.starts_with('/') {
                // Host paths under the workload security policy the EN narrowed to its own
                // ceiling (none: the strict default), whatever the desired state in Git says:
                // judged as written and as its links resolve, and the engine is handed the
                // resolved path (a link planted under a granted folder leads nowhere else).
                let policy = spec.workload.clone().unwrap_or_default();
                let refuse = |why: String| {
                    format!(
                        "service {service_name}: volume {v:?}: refused by the workload \
                         security policy: {why}"
                    )
                };
                policy.allows_host_path(source, &[]).map_err(refuse)?;
                match std::fs::canonicalize(source) {
                    Ok(resolved) => {
                        let resolved = resolved.display().to_string();
                        policy.allows_host_path(&resolved, &[]).map_err(refuse)?;
                        resolved
                    }
                    Err(_) => source.to_owned(),
                }
            } else {
                format!("{project}-{}", sanitize(source))
            };
            binds.push(match mode {
                Some(m) => format!("{source}:{target}:{m}"),
                None => format!("{source}:{target}"),
            });
        }
        // Devices only where the policy the EN narrowed grants them, judged as written and as
        // their links resolve.
        let mut devices = Vec::new();
        for d in &service.devices {
            let refuse = |why: String| {
                format!(
                    "service {service_name}: device {d:?}: refused by the workload security \
                     policy: {why}"
                )
            };
            let (host, container) = eos_domain::container::parse_device(d)
                .map_err(|e| format!("service {service_name}: {e}"))?;
            let policy = spec.workload.clone().unwrap_or_default();
            policy.allows_device(&host).map_err(refuse)?;
            if let Ok(resolved) = std::fs::canonicalize(&host) {
                policy
                    .allows_device(&resolved.display().to_string())
                    .map_err(refuse)?;
            }
            devices.push(bollard::models::DeviceMapping {
                path_on_host: Some(host),
                path_in_container: Some(container),
                cgroup_permissions: Some("rwm".into()),
            });
        }
        let limits = service
            .deploy
            .as_ref()
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.limits.as_ref());
        let memory = match limits.and_then(|l| l.memory.as_deref()) {
            None => None,
            Some(m) => Some(
                compose_memory(m).ok_or_else(|| format!("service {service_name}: memory {m:?}"))?,
            ),
        };
        let nano_cpus = limits
            .and_then(|l| l.cpus.as_ref())
            .and_then(|c| match c {
                serde_yaml::Value::String(s) => s.parse::<f64>().ok(),
                serde_yaml::Value::Number(n) => n.as_f64(),
                _ => None,
            })
            .map(|c| (c * 1e9) as i64);
        let healthcheck = service.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(match &h.test {
                Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                Command::Exec(v)
                    if v.first()
                        .is_some_and(|f| f.starts_with("CMD") || f == "NONE") =>
                {
                    v.clone()
                }
                Command::Exec(v) => std::iter::once("CMD".to_owned()).chain(v.clone()).collect(),
            }),
            interval: h.interval.as_deref().and_then(duration_ns),
            timeout: h.timeout.as_deref().and_then(duration_ns),
            retries: h.retries,
            start_period: h.start_period.as_deref().and_then(duration_ns),
            ..Default::default()
        });
        let mut labels: HashMap<String, String> = service.labels.clone().into_iter().collect();
        labels.extend([
            (LABEL_SCOPE.to_owned(), self.scope.clone()),
            (LABEL_DEPLOYMENT.to_owned(), key.deployment_id.clone()),
            (LABEL_COMPONENT.to_owned(), key.component.clone()),
            (LABEL_SERVICE.to_owned(), service_name.to_owned()),
            (LABEL_SPEC.to_owned(), digest.to_owned()),
        ]);
        Ok(ContainerCreateBody {
            image: Some(service.image.clone()),
            cmd: service.command.as_ref().map(Command::words),
            entrypoint: service.entrypoint.as_ref().map(Command::words),
            env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: service.working_dir.clone(),
            user: service.user.clone(),
            labels: Some(labels),
            exposed_ports: Some(bindings.keys().cloned().collect()),
            healthcheck,
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                binds: Some(binds),
                memory,
                nano_cpus,
                init: Some(true),
                security_opt: Some(vec![crate::NO_NEW_PRIVILEGES.to_owned()]),
                devices: Some(devices),
                network_mode: Some(network.to_owned()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_owned(),
                    EndpointSettings {
                        aliases: Some(vec![service_name.to_owned()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        })
    }
}

/// One service as it is about to be created: its name, its part of `compose.yaml`, and the
/// network it is created on (it joins any others after).
struct ServicePlan<'a> {
    name: &'a str,
    service: &'a Service,
    network: &'a str,
}

struct ContainerInfo {
    service: String,
    name: String,
    digest: String,
}

/// The archive of a runnable spec (`file://`; the EN pulls `oci://` ones first).
fn archive_of(spec: &ComponentSpec) -> Result<PathBuf, DriverError> {
    spec.repository
        .strip_prefix("file://")
        .map(PathBuf::from)
        .ok_or_else(|| DriverError::Fetch {
            repository: spec.repository.clone(),
            reason: "the compose driver runs local archives: the EN pulls oci:// ones into its \
                     artifact cache first (packageLocation downloads are not supported)"
                .into(),
        })
}

#[async_trait::async_trait]
impl RuntimeDriver for ComposeDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            runtime: "compose".into(),
            source: "built-in".into(),
            version: "compose through the Docker Engine API".into(),
            deployment_types: vec!["compose".into()],
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        crate::engine_fingerprint(&self.docker, "compose on ").await
    }

    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        let digest = spec_digest(spec);
        let project = self.project(key);
        let handle = Handle {
            driver: "compose".into(),
            data: serde_json::json!({"project": project, "spec": digest}),
        };
        let existing = self.containers(key).await?;
        if !existing.is_empty() && existing.iter().all(|c| c.digest == digest) {
            let mut all_running = true;
            for c in &existing {
                all_running &=
                    crate::container_health(&self.docker, &c.name).await == Health::Running;
            }
            if all_running {
                return Ok(handle);
            }
        }
        self.remove_all(key).await?;
        let archive = archive_of(spec)?;
        let folder = unpack(&archive, &self.root.join(&project).join(&digest))
            .map_err(DriverError::Start)?;
        let text = std::fs::read_to_string(folder.join("compose.yaml"))
            .map_err(|e| DriverError::Start(format!("compose.yaml: {e}")))?;
        let file = parse(&text, &spec.parameters).map_err(DriverError::Start)?;
        let order = start_order(&file).map_err(DriverError::Start)?;
        // Every service is planned, and anything refused (a host folder, a file leaving the
        // archive, an undeclared network) is refused, before the engine is asked to make
        // anything: a refused component leaves no network or volume behind.
        let mut plans = Vec::with_capacity(order.len());
        for name in &order {
            let service = &file.services[name];
            let networks: Vec<String> = service_networks(&file, name)
                .map_err(DriverError::Start)?
                .iter()
                .map(|n| self.network_name(key, n))
                .collect();
            let body = self
                .body(
                    key,
                    spec,
                    &folder,
                    &digest,
                    ServicePlan {
                        name,
                        service,
                        network: &networks[0],
                    },
                )
                .map_err(DriverError::Start)?;
            plans.push((name, service, networks, body));
        }
        let services: Vec<&str> = order.iter().map(String::as_str).collect();
        let images = self.images_to_run(spec, &services, &file).await?;
        for net in std::iter::once("default").chain(file.networks.keys().map(String::as_str)) {
            let name = self.network_name(key, net);
            let network = NetworkCreateRequest {
                name: name.clone(),
                labels: Some(HashMap::from([
                    (LABEL_SCOPE.to_owned(), self.scope.clone()),
                    (LABEL_DEPLOYMENT.to_owned(), key.deployment_id.clone()),
                    (LABEL_COMPONENT.to_owned(), key.component.clone()),
                ])),
                ..Default::default()
            };
            self.docker.create_network(network).await.map_err(|e| {
                DriverError::Start(format!("network {net} ({name}): {}", engine_message(&e)))
            })?;
        }
        for (name, service, networks, mut body) in plans {
            let image = images[name.as_str()].clone();
            body.image = Some(image.clone());
            if let Some(DependsOn::Map(deps)) = &service.depends_on {
                for (dep, d) in deps {
                    if d.condition.as_deref() == Some("service_healthy") {
                        let dep_name = format!("{project}-{}", sanitize(dep));
                        let started = std::time::Instant::now();
                        while !self.healthy(&dep_name).await {
                            if started.elapsed() > HEALTHY_WITHIN {
                                return Err(DriverError::Start(format!(
                                    "service {dep} did not become healthy within {HEALTHY_WITHIN:?}, so {name} cannot start"
                                )));
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                }
            }
            // Named volumes are made here, labelled with their project (the engine would make
            // them unlabelled on first use).
            let binds = body.host_config.as_ref().and_then(|h| h.binds.clone());
            for bind in binds.into_iter().flatten() {
                let source = bind.split(':').next().unwrap_or_default();
                if source.is_empty() || source.starts_with('/') {
                    continue;
                }
                let request = bollard::models::VolumeCreateRequest {
                    name: Some(source.to_owned()),
                    labels: Some(HashMap::from([(LABEL_PROJECT.to_owned(), project.clone())])),
                    ..Default::default()
                };
                self.docker.create_volume(request).await.map_err(|e| {
                    DriverError::Start(format!(
                        "service {name}: volume {source}: {}",
                        engine_message(&e)
                    ))
                })?;
            }
            let container = format!("{project}-{}", sanitize(name));
            crate::pull_if_missing(&self.docker, &image, &self.logins)
                .await
                .map_err(|reason| DriverError::Fetch {
                    repository: image.clone(),
                    reason,
                })?;
            self.images.used(&image);
            let options = CreateContainerOptionsBuilder::default()
                .name(&container)
                .build();
            self.docker
                .create_container(Some(options), body)
                .await
                .map_err(|e| {
                    DriverError::Start(format!("service {name}: {}", engine_message(&e)))
                })?;
            for network in &networks[1..] {
                let join = bollard::models::NetworkConnectRequest {
                    container: container.clone(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(vec![name.clone()]),
                        ..Default::default()
                    }),
                };
                self.docker
                    .connect_network(network, join)
                    .await
                    .map_err(|e| {
                        DriverError::Start(format!(
                            "service {name} joining {network}: {}",
                            engine_message(&e)
                        ))
                    })?;
            }
            self.docker
                .start_container(&container, None)
                .await
                .map_err(|e| {
                    DriverError::Start(format!("service {name}: {}", engine_message(&e)))
                })?;
        }
        tokio::time::sleep(START_WINDOW).await;
        for name in &order {
            let container = format!("{project}-{}", sanitize(name));
            match crate::container_health(&self.docker, &container).await {
                Health::Running => {}
                Health::Exited { code } => {
                    return Err(DriverError::Start(format!(
                        "service {name} exited with status {code}; last output: {}",
                        self.last_lines(&container).await
                    )));
                }
                Health::Failed { reason } => {
                    return Err(DriverError::Start(format!("service {name}: {reason}")));
                }
                Health::Unknown => {
                    return Err(DriverError::Start(format!("service {name} vanished")));
                }
            }
        }
        Ok(handle)
    }

    async fn inspect(&self, key: &InstanceKey) -> Health {
        let Ok(containers) = self.containers(key).await else {
            return Health::Unknown;
        };
        if containers.is_empty() {
            return Health::Unknown;
        }
        for c in &containers {
            match crate::container_health(&self.docker, &c.name).await {
                Health::Running => {}
                Health::Exited { code } if code != 0 => {
                    return Health::Failed {
                        reason: format!("service {} exited with status {code}", c.service),
                    };
                }
                Health::Exited { code } => return Health::Exited { code },
                Health::Failed { reason } => {
                    return Health::Failed {
                        reason: format!("service {}: {reason}", c.service),
                    };
                }
                Health::Unknown => return Health::Unknown,
            }
        }
        Health::Running
    }

    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        let project = self.project(key);
        // Named volumes of the component: those labelled with its project.
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_PROJECT}={project}")],
        )]);
        let volumes = self
            .docker
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map(|v| v.volumes.unwrap_or_default())
            .unwrap_or_default();
        self.remove_all(key).await?;
        for v in volumes {
            let _ = self
                .docker
                .remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
        let folder = self.root.join(&project);
        if folder.exists() {
            std::fs::remove_dir_all(&folder)
                .map_err(|e| DriverError::Other(format!("{}: {e}", folder.display())))?;
        }
        Ok(())
    }

    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        _handle: &Handle,
    ) -> Result<Handle, DriverError> {
        self.apply(key, spec).await
    }

    async fn collect_garbage(&self, keep: usize) -> Result<Vec<String>, DriverError> {
        self.images
            .collect(&self.docker, keep)
            .await
            .map_err(DriverError::Other)
    }

    async fn stats(&self, key: &InstanceKey) -> Result<Stats, DriverError> {
        let containers = self.containers(key).await?;
        let samples = futures::future::join_all(
            containers
                .iter()
                .map(|c| crate::container_stats(&self.docker, &c.name)),
        )
        .await;
        let mut total = Stats::default();
        for s in samples {
            let s = s?;
            if let Some(cpu) = s.cpu_percent {
                *total.cpu_percent.get_or_insert(0.0) += cpu;
            }
            if let Some(m) = s.memory_bytes {
                *total.memory_bytes.get_or_insert(0) += m;
            }
        }
        Ok(total)
    }

    /// Every service's last lines, each line led by its service's name.
    async fn logs(&self, key: &InstanceKey, lines: usize) -> Result<Vec<String>, DriverError> {
        let mut out = Vec::new();
        for c in self.containers(key).await? {
            for line in crate::container_logs(&self.docker, &c.name, lines).await? {
                out.push(format!("{} | {line}", c.service));
            }
        }
        Ok(out)
    }

    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_SCOPE}={}", self.scope),
                LABEL_SERVICE.to_owned(),
            ],
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
        let mut removed: Vec<InstanceKey> = Vec::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let key = InstanceKey {
                deployment_id: labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
                component: labels.get(LABEL_COMPONENT).cloned().unwrap_or_default(),
            };
            if !keep.contains(&key) && !removed.contains(&key) {
                self.remove(&key).await?;
                removed.push(key);
            }
        }
        Ok(removed)
    }
}
