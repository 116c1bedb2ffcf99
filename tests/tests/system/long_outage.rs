//! Sites cut off for a day and for a week. The uplink and the deployments repository are cut
//! while the site lives on: ENs die and come back, a workload crashes and is restarted, the LO
//! and an EN reboot with nothing upstream, and deployments are made at the CO meanwhile. The
//! CO and the LO share a simulated wall clock that the test moves forward hour by hour, so the
//! outage lasts a day or a week in the timestamps everyone records, in seconds of real time.
//! After healing, every report reaches the CO exactly once and the CO's view equals the LO's.

use eos_app_common::Clock;
use eos_tests::{CRASHY_APP, Fault, Fleet, LIMIT, Links, SAMPLE_APP, eventually};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

/// One deployment on one device: its state and its components' states.
type Row = (String, String, String, Vec<(String, String)>);

/// What the LO last told the CO, removed ones left out.
fn lo_view(fleet: &Fleet) -> BTreeSet<Row> {
    fleet
        .lo()
        .statuses()
        .into_iter()
        .filter(|s| s.status.state.as_str() != "removed")
        .map(|s| {
            (
                s.deployment_id,
                s.device_id.unwrap_or_default(),
                s.status.state.as_str().to_owned(),
                s.components
                    .iter()
                    .map(|c| (c.name.clone(), c.state.as_str().to_owned()))
                    .collect(),
            )
        })
        .collect()
}

/// What the CO shows of these deployments, removed ones left out.
async fn co_view(fleet: &Fleet, ids: &[String]) -> Option<BTreeSet<Row>> {
    let mut rows = BTreeSet::new();
    for id in ids {
        let view = fleet.deployment(id).await;
        for d in view["devices"].as_array()? {
            if d["state"] == "removed" {
                continue;
            }
            let components = d["components"]
                .as_array()?
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_owned(),
                        c["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            rows.insert((
                id.clone(),
                d["device_id"].as_str()?.to_owned(),
                d["state"].as_str()?.to_owned(),
                components,
            ));
        }
    }
    Some(rows)
}

/// The device the LO has `deployment` installed on.
async fn installed_on(fleet: &Fleet, deployment: &str) -> String {
    eventually(
        "the deployment to be installed at the site",
        LIMIT,
        || async {
            fleet
                .lo()
                .statuses()
                .into_iter()
                .find(|s| s.deployment_id == deployment && s.status.state.as_str() == "installed")
                .and_then(|s| s.device_id)
        },
    )
    .await
}

/// The host part of `<site>/<host>`.
fn host(device: &str) -> String {
    device.rsplit('/').next().unwrap_or_default().to_owned()
}

/// How many times a component has greeted in its log.
fn greetings(fleet: &Fleet, host: &str, deployment: &str, component: &str) -> usize {
    std::fs::read_to_string(fleet.workload_log(host, deployment, component))
        .map(|t| t.matches("hello from eos").count())
        .unwrap_or(0)
}

/// Waits until the component's log grows by `more` greetings.
async fn keeps_greeting(fleet: &Fleet, host: &str, deployment: &str, component: &str, more: usize) {
    let before = greetings(fleet, host, deployment, component);
    eventually("the workload to keep running", LIMIT, || async {
        (greetings(fleet, host, deployment, component) >= before + more).then_some(())
    })
    .await
}

/// Makes the crashy workload exit with status 3, and waits until its EN has restarted it and
/// the LO has seen it run again.
async fn crash_and_await_restart(fleet: &Fleet, host: &str, deployment: &str) {
    let flag = fleet
        .workload_data(host, deployment, "crashy")
        .join("crash");
    std::fs::write(&flag, b"now").unwrap();
    eventually("the workload to crash", LIMIT, || async {
        (!flag.exists()).then_some(())
    })
    .await;
    keeps_greeting(fleet, host, deployment, "crashy", 3).await;
    installed_on(fleet, deployment).await;
}

/// Cuts the site off: the uplink and the deployments repository. Returns the CO's time of last
/// contact with the site once the CO sees it disconnected.
async fn cut_off(fleet: &Fleet) -> String {
    fleet.uplink.as_ref().unwrap().set(Fault::Cut);
    fleet.cut_git();
    let site = eventually("the CO to see the site disconnected", LIMIT, || async {
        let sites = fleet.get("/api/v1/sites").await.ok()?;
        let site = sites.as_array()?.first()?.clone();
        (site["lo_connected"] == false).then_some(site)
    })
    .await;
    site["last_seen"].as_str().unwrap().to_owned()
}

/// Heals the cut, then measures how long until the CO has applied the whole outbox and shows
/// what the LO shows for `ids`. Checks every report arrived exactly once.
async fn heal_and_converge(fleet: &Fleet, ids: &[String], outage: &str) -> Duration {
    let healed = Instant::now();
    fleet.heal_git();
    fleet.uplink.as_ref().unwrap().set(Fault::Pass);
    let site = eos_domain::ids::SiteId::parse(&fleet.site).unwrap();
    loop {
        let outbox = fleet.lo().outbox();
        let cursor = fleet.co().control.uplink_cursor(&site).await.unwrap();
        let caught_up = outbox.pending == 0
            && cursor
                .as_ref()
                .is_some_and(|c| c.outbox_id == outbox.id && c.applied_seq == outbox.last);
        let lo = lo_view(fleet);
        let all_installed = ids.iter().all(|id| {
            lo.iter()
                .any(|(d, _, state, _)| d == id && state == "installed")
        });
        if caught_up && all_installed && co_view(fleet, ids).await.as_ref() == Some(&lo) {
            let cursor = cursor.unwrap();
            assert_eq!(cursor.duplicates, 0, "no report applied twice: {cursor:?}");
            let took = healed.elapsed();
            println!(
                "{}",
                serde_json::json!({
                    "outage": outage,
                    "converged_secs": took.as_secs_f64(),
                    "reports_applied": cursor.applied,
                    "last_seq": cursor.applied_seq,
                })
            );
            return took;
        }
        assert!(
            healed.elapsed() < LIMIT,
            "the CO never matched the site after healing: outbox {outbox:?}, cursor {cursor:?}\nLO {lo:#?}\nCO {:#?}",
            co_view(fleet, ids).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Parses an RFC 3339 timestamp.
fn at(text: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Asserts `t` lies within the simulated hour that starts `hours` after `t0`.
fn within_hour(t: chrono::DateTime<chrono::Utc>, t0: chrono::DateTime<chrono::Utc>, hours: i64) {
    let from = t0 + chrono::Duration::hours(hours);
    assert!(
        t >= from && t < from + chrono::Duration::hours(1),
        "{t} is not within hour {hours} after {t0}"
    );
}

/// The events of a kind in the site's log at the CO.
async fn events(fleet: &Fleet, kind: &str) -> Vec<Value> {
    let log = fleet.site_events().await;
    log.as_array()
        .unwrap_or_else(|| panic!("the site's events: {log}"))
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_cut_off_with_nodes_dying_and_a_crash_reaches_the_co_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let hosts = ["node-1", "node-2", "node-3"];
    let mut fleet = Fleet::start_with(tmp.path(), "site-1", &hosts, Links::ProxiedUplink)
        .await
        .unwrap();
    fleet.await_online(&hosts).await;
    let crashy = fleet
        .create_deployment(CRASHY_APP, Some("node-3"))
        .await
        .unwrap();
    installed_on(&fleet, &crashy).await;
    // Placed by the LO, so it may move when its EN dies.
    let roaming = fleet.deploy_sample(None).await.unwrap();
    let first_home = host(&installed_on(&fleet, &roaming).await);
    assert_ne!(first_home, "node-3", "the least loaded EN takes it");

    let last_contact = cut_off(&fleet).await;
    let t0 = fleet.clock.now();
    let mut later = Vec::new();
    let mut fleeting = String::new();
    let mut new_home = String::new();
    for hour in 1..=24 {
        fleet.clock.advance(HOUR);
        match hour {
            // The EN running the roaming workload dies; the LO moves the workload.
            3 => {
                let index = hosts.iter().position(|h| *h == first_home).unwrap();
                fleet.stop_en(index).await;
                new_home = eventually("the workload to move", LIMIT, || async {
                    let home = host(&installed_on(&fleet, &roaming).await);
                    (home != first_home).then_some(home)
                })
                .await;
                keeps_greeting(&fleet, &new_home, &roaming, "hello", 2).await;
            }
            // It comes back: the workload stays where it moved, the stale copy goes.
            8 => {
                let index = hosts.iter().position(|h| *h == first_home).unwrap();
                fleet.start_en(index).await.unwrap();
                eventually(
                    "the EN to return and its stale copy to go",
                    LIMIT,
                    || async {
                        let back = fleet.lo().nodes().iter().all(|(_, online)| *online);
                        let clean = lo_view(&fleet)
                            .iter()
                            .all(|(_, _, state, _)| state == "installed");
                        (back && clean).then_some(())
                    },
                )
                .await;
                assert_eq!(host(&installed_on(&fleet, &roaming).await), new_home);
            }
            // A workload crashes; its EN restarts it.
            12 => crash_and_await_restart(&fleet, "node-3", &crashy).await,
            // At the CO meanwhile, three commits the site cannot fetch yet: a deployment, its
            // deletion, and another deployment.
            16 => fleeting = fleet.create_deployment(SAMPLE_APP, None).await.unwrap(),
            18 => {
                let url = fleet.url(&format!("/api/v1/deployments/{fleeting}"));
                let deleted = fleet.http.delete(url).send().await.unwrap();
                assert_eq!(deleted.status().as_u16(), 202);
            }
            20 => later.push(fleet.create_deployment(SAMPLE_APP, None).await.unwrap()),
            _ => {}
        }
        // While cut off, the CO keeps the time of last contact.
        let sites = fleet.get("/api/v1/sites").await.unwrap();
        assert_eq!(sites[0]["lo_connected"], false);
        assert_eq!(sites[0]["last_seen"], last_contact.as_str());
    }
    let pending = fleet.lo().outbox().pending;
    assert!(
        pending <= 16,
        "the backlog is bounded by components, not time: {pending}"
    );

    let mut ids = vec![crashy.clone(), roaming.clone()];
    ids.extend(later.iter().cloned());
    heal_and_converge(&fleet, &ids, "24 simulated hours").await;

    // What happened meanwhile carries the time it happened, not the time the CO heard of it.
    let crashes = events(&fleet, "component-crashed").await;
    assert_eq!(crashes.len(), 1, "one crash, reported once: {crashes:?}");
    assert_eq!(crashes[0]["deployment_id"], crashy.as_str());
    assert_eq!(crashes[0]["device_id"], "site-1/node-3");
    within_hour(at(&crashes[0]["observed_at"]), t0, 12);
    let devices = fleet.get("/api/v1/devices").await.unwrap();
    let returned = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == format!("site-1/{first_home}"))
        .unwrap();
    assert_eq!(returned["online"], true);
    within_hour(at(&returned["last_seen"]), t0, 8);
    // The newest desired state won; the commits in between are recorded as skipped, at the CO
    // too. The deployment made and deleted meanwhile never ran, and is removed.
    let history = fleet.lo().history().unwrap();
    assert_eq!(history.last().unwrap().skipped.len(), 2, "{history:?}");
    let skipped = events(&fleet, "desired-state-skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    eventually("the fleeting deployment to be removed", LIMIT, || async {
        (fleet.deployment(&fleeting).await["phase"] == "removed").then_some(())
    })
    .await;
    assert!(
        hosts
            .iter()
            .all(|h| !fleet.workload_log(h, &fleeting, "hello").exists())
    );
    // And the workloads still run where the LO says.
    keeps_greeting(&fleet, &new_home, &roaming, "hello", 2).await;
    keeps_greeting(&fleet, "node-3", &crashy, "crashy", 2).await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_week_cut_off_with_the_lo_and_an_en_rebooted_reaches_the_co_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let hosts = ["node-1", "node-2"];
    let mut fleet = Fleet::start_with(tmp.path(), "site-1", &hosts, Links::ProxiedUplink)
        .await
        .unwrap();
    fleet.await_online(&hosts).await;
    let crashy = fleet
        .create_deployment(CRASHY_APP, Some("node-1"))
        .await
        .unwrap();
    installed_on(&fleet, &crashy).await;
    let pinned = fleet.deploy_sample(Some("node-2")).await.unwrap();
    // A file the workload keeps: a redeploy from scratch would lose it.
    let kept = fleet
        .workload_data("node-1", &crashy, "crashy")
        .join("kept");
    std::fs::write(&kept, b"state").unwrap();

    let last_contact = cut_off(&fleet).await;
    let t0 = fleet.clock.now();
    let mut later = Vec::new();
    for day in 1..=7 {
        for _ in 0..4 {
            fleet.clock.advance(6 * HOUR);
        }
        match day {
            // The LO and node-1 reboot with nothing upstream reachable.
            1 => {
                fleet.stop_lo().await;
                fleet.stop_en(0).await;
                fleet.start_en(0).await.unwrap();
                // The EN resumes its workload on its own, before any LO is back, and restarts
                // it when it crashes; the crash is told to the LO when it is back.
                keeps_greeting(&fleet, "node-1", &crashy, "crashy", 3).await;
                let flag = fleet
                    .workload_data("node-1", &crashy, "crashy")
                    .join("crash");
                std::fs::write(&flag, b"now").unwrap();
                eventually("the workload to crash", LIMIT, || async {
                    (!flag.exists()).then_some(())
                })
                .await;
                keeps_greeting(&fleet, "node-1", &crashy, "crashy", 3).await;
                fleet.start_lo().await.unwrap();
                eventually("the LO to resume from its own state", LIMIT, || async {
                    // Until its ENs are back, the LO takes none of them for gone: nothing is
                    // unplaceable, nothing is being removed.
                    let view = lo_view(&fleet);
                    assert!(
                        view.iter().all(
                            |(_, device, state, _)| device != "site-1/*" && state != "removing"
                        ),
                        "churn while the ENs rejoin: {view:?}"
                    );
                    let nodes = fleet.lo().nodes();
                    let up = nodes.len() == 2 && nodes.iter().all(|(_, online)| *online);
                    (up && view.len() == 2).then_some(())
                })
                .await;
                assert_eq!(host(&installed_on(&fleet, &crashy).await), "node-1");
                assert_eq!(host(&installed_on(&fleet, &pinned).await), "node-2");
                assert!(
                    kept.exists(),
                    "the workload was not redeployed from scratch"
                );
            }
            2 => crash_and_await_restart(&fleet, "node-1", &crashy).await,
            // node-2 is down for a day; its pinned workload waits for it.
            3 => {
                fleet.stop_en(1).await;
                eventually("the LO to see node-2 offline", LIMIT, || async {
                    fleet
                        .lo()
                        .nodes()
                        .iter()
                        .any(|(d, online)| d.to_string() == "site-1/node-2" && !online)
                        .then_some(())
                })
                .await;
            }
            4 => {
                fleet.start_en(1).await.unwrap();
                keeps_greeting(&fleet, "node-2", &pinned, "hello", 2).await;
            }
            7 => later.push(fleet.create_deployment(SAMPLE_APP, None).await.unwrap()),
            _ => {}
        }
        let sites = fleet.get("/api/v1/sites").await.unwrap();
        assert_eq!(sites[0]["last_seen"], last_contact.as_str());
    }
    let pending = fleet.lo().outbox().pending;
    assert!(
        pending <= 16,
        "the backlog is bounded by components, not time: {pending}"
    );

    let mut ids = vec![crashy.clone(), pinned.clone()];
    ids.extend(later.iter().cloned());
    heal_and_converge(&fleet, &ids, "7 simulated days").await;

    let crashes = events(&fleet, "component-crashed").await;
    assert_eq!(
        crashes.len(),
        2,
        "two crashes, each reported once: {crashes:?}"
    );
    // The one while no LO ran is told when the LO is back, on day 1.
    let unseen = crashes[0]["message"].as_str().unwrap();
    assert!(
        unseen.contains("crashed 1 time(s) while its EN could not reach the LO")
            && unseen.contains("exited with status 3"),
        "{unseen}"
    );
    within_hour(at(&crashes[0]["observed_at"]), t0, 24);
    within_hour(at(&crashes[1]["observed_at"]), t0, 48);
    assert!(kept.exists());
    keeps_greeting(&fleet, "node-1", &crashy, "crashy", 2).await;
    keeps_greeting(&fleet, "node-2", &pinned, "hello", 2).await;
    fleet.shutdown().await;
}
