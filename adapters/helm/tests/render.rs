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

/// A chart that includes itself, or multiplies its output through includes, fails with the
/// reason; the process rendering it (the EN) lives on.
#[test]
fn self_including_and_exploding_charts_fail_with_the_reason() {
    let chart = |helper: &str, template: &str| Chart {
        name: "evil".into(),
        version: "1.0.0".into(),
        app_version: None,
        values: json!({}),
        templates: vec![("templates/cm.yaml".into(), template.into())],
        helpers: vec![("templates/_helpers.tpl".into(), helper.into())],
    };
    let selfish = chart(
        r#"{{- define "loop" -}}{{ include "loop" . }}{{- end -}}"#,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"loop\" . }}\n",
    );
    let reason = render(&selfish, &release(), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(reason.contains("nest deeper than"), "{reason}");
    let through_tpl = chart(
        r#"{{- define "t" -}}{{ tpl "{{ include \"t\" . }}" . }}{{- end -}}"#,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"t\" . }}\n",
    );
    let reason = render(&through_tpl, &release(), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(reason.contains("nest deeper than"), "{reason}");
    // Each level doubles what the one below it makes: 2^12 copies of a 4 KiB line.
    let mut helpers = String::from(r#"{{- define "l0" -}}"#);
    helpers.push_str(&"x".repeat(4096));
    helpers.push_str("{{- end -}}\n");
    for level in 1..=12 {
        let below = level - 1;
        helpers.push_str(&format!(
            "{{{{- define \"l{level}\" -}}}}{{{{ include \"l{below}\" . }}}}{{{{ include \"l{below}\" . }}}}{{{{- end -}}}}\n"
        ));
    }
    let exploding = chart(
        &helpers,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  big: {{ include \"l12\" . | quote }}\n",
    );
    let reason = render(&exploding, &release(), &json!({}))
        .unwrap_err()
        .to_string();
    // The engine's own bound on one value, or ours on what includes hand back in all.
    assert!(
        reason.contains("larger than") || reason.contains("more than"),
        "{reason}"
    );
    // Nothing made, but calls multiplied: 2^15 includes of an empty template.
    let mut helpers = String::from("{{- define \"c0\" -}}{{- end -}}\n");
    for level in 1..=15 {
        let below = level - 1;
        helpers.push_str(&format!(
            "{{{{- define \"c{level}\" -}}}}{{{{ include \"c{below}\" . }}}}{{{{ include \"c{below}\" . }}}}{{{{- end -}}}}\n"
        ));
    }
    let busy = chart(
        &helpers,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x{{ include \"c15\" . }}\n",
    );
    let reason = render(&busy, &release(), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(
        reason.contains("called more than 20000 times") || reason.contains("did not render within"),
        "{reason}"
    );
    // An indentation in the billions fails the chart before it is made.
    let wide = chart(
        "",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ nindent 4000000000 \"x\" | quote }}\n",
    );
    let reason = render(&wide, &release(), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(reason.contains("nindent 4000000000"), "{reason}");
}
