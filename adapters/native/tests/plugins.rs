//! Native plugins for real: the example `exec` plugin (`plugins/examples/exec`) is built here as
//! a `cdylib` with cargo and loaded from a folder. It passes the driver conformance suite, its
//! stats and logs cross the ABI; a
//! panic inside it comes back as an error while this process runs on; a build for another
//! driver ABI and a library that exports no plugin are refused with the reason.

use eos_adapter_native::NativeDriver;
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, Health, InstanceKey, RuntimeDriver};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the example plugin (with `features`) into its own target folder, once per variant.
fn build(features: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let target = workspace()
        .join("target/plugins")
        .join(if features.is_empty() {
            "default"
        } else {
            features
        });
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(workspace())
        .args(["build", "--quiet", "-p", "eos-plugin-exec", "--target-dir"])
        .arg(&target);
    if !features.is_empty() {
        cargo.args(["--features", features]);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building the example plugin failed");
    target.join("debug/libeos_plugin_exec.so")
}

/// A fresh copy of the library: the dynamic loader gives each path its own statics, so a copy
/// stands for the plugin in a restarted EN.
fn copy_into(library: &Path, dir: &Path) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let to = dir.join(format!("exec-{}.so", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::copy(library, &to).unwrap();
    to
}

fn spec(program: &str, exec: serde_json::Value) -> ComponentSpec {
    ComponentSpec {
        name: "proc".into(),
        runtime: "exec".into(),
        repository: format!("file://{program}"),
        revision: "1.0.0".into(),
        app_version: "1.0.0".into(),
        parameters: Default::default(),
        settings: json!({ "exec": exec }),
        signatures: None,
        workload: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exec_plugin_passes_the_driver_conformance_suite() {
    let library = build("");
    let make = |dir: &Path| -> Arc<dyn RuntimeDriver> {
        let copy = copy_into(&library, dir);
        Arc::new(
            NativeDriver::load(&copy, &dir.join("exec-data")).unwrap_or_else(|e| panic!("{e}")),
        )
    };
    eos_driver::conformance::run(eos_driver::conformance::Fixture {
        make: &make,
        runs: spec("/bin/sleep", json!({"args": ["3600"]})),
        cannot_start: spec("/bin/false", json!({})),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_the_plugin_comes_back_as_an_error_and_the_host_runs_on() {
    let library = build("");
    let dir = tempfile::tempdir().unwrap();
    let driver = NativeDriver::load(&copy_into(&library, dir.path()), &dir.path().join("data"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(driver.info().runtime, "exec");
    assert_eq!(driver.info().source, "native");
    let key = InstanceKey {
        deployment_id: "d".into(),
        component: "proc".into(),
    };
    match driver
        .apply(&key, &spec("/bin/sleep", json!({"panic": true})))
        .await
    {
        Err(DriverError::Other(reason)) => assert!(
            reason.contains("the plugin panicked in apply: asked to panic")
                && reason.contains("(at plugins/examples/exec/src/lib.rs:"),
            "{reason}"
        ),
        other => panic!("a panic is an error: {other:?}"),
    }
    // Still here, and the plugin still works.
    driver
        .apply(&key, &spec("/bin/sleep", json!({"args": ["3600"]})))
        .await
        .unwrap();
    assert_eq!(driver.inspect(&key).await, Health::Running);
    driver.remove(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_for_another_abi_or_a_library_without_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = copy_into(&build("other-abi"), dir.path());
    let refused = NativeDriver::load(&other, &dir.path().join("data"))
        .err()
        .expect("another ABI is refused");
    assert!(
        refused
            .to_string()
            .contains("speaks driver ABI 1001; this EN speaks driver ABI 1"),
        "{refused}"
    );
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("the C library of this machine");
    let refused = NativeDriver::load(&libc, &dir.path().join("data"))
        .err()
        .expect("a library without the root module is refused");
    assert!(
        refused.to_string().contains("not an EOS driver plugin"),
        "{refused}"
    );

    // A folder of plugins: the good one loads, the broken ones are reported, not fatal.
    let folder = dir.path().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(build(""), folder.join("exec.so")).unwrap();
    std::fs::write(folder.join("garbage.so"), b"not a library").unwrap();
    let loaded = NativeDriver::load_dir(&folder, &dir.path().join("data"));
    assert_eq!(loaded.len(), 2);
    assert!(loaded[0].as_ref().is_ok_and(|d| d.info().runtime == "exec"));
    assert!(loaded[1].is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_and_logs_cross_the_plugin_abi() {
    let library = build("");
    let dir = tempfile::tempdir().unwrap();
    let driver = NativeDriver::load(&copy_into(&library, dir.path()), &dir.path().join("data"))
        .unwrap_or_else(|e| panic!("{e}"));
    let key = InstanceKey {
        deployment_id: "d".into(),
        component: "proc".into(),
    };
    let talker = spec(
        "/bin/sh",
        json!({"args": ["-c", "echo one; echo two; echo oops >&2; exec sleep 3600"]}),
    );
    driver.apply(&key, &talker).await.unwrap();
    assert_eq!(
        driver.logs(&key, 1).await.unwrap(),
        ["two", "stderr: oops"],
        "the last line of each stream"
    );
    assert_eq!(driver.logs(&key, 5).await.unwrap().len(), 3);
    let stats = driver.stats(&key).await.unwrap();
    let resident = stats.memory_bytes.expect("the process's resident memory");
    assert!(resident > 0, "{stats:?}");
    driver.remove(&key).await.unwrap();
}
