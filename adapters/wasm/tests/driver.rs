//! The wasm driver against real modules: the sample runs and writes, a trapping module fails,
//! remove stops the module and deletes its folder, apply is idempotent, prune clears leftovers,
//! and nothing runs on after the driver is dropped.

use eos_adapter_wasm::WasmDriver;
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, Health, InstanceKey, RuntimeDriver};
use std::path::PathBuf;
use std::time::Duration;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/apps/hello-wasm/hello.wat")
}

fn spec(repository: String) -> ComponentSpec {
    ComponentSpec {
        name: "hello".into(),
        runtime: "wasm".into(),
        repository,
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
        component: "hello".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_module_runs_until_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let driver = WasmDriver::new(tmp.path()).unwrap();
    let s = spec(format!("file://{}", sample().display()));
    driver.apply(&key(), &s).await.unwrap();
    driver.apply(&key(), &s).await.unwrap();
    assert_eq!(driver.inspect(&key()).await, Health::Running);
    let log = driver.component_dir(&key()).join("stdout.log");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("hello from eos").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.matches("hello from eos").count() >= 2,
        "the module keeps writing, and applying twice did not start it twice: {text:?}"
    );
    assert_eq!(text.lines().count(), text.matches("hello from eos").count());
    let tail = driver.logs(&key(), 1).await.unwrap();
    assert_eq!(tail, ["hello from eos"], "the last line of its output");
    let stats = driver.stats(&key()).await.unwrap();
    assert_eq!(stats.memory_bytes, Some(65536), "one page of linear memory");
    driver.remove(&key()).await.unwrap();
    assert!(!driver.component_dir(&key()).exists());
    assert_eq!(driver.inspect(&key()).await, Health::Unknown);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_that_traps_at_start_fails_with_the_trap() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("trap.wat");
    std::fs::write(
        &module,
        r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
    )
    .unwrap();
    let driver = WasmDriver::new(tmp.path().join("work")).unwrap();
    let err = driver
        .apply(&key(), &spec(format!("file://{}", module.display())))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DriverError::Start(m) if m.contains("unreachable")),
        "{err}"
    );
    let missing = driver
        .apply(&key(), &spec("file:///nonexistent/x.wasm".into()))
        .await
        .unwrap_err();
    assert!(matches!(missing, DriverError::Fetch { .. }), "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_removes_leftovers_and_keeps_what_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let driver = WasmDriver::new(tmp.path()).unwrap();
    driver
        .apply(&key(), &spec(format!("file://{}", sample().display())))
        .await
        .unwrap();
    // A crash between starting a component and recording it leaves its folder behind.
    let leftover = InstanceKey {
        deployment_id: "d2".into(),
        component: "hello".into(),
    };
    std::fs::create_dir_all(driver.component_dir(&leftover)).unwrap();
    std::fs::write(driver.component_dir(&leftover).join("stdout.log"), "old").unwrap();

    let removed = driver.prune(&[key()]).await.unwrap();
    assert_eq!(removed, vec![leftover.clone()]);
    assert!(!driver.component_dir(&leftover).exists());
    assert!(
        !tmp.path().join("d2").exists(),
        "its deployment folder goes too"
    );
    assert_eq!(driver.inspect(&key()).await, Health::Running);
    assert!(driver.component_dir(&key()).exists());
    driver.remove(&key()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wasm_driver_passes_the_driver_conformance_suite() {
    let trap = tempfile::tempdir().unwrap();
    let trapping = trap.path().join("trap.wat");
    std::fs::write(
        &trapping,
        r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
    )
    .unwrap();
    eos_driver::conformance::run(eos_driver::conformance::Fixture {
        make: &|root| std::sync::Arc::new(WasmDriver::new(root).unwrap()),
        runs: spec(format!("file://{}", sample().display())),
        cannot_start: spec(format!("file://{}", trapping.display())),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_driver_leaves_no_module_running() {
    let tmp = tempfile::tempdir().unwrap();
    let driver = WasmDriver::new(tmp.path()).unwrap();
    driver
        .apply(&key(), &spec(format!("file://{}", sample().display())))
        .await
        .unwrap();
    let log = driver.component_dir(&key()).join("stdout.log");
    drop(driver);
    // The sample greets every second: give a module that was not stopped time to show it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = std::fs::read_to_string(&log).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        settled,
        "the module stopped with its driver"
    );
}

/// Grows its memory by 1 MiB every 100 ms, forever.
const HUNGRY: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 100000000))
    (loop $more
      (drop (memory.grow (i32.const 16)))
      (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
      (br $more))))"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_module_growing_past_its_memory_limit_fails_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("hungry.wat");
    std::fs::write(&module, HUNGRY).unwrap();
    let driver = WasmDriver::new(tmp.path().join("root")).unwrap();
    let mut limited = spec(format!("file://{}", module.display()));
    limited.settings = serde_json::json!({"wasm": {"memory": "8Mi"}});
    driver.apply(&key(), &limited).await.unwrap();
    let mut health = Health::Running;
    for _ in 0..50 {
        health = driver.inspect(&key()).await;
        if health != Health::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match &health {
        Health::Failed { reason } => assert!(reason.contains("memory"), "{reason}"),
        other => panic!("the limit stops the module: {other:?}"),
    }
    driver.remove(&key()).await.unwrap();

    // Without a limit it keeps growing (past the limit above) and running.
    driver
        .apply(&key(), &spec(format!("file://{}", module.display())))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(driver.inspect(&key()).await, Health::Running);
    driver.remove(&key()).await.unwrap();

    let mut bad = spec(format!("file://{}", module.display()));
    bad.settings = serde_json::json!({"wasm": {"memory": "lots"}});
    match driver.apply(&key(), &bad).await {
        Err(DriverError::Start(reason)) => assert!(reason.contains("wasm.memory"), "{reason}"),
        other => panic!("bad settings are refused: {other:?}"),
    }
}

/// Spins forever without calling the host.
const SPINNER: &str = r#"(module (func (export "_start") (loop $spin (br $spin))))"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_module_is_held_to_its_share_of_a_core() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("spinner.wat");
    std::fs::write(&module, SPINNER).unwrap();
    let driver = WasmDriver::new(tmp.path().join("root")).unwrap();
    let mut limited = spec(format!("file://{}", module.display()));
    limited.settings = serde_json::json!({"wasm": {"cpus": 0.2}});
    driver.apply(&key(), &limited).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    driver.stats(&key()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = driver.stats(&key()).await.unwrap().cpu_percent.unwrap();
    assert_eq!(
        driver.inspect(&key()).await,
        Health::Running,
        "paused, not stopped"
    );
    // A busy machine can only lower what the module gets; the cap must hold whatever the load.
    assert!(
        used <= 27.0,
        "a spinning module held to 20% of a core used {used:.1}%"
    );
    assert!(used > 0.0, "and it still runs: {used:.1}%");
    // Removing a paused module stops it at once.
    driver.remove(&key()).await.unwrap();
    assert_eq!(driver.inspect(&key()).await, Health::Unknown);

    let mut bad = spec(format!("file://{}", module.display()));
    bad.settings = serde_json::json!({"wasm": {"cpus": 2}});
    match driver.apply(&key(), &bad).await {
        Err(DriverError::Start(reason)) => assert!(reason.contains("wasm.cpus"), "{reason}"),
        other => panic!("a share above one core is refused: {other:?}"),
    }
}

/// The sample module made a WASI preview 2 component the standard way: the core module, with
/// the preview 1 command adapter wasmtime publishes, encoded by `wit-component`.
fn sample_component(dir: &std::path::Path) -> PathBuf {
    let core = wat::parse_file(sample()).unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .unwrap()
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let path = dir.join("hello.component.wasm");
    std::fs::write(&path, component).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_preview_2_component_runs_like_a_module() {
    let tmp = tempfile::tempdir().unwrap();
    let component = sample_component(tmp.path());
    let driver = WasmDriver::new(tmp.path().join("root")).unwrap();
    let mut s = spec(format!("file://{}", component.display()));
    s.settings = serde_json::json!({"wasm": {"memory": "4Mi", "cpus": 0.5}});
    driver.apply(&key(), &s).await.unwrap();
    assert_eq!(driver.inspect(&key()).await, Health::Running);
    let mut tail = Vec::new();
    for _ in 0..50 {
        tail = driver.logs(&key(), 2).await.unwrap();
        if tail.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        tail,
        ["hello from eos", "hello from eos"],
        "its stdout, through wasi:cli"
    );
    let stats = driver.stats(&key()).await.unwrap();
    assert!(stats.memory_bytes.unwrap() >= 65536, "{stats:?}");
    driver.remove(&key()).await.unwrap();
    assert_eq!(driver.inspect(&key()).await, Health::Unknown);

    // A component of another world is refused with the reason.
    let library = tmp.path().join("library.wat");
    std::fs::write(&library, "(component)").unwrap();
    match driver
        .apply(&key(), &spec(format!("file://{}", library.display())))
        .await
    {
        Err(DriverError::Start(reason)) => {
            assert!(reason.contains("wasi:cli/command"), "{reason}")
        }
        other => panic!("a component without wasi:cli/run cannot start: {other:?}"),
    }
}
