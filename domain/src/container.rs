//! How an `oci` component runs as a container: its command, ports, volumes, limits and health
//! check. They sit in the component's `x-eos-extensions.container` (Margo leaves container
//! details to the runtime) and are checked when the application is added, so a bad value is
//! refused with its field path long before a device tries it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `x-eos-extensions.container` of an `oci` component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSettings {
    /// Replaces the image's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Environment variables besides those Margo parameters set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `HOST:CONTAINER` or `HOST:CONTAINER/udp`; the host side binds on every address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `NAME:/path` (a named volume the EN keeps per component) or `/host/path:/path[:ro]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Host devices, `/dev/HOST[:/dev/CONTAINER]`: only those the workload policy grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// The node's GPUs: `all`, or how many (only where the workload policy grants GPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Gpus>,
    /// A memory limit: bytes, or with a suffix `Ki`, `Mi`, `Gi` (or `k`, `M`, `G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// A CPU limit in cores (`0.5` is half a core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// A command run inside the container; failing `retries` times in a row makes it unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthCheck>,
}

/// The GPUs a container asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gpus {
    /// `all`.
    All(AllGpus),
    /// How many.
    Count(u32),
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllGpus {
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub command: Vec<String>,
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_interval() -> u32 {
    10
}

fn default_retries() -> u32 {
    3
}

/// A published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub host: u16,
    pub container: u16,
    pub udp: bool,
}

/// A volume: named (kept by the engine) or a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeMount {
    Named {
        name: String,
        target: String,
    },
    Host {
        source: String,
        target: String,
        read_only: bool,
    },
}

impl ContainerSettings {
    /// Reads and checks the settings; every problem comes back as `(field, message)`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, Vec<(String, String)>> {
        let settings: Self = serde_json::from_value(value.clone())
            .map_err(|e| vec![(String::new(), e.to_string())])?;
        let mut problems = Vec::new();
        for (i, p) in settings.ports.iter().enumerate() {
            if let Err(e) = parse_port(p) {
                problems.push((format!("ports[{i}]"), e));
            }
        }
        for (i, v) in settings.volumes.iter().enumerate() {
            if let Err(e) = parse_volume(v) {
                problems.push((format!("volumes[{i}]"), e));
            }
        }
        for (i, d) in settings.devices.iter().enumerate() {
            if let Err(e) = parse_device(d) {
                problems.push((format!("devices[{i}]"), e));
            }
        }
        if let Some(m) = &settings.memory
            && let Err(e) = parse_memory(m)
        {
            problems.push(("memory".into(), e));
        }
        if let Some(c) = settings.cpus
            && !(c > 0.0 && c <= 1024.0)
        {
            problems.push((
                "cpus".into(),
                format!("{c} is not between 0 and 1024 cores"),
            ));
        }
        if let Some(h) = &settings.healthcheck {
            if h.command.is_empty() {
                problems.push(("healthcheck.command".into(), "must not be empty".into()));
            }
            if h.interval_seconds == 0 {
                problems.push((
                    "healthcheck.intervalSeconds".into(),
                    "must be at least 1".into(),
                ));
            }
        }
        for name in settings.env.keys() {
            if name.is_empty() || name.contains('=') {
                problems.push((format!("env.{name}"), "not a valid variable name".into()));
            }
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }

    pub fn port_mappings(&self) -> Vec<PortMapping> {
        self.ports
            .iter()
            .filter_map(|p| parse_port(p).ok())
            .collect()
    }

    pub fn volume_mounts(&self) -> Vec<VolumeMount> {
        self.volumes
            .iter()
            .filter_map(|v| parse_volume(v).ok())
            .collect()
    }

    /// The devices, as `(host, container)` paths.
    pub fn device_mappings(&self) -> Vec<(String, String)> {
        self.devices
            .iter()
            .filter_map(|d| parse_device(d).ok())
            .collect()
    }

    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory.as_deref().and_then(|m| parse_memory(m).ok())
    }
}

/// `8080:80` or `8080:80/udp`.
pub fn parse_port(text: &str) -> Result<PortMapping, String> {
    let (ports, udp) = match text.rsplit_once('/') {
        Some((p, "udp")) => (p, true),
        Some((p, "tcp")) => (p, false),
        Some((_, other)) => return Err(format!("unknown protocol {other:?} (tcp or udp)")),
        None => (text, false),
    };
    let bad = || format!("{text:?} is not HOST:CONTAINER (for example 8080:80)");
    let (host, container) = ports.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    Ok(PortMapping {
        host: port(host)?,
        container: port(container)?,
        udp,
    })
}

/// `/dev/HOST` or `/dev/HOST:/dev/CONTAINER`: the host and container paths.
pub fn parse_device(text: &str) -> Result<(String, String), String> {
    let bad = || format!("{text:?} is not /dev/HOST or /dev/HOST:/dev/CONTAINER");
    let (host, container) = match text.split_once(':') {
        Some((h, c)) => (h, c),
        None => (text, text),
    };
    for path in [host, container] {
        if !path.starts_with("/dev/") || path.len() <= "/dev/".len() || path.contains(':') {
            return Err(bad());
        }
    }
    Ok((host.to_owned(), container.to_owned()))
}

/// `NAME:/path`, `/host:/path` or `/host:/path:ro`.
pub fn parse_volume(text: &str) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || format!("{text:?} is not NAME:/path or /host/path:/path[:ro]");
    let (source, target, read_only) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        _ => return Err(bad()),
    };
    if !target.starts_with('/') || source.is_empty() {
        return Err(bad());
    }
    if source.starts_with('/') {
        Ok(VolumeMount::Host {
            source: source.into(),
            target: target.into(),
            read_only,
        })
    } else if read_only {
        Err(format!("{text:?}: only host paths can be read-only"))
    } else if source
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        Ok(VolumeMount::Named {
            name: source.into(),
            target: target.into(),
        })
    } else {
        Err(bad())
    }
}

/// `134217728`, `128Mi`, `1Gi`, `512k`, `2G`, at least the container engine's minimum (6Mi).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = parse_bytes(text)?;
    if bytes < 6 << 20 {
        return Err(format!("{text:?} is below the engine's minimum of 6Mi"));
    }
    Ok(bytes)
}

/// The limits of a `wasm` component, from its `x-eos-extensions.wasm`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmSettings {
    /// The most linear memory the module may grow to: bytes, or with `Ki`, `Mi`, `Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The share of one core the module may use, above 0 and at most 1 (a module runs on one
    /// thread). Past it the module is paused until its average falls back under the share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
}

impl WasmSettings {
    /// Reads and checks the settings; every problem comes back as `(field, message)`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, Vec<(String, String)>> {
        let settings: Self = serde_json::from_value(value.clone())
            .map_err(|e| vec![(String::new(), e.to_string())])?;
        if let Some(m) = &settings.memory
            && let Err(e) = parse_bytes(m).and_then(|b| {
                if b < 64 << 10 {
                    Err(format!("{m:?} is less than one WebAssembly page (64Ki)"))
                } else {
                    Ok(b)
                }
            })
        {
            return Err(vec![("memory".into(), e)]);
        }
        if let Some(cpus) = settings.cpus
            && !(cpus > 0.0 && cpus <= 1.0)
        {
            return Err(vec![(
                "cpus".into(),
                format!(
                    "{cpus} is not a share of one core: above 0 and at most 1 (a module runs on one thread)"
                ),
            )]);
        }
        Ok(settings)
    }

    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory.as_deref().and_then(|m| parse_bytes(m).ok())
    }
}

/// An amount of bytes: `134217728`, `128Mi`, `1Gi`, `512k`, `2G`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (Ki, Mi, Gi, k, M, G)"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not an amount of memory"))?;
    Ok(n.saturating_mul(factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_container_reads_back() {
        let s = ContainerSettings::from_value(&json!({
            "command": ["httpd", "-f", "-p", "80"],
            "env": {"MODE": "test"},
            "ports": ["8080:80", "5353:53/udp"],
            "volumes": ["cache:/var/cache", "/etc/eos:/config:ro"],
            "memory": "64Mi",
            "cpus": 0.5,
            "healthcheck": {"command": ["true"]}
        }))
        .unwrap();
        assert_eq!(
            s.port_mappings(),
            vec![
                PortMapping {
                    host: 8080,
                    container: 80,
                    udp: false
                },
                PortMapping {
                    host: 5353,
                    container: 53,
                    udp: true
                }
            ]
        );
        assert_eq!(s.memory_bytes(), Some(64 << 20));
        assert_eq!(s.healthcheck.as_ref().unwrap().interval_seconds, 10);
        assert_eq!(
            s.volume_mounts()[1],
            VolumeMount::Host {
                source: "/etc/eos".into(),
                target: "/config".into(),
                read_only: true
            }
        );
    }

    #[test]
    fn every_bad_value_is_named() {
        let problems = ContainerSettings::from_value(&json!({
            "ports": ["80", "1:2/sctp"],
            "volumes": ["relative:path", "name:/x:ro"],
            "memory": "1Mi",
            "cpus": 0,
            "healthcheck": {"command": [], "intervalSeconds": 0}
        }))
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "ports[0]",
                "ports[1]",
                "volumes[0]",
                "volumes[1]",
                "memory",
                "cpus",
                "healthcheck.command",
                "healthcheck.intervalSeconds"
            ]
        );
        let unknown = ContainerSettings::from_value(&json!({"privileged": true})).unwrap_err();
        assert!(
            unknown[0].1.contains("unknown field `privileged`"),
            "{unknown:?}"
        );
    }

    #[test]
    fn wasm_limits_are_checked_by_name() {
        let ok = WasmSettings::from_value(&json!({"memory": "8Mi", "cpus": 0.25})).unwrap();
        assert_eq!(ok.memory_bytes(), Some(8 << 20));
        assert_eq!(ok.cpus, Some(0.25));
        for (value, field) in [
            (json!({"cpus": 0}), "cpus"),
            (json!({"cpus": 1.5}), "cpus"),
            (json!({"cpus": -1}), "cpus"),
            (json!({"memory": "1Ki"}), "memory"),
        ] {
            let problems = WasmSettings::from_value(&value).unwrap_err();
            assert_eq!(problems[0].0, field, "{value}: {problems:?}");
        }
        let unknown = WasmSettings::from_value(&json!({"fuel": 1})).unwrap_err();
        assert!(unknown[0].1.contains("unknown field `fuel`"), "{unknown:?}");
    }
}
