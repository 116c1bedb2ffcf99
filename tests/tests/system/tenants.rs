//! Two tenants on one CO, each with a site, an edge node and the same application deployed:
//! nothing one tenant lists, gets, updates, deletes or streams returns or touches the other's
//! data. The default tenant runs the fleet's site `site-a`; `globex` is created through the API
//! and runs its own LO and EN at `site-g`. Another tenant's things answer exactly as things that
//! do not exist (404), so a reply never tells one tenant what another has.

use crate::sse::Stream;
use eos_domain::ids::{SiteId, TenantId};
use eos_en::{En, EnConfig};
use eos_lo::{Lo, LoConfig};
use eos_tests::{Fleet, LIMIT, SAMPLE_APP, eventually, repo_root};
use serde_json::{Value, json};

const GLOBEX: &str = "globex";

/// A request of `tenant` (`None`: no header, the default tenant): status and body.
pub(crate) async fn call(
    fleet: &Fleet,
    tenant: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = fleet.http.request(method, fleet.url(path));
    if let Some(t) = tenant {
        request = request.header("EOS-Tenant", t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let r = request.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get(fleet: &Fleet, tenant: Option<&str>, path: &str) -> (u16, Value) {
    call(fleet, tenant, reqwest::Method::GET, path, None).await
}

/// The ids (or `key`) of a list the tenant reads, which must answer 200.
async fn listed(fleet: &Fleet, tenant: Option<&str>, path: &str, key: &str) -> Vec<String> {
    let (code, list) = get(fleet, tenant, path).await;
    assert_eq!(code, 200, "{tenant:?} {path}: {list}");
    list.as_array()
        .unwrap_or_else(|| panic!("{path} is a list: {list}"))
        .iter()
        .map(|v| v[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Adds the sample app and deploys it to `site` as `tenant` under an idempotency key; waits
/// until it is installed and returns the deployment id.
async fn deploy_as(fleet: &Fleet, tenant: Option<&str>, site: &str) -> String {
    let source = repo_root().join(SAMPLE_APP.0).display().to_string();
    let (code, app) = call(
        fleet,
        tenant,
        reqwest::Method::POST,
        "/api/v1/apps",
        Some(json!({ "source": source })),
    )
    .await;
    assert_eq!(code, 201, "{tenant:?} adds the sample app: {app}");
    let mut request = fleet
        .http
        .post(fleet.url("/api/v1/deployments"))
        .header("Idempotency-Key", "the-same-key")
        .json(&json!({"app_id": SAMPLE_APP.1, "site": site}));
    if let Some(t) = tenant {
        request = request.header("EOS-Tenant", t);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 201, "{tenant:?} deploys to {site}");
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/deployments/{id}");
    eventually(&format!("{site}'s deployment installed"), LIMIT, || async {
        (get(fleet, tenant, &path).await.1["state"] == "installed").then_some(())
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_tenant_sees_or_touches_another_tenants_data() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-a", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;

    // A request names a tenant that exists, in the form of a tenant id.
    let (code, problem) = get(&fleet, Some("nobody"), "/api/v1/apps").await;
    assert_eq!(code, 404, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("tenant"));
    let (code, problem) = get(&fleet, Some("Not A Tenant"), "/api/v1/apps").await;
    assert_eq!(code, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("EOS-Tenant"));

    let (code, created) = call(
        &fleet,
        None,
        reqwest::Method::POST,
        "/api/v1/tenants",
        Some(json!({"id": GLOBEX, "name": "Globex Corporation"})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["plan"], "standard");
    let (code, _) = call(
        &fleet,
        None,
        reqwest::Method::POST,
        "/api/v1/tenants",
        Some(json!({"id": GLOBEX, "name": "again"})),
    )
    .await;
    assert_eq!(code, 409, "a tenant id is taken once");
    assert_eq!(
        listed(&fleet, None, "/api/v1/tenants", "id").await,
        ["default", GLOBEX]
    );

    // Each tenant's own stream, from the start of the log.
    let mut default_stream = Stream::open_as(&fleet, None, "?after=0", None).await;
    let mut globex_stream = Stream::open_as(&fleet, Some(GLOBEX), "?after=0", None).await;

    // globex's site: its own LO (naming the tenant) and EN, on the same CO, enrolled with
    // globex's claim tokens.
    let co = fleet.co();
    let co_url = format!("http://{}", co.http_addr);
    let mut claims = Vec::new();
    for body in [
        json!({"role": "lo"}),
        json!({"role": "en", "host": "node-1"}),
    ] {
        let r = fleet
            .http
            .post(fleet.url("/api/v1/sites/site-g/claims"))
            .header("EOS-Tenant", GLOBEX)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let claim: serde_json::Value = r.json().await.unwrap();
        claims.push(claim["token"].as_str().unwrap().to_owned());
    }
    let lo = Lo::start(LoConfig {
        site_id: "site-g".into(),
        tenant: GLOBEX.into(),
        co_endpoint: format!("http://{}", co.grpc_addr),
        deployments_repo: tmp.path().join("co/deployments.git").display().to_string(),
        listen: "127.0.0.1:0".into(),
        data_dir: tmp.path().join("lo-g"),
        poll_secs: 2,
        en_grace_secs: 3,
        claim_token: Some(claims[0].clone()),
        enrol_url: Some(co_url.clone()),
        ..LoConfig::default()
    })
    .await
    .unwrap();
    let en = En::start(EnConfig {
        device_id: "site-g/node-1".into(),
        lo_endpoint: format!("http://{}", lo.listen_addr),
        data_dir: tmp.path().join("en-g"),
        heartbeat_secs: 1,
        health_check_secs: 1,
        // Tests share one engine: this EN keeps to containers of its own.
        container_scope: Some(format!(
            "site-g-node-1-{}",
            tmp.path().file_name().unwrap_or_default().to_string_lossy()
        )),
        claim_token: Some(claims[1].clone()),
        enrol_url: Some(co_url),
        ..EnConfig::default()
    })
    .await
    .unwrap();
    eventually("globex's node online", LIMIT, || async {
        let (_, devices) = get(&fleet, Some(GLOBEX), "/api/v1/devices").await;
        (devices[0]["online"] == true).then_some(())
    })
    .await;

    // The same app, the same idempotency key: a deployment each.
    let ours = deploy_as(&fleet, None, "site-a").await;
    let theirs = deploy_as(&fleet, Some(GLOBEX), "site-g").await;
    assert_ne!(ours, theirs, "one key, two tenants, two deployments");

    // Lists: each tenant's own, nothing else.
    for (tenant, site, device, deployment) in [
        (None, "site-a", "site-a/node-1", &ours),
        (Some(GLOBEX), "site-g", "site-g/node-1", &theirs),
    ] {
        assert_eq!(
            listed(&fleet, tenant, "/api/v1/sites", "id").await,
            [site],
            "{tenant:?}"
        );
        assert_eq!(
            listed(&fleet, tenant, "/api/v1/devices", "id").await,
            [device]
        );
        assert_eq!(
            listed(&fleet, tenant, "/api/v1/deployments", "id").await,
            [deployment.as_str()]
        );
        assert_eq!(
            listed(&fleet, tenant, "/api/v1/apps", "app_id").await,
            [SAMPLE_APP.1]
        );
        let filtered = format!("/api/v1/devices?site={}", other_site(site));
        assert!(listed(&fleet, tenant, &filtered, "id").await.is_empty());
    }

    // Gets, updates, deletes and questions about the other's things: not found, and nothing
    // changes.
    for (tenant, their_site, their_deployment) in
        [(None, "site-g", &theirs), (Some(GLOBEX), "site-a", &ours)]
    {
        let d = format!("/api/v1/deployments/{their_deployment}");
        for (method, path, body) in [
            (reqwest::Method::GET, d.clone(), None),
            (reqwest::Method::GET, format!("{d}/history"), None),
            (reqwest::Method::GET, format!("{d}/live"), None),
            (
                reqwest::Method::PATCH,
                d.clone(),
                Some(json!({"version": "1.0.0"})),
            ),
            (reqwest::Method::DELETE, d.clone(), None),
            (
                reqwest::Method::GET,
                format!("/api/v1/sites/{their_site}/events"),
                None,
            ),
            (
                reqwest::Method::POST,
                "/api/v1/deployments".into(),
                Some(json!({"app_id": SAMPLE_APP.1, "site": their_site})),
            ),
            (
                reqwest::Method::POST,
                "/api/v1/deployments/preview".into(),
                Some(json!({"app_id": SAMPLE_APP.1, "site": their_site})),
            ),
        ] {
            let (code, answer) = call(&fleet, tenant, method.clone(), &path, body).await;
            assert_eq!(code, 404, "{tenant:?} {method} {path}: {answer}");
        }
    }
    for (tenant, id) in [(None, &ours), (Some(GLOBEX), &theirs)] {
        let (_, view) = get(&fleet, tenant, &format!("/api/v1/deployments/{id}")).await;
        assert_eq!(view["phase"], "active", "{tenant:?}: untouched");
        assert_eq!(view["state"], "installed", "{tenant:?}: untouched");
    }

    // Users: the same email in each tenant, and neither reaches the other's.
    let mut users = Vec::new();
    for tenant in [None, Some(GLOBEX)] {
        let (code, user) = call(
            &fleet,
            tenant,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({"email": "Ops@Example.com", "role": "operator"})),
        )
        .await;
        assert_eq!(code, 201, "{user}");
        assert_eq!(user["email"], "ops@example.com");
        users.push(user["id"].as_str().unwrap().to_owned());
    }
    let (code, problem) = call(
        &fleet,
        None,
        reqwest::Method::POST,
        "/api/v1/users",
        Some(json!({"email": "ops@example.com", "role": "operator"})),
    )
    .await;
    assert_eq!(code, 409, "an email once per tenant: {problem}");
    let (code, problem) = call(
        &fleet,
        None,
        reqwest::Method::POST,
        "/api/v1/users",
        Some(json!({"email": "not-an-email", "role": "emperor"})),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "role"], "{problem}");
    for (tenant, theirs) in [(None, &users[1]), (Some(GLOBEX), &users[0])] {
        let mut emails = listed(&fleet, tenant, "/api/v1/users", "email").await;
        emails.sort();
        // The platform tenant (`default`) holds the bootstrap admin too.
        let expected: &[&str] = match tenant {
            None => &["admin@eos.invalid", "ops@example.com"],
            Some(_) => &["ops@example.com"],
        };
        assert_eq!(emails, expected);
        let path = format!("/api/v1/users/{theirs}");
        assert_eq!(get(&fleet, tenant, &path).await.0, 404);
        let (code, _) = call(&fleet, tenant, reqwest::Method::DELETE, &path, None).await;
        assert_eq!(code, 404, "{tenant:?} cannot remove another tenant's user");
    }
    for (tenant, own) in [(None, &users[0]), (Some(GLOBEX), &users[1])] {
        let (code, user) = get(&fleet, tenant, &format!("/api/v1/users/{own}")).await;
        assert_eq!(code, 200, "{tenant:?}'s user is still there: {user}");
    }

    // An LO cannot take over another tenant's site by naming its own tenant.
    let refused = co
        .control
        .uplink_opened(
            &TenantId::parse(GLOBEX).unwrap(),
            &SiteId::parse("site-a").unwrap(),
            "an-outbox",
        )
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("another tenant")),
        "{refused:?}"
    );

    // Streams: each saw its own deployment installed and nothing of the other's.
    let seen_by_default = own_events(&mut default_stream, &ours).await;
    let seen_by_globex = own_events(&mut globex_stream, &theirs).await;
    for (seen, foreign) in [
        (&seen_by_default, ["site-g", theirs.as_str(), GLOBEX]),
        (&seen_by_globex, ["site-a", ours.as_str(), "\"default\""]),
    ] {
        assert!(
            !seen.iter().any(|e| foreign.iter().any(|f| e.contains(f))),
            "{seen:#?}"
        );
    }
    assert!(
        seen_by_globex
            .iter()
            .any(|e| e.starts_with("tenant.created")),
        "{seen_by_globex:#?}"
    );
    assert!(
        seen_by_globex
            .iter()
            .any(|e| e.starts_with("device.joined") && e.contains("site-g/node-1")),
        "{seen_by_globex:#?}"
    );

    en.shutdown().await;
    lo.shutdown().await;
    fleet.shutdown().await;
}

/// What a stream held up to the first status of `deployment`: `kind site subject` each.
async fn own_events(stream: &mut Stream, deployment: &str) -> Vec<String> {
    let events = stream.until("deployment.status", deployment).await;
    events
        .into_iter()
        .map(|e| format!("{} {} {}", e.event, e.data["site"], e.data["subject"]))
        .collect()
}

fn other_site(site: &str) -> &'static str {
    if site == "site-a" { "site-g" } else { "site-a" }
}
