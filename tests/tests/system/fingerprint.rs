//! Fingerprinting through the whole system. An EN whose container engine does not answer at
//! start runs without the oci runtime, and a container app pinned to it waits, not placeable,
//! with the reason. When an engine comes to answer on its socket, the EN takes up oci and
//! compose within its fingerprint interval; the CO shows them with the engine's version, and
//! the waiting app is placed and serves, and undeploying leaves nothing behind. When the engine
//! stays away for two fingerprints, the node stops offering oci, and offers it again when the
//! engine is back.

use eos_tests::{EngineSocket, Fleet, LIMIT, WEB_OCI_APP, app_variant, engine_objects, eventually};
use serde_json::Value;

/// The strings of a label's list.
fn strings(label: &Value) -> Option<Vec<String>> {
    Some(
        label
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    )
}

/// The node's advertised runtimes and the versions its fingerprint found
/// (`runtime=version`), as the CO has them.
async fn runtimes(fleet: &Fleet) -> Option<(Vec<String>, Vec<String>)> {
    let device = fleet.get("/api/v1/devices/site-1/node-1").await.ok()?;
    let labels = &device["capabilities"]["labels"];
    Some((
        strings(&labels["eos.dev/runtimes"])?,
        strings(&labels["eos.dev/driver-versions"])?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtimes_that_come_and_go_are_taken_up_and_dropped_by_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    let mut engine = EngineSocket::closed(&tmp.path().join("engine.sock"));
    let socket = tmp.path().join("engine.sock").display().to_string();
    fleet
        .reconfigure_en(0, |c| {
            c.container_socket = socket;
            c.fingerprint_secs = 1;
        })
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    eventually("node-1 to offer wasm only", LIMIT, || async {
        let (runtimes, versions) = runtimes(&fleet).await?;
        (runtimes == ["wasm"]).then_some(versions)
    })
    .await;

    // The app serves on a port of its own: other tests run the same fixture beside this one.
    let app = app_variant(tmp.path(), WEB_OCI_APP.0, &[("18765:80", "18767:80")]);
    let id = fleet
        .create_deployment((app.to_str().unwrap(), WEB_OCI_APP.1), Some("node-1"))
        .await
        .unwrap();
    let why = eventually(
        "the container app to wait, not placeable",
        LIMIT,
        || async {
            let v = fleet.deployment(&id).await;
            v["devices"][0]["error"].as_str().map(str::to_owned)
        },
    )
    .await;
    assert!(
        why.contains("site-1/node-1: no oci runtime"),
        "the reason names the runtime: {why}"
    );
    assert_ne!(fleet.deployment(&id).await["state"], "installed");

    // An engine answers: the node takes up oci and compose, and the app runs.
    engine.open();
    let versions = eventually("node-1 to offer oci", LIMIT, || async {
        let (runtimes, versions) = runtimes(&fleet).await?;
        runtimes
            .contains(&"oci".to_owned())
            .then_some((runtimes, versions))
    })
    .await;
    assert_eq!(versions.0, ["wasm", "compose", "oci"]);
    let version_of = |runtime: &str| {
        versions
            .1
            .iter()
            .find_map(|v| v.strip_prefix(runtime)?.strip_prefix('='))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        version_of("oci").contains("(API 1."),
        "the engine's version: {:?}",
        versions.1
    );
    assert!(
        version_of("compose").starts_with("compose on "),
        "{:?}",
        versions.1
    );
    assert!(
        version_of("wasm").starts_with("wasmtime "),
        "{:?}",
        versions.1
    );
    eventually("the container app to be installed", LIMIT, || async {
        (fleet.deployment(&id).await["state"] == "installed").then_some(())
    })
    .await;
    let page = eventually("the page", LIMIT, || async {
        reqwest::get("http://127.0.0.1:18767/index.html")
            .await
            .ok()?
            .text()
            .await
            .ok()
    })
    .await;
    assert_eq!(page.trim(), "hello from eos");

    fleet.undeploy(&id).await.unwrap();
    let left = engine_objects(&id[..8]).await;
    assert!(left.is_empty(), "left behind: {left:?}");

    // The engine goes away: the node no longer offers what needs it; back, it offers it again.
    engine.close();
    eventually("node-1 to stop offering oci", LIMIT, || async {
        let (runtimes, _) = runtimes(&fleet).await?;
        (runtimes == ["wasm"]).then_some(())
    })
    .await;
    engine.open();
    eventually("node-1 to offer oci again", LIMIT, || async {
        let (runtimes, _) = runtimes(&fleet).await?;
        runtimes.contains(&"oci".to_owned()).then_some(())
    })
    .await;
    fleet.shutdown().await;
}
