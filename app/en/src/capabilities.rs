//! The EN's Margo device capabilities, read from this host and from the drivers whose runtime
//! answers now (see `fingerprint`).

use eos_domain::ids::DeviceId;
use eos_domain::margo::DeviceCapabilities;
use eos_domain::margo::capabilities::{Cpu, DeviceProperties, Peripheral, canonical_architecture};
use eos_domain::margo::quantity::format_bytes;
use eos_domain::placement::RUNTIMES_LABEL;
use eos_driver::DriverInfo;
use serde_json::json;

/// The label listing the node's drivers as `runtime:source` (`oci:built-in`, `exec:native`).
pub const DRIVERS_LABEL: &str = "eos.dev/drivers";
/// The label listing the version each ready runtime's fingerprint found, as
/// `runtime=version` (`oci=Docker Engine 26.1.5 (API 1.45)`): label values are strings or
/// lists of them.
pub const DRIVER_VERSIONS_LABEL: &str = "eos.dev/driver-versions";

/// The capabilities of this node with the drivers that are ready, each with the version its
/// fingerprint found.
pub fn detect(device: &DeviceId, ready: &[(DriverInfo, String)]) -> DeviceCapabilities {
    let infos: Vec<&DriverInfo> = ready.iter().map(|(info, _)| info).collect();
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
        peripherals: gpus(std::path::Path::new("/")),
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
        .insert(DRIVERS_LABEL.into(), json!(drivers_label));
    let versions: Vec<String> = ready
        .iter()
        .map(|(info, version)| format!("{}={version}", info.runtime))
        .collect();
    caps.labels
        .insert(DRIVER_VERSIONS_LABEL.into(), json!(versions));
    caps
}

/// Adds the node's configured labels to its capabilities; a bad key or value is an error
/// naming it.
pub fn add_labels(
    caps: &mut DeviceCapabilities,
    labels: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    for (key, value) in labels {
        eos_domain::ids::check_label_key(key)
            .and_then(|()| eos_domain::ids::check_label_value(value))
            .map_err(|why| anyhow::anyhow!("labels.{key}: {why}"))?;
        caps.labels.insert(key.clone(), json!(value));
    }
    Ok(())
}

/// The GPUs of the machine whose root folder is `root`: PCI display and 3D controllers from
/// sysfs (the model from the NVIDIA driver's `/proc` entry when it is loaded), and the
/// integrated GPU of an NVIDIA Jetson (Tegra) board, which is not on PCI.
pub fn gpus(root: &std::path::Path) -> Vec<Peripheral> {
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).map(|s| s.trim().to_owned());
    let mut found = Vec::new();
    let mut devices: Vec<_> = std::fs::read_dir(root.join("sys/bus/pci/devices"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    devices.sort();
    for dev in devices {
        let Ok(class) = read(dev.join("class")) else {
            continue;
        };
        // 0x0300xx VGA, 0x0302xx 3D controller (datacenter GPUs).
        if !(class.starts_with("0x0300") || class.starts_with("0x0302")) {
            continue;
        }
        let vendor = read(dev.join("vendor")).unwrap_or_default();
        let device = read(dev.join("device")).unwrap_or_default();
        let manufacturer = match vendor.as_str() {
            "0x10de" => "NVIDIA",
            "0x1002" => "AMD",
            "0x8086" => "Intel",
            "0x1af4" | "0x1234" | "0x15ad" => continue, // virtual display adapters
            _ => "unknown",
        };
        let bus = dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let model = read(
            root.join("proc/driver/nvidia/gpus")
                .join(&bus)
                .join("information"),
        )
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| {
            format!(
                "PCI {}:{}",
                vendor.trim_start_matches("0x"),
                device.trim_start_matches("0x")
            )
        });
        found.push(Peripheral {
            peripheral_type: "gpu".into(),
            manufacturer: Some(manufacturer.into()),
            model: Some(model),
        });
    }
    let tegra = std::fs::read(root.join("proc/device-tree/compatible"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("nvidia,tegra"));
    if tegra && found.is_empty() {
        found.push(Peripheral {
            peripheral_type: "gpu".into(),
            manufacturer: Some("NVIDIA".into()),
            model: Some("Tegra (integrated)".into()),
        });
    }
    found
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pci(root: &std::path::Path, bus: &str, class: &str, vendor: &str, device: &str) {
        let dir = root.join("sys/bus/pci/devices").join(bus);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("class"), format!("{class}\n")).unwrap();
        std::fs::write(dir.join("vendor"), format!("{vendor}\n")).unwrap();
        std::fs::write(dir.join("device"), format!("{device}\n")).unwrap();
    }

    #[test]
    fn gpus_are_found_on_pci_with_the_driver_s_model_name() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        pci(r, "0000:00:02.0", "0x030000", "0x1234", "0x1111"); // a virtual VGA adapter
        pci(r, "0000:3b:00.0", "0x030200", "0x10de", "0x2330"); // an H100
        pci(r, "0000:5e:00.0", "0x020000", "0x8086", "0x1572"); // a network card
        let info = r.join("proc/driver/nvidia/gpus/0000:3b:00.0");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            info.join("information"),
            "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: 10\n",
        )
        .unwrap();
        pci(r, "0000:af:00.0", "0x030000", "0x1002", "0x73bf"); // AMD, no driver entry
        let found = gpus(r);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].manufacturer.as_deref(), Some("NVIDIA"));
        assert_eq!(found[0].model.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(found[1].manufacturer.as_deref(), Some("AMD"));
        assert_eq!(found[1].model.as_deref(), Some("PCI 1002:73bf"));
        assert!(found.iter().all(|p| p.peripheral_type == "gpu"));
    }

    #[test]
    fn a_jetson_has_its_integrated_gpu_and_a_plain_machine_none() {
        let root = tempfile::tempdir().unwrap();
        assert!(gpus(root.path()).is_empty());
        let dt = root.path().join("proc/device-tree");
        std::fs::create_dir_all(&dt).unwrap();
        std::fs::write(
            dt.join("compatible"),
            b"nvidia,p3768-0000+p3767-0005\0nvidia,tegra234\0",
        )
        .unwrap();
        let found = gpus(root.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].model.as_deref(), Some("Tegra (integrated)"));
    }
}
