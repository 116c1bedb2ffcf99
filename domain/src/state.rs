//! Desired and actual state of the workloads on one device, in the unit the EN runs: a component.

use crate::ids::{DeploymentId, DeviceId};
use crate::margo::ApplicationDeployment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything an EN needs to run one component; two equal specs are the same revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ComponentSpec {
    pub name: String,
    /// The driver that runs it: `wasm`, `oci`, `compose`, `helm`, or a plugin's name.
    pub runtime: String,
    pub repository: String,
    pub revision: String,
    pub app_version: String,
    /// Parameter values that target this component, by pointer (environment variable or value path).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The component's `x-eos-extensions` as the description gave them (for `oci`, the
    /// container settings: see [`crate::container`]); null when there are none.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
    /// The tenant's signature policy when the deployment was made, if it requires signatures:
    /// the EN verifies the artifact before it starts anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<crate::signing::SignaturePolicy>,
    /// The tenant's workload security grants when the deployment was made, if it has any
    /// beyond the strict default; the EN narrows them to its own ceiling before a driver sees
    /// the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<crate::workload::WorkloadPolicy>,
}

/// One deployment's components on one device, in install order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInstance {
    pub app_id: String,
    pub components: Vec<ComponentSpec>,
}

/// When the EN restarts a component that stopped: `x-eos-extensions.restart` of the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Whenever it stops (the default: EOS workloads are services).
    #[default]
    Always,
    /// When it stops with an error; one that exits with status 0 has finished.
    OnFailure,
    /// Never: a component that stops stays stopped, and failed if it failed.
    Never,
}

impl RestartPolicy {
    pub const NAMES: [&'static str; 3] = ["always", "on-failure", "never"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "always" => Some(Self::Always),
            "on-failure" => Some(Self::OnFailure),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

impl ComponentSpec {
    /// The component's restart policy (`always` unless its `x-eos-extensions.restart` says
    /// otherwise; descriptions are checked when added, so an unknown value cannot get here).
    pub fn restart_policy(&self) -> RestartPolicy {
        self.settings
            .get("restart")
            .and_then(|v| v.as_str())
            .and_then(RestartPolicy::parse)
            .unwrap_or_default()
    }

    /// The digest of a file an application package carries (`./hello.wat` in the package,
    /// `eos-artifact:sha256:<hex>` once the CO keeps it), which ENs get through their LO.
    pub fn package_artifact(&self) -> Option<&str> {
        self.repository
            .strip_prefix(PACKAGE_ARTIFACT)
            .filter(|d| is_sha256_digest(d))
    }

    /// The registry reference of an `oci://HOST/NAME` repository, with `revision` as the tag
    /// unless the repository has a tag or digest already; `None` for other repositories.
    pub fn oci_reference(&self) -> Option<String> {
        oci_reference_of(&self.repository, &self.revision)
    }
}

/// The registry reference of an `oci://HOST/NAME` `repository`, with `revision` as the tag
/// unless the repository has a tag or digest already; `None` for other repositories.
pub fn oci_reference_of(repository: &str, revision: &str) -> Option<String> {
    let repo = repository
        .strip_prefix("oci://")
        .filter(|r| !r.is_empty())?;
    let last = repo.rsplit('/').next().unwrap_or(repo);
    if last.contains(':') || last.contains('@') || revision.is_empty() {
        Some(repo.to_owned())
    } else {
        Some(format!("{repo}:{revision}"))
    }
}

/// The repository scheme of a file a package carries, kept by the CO and named by its digest.
pub const PACKAGE_ARTIFACT: &str = "eos-artifact:";

/// Whether `digest` is `sha256:` and 64 lowercase hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl AppInstance {
    pub fn component(&self, name: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// What should run, or what runs, on one device, by deployment.
pub type DeviceWorkloads = BTreeMap<DeploymentId, AppInstance>;

/// Turns a Margo deployment into the components an EN runs, with parameters resolved per component.
pub fn instance_of(deployment: &ApplicationDeployment) -> AppInstance {
    let profile = &deployment.spec.deployment_profile;
    let runtime = profile
        .runtime()
        .unwrap_or_else(|| profile.profile_type.as_str().to_owned());
    let app_version = deployment
        .metadata
        .labels
        .get(crate::margo::deployment::LABEL_APP_VERSION)
        .cloned()
        .unwrap_or_default();
    let signatures = deployment
        .metadata
        .annotations
        .get(crate::signing::ANNOTATION)
        .map(|text| {
            // A policy that cannot be read is enforced as one no artifact satisfies.
            serde_json::from_str::<crate::signing::SignaturePolicy>(text).unwrap_or(
                crate::signing::SignaturePolicy {
                    required: true,
                    public_keys: Vec::new(),
                },
            )
        })
        .filter(|p| p.required);
    let workload = deployment
        .metadata
        .annotations
        .get(crate::workload::ANNOTATION)
        .map(|text| crate::workload::WorkloadPolicy::from_annotation(Some(text)))
        .filter(|p| !p.is_strict());
    let components = profile
        .components
        .iter()
        .map(|c| ComponentSpec {
            name: c.name.clone(),
            runtime: runtime.clone(),
            repository: c
                .properties
                .repository
                .clone()
                .or_else(|| c.properties.package_location.clone())
                .unwrap_or_default(),
            revision: c.properties.revision.clone().unwrap_or_default(),
            app_version: app_version.clone(),
            parameters: parameters_for(deployment, &c.name),
            settings: c
                .extensions
                .get(crate::margo::application::EOS_EXTENSIONS)
                .cloned()
                .unwrap_or_default(),
            signatures: signatures.clone(),
            workload: workload.clone(),
        })
        .collect();
    AppInstance {
        app_id: deployment.spec.application_id.clone(),
        components,
    }
}

fn parameters_for(deployment: &ApplicationDeployment, component: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in deployment.spec.parameters.values() {
        let Some(value) = &p.value else { continue };
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for t in p
            .targets
            .iter()
            .filter(|t| t.components.iter().any(|c| c == component))
        {
            out.insert(t.pointer.clone(), text.clone());
        }
    }
    out
}

/// A device's place in a site's plan: which deployments go where.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SitePlan {
    pub devices: BTreeMap<DeviceId, DeviceWorkloads>,
}

/// `HOST/NAME` of an OCI reference `HOST/NAME:TAG` or `HOST/NAME@sha256:…`: what the versions of
/// one artifact share, so that the EN keeps the newest few of each.
pub fn repository_of(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_is_the_reference_without_tag_or_digest() {
        assert_eq!(
            repository_of("127.0.0.1:5000/eos/web:1.2"),
            "127.0.0.1:5000/eos/web"
        );
        assert_eq!(
            repository_of("127.0.0.1:5000/eos/web"),
            "127.0.0.1:5000/eos/web"
        );
        assert_eq!(
            repository_of("registry.example.com/web@sha256:abcd"),
            "registry.example.com/web"
        );
        assert_eq!(repository_of("busybox:1"), "busybox");
    }
}
