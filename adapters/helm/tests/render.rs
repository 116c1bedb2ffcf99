//! Rendering a real chart (`tests/fixtures/charts/web`, in the shape `helm create` makes:
//! named templates, `include … | nindent`, `toYaml`, `tpl`, `default`, a template switched off
//! by a value) with Margo parameters, from its folder and from a `.tgz` archive, into the exact
//! objects `helm template` gives; and the reasons a bad chart gives.

use eos_adapter_helm::{Chart, Release, merge, overrides, render};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn chart_dir() -> PathBuf {
    eos_adapter_helm::testing::test_chart()
}

fn release() -> Release {
    Release {
        name: "shop".into(),
        namespace: "eos-d1".into(),
    }
}

fn labels() -> serde_json::Value {
    json!({
        "app.kubernetes.io/name": "web",
        "app.kubernetes.io/instance": "shop",
        "app.kubernetes.io/version": "1.36",
    })
}

#[test]
fn the_chart_renders_with_margo_parameters_as_values() {
    let chart = Chart::from_dir(&chart_dir()).unwrap();
    assert_eq!(
        (chart.name.as_str(), chart.version.as_str()),
        ("web", "1.0.0")
    );
    let params = BTreeMap::from([
        ("image.tag".to_owned(), "1.0.0".to_owned()),
        ("replicaCount".to_owned(), "2".to_owned()),
        (
            "greeting".to_owned(),
            "hi from {{ .Release.Name }}".to_owned(),
        ),
    ]);
    let values = merge(&chart.values, &overrides(&params).unwrap());
    let manifests = render(&chart, &release(), &values).unwrap();
    let names: Vec<String> = manifests
        .iter()
        .map(|m| format!("{}/{}", m.kind(), m.name()))
        .collect();
    assert_eq!(names, ["Deployment/shop-web", "Service/shop-web"]);

    assert_eq!(
        manifests[0].object,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "shop-web", "namespace": "eos-d1", "labels": labels()},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/instance": "shop"}},
                "template": {
                    "metadata": {"labels": labels()},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "127.0.0.1:5000/eos-test/busybox:1.0.0",
                        "args": ["httpd", "-f", "-p", "80"],
                        "env": [{"name": "GREETING", "value": "hi from shop"}],
                        "resources": {"limits": {"memory": "32Mi"}},
                    }]},
                },
            },
        })
    );
    assert_eq!(
        manifests[1].object,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "shop-web", "labels": labels()},
            "spec": {
                "selector": {"app.kubernetes.io/instance": "shop"},
                "ports": [{"port": 80}],
            },
        })
    );
    assert_eq!(manifests[1].template, "templates/service.yaml");
}

#[test]
fn a_value_switches_a_template_off_and_defaults_fill_in() {
    let chart = Chart::from_dir(&chart_dir()).unwrap();
    let params = BTreeMap::from([("service.enabled".to_owned(), "false".to_owned())]);
    let values = merge(&chart.values, &overrides(&params).unwrap());
    let manifests = render(&chart, &release(), &values).unwrap();
    assert_eq!(manifests.len(), 1, "no Service: {manifests:?}");
    let image = &manifests[0].object["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(
        image, "127.0.0.1:5000/eos-test/busybox:1.36",
        "the appVersion by default"
    );
}

fn packed(extra: Option<(&str, &str)>) -> Vec<u8> {
    eos_adapter_helm::testing::pack(&chart_dir(), "web", extra.as_slice())
}

#[test]
fn a_packed_chart_reads_like_its_folder() {
    let from_archive = Chart::from_archive(&packed(None)).unwrap();
    assert_eq!(from_archive, Chart::from_dir(&chart_dir()).unwrap());
}

#[test]
fn a_bad_chart_says_which_file_and_why() {
    let err = Chart::from_archive(&packed(Some(("other/Chart.yaml", "name: x"))))
        .unwrap_err()
        .to_string();
    assert!(err.contains("one top folder"), "{err}");

    let mut chart = Chart::from_dir(&chart_dir()).unwrap();
    chart.templates.push((
        "templates/broken.yaml".into(),
        "kind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.deeper }}\n".into(),
    ));
    let err = render(&chart, &release(), &chart.values).unwrap_err();
    assert_eq!(err.template, "templates/broken.yaml", "{err}");

    let mut chart = Chart::from_dir(&chart_dir()).unwrap();
    chart.templates.push((
        "templates/nameless.yaml".into(),
        "apiVersion: v1\nkind: ConfigMap\ndata: {}\n".into(),
    ));
    let err = render(&chart, &release(), &chart.values)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("templates/nameless.yaml") && err.contains("metadata.name"),
        "{err}"
    );

    let mut chart = Chart::from_dir(&chart_dir()).unwrap();
    chart.templates.push((
        "templates/unknown.yaml".into(),
        "{{ noSuchFunction 1 }}".into(),
    ));
    let err = render(&chart, &release(), &chart.values)
        .unwrap_err()
        .to_string();
    assert!(err.contains("templates/unknown.yaml"), "{err}");
}
