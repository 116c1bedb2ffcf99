//! Placement: which device of a site runs a deployment. Margo `deviceConstraints` and runtimes are
//! matched against device capabilities; eligible devices are scored; every device not chosen gets
//! a reason.

use crate::ids::{DeviceId, DeviceTarget};
use crate::margo::capabilities::canonical_architecture;
use crate::margo::constraints::DeviceConstraints;
use crate::margo::quantity::parse_bytes;
use crate::margo::{ApplicationDeployment, DeviceCapabilities};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The capabilities label on which EOS lists the runtimes an EN's drivers can run.
pub const RUNTIMES_LABEL: &str = "eos.dev/runtimes";

/// Whether a device takes workloads: an operator cordons a device so it takes no new ones
/// (what runs there stays), or drains it so what runs there moves elsewhere and it takes none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Open,
    Cordoned,
    Draining,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Cordoned => "cordoned",
            Self::Draining => "draining",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Cordoned, Self::Draining]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub device: DeviceId,
    pub capabilities: DeviceCapabilities,
    pub online: bool,
    pub schedule: Schedule,
    /// Deployments already placed on it (lowers its score).
    pub load: usize,
}

impl Candidate {
    pub fn runtimes(&self) -> Vec<String> {
        match self.capabilities.labels.get(RUNTIMES_LABEL) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub device: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub chosen: Option<DeviceId>,
    pub rejected: Vec<Rejection>,
}

impl Placement {
    /// One line saying why nothing was chosen, for status reports.
    pub fn why_not_placeable(&self) -> String {
        if self.rejected.is_empty() {
            return "no device is registered at this site".into();
        }
        self.rejected
            .iter()
            .map(|r| format!("{}: {}", r.device, r.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Chooses a device for a deployment. `current` (where it runs now) is kept while still eligible,
/// also when it is cordoned; a draining device is never chosen, so what runs there moves.
pub fn place(
    deployment: &ApplicationDeployment,
    candidates: &[Candidate],
    current: Option<&DeviceId>,
) -> Placement {
    let profile = &deployment.spec.deployment_profile;
    let runtime = profile.runtime();
    let pinned = match deployment.target() {
        Some(DeviceTarget::Pinned(d)) => Some(d),
        _ => None,
    };
    let mut eligible = Vec::new();
    let mut rejected = Vec::new();
    for c in candidates {
        let verdict = match (&pinned, c.schedule) {
            (Some(p), _) if *p != c.device => Err(format!("the deployment is pinned to {p}")),
            (_, Schedule::Draining) => Err("draining: what runs there moves elsewhere".into()),
            (_, Schedule::Cordoned) if Some(&c.device) != current => {
                Err("cordoned: takes no new workloads".into())
            }
            _ => check(c, runtime.as_deref(), profile.device_constraints.as_ref()),
        };
        match verdict {
            Ok(()) => eligible.push(c),
            Err(reason) => rejected.push(Rejection {
                device: c.device.to_string(),
                reason,
            }),
        }
    }
    if let Some(p) = &pinned
        && !candidates.iter().any(|c| &c.device == p)
    {
        rejected.push(Rejection {
            device: p.to_string(),
            reason: "no such device is registered at this site".into(),
        });
    }
    let chosen = eligible
        .iter()
        .find(|c| Some(&c.device) == current)
        .or_else(|| {
            eligible.iter().max_by(|a, b| {
                score(a)
                    .total_cmp(&score(b))
                    .then_with(|| b.device.cmp(&a.device))
            })
        })
        .map(|c| c.device.clone());
    for c in eligible
        .iter()
        .filter(|c| Some(&c.device) != chosen.as_ref())
    {
        rejected.push(Rejection {
            device: c.device.to_string(),
            reason: format!("eligible, but scored lower ({:.1})", score(c)),
        });
    }
    Placement { chosen, rejected }
}

/// Free capacity, less a penalty per deployment already there.
pub fn score(c: &Candidate) -> f64 {
    let memory_gib = c
        .capabilities
        .properties
        .memory
        .as_deref()
        .and_then(parse_bytes)
        .unwrap_or(0) as f64
        / (1u64 << 30) as f64;
    c.capabilities.total_cores() + memory_gib / 4.0 - 2.0 * c.load as f64
}

/// Why a device cannot run a profile, if it cannot.
pub fn check(
    c: &Candidate,
    runtime: Option<&str>,
    constraints: Option<&DeviceConstraints>,
) -> Result<(), String> {
    if !c.online {
        return Err("offline".into());
    }
    match runtime {
        None => return Err("the profile names no runtime".into()),
        Some(rt) if !c.runtimes().iter().any(|r| r == rt) => {
            return Err(format!(
                "no {rt} runtime (has: {})",
                c.runtimes().join(", ")
            ));
        }
        Some(_) => {}
    }
    let Some(constraints) = constraints else {
        return Ok(());
    };
    check_capacity(c, constraints)?;
    check_eligibility(c, constraints)
}

fn check_capacity(c: &Candidate, constraints: &DeviceConstraints) -> Result<(), String> {
    let Some(cap) = &constraints.capacity_requirements else {
        return Ok(());
    };
    let props = &c.capabilities.properties;
    if let Some(cpu) = &cap.cpu {
        let have = c.capabilities.total_cores();
        if have < cpu.cores {
            return Err(format!("needs {} CPU cores, has {have}", cpu.cores));
        }
        let archs: Vec<&str> = props
            .cpus
            .iter()
            .map(|x| canonical_architecture(&x.architecture))
            .collect();
        if !cpu.architectures.is_empty()
            && !cpu
                .architectures
                .iter()
                .any(|a| archs.contains(&canonical_architecture(a)))
        {
            return Err(format!(
                "needs architecture {}, has {}",
                cpu.architectures.join(" or "),
                archs.join(", ")
            ));
        }
    }
    for (what, need, have) in [
        ("memory", &cap.memory, &props.memory),
        ("storage", &cap.storage, &props.storage),
    ] {
        let Some(need) = need else { continue };
        let need_bytes = parse_bytes(need).unwrap_or(u64::MAX);
        if have.as_deref().and_then(parse_bytes).unwrap_or(0) < need_bytes {
            return Err(format!(
                "needs {what} {need}, has {}",
                have.as_deref().unwrap_or("none")
            ));
        }
    }
    Ok(())
}

fn check_eligibility(c: &Candidate, constraints: &DeviceConstraints) -> Result<(), String> {
    if constraints.eligibility_rules.is_empty() {
        return Ok(());
    }
    let props = c.capabilities.properties_tree();
    let labels = &c.capabilities.labels;
    let property_lookup = |k: &str| props.pointer(k).cloned();
    let label_lookup = |k: &str| labels.get(k).cloned();
    let any = constraints.eligibility_rules.iter().any(|rule| {
        rule.property_selector
            .as_ref()
            .is_none_or(|s| s.matches(&property_lookup))
            && rule
                .label_selector
                .as_ref()
                .is_none_or(|s| s.matches(&label_lookup))
    });
    if any {
        Ok(())
    } else {
        Err("matches none of the eligibility rules".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate(host: &str, cores: f64, runtimes: &[&str], gpu: bool) -> Candidate {
        let peripherals = if gpu {
            json!([{"type": "gpu", "manufacturer": "NVIDIA"}])
        } else {
            json!([])
        };
        let caps = json!({"properties": {"id": format!("s1/{host}"), "vendor": "v", "modelNumber": "m", "serialNumber": "s",
            "cpus": [{"cores": cores, "architecture": "amd64"}], "memory": "8Gi", "storage": "100Gi", "peripherals": peripherals},
            "labels": {RUNTIMES_LABEL: runtimes}});
        Candidate {
            device: DeviceId::parse(&format!("s1/{host}")).unwrap(),
            capabilities: DeviceCapabilities::from_json(&caps.to_string()).unwrap(),
            online: true,
            schedule: Schedule::Open,
            load: 0,
        }
    }

    fn deployment(target: &str, constraints: Value) -> ApplicationDeployment {
        let doc = json!({"id": "00000000-0000-4000-8000-000000000001", "metadata": {"name": "d", "deviceId": target},
            "spec": {"applicationId": "app", "deploymentProfile": {"type": "custom", "x-eos-extensions": {"runtime": "wasm"},
            "deviceConstraints": constraints, "components": [{"name": "c", "properties": {"repository": "./m.wat", "revision": "1.0.0"}}]}}});
        ApplicationDeployment::from_yaml(&doc.to_string()).unwrap()
    }

    #[test]
    fn chooses_the_best_eligible_device_and_says_why_not_the_others() {
        let d = deployment(
            "s1/*",
            json!({"capacityRequirements": {"cpu": {"cores": 2}}}),
        );
        let cs = [
            candidate("small", 1.0, &["wasm"], false),
            candidate("big", 8.0, &["wasm"], false),
            candidate("mid", 4.0, &["wasm"], false),
            candidate("oci", 16.0, &["oci"], false),
        ];
        let p = place(&d, &cs, None);
        assert_eq!(p.chosen.unwrap().host().as_str(), "big");
        let reasons: Vec<String> = p
            .rejected
            .iter()
            .map(|r| format!("{}: {}", r.device, r.reason))
            .collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("s1/small: needs 2 CPU cores")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("s1/oci: no wasm runtime")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("s1/mid: eligible, but scored lower")),
            "{reasons:?}"
        );
    }

    #[test]
    fn eligibility_rules_select_gpu_devices_and_pins_are_honoured() {
        let gpu_rule = json!({"eligibilityRules": [{"propertySelector": {"matchExpressions": [{"key": "/peripherals", "operator": "ContainsAll",
            "itemSelector": {"matchExpressions": [{"key": "/type", "operator": "In", "values": ["gpu"]}]}}]}}]});
        let cs = [
            candidate("plain", 8.0, &["wasm"], false),
            candidate("gpu", 2.0, &["wasm"], true),
        ];
        assert_eq!(
            place(&deployment("s1/*", gpu_rule.clone()), &cs, None)
                .chosen
                .unwrap()
                .host()
                .as_str(),
            "gpu"
        );
        assert!(
            place(&deployment("s1/plain", gpu_rule), &cs, None)
                .chosen
                .is_none()
        );
        let p = place(&deployment("s1/ghost", json!({})), &cs, None);
        assert!(p.chosen.is_none());
        assert!(
            p.why_not_placeable().contains("s1/ghost: no such device"),
            "{}",
            p.why_not_placeable()
        );
    }

    #[test]
    fn a_running_placement_is_kept_while_eligible() {
        let cs = [
            candidate("a", 2.0, &["wasm"], false),
            candidate("b", 8.0, &["wasm"], false),
        ];
        let d = deployment("s1/*", json!({}));
        assert_eq!(
            place(&d, &cs, Some(&cs[0].device)).chosen.as_ref(),
            Some(&cs[0].device)
        );
    }

    #[test]
    fn a_cordoned_device_keeps_what_runs_there_and_a_draining_one_gives_it_up() {
        let mut cs = [
            candidate("a", 2.0, &["wasm"], false),
            candidate("b", 8.0, &["wasm"], false),
        ];
        cs[1].schedule = Schedule::Cordoned;
        let d = deployment("s1/*", json!({}));
        let new = place(&d, &cs, None);
        assert_eq!(
            new.chosen.as_ref(),
            Some(&cs[0].device),
            "b scores higher, but is cordoned"
        );
        assert!(
            new.why_not_placeable()
                .contains("s1/b: cordoned: takes no new workloads"),
            "{}",
            new.why_not_placeable()
        );
        assert_eq!(
            place(&d, &cs, Some(&cs[1].device)).chosen.as_ref(),
            Some(&cs[1].device),
            "what runs on a cordoned device stays"
        );
        cs[1].schedule = Schedule::Draining;
        assert_eq!(
            place(&d, &cs, Some(&cs[1].device)).chosen.as_ref(),
            Some(&cs[0].device),
            "what runs on a draining device moves"
        );
        let pinned = place(&deployment("s1/b", json!({})), &cs, Some(&cs[1].device));
        assert!(
            pinned.chosen.is_none(),
            "a pin does not hold a draining device"
        );
        assert!(pinned.why_not_placeable().contains("s1/b: draining"));
        for s in [Schedule::Open, Schedule::Cordoned, Schedule::Draining] {
            assert_eq!(Schedule::parse(s.as_str()), Some(s));
        }
        assert_eq!(Schedule::parse("closed"), None);
    }
}
