//! The EN's Margo device capabilities, read from this host and from its drivers.

use eos_domain::ids::DeviceId;
use eos_domain::margo::DeviceCapabilities;
use eos_domain::margo::capabilities::{Cpu, DeviceProperties, canonical_architecture};
use eos_domain::margo::quantity::format_bytes;
use eos_domain::placement::RUNTIMES_LABEL;
use eos_driver::RuntimeDriver;
use serde_json::json;
use std::sync::Arc;

pub fn detect(device: &DeviceId, drivers: &[Arc<dyn RuntimeDriver>]) -> DeviceCapabilities {
    let infos: Vec<_> = drivers.iter().map(|d| d.info()).collect();
    let mut deployment_types: Vec<String> = infos
        .iter()
        .flat_map(|i| i.deployment_types.clone())
        .collect();
    deployment_types.sort();
    deployment_types.dedup();
    let runtimes: Vec<String> = infos.iter().map(|i| i.runtime.clone()).collect();
    let drivers_label: Vec<String> = infos
        .iter()
        .map(|i| format!("{}:{}", i.runtime, i.source))
        .collect();
    let properties = DeviceProperties {
        id: device.to_string(),
        vendor: "EOS".into(),
        model_number: format!("eos-en {}", env!("CARGO_PKG_VERSION")),
        serial_number: hostname(),
        cpus: vec![Cpu {
            cores: std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0),
            architecture: canonical_architecture(std::env::consts::ARCH).into(),
        }],
        memory: mem_total_bytes().map(format_bytes),
        storage: None,
        peripherals: Vec::new(),
        interfaces: Vec::new(),
        otel_collector: Some(false),
        supported_runtimes: if runtimes.iter().any(|r| r == "oci") {
            vec!["oci".into(), "custom".into()]
        } else {
            vec!["custom".into()]
        },
        supported_deployment_types: deployment_types,
    };
    let mut caps = DeviceCapabilities {
        properties,
        ..Default::default()
    };
    caps.labels.insert(RUNTIMES_LABEL.into(), json!(runtimes));
    caps.labels
        .insert("eos.dev/drivers".into(), json!(drivers_label));
    caps
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}
