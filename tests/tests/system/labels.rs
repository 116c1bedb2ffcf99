//! Labels and time zones of the fleet: an operator sets a site's labels and time zone (checked,
//! all problems at once, nothing changed on a refusal) and the site's `site.yaml` carries them;
//! an EN's configured labels are in its capabilities, lists select devices by them (and by
//! status), and placement selects nodes by them.

use crate::graphql::data;
use crate::tenants::{call, get};
use eos_tests::{Fleet, LIMIT, SAMPLE_APP, app_variant, eventually};
use serde_json::{Value, json};

async fn patch(fleet: &Fleet, tenant: Option<&str>, body: Value) -> (u16, Value) {
    call(
        fleet,
        tenant,
        reqwest::Method::PATCH,
        "/api/v1/sites/site-1",
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sites_and_nodes_carry_labels_that_placement_and_git_see() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;

    let (code, site) = patch(
        &fleet,
        None,
        json!({"labels": {"region": "eu-west", "example.com/floor": "2"}, "time_zone": "Europe/Berlin"}),
    )
    .await;
    assert_eq!(code, 200, "{site}");
    assert_eq!(site["time_zone"], "Europe/Berlin");
    let yaml = fleet.site_yaml();
    assert!(
        yaml.contains("example.com/floor: '2'") && yaml.contains("region: eu-west"),
        "{yaml}"
    );
    assert!(yaml.contains("timeZone: Europe/Berlin"), "{yaml}");

    // Every problem at once, and nothing changes.
    let (code, problem) = patch(
        &fleet,
        None,
        json!({"labels": {"eos.dev/runtimes": "x", "ok": "not ok!"}, "time_zone": "Mars/Olympus"}),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["labels.eos.dev/runtimes", "labels.ok", "time_zone"],
        "{problem}"
    );
    let (code, problem) = patch(&fleet, None, json!({"timezone": "UTC"})).await;
    assert_eq!(code, 422, "an unknown field is refused: {problem}");
    assert!(problem.to_string().contains("timezone"), "{problem}");
    let (_, site) = get(&fleet, None, "/api/v1/sites/site-1").await;
    assert_eq!(site["labels"]["region"], "eu-west", "{site}");
    assert_eq!(site["time_zone"], "Europe/Berlin");

    // `null` clears the time zone; labels left out stay.
    let (code, site) = patch(&fleet, None, json!({"time_zone": null})).await;
    assert_eq!(code, 200, "{site}");
    assert_eq!(site["time_zone"], Value::Null);
    assert_eq!(site["labels"]["region"], "eu-west");
    assert!(!fleet.site_yaml().contains("timeZone"));

    // Another tenant's site is not found; GraphQL sets the same.
    let (code, _) = call(
        &fleet,
        None,
        reqwest::Method::POST,
        "/api/v1/tenants",
        Some(json!({"id": "globex", "name": "Globex"})),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        patch(&fleet, Some("globex"), json!({"labels": {}})).await.0,
        404
    );
    let d = data(
        &fleet,
        None,
        "mutation { updateSite(id: \"site-1\", timeZone: \"America/Chicago\") { timeZone labels } }",
        json!({}),
    )
    .await;
    assert_eq!(d["updateSite"]["timeZone"], "America/Chicago");
    assert_eq!(d["updateSite"]["labels"]["region"], "eu-west");

    // An EN with a bad label does not start, saying which; one with good labels reports them.
    let bad = fleet
        .reconfigure_en(1, |c| {
            c.labels = [("Bad Key".to_owned(), "3".to_owned())].into();
        })
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("labels.Bad Key"), "{bad}");
    fleet
        .reconfigure_en(1, |c| {
            c.labels = [("line".to_owned(), "3".to_owned())].into()
        })
        .await
        .unwrap();
    eventually("node-2's label at the CO", LIMIT, || async {
        let (_, d) = get(&fleet, None, "/api/v1/devices/site-1/node-2").await;
        (d["capabilities"]["labels"]["line"] == "3" && d["online"] == true).then_some(())
    })
    .await;

    // Lists select devices by label and by status.
    let ids = |list: Value| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("a list: {list}"))
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        ("label=line=3", vec!["site-1/node-2"]),
        ("label=line", vec!["site-1/node-2"]),
        ("label=line=4", vec![]),
        (
            "label=eos.dev/runtimes=wasm",
            vec!["site-1/node-1", "site-1/node-2"],
        ),
        ("label=eos.dev/runtimes=wasm,line=3", vec!["site-1/node-2"]),
        ("status=online&label=line=3", vec!["site-1/node-2"]),
        ("status=cordoned", vec![]),
    ] {
        let (code, list) = get(&fleet, None, &format!("/api/v1/devices?{query}")).await;
        assert_eq!(code, 200, "{query}: {list}");
        assert_eq!(ids(list), expected, "{query}");
    }
    for query in [
        "label=Bad Key",
        "label=line=not ok",
        "status=asleep",
        "status=online&online=false",
    ] {
        let (code, problem) = get(&fleet, None, &format!("/api/v1/devices?{query}")).await;
        assert_eq!(code, 400, "{query}: {problem}");
    }
    let d = data(
        &fleet,
        None,
        "{ devices(label: \"line=3\") { items { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(d["devices"]["items"], json!([{"id": "site-1/node-2"}]));

    // A profile that wants line 3 goes to node-2, whichever node scores higher.
    let variant = app_variant(
        tmp.path(),
        SAMPLE_APP.0,
        &[
            ("version: 1.0.0", "version: 3.0.0"),
            (
                "values: [wasm]",
                "values: [wasm]\n              - key: line\n                operator: In\n                values: [\"3\"]",
            ),
        ],
    );
    fleet.add_app(&variant).await.unwrap();
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": SAMPLE_APP.1, "version": "3.0.0", "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let view = eventually("the line-3 deployment installed", LIMIT, || async {
        let v = fleet.deployment(&id).await;
        (v["state"] == "installed").then_some(v)
    })
    .await;
    assert_eq!(view["devices"][0]["device_id"], "site-1/node-2", "{view}");
    fleet.shutdown().await;
}
