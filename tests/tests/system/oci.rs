//! Containers through the whole system, on the real Docker engine and registry that
//! `config/services.sh` starts: the EN without an engine does not advertise the oci runtime, so
//! the LO places the container app on the EN that has one; the page is served, parameters
//! reach the container, an EN restart adopts the running container, an update to the app's
//! next version replaces the container, and undeploying removes it.

use eos_tests::{Fleet, LIMIT, WEB_OCI_APP, engine_objects, eventually};

async fn container_started_at(name_part: &str) -> Option<(String, String)> {
    let (docker, all) = eos_tests::all_containers().await?;
    let id = all.into_iter().find_map(|c| {
        c.names?
            .iter()
            .any(|n| n.contains(name_part))
            .then_some(c.id?)
    })?;
    let state = docker.inspect_container(&id, None).await.ok()?.state?;
    Some((id, state.started_at?))
}

/// The page the container app serves on the device, when it answers.
async fn served_page() -> Option<String> {
    reqwest::get("http://127.0.0.1:18765/index.html")
        .await
        .ok()?
        .text()
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_app_runs_where_an_engine_is_and_survives_an_en_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    // node-2 has no container engine.
    fleet
        .reconfigure_en(1, |c| {
            c.container_socket = "/nonexistent/docker.sock".into()
        })
        .await
        .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    // Its new hello replaces what it advertised before the restart.
    let runtimes = |d: &serde_json::Value| d["capabilities"]["labels"]["eos.dev/runtimes"].clone();
    eventually("node-2 to advertise no oci runtime", LIMIT, || async {
        let devices = fleet.get("/api/v1/devices").await.ok()?;
        let advertised: Vec<serde_json::Value> = devices.as_array()?.iter().map(runtimes).collect();
        (advertised
            == [
                serde_json::json!(["wasm", "compose", "oci"]),
                serde_json::json!(["wasm"]),
            ])
        .then_some(())
    })
    .await;

    let (id, view) = fleet.deploy_installed(WEB_OCI_APP, None).await.unwrap();
    assert_eq!(view["devices"][0]["device_id"], "site-1/node-1", "{view}");
    let page = eventually("the page", LIMIT, served_page).await;
    assert_eq!(page.trim(), "hello from eos");

    // The EN restarts; the container runs on untouched.
    let short = &id[..8];
    let (container, started) = container_started_at(short).await.expect("the container");
    fleet.stop_en(0).await;
    fleet.start_en(0).await.unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        container_started_at(short).await,
        Some((container.clone(), started)),
        "adopted, not restarted"
    );
    assert_eq!(fleet.deployment(&id).await["state"], "installed");

    // Version 1.1.0 serves another page: the update replaces the container.
    fleet
        .add_app(&eos_tests::repo_root().join("tests/fixtures/apps/web-oci-v2"))
        .await
        .unwrap();
    fleet.update_to(&id, "1.1.0").await.unwrap();
    let page = eventually("the new page", LIMIT, || async {
        served_page().await.filter(|p| p.trim() == "v2")
    })
    .await;
    assert_eq!(page.trim(), "v2");
    let (replaced, _) = container_started_at(short)
        .await
        .expect("the new container");
    assert_ne!(replaced, container, "a new container for the new version");
    assert_eq!(
        engine_objects(short).await.len(),
        1,
        "the old container is gone"
    );
    eventually("the update to be installed", LIMIT, || async {
        (fleet.deployment(&id).await["state"] == "installed").then_some(())
    })
    .await;
    let (code, _) = fleet.update(&id, "9.9.9").await.unwrap();
    assert_eq!(code, 404, "a version the app store lacks");

    fleet.undeploy(&id).await.unwrap();
    let left = engine_objects(short).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    fleet.shutdown().await;
}
