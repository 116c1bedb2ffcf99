//! The oci driver against a real Docker engine and a real registry on loopback (both started by
//! `config/services.sh`, which the test command runs): the conformance suite, adoption without
//! restart, container settings, health checks, image collection, private registries, and the
//! reasons a container that cannot run gives. `EOS_TEST_CONTAINER_SOCKET` points the same tests
//! at another engine: `config/test.sh` runs them against Podman too.

use eos_adapter_oci::OciDriver;
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, Health, InstanceKey, RuntimeDriver};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The engine under test: Docker by default, or `EOS_TEST_CONTAINER_SOCKET` (Podman's
/// Docker-compatible socket, for one).
fn socket() -> String {
    std::env::var("EOS_TEST_CONTAINER_SOCKET").unwrap_or_else(|_| "/var/run/docker.sock".into())
}

fn registry() -> String {
    std::env::var("EOS_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// A scope of its own per driver, so tests running side by side never prune each other.
fn scope() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The engine under test, spoken to directly.
async fn engine() -> bollard::Docker {
    bollard::Docker::connect_with_unix(&socket(), 60, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

async fn driver(scope: &str) -> OciDriver {
    OciDriver::connect(&socket(), scope, Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"))
}

fn spec(name: &str, settings: serde_json::Value) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        runtime: "oci".into(),
        repository: format!("oci://{}/eos-test/busybox", registry()),
        revision: "1.0.0".into(),
        app_version: "1.0.0".into(),
        parameters: Default::default(),
        settings: json!({ "container": settings }),
        signatures: None,
        workload: None,
    }
}

fn key(deployment: &str, component: &str) -> InstanceKey {
    InstanceKey {
        deployment_id: deployment.into(),
        component: component.into(),
    }
}

/// Runs until stopped, and stops at once on SIGTERM (a bare `sleep` as PID 1 ignores it, and
/// every stop would wait out the grace period).
fn sleeper() -> ComponentSpec {
    spec(
        "sleeper",
        json!({"command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oci_driver_passes_the_driver_conformance_suite() {
    // Each `make` over the same folder stands for the same EN: the folder names the scope.
    let make = |dir: &std::path::Path| -> Arc<dyn RuntimeDriver> {
        let scope = format!(
            "conformance-{}-{}",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        );
        let driver = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(OciDriver::connect(&socket(), &scope, Default::default()))
        })
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
        Arc::new(driver)
    };
    let mut missing = sleeper();
    missing.repository = format!("oci://{}/eos-test/missing", registry());
    eos_driver::conformance::run(eos_driver::conformance::Fixture {
        make: &make,
        runs: sleeper(),
        cannot_start: missing,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_container_is_adopted_after_a_restart_not_recreated() {
    let scope = scope();
    let first = driver(&scope).await;
    let k = key("adopt", "sleeper");
    let handle = first.apply(&k, &sleeper()).await.unwrap();
    let started = started_at(&first, &k).await;
    drop(first);
    let again = driver(&scope).await;
    let adopted = again.recover(&k, &sleeper(), &handle).await.unwrap();
    assert_eq!(adopted, handle, "the same container");
    assert_eq!(started_at(&again, &k).await, started, "not restarted");
    // A different spec for the same component replaces it.
    let mut changed = sleeper();
    changed.parameters.insert("MODE".into(), "new".into());
    let replaced = again.apply(&k, &changed).await.unwrap();
    assert_ne!(replaced, handle);
    again.remove(&k).await.unwrap();
}

async fn started_at(driver: &OciDriver, k: &InstanceKey) -> String {
    let docker = engine().await;
    docker
        .inspect_container(&driver.container_name(k), None)
        .await
        .unwrap()
        .state
        .unwrap()
        .started_at
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_parameters_ports_volumes_and_limits_reach_the_container() {
    let d = driver(&scope()).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut web = spec(
        "web",
        json!({
            "command": ["sh", "-c", "echo greeting=$GREETING mode=$MODE; echo kept > /state/file; exec httpd -f -p 80 -h /www"],
            "env": {"MODE": "test"},
            "ports": [format!("{port}:80")],
            "volumes": ["state:/state"],
            "memory": "64Mi",
            "cpus": 0.5
        }),
    );
    web.parameters.insert("GREETING".into(), "hi".into());
    let k = key("settings", "web");
    d.apply(&k, &web).await.unwrap();
    assert_eq!(d.inspect(&k).await, Health::Running);

    let page = reqwest::get(format!("http://127.0.0.1:{port}/index.html"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.trim(), "hello from eos");
    let logs = d.logs(&k, 10).await.unwrap();
    assert!(
        logs.iter().any(|l| l == "greeting=hi mode=test"),
        "parameters and env become the environment: {logs:?}"
    );
    let docker = engine().await;
    let host = docker
        .inspect_container(&d.container_name(&k), None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(host.memory, Some(64 << 20));
    let stats = d.stats(&k).await.unwrap();
    let used = stats.memory_bytes.expect("the engine reports memory");
    assert!(used > 0 && used < 64 << 20, "{stats:?}");
    assert!(stats.cpu_percent.is_some_and(|c| c >= 0.0), "{stats:?}");
    assert_eq!(host.nano_cpus, Some(500_000_000));
    let volume = format!("{}-state", d.container_name(&k));
    assert!(docker.inspect_volume(&volume).await.is_ok());

    d.remove(&k).await.unwrap();
    assert_eq!(d.inspect(&k).await, Health::Unknown);
    assert!(
        docker.inspect_volume(&volume).await.is_err(),
        "the component's named volume goes with it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_that_cannot_run_says_why() {
    let d = driver(&scope()).await;
    let crash = spec(
        "crash",
        json!({"command": ["sh", "-c", "echo boom >&2; exit 3"]}),
    );
    let k = key("why", "crash");
    match d.apply(&k, &crash).await {
        Err(DriverError::Start(reason)) => {
            assert!(reason.contains("exited with status 3"), "{reason}");
            assert!(reason.contains("boom"), "its last output: {reason}");
        }
        other => panic!("a crash at start fails apply: {other:?}"),
    }
    assert_eq!(d.inspect(&k).await, Health::Exited { code: 3 });
    d.remove(&k).await.unwrap();

    let mut missing = sleeper();
    missing.repository = format!("oci://{}/eos-test/nothing-here", registry());
    match d.apply(&key("why", "missing"), &missing).await {
        Err(DriverError::Fetch { repository, reason }) => {
            assert!(repository.ends_with("nothing-here"));
            assert!(!reason.is_empty());
        }
        other => panic!("a missing image is a fetch error: {other:?}"),
    }
    let mut bad = sleeper();
    bad.settings = json!({"container": {"ports": ["eighty"]}});
    match d.apply(&key("why", "bad"), &bad).await {
        Err(DriverError::Start(reason)) => {
            assert!(reason.contains("container.ports[0]"), "{reason}")
        }
        other => panic!("bad settings are refused: {other:?}"),
    }
}

/// A failing health check makes a running container unhealthy: the supervisor's cue. (Podman
/// runs health checks from systemd timers, so on a machine without systemd they never run:
/// `config/test.sh` leaves this one out of the Podman run.)
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_health_check_makes_the_container_unhealthy() {
    let d = driver(&scope()).await;
    let sick = spec(
        "sick",
        json!({"command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"], "healthcheck": {"command": ["false"], "intervalSeconds": 1, "retries": 1}}),
    );
    let k = key("why", "sick");
    d.apply(&k, &sick).await.unwrap();
    let mut health = Health::Running;
    for _ in 0..40 {
        health = d.inspect(&k).await;
        if matches!(health, Health::Failed { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        matches!(&health, Health::Failed { reason } if reason.starts_with("unhealthy")),
        "{health:?}"
    );
    d.remove(&k).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_registry_is_pulled_from_with_its_login_only() {
    let private =
        std::env::var("EOS_TEST_PRIVATE_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5001".into());
    let image = format!("{private}/eos-test/busybox:1.0.0");
    // The engine must not have it already, or no pull would happen.
    let docker = engine().await;
    let _ = docker
        .remove_image(
            &image,
            Some(
                bollard::query_parameters::RemoveImageOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
            None,
        )
        .await;
    let mut private_sleeper = sleeper();
    private_sleeper.repository = format!("oci://{private}/eos-test/busybox");
    let k = key("private", "sleeper");

    let anonymous = driver(&scope()).await;
    match anonymous.apply(&k, &private_sleeper).await {
        Err(DriverError::Fetch { reason, .. }) => assert!(
            reason.to_lowercase().contains("auth") || reason.contains("401"),
            "{reason}"
        ),
        other => panic!("no login, no pull: {other:?}"),
    }
    let logins = [(
        private.clone(),
        eos_adapter_oci::RegistryLogin {
            username: "eos".into(),
            password: "eos-secret".into(),
        },
    )]
    .into();
    let with_login = OciDriver::connect(&socket(), &scope(), logins)
        .await
        .unwrap();
    with_login.apply(&k, &private_sleeper).await.unwrap();
    assert_eq!(with_login.inspect(&k).await, Health::Running);
    with_login.remove(&k).await.unwrap();
}

/// Pushes `revisions` distinct images (the test busybox, each with its own label) as
/// `REGISTRY/eos-test/gc-PID:N`, and removes them from the engine, so that applying pulls.
async fn push_revisions(docker: &bollard::Docker, revisions: u32) -> String {
    use bollard::query_parameters::{
        CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, PushImageOptionsBuilder,
        RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    };
    use futures::StreamExt;
    let repository = format!("{}/eos-test/gc-{}", registry(), std::process::id());
    let base = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().build()),
            bollard::models::ContainerCreateBody {
                image: Some(format!("{}/eos-test/busybox:1.0.0", registry())),
                ..Default::default()
            },
        )
        .await
        .expect("the test image exists: `bash config/services.sh` builds it");
    for n in 1..=revisions {
        let tag = n.to_string();
        docker
            .commit_container(
                CommitContainerOptionsBuilder::default()
                    .container(&base.id)
                    .repo(&repository)
                    .tag(&tag)
                    .build(),
                bollard::models::ContainerConfig {
                    labels: Some([("eos.test.revision".to_owned(), tag.clone())].into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut push = docker.push_image(
            &repository,
            Some(PushImageOptionsBuilder::default().tag(&tag).build()),
            None,
        );
        while let Some(step) = push.next().await {
            step.unwrap();
        }
        docker
            .remove_image(
                &format!("{repository}:{tag}"),
                Some(RemoveImageOptionsBuilder::default().build()),
                None,
            )
            .await
            .unwrap();
    }
    docker
        .remove_container(
            &base.id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .unwrap();
    repository
}

#[tokio::test(flavor = "multi_thread")]
async fn old_images_beyond_the_kept_few_are_deleted_but_never_one_in_use() {
    let docker = engine().await;
    let repository = push_revisions(&docker, 3).await;
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("images.json");
    let scope = scope();
    let oci = driver(&scope).await.with_image_history(history.clone());
    let at = |revision: &str| {
        let mut s = sleeper();
        s.repository = format!("oci://{repository}");
        s.revision = revision.into();
        s
    };
    let has = |revision: &'static str| {
        let docker = docker.clone();
        let image = format!("{repository}:{revision}");
        async move { docker.inspect_image(&image).await.is_ok() }
    };
    // `a` stays on revision 1; `b` moves from 2 to 3.
    oci.apply(&key("a", "sleeper"), &at("1")).await.unwrap();
    oci.apply(&key("b", "sleeper"), &at("2")).await.unwrap();
    assert!(
        oci.collect_garbage(1).await.unwrap().is_empty(),
        "all in use"
    );
    oci.apply(&key("b", "sleeper"), &at("3")).await.unwrap();

    // A new driver over the same history file (an EN restart) knows what was used before.
    let restarted = driver(&scope).await.with_image_history(history);
    let deleted = restarted.collect_garbage(1).await.unwrap();
    assert_eq!(
        deleted,
        [format!("{repository}:2")],
        "only the unused older one"
    );
    assert!(
        has("1").await,
        "revision 1 is older but a container runs from it"
    );
    assert!(!has("2").await);
    assert!(has("3").await);

    // Once `a` is gone, revision 1 goes too; the newest stays even though nothing uses it.
    restarted.remove(&key("a", "sleeper")).await.unwrap();
    restarted.remove(&key("b", "sleeper")).await.unwrap();
    let deleted = restarted.collect_garbage(1).await.unwrap();
    assert_eq!(deleted, [format!("{repository}:1")]);
    assert!(
        has("3").await,
        "the newest is kept for a quick rollback or restart"
    );
    let _ = docker
        .remove_image(
            &format!("{repository}:3"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}
