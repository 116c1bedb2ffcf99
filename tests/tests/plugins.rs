//! A native plugin through the whole system: the example `exec` plugin, built here, sits in an
//! EN's plugin folder; the EN lists it among its drivers as `native`, the LO places an `exec`
//! application only there, the process runs, and undeploying stops it.

use eos_tests::plugins::build_exec_plugin;
use eos_tests::{Fleet, LIMIT, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exec_app_runs_on_the_en_that_has_the_plugin() {
    let library = build_exec_plugin();
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    let plugins = tmp.path().join("plugins-node-2");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&library, plugins.join("exec.so")).unwrap();
    fleet
        .reconfigure_en(1, |c| c.plugin_dir = Some(plugins.clone()))
        .await
        .unwrap();
    eventually("node-2 to list the exec plugin", LIMIT, || async {
        let devices = fleet.get("/api/v1/devices").await.ok()?;
        let drivers = devices
            .as_array()?
            .iter()
            .find(|d| d["id"] == "site-1/node-2")?["capabilities"]["labels"]["eos.dev/drivers"]
            .clone();
        drivers
            .as_array()?
            .iter()
            .any(|d| d == "exec:native")
            .then_some(())
    })
    .await;

    let app = tmp.path().join("exec-app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("margo.yaml"),
        r#"apiVersion: margo.org/v1-alpha1
kind: ApplicationDescription
id: com-eos-test-exec
metadata:
  name: Exec
  version: 1.0.0
  catalog:
    organization: [{name: EOS}]
deploymentProfiles:
  - type: custom
    id: exec
    x-eos-extensions: {runtime: exec}
    components:
      - name: sleeper
        properties: {repository: "file:///bin/sleep", revision: 1.0.0}
        x-eos-extensions: {exec: {args: ["3600"]}}
"#,
    )
    .unwrap();
    let (code, body) = fleet
        .post("/api/v1/apps", json!({"source": app.display().to_string()}))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": "com-eos-test-exec", "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let view = eventually("the exec app to be installed", LIMIT, || async {
        let v = fleet.deployment(&id).await;
        (v["state"] == "installed").then_some(v)
    })
    .await;
    assert_eq!(view["devices"][0]["device_id"], "site-1/node-2", "{view}");
    let pid_file = tmp
        .path()
        .join("en/node-2/plugin-data/exec")
        .join(&id)
        .join("sleeper/pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(std::path::Path::new(&format!("/proc/{}", pid.trim())).exists());

    let url = fleet.url(&format!("/api/v1/deployments/{id}"));
    assert_eq!(fleet.http.delete(url).send().await.unwrap().status(), 202);
    eventually("the deployment to be removed", LIMIT, || async {
        (fleet.deployment(&id).await["phase"] == "removed").then_some(())
    })
    .await;
    assert!(!pid_file.exists(), "its folder is gone");
    fleet.shutdown().await;
}
