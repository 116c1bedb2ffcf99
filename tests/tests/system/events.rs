//! The CO's event log as server-sent events (`GET /api/v1/events`), through the whole system: a
//! site connecting, its device joining, an app added, a deployment made, installed, removed,
//! each an event numbered in order; a stream filtered by kind and site holds only those; one
//! resumed with `Last-Event-ID` starts right after that event; one opened without starts from
//! now and hears what happens next; an open stream does not hold up the CO's shutdown. A CO
//! restarted a month later keeps only the events of its retention.

use crate::sse::{Sse, Stream};
use eos_tests::{Fleet, LIMIT, SAMPLE_APP, eventually};
use serde_json::Value;
use std::time::Duration;

fn kinds(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_is_an_event_in_order_and_streams_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let mut all = Stream::open(&fleet, "?after=0", None).await;
    let mut deployments = Stream::open(&fleet, "?after=0&kind=deployment&site=site-1", None).await;

    let id = fleet.deploy_sample(Some("node-1")).await.unwrap();
    fleet.undeploy(&id).await.unwrap();

    let seen = all.until("deployment.removed", &id).await;
    assert!(
        seen.windows(2).all(|w| w[0].id < w[1].id),
        "numbered in order: {seen:?}"
    );
    for e in &seen {
        assert_eq!(e.data["id"], e.id, "{e:?}");
        assert_eq!(e.data["kind"], e.event, "{e:?}");
    }
    let order = kinds(&seen);
    let at = |kind: &str| {
        order
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {order:?}"))
    };
    assert!(at("site.connected") < at("deployment.created"), "{order:?}");
    assert!(at("device.joined") < at("deployment.created"), "{order:?}");
    assert!(at("app.added") < at("deployment.created"), "{order:?}");
    assert!(
        at("deployment.created") < at("deployment.status"),
        "{order:?}"
    );
    assert!(
        at("deployment.status") < at("deployment.removing"),
        "{order:?}"
    );
    let installed = seen
        .iter()
        .find(|e| e.event == "deployment.status" && e.data["data"]["state"] == "installed")
        .unwrap_or_else(|| panic!("installed in {seen:?}"));
    assert_eq!(installed.data["subject"], id.as_str());
    assert_eq!(installed.data["data"]["device_id"], "site-1/node-1");
    assert_eq!(installed.data["site"], "site-1");

    // The filtered stream holds the deployment's events only, the same numbers.
    let filtered = deployments.until("deployment.removed", &id).await;
    assert!(
        filtered.iter().all(|e| e.event.starts_with("deployment.")),
        "{:?}",
        kinds(&filtered)
    );
    let from_all: Vec<u64> = seen
        .iter()
        .filter(|e| e.event.starts_with("deployment."))
        .map(|e| e.id)
        .collect();
    assert_eq!(filtered.iter().map(|e| e.id).collect::<Vec<_>>(), from_all);

    // Resumed after the deployment was created: what came next, from the next number on.
    let created = seen
        .iter()
        .find(|e| e.event == "deployment.created")
        .unwrap();
    let mut resumed = Stream::open(&fleet, "", Some(created.id)).await;
    let first = resumed.next().await;
    let next = &seen[seen.iter().position(|e| e.id == created.id).unwrap() + 1];
    assert_eq!((first.id, &first.event), (next.id, &next.event));

    // Opened without a number: only what happens from now on.
    let mut live = Stream::open(&fleet, "?kind=deployment.created", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = fleet
        .create_deployment(SAMPLE_APP, Some("node-1"))
        .await
        .unwrap();
    let heard = live.next().await;
    assert_eq!(heard.event, "deployment.created");
    assert_eq!(heard.data["subject"], again.as_str(), "not the earlier one");

    // A kind that is none is refused; an open stream does not hold up the shutdown.
    let bad = fleet
        .http
        .get(fleet.url("/api/v1/events?kind=Deploy%25"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    tokio::time::timeout(Duration::from_secs(30), fleet.shutdown())
        .await
        .expect("the CO shuts down with streams open");
    drop((all, deployments, resumed, live));
}

/// A deployment's history as the CO shows it.
async fn history(fleet: &Fleet, id: &str) -> Value {
    fleet
        .get(&format!("/api/v1/deployments/{id}/history"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_co_keeps_only_the_events_of_its_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut fleet, id) = Fleet::one_node_with_sample(tmp.path()).await.unwrap();
    assert!(!history(&fleet, &id).await.as_array().unwrap().is_empty());

    // 31 days later (the default retention is 30) the CO restarts and prunes what is older.
    fleet.clock.advance(Duration::from_secs(31 * 24 * 3600));
    fleet.stop_co().await;
    fleet.start_co().await.unwrap();
    eventually("the old events to be pruned", LIMIT, || async {
        history(&fleet, &id)
            .await
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .await;
    // The deployment itself is untouched, and new changes are logged again.
    assert_eq!(fleet.deployment(&id).await["state"], "installed");
    fleet.undeploy(&id).await.unwrap();
    let kinds: Vec<String> = history(&fleet, &id)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains(&"deployment.removing".to_owned()),
        "{kinds:?}"
    );
    fleet.shutdown().await;
}
