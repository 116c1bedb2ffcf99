//! The Margo DeviceCapabilitiesManifest: what a device offers to workloads.

use super::walk::{Walk, index, join};
use crate::Problems;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceCapabilities {
    pub properties: DeviceProperties,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceProperties {
    pub id: String,
    pub vendor: String,
    pub model_number: String,
    pub serial_number: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peripherals: Vec<Peripheral>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel_collector: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_runtimes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_deployment_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cpu {
    pub cores: f64,
    pub architecture: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Peripheral {
    #[serde(rename = "type")]
    pub peripheral_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Interface {
    #[serde(rename = "type")]
    pub interface_type: String,
}

const ARCHITECTURES: [&str; 3] = ["amd64", "arm64", "arm"];
const PERIPHERALS: [&str; 5] = ["gpu", "display", "camera", "microphone", "speaker"];
const INTERFACES: [&str; 7] = [
    "ethernet",
    "wifi",
    "cellular",
    "bluetooth",
    "usb",
    "canbus",
    "rs232",
];
const RUNTIMES: [&str; 2] = ["oci", "custom"];
const DEPLOYMENT_TYPES: [&str; 3] = ["helm", "compose", "custom"];

impl DeviceCapabilities {
    /// Parses and validates capabilities (PR1, rc.2 or rc.3 shape), returning every problem.
    pub fn from_json(text: &str) -> Result<Self, Problems> {
        let mut tree = super::parse_tree(text)?;
        normalize(&mut tree);
        let mut problems = Problems::default();
        walk_capabilities(&mut Walk::new(&mut problems), &tree);
        problems.into_result(())?;
        super::typed(tree)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("capabilities always serialize")
    }

    /// The properties as an untyped tree, for JSON-Pointer lookups by eligibility rules.
    pub fn properties_tree(&self) -> Value {
        serde_json::to_value(&self.properties).unwrap_or(Value::Null)
    }

    pub fn total_cores(&self) -> f64 {
        self.properties.cpus.iter().map(|c| c.cores).sum()
    }
}

/// Older shapes → rc.3: drops apiVersion/kind, renames `cpu` to `cpus`, and lifts PR1
/// `resources{…}` and `roles` into the rc.3 fields. `x86_64`/`aarch64` become `amd64`/`arm64`.
fn normalize(tree: &mut Value) {
    let Some(root) = tree.as_object_mut() else {
        return;
    };
    root.remove("apiVersion");
    root.remove("kind");
    let Some(props) = root.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(cpu) = props.remove("cpu") {
        props.entry("cpus").or_insert(cpu);
    }
    if let Some(Value::Object(resources)) = props.remove("resources") {
        lift_pr1_resources(props, resources);
    }
    if let Some(Value::Array(roles)) = props.remove("roles") {
        let types: Vec<Value> = roles
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|r| match r {
                "Standalone Cluster" | "Cluster Leader" => Some(json!("helm")),
                "Standalone Device" => Some(json!("compose")),
                _ => None,
            })
            .collect();
        props
            .entry("supportedDeploymentTypes")
            .or_insert(Value::Array(types));
    }
    for cpu in props
        .get_mut("cpus")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(arch) = cpu.get_mut("architecture") {
            *arch = json!(canonical_architecture(arch.as_str().unwrap_or_default()));
        }
    }
}

fn lift_pr1_resources(props: &mut Map<String, Value>, mut resources: Map<String, Value>) {
    if let Some(cpu) = resources.remove("cpu") {
        let cores = cpu.get("cores").cloned().unwrap_or(json!(0));
        let arch = cpu
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .unwrap_or("amd64");
        props
            .entry("cpus")
            .or_insert(json!([{"cores": cores, "architecture": arch}]));
    }
    for (key, value) in resources {
        props.entry(key).or_insert(value);
    }
}

pub fn canonical_architecture(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn walk_capabilities(w: &mut Walk<'_>, tree: &Value) {
    let Some(root) = w.object(tree, "") else {
        return;
    };
    w.no_unknown_fields(root, &["properties", "labels"], "");
    if let Some(labels) = root.get("labels")
        && let Some(m) = w.object(labels, "labels")
    {
        for (k, v) in m {
            let ok = match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
                Value::Array(items) => {
                    items.iter().all(Value::is_string) || items.iter().all(Value::is_number)
                }
                _ => false,
            };
            if !ok {
                w.problem(
                    join("labels", k),
                    "a label is a string, number, boolean, or a list of strings or of numbers",
                );
            }
        }
    }
    let Some(props) = w.required(root, "properties", "") else {
        return;
    };
    let Some(m) = w.object(props, "properties") else {
        return;
    };
    let p = "properties";
    w.no_unknown_fields(
        m,
        &[
            "id",
            "vendor",
            "modelNumber",
            "serialNumber",
            "cpus",
            "memory",
            "storage",
            "peripherals",
            "interfaces",
            "otelCollector",
            "supportedRuntimes",
            "supportedDeploymentTypes",
        ],
        p,
    );
    if let Some(id) = w.required_str(m, "id", p)
        && !id.split('/').all(crate::ids::is_device_segment)
    {
        w.problem("properties.id", format!("{id:?} is not a device id"));
    }
    for key in ["vendor", "modelNumber", "serialNumber"] {
        w.required_str(m, key, p);
    }
    for (i, cpu) in m
        .get("cpus")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cp = index("properties.cpus", i);
        if cpu
            .get("cores")
            .and_then(Value::as_f64)
            .is_none_or(|c| c <= 0.0)
        {
            w.problem(join(&cp, "cores"), "must be a positive number");
        }
        enum_field(
            w,
            cpu.get("architecture"),
            &join(&cp, "architecture"),
            &ARCHITECTURES,
        );
    }
    for key in ["memory", "storage"] {
        if let Some(q) = w.optional_str(m, key, p)
            && super::quantity::parse_bytes(&q).is_none()
        {
            w.problem(
                join(p, key),
                format!("{q:?} is not a binary quantity such as 64Gi"),
            );
        }
    }
    typed_list(w, m, "peripherals", &PERIPHERALS);
    typed_list(w, m, "interfaces", &INTERFACES);
    enum_list(w, m, "supportedRuntimes", &RUNTIMES);
    enum_list(w, m, "supportedDeploymentTypes", &DEPLOYMENT_TYPES);
}

fn enum_field(w: &mut Walk<'_>, v: Option<&Value>, path: &str, allowed: &[&str]) {
    match v.and_then(Value::as_str) {
        Some(s) if allowed.contains(&s) => {}
        Some(s) => w.problem(path, format!("{s:?} is not one of {}", allowed.join(", "))),
        None => w.problem(path, "required field is missing"),
    }
}

fn typed_list(w: &mut Walk<'_>, m: &Map<String, Value>, key: &str, allowed: &[&str]) {
    let path = join("properties", key);
    for (i, item) in m
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        enum_field(
            w,
            item.get("type"),
            &join(&index(&path, i), "type"),
            allowed,
        );
    }
}

fn enum_list(w: &mut Walk<'_>, m: &Map<String, Value>, key: &str, allowed: &[&str]) {
    let path = join("properties", key);
    for (i, item) in m
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        enum_field(w, Some(item), &index(&path, i), allowed);
    }
}
