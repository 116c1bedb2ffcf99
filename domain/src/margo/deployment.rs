//! The Margo ApplicationDeployment: one application's desired state on one device (or on any
//! eligible device of a gateway, `<site>/*`).

use super::application::{
    Component, Parameter, ProfileType, custom_runtime, normalize_components, walk_components,
    walk_parameters,
};
use super::constraints::{DeviceConstraints, walk_constraints};
use super::walk::{Walk, join};
use crate::Problems;
use crate::ids::{DeviceTarget, check_application_id, check_uuid};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDeployment {
    pub id: String,
    pub metadata: DeploymentMetadata,
    pub spec: DeploymentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Notes for the tiers below, not for selection (EOS writes the tenant's signature policy
    /// here: `eos.dev/signature-policy`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub application_id: String,
    pub deployment_profile: ProfileSpec,
    #[serde(default)]
    pub parameters: BTreeMap<String, Parameter>,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    pub components: Vec<Component>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_constraints: Option<DeviceConstraints>,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

impl ProfileSpec {
    /// The runtime that runs this profile's components (see `DeploymentProfile::runtime`).
    pub fn runtime(&self) -> Option<String> {
        match self.profile_type {
            ProfileType::Helm => Some("helm".into()),
            ProfileType::Compose => Some("compose".into()),
            ProfileType::Custom => custom_runtime(&self.extensions),
        }
    }
}

/// Label EOS sets on rendered deployments: the application version they deploy.
pub const LABEL_APP_VERSION: &str = "eos.dev/app-version";

impl ApplicationDeployment {
    /// Parses and validates a deployment (PR1 or rc.3 shape), returning every problem.
    pub fn from_yaml(text: &str) -> Result<Self, Problems> {
        let mut tree = super::parse_tree(text)?;
        let mut problems = Problems::default();
        walk_deployment(&mut Walk::new(&mut problems), &tree);
        problems.into_result(())?;
        normalize(&mut tree);
        super::typed(tree)
    }

    /// The rc.3 YAML form (no apiVersion, no kind).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a deployment always serializes")
    }

    pub fn target(&self) -> Option<DeviceTarget> {
        self.metadata
            .device_id
            .as_deref()
            .and_then(|d| DeviceTarget::parse(d).ok())
    }
}

/// PR1 → rc.3: `metadata.annotations.applicationId` → `spec.applicationId`; apiVersion/kind dropped.
fn normalize(tree: &mut Value) {
    let Some(root) = tree.as_object_mut() else {
        return;
    };
    root.remove("apiVersion");
    root.remove("kind");
    let annotated = root
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| {
            let annotations = m.get_mut("annotations")?.as_object_mut()?;
            let app = annotations.remove("applicationId");
            if annotations.is_empty() {
                m.remove("annotations");
            }
            app
        });
    if let (Some(app), Some(spec)) = (
        annotated,
        root.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        spec.entry("applicationId").or_insert(app);
    }
    if let Some(profile) = root
        .get_mut("spec")
        .and_then(|s| s.get_mut("deploymentProfile"))
    {
        normalize_components(profile.get_mut("components"));
    }
}

fn walk_deployment(w: &mut Walk<'_>, tree: &Value) {
    let Some(root) = w.object(tree, "") else {
        return;
    };
    w.no_unknown_fields(root, &["apiVersion", "kind", "id", "metadata", "spec"], "");
    if let Some(kind) = w.optional_str(root, "kind", "")
        && kind != "ApplicationDeployment"
    {
        w.problem(
            "kind",
            format!("must be ApplicationDeployment, found {kind:?}"),
        );
    }
    if let Some(id) = w.required_str(root, "id", "")
        && let Err(reason) = check_uuid(&id)
    {
        w.problem("id", format!("{id:?}: {reason}"));
    }
    let mut app_id = None;
    if let Some(meta) = w.required(root, "metadata", "") {
        app_id = walk_metadata(w, meta);
    }
    let Some(spec) = w.required(root, "spec", "") else {
        return;
    };
    let Some(s) = w.object(spec, "spec") else {
        return;
    };
    w.no_unknown_fields(
        s,
        &["applicationId", "deploymentProfile", "parameters"],
        "spec",
    );
    match (s.get("applicationId").and_then(Value::as_str), app_id) {
        (Some(id), _) => check_app_id(w, id, "spec.applicationId"),
        (None, Some(_)) => {}
        (None, None) => w.problem("spec.applicationId", "required field is missing"),
    }
    let mut names = Vec::new();
    if let Some(profile) = w.required(s, "deploymentProfile", "spec") {
        walk_profile(w, profile, &mut names);
    }
    if let Some(params) = s.get("parameters") {
        walk_parameters(w, params, "spec.parameters", &names);
    }
}

/// Returns the PR1 `metadata.annotations.applicationId`, when present.
fn walk_metadata(w: &mut Walk<'_>, meta: &Value) -> Option<String> {
    let m = w.object(meta, "metadata")?;
    w.no_unknown_fields(
        m,
        &["name", "namespace", "deviceId", "labels", "annotations"],
        "metadata",
    );
    w.required_str(m, "name", "metadata");
    if let Some(device) = w.optional_str(m, "deviceId", "metadata")
        && !is_margo_device_target(&device)
    {
        w.problem("metadata.deviceId", format!("{device:?} is not a device id (segments of A-Z a-z 0-9 . _ ~ - separated by '/', optionally ending in '/*')"));
    }
    let annotated = m
        .get("annotations")?
        .get("applicationId")?
        .as_str()?
        .to_owned();
    check_app_id(w, &annotated, "metadata.annotations.applicationId");
    Some(annotated)
}

fn is_margo_device_target(s: &str) -> bool {
    let body = s.strip_suffix("/*").unwrap_or(s);
    !body.is_empty() && body.split('/').all(crate::ids::is_device_segment)
}

fn check_app_id(w: &mut Walk<'_>, id: &str, path: &str) {
    if let Err(reason) = check_application_id(id) {
        w.problem(
            path,
            format!("{id:?} is not a valid application id: {reason}"),
        );
    }
}

fn walk_profile(w: &mut Walk<'_>, profile: &Value, names: &mut Vec<String>) {
    let path = "spec.deploymentProfile";
    let Some(m) = w.object(profile, path) else {
        return;
    };
    w.no_unknown_fields(m, &["type", "components", "deviceConstraints"], path);
    let profile_type = w.required_str(m, "type", path).and_then(|t| match t.as_str() {
        "helm" => Some(ProfileType::Helm),
        "compose" => Some(ProfileType::Compose),
        "custom" => Some(ProfileType::Custom),
        other => {
            w.problem(join(path, "type"), format!("unknown deployment profile type {other:?} (expected helm, compose or custom)"));
            None
        }
    });
    if let Some(c) = m.get("deviceConstraints") {
        walk_constraints(w, c, &join(path, "deviceConstraints"));
    }
    if let Some(components) = w.required(m, "components", path) {
        walk_components(
            w,
            components,
            &join(path, "components"),
            profile_type,
            profile_type
                .filter(|t| *t == ProfileType::Custom)
                .and_then(|_| {
                    let ext: std::collections::BTreeMap<String, serde_json::Value> =
                        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    crate::margo::application::custom_runtime(&ext)
                })
                .as_deref(),
            names,
        );
    }
}
