//! GraphQL at `/graphql` through a running fleet: an app added and deployed by mutation, its
//! progress followed by a subscription over WebSocket until it is installed, read back by query
//! with each device's site and the deployment's history, and undeployed; errors carry the
//! problem type; depth and complexity limits refuse queries; batches of queries are answered
//! together; another tenant's queries, mutations and subscriptions see and touch nothing of the
//! default tenant's. On PostgreSQL, a page of 1,000 devices with their sites reads the sites
//! table once (counted by pg_stat_statements), not once per device.

use eos_adapter_sql::testing::TestDatabase;
use eos_tests::{Fleet, LIMIT, SAMPLE_APP, repo_root, seed};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Runs a GraphQL document as `tenant` (`None`: the default tenant): the whole response.
pub(crate) async fn gql(
    fleet: &Fleet,
    tenant: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = fleet
        .http
        .post(fleet.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = tenant {
        request = request.header("EOS-Tenant", t);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The `data` of a response that must have no errors.
pub(crate) async fn data(
    fleet: &Fleet,
    tenant: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let r = gql(fleet, tenant, query, variables).await;
    assert!(r["errors"].is_null(), "{query}: {r}");
    r["data"].clone()
}

/// The first error of a response that must fail.
async fn error(fleet: &Fleet, tenant: Option<&str>, query: &str, variables: Value) -> Value {
    let r = gql(fleet, tenant, query, variables).await;
    r["errors"][0].clone()
}

/// A subscription over WebSocket (graphql-transport-ws), as `tenant` says in `connection_init`.
struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Where a WebSocket client puts its token.
#[derive(Clone, Copy, PartialEq)]
enum TokenIn {
    /// The upgrade request's `Authorization` header (non-browser clients).
    Header,
    /// The `connection_init` payload, as a browser must.
    Payload,
    Nowhere,
}

impl Subscription {
    /// Opens the socket and starts `query`; `Err` carries why the server refused.
    async fn start(fleet: &Fleet, tenant: Option<&str>, query: &str) -> Result<Self, String> {
        Self::start_with(fleet, TokenIn::Header, tenant, query).await
    }

    async fn start_with(
        fleet: &Fleet,
        token_in: TokenIn,
        tenant: Option<&str>,
        query: &str,
    ) -> Result<Self, String> {
        let url = format!("ws://{}/graphql/ws", fleet.co().http_addr);
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let token = fleet.co().admin_token().unwrap();
        if token_in == TokenIn::Header {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut payload = match tenant {
            Some(t) => json!({ "EOS-Tenant": t }),
            None => json!({}),
        };
        if token_in == TokenIn::Payload {
            payload["Authorization"] = json!(format!("Bearer {token}"));
        }
        socket
            .send(Message::text(
                json!({"type": "connection_init", "payload": payload}).to_string(),
            ))
            .await
            .unwrap();
        let mut me = Self { socket };
        match me.message().await {
            Some(m) if m["type"] == "connection_ack" => {}
            other => return Err(format!("no connection_ack: {other:?}")),
        }
        me.socket
            .send(Message::text(
                json!({"id": "1", "type": "subscribe", "payload": {"query": query}}).to_string(),
            ))
            .await
            .unwrap();
        Ok(me)
    }

    /// The next message, `None` once the server closed the socket.
    async fn message(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(LIMIT, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Some(json!({"type": "closed", "reason": format!("{frame:?}")}));
                }
                Ok(None | Some(Err(_))) => return None,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("no message within {LIMIT:?}"),
            }
        }
    }

    /// The payload of the next `next` message (panics on anything else).
    async fn next(&mut self) -> Value {
        let m = self.message().await.expect("the subscription is open");
        assert_eq!(m["type"], "next", "{m}");
        assert!(m["payload"]["errors"].is_null(), "{m}");
        m["payload"]["data"].clone()
    }
}

const DEVICES_WITH_SITES: &str = "query($limit: Int) { devices(limit: $limit) { items { id siteId site { id loConnected } } nextCursor } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphql_runs_the_journey_with_its_limits_and_keeps_tenants_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;

    let source = repo_root().join(SAMPLE_APP.0).display().to_string();
    let added = data(
        &fleet,
        None,
        "mutation($s: String) { addApp(source: $s) { appId version name } }",
        json!({ "s": source }),
    )
    .await;
    assert_eq!(added["addApp"]["appId"], SAMPLE_APP.1);
    let deployed = data(
        &fleet,
        None,
        "mutation($app: String!) { deploy(input: {appId: $app, site: \"site-1\"}, idempotencyKey: \"k1\") { id phase } }",
        json!({ "app": SAMPLE_APP.1 }),
    )
    .await;
    let id = deployed["deploy"]["id"].as_str().unwrap().to_owned();
    assert_eq!(deployed["deploy"]["phase"], "active");

    // The deployment's progress, from its first event, until a device reports it installed.
    let mut progress = Subscription::start(
        &fleet,
        None,
        &format!(
            "subscription {{ deploymentStatus(id: \"{id}\", after: 0) {{ id kind subject data }} }}"
        ),
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    loop {
        let e = progress.next().await["deploymentStatus"].clone();
        assert_eq!(e["subject"], id.as_str(), "{e}");
        kinds.push(e["kind"].as_str().unwrap().to_owned());
        if e["kind"] == "deployment.status" && e["data"]["state"] == "installed" {
            break;
        }
    }
    assert_eq!(kinds[0], "deployment.created", "{kinds:?}");

    // Read back: the device with its site, the deployment with its history.
    let read = data(
        &fleet,
        None,
        &format!(
            "{{ devices {{ items {{ id site {{ id loConnected }} }} }} deployment(id: \"{id}\") {{ state devices {{ deviceId state }} history {{ kind }} }} tenant {{ id }} }}"
        ),
        json!({}),
    )
    .await;
    assert_eq!(read["devices"]["items"][0]["id"], "site-1/node-1", "{read}");
    assert_eq!(read["devices"]["items"][0]["site"]["id"], "site-1");
    assert_eq!(read["devices"]["items"][0]["site"]["loConnected"], true);
    assert_eq!(read["deployment"]["state"], "installed");
    assert_eq!(
        read["deployment"]["devices"][0]["deviceId"],
        "site-1/node-1"
    );
    assert_eq!(
        read["deployment"]["history"][0]["kind"],
        "deployment.created"
    );
    assert_eq!(read["tenant"]["id"], "default");

    // Errors carry the problem type, status and field errors of the REST API.
    let missing = error(
        &fleet,
        None,
        "{ deployment(id: \"00000000-0000-4000-8000-000000000000\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(missing["extensions"]["status"], 404, "{missing}");
    assert!(
        missing["extensions"]["type"]
            .as_str()
            .unwrap()
            .ends_with("/not-found")
    );
    let invalid = error(
        &fleet,
        None,
        "mutation { addUser(email: \"nobody\", role: \"emperor\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(invalid["extensions"]["status"], 422, "{invalid}");
    let fields: Vec<&str> = invalid["extensions"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "role"]);

    // Limits: nesting and cost. A query that only introspects may nest as deep as the
    // introspection query of GraphiQL and client generators (ofType eight levels down), and
    // no deeper than 20; any other query 12.
    let of_types = |n: usize| {
        let mut deep = String::from("name");
        for _ in 0..n {
            deep = format!("ofType {{ {deep} }}");
        }
        format!("__schema {{ types {{ fields {{ type {{ {deep} }} }} }} }}")
    };
    let introspection = data(&fleet, None, &format!("{{ {} }}", of_types(8)), json!({})).await;
    assert!(introspection["__schema"]["types"].as_array().unwrap().len() > 10);
    for query in [
        format!("{{ {} }}", of_types(18)),
        format!("{{ sites {{ items {{ id }} }} {} }}", of_types(8)),
    ] {
        let too_deep = error(&fleet, None, &query, json!({})).await;
        assert!(
            too_deep["message"].as_str().unwrap().contains("too deep"),
            "{query}: {too_deep}"
        );
    }
    let aliases: String = (0..20)
        .map(|i| format!("a{i}: devices(limit: 1000) {{ items {{ id siteId online lastSeen }} }} "))
        .collect();
    let too_complex = error(&fleet, None, &format!("{{ {aliases} }}"), json!({})).await;
    assert!(
        too_complex["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{too_complex}"
    );

    // A batch of queries in one request, answered in order.
    let batch: Vec<Value> = fleet
        .http
        .post(fleet.url("/graphql"))
        .json(&json!([
            {"query": "{ tenant { id } }"},
            {"query": "{ sites { items { id } } }"}
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["data"]["tenant"]["id"], "default");
    assert_eq!(batch[1]["data"]["sites"]["items"][0]["id"], "site-1");

    // Another tenant: sees nothing of the default tenant's, touches nothing.
    let created = data(
        &fleet,
        None,
        "mutation { createTenant(id: \"globex\", name: \"Globex\") { id plan } }",
        json!({}),
    )
    .await;
    assert_eq!(created["createTenant"]["plan"], "standard");
    let g = Some("globex");
    let mut globex_events = Subscription::start(
        &fleet,
        g,
        "subscription { events(after: 0) { kind subject site } }",
    )
    .await
    .unwrap();
    let theirs = data(
        &fleet,
        g,
        "{ apps { items { appId } } sites { items { id } } devices { items { id } } deployments { items { id } } users { items { id } } events { kind } }",
        json!({}),
    )
    .await;
    for list in ["apps", "sites", "devices", "deployments", "users"] {
        assert_eq!(
            theirs[list]["items"],
            json!([]),
            "globex's {list}: {theirs}"
        );
    }
    assert_eq!(theirs["events"], json!([{"kind": "tenant.created"}]));
    for document in [
        format!("{{ deployment(id: \"{id}\") {{ id }} }}"),
        format!("mutation {{ undeploy(id: \"{id}\") {{ id }} }}"),
        format!(
            "mutation {{ updateDeployment(id: \"{id}\", change: {{version: \"1.0.0\"}}) {{ id }} }}"
        ),
        "{ site(id: \"site-1\") { id } }".to_owned(),
        "{ siteEvents(site: \"site-1\") { kind } }".to_owned(),
        format!("{{ app(id: \"{}\") {{ appId }} }}", SAMPLE_APP.1),
        format!(
            "mutation {{ deploy(input: {{appId: \"{}\", site: \"site-1\"}}) {{ id }} }}",
            SAMPLE_APP.1
        ),
    ] {
        let e = error(&fleet, g, &document, json!({})).await;
        assert_eq!(e["extensions"]["status"], 404, "globex: {document}: {e}");
    }
    let refused = match Subscription::start(
        &fleet,
        g,
        &format!("subscription {{ deploymentStatus(id: \"{id}\") {{ kind }} }}"),
    )
    .await
    {
        Ok(mut s) => s.message().await.unwrap(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["status"], 404,
        "another tenant's deployment has no progress to follow: {refused}"
    );
    assert!(refused["payload"]["data"].is_null(), "{refused}");
    // A browser sends its token in connection_init; without one there is no socket.
    let mut from_browser = Subscription::start_with(
        &fleet,
        TokenIn::Payload,
        g,
        "subscription { events(after: 0) { kind } }",
    )
    .await
    .unwrap();
    assert_eq!(
        from_browser.next().await["events"]["kind"],
        "tenant.created"
    );
    let anonymous = Subscription::start_with(
        &fleet,
        TokenIn::Nowhere,
        None,
        "subscription { events { kind } }",
    )
    .await;
    assert!(anonymous.is_err(), "a socket without a token");
    let unknown_tenant =
        Subscription::start(&fleet, Some("nobody"), "subscription { events { kind } }").await;
    assert!(
        unknown_tenant.is_err(),
        "a tenant that does not exist has no socket"
    );
    let ours = data(
        &fleet,
        None,
        &format!("{{ deployment(id: \"{id}\") {{ phase state }} }}"),
        json!({}),
    )
    .await;
    assert_eq!(
        ours["deployment"],
        json!({"phase": "active", "state": "installed"})
    );
    // globex's stream has its own events only: its creation, then the user it adds.
    data(
        &fleet,
        g,
        "mutation { addUser(email: \"ops@globex.example\", role: \"viewer\") { id } }",
        json!({}),
    )
    .await;
    let first = globex_events.next().await["events"].clone();
    let second = globex_events.next().await["events"].clone();
    assert_eq!(first["kind"], "tenant.created", "{first}");
    assert_eq!(second["kind"], "user.added", "{second}");

    // Undeploy by mutation; the progress stream tells of the removal.
    data(
        &fleet,
        None,
        &format!("mutation {{ undeploy(id: \"{id}\") {{ phase }} }}"),
        json!({}),
    )
    .await;
    loop {
        let e = progress.next().await["deploymentStatus"].clone();
        if e["kind"] == "deployment.removed" {
            break;
        }
    }
    fleet.shutdown().await;
}

/// The statements run on the database whose text reads the sites table by a list of ids.
async fn site_list_reads(admin: &sea_orm::DatabaseConnection) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            "SELECT COALESCE(SUM(calls), 0)::bigint AS calls FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = current_database() AND s.query ILIKE '%FROM \"sites\"%' \
             AND s.query ILIKE '%IN (%'",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "calls").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_of_1000_devices_with_their_sites_reads_the_sites_once() {
    use sea_orm::ConnectionTrait;
    let db = TestDatabase::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_on_database(tmp.path(), "site-1", &["node-1"], &db.url)
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let sites: Vec<String> = (0..10).map(|n| format!("zone-{n}")).collect();
    let sites: Vec<&str> = sites.iter().map(String::as_str).collect();
    seed::sites(&db.url, &sites).await;
    seed::devices(&db.url, 999, &sites).await;

    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    conn.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    let before = site_list_reads(&conn).await;
    let page = data(&fleet, None, DEVICES_WITH_SITES, json!({"limit": 1000})).await;
    let after = site_list_reads(&conn).await;

    let items = page["devices"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1000, "999 seeded and node-1");
    assert!(
        items.iter().all(|d| d["site"]["id"] == d["siteId"]),
        "every device has its site"
    );
    assert_eq!(
        after - before,
        1,
        "one read of the sites for 1,000 devices of 11 sites"
    );
    // Without the loader it would be one read per device: the same query with the site left
    // out reads no site at all, so the one read above is the loader's.
    let before = site_list_reads(&conn).await;
    data(
        &fleet,
        None,
        "{ devices(limit: 1000) { items { id siteId } } }",
        json!({}),
    )
    .await;
    assert_eq!(site_list_reads(&conn).await - before, 0);
    fleet.shutdown().await;
}

/// GraphiQL with no internet: the page loads only the CO's own files, each served gzipped or
/// plain as asked, byte for byte what `ui/graphiql/` holds; and a real browser (headless
/// Chromium, on a machine that reaches nothing but loopback) renders GraphiQL with its first
/// query in the editor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphiql_works_with_no_internet() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    let r = fleet.http.get(fleet.url("/graphiql")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    let linked: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("/graphiql/") || s.starts_with("http") || s.starts_with("//"))
        .collect();
    assert_eq!(linked.len(), 4, "{linked:?}");
    for path in linked {
        assert!(
            path.starts_with("/graphiql/assets/"),
            "{path} is not the CO's own"
        );
        let name = path.trim_start_matches("/graphiql/assets/");
        let gz = std::fs::read(repo_root().join(format!("ui/graphiql/{name}.gz"))).unwrap();
        let mut vendored = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut vendored)
            .unwrap();
        let plain = fleet.http.get(fleet.url(path)).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        assert!(plain.headers().get("content-encoding").is_none());
        assert_eq!(plain.bytes().await.unwrap().to_vec(), vendored, "{path}");
        let zipped = fleet
            .http
            .get(fleet.url(path))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(zipped.bytes().await.unwrap().to_vec(), gz, "{path}");
    }
    let missing = fleet
        .http
        .get(fleet.url("/graphiql/assets/none.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // A real browser runs it, with the token in the page's fragment.
    let url = format!(
        "{}#token={}",
        fleet.url("/graphiql"),
        fleet.co().admin_token().unwrap()
    );
    let profile = tmp.path().join("chromium");
    let dom = tokio::task::spawn_blocking(move || {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--virtual-time-budget=20000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .output()
            .expect("chromium runs (config/services.sh installs it)")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("graphiql-container"),
        "GraphiQL did not render: {dom}"
    );
    assert!(
        dom.contains("loConnected"),
        "the first query is not in the editor: {dom}"
    );
    assert!(!dom.contains("Loading GraphiQL"), "{dom}");
    // Its schema loaded: the introspection query was not refused (an error would fill the
    // response pane).
    assert!(
        !dom.contains("too deep") && !dom.contains("errors"),
        "{dom}"
    );
    fleet.shutdown().await;
}
