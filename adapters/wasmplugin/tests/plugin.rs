//! WebAssembly component plugins for real: the example `notes` plugin
//! (`plugins/examples/wasm-notes/notes.c`) is built here (`testing::build_notes_plugin`: clang
//! for wasm32-wasi, then wit-component with the published WASI preview 1 adapter) and loaded
//! from a folder. It passes the driver conformance suite; a trap inside it fails one
//! call while the host runs on; a build for another version of the world, and a file that is
//! no component, are refused with the reason.

use eos_adapter_wasm_plugin::WasmPluginDriver;
use eos_adapter_wasm_plugin::testing::{build_notes_plugin, world_text};
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, Health, InstanceKey, RuntimeDriver};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn build(dir: &Path, name: &str, wit: &str) -> PathBuf {
    build_notes_plugin(dir, name, wit)
}

fn wit() -> String {
    world_text()
}

fn spec(repository: &str) -> ComponentSpec {
    ComponentSpec {
        name: "memo".into(),
        runtime: "notes".into(),
        repository: repository.into(),
        revision: "1.0.0".into(),
        app_version: "1.0.0".into(),
        parameters: Default::default(),
        settings: Default::default(),
        signatures: None,
        workload: None,
    }
}

fn key() -> InstanceKey {
    InstanceKey {
        deployment_id: "d1".into(),
        component: "memo".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_notes_plugin_passes_the_driver_conformance_suite() {
    let build_dir = tempfile::tempdir().unwrap();
    let plugin = build(build_dir.path(), "notes", &wit());
    let make = |dir: &Path| -> Arc<dyn RuntimeDriver> {
        Arc::new(
            WasmPluginDriver::load(&plugin, &dir.join("notes-data"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    eos_driver::conformance::run(eos_driver::conformance::Fixture {
        make: &make,
        runs: spec("note://buy milk"),
        cannot_start: spec("https://example.com/not-a-note"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_the_plugin_fails_the_call_and_the_host_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    build(&plugins, "notes", &wit());
    let mut loaded = WasmPluginDriver::load_dir(&plugins, &dir.path().join("data"));
    assert_eq!(loaded.len(), 1);
    let driver = loaded.remove(0).unwrap_or_else(|e| panic!("{e}"));
    let info = driver.info();
    assert_eq!(
        (info.runtime.as_str(), info.source.as_str()),
        ("notes", "wasm")
    );

    driver
        .apply(&key(), &spec("note://buy milk"))
        .await
        .unwrap();
    assert_eq!(
        driver.logs(&key(), 1).await.unwrap(),
        ["running"],
        "the last line of the note's log"
    );
    assert_eq!(
        driver.logs(&key(), 5).await.unwrap(),
        ["kept buy milk at revision 1.0.0", "running"]
    );
    let stats = driver.stats(&key()).await.unwrap();
    assert!(stats.memory_bytes.unwrap() > 0, "{stats:?}");

    let trapping = InstanceKey {
        deployment_id: "d2".into(),
        component: "memo".into(),
    };
    match driver.apply(&trapping, &spec("note://trap")).await {
        Err(DriverError::Other(reason)) => {
            assert!(reason.contains("the plugin trapped in apply"), "{reason}")
        }
        other => panic!("a trap is an error: {other:?}"),
    }
    // A fresh instance answers the next call, and what the plugin keeps in its folder is there.
    assert_eq!(driver.inspect(&key()).await, Health::Running);
    assert_eq!(driver.inspect(&trapping).await, Health::Unknown);
    driver.remove(&key()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_for_another_world_or_a_file_that_is_no_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = build(
        dir.path(),
        "notes-v2",
        &wit().replace("eos:driver@1.0.0", "eos:driver@2.0.0"),
    );
    let refused = WasmPluginDriver::load(&other, &dir.path().join("data"))
        .err()
        .expect("another world version is refused");
    let reason = refused.to_string();
    assert!(
        reason.contains("notes-v2.wasm") && reason.contains("eos:driver@1.0.0"),
        "{reason}"
    );
    assert!(
        reason.contains("eos:driver/host@2.0.0"),
        "names what it wants: {reason}"
    );

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let reason = WasmPluginDriver::load(&junk, &dir.path().join("data"))
        .err()
        .expect("junk is refused")
        .to_string();
    assert!(reason.contains("not a WebAssembly component"), "{reason}");
}
