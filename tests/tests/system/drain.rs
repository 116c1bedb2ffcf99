//! Cordon and drain through the whole system: the CO stores a device's schedule and commits it
//! to the site's `site.yaml`; the site's LO reads it from Git and places accordingly. A
//! cordoned node keeps what runs on it and takes nothing new; a drained node's workloads move to
//! the other node and it reports drained once its heartbeat says it runs nothing; a deployment
//! pinned to a draining node waits, not placeable, until the node is opened again.

use crate::graphql::data;
use crate::sse::Stream;
use crate::tenants::{call, get};
use eos_tests::{Fleet, LIMIT, SAMPLE_APP, eventually};
use serde_json::{Value, json};

/// The devices on which a deployment's components are installed.
fn installed_on(view: &Value) -> Vec<String> {
    view["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["state"] == "installed")
        .map(|d| d["device_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn act(fleet: &Fleet, device: &str, action: &str) -> Value {
    let path = format!("/api/v1/devices/{device}/{action}");
    let (code, d) = call(fleet, None, reqwest::Method::POST, &path, None).await;
    assert_eq!(code, 200, "{action} {device}: {d}");
    d
}

/// Waits until deployment `id` is installed exactly on `device`.
async fn runs_only_on(fleet: &Fleet, id: &str, device: &str) {
    eventually(
        &format!("{id} installed on {device} only"),
        LIMIT,
        || async { (installed_on(&fleet.deployment(id).await) == [device]).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cordoned_node_takes_nothing_new_and_a_drained_one_gives_up_its_workloads() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    let mut events = Stream::open(&fleet, "?kind=device", None).await;

    let (a, view) = fleet.deploy_installed(SAMPLE_APP, None).await.unwrap();
    let x = installed_on(&view).pop().expect("a is installed somewhere");
    let y = if x == "site-1/node-1" {
        "site-1/node-2"
    } else {
        "site-1/node-1"
    }
    .to_owned();

    // Cordon y: b would go to y (x carries a already), so it lands on x instead.
    let cordoned = act(&fleet, &y, "cordon").await;
    assert_eq!(
        (cordoned["status"].as_str(), cordoned["schedule"].as_str()),
        (Some("cordoned"), Some("cordoned"))
    );
    assert_eq!(
        act(&fleet, &y, "cordon").await["status"],
        "cordoned",
        "cordoning twice is one cordon"
    );
    let host_y = y.trim_start_matches("site-1/");
    assert!(
        fleet
            .site_yaml()
            .contains(&format!("cordoned:\n- {host_y}\n")),
        "{}",
        fleet.site_yaml()
    );
    let (b, _) = fleet.deploy_installed(SAMPLE_APP, None).await.unwrap();
    runs_only_on(&fleet, &b, &x).await;
    runs_only_on(&fleet, &a, &x).await;
    let (_, one) = get(&fleet, None, &format!("/api/v1/devices/{y}")).await;
    assert_eq!(one["status"], "cordoned", "{one}");
    let (_, listed) = get(&fleet, None, "/api/v1/devices?status=cordoned").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], y.as_str());

    // Open y, drain x: both move to y; x is draining, then drained.
    assert_eq!(act(&fleet, &y, "uncordon").await["status"], "online");
    assert_eq!(act(&fleet, &x, "drain").await["status"], "draining");
    let host_x = x.trim_start_matches("site-1/");
    assert!(
        fleet
            .site_yaml()
            .contains(&format!("draining:\n- {host_x}\n")),
        "{}",
        fleet.site_yaml()
    );
    runs_only_on(&fleet, &a, &y).await;
    runs_only_on(&fleet, &b, &y).await;
    eventually(&format!("{x} drained"), LIMIT, || async {
        let (_, d) = get(&fleet, None, &format!("/api/v1/devices/{x}")).await;
        (d["status"] == "drained").then_some(())
    })
    .await;

    // A deployment pinned to the draining node waits, saying why.
    let pinned = fleet
        .create_deployment(SAMPLE_APP, Some(host_x))
        .await
        .unwrap();
    let why = eventually("the pinned deployment not placeable", LIMIT, || async {
        let v = fleet.deployment(&pinned).await;
        let error = v["devices"][0]["error"].as_str().map(str::to_owned);
        error.filter(|m| m.contains("draining"))
    })
    .await;
    assert!(why.contains(&format!("{x}: draining")), "{why}");

    // Opened again, x takes the pinned deployment; what moved to y stays there.
    assert_eq!(act(&fleet, &x, "uncordon").await["status"], "online");
    runs_only_on(&fleet, &pinned, &x).await;
    runs_only_on(&fleet, &a, &y).await;
    assert_eq!(fleet.site_yaml(), "id: site-1\nlabels: {}\n");

    // Each change is an event, in order.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let e = events.next().await;
        if e.event.starts_with("device.")
            && e.event != "device.online"
            && e.event != "device.joined"
        {
            seen.push((
                e.event,
                e.data["subject"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    assert_eq!(
        seen,
        [
            ("device.cordoned".to_owned(), y.clone()),
            ("device.uncordoned".to_owned(), y.clone()),
            ("device.draining".to_owned(), x.clone()),
            ("device.uncordoned".to_owned(), x.clone()),
        ]
    );

    // GraphQL does the same; unknown devices and other tenants' are not found.
    let d = data(
        &fleet,
        None,
        "mutation($id: String!) { cordonDevice(id: $id) { id status schedule } }",
        json!({"id": y}),
    )
    .await;
    assert_eq!(
        d["cordonDevice"],
        json!({"id": y, "status": "cordoned", "schedule": "cordoned"})
    );
    let d = data(
        &fleet,
        None,
        "query($id: String!) { device(id: $id) { status } }",
        json!({"id": y}),
    )
    .await;
    assert_eq!(d["device"]["status"], "cordoned");
    let (code, problem) = call(
        &fleet,
        None,
        reqwest::Method::POST,
        "/api/v1/devices/site-1/nowhere/drain",
        None,
    )
    .await;
    assert_eq!(code, 404, "{problem}");
    let (code, _) = call(
        &fleet,
        None,
        reqwest::Method::POST,
        "/api/v1/tenants",
        Some(json!({"id": "globex", "name": "Globex"})),
    )
    .await;
    assert_eq!(code, 201);
    let path = format!("/api/v1/devices/{x}/drain");
    let (code, _) = call(&fleet, Some("globex"), reqwest::Method::POST, &path, None).await;
    assert_eq!(code, 404, "globex cannot drain the default tenant's device");
    let (_, d) = get(&fleet, None, &format!("/api/v1/devices/{x}")).await;
    assert_eq!(d["status"], "online", "{d}");
    fleet.shutdown().await;
}
