//! Helm applications and ENs without a Kubernetes cluster: no EN here can reach one, so none
//! lists the `helm` runtime, and the LO never places a Helm app on any of them. The deployment
//! fails with every device's reason instead of running somewhere it cannot.

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
