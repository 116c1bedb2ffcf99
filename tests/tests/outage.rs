//! A site on its own: with the CO down, the LO restarted and an EN restarted, the workload keeps
//! running, every report waits in the LO's durable outbox, and after the CO returns everything
//! arrives and takes effect exactly once (the real CO, SQLite store, Git repository and gRPC
//! links, in one process).

use eos_domain::ids::{DeviceId, SiteId};
use eos_domain::margo::DeviceCapabilities;
use eos_domain::service::SiteReport;
use eos_tests::{Fleet, eventually, repo_root};
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

async fn devices_online(fleet: &Fleet) -> Option<Vec<(String, bool)>> {
    let devices = fleet.get("/api/v1/devices").await.ok()?;
    Some(
        devices
            .as_array()?
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap_or("").to_owned(),
                    d["online"] == true,
                )
            })
            .collect(),
    )
}

async fn deployment(fleet: &Fleet, id: &str) -> Value {
    fleet
        .get(&format!("/api/v1/deployments/{id}"))
        .await
        .unwrap_or(Value::Null)
}

fn greetings(fleet: &Fleet, deployment: &str) -> usize {
    std::fs::read_to_string(fleet.workload_log("node-1", deployment, "hello"))
        .map(|t| t.matches("hello from eos").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_made_while_the_co_is_down_arrive_exactly_once_after_it_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    let both_online = vec![
        ("site-1/node-1".to_owned(), true),
        ("site-1/node-2".to_owned(), true),
    ];
    eventually("both ENs online at the CO", LIMIT, || async {
        (devices_online(&fleet).await? == both_online).then_some(())
    })
    .await;
    let sample = repo_root().join("config/apps/hello-wasm");
    let (code, app) = fleet
        .post(
            "/api/v1/apps",
            json!({"source": sample.display().to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{app}");
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": "com-eos-hello-wasm", "site": "site-1", "host": "node-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("the deployment to be installed", LIMIT, || async {
        (deployment(&fleet, &id).await["state"] == "installed").then_some(())
    })
    .await;

    // The LO goes away: the CO shows the site disconnected, with the time of last contact.
    fleet.stop_lo().await;
    let site = eventually("the site to show disconnected", LIMIT, || async {
        let sites = fleet.get("/api/v1/sites").await.ok()?;
        let site = sites.as_array()?.first()?.clone();
        (site["lo_connected"] == false).then_some(site)
    })
    .await;
    assert!(site["last_seen"].is_string(), "{site}");

    // Then the CO goes away too, and the site carries on alone: the LO restarts with nothing
    // upstream, an EN dies and comes back, and the workload keeps running throughout.
    fleet.stop_co().await;
    fleet.start_lo().await.unwrap();
    let before = greetings(&fleet, &id);
    fleet.stop_en(0).await;
    eventually("the LO to queue node-1 going offline", LIMIT, || async {
        (fleet.lo().outbox().pending >= 2).then_some(())
    })
    .await;
    fleet.start_en(0).await.unwrap();
    eventually("the module to keep printing", LIMIT, || async {
        (greetings(&fleet, &id) >= before + 2).then_some(())
    })
    .await;
    let queued = fleet.lo().outbox();
    assert!(queued.pending > 0, "{queued:?}");

    // The CO returns: the backlog drains, and the CO's view matches the site's.
    fleet.start_co().await.unwrap();
    eventually("the outbox to drain", LIMIT, || async {
        (fleet.lo().outbox().pending == 0).then_some(())
    })
    .await;
    let outbox = fleet.lo().outbox();
    let site_id = SiteId::parse("site-1").unwrap();
    let cursor = fleet
        .co()
        .control
        .uplink_cursor(&site_id)
        .await
        .unwrap()
        .expect("a cursor for site-1");
    assert_eq!(cursor.outbox_id, outbox.id);
    assert_eq!(
        cursor.applied_seq, outbox.last,
        "every report up to the last one handed out is applied"
    );
    eventually("the CO to see both ENs online again", LIMIT, || async {
        (devices_online(&fleet).await? == both_online).then_some(())
    })
    .await;
    let view = deployment(&fleet, &id).await;
    assert_eq!(view["state"], "installed", "{view}");
    assert_eq!(view["phase"], "active", "desired state untouched: {view}");

    // At most once: a report the CO already applied (a resend after a lost acknowledgement)
    // is skipped, so an old "offline" cannot overwrite the newer "online".
    let devices = fleet.get("/api/v1/devices").await.unwrap();
    let caps = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "site-1/node-1")
        .map(|d| d["capabilities"].to_string())
        .expect("node-1 is listed with its capabilities");
    let stale = SiteReport::Device {
        device: DeviceId::parse("site-1/node-1").unwrap(),
        capabilities: Box::new(
            DeviceCapabilities::from_json(&caps).unwrap_or_else(|p| panic!("{p}")),
        ),
        online: false,
    };
    let (acked, refused) = fleet
        .co()
        .control
        .apply_reports(&site_id, &outbox.id, vec![(1, Some(stale))])
        .await
        .unwrap();
    assert_eq!(acked, cursor.applied_seq);
    assert!(refused.is_empty());
    let after = fleet
        .co()
        .control
        .uplink_cursor(&site_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.duplicates, cursor.duplicates + 1);
    assert_eq!(after.applied, cursor.applied);
    assert_eq!(devices_online(&fleet).await.unwrap(), both_online);

    fleet.shutdown().await;
}
