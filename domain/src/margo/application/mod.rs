//! The Margo ApplicationDescription (`margo.yaml`): what an application is and how it deploys.

mod check;

pub use check::{BUILT_IN_CUSTOM_RUNTIMES, is_margo_revision};
pub(crate) use check::{walk_components, walk_parameters};

use super::constraints::DeviceConstraints;
use super::walk::Walk;
use crate::Problems;
use check::walk_description;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Extension key EOS reads on a `custom` deployment profile to name its runtime driver.
pub const EOS_EXTENSIONS: &str = "x-eos-extensions";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDescription {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: AppMetadata,
    pub deployment_profiles: Vec<DeploymentProfile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub version: String,
    #[serde(default)]
    pub catalog: Catalog,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    #[serde(default)]
    pub application: CatalogApplication,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub author: Vec<Person>,
    #[serde(default)]
    pub organization: Vec<Organization>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogApplication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagline: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Organization {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileType {
    Helm,
    Compose,
    Custom,
}

impl ProfileType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Helm => "helm",
            Self::Compose => "compose",
            Self::Custom => "custom",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentProfile {
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub components: Vec<Component>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_constraints: Option<DeviceConstraints>,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

impl DeploymentProfile {
    /// The runtime EOS runs this profile with: `helm`, `compose`, or for `custom` profiles the
    /// `runtime` named in `x-eos-extensions` (for example `wasm`).
    pub fn runtime(&self) -> Option<String> {
        match self.profile_type {
            ProfileType::Helm => Some("helm".into()),
            ProfileType::Compose => Some("compose".into()),
            ProfileType::Custom => custom_runtime(&self.extensions),
        }
    }
}

pub(crate) fn custom_runtime(extensions: &BTreeMap<String, Value>) -> Option<String> {
    extensions
        .get(EOS_EXTENSIONS)?
        .get("runtime")?
        .as_str()
        .map(str::to_owned)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub name: String,
    pub properties: ComponentProperties,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// PR1 compose form: an HTTP(S) URL of the compose archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_location: Option<String>,
    /// PR1 compose form: a PGP public key URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub targets: Vec<ParameterTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterTarget {
    pub pointer: String,
    pub components: Vec<String>,
}

impl ApplicationDescription {
    /// Parses and validates a description, returning every problem with its field path.
    pub fn from_yaml(text: &str) -> Result<Self, Problems> {
        let mut tree = super::parse_tree(text)?;
        let mut problems = Problems::default();
        normalize(&mut tree);
        walk_description(&mut Walk::new(&mut problems), &tree);
        problems.into_result(())?;
        let ad: Self = super::typed(tree)?;
        let declared: Vec<&str> = ad.parameters.keys().map(String::as_str).collect();
        if let Some(config) = super::configuration::Configuration::parse(ad.configuration.as_ref())?
        {
            config.check(&declared).into_result(())?;
        }
        Ok(ad)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a description always serializes")
    }

    pub fn profile(&self, id: &str) -> Option<&DeploymentProfile> {
        self.deployment_profiles.iter().find(|p| p.id == id)
    }
}

/// Brings PR1 shapes into rc.3 form: `metadata.id` → `id`, `requiredResources` → `deviceConstraints`,
/// `wait: "true"` → `wait: true`, numeric versions → strings.
fn normalize(tree: &mut Value) {
    let Some(root) = tree.as_object_mut() else {
        return;
    };
    if !root.contains_key("id")
        && let Some(id) = root
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove("id"))
    {
        root.insert("id".into(), id);
    }
    if let Some(Value::Number(n)) = root.get("metadata").and_then(|m| m.get("version")).cloned() {
        root["metadata"]["version"] = Value::String(n.to_string());
    }
    let Some(Value::Array(profiles)) = root.get_mut("deploymentProfiles") else {
        return;
    };
    for profile in profiles.iter_mut().filter_map(Value::as_object_mut) {
        if let Some(required) = profile.remove("requiredResources") {
            profile
                .entry("deviceConstraints")
                .or_insert_with(|| required_resources_to_constraints(&required));
        }
        normalize_components(profile.get_mut("components"));
    }
}

pub(crate) fn normalize_components(components: Option<&mut Value>) {
    let Some(Value::Array(components)) = components else {
        return;
    };
    for props in components
        .iter_mut()
        .filter_map(|c| c.get_mut("properties"))
        .filter_map(Value::as_object_mut)
    {
        for key in ["revision"] {
            if let Some(Value::Number(n)) = props.get(key).cloned() {
                props.insert(key.into(), Value::String(n.to_string()));
            }
        }
        match props.get("wait") {
            Some(Value::String(s)) if s == "true" => {
                props.insert("wait".into(), Value::Bool(true));
            }
            Some(Value::String(s)) if s == "false" => {
                props.insert("wait".into(), Value::Bool(false));
            }
            _ => {}
        }
    }
}

/// Maps PR1 `requiredResources` onto rc.3 `deviceConstraints`: capacity stays capacity, and each
/// required peripheral or interface becomes a `ContainsAll` property expression.
fn required_resources_to_constraints(required: &Value) -> Value {
    let Some(m) = required.as_object() else {
        return required.clone();
    };
    let mut capacity = Map::new();
    for key in ["cpu", "memory", "storage"] {
        if let Some(v) = m.get(key) {
            capacity.insert(key.into(), v.clone());
        }
    }
    let mut expressions = Vec::new();
    for (list, pointer) in [
        ("peripherals", "/peripherals"),
        ("interfaces", "/interfaces"),
    ] {
        for item in m.get(list).and_then(Value::as_array).into_iter().flatten() {
            let item_exprs: Vec<Value> = item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| json!({"key": format!("/{k}"), "operator": "In", "values": [v]}))
                .collect();
            expressions.push(json!({"key": pointer, "operator": "ContainsAll", "itemSelector": {"matchExpressions": item_exprs}}));
        }
    }
    let mut out = Map::new();
    if !capacity.is_empty() {
        out.insert("capacityRequirements".into(), Value::Object(capacity));
    }
    if !expressions.is_empty() {
        out.insert(
            "eligibilityRules".into(),
            json!([{"propertySelector": {"matchExpressions": expressions}}]),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
apiVersion: margo.org/v1-alpha1
kind: ApplicationDescription
id: com-example-hello
metadata:
  name: Hello
  version: 1.0.0
  catalog:
    organization: [{name: Example}]
deploymentProfiles:
  - type: custom
    id: hello-wasm
    x-eos-extensions: {runtime: wasm}
    components:
      - name: hello
        properties: {repository: ./hello.wat, revision: 1.0.0}
"#;

    #[test]
    fn a_plugin_runtime_takes_any_uri_a_built_in_one_does_not() {
        let notes = MINIMAL
            .replace("{runtime: wasm}", "{runtime: notes}")
            .replace("./hello.wat", "\"note://buy milk\"");
        ApplicationDescription::from_yaml(&notes).unwrap();
        let wasm = MINIMAL.replace("./hello.wat", "\"note://buy milk\"");
        let problems = ApplicationDescription::from_yaml(&wasm)
            .unwrap_err()
            .to_string();
        assert!(problems.contains("properties.repository"), "{problems}");
        let no_scheme = notes.replace("note://buy milk", "buy milk");
        assert!(ApplicationDescription::from_yaml(&no_scheme).is_err());
    }

    #[test]
    fn a_minimal_wasm_description_is_accepted() {
        let ad = ApplicationDescription::from_yaml(MINIMAL).unwrap();
        assert_eq!(ad.deployment_profiles[0].runtime().as_deref(), Some("wasm"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let bad = MINIMAL
            .replace("type: custom", "type: helm")
            .replace("revision: 1.0.0}", "revision: v1}")
            .replace("name: hello\n", "name: Hello_\n");
        let problems = ApplicationDescription::from_yaml(&bad).unwrap_err();
        let text = problems.to_string();
        assert!(
            text.contains(
                "deploymentProfiles[0].components[0].properties.repository: not an oci:// reference"
            ),
            "{text}"
        );
        assert!(
            text.contains("deploymentProfiles[0].components[0].properties.revision"),
            "{text}"
        );
        assert!(
            text.contains("deploymentProfiles[0].components[0].name"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_but_extensions_are_kept() {
        let bad = MINIMAL.replace(
            "id: com-example-hello",
            "id: com-example-hello\nfoo: 1\nx-acme-extensions: {a: 1}",
        );
        let problems = ApplicationDescription::from_yaml(&bad).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems}");
        assert!(problems.mentions("foo"));
    }

    #[test]
    fn container_settings_of_oci_components_are_checked_where_they_are() {
        let oci = MINIMAL
            .replace("{runtime: wasm}", "{runtime: oci}")
            .replace(
                "properties: {repository: ./hello.wat, revision: 1.0.0}",
                "properties: {repository: oci://127.0.0.1:5000/web, revision: 1.0.0}\n        \
                 x-eos-extensions:\n          container: {ports: [\"8080:80\"], memory: 64Mi}",
            );
        let ad = ApplicationDescription::from_yaml(&oci).unwrap_or_else(|p| panic!("{p}"));
        let ext = &ad.deployment_profiles[0].components[0].extensions[EOS_EXTENSIONS];
        assert_eq!(ext["container"]["ports"][0], "8080:80");

        let bad = oci.replace("64Mi", "lots");
        let problems = ApplicationDescription::from_yaml(&bad).unwrap_err();
        assert!(
            problems
                .to_string()
                .contains("deploymentProfiles[0].components[0].x-eos-extensions.container.memory"),
            "{problems}"
        );
        let on_wasm = oci.replace("{runtime: oci}", "{runtime: wasm}");
        let problems = ApplicationDescription::from_yaml(&on_wasm).unwrap_err();
        assert!(
            problems
                .to_string()
                .contains("for components of the oci runtime"),
            "{problems}"
        );
    }

    #[test]
    fn a_component_restart_policy_is_one_eos_knows() {
        let with = |policy: &str| {
            MINIMAL.replace(
                "properties: {repository: ./hello.wat, revision: 1.0.0}",
                &format!(
                    "properties: {{repository: ./hello.wat, revision: 1.0.0}}\n        x-eos-extensions: {{restart: {policy}}}"
                ),
            )
        };
        ApplicationDescription::from_yaml(&with("on-failure")).unwrap_or_else(|p| panic!("{p}"));
        let problems = ApplicationDescription::from_yaml(&with("sometimes")).unwrap_err();
        assert!(
            problems
                .to_string()
                .contains("deploymentProfiles[0].components[0].x-eos-extensions.restart")
                && problems.to_string().contains("always, on-failure, never"),
            "{problems}"
        );
    }

    #[test]
    fn revisions_follow_margo_semver() {
        assert!(is_margo_revision("1.0.9"));
        assert!(is_margo_revision("1.0.0-rc.1_build.5"));
        assert!(!is_margo_revision("v1.0.0"));
        assert!(!is_margo_revision("1.0"));
        assert!(!is_margo_revision("01.0.0"));
    }
}
