//! The compose driver against a real Docker engine: Margo compose archives built here (tar.gz
//! with one folder holding `compose.yaml`) pass the driver conformance suite, services reach
//! each other by name in dependency order, parameters fill the file, and archives the spec
//! forbids are refused with the reason before anything runs.

use eos_adapter_oci::OciDriver;
use eos_adapter_oci::compose::ComposeDriver;
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, Health, InstanceKey, RuntimeDriver};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const SOCKET: &str = "/var/run/docker.sock";

fn registry() -> String {
    std::env::var("EOS_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// Writes a tar.gz of `files` (path inside the archive → content).
fn archive(dir: &Path, name: &str, files: &[(&str, String)]) -> PathBuf {
    let path = dir.join(format!("{name}.tar.gz"));
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for (inside, content) in files {
        let mut header = tar::Header::new_old();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        // Written byte for byte: the tar crate refuses to write `..`, and a hostile archive
        // is what some cases need.
        header.as_old_mut().name[..inside.len()].copy_from_slice(inside.as_bytes());
        header.set_cksum();
        tar.append(&header, content.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    path
}

/// A web service and a probe that fetches its page by the service's name.
fn web_and_probe() -> String {
    format!(
        r#"services:
  web:
    image: {registry}/eos-test/busybox:1.0.0
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1/index.html"]
      interval: 1s
      retries: 3
  probe:
    image: {registry}/eos-test/busybox:1.0.0
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do echo \"${{GREETING:-none}} $$(wget -qO- http://web/index.html)\"; sleep 1; done"]
    environment:
      ROLE: probe
    volumes: ["state:/state"]
    depends_on:
      web: {{condition: service_healthy}}
volumes:
  state: {{}}
"#,
        registry = registry()
    )
}

fn spec(archive: &Path) -> ComponentSpec {
    ComponentSpec {
        name: "stack".into(),
        runtime: "compose".into(),
        repository: format!("file://{}", archive.display()),
        revision: "1.0.0".into(),
        app_version: "1.0.0".into(),
        parameters: [("GREETING".to_owned(), "hi".to_owned())].into(),
        settings: Default::default(),
        signatures: None,
        workload: None,
    }
}

async fn driver(scope: &str, root: &Path) -> ComposeDriver {
    OciDriver::connect(SOCKET, scope, Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"))
        .compose_driver(root.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_driver_passes_the_driver_conformance_suite() {
    let files = tempfile::tempdir().unwrap();
    let runs = archive(
        files.path(),
        "runs",
        &[("stack/compose.yaml", web_and_probe())],
    );
    let crashes = archive(
        files.path(),
        "crashes",
        &[(
            "stack/compose.yaml",
            format!(
                "services:\n  bad:\n    image: {}/eos-test/busybox:1.0.0\n    command: [sh, -c, 'echo broken; exit 3']\n",
                registry()
            ),
        )],
    );
    let make = |dir: &Path| -> Arc<dyn RuntimeDriver> {
        let scope = format!(
            "compose-conformance-{}-{}",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        );
        let root = dir.join("compose");
        let d = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move { driver(&scope, &root).await })
        })
        .join()
        .unwrap();
        Arc::new(d)
    };
    eos_driver::conformance::run(eos_driver::conformance::Fixture {
        make: &make,
        runs: spec(&runs),
        cannot_start: spec(&crashes),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn services_reach_each_other_by_name_with_parameters_filled_in() {
    let files = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let d = driver(&format!("compose-{}", std::process::id()), root.path()).await;
    let stack = archive(
        files.path(),
        "stack",
        &[("stack/compose.yaml", web_and_probe())],
    );
    let key = InstanceKey {
        deployment_id: "d1".into(),
        component: "stack".into(),
    };
    d.apply(&key, &spec(&stack)).await.unwrap();
    assert_eq!(d.inspect(&key).await, Health::Running);
    let docker = bollard::Docker::connect_with_unix(SOCKET, 30, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let probe = format!("{}-probe", d.project(&key));
    let mut seen = String::new();
    for _ in 0..30 {
        let mut logs = docker.logs(
            &probe,
            Some(
                bollard::query_parameters::LogsOptionsBuilder::default()
                    .stdout(true)
                    .build(),
            ),
        );
        seen.clear();
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut logs).await {
            seen.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        if seen.contains("hi hello from eos") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        seen.contains("hi hello from eos"),
        "the probe reaches web by name, with GREETING from the parameters: {seen:?}"
    );
    let logs = d.logs(&key, 50).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("probe | hi hello from eos")),
        "each line led by its service: {logs:?}"
    );
    let stats = d.stats(&key).await.unwrap();
    assert!(stats.memory_bytes.is_some_and(|m| m > 0), "{stats:?}");
    let volume = format!("{}-state", d.project(&key));
    assert!(docker.inspect_volume(&volume).await.is_ok());
    d.remove(&key).await.unwrap();
    assert_eq!(d.inspect(&key).await, Health::Unknown);
    assert!(
        docker.inspect_volume(&volume).await.is_err(),
        "the volume goes too"
    );
    assert!(
        docker
            .inspect_network(
                &d.project(&key),
                None::<bollard::query_parameters::InspectNetworkOptions>
            )
            .await
            .is_err(),
        "and the network"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn archives_the_spec_forbids_are_refused_with_the_reason() {
    let files = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let scope = format!("compose-bad-{}", std::process::id());
    let d = driver(&scope, root.path()).await;
    let compose = "services:\n  a: {image: x}\n".to_owned();
    let cases = [
        (
            "two-tops",
            vec![("a/compose.yaml", compose.clone()), ("b/x", "x".into())],
            "exactly one top-level folder",
        ),
        (
            "escape",
            vec![
                ("a/compose.yaml", compose.clone()),
                ("a/../../etc/x", "x".into()),
            ],
            "not allowed",
        ),
        (
            "wrong-name",
            vec![("a/compose.yml", compose.clone())],
            "no compose.yaml",
        ),
        (
            "unknown-key",
            vec![(
                "a/compose.yaml",
                "services:\n  a: {image: x, privileged: true}\n".into(),
            )],
            "privileged",
        ),
        (
            "host-root",
            vec![(
                "a/compose.yaml",
                "services:\n  a: {image: x, volumes: [\"/:/host\"]}\n".into(),
            )],
            "workload security policy",
        ),
        (
            "engine-socket",
            vec![(
                "a/compose.yaml",
                "services:\n  a: {image: x, volumes: [\"/var/run/docker.sock:/s\"]}\n".into(),
            )],
            "workload security policy",
        ),
        (
            "device",
            vec![(
                "a/compose.yaml",
                "services:\n  a: {image: x, devices: [\"/dev/null\"]}\n".into(),
            )],
            "allows no devices",
        ),
        (
            "cap-add",
            vec![(
                "a/compose.yaml",
                "services:\n  a: {image: x, cap_add: [SYS_ADMIN]}\n".into(),
            )],
            "cap_add",
        ),
    ];
    for (name, entries, why) in cases {
        let path = archive(files.path(), name, &entries);
        let key = InstanceKey {
            deployment_id: name.into(),
            component: "stack".into(),
        };
        match d.apply(&key, &spec(&path)).await {
            Err(DriverError::Start(reason)) => {
                assert!(reason.contains(why), "{name}: {reason}")
            }
            other => panic!("{name}: refused, not {other:?}"),
        }
        assert_eq!(
            d.inspect(&key).await,
            Health::Unknown,
            "{name}: nothing ran"
        );
    }
    assert_eq!(
        networks_named(&scope).await,
        Vec::<String>::new(),
        "a refused component leaves no network behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn services_reach_each_other_only_over_a_network_they_share() {
    let files = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let d = driver(&format!("compose-nets-{}", std::process::id()), root.path()).await;
    let probe = |who: &str| {
        format!(
            "[\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do echo \\\"{who} $$(wget -qO- http://web/index.html || echo unreachable)\\\"; sleep 1; done\"]"
        )
    };
    let compose = format!(
        "services:\n  web:\n    image: {r}/eos-test/busybox:1.0.0\n    command: [httpd, -f, -p, '80', -h, /www]\n    networks: [back]\n  insider:\n    image: {r}/eos-test/busybox:1.0.0\n    command: {inside}\n    networks: [back, default]\n  outsider:\n    image: {r}/eos-test/busybox:1.0.0\n    command: {outside}\nnetworks:\n  back: {{}}\n",
        r = registry(),
        inside = probe("insider"),
        outside = probe("outsider"),
    );
    let stack = archive(files.path(), "nets", &[("stack/compose.yaml", compose)]);
    let key = InstanceKey {
        deployment_id: "nets".into(),
        component: "stack".into(),
    };
    d.apply(&key, &spec(&stack)).await.unwrap();
    let mut logs = Vec::new();
    for _ in 0..40 {
        logs = d.logs(&key, 20).await.unwrap();
        let inside = logs.iter().any(|l| l == "insider | insider hello from eos");
        let outside = logs.iter().any(|l| l == "outsider | outsider unreachable");
        if inside && outside {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        logs.iter().any(|l| l == "insider | insider hello from eos"),
        "a service on the shared network reaches web: {logs:?}"
    );
    assert!(
        logs.iter().any(|l| l == "outsider | outsider unreachable"),
        "one on the default network alone does not: {logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l == "outsider | outsider hello from eos"),
        "{logs:?}"
    );
    d.remove(&key).await.unwrap();
    let docker = bollard::Docker::connect_with_unix(SOCKET, 30, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let left: Vec<String> = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.name)
        .filter(|n| n.starts_with(&d.project(&key)))
        .collect();
    assert!(
        left.is_empty(),
        "every network of the component goes: {left:?}"
    );
}

/// A tar.gz of `compose.yaml` in folder `a` with `links` (path → target) beside it.
fn archive_with_links(dir: &Path, name: &str, compose: &str, links: &[(&str, &str)]) -> PathBuf {
    let path = dir.join(format!("{name}.tar.gz"));
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(compose.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "a/compose.yaml", compose.as_bytes())
        .unwrap();
    for (link, target) in links {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        tar.append_link(&mut header, link, target).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn link_chains_and_gzip_bombs_are_refused_before_anything_runs() {
    use std::io::Write;
    let files = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let scope = format!("compose-links-{}", std::process::id());
    let d = driver(&scope, root.path()).await;
    // Each link stays inside the folder as written; followed one after another they lead out.
    let chain = archive_with_links(
        files.path(),
        "chain",
        "services:\n  a: {image: x, volumes: [\"./z:/h\"]}\n",
        &[("a/deep", "."), ("a/x", "deep/.."), ("a/z", "x/..")],
    );
    // A header that promises more than an archive may unpack, with little behind it.
    let bomb = files.path().join("bomb.tar.gz");
    {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&bomb).unwrap(),
            flate2::Compression::default(),
        );
        let mut header = tar::Header::new_gnu();
        header.set_path("a/compose.yaml").unwrap();
        header.set_size(eos_adapter_oci::compose::MAX_UNPACKED_BYTES + 1);
        header.set_mode(0o644);
        header.set_cksum();
        gz.write_all(header.as_bytes()).unwrap();
        gz.write_all(&[0u8; 4096]).unwrap();
        gz.finish().unwrap();
    }
    for (name, path, why) in [
        ("chain", chain, "leaves the folder"),
        ("bomb", bomb, "unpacks to more than"),
    ] {
        let key = InstanceKey {
            deployment_id: name.into(),
            component: "stack".into(),
        };
        match d.apply(&key, &spec(&path)).await {
            Err(DriverError::Start(reason)) => assert!(reason.contains(why), "{name}: {reason}"),
            other => panic!("{name}: refused, not {other:?}"),
        }
        assert_eq!(
            d.inspect(&key).await,
            Health::Unknown,
            "{name}: nothing ran"
        );
    }
    assert_eq!(networks_named(&scope).await, Vec::<String>::new());
}

/// The engine's networks whose names contain `part`.
async fn networks_named(part: &str) -> Vec<String> {
    let docker =
        bollard::Docker::connect_with_unix(SOCKET, 30, bollard::API_DEFAULT_VERSION).unwrap();
    let mut names: Vec<String> = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.name)
        .filter(|n| n.contains(part))
        .collect();
    names.sort();
    names
}

/// The engine's volumes whose names contain `part`.
async fn volumes_named(part: &str) -> Vec<String> {
    let docker =
        bollard::Docker::connect_with_unix(SOCKET, 30, bollard::API_DEFAULT_VERSION).unwrap();
    let mut names: Vec<String> = docker
        .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
        .await
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .filter(|n| n.contains(part))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_component_keeps_the_volumes_of_a_sibling_whose_name_it_prefixes() {
    let files = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let scope = format!("compose-siblings-{}", std::process::id());
    let d = driver(&scope, root.path()).await;
    let path = archive(
        files.path(),
        "stack",
        &[("stack/compose.yaml", web_and_probe())],
    );
    let key = |component: &str| InstanceKey {
        deployment_id: "d1".into(),
        component: component.into(),
    };
    for component in ["stack", "stack-2"] {
        d.apply(&key(component), &spec(&path)).await.unwrap();
    }
    let both = volumes_named(&scope).await;
    assert_eq!(both.len(), 2, "{both:?}");
    d.remove(&key("stack")).await.unwrap();
    let left = volumes_named(&scope).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("stack-2"), "{left:?}");
    d.remove(&key("stack-2")).await.unwrap();
    assert_eq!(volumes_named(&scope).await, Vec::<String>::new());
}

/// A granted host folder holding a link to `/etc` mounts nothing: the path is judged as its
/// links resolve, and the engine would be handed the resolved path.
#[tokio::test(flavor = "multi_thread")]
async fn a_link_under_a_granted_folder_leads_nowhere_else() {
    let files = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let granted = files.path().join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    std::os::unix::fs::symlink("/etc", granted.join("x")).unwrap();
    let scope = format!("compose-granted-{}", std::process::id());
    let d = driver(&scope, root.path()).await;
    let path = archive(
        files.path(),
        "granted",
        &[(
            "a/compose.yaml",
            format!(
                "services:\n  a: {{image: x, volumes: [\"{}/x:/h\"]}}\n",
                granted.display()
            ),
        )],
    );
    let mut spec = spec(&path);
    spec.workload = Some(eos_domain::workload::WorkloadPolicy {
        host_paths: vec![granted.display().to_string()],
        cluster_scoped: false,
        ..Default::default()
    });
    let key = InstanceKey {
        deployment_id: "granted".into(),
        component: "stack".into(),
    };
    match d.apply(&key, &spec).await {
        Err(DriverError::Start(reason)) => {
            assert!(reason.contains("/etc is never mounted"), "{reason}")
        }
        other => panic!("refused, not {other:?}"),
    }
    assert_eq!(d.inspect(&key).await, Health::Unknown, "nothing ran");
    assert_eq!(networks_named(&scope).await, Vec::<String>::new());
}
