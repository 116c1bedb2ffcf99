//! Before and after a deployment, through the REST API of a running fleet. A placement preview
//! says which device would take a deployment and why each other would not (node-2 has no
//! container engine, node-3 is offline), storing nothing; the LO then places the real
//! deployment where the preview said. A deployment's history lists what happened to it, in
//! order, from creation to removal.

use eos_tests::{Fleet, LIMIT, SAMPLE_APP, WEB_OCI_APP, eventually, repo_root};
use serde_json::{Value, json};

async fn preview(fleet: &Fleet, app: &str, host: Option<&str>) -> (u16, Value) {
    fleet
        .post(
            "/api/v1/deployments/preview",
            json!({"app_id": app, "site": "site-1", "host": host}),
        )
        .await
        .unwrap()
}

/// The reason the preview gives for `device` not taking the deployment.
fn reason(preview: &Value, device: &str) -> String {
    preview["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["device"] == device)
        .unwrap_or_else(|| panic!("no verdict on {device}: {preview}"))["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preview_places_like_the_site_and_a_history_tells_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2", "node-3"])
        .await
        .unwrap();
    // Every node known to the CO first: node-3 is to be one that went away, not one never seen.
    fleet.await_online(&["node-1", "node-2", "node-3"]).await;
    fleet
        .reconfigure_en(1, |c| {
            c.container_socket = "/nonexistent/docker.sock".into()
        })
        .await
        .unwrap();
    fleet.stop_en(2).await;
    eventually("node-3 offline, node-2 without oci", LIMIT, || async {
        let devices = fleet.get("/api/v1/devices").await.ok()?;
        let d = devices.as_array()?;
        let node2 = d[1]["capabilities"]["labels"]["eos.dev/runtimes"] == json!(["wasm"]);
        (d.len() == 3 && d[2]["online"] == false && node2).then_some(())
    })
    .await;
    for app in [WEB_OCI_APP.0, SAMPLE_APP.0] {
        fleet.add_app(&repo_root().join(app)).await.unwrap();
    }

    let (code, oci) = preview(&fleet, WEB_OCI_APP.1, None).await;
    assert_eq!(code, 200, "{oci}");
    assert_eq!(oci["chosen"], "site-1/node-1", "{oci}");
    assert!(
        reason(&oci, "site-1/node-2").contains("no oci runtime"),
        "{oci}"
    );
    assert_eq!(reason(&oci, "site-1/node-3"), "offline");
    // Pinned where it cannot run: nothing chosen, and the reason for that device.
    let (_, pinned) = preview(&fleet, WEB_OCI_APP.1, Some("node-2")).await;
    assert_eq!(pinned["chosen"], Value::Null, "{pinned}");
    assert!(reason(&pinned, "site-1/node-2").contains("no oci runtime"));
    // The WASM sample can run on both online nodes; one is chosen, the other scored lower.
    let (_, wasm) = preview(&fleet, SAMPLE_APP.1, None).await;
    let chosen = wasm["chosen"].as_str().unwrap().to_owned();
    assert!(
        chosen == "site-1/node-1" || chosen == "site-1/node-2",
        "{wasm}"
    );
    assert_eq!(wasm["rejected"].as_array().unwrap().len(), 2, "{wasm}");
    // Errors name what is wrong; nothing was stored.
    let (code, _) = preview(&fleet, "com-eos-absent", None).await;
    assert_eq!(code, 404);
    // Parameters are checked against the app's configuration schema (a short text of letters).
    for (greeting, ok) in [("Hello, world!", true), ("", false), ("<script>", false)] {
        let (code, answer) = fleet
            .post(
                "/api/v1/deployments/preview",
                json!({"app_id": WEB_OCI_APP.1, "site": "site-1", "parameters": {"greeting": greeting}}),
            )
            .await
            .unwrap();
        if ok {
            assert_eq!(code, 200, "{greeting:?}: {answer}");
        } else {
            assert_eq!(code, 422, "{greeting:?}: {answer}");
            assert_eq!(
                answer["errors"][0]["field"], "parameters.greeting",
                "{answer}"
            );
            assert!(
                answer["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("schema shortText"),
                "{answer}"
            );
        }
    }
    let all = fleet.get("/api/v1/deployments").await.unwrap();
    assert_eq!(all, json!([]), "a preview stores nothing");

    // The site places the real deployment where the preview said.
    let (id, view) = fleet.deploy_installed(SAMPLE_APP, None).await.unwrap();
    assert_eq!(view["devices"][0]["device_id"], chosen.as_str(), "{view}");
    fleet.undeploy(&id).await.unwrap();

    let history = fleet
        .get(&format!("/api/v1/deployments/{id}/history"))
        .await
        .unwrap();
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"deployment.created"), "{history}");
    assert_eq!(kinds.last(), Some(&"deployment.removed"), "{history}");
    let states: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deployment.status")
        .map(|e| e["data"]["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"installed"), "{history}");
    assert_eq!(states.last(), Some(&"removed"), "{history}");
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["subject"] == id.as_str())
    );
    let missing = fleet
        .http
        .get(fleet.url("/api/v1/deployments/00000000-0000-4000-8000-000000000000/history"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    fleet.shutdown().await;
}
