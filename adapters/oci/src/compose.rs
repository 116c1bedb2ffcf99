//! The built-in `compose` runtime driver: a Margo compose component (a tar.gz archive holding one
//! folder with `compose.yaml`, pulled by the EN from its registry) run through the Docker Engine
//! API, with no compose binary and no Python on the device. The archive is checked before it is
//! unpacked (one top folder, no absolute paths, no `..`, no links leaving it, no setuid bits).
//! `${NAME}` and `${NAME:-default}` in `compose.yaml` take Margo parameters, which also become
//! every service's environment. Each component gets its own network, on which services reach
//! each other by name. Services start in `depends_on` order, waiting for health where a
//! dependency asks for `service_healthy`.

use crate::{
    LABEL_COMPONENT, LABEL_DEPLOYMENT, LABEL_SCOPE, LABEL_SPEC, STOP_GRACE_SECS, engine_message,
    sanitize, spec_digest, status_of,
};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EndpointSettings, HealthConfig,
    HealthStatusEnum, HostConfig, NetworkCreateRequest, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, DriverInfo, Handle, Health, InstanceKey, RuntimeDriver, Stats};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

const LABEL_SERVICE: &str = "eos.service";
/// How long `apply` watches the services before calling them started.
pub const START_WINDOW: Duration = Duration::from_millis(700);
/// How long a dependency may take to become healthy.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

/// `compose.yaml`, the part EOS runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<serde_yaml::Value>>,
    /// Networks of the component besides `default`; services on none of them join `default`.
    #[serde(default)]
    pub networks: BTreeMap<String, Option<serde_yaml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    #[serde(default)]
    pub command: Option<Command>,
    #[serde(default)]
    pub entrypoint: Option<Command>,
    #[serde(default)]
    pub environment: Option<Environment>,
    #[serde(default)]
    pub env_file: Option<OneOrMany>,
    #[serde(default)]
    pub ports: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Accepted; the EN's supervisor restarts every component alike.
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub networks: Option<serde_yaml::Value>,
    #[serde(default)]
    pub deploy: Option<Deploy>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

impl Command {
    fn words(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Exec(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Environment {
    Map(BTreeMap<String, Option<serde_yaml::Value>>),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, Dependency>),
}

#[derive(Debug, Deserialize)]
pub struct Dependency {
    #[serde(default)]
    pub condition: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Healthcheck {
    pub test: Command,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<i64>,
    #[serde(default)]
    pub start_period: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Deploy {
    #[serde(default)]
    pub resources: Option<Resources>,
}

#[derive(Debug, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub limits: Option<Limits>,
}

#[derive(Debug, Deserialize)]
pub struct Limits {
    #[serde(default)]
    pub cpus: Option<serde_yaml::Value>,
    #[serde(default)]
    pub memory: Option<String>,
}

/// Replaces `${NAME}` and `${NAME:-default}` with values from `vars` (unknown names without a
/// default become empty, as compose does); `$$` is a literal `$`.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {:?}", &rest[at..]))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let value = vars
                .get(name)
                .filter(|v| !v.is_empty() || default.is_none())
                .map(String::as_str)
                .or(default)
                .unwrap_or("");
            out.push_str(value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `compose.yaml` text with the parameters in; every problem names its service or key.
pub fn parse(text: &str, vars: &BTreeMap<String, String>) -> Result<ComposeFile, String> {
    let text = interpolate(text, vars)?;
    let file: ComposeFile =
        serde_yaml::from_str(&text).map_err(|e| format!("compose.yaml: {e}"))?;
    if file.services.is_empty() {
        return Err("compose.yaml: no services".into());
    }
    start_order(&file)?;
    for name in file.services.keys() {
        service_networks(&file, name)?;
    }
    Ok(file)
}

/// The networks a service joins: those it lists, or `default`.
pub fn service_networks(file: &ComposeFile, name: &str) -> Result<Vec<String>, String> {
    let listed: Vec<String> = match &file.services[name].networks {
        None => vec!["default".into()],
        Some(serde_yaml::Value::Sequence(s)) => s
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("service {name}: networks are names"))?,
        Some(serde_yaml::Value::Mapping(m)) => m
            .keys()
            .map(|k| k.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("service {name}: networks are names"))?,
        Some(other) => return Err(format!("service {name}: networks {other:?} is not a list")),
    };
    for n in &listed {
        if n != "default" && !file.networks.contains_key(n) {
            return Err(format!(
                "service {name} joins network {n}, which compose.yaml does not declare"
            ));
        }
    }
    Ok(listed)
}

/// Services in an order where each comes after what it depends on.
pub fn start_order(file: &ComposeFile) -> Result<Vec<String>, String> {
    let deps = |s: &Service| -> Vec<String> {
        match &s.depends_on {
            None => Vec::new(),
            Some(DependsOn::List(l)) => l.clone(),
            Some(DependsOn::Map(m)) => m.keys().cloned().collect(),
        }
    };
    for (name, s) in &file.services {
        for d in deps(s) {
            if !file.services.contains_key(&d) {
                return Err(format!(
                    "service {name} depends on {d}, which is not a service"
                ));
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    while order.len() < file.services.len() {
        let next = file
            .services
            .iter()
            .find(|(name, s)| !order.contains(name) && deps(s).iter().all(|d| order.contains(d)));
        match next {
            Some((name, _)) => order.push(name.clone()),
            None => {
                let stuck: Vec<&String> = file
                    .services
                    .keys()
                    .filter(|n| !order.contains(n))
                    .collect();
                return Err(format!(
                    "services depend on each other in a cycle: {stuck:?}"
                ));
            }
        }
    }
    Ok(order)
}

/// Unpacks a Margo compose archive into `into` (emptied first) and returns the folder holding
/// `compose.yaml`. Refuses what the spec forbids, before anything is written.
pub fn unpack(archive: &Path, into: &Path) -> Result<PathBuf, String> {
    let open = || -> Result<tar::Archive<flate2::read::GzDecoder<std::fs::File>>, String> {
        let file =
            std::fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
        Ok(tar::Archive::new(flate2::read::GzDecoder::new(file)))
    };
    // First pass: check every entry.
    let mut top: Option<String> = None;
    let mut has_compose = false;
    let mut checker = open()?;
    for entry in checker
        .entries()
        .map_err(|e| format!("not a tar.gz archive: {e}"))?
    {
        let entry = entry.map_err(|e| format!("unreadable archive: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let shown = path.display().to_string();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => return Err(format!("{shown}: absolute paths and .. are not allowed")),
            }
        }
        let Some(first) = parts.first().cloned() else {
            continue;
        };
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => {
                return Err(format!(
                    "the archive must hold exactly one top-level folder (found {t} and {first})"
                ));
            }
            _ => {}
        }
        if parts.len() == 1 && !entry.header().entry_type().is_dir() {
            return Err(format!("{shown}: a file outside the top-level folder"));
        }
        if parts.len() == 2 && parts[1] == "compose.yaml" {
            has_compose = true;
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let mut depth = parts.len() as i64 - 1;
            for c in target.components() {
                match c {
                    Component::Normal(_) => depth += 1,
                    Component::ParentDir => depth -= 1,
                    Component::CurDir => {}
                    _ => depth = -1,
                }
                if depth < 1 {
                    return Err(format!("{shown}: a link leaving the folder"));
                }
            }
        }
    }
    let top = top.ok_or("the archive is empty")?;
    if !has_compose {
        return Err(format!(
            "the archive's folder {top} has no compose.yaml (compose.yml and docker-compose.yaml do not count)"
        ));
    }
    // Second pass: unpack, without setuid, setgid or sticky bits.
    if into.exists() {
        std::fs::remove_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    }
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let mut archive = open()?;
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        entry
            .unpack_in(into)
            .map_err(|e| format!("cannot unpack: {e}"))?;
    }
    Ok(into.join(top))
}

/// `1m30s`, `10s`, `500ms` in nanoseconds.
fn duration_ns(text: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms".to_owned()
        } else {
            c.to_string()
        };
        let n: f64 = number.parse().ok()?;
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            _ => return None,
        };
    }
    if !number.is_empty() {
        total += number.parse::<f64>().ok()? * 1e9;
    }
    Some(total as i64)
}

pub struct ComposeDriver {
    docker: Docker,
    scope: String,
    root: PathBuf,
    logins: BTreeMap<String, crate::RegistryLogin>,
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
        }
    }

    /// The prefix of every name this component's containers, network and volumes get.
    pub fn project(&self, key: &InstanceKey) -> String {
        format!(
            "eos-{}-{}-{}",
            sanitize(&self.scope),
            sanitize(&key.deployment_id),
            sanitize(&key.component)
        )
    }

    /// The engine's name of the component's network `network` (`default` is the project).
    fn network_name(&self, key: &InstanceKey, network: &str) -> String {
        if network == "default" {
            self.project(key)
        } else {
            format!("{}-net-{}", self.project(key), sanitize(network))
        }
    }

    /// The component's containers: `(service, name, running, labels' spec digest)`.
    async fn containers(&self, key: &InstanceKey) -> Result<Vec<ContainerInfo>, DriverError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_SCOPE}={}", self.scope),
                format!("{LABEL_DEPLOYMENT}={}", key.deployment_id),
                format!("{LABEL_COMPONENT}={}", key.component),
            ],
        )]);
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
            let stop = StopContainerOptionsBuilder::default()
                .t(STOP_GRACE_SECS)
                .build();
            let _ = self.docker.stop_container(&c.name, Some(stop)).await;
            let remove = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(&c.name, Some(remove)).await {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(DriverError::Other(engine_message(&e))),
            }
        }
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_SCOPE}={}", self.scope),
                format!("{LABEL_DEPLOYMENT}={}", key.deployment_id),
                format!("{LABEL_COMPONENT}={}", key.component),
            ],
        )]);
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

    async fn service_health(&self, name: &str) -> Health {
        let Ok(c) = self.docker.inspect_container(name, None).await else {
            return Health::Unknown;
        };
        let Some(state) = c.state else {
            return Health::Unknown;
        };
        let unhealthy = state
            .health
            .as_ref()
            .is_some_and(|h| h.status == Some(HealthStatusEnum::UNHEALTHY));
        match state.status {
            Some(ContainerStateStatusEnum::RUNNING) if unhealthy => Health::Failed {
                reason: "unhealthy".into(),
            },
            Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::RESTARTING) => {
                Health::Running
            }
            Some(ContainerStateStatusEnum::CREATED) => Health::Failed {
                reason: "created but never started".into(),
            },
            _ => Health::Exited {
                code: i32::try_from(state.exit_code.unwrap_or(-1)).unwrap_or(-1),
            },
        }
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

    async fn last_lines(&self, name: &str) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail("5")
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text.lines().collect::<Vec<_>>().join(" | ")
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
                source.to_owned()
            } else {
                format!("{project}-{}", sanitize(source))
            };
            binds.push(match mode {
                Some(m) => format!("{source}:{target}:{m}"),
                None => format!("{source}:{target}"),
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

/// `relative` inside `folder`, unless it leaves it.
fn inside(folder: &Path, relative: &str) -> Option<PathBuf> {
    let mut out = folder.to_owned();
    for c in Path::new(relative).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Compose memory: `512m`, `1g`, `128M`, bytes.
fn compose_memory(text: &str) -> Option<i64> {
    let lower = text.to_ascii_lowercase();
    let (digits, factor) = match lower.trim_end_matches('b').chars().last()? {
        'k' => (&lower[..lower.trim_end_matches('b').len() - 1], 1i64 << 10),
        'm' => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        'g' => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    digits
        .parse::<f64>()
        .ok()
        .map(|n| (n * factor as f64) as i64)
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
                all_running &= self.service_health(&c.name).await == Health::Running;
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
        for name in &order {
            let service = &file.services[name];
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
            let container = format!("{project}-{}", sanitize(name));
            crate::pull_if_missing(&self.docker, &service.image, &self.logins)
                .await
                .map_err(|reason| DriverError::Fetch {
                    repository: service.image.clone(),
                    reason,
                })?;
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
            match self.service_health(&container).await {
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
            match self.service_health(&c.name).await {
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
        // Named volumes of the component: their names start with the project.
        let volumes = self
            .docker
            .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
            .await
            .map(|v| v.volumes.unwrap_or_default())
            .unwrap_or_default();
        self.remove_all(key).await?;
        for v in volumes
            .into_iter()
            .filter(|v| v.name.starts_with(&format!("{project}-")))
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_fill_the_compose_file() {
        let vars = BTreeMap::from([("PORT".to_owned(), "8080".to_owned())]);
        assert_eq!(
            interpolate("${PORT}:80 ${MISSING:-x} ${EMPTY} $$HOME", &vars).unwrap(),
            "8080:80 x  $HOME"
        );
        assert!(interpolate("${OPEN", &vars).is_err());
    }

    #[test]
    fn services_start_after_what_they_depend_on_and_cycles_are_refused() {
        let file = parse(
            "services:\n  web: {image: w, depends_on: [db]}\n  db: {image: d}\n  probe: {image: p, depends_on: {web: {condition: service_started}}}\n",
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(start_order(&file).unwrap(), ["db", "web", "probe"]);
        let cycle = parse(
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(cycle.contains("cycle"), "{cycle}");
        let unknown = parse(
            "services:\n  a: {image: x, privileged: true}\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(unknown.contains("privileged"), "{unknown}");
    }

    #[test]
    fn services_join_the_networks_they_list_and_only_declared_ones() {
        let file = parse(
            "services:\n  web: {image: w, networks: [back]}\n  api: {image: a, networks: {back: {}, front: {}}}\n  probe: {image: p}\nnetworks:\n  back: {}\n  front: {}\n",
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(service_networks(&file, "web").unwrap(), ["back"]);
        assert_eq!(service_networks(&file, "api").unwrap(), ["back", "front"]);
        assert_eq!(service_networks(&file, "probe").unwrap(), ["default"]);
        let undeclared = parse(
            "services:\n  web: {image: w, networks: [nowhere]}\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(undeclared.contains("network nowhere"), "{undeclared}");
    }

    #[test]
    fn durations_and_memory_read_as_compose_writes_them() {
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("10"), Some(10_000_000_000));
        assert_eq!(compose_memory("512m"), Some(512 << 20));
        assert_eq!(compose_memory("1g"), Some(1 << 30));
        assert_eq!(compose_memory("2048"), Some(2048));
    }
}
