//! Checking a description's tree before it is read into types: every problem is reported with
//! its field path (unknown fields, ids and names, repositories, revisions, timeouts, runtime
//! settings, parameters and their targets).

use super::{EOS_EXTENSIONS, ProfileType, custom_runtime};
use crate::ids::{check_application_id, check_label_name};
use crate::margo::constraints::{walk_capacity, walk_constraints};
use crate::margo::walk::{Walk, index, join};
use serde_json::Value;
use std::collections::BTreeMap;

pub(super) fn walk_description(w: &mut Walk<'_>, tree: &Value) {
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
    // The CO names such a file by digest once it keeps it (`eos-artifact:sha256:…`).
    let local = profile_type == Some(ProfileType::Custom)
        && (repo.starts_with("file://")
            || repo.starts_with("./")
            || repo
                .strip_prefix(crate::state::PACKAGE_ARTIFACT)
                .is_some_and(crate::state::is_sha256_digest));
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
