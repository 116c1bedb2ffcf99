//! A Margo compose application through the whole system: its archive is pushed to the test
//! registry as the spec describes (artifact type `application/vnd.org.margo.component.compose+json`,
//! one tar.gz layer with the Margo annotations), the LO places it on an EN with a container
//! engine, the EN pulls and runs it, the services reach each other by name with the Margo
//! parameter filled in; an update to the next version replaces the services and keeps their
//! named volume, and undeploying removes every container, the network and the volume.

use eos_tests::registry::{push_artifact, test_registry};
use eos_tests::{Fleet, LIMIT, app_variant, engine_objects, eventually};

const STACK_APP: (&str, &str) = (
    "tests/fixtures/apps/stack-compose",
    "com-eos-test-stack-compose",
);

/// The stack's archive at `version`. Both versions keep state in the named volume `state`:
/// 1.0.0 leaves a mark there, 1.1.0 prints its greeting led by `v2` and reads the mark back, so
/// its output shows that the update replaced the services and kept the volume.
pub(crate) fn compose_archive(version: &str) -> Vec<u8> {
    compose_archive_of(
        version,
        &format!("{}/eos-test/busybox:1.0.0", test_registry()),
    )
}

/// The stack's archive at `version`, its services running `image`.
pub(crate) fn compose_archive_of(version: &str, image: &str) -> Vec<u8> {
    let probe = if version == "1.0.0" {
        r#"echo kept > /state/mark; trap 'exit 0' TERM; while true; do echo \"${GREETING} $$(wget -qO- http://web/index.html)\"; sleep 1; done"#
    } else {
        r#"trap 'exit 0' TERM; while true; do echo \"v2 ${GREETING} $$(wget -qO- http://web/index.html) $$(cat /state/mark)\"; sleep 1; done"#
    };
    let compose = format!(
        r#"services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
  probe:
    image: {image}
    command: ["sh", "-c", "{probe}"]
    volumes: ["state:/state"]
    depends_on: [web]
volumes:
  state: {{}}
"#
    );
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(compose.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "stack/compose.yaml", compose.as_bytes())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// Pushes the stack's archive at `version` to the test registry, as Margo describes it.
async fn push_stack(version: &str) {
    push_artifact(
        &format!("{}/eos-test/stack-compose:{version}", test_registry()),
        compose_archive(version),
        "application/vnd.org.margo.component.compose.tar+gzip",
        "application/vnd.org.margo.component.compose+json",
        &[
            ("org.margo.component.type", "compose"),
            ("org.margo.component.version", version),
            ("org.opencontainers.image.title", "stack.tar.gz"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
}

async fn probe_output(project_part: &str) -> Option<String> {
    let (docker, all) = eos_tests::all_containers().await?;
    let name = all.into_iter().find_map(|c| {
        c.names?
            .into_iter()
            .find(|n| n.contains(project_part) && n.ends_with("-probe"))
    })?;
    let mut logs = docker.logs(
        name.trim_start_matches('/'),
        Some(
            bollard::query_parameters::LogsOptionsBuilder::default()
                .stdout(true)
                .build(),
        ),
    );
    let mut out = String::new();
    while let Some(Ok(chunk)) = futures::StreamExt::next(&mut logs).await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compose_app_from_a_registry_runs_its_services_together() {
    push_stack("1.0.0").await;
    push_stack("1.1.0").await;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let (id, view) = fleet.deploy_installed(STACK_APP, None).await.unwrap();
    assert_eq!(view["devices"][0]["device_id"], "site-1/node-1");
    let part = &id[..8];
    let seen = eventually("the probe to read the web page by name", LIMIT, || async {
        probe_output(part)
            .await
            .filter(|o| o.contains("hello-param hello from eos"))
    })
    .await;
    assert!(seen.contains("hello-param"), "{seen}");
    let objects = engine_objects(part).await;
    assert_eq!(
        objects
            .iter()
            .map(|o| o.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["container", "container", "network", "volume"],
        "two services, their network and their volume: {objects:?}"
    );

    // Version 1.1.0: new services read what the old ones left in the volume.
    let next = app_variant(
        tmp.path(),
        STACK_APP.0,
        &[
            ("version: 1.0.0", "version: 1.1.0"),
            ("revision: 1.0.0", "revision: 1.1.0"),
        ],
    );
    fleet.add_app(&next).await.unwrap();
    fleet.update_to(&id, "1.1.0").await.unwrap();
    let seen = eventually(
        "the new probe to read the page and the volume",
        LIMIT,
        || async {
            probe_output(part)
                .await
                .filter(|o| o.contains("v2 hello-param hello from eos kept"))
        },
    )
    .await;
    assert!(
        !seen.contains("\nhello-param"),
        "only the new probe's output: {seen}"
    );
    assert_eq!(
        engine_objects(part).await,
        objects,
        "the same objects, replaced"
    );
    eventually("the update to be installed", LIMIT, || async {
        (fleet.deployment(&id).await["state"] == "installed").then_some(())
    })
    .await;

    fleet.undeploy(&id).await.unwrap();
    let left = engine_objects(part).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    fleet.shutdown().await;
}
