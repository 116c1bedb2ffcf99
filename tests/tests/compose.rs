//! A Margo compose application through the whole system: its archive is pushed to the test
//! registry as the spec describes (artifact type `application/vnd.org.margo.component.compose+json`,
//! one tar.gz layer with the Margo annotations), the LO places it on an EN with a container
//! engine, the EN pulls and runs it, the services reach each other by name with the Margo
//! parameter filled in, and undeploying removes every container and the network.

use eos_tests::registry::{push_artifact, test_registry};
use eos_tests::{Fleet, LIMIT, eventually};

const STACK_APP: (&str, &str) = (
    "tests/fixtures/apps/stack-compose",
    "com-eos-test-stack-compose",
);

fn compose_archive() -> Vec<u8> {
    let compose = format!(
        r#"services:
  web:
    image: {registry}/eos-test/busybox:1.0.0
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
  probe:
    image: {registry}/eos-test/busybox:1.0.0
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do echo \"${{GREETING}} $$(wget -qO- http://web/index.html)\"; sleep 1; done"]
    depends_on: [web]
"#,
        registry = test_registry()
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
    push_artifact(
        &format!("{}/eos-test/stack-compose:1.0.0", test_registry()),
        compose_archive(),
        "application/vnd.org.margo.component.compose.tar+gzip",
        "application/vnd.org.margo.component.compose+json",
        &[
            ("org.margo.component.type", "compose"),
            ("org.margo.component.version", "1.0.0"),
            ("org.opencontainers.image.title", "stack.tar.gz"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let id = fleet.create_deployment(STACK_APP, None).await.unwrap();
    let view = eventually("the compose app to be installed", LIMIT, || async {
        let v = fleet.deployment(&id).await;
        (v["state"] == "installed").then_some(v)
    })
    .await;
    assert_eq!(view["devices"][0]["device_id"], "site-1/node-1");
    let part = &id[..8];
    let seen = eventually("the probe to read the web page by name", LIMIT, || async {
        probe_output(part)
            .await
            .filter(|o| o.contains("hello-param hello from eos"))
    })
    .await;
    assert!(seen.contains("hello-param"), "{seen}");

    let url = fleet.url(&format!("/api/v1/deployments/{id}"));
    assert_eq!(fleet.http.delete(url).send().await.unwrap().status(), 202);
    eventually("the services to go", LIMIT, || async {
        probe_output(part).await.is_none().then_some(())
    })
    .await;
    eventually("the deployment to be removed", LIMIT, || async {
        (fleet.deployment(&id).await["phase"] == "removed").then_some(())
    })
    .await;
    fleet.shutdown().await;
}
