//! kill -9 at chosen points. Every failpoint EOS has (`eos_app_common::FAILPOINTS`: mid-commit,
//! mid-apply, mid-ack in each tier) is armed in turn in the tier it belongs to, on a fleet of
//! real processes. The step that passes it is made to happen, the tier dies right there (abort,
//! as abrupt as SIGKILL) and is started again unarmed. Then what was half done is made good:
//! every deployment is installed, once, on one EN, and every report reaches the CO exactly once
//! (the crashes in the site's event log are counted: a report applied twice would log one
//! twice, a lost one none).

use eos_adapter_sql::SqlStore;
use eos_app_common::{FAILPOINT_VAR, FAILPOINTS};
use eos_domain::ids::SiteId;
use eos_domain::service::ports::ControlStore;
use eos_tests::processes::{ProcessFleet, START_LIMIT, send};
use eos_tests::{CRASHY_APP, SAMPLE_APP, eventually, repo_root};
use serde_json::{Value, json};
use std::time::Duration;

const CONVERGE_LIMIT: Duration = Duration::from_secs(120);

async fn register(fleet: &ProcessFleet, (dir, _): (&str, &str)) {
    let source = repo_root().join(dir).display().to_string();
    let (code, body) = send(
        fleet
            .http
            .post(fleet.api("/apps"))
            .json(&json!({ "source": source })),
    )
    .await
    .unwrap();
    assert_eq!(code, 201, "{body}");
}

/// Creates a deployment; `None` when the CO died answering (its id is found later).
async fn deploy(fleet: &ProcessFleet, (_, app): (&str, &str), host: &str) -> Option<String> {
    let request = fleet
        .http
        .post(fleet.api("/deployments"))
        .json(&json!({"app_id": app, "site": "site-1", "host": host}));
    match send(request).await {
        Ok((201, created)) => created["id"].as_str().map(str::to_owned),
        _ => None,
    }
}

async fn deployments(fleet: &ProcessFleet) -> Vec<Value> {
    match send(fleet.http.get(fleet.api("/deployments"))).await {
        Ok((200, Value::Array(all))) => all,
        _ => Vec::new(),
    }
}

async fn crashes_logged(fleet: &ProcessFleet) -> Option<usize> {
    let (code, log) = send(fleet.http.get(fleet.api("/sites/site-1/events")))
        .await
        .ok()?;
    (code == 200).then(|| {
        log.as_array().map_or(0, |l| {
            l.iter()
                .filter(|e| e["kind"] == "component-crashed")
                .count()
        })
    })
}

/// Every deployment installed on exactly the one EN where its component runs, and the site's
/// log holding exactly `crashes` crashes.
async fn converged(fleet: &ProcessFleet, crashes: usize, after: &str) {
    let start = std::time::Instant::now();
    loop {
        let all = deployments(fleet).await;
        let mut wrong = Vec::new();
        for d in &all {
            let id = d["id"].as_str().unwrap_or_default();
            let component = if d["app_id"] == CRASHY_APP.1 {
                "crashy"
            } else {
                "hello"
            };
            let installed: Vec<String> = d["devices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["state"] == "installed")
                .map(|s| s["device_id"].as_str().unwrap_or("").to_owned())
                .collect();
            let runs_on = fleet.copies(id, component);
            if d["state"] != "installed" || installed.len() != 1 || runs_on != installed {
                wrong.push(format!(
                    "{id}: {} at the CO on {installed:?}, runs on {runs_on:?}",
                    d["state"]
                ));
            }
        }
        let logged = crashes_logged(fleet).await;
        if !all.is_empty() && wrong.is_empty() && logged == Some(crashes) {
            return;
        }
        assert!(
            start.elapsed() < CONVERGE_LIMIT,
            "after {after}: {logged:?} crashes logged, {crashes} happened; {wrong:#?}\n{}",
            fleet.tails(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_failpoint_is_made_good_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = ProcessFleet::start(
        tmp.path(),
        env!("CARGO_BIN_EXE_eos-node"),
        "EOS_FAILPOINTS_LOG",
    );
    eventually("both ENs online", START_LIMIT, || async {
        let (_, v) = send(fleet.http.get(fleet.api("/devices"))).await.ok()?;
        let online = v.as_array()?.iter().filter(|d| d["online"] == true).count();
        (online == 2).then_some(())
    })
    .await;
    register(&fleet, SAMPLE_APP).await;
    register(&fleet, CRASHY_APP).await;
    let crashy = deploy(&fleet, CRASHY_APP, "node-1").await.unwrap();
    converged(&fleet, 0, "the first deployment").await;

    let mut crashes = 0;
    for (name, what) in FAILPOINTS {
        let tier = match name.split('.').next() {
            Some("en") => "en-2",
            Some(tier) => tier,
            None => unreachable!(),
        };
        eprintln!("failpoint {name}: {what}");
        fleet.tier(tier).kill();
        fleet.tier(tier).start_with(&[(FAILPOINT_VAR, name)]);
        match *name {
            // Reports: a crash makes one (an event, which a second application would log twice).
            "co.reports.before_commit" | "co.reports.before_ack" => {
                let flag = tmp
                    .path()
                    .join("en/node-1/workloads")
                    .join(&crashy)
                    .join("crashy/data/crash");
                std::fs::write(flag, b"now").unwrap();
                crashes += 1;
            }
            // The LO dies at its first acknowledgement: the reports of its ENs rejoining.
            "lo.uplink.before_ack" => {}
            // Desired state: a new deployment on node-2 goes through every tier.
            _ => {
                deploy(&fleet, SAMPLE_APP, "node-2").await;
            }
        }
        let (status, output) = fleet.tier(tier).wait_for_exit(CONVERGE_LIMIT);
        eprintln!("failpoint {name}: {tier} exited with {status}");
        assert!(!status.success(), "{name}: {status}");
        assert!(
            output.contains(&format!("failpoint {name}: aborting")),
            "{name} did not fire:\n{output}"
        );
        fleet.tier(tier).start();
        converged(&fleet, crashes, name).await;
    }
    let all = deployments(&fleet).await;
    assert_eq!(all.len(), 4, "one crashy and three from the failpoints");

    // A lost acknowledgement costs nothing: the CO answers the LO's next hello with what it
    // has applied, so nothing is even sent twice. (Numbers of statuses superseded in the
    // outbox before they were sent never reach the CO, so `applied` may stay below the last
    // number; the crash count above is what shows each report applied once.)
    let store = SqlStore::connect(&SqlStore::sqlite_url(&tmp.path().join("co/co.db")))
        .await
        .unwrap();
    let cursor = store
        .get_cursor(&SiteId::parse("site-1").unwrap())
        .await
        .unwrap()
        .expect("a cursor for site-1");
    assert_eq!(cursor.duplicates, 0, "{cursor:?}");
    assert!(cursor.applied <= cursor.applied_seq, "{cursor:?}");
    eprintln!("failpoints: {cursor:?}");
    fleet.kill_all();
}
