//! Plugins through the whole system. The example native plugin `exec` and the example
//! WebAssembly component plugin `notes`, both built here, sit in node-2's plugin folder; the EN
//! lists each among its drivers with its source (`native`, `wasm`), the LO places their
//! applications only there, they run, their logs come back live through the CO, an update to
//! the next version replaces what they run, and undeploying stops them.

use eos_adapter_wasm_plugin::testing::{build_notes_plugin, world_text};
use eos_tests::plugins::build_exec_plugin;
use eos_tests::{Fleet, LIMIT, eventually};
use serde_json::json;
use std::path::Path;

/// A fleet of node-1 and node-2, with `plugin` (a file) as `name` in node-2's plugin folder,
/// once node-2 lists the driver `label` (`runtime:source`).
async fn fleet_with_plugin(tmp: &Path, plugin: &Path, name: &str, label: &str) -> Fleet {
    let mut fleet = Fleet::start(tmp, "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    let plugins = tmp.join("plugins-node-2");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(plugin, plugins.join(name)).unwrap();
    fleet
        .reconfigure_en(1, |c| {
            c.plugin_dir = Some(plugins.clone());
            // The exec plugin runs programs of the device: its owner lets components name them.
            c.file_artifact_roots = vec!["/bin".into()];
        })
        .await
        .unwrap();
    eventually(&format!("node-2 to list {label}"), LIMIT, || async {
        let devices = fleet.get("/api/v1/devices").await.ok()?;
        let drivers = devices
            .as_array()?
            .iter()
            .find(|d| d["id"] == "site-1/node-2")?["capabilities"]["labels"]["eos.dev/drivers"]
            .clone();
        drivers.as_array()?.iter().any(|d| d == label).then_some(())
    })
    .await;
    fleet
}

/// Adds the application in `margo` (its description) under `folder` in `tmp`.
async fn add(fleet: &Fleet, tmp: &Path, folder: &str, margo: &str) {
    let app = tmp.join(folder);
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("margo.yaml"), margo).unwrap();
    fleet.add_app(&app).await.unwrap();
}

/// Adds the application in `margo` (its description) and deploys it to the site; returns the
/// deployment once installed, after checking it went to node-2.
async fn deploy(fleet: &Fleet, tmp: &Path, app_id: &str, margo: &str) -> String {
    add(fleet, tmp, app_id, margo).await;
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": app_id, "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let view = eventually("the app to be installed", LIMIT, || async {
        let v = fleet.deployment(&id).await;
        (v["state"] == "installed").then_some(v)
    })
    .await;
    assert_eq!(view["devices"][0]["device_id"], "site-1/node-2", "{view}");
    id
}

/// Version 1.1.0 of the application in `margo` (1.0.0), with `edits` made to its text.
fn next_version(margo: &str, edits: &[(&str, &str)]) -> String {
    let mut text = margo
        .replace("version: 1.0.0", "version: 1.1.0")
        .replace("revision: 1.0.0", "revision: 1.1.0");
    for (old, new) in edits {
        assert!(text.contains(old), "no {old:?} in {text}");
        text = text.replace(old, new);
    }
    text
}

/// Whether process `pid` is gone, or dead and not yet waited for (a zombie).
fn ended(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .ok()
        .is_none_or(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// The command line of process `pid`, its arguments joined by spaces; `None` once it is gone.
fn command_line(pid: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exec_app_runs_on_the_en_that_has_the_plugin() {
    let library = build_exec_plugin();
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_plugin(tmp.path(), &library, "exec.so", "exec:native").await;
    let margo = r#"apiVersion: margo.org/v1-alpha1
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
"#;
    let id = deploy(&fleet, tmp.path(), "com-eos-test-exec", margo).await;
    let pid_file = tmp
        .path()
        .join("en/node-2/plugin-data/exec")
        .join(&id)
        .join("sleeper/pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    // The EN hands the plugin the program as its links resolve (/bin may lead to /usr/bin).
    let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
    assert_eq!(
        command_line(&pid),
        Some(format!("{} 3600", sleep.display()))
    );

    // Version 1.1.0 sleeps for another time: a new process replaces the old one.
    let next = next_version(margo, &[(r#"args: ["3600"]"#, r#"args: ["3601"]"#)]);
    add(&fleet, tmp.path(), "exec-1.1.0", &next).await;
    fleet.update_to(&id, "1.1.0").await.unwrap();
    let new_pid = eventually("the new process", LIMIT, || async {
        let p = std::fs::read_to_string(&pid_file).ok()?;
        (command_line(&p)? == format!("{} 3601", sleep.display())).then_some(p)
    })
    .await;
    assert_ne!(new_pid, pid);
    eventually("the old process to end", LIMIT, || async {
        ended(&pid).then_some(())
    })
    .await;

    fleet.undeploy(&id).await.unwrap();
    assert!(!pid_file.exists(), "its folder is gone");
    eventually("the new process to end", LIMIT, || async {
        ended(&new_pid).then_some(())
    })
    .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notes_app_runs_on_the_en_that_has_the_wasm_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let plugin = build_notes_plugin(&build, "notes", &world_text());
    let fleet = fleet_with_plugin(tmp.path(), &plugin, "notes.wasm", "notes:wasm").await;
    let margo = r#"apiVersion: margo.org/v1-alpha1
kind: ApplicationDescription
id: com-eos-test-notes
metadata:
  name: Notes
  version: 1.0.0
  catalog:
    organization: [{name: EOS}]
deploymentProfiles:
  - type: custom
    id: notes
    x-eos-extensions: {runtime: notes}
    components:
      - name: memo
        properties: {repository: "note://buy milk", revision: 1.0.0}
"#;
    let id = deploy(&fleet, tmp.path(), "com-eos-test-notes", margo).await;
    let note = tmp
        .path()
        .join("en/node-2/plugin-data/notes")
        .join(format!("{id}~memo"));
    assert!(note.exists(), "the plugin kept its note in its own folder");
    // The plugin's log, through CO -> LO -> EN -> plugin and back.
    let live = fleet
        .get(&format!("/api/v1/deployments/{id}/live?lines=5"))
        .await
        .unwrap();
    assert_eq!(
        live[0]["components"][0]["log"],
        json!(["kept buy milk at revision 1.0.0", "running"]),
        "{live}"
    );
    assert_eq!(live[0]["components"][0]["runtime"], "notes", "{live}");

    // Version 1.1.0 keeps another note: the plugin replaces it.
    let next = next_version(margo, &[("note://buy milk", "note://buy bread")]);
    add(&fleet, tmp.path(), "notes-1.1.0", &next).await;
    fleet.update_to(&id, "1.1.0").await.unwrap();
    eventually("the new note", LIMIT, || async {
        let text = std::fs::read_to_string(&note).ok()?;
        (text == "kept buy bread at revision 1.1.0\nrunning\n").then_some(())
    })
    .await;

    fleet.undeploy(&id).await.unwrap();
    assert!(!note.exists(), "removing the component removed the note");
    fleet.shutdown().await;
}
