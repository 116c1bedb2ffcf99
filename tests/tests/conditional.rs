//! Optimistic concurrency on the REST API: a deployment carries an `ETag`, an update that names
//! it in `If-Match` is made only while the deployment is as it was read, and one that names an
//! older tag is refused with 412 and a problem document, changing nothing.

use eos_tests::{Fleet, SAMPLE_APP, app_variant};
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
