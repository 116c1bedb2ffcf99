//! The foundation's flow with the real servers in one process: REST → SQLite → Git → LO (gRPC,
//! Git fetch) → EN (gRPC) → wasmtime, and status back to REST.

use eos_tests::{Fleet, eventually, git, repo_root};
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

async fn deployment_state(fleet: &Fleet, id: &str) -> Value {
    fleet
        .get(&format!("/api/v1/deployments/{id}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_run_break_git_undeploy_and_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();

    eventually("the EN to appear online", LIMIT, || async {
        let devices = fleet.get("/api/v1/devices").await.ok()?;
        devices
            .as_array()?
            .iter()
            .any(|d| d["id"] == "site-1/node-1" && d["online"] == true)
            .then_some(())
    })
    .await;

    let sample = repo_root().join("config/apps/hello-wasm");
    let (code, app) = fleet
        .post(
            "/api/v1/apps",
            json!({"source": sample.display().to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{app}");
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": "com-eos-hello-wasm", "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let installed = eventually("the deployment to be installed", LIMIT, || async {
        let d = deployment_state(&fleet, &id).await;
        (d["state"] == "installed").then_some(d)
    })
    .await;
    assert_eq!(installed["devices"][0]["device_id"], "site-1/node-1");
    let log = fleet.workload_log("node-1", &id, "hello");
    let greeting = eventually("the module's output", LIMIT, || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("hello from eos"))
    })
    .await;
    assert!(greeting.starts_with("hello from eos"));

    // A desired state pushed by hand that does not parse leaves the workload running.
    let clone = tmp.path().join("hand");
    git(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            &tmp.path().join("co/deployments.git").display().to_string(),
            "hand",
        ],
    );
    std::fs::write(
        clone.join("sites/site-1/manifest.yaml"),
        "manifestVersion: [not a number\n",
    )
    .unwrap();
    git(&clone, &["commit", "--quiet", "-am", "break the manifest"]);
    git(&clone, &["push", "--quiet", "origin", "HEAD:main"]);
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        after > before,
        "the module kept running after the bad commit ({before} → {after} lines)"
    );
    assert_eq!(deployment_state(&fleet, &id).await["state"], "installed");

    // Undeploy removes it from the EN.
    let removed = fleet
        .http
        .delete(fleet.url(&format!("/api/v1/deployments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 202);
    eventually("the deployment to be removed", LIMIT, || async {
        let d = deployment_state(&fleet, &id).await;
        (d["phase"] == "removed" && d["state"] == "removed").then_some(())
    })
    .await;
    assert!(!log.exists(), "the component's folder is gone from the EN");
    let deployment_dir = log.parent().and_then(|c| c.parent()).unwrap();
    assert!(
        !deployment_dir.exists(),
        "the deployment's folder is gone too"
    );

    // A version whose module traps at start ends failed with the error, and the LO retries.
    let broken = tmp.path().join("broken-app");
    eos_tests::copy_tree(&sample, &broken);
    let description = std::fs::read_to_string(sample.join("margo.yaml"))
        .unwrap()
        .replace("version: 1.0.0", "version: 2.0.0")
        .replace("revision: 1.0.0", "revision: 2.0.0");
    std::fs::write(broken.join("margo.yaml"), description).unwrap();
    std::fs::write(broken.join("hello.wat"), TRAPS_AT_START).unwrap();
    let (code, body) = fleet
        .post(
            "/api/v1/apps",
            json!({"source": broken.display().to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": "com-eos-hello-wasm", "version": "2.0.0", "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let failed = eventually("the broken deployment to fail", LIMIT, || async {
        let d = deployment_state(&fleet, &id).await;
        (d["state"] == "failed").then_some(d)
    })
    .await;
    let error = failed["devices"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("unreachable"),
        "the trap is reported: {failed}"
    );
    let log = fleet.workload_log("node-1", &id, "hello");
    eventually("the LO to retry the failed component", LIMIT, || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.matches("starting").count() >= 2)
    })
    .await;

    fleet.shutdown().await;
}

/// Writes "starting" to stdout, then traps.
const TRAPS_AT_START: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "starting\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
    unreachable))"#;
