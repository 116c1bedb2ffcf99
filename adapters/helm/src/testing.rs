//! Test helpers for the helm runtime, behind the `testing` feature: a recording stand-in of the
//! Kubernetes API (no cluster can run where EOS is tested) and chart packing as `helm package`
//! does it.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

/// The stand-in: it keeps the objects applied to it (by API path), answers discovery for
/// Deployments, Services, ConfigMaps and (cluster-scoped) Namespaces, reports Deployments ready, and records every request.
#[derive(Default)]
pub struct Cluster {
    pub objects: Mutex<BTreeMap<String, Value>>,
    pub seen: Mutex<Vec<Seen>>,
}

fn resources(group_version: &str, list: &[(&str, &str)]) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list.iter().map(|(name, kind)| json!({
            "name": name, "singularName": "", "namespaced": *kind != "Namespace", "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        })).collect::<Vec<_>>(),
    })
}

fn not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
        ),
    )
        .into_response()
}

async fn serve(State(cluster): State<Arc<Cluster>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes)
        .or_else(|_| serde_yaml::from_slice(&bytes))
        .unwrap_or(Value::Null);
    let path = parts.uri.path().to_owned();
    cluster.seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        content_type: parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: body.clone(),
    });
    let mut objects = cluster.objects.lock().unwrap();
    match (parts.method, path.as_str()) {
        (Method::GET, "/version") => axum::Json(json!({
            "major": "1", "minor": "30", "gitVersion": "v1.30.0", "gitCommit": "0",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64",
        }))
        .into_response(),
        (Method::GET, "/api/v1") => axum::Json(resources(
            "v1",
            &[
                ("services", "Service"),
                ("configmaps", "ConfigMap"),
                ("namespaces", "Namespace"),
            ],
        ))
        .into_response(),
        (Method::GET, "/apis/apps/v1") => {
            axum::Json(resources("apps/v1", &[("deployments", "Deployment")])).into_response()
        }
        (Method::PATCH, _) => {
            let mut object = body;
            // What a cluster would report once the pods run.
            if object["kind"] == "Deployment" {
                let replicas = object["spec"]["replicas"].as_u64().unwrap_or(1);
                object["status"] = json!({"replicas": replicas, "readyReplicas": replicas});
            }
            objects.insert(path, object.clone());
            axum::Json(object).into_response()
        }
        (Method::GET, _) => match objects.get(&path) {
            Some(object) => axum::Json(object.clone()).into_response(),
            None => not_found(&path),
        },
        (Method::DELETE, _) => match objects.remove(&path) {
            Some(object) => axum::Json(object).into_response(),
            None => not_found(&path),
        },
        _ => not_found(&path),
    }
}

/// Starts the stand-in; returns it and a kubeconfig file in `dir` that points at it.
pub async fn cluster(dir: &Path) -> (Arc<Cluster>, PathBuf) {
    let cluster = Arc::new(Cluster::default());
    let app = axum::Router::new()
        .fallback(serve)
        .with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_for(&format!("http://{address}"))).unwrap();
    (cluster, kubeconfig)
}

/// A kubeconfig for the API server at `server`, with a bearer token.
pub fn kubeconfig_for(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: edge\n  cluster:\n    server: {server}\n\
         users:\n- name: eos\n  user:\n    token: edge-token\ncontexts:\n- name: edge\n  context:\n    \
         cluster: edge\n    user: eos\ncurrent-context: edge\n"
    )
}

/// The chart folder `dir` packed as `helm package` does: one top folder named `name`, plus
/// `extra` files (path inside the archive, text).
pub fn pack(dir: &Path, name: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    tar.append_dir_all(name, dir)
        .expect("the chart folder reads");
    for (path, text) in extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, text.as_bytes())
            .expect("an archive in memory takes the file");
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .expect("an archive in memory closes")
}

/// The test chart in the repository, `tests/fixtures/charts/web`.
pub fn test_chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/charts/web")
}
