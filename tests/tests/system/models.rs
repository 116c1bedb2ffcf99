//! Device models and compatibility through the CO: a model registered with its capability
//! template names the devices that report its vendor and model number; an app version is
//! judged against a model or a device by placement's own rule (runtime, capacity, eligibility),
//! profile by profile with the reason; bad templates and unknown names are clear errors; a
//! model belongs to its tenant; GraphQL answers the same.

use crate::graphql::data;
use crate::sse::Stream;
use crate::tenants::{call, get};
use eos_tests::{Fleet, SAMPLE_APP, WEB_OCI_APP, app_variant, repo_root};
use serde_json::{Value, json};

/// The capability template of the EN this workspace builds: vendor `EOS`, model number
/// `eos-en <version>`, four amd64 cores, 8 GiB, the wasm runtime.
fn en_template() -> Value {
    json!({
        "properties": {
            "id": "template",
            "vendor": "EOS",
            "modelNumber": format!("eos-en {}", env!("CARGO_PKG_VERSION")),
            "serialNumber": "-",
            "cpus": [{"cores": 4, "architecture": "amd64"}],
            "memory": "8Gi",
            "otelCollector": false,
            "supportedRuntimes": ["custom"],
            "supportedDeploymentTypes": ["custom"]
        },
        "labels": {"eos.dev/runtimes": ["wasm"]}
    })
}

async fn post(fleet: &Fleet, tenant: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    call(fleet, tenant, reqwest::Method::POST, path, Some(body)).await
}

async fn add_app(fleet: &Fleet, folder: &std::path::Path) {
    let source = folder.display().to_string();
    let (code, app) = post(fleet, None, "/api/v1/apps", json!({ "source": source })).await;
    assert_eq!(code, 201, "{source}: {app}");
}

/// The verdict of one profile in a compatibility report: (compatible, reason).
fn verdict(report: &Value, profile: &str) -> (bool, String) {
    let p = report["profiles"]
        .as_array()
        .unwrap_or_else(|| panic!("profiles: {report}"))
        .iter()
        .find(|p| p["profile"] == profile)
        .unwrap_or_else(|| panic!("no profile {profile}: {report}"));
    (
        p["compatible"].as_bool().unwrap(),
        p["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn models_name_devices_and_judge_app_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;

    // A template that is not a DeviceCapabilities document names the fields at fault.
    let mut broken = en_template();
    broken["properties"]
        .as_object_mut()
        .unwrap()
        .remove("vendor");
    let (code, problem) = post(
        &fleet,
        None,
        "/api/v1/device-models",
        json!({"id": "eos-en", "capabilities": broken}),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    assert!(problem.to_string().contains("capabilities."), "{problem}");
    let (code, problem) = post(
        &fleet,
        None,
        "/api/v1/device-models",
        json!({"id": "Not An Id", "capabilities": en_template()}),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "id", "{problem}");

    let (code, model) = post(
        &fleet,
        None,
        "/api/v1/device-models",
        json!({"id": "eos-en", "capabilities": en_template()}),
    )
    .await;
    assert_eq!(code, 201, "{model}");
    assert_eq!(model["vendor"], "EOS");
    assert_eq!(
        model["model"],
        format!("eos-en {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, _) = post(
        &fleet,
        None,
        "/api/v1/device-models",
        json!({"id": "eos-en-again", "capabilities": en_template()}),
    )
    .await;
    assert_eq!(code, 409, "one model per vendor and model number");
    let (code, got) = get(&fleet, None, "/api/v1/device-models/eos-en").await;
    assert_eq!(
        (code, &got["capabilities"]["labels"]),
        (200, &en_template()["labels"])
    );

    // The EN reports that vendor and model number: the device points at the model.
    let (_, devices) = get(&fleet, None, "/api/v1/devices").await;
    assert_eq!(devices[0]["id"], "site-1/node-1");
    assert_eq!(devices[0]["model"], "eos-en", "{devices}");

    add_app(&fleet, &repo_root().join(SAMPLE_APP.0)).await;
    add_app(&fleet, &repo_root().join(WEB_OCI_APP.0)).await;
    // Version 2 of the sample needs eight cores; the template has four.
    let greedy = app_variant(
        tmp.path(),
        SAMPLE_APP.0,
        &[
            ("version: 1.0.0", "version: 2.0.0"),
            (
                "    deviceConstraints:\n",
                "    deviceConstraints:\n      capacityRequirements:\n        cpu:\n          cores: 8\n",
            ),
        ],
    );
    add_app(&fleet, &greedy).await;

    let compat = |query: String| {
        let fleet = &fleet;
        async move { get(fleet, None, &format!("/api/v1/apps/{query}")).await }
    };
    let (code, r) = compat(format!(
        "{}/compatibility?model=eos-en&version=1.0.0",
        SAMPLE_APP.1
    ))
    .await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(
        (r["compatible"].as_bool(), r["against"].as_str()),
        (Some(true), Some("model eos-en"))
    );
    assert_eq!(verdict(&r, "hello-wasm"), (true, String::new()));

    // The newest version is judged when none is named.
    let (_, r) = compat(format!("{}/compatibility?model=eos-en", SAMPLE_APP.1)).await;
    assert_eq!(r["version"], "2.0.0");
    assert_eq!(r["compatible"], false, "{r}");
    assert_eq!(
        verdict(&r, "hello-wasm"),
        (false, "needs 8 CPU cores, has 4".into())
    );

    let (_, r) = compat(format!("{}/compatibility?model=eos-en", WEB_OCI_APP.1)).await;
    let (ok, why) = verdict(&r, "web-oci");
    assert!(!ok && why.starts_with("no oci runtime"), "{r}");

    // Against the device: what it reported (this EN runs wasm, not necessarily oci).
    let (code, r) = compat(format!(
        "{}/compatibility?device=site-1/node-1&version=1.0.0",
        SAMPLE_APP.1
    ))
    .await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["against"], "device site-1/node-1");
    assert_eq!(r["compatible"], true, "{r}");

    // Unknown names and a question without a model or device are clear errors.
    for (query, status, names) in [
        (
            format!("{}/compatibility?model=nope", SAMPLE_APP.1),
            404,
            "nope",
        ),
        (
            format!("{}/compatibility?device=site-1/nope", SAMPLE_APP.1),
            404,
            "site-1/nope",
        ),
        (
            "com-nope/compatibility?model=eos-en".to_owned(),
            404,
            "com-nope",
        ),
        (
            format!("{}/compatibility?model=eos-en&version=9.9.9", SAMPLE_APP.1),
            404,
            "9.9.9",
        ),
        (
            format!("{}/compatibility", SAMPLE_APP.1),
            400,
            "model or device",
        ),
        (
            format!(
                "{}/compatibility?model=eos-en&device=site-1/node-1",
                SAMPLE_APP.1
            ),
            400,
            "model or device",
        ),
    ] {
        let (code, problem) = compat(query.clone()).await;
        assert_eq!(code, status, "{query}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(names),
            "{query}: {problem}"
        );
    }

    // GraphQL: the same models, device pointer and verdicts.
    let d = data(
        &fleet,
        None,
        "query($app: String!) { deviceModels { items { id vendor } }
           devices { items { id model } }
           compatibility(appId: $app, model: \"eos-en\") { version compatible profiles { profile reason } } }",
        json!({"app": SAMPLE_APP.1}),
    )
    .await;
    assert_eq!(
        d["deviceModels"]["items"],
        json!([{"id": "eos-en", "vendor": "EOS"}])
    );
    assert_eq!(d["devices"]["items"][0]["model"], "eos-en");
    assert_eq!(
        d["compatibility"]["profiles"][0]["reason"],
        "needs 8 CPU cores, has 4"
    );

    // A model is its tenant's: another tenant neither sees it nor has its devices point at it.
    let (code, _) = post(
        &fleet,
        None,
        "/api/v1/tenants",
        json!({"id": "globex", "name": "Globex"}),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = get(&fleet, Some("globex"), "/api/v1/device-models/eos-en").await;
    assert_eq!(code, 404);
    let (_, list) = get(&fleet, Some("globex"), "/api/v1/device-models").await;
    assert_eq!(list, json!([]));
    let (code, _) = call(
        &fleet,
        Some("globex"),
        reqwest::Method::DELETE,
        "/api/v1/device-models/eos-en",
        None,
    )
    .await;
    assert_eq!(code, 404, "globex cannot remove the default tenant's model");

    // Removed, the device points at no model.
    let (code, _) = call(
        &fleet,
        None,
        reqwest::Method::DELETE,
        "/api/v1/device-models/eos-en",
        None,
    )
    .await;
    assert_eq!(code, 204);
    let (_, devices) = get(&fleet, None, "/api/v1/devices").await;
    assert_eq!(devices[0]["model"], Value::Null, "{devices}");
    // Both changes are in the event log, under the kinds a client can filter by.
    let mut stream = Stream::open(&fleet, "?after=0&kind=device-model", None).await;
    let seen = stream.until("device-model.removed", "eos-en").await;
    assert_eq!(seen[0].event, "device-model.registered");
    fleet.shutdown().await;
}
