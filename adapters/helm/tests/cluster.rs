//! The helm driver's calls to Kubernetes, checked against a stand-in of the API server (no
//! cluster can run here): it keeps the objects applied to it, answers discovery for the kinds
//! the test chart uses, reports Deployments ready, and records every request. The driver passes
//! the conformance suite against it; the exact calls (server-side apply as `eos`, the labels,
//! the paths, the deletes) are asserted; and a kubeconfig whose server does not answer gives
//! no driver, so the EN lists no `helm` runtime.

use axum::http::Method;
use eos_adapter_helm::HelmDriver;
use eos_adapter_helm::testing::{Seen, cluster, kubeconfig_for, test_chart};
use eos_domain::state::ComponentSpec;
use eos_driver::{Health, InstanceKey, RuntimeDriver};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn chart() -> PathBuf {
    test_chart()
}

fn spec(repository: String) -> ComponentSpec {
    ComponentSpec {
        name: "web".into(),
        runtime: "helm".into(),
        repository,
        revision: "1.0.0".into(),
        app_version: "1.0.0".into(),
        parameters: BTreeMap::from([("image.tag".to_owned(), "1.0.0".to_owned())]),
        settings: json!({"helm": {"namespace": "edge-apps"}}),
        signatures: None,
        workload: None,
    }
}

async fn driver(kubeconfig: &Path, root: PathBuf) -> HelmDriver {
    HelmDriver::connect(kubeconfig, "default", root)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_helm_driver_passes_the_driver_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let (_cluster, kubeconfig) = cluster(tmp.path()).await;
    let make = |dir: &Path| -> Arc<dyn RuntimeDriver> {
        let (kubeconfig, root) = (kubeconfig.clone(), dir.join("helm"));
        // The client must live on this test's runtime, which serves its connections.
        Arc::new(tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(driver(&kubeconfig, root))
        }))
    };
    eos_driver::conformance::run(eos_driver::conformance::Fixture {
        make: &make,
        runs: spec(format!("file://{}", chart().display())),
        cannot_start: spec("file:///nowhere/chart.tgz".into()),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn applying_is_server_side_apply_of_the_rendered_labelled_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(tmp.path()).await;
    let helm = driver(&kubeconfig, tmp.path().join("helm")).await;
    assert_eq!(helm.info().runtime, "helm");
    assert_eq!(
        helm.info().deployment_types,
        ["helm"],
        "the Margo deployment type"
    );
    assert_eq!(helm.info().version, "kubernetes v1.30.0");
    let key = InstanceKey {
        deployment_id: "d1".into(),
        component: "web".into(),
    };
    cluster.seen.lock().unwrap().clear();
    helm.apply(&key, &spec(format!("file://{}", chart().display())))
        .await
        .unwrap();
    let seen = cluster.seen.lock().unwrap().clone();
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::PATCH).collect();
    let paths: Vec<&str> = patches.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/apis/apps/v1/namespaces/edge-apps/deployments/eos-d1-web-web",
            "/api/v1/namespaces/edge-apps/services/eos-d1-web-web",
        ]
    );
    for patch in &patches {
        assert_eq!(patch.content_type, "application/apply-patch+yaml");
        assert!(
            patch.query.contains("fieldManager=eos") && patch.query.contains("force=true"),
            "{}",
            patch.query
        );
        let labels = &patch.body["metadata"]["labels"];
        assert_eq!(labels["eos.dev/deployment"], "d1", "{labels}");
        assert_eq!(labels["eos.dev/component"], "web", "{labels}");
        assert!(labels["eos.dev/spec"].is_string(), "{labels}");
        assert_eq!(
            labels["app.kubernetes.io/instance"], "eos-d1-web",
            "the chart's own too"
        );
    }
    let image = &patches[0].body["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(
        image, "127.0.0.1:5000/eos-test/busybox:1.0.0",
        "the parameter's value"
    );
    // It waited for the Deployment to be ready before calling the component started.
    assert!(
        seen.iter().any(|s| s.method == Method::GET
            && s.path == "/apis/apps/v1/namespaces/edge-apps/deployments/eos-d1-web-web"),
        "{seen:?}"
    );
    assert_eq!(helm.inspect(&key).await, Health::Running);

    cluster.seen.lock().unwrap().clear();
    helm.remove(&key).await.unwrap();
    let deletes: Vec<String> = cluster
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == Method::DELETE)
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        deletes,
        [
            "/apis/apps/v1/namespaces/edge-apps/deployments/eos-d1-web-web",
            "/api/v1/namespaces/edge-apps/services/eos-d1-web-web",
        ]
    );
    assert!(
        cluster.objects.lock().unwrap().is_empty(),
        "nothing left behind"
    );
    assert_eq!(helm.inspect(&key).await, Health::Unknown);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_cluster_answering_there_is_no_helm_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig_for(&format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let err = HelmDriver::connect(&kubeconfig, "default", tmp.path().join("helm"))
        .await
        .err()
        .expect("nothing answers");
    assert!(err.to_string().contains("no cluster answers"), "{err}");
    let missing = HelmDriver::connect(&tmp.path().join("none"), "default", tmp.path().join("h"))
        .await
        .err()
        .expect("no kubeconfig");
    assert!(missing.to_string().contains("none"), "{missing}");
}

/// An object of the same name that this component did not create is not taken over, and a
/// cluster-scoped object needs the workload security policy's leave: either way nothing of the
/// chart is applied.
#[tokio::test(flavor = "multi_thread")]
async fn a_chart_takes_over_nothing_and_reaches_the_cluster_scope_only_when_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(tmp.path()).await;
    let helm = driver(&kubeconfig, tmp.path().join("helm")).await;
    let key = InstanceKey {
        deployment_id: "d1".into(),
        component: "web".into(),
    };
    // Someone else's Service stands where the chart's would go.
    let theirs = "/api/v1/namespaces/edge-apps/services/eos-d1-web-web";
    cluster.objects.lock().unwrap().insert(
        theirs.into(),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "eos-d1-web-web", "namespace": "edge-apps",
                            "labels": {"team": "payments"}}}),
    );
    cluster.seen.lock().unwrap().clear();
    let refused = helm
        .apply(&key, &spec(format!("file://{}", chart().display())))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("Service/eos-d1-web-web exists and was not made by this component"),
        "{refused}"
    );
    let seen = cluster.seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|s| s.method == Method::PATCH), "{seen:?}");
    assert_eq!(
        cluster.objects.lock().unwrap()[theirs]["metadata"]["labels"]["team"],
        "payments"
    );

    // A chart with a Namespace of its own.
    let chart_dir = tmp.path().join("ns-chart");
    std::fs::create_dir_all(chart_dir.join("templates")).unwrap();
    std::fs::write(
        chart_dir.join("Chart.yaml"),
        "apiVersion: v2\nname: ns\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        chart_dir.join("templates/ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .Release.Name }}-space\n",
    )
    .unwrap();
    let mut namespaced = spec(format!("file://{}", chart_dir.display()));
    let other = InstanceKey {
        deployment_id: "d2".into(),
        component: "web".into(),
    };
    let refused = helm
        .apply(&other, &namespaced)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("cluster-scoped"), "{refused}");
    namespaced.workload = Some(eos_domain::workload::WorkloadPolicy {
        cluster_scoped: true,
        ..Default::default()
    });
    helm.apply(&other, &namespaced).await.unwrap();
    assert!(
        cluster
            .objects
            .lock()
            .unwrap()
            .keys()
            .any(|path| path == "/api/v1/namespaces/eos-d2-web-space"),
        "{:?}",
        cluster.objects.lock().unwrap().keys().collect::<Vec<_>>()
    );
}

/// A chart whose pods would leave their containers (a privileged container, the host's root
/// folder, the host's network, a ConfigMap in kube-system) is refused before any object is
/// applied, naming the object and the field; a granted folder mounts.
#[tokio::test(flavor = "multi_thread")]
async fn a_chart_makes_no_pod_the_workload_policy_would_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(tmp.path()).await;
    let helm = driver(&kubeconfig, tmp.path().join("helm")).await;
    let pod = |extra: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{{{ .Release.Name }}}}\n\
             spec:\n  selector: {{matchLabels: {{app: x}}}}\n  template:\n    metadata: {{labels: {{app: x}}}}\n\
             \x20   spec:\n{extra}"
        )
    };
    let cases = [
        (
            "privileged",
            pod(
                "      containers:\n        - name: x\n          image: busybox\n          securityContext: {privileged: true}\n",
            ),
            "containers[0].securityContext.privileged",
        ),
        (
            "host-root",
            pod(
                "      containers: [{name: x, image: busybox}]\n      volumes:\n        - name: root\n          hostPath: {path: /}\n",
            ),
            "volumes[0].hostPath",
        ),
        (
            "host-network",
            pod("      hostNetwork: true\n      containers: [{name: x, image: busybox}]\n"),
            "hostNetwork",
        ),
        (
            "kube-system",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\n"
                .to_owned(),
            "names namespace kube-system",
        ),
    ];
    for (name, template, field) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(
            dir.join("Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n"),
        )
        .unwrap();
        std::fs::write(dir.join("templates/pod.yaml"), template).unwrap();
        cluster.seen.lock().unwrap().clear();
        let key = InstanceKey {
            deployment_id: name.into(),
            component: "web".into(),
        };
        let refused = helm
            .apply(&key, &spec(format!("file://{}", dir.display())))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("refused by the workload security policy") && refused.contains(field),
            "{name}: {refused}"
        );
        let seen = cluster.seen.lock().unwrap().clone();
        assert!(
            !seen.iter().any(|s| s.method == Method::PATCH),
            "{name}: {seen:?}"
        );
    }
}
