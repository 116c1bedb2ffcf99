//! WASM modules from an OCI registry, through the whole system: the sample module is pushed to
//! the test registry as an OCI artifact (as `oras push` makes one), an application names it as
//! `oci://…`, the EN pulls it into its artifact cache and runs it. With the registry cut off
//! (a fault proxy in front of it), a restarted EN runs it from the cache and a new deployment
//! of it still installs; a module the registry does not have fails with the reason. Updates to
//! newer versions replace the module, and the cache keeps the newest two versions and those
//! still in use, down to the newest two once everything is undeployed.

use eos_tests::registry::{push_wasm, test_registry};
use eos_tests::{Fault, FaultProxy, Fleet, LIMIT, eventually, repo_root};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Version `version` of an application whose one component is `repository` (an `oci://`
/// reference; the version is its tag).
fn app_package(dir: &Path, id: &str, repository: &str, version: &str) -> PathBuf {
    let folder = dir.join(format!("{id}-{version}"));
    std::fs::create_dir_all(&folder).unwrap();
    let yaml = std::fs::read_to_string(repo_root().join("config/apps/hello-wasm/margo.yaml"))
        .unwrap()
        .replace("id: com-eos-hello-wasm", &format!("id: {id}"))
        .replace("version: 1.0.0", &format!("version: {version}"))
        .replace("revision: 1.0.0", &format!("revision: {version}"))
        .replace(
            "repository: ./hello.wat",
            &format!("repository: {repository}"),
        );
    std::fs::write(folder.join("margo.yaml"), yaml).unwrap();
    eos_tests::copy_tree(
        &repo_root().join("config/apps/hello-wasm/resources"),
        &folder.join("resources"),
    );
    folder
}

async fn add(fleet: &Fleet, dir: &Path, id: &str, repository: &str, version: &str) {
    let folder = app_package(dir, id, repository, version);
    fleet.add_app(&folder).await.unwrap();
}

/// The greetings of the modules in the EN's artifact cache, sorted: which versions it keeps.
fn cached_greetings(cache: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("sha256-"))
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let at = text.find("hello from ").expect("a greeting in the module");
            text[at..at + 14].to_owned()
        })
        .collect();
    found.sort();
    found
}

async fn deploy(fleet: &Fleet, app: &str) -> String {
    let (code, body) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": app, "site": "site-1", "host": "node-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_module_from_a_registry_runs_and_keeps_running_without_the_registry() {
    let registry = test_registry();
    let wat =
        std::fs::read_to_string(repo_root().join("config/apps/hello-wasm/hello.wat")).unwrap();
    push_wasm(&format!("{registry}/eos-test/hello-wasm:1.0.0"), &wat)
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    // The EN reaches the registry through a proxy the test can cut.
    let proxy = FaultProxy::start(registry.parse().unwrap()).await.unwrap();
    let via = proxy.addr;

    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    add(
        &fleet,
        tmp.path(),
        "com-eos-test-registry-wasm",
        &format!("oci://{via}/eos-test/hello-wasm"),
        "1.0.0",
    )
    .await;
    add(
        &fleet,
        tmp.path(),
        "com-eos-test-absent-wasm",
        &format!("oci://{via}/eos-test/absent"),
        "1.0.0",
    )
    .await;
    let first = deploy(&fleet, "com-eos-test-registry-wasm").await;
    eventually("the pulled module to greet", LIMIT, || async {
        (fleet.greetings("node-1", &first) >= 2).then_some(())
    })
    .await;
    let cache = tmp.path().join("en/node-1/artifacts");
    assert_eq!(
        cached_greetings(&cache),
        ["hello from eos"],
        "one module in the artifact cache"
    );

    // The registry goes out of reach: a restarted EN runs the module from its cache, and a new
    // deployment of the same module installs too.
    proxy.set(Fault::Cut);
    fleet.stop_en(0).await;
    fleet.start_en(0).await.unwrap();
    let before = fleet.greetings("node-1", &first);
    eventually(
        "the module to greet again after the restart",
        LIMIT,
        || async { (fleet.greetings("node-1", &first) >= before + 2).then_some(()) },
    )
    .await;
    let second = deploy(&fleet, "com-eos-test-registry-wasm").await;
    eventually("a second deployment from the cache", LIMIT, || async {
        (fleet.deployment(&second).await["state"] == "installed").then_some(())
    })
    .await;

    // A module the registry does not have fails, and says why.
    proxy.set(Fault::Pass);
    let absent = deploy(&fleet, "com-eos-test-absent-wasm").await;
    let view = eventually("the absent module to fail", LIMIT, || async {
        let v = fleet.deployment(&absent).await;
        (v["state"] == "failed").then_some(v)
    })
    .await;
    let why =
        view["devices"][0]["error"].to_string() + &view["devices"][0]["components"].to_string();
    assert!(why.contains("eos-test/absent"), "{view}");

    // The first deployment moves to 1.1.0, then to 1.2.0, whose modules greet with their
    // version. Each update replaces the module; the cache keeps the newest two versions and
    // the one the second deployment still runs (the EN keeps 2 per repository by default).
    let steps: [(&str, &str, &[&str]); 2] = [
        (
            "1.1.0",
            "hello from v11",
            &["hello from eos", "hello from v11"],
        ),
        (
            "1.2.0",
            "hello from v12",
            &["hello from eos", "hello from v11", "hello from v12"],
        ),
    ];
    for (version, greeting, cached) in steps {
        push_wasm(
            &format!("{registry}/eos-test/hello-wasm:{version}"),
            // The wat text spells the newline `\n`.
            &wat.replace(r"hello from eos\n", &format!(r"{greeting}\n")),
        )
        .await
        .unwrap();
        add(
            &fleet,
            tmp.path(),
            "com-eos-test-registry-wasm",
            &format!("oci://{via}/eos-test/hello-wasm"),
            version,
        )
        .await;
        fleet.update_to(&first, version).await.unwrap();
        let log = fleet.workload_log("node-1", &first, "hello");
        eventually(&format!("the {version} module to greet"), LIMIT, || async {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains(greeting).then_some(())
        })
        .await;
        assert_eq!(
            cached_greetings(&cache),
            cached,
            "after the update to {version}"
        );
    }
    let still = fleet.greetings("node-1", &second);
    eventually("the second deployment to greet on", LIMIT, || async {
        (fleet.greetings("node-1", &second) > still).then_some(())
    })
    .await;

    // Undeployed, nothing runs from 1.0.0: only the newest two stay.
    for id in [&second, &first, &absent] {
        fleet.undeploy(id).await.unwrap();
    }
    assert_eq!(
        cached_greetings(&cache),
        ["hello from v11", "hello from v12"]
    );
    assert!(
        !tmp.path().join("en/node-1/workloads").join(&first).exists(),
        "the module's folder is gone"
    );
    fleet.shutdown().await;
}
