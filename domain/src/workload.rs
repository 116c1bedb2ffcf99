//! The workload security policy: what a component may ask of its device beyond an ordinary
//! container. By default nothing: no host bind mounts (named volumes are fine), and the
//! drivers run every container unprivileged, with no added capabilities or devices, no host
//! namespaces and `no-new-privileges`. A platform admin may allow host paths per tenant; the
//! EN's own `en.toml` is the ceiling, so a grant counts on a device only when both allow it.
//! Some paths are never mounted, whatever either says: the whole file system, `/proc`, `/sys`,
//! `/dev`, the container engines' sockets and state, and the EN's data folder.
//!
//! The CO checks an application when it is added and a deployment when it is made; the EN
//! checks again before any driver sees a component (whoever can write to Git could skip the
//! CO). Pure rules: the drivers resolve symbolic links before they ask.

use serde::{Deserialize, Serialize};

/// The annotation that carries a tenant's grants in each deployment it makes (absent: the
/// strict default), for the EN to enforce within its own ceiling.
pub const ANNOTATION: &str = "eos.dev/workload-policy";

/// The most host paths a policy names.
pub const MAX_HOST_PATHS: usize = 32;

/// Paths no component ever mounts, nor any folder that holds one of them.
pub const NEVER: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/etc",
    "/root",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/podman",
    "/var/run/podman",
    "/run/containerd",
    "/var/run/containerd",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
];

/// What a tenant's components may ask beyond the default, or what a device allows at most.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadPolicy {
    /// Host folders (absolute) whose contents components may bind-mount, each with what lies
    /// under it (`/srv/data`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_paths: Vec<String>,
    /// Whether Helm charts may create cluster-scoped objects (Namespaces, ClusterRoles,
    /// CustomResourceDefinitions, …), which reach beyond the release's namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scoped: bool,
    /// Host devices (under `/dev`) containers may be given, each with what lies under it
    /// (`/dev/video0`, `/dev/dri`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Whether containers may ask for the node's GPUs (`x-eos-extensions.container.gpus`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpus: bool,
}

/// Devices no container is ever given: the host's memory, I/O ports and kernel log.
pub const NEVER_DEVICES: &[&str] = &["/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg"];

impl WorkloadPolicy {
    /// The default: nothing beyond an ordinary container.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Whether the policy allows nothing beyond the default.
    pub fn is_strict(&self) -> bool {
        self.host_paths.is_empty() && !self.cluster_scoped && self.devices.is_empty() && !self.gpus
    }

    /// What both policies allow: a host path counts where it lies under a grant of each (a
    /// tenant's grants within a device's ceiling).
    pub fn within(&self, ceiling: &WorkloadPolicy) -> WorkloadPolicy {
        WorkloadPolicy {
            host_paths: narrower_of(&self.host_paths, &ceiling.host_paths),
            cluster_scoped: self.cluster_scoped && ceiling.cluster_scoped,
            devices: narrower_of(&self.devices, &ceiling.devices),
            gpus: self.gpus && ceiling.gpus,
        }
    }

    /// Whether a container may be given the host device `path` (as written and, the EN
    /// checks too, as its links resolve).
    pub fn allows_device(&self, path: &str) -> Result<(), String> {
        let plain = plain_path(path)?;
        device_path(&plain)?;
        if self
            .devices
            .iter()
            .filter_map(|g| plain_path(g).ok())
            .any(|g| under(&plain, &g))
        {
            return Ok(());
        }
        Err(match self.devices.is_empty() {
            true => format!("device {path} is not allowed: the workload policy allows no devices"),
            false => format!(
                "device {path} is not allowed: the workload policy allows only {}",
                self.devices.join(", ")
            ),
        })
    }

    /// Whether a container may ask for the node's GPUs.
    pub fn allows_gpus(&self) -> Result<(), String> {
        match self.gpus {
            true => Ok(()),
            false => Err("GPUs are not allowed: the workload policy allows none".into()),
        }
    }

    /// The policy a deployment's annotation carries: absent is the strict default, and one
    /// that cannot be read is enforced as the strict default too.
    pub fn from_annotation(text: Option<&str>) -> WorkloadPolicy {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    /// Refused with every problem of the policy itself.
    pub fn check(&self) -> Result<(), crate::Problems> {
        let mut problems = crate::Problems::default();
        if self.host_paths.len() > MAX_HOST_PATHS {
            problems.push(
                "hostPaths",
                format!("{} paths; at most {MAX_HOST_PATHS}", self.host_paths.len()),
            );
        }
        for (field, message) in self.problems() {
            problems.push(field, message);
        }
        problems.into_result(())
    }

    /// Every problem of the policy itself, as `(field, message)`: paths that are not
    /// absolute and plain, or that reach what is never mounted.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, p) in self.host_paths.iter().enumerate() {
            if let Err(e) = plain_path(p).and_then(|p| never(&p, &[])) {
                out.push((format!("hostPaths[{i}]"), e));
            }
        }
        for (i, d) in self.devices.iter().enumerate() {
            if let Err(e) = plain_path(d).and_then(|d| device_path(&d)) {
                out.push((format!("devices[{i}]"), e));
            }
        }
        if self.devices.len() > MAX_HOST_PATHS {
            out.push((
                "devices".into(),
                format!("{} devices; at most {MAX_HOST_PATHS}", self.devices.len()),
            ));
        }
        out
    }

    /// Whether a component may bind-mount the host path `source`; `also_never` adds paths of
    /// the device's own (its data folder) to [`NEVER`].
    pub fn allows_host_path(&self, source: &str, also_never: &[&str]) -> Result<(), String> {
        let path = plain_path(source)?;
        never(&path, also_never)?;
        let granted = self
            .host_paths
            .iter()
            .filter_map(|g| plain_path(g).ok())
            .any(|g| under(&path, &g));
        match granted {
            true => Ok(()),
            false if self.host_paths.is_empty() => Err(format!(
                "host path {source} is not allowed: the workload policy allows no host paths \
                 (named volumes are fine)"
            )),
            false => Err(format!(
                "host path {source} is not allowed: the workload policy allows only {}",
                self.host_paths.join(", ")
            )),
        }
    }
}

/// Every host path, device and GPU request of an application description's `oci` components
/// that `policy` does not allow, as `(field path, message)`
/// (`deploymentProfiles[0].components[0].x-eos-extensions.container.volumes[0]`).
pub fn description_problems(
    ad: &crate::margo::application::ApplicationDescription,
    policy: &WorkloadPolicy,
) -> Vec<(String, String)> {
    use crate::margo::application::EOS_EXTENSIONS;
    let mut out = Vec::new();
    for (p, profile) in ad.deployment_profiles.iter().enumerate() {
        for (c, component) in profile.components.iter().enumerate() {
            let container = component
                .extensions
                .get(EOS_EXTENSIONS)
                .and_then(|e| e.get("container"));
            let volumes = container
                .and_then(|c| c.get("volumes"))
                .and_then(|v| v.as_array());
            let at = format!("deploymentProfiles[{p}].components[{c}].{EOS_EXTENSIONS}.container");
            let devices = container
                .and_then(|c| c.get("devices"))
                .and_then(|v| v.as_array());
            for (d, device) in devices.into_iter().flatten().enumerate() {
                let Some(text) = device.as_str() else {
                    continue;
                };
                let host = text.split(':').next().unwrap_or(text);
                if let Err(e) = policy.allows_device(host) {
                    out.push((format!("{at}.devices[{d}]"), e));
                }
            }
            if container.and_then(|c| c.get("gpus")).is_some()
                && let Err(e) = policy.allows_gpus()
            {
                out.push((format!("{at}.gpus"), e));
            }
            for (v, volume) in volumes.into_iter().flatten().enumerate() {
                let field = format!("{at}.volumes[{v}]");
                let Some(text) = volume.as_str() else {
                    continue;
                };
                if let Ok(crate::container::VolumeMount::Host { source, .. }) =
                    crate::container::parse_volume(text)
                    && let Err(e) = policy.allows_host_path(&source, &[])
                {
                    out.push((field, e));
                }
            }
        }
    }
    out
}

/// `text` as an absolute path of plain components (no `.`, `..` or empty ones, no control
/// characters), with a trailing `/` dropped.
fn plain_path(text: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("{text:?} {why}"));
    if !text.starts_with('/') {
        return bad("is not an absolute path");
    }
    if text.chars().any(char::is_control) {
        return bad("holds control characters");
    }
    let parts: Vec<&str> = text[1..].split('/').collect();
    let parts: &[&str] = match parts.as_slice() {
        [rest @ .., ""] => rest,
        all => all,
    };
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return bad("is not a plain path (no empty, '.' or '..' parts)");
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The grants of `a` that lie under one of `b`'s, and those of `b` under one of `a`'s: what
/// both allow.
fn narrower_of(a: &[String], b: &[String]) -> Vec<String> {
    let plain = |list: &[String]| -> Vec<String> {
        list.iter().filter_map(|g| plain_path(g).ok()).collect()
    };
    let (mine, theirs) = (plain(a), plain(b));
    let mut out = Vec::new();
    for a in &mine {
        for b in &theirs {
            let narrower = if under(a, b) {
                a
            } else if under(b, a) {
                b
            } else {
                continue;
            };
            if !out.contains(narrower) {
                out.push(narrower.clone());
            }
        }
    }
    out
}

/// Refused unless the plain path `path` names a device under `/dev` (not `/dev` itself) that
/// may ever be given.
fn device_path(path: &str) -> Result<(), String> {
    if !under(path, "/dev") || path == "/dev" {
        return Err(format!("{path} is not a device under /dev"));
    }
    for n in NEVER_DEVICES {
        if under(path, n) {
            return Err(format!("{path} is never given to a container"));
        }
    }
    Ok(())
}

/// Whether `path` is `folder` or lies under it.
fn under(path: &str, folder: &str) -> bool {
    folder == "/"
        || path == folder
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Refused when `path` is the root, or is, lies under or holds a path never mounted.
fn never(path: &str, also: &[&str]) -> Result<(), String> {
    if path == "/" {
        return Err("the whole file system (/) is never mounted".into());
    }
    for n in NEVER.iter().copied().chain(also.iter().copied()) {
        let n = n.trim_end_matches('/');
        if n.is_empty() {
            continue;
        }
        if under(path, n) {
            return Err(format!("{path} is never mounted (it is or lies under {n})"));
        }
        if under(n, path) {
            return Err(format!("{path} is never mounted (it holds {n})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(paths: &[&str]) -> WorkloadPolicy {
        WorkloadPolicy {
            host_paths: paths.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_default_allows_no_host_path() {
        let e = WorkloadPolicy::strict()
            .allows_host_path("/srv/data", &[])
            .unwrap_err();
        assert!(e.contains("allows no host paths"), "{e}");
    }

    #[test]
    fn a_grant_allows_its_folder_and_what_lies_under_it_only() {
        let p = grant(&["/srv/data/"]);
        assert!(p.allows_host_path("/srv/data", &[]).is_ok());
        assert!(p.allows_host_path("/srv/data/camera-1", &[]).is_ok());
        assert!(p.allows_host_path("/srv/database", &[]).is_err());
        assert!(p.allows_host_path("/srv", &[]).is_err());
        let e = p.allows_host_path("/srv/data/../../etc", &[]).unwrap_err();
        assert!(e.contains("not a plain path"), "{e}");
        assert!(p.allows_host_path("srv/data", &[]).is_err());
    }

    #[test]
    fn a_grant_counts_on_a_device_only_within_its_ceiling() {
        let tenant = grant(&["/srv/data", "/opt/models/v1"]);
        let device = grant(&["/srv", "/opt/models/v1/big", "/mnt"]);
        assert_eq!(
            tenant.within(&device),
            grant(&["/srv/data", "/opt/models/v1/big"])
        );
        assert!(tenant.within(&WorkloadPolicy::strict()).is_strict());
        assert!(WorkloadPolicy::strict().within(&device).is_strict());
        assert_eq!(
            WorkloadPolicy::from_annotation(Some("{not json")),
            WorkloadPolicy::strict()
        );
        assert_eq!(
            WorkloadPolicy::from_annotation(Some(r#"{"hostPaths":["/srv/data"]}"#)),
            grant(&["/srv/data"])
        );
        assert!(grant(&["/srv/../etc"]).check().is_err());
        let cluster = WorkloadPolicy {
            cluster_scoped: true,
            ..WorkloadPolicy::strict()
        };
        assert!(!cluster.is_strict());
        assert!(!cluster.within(&WorkloadPolicy::strict()).cluster_scoped);
        assert!(cluster.within(&cluster).cluster_scoped);
    }

    #[test]
    fn devices_and_gpus_are_given_only_where_both_grant_them() {
        let tenant = WorkloadPolicy {
            devices: vec!["/dev/video0".into(), "/dev/dri".into()],
            gpus: true,
            ..Default::default()
        };
        let device = WorkloadPolicy {
            devices: vec!["/dev/dri/renderD128".into(), "/dev/ttyUSB0".into()],
            ..Default::default()
        };
        let both = tenant.within(&device);
        assert_eq!(both.devices, ["/dev/dri/renderD128"]);
        assert!(!both.gpus, "the device's ceiling allows no GPUs");
        assert!(both.allows_device("/dev/dri/renderD128").is_ok());
        let e = both.allows_device("/dev/video0").unwrap_err();
        assert!(e.contains("allows only /dev/dri/renderD128"), "{e}");
        assert!(both.allows_gpus().is_err());
        assert!(tenant.allows_gpus().is_ok());
        let e = WorkloadPolicy::strict()
            .allows_device("/dev/video0")
            .unwrap_err();
        assert!(e.contains("allows no devices"), "{e}");
        let all = WorkloadPolicy {
            devices: vec!["/dev/mem".into(), "/dev".into(), "/srv/x".into()],
            ..Default::default()
        };
        let fields: Vec<String> = all.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["devices[0]", "devices[1]", "devices[2]"]);
        assert!(all.allows_device("/dev/mem").is_err());
        assert!(!tenant.is_strict());
    }

    #[test]
    fn what_is_never_mounted_stays_so_whatever_the_grant() {
        let p = grant(&["/"]);
        for path in [
            "/",
            "//",
            "/proc",
            "/proc/1/root",
            "/sys/fs",
            "/dev",
            "/var/run/docker.sock",
            "/run",
            "/var",
            "/var/lib",
            "/etc/shadow",
        ] {
            assert!(p.allows_host_path(path, &[]).is_err(), "{path}");
        }
        assert!(p.allows_host_path("/srv/x", &[]).is_ok());
        let e = p
            .allows_host_path("/var/lib/eos-en/records", &["/var/lib/eos-en"])
            .unwrap_err();
        assert!(e.contains("/var/lib/eos-en"), "{e}");
        assert_eq!(
            p.problems(),
            [(
                "hostPaths[0]".to_string(),
                "the whole file system (/) is never mounted".to_string()
            )]
        );
    }
}
