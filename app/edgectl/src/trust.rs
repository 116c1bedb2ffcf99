//! `edgectl policy` and `edgectl site claim | revoke`: the tenant's artifact signature policy
//! and workload security policy, claim tokens for enrolling LOs and ENs, and revoking their
//! certificates.

use crate::api::Api;
use crate::table::{Output, print};
use anyhow::Context;
use serde_json::{Value, json};
use std::path::PathBuf;

pub async fn show_policy(api: &Api, out: Output) -> anyhow::Result<()> {
    let signatures = api.get("/signature-policy").await?;
    let workload = api.get("/workload-policy").await?;
    if matches!(out, Output::Json) {
        let both = json!({"signatures": signatures, "workload": workload});
        println!("{}", serde_json::to_string_pretty(&both)?);
        return Ok(());
    }
    print_policy(out, &signatures)?;
    print_workload_policy(out, &workload)
}

/// What a tenant's workload policy grants (nothing: the strict default).
pub struct WorkloadGrant {
    pub host_paths: Vec<String>,
    pub cluster_scoped: bool,
    pub devices: Vec<String>,
    pub gpus: bool,
}

/// Replaces the tenant's workload policy with `grant`.
pub async fn set_workload_policy(
    api: &Api,
    out: Output,
    grant: &WorkloadGrant,
) -> anyhow::Result<()> {
    let policy = api
        .send(api.http.put(api.url("/workload-policy")).json(&json!({
            "hostPaths": grant.host_paths,
            "clusterScoped": grant.cluster_scoped,
            "devices": grant.devices,
            "gpus": grant.gpus,
        })))
        .await?;
    print_workload_policy(out, &policy)
}

/// A workload policy: as JSON, or a line for people.
fn print_workload_policy(out: Output, policy: &Value) -> anyhow::Result<()> {
    if matches!(out, Output::Json) {
        println!("{}", serde_json::to_string_pretty(policy)?);
        return Ok(());
    }
    let paths: Vec<&str> = policy["hostPaths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match paths.is_empty() {
        true => println!("host mounts: none allowed (named volumes only)"),
        false => println!("host mounts: under {}", paths.join(", ")),
    }
    match policy["clusterScoped"].as_bool() {
        Some(true) => println!("cluster-scoped Helm objects: allowed"),
        _ => println!("cluster-scoped Helm objects: none"),
    }
    let devices: Vec<&str> = policy["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match devices.is_empty() {
        true => println!("devices: none"),
        false => println!("devices: {}", devices.join(", ")),
    }
    match policy["gpus"].as_bool() {
        Some(true) => println!("GPUs: allowed"),
        _ => println!("GPUs: none"),
    }
    Ok(())
}

/// Requires signatures by the keys in `keys` (PEM files), or none with `off`.
pub async fn set_signature_policy(
    api: &Api,
    out: Output,
    keys: &[PathBuf],
    off: bool,
) -> anyhow::Result<()> {
    let mut public_keys = Vec::new();
    for path in keys {
        public_keys.push(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the key {}", path.display()))?,
        );
    }
    let policy = api
        .send(
            api.http
                .put(api.url("/signature-policy"))
                .json(&json!({"required": !off, "public_keys": public_keys})),
        )
        .await?;
    print_policy(out, &policy)
}

/// A signature policy: as JSON, or a line for people.
fn print_policy(out: Output, policy: &Value) -> anyhow::Result<()> {
    if matches!(out, Output::Json) {
        println!("{}", serde_json::to_string_pretty(policy)?);
        return Ok(());
    }
    let keys = policy["public_keys"].as_array().map_or(0, Vec::len);
    match policy["required"].as_bool() {
        Some(true) => println!("signatures required: by any of {keys} public key(s)"),
        _ => println!("signatures not required"),
    }
    Ok(())
}

/// Prints a new claim token alone on stdout (for scripts), what it is for on stderr.
pub async fn claim(
    api: &Api,
    out: Output,
    site: &str,
    role: &str,
    host: Option<&str>,
    ttl: Option<u64>,
) -> anyhow::Result<()> {
    let claim = api
        .send(
            api.http
                .post(api.url(&format!("/sites/{site}/claims")))
                .json(&json!({"role": role, "host": host, "ttl_secs": ttl})),
        )
        .await?;
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(&claim)?),
        Output::Table => {
            println!("{}", claim["token"].as_str().unwrap_or_default());
            eprintln!(
                "single-use claim token for the {} of site {site}{}, valid until {}",
                role.to_uppercase(),
                host.map(|h| format!(" (host {h})")).unwrap_or_default(),
                claim["expires_at"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

pub async fn revoke(api: &Api, out: Output, site: &str, host: Option<&str>) -> anyhow::Result<()> {
    let revoked = api
        .send(
            api.http
                .post(api.url(&format!("/sites/{site}/revocations")))
                .json(&json!({"host": host})),
        )
        .await?;
    print(out, &json!([revoked]), &["site", "host", "revoked_at"])
}
