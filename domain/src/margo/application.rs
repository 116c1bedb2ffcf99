//! The Margo ApplicationDescription (`margo.yaml`): what an application is and how it deploys.

use super::constraints::{DeviceConstraints, walk_capacity, walk_constraints};
use super::walk::{Walk, index, join};
use crate::Problems;
use crate::ids::{check_application_id, check_label_name};
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
        super::typed(tree)
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

fn walk_description(w: &mut Walk<'_>, tree: &Value) {
    let Some(root) = w.object(tree, "") else {
        return;
    };
    w.no_unknown_fields(
        root,
        &[
            "apiVersion",
            "kind",
            "id",
            "metadata",
            "deploymentProfiles",
            "parameters",
            "configuration",
        ],
        "",
    );
    w.required_str(root, "apiVersion", "");
    match w.required_str(root, "kind", "").as_deref() {
        Some("ApplicationDescription") | None => {}
        Some(other) => w.problem(
            "kind",
            format!("must be ApplicationDescription, found {other:?}"),
        ),
    }
    if let Some(id) = w.required_str(root, "id", "")
        && let Err(reason) = check_application_id(&id)
    {
        w.problem(
            "id",
            format!("{id:?} is not a valid application id: {reason}"),
        );
    }
    if let Some(meta) = w.required(root, "metadata", "") {
        walk_metadata(w, meta);
    }
    let mut component_names = Vec::new();
    if let Some(profiles) = w.required(root, "deploymentProfiles", "") {
        walk_profiles(w, profiles, &mut component_names);
    }
    if let Some(params) = root.get("parameters") {
        walk_parameters(w, params, "parameters", &component_names);
    }
}

fn walk_metadata(w: &mut Walk<'_>, meta: &Value) {
    let Some(m) = w.object(meta, "metadata") else {
        return;
    };
    w.no_unknown_fields(
        m,
        &["name", "description", "version", "catalog"],
        "metadata",
    );
    w.required_str(m, "name", "metadata");
    if let Some(v) = w.required_str(m, "version", "metadata")
        && crate::ids::AppVersion::parse(&v).is_err()
    {
        w.problem(
            "metadata.version",
            format!("{v:?} is not a usable version (letters, digits and . _ + - only)"),
        );
    }
    let Some(catalog) = w.required(m, "catalog", "metadata") else {
        return;
    };
    let Some(c) = w.object(catalog, "metadata.catalog") else {
        return;
    };
    w.no_unknown_fields(
        c,
        &["application", "author", "organization"],
        "metadata.catalog",
    );
    if let Some(orgs) = w.required(c, "organization", "metadata.catalog") {
        for (i, o) in w
            .list(orgs, "metadata.catalog.organization")
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = index("metadata.catalog.organization", i);
            if let Some(om) = w.object(o, &p) {
                w.required_str(om, "name", &p);
            }
        }
    }
    for (i, a) in c
        .get("author")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = index("metadata.catalog.author", i);
        if let Some(email) = a.get("email").and_then(Value::as_str)
            && !email.contains('@')
        {
            w.problem(
                join(&p, "email"),
                format!("{email:?} is not an e-mail address"),
            );
        }
    }
}

fn walk_profiles(w: &mut Walk<'_>, profiles: &Value, component_names: &mut Vec<String>) {
    let Some(list) = w.list(profiles, "deploymentProfiles") else {
        return;
    };
    if list.is_empty() {
        w.problem(
            "deploymentProfiles",
            "at least one deployment profile is required",
        );
    }
    let mut ids = Vec::new();
    for (i, profile) in list.iter().enumerate() {
        let path = index("deploymentProfiles", i);
        let Some(m) = w.object(profile, &path) else {
            continue;
        };
        w.no_unknown_fields(
            m,
            &[
                "type",
                "id",
                "description",
                "components",
                "deviceConstraints",
                "requiredResources",
            ],
            &path,
        );
        let profile_type = w.required_str(m, "type", &path).and_then(|t| match t.as_str() {
            "helm" => Some(ProfileType::Helm),
            "compose" => Some(ProfileType::Compose),
            "custom" => Some(ProfileType::Custom),
            other => {
                w.problem(join(&path, "type"), format!("unknown deployment profile type {other:?} (expected helm, compose or custom)"));
                None
            }
        });
        if let Some(id) = w.required_str(m, "id", &path) {
            if ids.contains(&id) {
                w.problem(join(&path, "id"), format!("duplicate profile id {id:?}"));
            }
            ids.push(id);
        }
        if profile_type == Some(ProfileType::Custom) {
            let ext: BTreeMap<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if custom_runtime(&ext).is_none() {
                w.problem(join(&path, EOS_EXTENSIONS), "a custom profile names its runtime in x-eos-extensions.runtime (for example wasm)");
            }
        }
        if let Some(c) = m.get("deviceConstraints") {
            walk_constraints(w, c, &join(&path, "deviceConstraints"));
        }
        if let Some(Value::Object(r)) = m.get("requiredResources") {
            walk_capacity(
                w,
                &Value::Object(r.clone()),
                &join(&path, "requiredResources"),
            );
        }
        if let Some(components) = w.required(m, "components", &path) {
            let ext: BTreeMap<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let runtime = match profile_type {
                Some(ProfileType::Custom) => custom_runtime(&ext),
                _ => None,
            };
            walk_components(
                w,
                components,
                &join(&path, "components"),
                profile_type,
                runtime.as_deref(),
                component_names,
            );
        }
    }
}

pub(crate) fn walk_components(
    w: &mut Walk<'_>,
    components: &Value,
    path: &str,
    profile_type: Option<ProfileType>,
    runtime: Option<&str>,
    names: &mut Vec<String>,
) {
    let Some(list) = w.list(components, path) else {
        return;
    };
    if list.is_empty() {
        w.problem(path, "at least one component is required");
    }
    let mut seen = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let cp = index(path, i);
        let Some(m) = w.object(c, &cp) else { continue };
        w.no_unknown_fields(m, &["name", "properties", EOS_EXTENSIONS], &cp);
        if let Some(ext) = m.get(EOS_EXTENSIONS) {
            walk_component_extensions(w, ext, &join(&cp, EOS_EXTENSIONS), runtime);
        }
        if let Some(name) = w.required_str(m, "name", &cp) {
            if let Err(reason) = check_label_name(&name) {
                w.problem(
                    join(&cp, "name"),
                    format!("{name:?} is not a valid component name: {reason}"),
                );
            }
            if seen.contains(&name) {
                w.problem(
                    join(&cp, "name"),
                    format!("duplicate component name {name:?}"),
                );
            }
            seen.push(name.clone());
            names.push(name);
        }
        if let Some(props) = w.required(m, "properties", &cp) {
            walk_properties(w, props, &join(&cp, "properties"), profile_type, runtime);
        }
    }
}

/// A component's `x-eos-extensions`: settings for its runtime. `container` (the `oci` runtime)
/// is checked here; other keys belong to runtimes the CO does not know (plugins), which check
/// them themselves.
fn walk_component_extensions(w: &mut Walk<'_>, ext: &Value, path: &str, runtime: Option<&str>) {
    let Some(m) = w.object(ext, path) else {
        return;
    };
    if let Some(restart) = m.get("restart") {
        let known = restart
            .as_str()
            .is_some_and(|r| crate::state::RestartPolicy::parse(r).is_some());
        if !known {
            w.problem(
                join(path, "restart"),
                format!(
                    "{restart} is not a restart policy ({})",
                    crate::state::RestartPolicy::NAMES.join(", ")
                ),
            );
        }
    }
    if let Some(wasm) = m.get("wasm") {
        let wpath = join(path, "wasm");
        if runtime != Some("wasm") {
            w.problem(
                &wpath,
                "wasm settings are for components of the wasm runtime",
            );
        } else if let Err(problems) = crate::container::WasmSettings::from_value(wasm) {
            for (field, message) in problems {
                let at = if field.is_empty() {
                    wpath.clone()
                } else {
                    join(&wpath, &field)
                };
                w.problem(at, message);
            }
        }
    }
    let Some(container) = m.get("container") else {
        return;
    };
    let cpath = join(path, "container");
    if runtime != Some("oci") {
        w.problem(
            cpath,
            "container settings are for components of the oci runtime",
        );
        return;
    }
    if let Err(problems) = crate::container::ContainerSettings::from_value(container) {
        for (field, message) in problems {
            let at = if field.is_empty() {
                cpath.clone()
            } else {
                join(&cpath, &field)
            };
            w.problem(at, message);
        }
    }
}

fn walk_properties(
    w: &mut Walk<'_>,
    props: &Value,
    path: &str,
    profile_type: Option<ProfileType>,
    runtime: Option<&str>,
) {
    let Some(m) = w.object(props, path) else {
        return;
    };
    w.no_unknown_fields(
        m,
        &[
            "repository",
            "revision",
            "wait",
            "timeout",
            "packageLocation",
            "keyLocation",
        ],
        path,
    );
    let pr1_compose = m.contains_key("packageLocation");
    if pr1_compose {
        if profile_type != Some(ProfileType::Compose) {
            w.problem(
                join(path, "packageLocation"),
                "packageLocation is only for compose profiles",
            );
        }
        if let Some(loc) = w.optional_str(m, "packageLocation", path)
            && !(loc.starts_with("https://") || loc.starts_with("http://"))
        {
            w.problem(
                join(path, "packageLocation"),
                format!("{loc:?} is not an http(s) URL"),
            );
        }
    } else {
        if let Some(repo) = w.required_str(m, "repository", path) {
            check_repository(w, &repo, &join(path, "repository"), profile_type, runtime);
        }
        if let Some(rev) = w.required_str(m, "revision", path)
            && !is_margo_revision(&rev)
        {
            w.problem(
                join(path, "revision"),
                format!("{rev:?} is not a SemVer 2.0 revision without a leading 'v'"),
            );
        }
    }
    if let Some(v) = m.get("wait") {
        w.lenient_bool(v, &join(path, "wait"));
    }
    if let Some(t) = w.optional_str(m, "timeout", path)
        && !is_timeout(&t)
    {
        w.problem(
            join(path, "timeout"),
            format!("{t:?} is not a duration such as 8m30s"),
        );
    }
}

fn check_repository(
    w: &mut Walk<'_>,
    repo: &str,
    path: &str,
    profile_type: Option<ProfileType>,
    runtime: Option<&str>,
) {
    let oci = repo.strip_prefix("oci://").is_some_and(|r| !r.is_empty());
    // EOS extension: a `custom` (WASM) component may name a local module file, for development
    // and for packages whose module travels inside the package (see ARCHITECTURE.md).
    let local = profile_type == Some(ProfileType::Custom)
        && (repo.starts_with("file://") || repo.starts_with("./"));
    // A runtime from a plugin reads its own kinds of repository: any `scheme://…` will do, and
    // the plugin refuses what it cannot fetch.
    let plugin = profile_type == Some(ProfileType::Custom)
        && runtime.is_some_and(|r| !BUILT_IN_CUSTOM_RUNTIMES.contains(&r))
        && is_uri_with_scheme(repo);
    if !oci && !local && !plugin {
        let hint = if profile_type == Some(ProfileType::Custom) {
            " or a file:// / ./ path"
        } else {
            ""
        };
        w.problem(path, format!("not an oci:// reference{hint}: {repo:?}"));
    }
}

/// The `custom` runtimes EOS itself runs; any other comes from a plugin.
pub const BUILT_IN_CUSTOM_RUNTIMES: [&str; 2] = ["wasm", "oci"];

/// `scheme://rest`, with a scheme as RFC 3986 writes it and something after it.
fn is_uri_with_scheme(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
    })
}

/// SemVer 2.0 core with optional pre-release; build metadata is written with `_` per Margo.
pub fn is_margo_revision(rev: &str) -> bool {
    let core_end = rev.find(['-', '_']).unwrap_or(rev.len());
    let core: Vec<&str> = rev[..core_end].split('.').collect();
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    core.len() == 3
        && core.iter().all(numeric)
        && rev[core_end..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

fn is_timeout(t: &str) -> bool {
    let Some((m, s)) = t.strip_suffix('s').and_then(|r| r.split_once('m')) else {
        return false;
    };
    !m.is_empty()
        && !s.is_empty()
        && m.chars().all(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_digit())
}

pub(crate) fn walk_parameters(
    w: &mut Walk<'_>,
    params: &Value,
    path: &str,
    component_names: &[String],
) {
    let Some(m) = w.object(params, path) else {
        return;
    };
    for (name, p) in m {
        let pp = join(path, name);
        let Some(pm) = w.object(p, &pp) else { continue };
        w.no_unknown_fields(pm, &["value", "targets"], &pp);
        let Some(targets) = w.required(pm, "targets", &pp) else {
            continue;
        };
        let tp = join(&pp, "targets");
        for (i, t) in w.list(targets, &tp).into_iter().flatten().enumerate() {
            let tip = index(&tp, i);
            let Some(tm) = w.object(t, &tip) else {
                continue;
            };
            w.no_unknown_fields(tm, &["pointer", "components"], &tip);
            w.required_str(tm, "pointer", &tip);
            let Some(cs) = w.required(tm, "components", &tip) else {
                continue;
            };
            for (j, c) in w
                .list(cs, &join(&tip, "components"))
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = c.as_str().unwrap_or_default();
                if !component_names.is_empty() && !component_names.iter().any(|n| n == name) {
                    w.problem(
                        index(&join(&tip, "components"), j),
                        format!("{name:?} is not a component of any deployment profile"),
                    );
                }
            }
        }
    }
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
