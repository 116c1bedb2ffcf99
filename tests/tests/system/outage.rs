//! A site on its own. With the CO down or the link cut, the LO restarted and an EN restarted, the
//! workload keeps running and every report waits in the LO's durable outbox. When the CO is back,
//! everything arrives and takes effect exactly once. The real CO, SQLite store, Git repository
//! and gRPC links run in one process, with a fault-injection proxy on the uplink.

use eos_domain::ids::{DeviceId, SiteId, TenantId};
use eos_domain::margo::DeviceCapabilities;
use eos_domain::service::{NumberedReport, SiteReport};
use eos_tests::{Fault, Fleet, LIMIT, Links, eventually};
use std::time::Instant;

fn site() -> SiteId {
    SiteId::parse("site-1").unwrap()
}

/// The CO's cursor for the site equals the LO's outbox: everything handed out is applied.
async fn assert_caught_up(fleet: &Fleet) -> eos_domain::service::UplinkCursor {
    let outbox = fleet.lo().outbox();
    let cursor = fleet
        .co()
        .control
        .uplink_cursor(&site())
        .await
        .unwrap()
        .expect("a cursor for site-1");
    assert_eq!(cursor.outbox_id, outbox.id);
    assert_eq!(
        cursor.applied_seq, outbox.last,
        "every report up to the last one handed out is applied"
    );
    assert_eq!(outbox.pending, 0);
    cursor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_made_while_the_co_is_down_arrive_exactly_once_after_it_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    let id = fleet.deploy_sample(Some("node-1")).await.unwrap();

    // The LO goes away: the CO shows the site disconnected, with the time of last contact.
    fleet.stop_lo().await;
    let site_view = eventually("the site to show disconnected", LIMIT, || async {
        let sites = fleet.get("/api/v1/sites").await.ok()?;
        let site = sites.as_array()?.first()?.clone();
        (site["lo_connected"] == false).then_some(site)
    })
    .await;
    assert!(site_view["last_seen"].is_string(), "{site_view}");

    // Two more deployments while the LO is away: two commits it will never see one by one.
    let mut later = Vec::new();
    for _ in 0..2 {
        let (code, created) = fleet
            .post(
                "/api/v1/deployments",
                serde_json::json!({"app_id": "com-eos-hello-wasm", "site": "site-1", "host": "node-2"}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{created}");
        later.push(created["id"].as_str().unwrap().to_owned());
    }

    // Then the CO goes away too, and the site carries on alone: the LO restarts with nothing
    // upstream, an EN dies and comes back, and the workload keeps running throughout.
    fleet.stop_co().await;
    fleet.start_lo().await.unwrap();
    // The newest desired state wins; the one in between is recorded as skipped.
    let history = eventually("the LO to take the newest desired state", LIMIT, || async {
        let history = fleet.lo().history().ok()?;
        history
            .last()
            .filter(|h| !h.skipped.is_empty())
            .map(|_| history.clone())
    })
    .await;
    let newest = history.last().unwrap();
    assert_eq!(newest.skipped.len(), 1, "{history:?}");
    assert_ne!(newest.skipped[0], newest.commit);
    let before = fleet.greetings("node-1", &id);
    fleet.stop_en(0).await;
    eventually("the LO to queue node-1 going offline", LIMIT, || async {
        (fleet.lo().outbox().pending >= 2).then_some(())
    })
    .await;
    fleet.start_en(0).await.unwrap();
    eventually("the module to keep printing", LIMIT, || async {
        (fleet.greetings("node-1", &id) >= before + 2).then_some(())
    })
    .await;
    assert!(fleet.lo().outbox().pending > 0);

    // The CO returns: the backlog drains, and the CO's view matches the site's.
    fleet.start_co().await.unwrap();
    eventually("the outbox to drain", LIMIT, || async {
        (fleet.lo().outbox().pending == 0).then_some(())
    })
    .await;
    let cursor = assert_caught_up(&fleet).await;
    fleet.await_online(&["node-1", "node-2"]).await;
    let view = fleet.deployment(&id).await;
    assert_eq!(view["state"], "installed", "{view}");
    assert_eq!(view["phase"], "active", "desired state untouched: {view}");
    for id in &later {
        let start = std::time::Instant::now();
        loop {
            let view = fleet.deployment(id).await;
            if view["state"] == "installed" {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "a deployment made meanwhile: {view}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

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
        .apply_reports(
            &site(),
            &cursor.outbox_id,
            vec![NumberedReport {
                seq: 1,
                observed_at: None,
                report: Some(stale),
            }],
        )
        .await
        .unwrap();
    assert_eq!(acked, cursor.applied_seq);
    assert!(refused.is_empty());
    let after = fleet
        .co()
        .control
        .uplink_cursor(&site())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.duplicates, cursor.duplicates + 1);
    assert_eq!(after.applied, cursor.applied);
    fleet.await_online(&["node-1", "node-2"]).await;

    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_uplink_heals_and_the_co_catches_up_with_what_happened_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start_with(
        tmp.path(),
        "site-1",
        &["node-1", "node-2"],
        Links::ProxiedUplink,
    )
    .await
    .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    let id = fleet.deploy_sample(Some("node-2")).await.unwrap();

    // Cut the link mid-stream. The CO notices at once, and keeps the desired state as it was.
    fleet.uplink.as_ref().unwrap().set(Fault::Cut);
    let cut = eventually("the CO to see the site disconnected", LIMIT, || async {
        let sites = fleet.get("/api/v1/sites").await.ok()?;
        let site = sites.as_array()?.first()?.clone();
        (site["lo_connected"] == false).then_some(site)
    })
    .await;
    // The time of last contact stays put while the site is away.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let sites = fleet.get("/api/v1/sites").await.unwrap();
    assert_eq!(sites[0]["last_seen"], cut["last_seen"]);
    assert!(cut["last_seen"].is_string(), "{cut}");

    // Meanwhile at the site: node-1 leaves (its heartbeats stop) and comes back.
    fleet.stop_en(0).await;
    eventually("the LO to queue node-1 going offline", LIMIT, || async {
        (fleet.lo().outbox().pending >= 1).then_some(())
    })
    .await;
    // The CO, cut off, still believes node-1 is online.
    assert!(
        fleet
            .devices_online()
            .await
            .unwrap()
            .contains(&("site-1/node-1".to_owned(), true))
    );
    fleet.start_en(0).await.unwrap();
    let queued = fleet.lo().outbox();
    assert!(queued.pending >= 1, "{queued:?}");

    // Heal, and measure how long the CO takes to match the site.
    let healed = Instant::now();
    fleet.uplink.as_ref().unwrap().set(Fault::Pass);
    eventually("the outbox to drain after healing", LIMIT, || async {
        (fleet.lo().outbox().pending == 0).then_some(())
    })
    .await;
    let caught_up = healed.elapsed();
    eprintln!("uplink healed: the CO caught up in {caught_up:?}");
    let cursor = assert_caught_up(&fleet).await;
    assert_eq!(
        cursor.duplicates, 0,
        "nothing was applied twice: {cursor:?}"
    );
    fleet.await_online(&["node-1", "node-2"]).await;
    assert_eq!(fleet.deployment(&id).await["state"], "installed");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_en_goes_offline_its_workload_moves_and_runs_once_after_it_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with(
        tmp.path(),
        "site-1",
        &["node-1", "node-2"],
        Links::ProxiedNodes,
    )
    .await
    .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    // The LO chooses the device (target site-1/*), so it may move the workload.
    let id = fleet.deploy_sample(None).await.unwrap();
    let first = fleet.deployment(&id).await["devices"][0]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (lost, other) = match first.as_str() {
        "site-1/node-1" => (0, "node-2"),
        _ => (1, "node-1"),
    };
    let lost_host = fleet.hosts[lost].clone();

    // Packets from and to that EN vanish; nothing is closed. The EN process keeps running, but
    // after the grace period the LO counts it offline and starts the workload elsewhere.
    fleet.node_links[lost].set(Fault::Blackhole);
    eventually("the workload to move to the other EN", LIMIT, || async {
        let view = fleet.deployment(&id).await;
        let devices = view["devices"].as_array()?.clone();
        devices
            .iter()
            .any(|d| d["device_id"] == format!("site-1/{other}") && d["state"] == "installed")
            .then_some(())
    })
    .await;
    assert!(
        fleet
            .devices_online()
            .await
            .unwrap()
            .contains(&(format!("site-1/{lost_host}"), false))
    );
    let moved = fleet.greetings(other, &id);
    eventually("the moved workload to run", LIMIT, || async {
        (fleet.greetings(other, &id) > moved).then_some(())
    })
    .await;

    // The link heals: the EN reconnects, and the LO removes its stale copy, so the workload
    // runs on one EN only.
    fleet.node_links[lost].set(Fault::Pass);
    fleet.await_online(&["node-1", "node-2"]).await;
    let stale = fleet.workload_log(&lost_host, &id, "hello");
    eventually("the stale copy to be removed", LIMIT, || async {
        (!stale.exists()).then_some(())
    })
    .await;
    assert!(
        fleet.workload_log(other, &id, "hello").exists(),
        "it stays where it moved"
    );
    // The stale copy's "removed" reaches the CO after its folder is gone; until then the
    // deployment reads "removing".
    eventually("the CO to read installed again", LIMIT, || async {
        (fleet.deployment(&id).await["state"] == "installed").then_some(())
    })
    .await;
    fleet.shutdown().await;
}

/// What TCP cannot reorder, two connections can: after a reconnect, the batches of a stale
/// stream may still be on their way while the new stream carries the same reports again. Both
/// deliveries race into the CO at once, in opposite orders; each report takes effect once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_reports_racing_in_over_two_streams_apply_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let control = fleet.co().control.clone();
    let outbox = "a-replayed-outbox";
    let event = |seq: u64| NumberedReport {
        seq,
        observed_at: Some(format!("2026-01-01T00:00:{:02}.000Z", seq % 60)),
        report: Some(SiteReport::Component {
            kind: "component-crashed".into(),
            device_id: "site-1/node-1".into(),
            deployment_id: "d".into(),
            component: "c".into(),
            message: format!("crash {seq}"),
        }),
    };
    let (a, b) = (control.clone(), control.clone());
    let forward = tokio::spawn(async move {
        for chunk in (1..=60).collect::<Vec<u64>>().chunks(7) {
            let batch = chunk.iter().map(|&s| event(s)).collect();
            a.apply_reports(&site(), outbox, batch).await.unwrap();
        }
    });
    let stale = tokio::spawn(async move {
        // The stale stream got as far as 40, in batches of its own.
        for chunk in (1..=40).collect::<Vec<u64>>().chunks(5) {
            let batch = chunk.iter().map(|&s| event(s)).collect();
            b.apply_reports(&site(), outbox, batch).await.unwrap();
        }
    });
    forward.await.unwrap();
    stale.await.unwrap();
    let cursor = control.uplink_cursor(&site()).await.unwrap().unwrap();
    assert_eq!(cursor.outbox_id, outbox);
    assert_eq!(cursor.applied_seq, 60);
    assert_eq!(cursor.applied, 60, "each number applied once: {cursor:?}");
    assert_eq!(cursor.duplicates, 40, "{cursor:?}");
    let events = control
        .site_events(&TenantId::default_tenant(), "site-1", 1000)
        .await
        .unwrap();
    let messages: Vec<String> = events.iter().map(|e| e.message.clone()).collect();
    let expected: Vec<String> = (1..=60).map(|s| format!("crash {s}")).collect();
    assert_eq!(messages, expected, "once each, in order");
    fleet.shutdown().await;
}
