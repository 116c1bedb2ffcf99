//! The REST API through clients made by others' tools from the committed OpenAPI document, as
//! operators' scripts would use it, against a running fleet:
//! - openapi-python-client (PyPI) generates a Python client, and `tests/clients/journey.py`
//!   walks the main journey with it: add an app, list devices page by page, create a
//!   deployment, read its status until installed;
//! - schemathesis (PyPI) sends generated requests to every operation and checks that none gets
//!   a server error and every answer matches the document's schema.
//!
//! `config/services.sh` installs both into `$EOS_SERVICES_DIR/pytools` (`EOS_TEST_PYTOOLS`).

use eos_tests::{Fleet, SAMPLE_APP, repo_root};
use std::path::PathBuf;
use std::process::Command;

fn pytools() -> PathBuf {
    let dir = std::env::var("EOS_TEST_PYTOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/tmp/eos-services/pytools"));
    assert!(
        dir.join("bin/openapi-python-client").exists(),
        "no openapi-python-client in {}: run `bash config/services.sh`",
        dir.display()
    );
    dir
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{command:?}:\n{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generated_python_client_walks_the_main_journey() {
    let tools = pytools();
    let tmp = tempfile::tempdir().unwrap();
    let generated = tmp.path().join("client");
    std::fs::create_dir_all(&generated).unwrap();
    run(Command::new(tools.join("bin/openapi-python-client"))
        .args([
            "generate",
            "--meta",
            "none",
            "--output-path",
            "eos_client",
            "--path",
        ])
        .arg(repo_root().join("openapi/openapi.json"))
        .current_dir(&generated));

    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    let script = repo_root().join("tests/clients/journey.py");
    let app = repo_root().join(SAMPLE_APP.0);
    let base = fleet.url("");
    let token = fleet.co().admin_token().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        run(Command::new(tools.join("bin/python"))
            .env("EOS_TOKEN", token)
            .arg(script)
            .args([base.as_str(), app.to_str().unwrap(), "site-1/node-2"])
            .env("PYTHONPATH", &generated))
    })
    .await
    .unwrap();
    let saw: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(saw["app"], SAMPLE_APP.1, "{saw}");
    assert_eq!(
        saw["devices"],
        serde_json::json!(["site-1/node-1", "site-1/node-2"]),
        "both devices, one page each: {saw}"
    );
    assert_eq!(saw["state"], "installed", "{saw}");
    assert_eq!(saw["on"], serde_json::json!(["site-1/node-2"]), "{saw}");
    assert_eq!(
        fleet.deployment(saw["deployment"].as_str().unwrap()).await["state"],
        "installed"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn property_based_requests_find_no_server_error_and_no_answer_off_its_schema() {
    let tools = pytools();
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    // Something to find: an app and a deployment of it.
    fleet.deploy_sample(Some("node-1")).await.unwrap();
    let base = fleet.url("");
    let authorization = format!(
        "Authorization: Bearer {}",
        fleet.co().admin_token().unwrap()
    );
    let workdir = tmp.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(tools.join("bin/schemathesis"))
            .arg("run")
            .arg(repo_root().join("openapi/openapi.json"))
            .args(["--url", &base])
            .args(["--header", &authorization])
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            // The event stream never ends by design; its answers are checked in events.rs.
            .args(["--exclude-path", "/api/v1/events"])
            .args(["--max-examples", "40", "--request-timeout", "20"])
            // Its example database goes to the test's folder, not the checkout.
            .current_dir(&workdir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    // Every operation of the document but the event stream was tested.
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(
        text.contains(&format!("Tested: {}", operations - 1)),
        "not every operation was tested:\n{text}"
    );
    fleet.shutdown().await;
}
