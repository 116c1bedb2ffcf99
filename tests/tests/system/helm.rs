//! Helm applications through the whole system. Without a Kubernetes cluster no EN lists the
//! `helm` runtime, and the LO never places a Helm app: the deployment fails with every device's
//! reason. With an EN whose kubeconfig names a cluster (a recording stand-in of the Kubernetes
//! API; no real cluster can run here), the chart pushed to the real registry is pulled by that
//! EN, rendered with the app's parameters and applied; undeploying deletes what was applied.

use eos_adapter_helm::testing::{cluster, pack, test_chart};
use eos_tests::registry::{push_artifact, test_registry};
use eos_tests::{Fleet, HELM_APP, LIMIT, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helm_app_is_never_placed_on_an_en_without_a_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    let devices = fleet.get("/api/v1/devices").await.unwrap();
    for device in devices.as_array().unwrap() {
        let runtimes = &device["capabilities"]["labels"]["eos.dev/runtimes"];
        assert!(
            !runtimes.as_array().unwrap().iter().any(|r| r == "helm"),
            "no cluster, no helm runtime: {device}"
        );
    }

    let id = fleet.create_deployment(HELM_APP, None).await.unwrap();
    let view = eventually("the deployment to fail placement", LIMIT, || async {
        let v = fleet.deployment(&id).await;
        (v["state"] == "failed").then_some(v)
    })
    .await;
    let devices = view["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{view}");
    assert_eq!(
        devices[0]["device_id"], "site-1/*",
        "placed nowhere: {view}"
    );
    let reason = devices[0]["error"].as_str().unwrap();
    for node in ["site-1/node-1", "site-1/node-2"] {
        assert!(reason.contains(node), "every device says why: {reason}");
    }
    assert!(reason.contains("no helm runtime"), "{reason}");
    // Nothing runs anywhere: neither EN recorded a component.
    for node in ["node-1", "node-2"] {
        let state = tmp.path().join(format!("en/{node}/workloads")).join(&id);
        assert!(!state.exists(), "{node} ran something: {}", state.display());
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helm_app_runs_on_the_en_whose_cluster_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let (stand_in, kubeconfig) = cluster(tmp.path()).await;
    // The fixture app names this chart: oci://REGISTRY/eos-test/charts/web, revision 1.0.0.
    push_artifact(
        &format!("{}/eos-test/charts/web:1.0.0", test_registry()),
        pack(&test_chart(), "web", &[]),
        eos_adapter_registry::HELM_LAYER,
        "application/vnd.cncf.helm.config.v1+json",
        &[],
    )
    .await
    .unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    fleet
        .reconfigure_en(1, |c| c.kubeconfig = Some(kubeconfig.clone()))
        .await
        .unwrap();
    eventually("node-2 to list the helm runtime", LIMIT, || async {
        let devices = fleet.get("/api/v1/devices").await.ok()?;
        let node = devices
            .as_array()?
            .iter()
            .find(|d| d["id"] == "site-1/node-2")?
            .clone();
        node["capabilities"]["labels"]["eos.dev/runtimes"]
            .as_array()?
            .iter()
            .any(|r| r == "helm")
            .then_some(())
    })
    .await;

    let (id, view) = fleet.deploy_installed(HELM_APP, None).await.unwrap();
    assert_eq!(view["devices"][0]["device_id"], "site-1/node-2", "{view}");
    let objects = stand_in.objects.lock().unwrap().clone();
    let deployment = objects
        .iter()
        .find(|(path, _)| path.contains("/deployments/"))
        .map(|(_, o)| o.clone())
        .expect("the chart's Deployment was applied");
    assert_eq!(
        deployment["metadata"]["labels"]["eos.dev/deployment"],
        id.as_str()
    );
    assert_eq!(deployment["metadata"]["labels"]["eos.dev/component"], "web");
    assert_eq!(
        deployment["metadata"]["namespace"], "default",
        "the EN's default namespace"
    );
    assert!(
        objects.keys().any(|path| path.contains("/services/")),
        "and its Service: {objects:?}"
    );

    let url = fleet.url(&format!("/api/v1/deployments/{id}"));
    assert_eq!(fleet.http.delete(url).send().await.unwrap().status(), 202);
    eventually("the deployment to be removed", LIMIT, || async {
        (fleet.deployment(&id).await["phase"] == "removed").then_some(())
    })
    .await;
    assert!(
        stand_in.objects.lock().unwrap().is_empty(),
        "undeploying deleted every object"
    );
    fleet.shutdown().await;
}
