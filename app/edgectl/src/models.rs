//! `edgectl model …` and `edgectl app compat`: device models registered with their capability
//! template, and whether an app version can run on a model or on a device.

use crate::api::Api;
use crate::table::{Output, print};
use anyhow::{Context, bail};
use serde_json::{Value, json};

const COLUMNS: &[&str] = &["id", "vendor", "model", "created_at"];

pub async fn list(api: &Api, out: Output) -> anyhow::Result<()> {
    print(out, &api.list("/device-models").await?, COLUMNS)
}

/// Registers model `id` from a capability template file (a Margo DeviceCapabilities document,
/// YAML or JSON).
pub async fn add(api: &Api, out: Output, id: &str, file: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
    // YAML is a superset of JSON: one parser reads both.
    let capabilities: Value =
        serde_yaml::from_str(&text).with_context(|| format!("{file} is neither YAML nor JSON"))?;
    let v = api
        .send(
            api.http
                .post(api.url("/device-models"))
                .json(&json!({"id": id, "capabilities": capabilities})),
        )
        .await?;
    print(out, &v, COLUMNS)
}

pub async fn remove(api: &Api, id: &str) -> anyhow::Result<()> {
    api.send(api.http.delete(api.url(&format!("/device-models/{id}"))))
        .await?;
    println!("removed device model {id}");
    Ok(())
}

/// Judges APP[@VERSION] against a model or a device: one row per deployment profile. Fails
/// (exit status 1) when no profile can run there, so scripts can gate on it.
pub async fn compat(
    api: &Api,
    out: Output,
    app: &str,
    model: Option<&str>,
    device: Option<&str>,
) -> anyhow::Result<()> {
    let (app_id, version) = app
        .split_once('@')
        .map_or((app, None), |(a, v)| (a, Some(v)));
    let mut query: Vec<(&str, &str)> = Vec::new();
    match (model, device) {
        (Some(m), None) => query.push(("model", m)),
        (None, Some(d)) => query.push(("device", d)),
        _ => bail!("name one of --model or --device"),
    }
    if let Some(v) = version {
        query.push(("version", v));
    }
    let report = api
        .send(
            api.http
                .get(api.url(&format!("/apps/{app_id}/compatibility")))
                .query(&query),
        )
        .await?;
    if out == Output::Json {
        print(out, &report, &[])?;
    } else {
        println!(
            "{}@{} on {}:",
            report["app_id"].as_str().unwrap_or(app_id),
            report["version"].as_str().unwrap_or("?"),
            report["against"].as_str().unwrap_or("?")
        );
        print(
            out,
            &report["profiles"],
            &["profile", "runtime", "compatible", "reason"],
        )?;
    }
    if report["compatible"] != true {
        bail!(
            "no deployment profile of {app} can run on {}",
            report["against"].as_str().unwrap_or("it")
        );
    }
    Ok(())
}
