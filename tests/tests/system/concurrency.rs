//! Concurrent and repeated requests on the REST API. Optimistic concurrency: a deployment
//! carries an `ETag`, an update that names it in `If-Match` is made only while the deployment is
//! as it was read, and one that names an older tag is refused with 412, changing nothing.
//! Idempotent creation: requests under one `Idempotency-Key`, one after the other or at once,
//! make one deployment; another request under a used key is refused. Adding the same package
//! twice finds the version added first.

use eos_tests::{Fleet, SAMPLE_APP, app_variant, repo_root};
use serde_json::{Value, json};

/// `PATCH` of deployment `id` to `version` with `If-Match: tag`: status, ETag and body.
async fn patch(fleet: &Fleet, id: &str, version: &str, tag: &str) -> (u16, String, Value) {
    let r = fleet
        .http
        .patch(fleet.url(&format!("/api/v1/deployments/{id}")))
        .header("If-Match", tag)
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap();
    let etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), etag, r.json().await.unwrap())
}

/// The deployment's ETag and version as a `GET` shows them.
async fn read(fleet: &Fleet, id: &str) -> (String, Value) {
    let r = fleet
        .http
        .get(fleet.url(&format!("/api/v1/deployments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let view: Value = r.json().await.unwrap();
    (etag, view["version"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_is_made_only_while_the_deployment_is_as_it_was_read() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let id = fleet.deploy_sample(Some("node-1")).await.unwrap();
    let next = app_variant(
        tmp.path(),
        SAMPLE_APP.0,
        &[
            ("version: 1.0.0", "version: 1.1.0"),
            ("revision: 1.0.0", "revision: 1.1.0"),
        ],
    );
    fleet.add_app(&next).await.unwrap();

    let (read_tag, version) = read(&fleet, &id).await;
    assert_eq!(version, "1.0.0");
    assert!(
        read_tag.starts_with('"') && read_tag.ends_with('"'),
        "{read_tag}"
    );

    // A tag from another state of the deployment: refused, nothing changes.
    let (code, _, problem) = patch(&fleet, &id, "1.1.0", "\"stale\"").await;
    assert_eq!(code, 412, "{problem}");
    assert_eq!(
        problem["type"], "https://eos.dev/problems/precondition-failed",
        "{problem}"
    );
    assert_eq!(read(&fleet, &id).await, (read_tag.clone(), "1.0.0".into()));
    // A weak tag never matches: If-Match compares strongly.
    let (code, _, _) = patch(&fleet, &id, "1.1.0", &format!("W/{read_tag}")).await;
    assert_eq!(code, 412);

    // The tag that was read: the update is made, and the deployment gets a new tag.
    let (code, new_tag, view) = patch(&fleet, &id, "1.1.0", &read_tag).await;
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["version"], "1.1.0");
    assert_ne!(new_tag, read_tag);
    assert_eq!(read(&fleet, &id).await, (new_tag.clone(), "1.1.0".into()));

    // A second client that read before the update is refused.
    let (code, _, _) = patch(&fleet, &id, "1.0.0", &read_tag).await;
    assert_eq!(code, 412, "a lost update prevented");
    // `*` matches any state; one of several tags is enough.
    let (code, _, view) = patch(&fleet, &id, "1.0.0", &format!("\"x\", {new_tag}")).await;
    assert_eq!(code, 200, "{view}");
    let (code, _, view) = patch(&fleet, &id, "1.1.0", "*").await;
    assert_eq!(code, 200, "{view}");
    fleet.shutdown().await;
}

/// `POST /api/v1/deployments` of the sample app with `Idempotency-Key: key`: status and body.
async fn create(fleet: &Fleet, key: &str, host: &str) -> (u16, Value) {
    let r = fleet
        .http
        .post(fleet.url("/api/v1/deployments"))
        .header("Idempotency-Key", key)
        .json(&json!({"app_id": SAMPLE_APP.1, "site": "site-1", "host": host}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_under_one_idempotency_key_make_one_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1", "node-2"])
        .await
        .unwrap();
    let first_add = fleet
        .add_app(&repo_root().join(SAMPLE_APP.0))
        .await
        .unwrap();
    // Adding the same package again is a retry too: the same version, one copy kept.
    let again_add = fleet
        .add_app(&repo_root().join(SAMPLE_APP.0))
        .await
        .unwrap();
    assert_eq!(again_add["digest"], first_add["digest"]);
    assert_eq!(again_add["created_at"], first_add["created_at"]);
    let copies = std::fs::read_dir(tmp.path().join("co/packages"))
        .unwrap()
        .count();
    assert_eq!(copies, 1, "the second copy is discarded");

    // A retry, as after a lost answer: the same deployment, 201 again.
    let (code, first) = create(&fleet, "retry-1", "node-1").await;
    assert_eq!(code, 201, "{first}");
    let (code, again) = create(&fleet, "retry-1", "node-1").await;
    assert_eq!(code, 201, "{again}");
    assert_eq!(again["id"], first["id"]);

    // Another request under a used key is refused, naming the key.
    let (code, problem) = create(&fleet, "retry-1", "node-2").await;
    assert_eq!(code, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"], "Idempotency-Key",
        "{problem}"
    );
    let (code, problem) = create(&fleet, &"k".repeat(256), "node-1").await;
    assert_eq!(code, 422, "a key too long: {problem}");

    // Eight clients send one request at once: one deployment, the same answer to all.
    let answers =
        futures::future::join_all((0..8).map(|_| create(&fleet, "burst", "node-2"))).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(code, body)| {
            assert_eq!(*code, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");

    // Two keys, two deployments, however many requests.
    let all = fleet.get("/api/v1/deployments").await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    fleet.shutdown().await;
}
