//! Rendering: the CO turns an application version and a deployment request into the Margo
//! ApplicationDeployment committed for the site.

use crate::Problems;
use crate::ids::{DeploymentId, DeviceTarget};
use crate::margo::ApplicationDeployment;
use crate::margo::application::{ApplicationDescription, Parameter};
use crate::margo::deployment::{
    DeploymentMetadata, DeploymentSpec, LABEL_APP_VERSION, ProfileSpec,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// Namespace EOS writes into `metadata.namespace`.
pub const NAMESPACE: &str = "eos";

pub struct RenderRequest<'a> {
    pub id: &'a DeploymentId,
    pub description: &'a ApplicationDescription,
    pub profile_id: &'a str,
    pub target: &'a DeviceTarget,
    /// Values that override the description's defaults, by parameter name.
    pub parameters: &'a BTreeMap<String, Value>,
    /// When updating, the values the deployment was installed with (immutable settings keep
    /// them).
    pub installed: Option<&'a BTreeMap<String, Value>>,
    /// The tenant's signature policy; one that requires signatures is written into the
    /// deployment (`spec.x-eos-signatures`) for the EN to enforce.
    pub signatures: Option<&'a crate::signing::SignaturePolicy>,
    /// The tenant's workload security grants; beyond the strict default they are written into
    /// the deployment (the `eos.dev/workload-policy` annotation) for the EN to enforce within
    /// its own ceiling.
    pub workload: Option<&'a crate::workload::WorkloadPolicy>,
}

/// Renders the deployment; an unknown profile or parameter, or a value its configuration's
/// schema refuses, is a problem with its path.
pub fn render(req: &RenderRequest<'_>) -> Result<ApplicationDeployment, Problems> {
    let mut problems = Problems::default();
    let ad = req.description;
    let Some(profile) = ad.profile(req.profile_id) else {
        problems.push(
            "profile",
            format!(
                "{:?} is not a deployment profile of {} (has: {})",
                req.profile_id,
                ad.id,
                ad.deployment_profiles
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return Err(problems);
    };
    for name in req.parameters.keys() {
        if !ad.parameters.contains_key(name) {
            problems.push(
                format!("parameters.{name}"),
                format!("{} declares no such parameter", ad.id),
            );
        }
    }
    match crate::margo::configuration::Configuration::parse(ad.configuration.as_ref()) {
        Ok(Some(config)) => problems
            .0
            .extend(config.check_values(req.parameters, req.installed).0),
        Ok(None) => {}
        Err(p) => problems.0.extend(p.0),
    }
    problems.into_result(())?;
    let component_names: Vec<&str> = profile.components.iter().map(|c| c.name.as_str()).collect();
    let parameters = ad
        .parameters
        .iter()
        .filter_map(|(name, p)| {
            let targets: Vec<_> = p
                .targets
                .iter()
                .filter(|t| {
                    t.components
                        .iter()
                        .any(|c| component_names.contains(&c.as_str()))
                })
                .cloned()
                .collect();
            let value = req
                .parameters
                .get(name)
                .cloned()
                .or_else(|| p.value.clone());
            (!targets.is_empty()).then(|| (name.clone(), Parameter { value, targets }))
        })
        .collect();
    Ok(ApplicationDeployment {
        id: req.id.to_string(),
        metadata: DeploymentMetadata {
            name: format!("{}-{}", ad.id, &req.id.as_str()[..8]),
            namespace: Some(NAMESPACE.into()),
            device_id: Some(req.target.to_string()),
            labels: BTreeMap::from([(LABEL_APP_VERSION.to_owned(), ad.metadata.version.clone())]),
            annotations: req
                .signatures
                .filter(|p| p.required)
                .map(|p| {
                    let policy = serde_json::to_string(p).expect("a policy is JSON");
                    (crate::signing::ANNOTATION.to_owned(), policy)
                })
                .into_iter()
                .chain(req.workload.filter(|p| !p.is_strict()).map(|p| {
                    let policy = serde_json::to_string(p).expect("a policy is JSON");
                    (crate::workload::ANNOTATION.to_owned(), policy)
                }))
                .collect(),
        },
        spec: DeploymentSpec {
            application_id: ad.id.clone(),
            deployment_profile: ProfileSpec {
                profile_type: profile.profile_type,
                components: profile.components.clone(),
                device_constraints: profile.device_constraints.clone(),
                extensions: profile.extensions.clone(),
            },
            parameters,
            extensions: BTreeMap::new(),
        },
    })
}
