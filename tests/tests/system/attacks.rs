//! Attacks by ordinary accounts against the real CO, each of which got through once: a viewer
//! reaching a mutation through nested fragments, aliases and batches (over HTTP and over a
//! GraphQL WebSocket); a tenant admin making a platform admin or minting a token above its own
//! role; an operator mounting the device's root file system or the engine socket through an
//! app; an operator importing folders of the CO's own disk. Each test attacks and checks that
//! nothing was done, and that the honest request next to it still works.

use crate::authz::token_for;
use eos_domain::service::Role;
use eos_tests::{Fleet, authorized_client, git, repo_root};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A fleet (no nodes) with tenants `acme` and `globex`.
async fn fleet_with_tenants(dir: &std::path::Path) -> Fleet {
    let fleet = Fleet::start(dir, "site-1", &[]).await.unwrap();
    for tenant in ["acme", "globex"] {
        let (code, body) = fleet
            .post("/api/v1/tenants", json!({"id": tenant, "name": tenant}))
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }
    fleet
}

/// The tenant ids the platform has, as its admin lists them.
async fn tenant_ids(fleet: &Fleet) -> Vec<String> {
    let tenants: Value = fleet.get("/api/v1/tenants?limit=1000").await.unwrap();
    tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `query` nested in `depth` inline fragments on `root`.
fn in_fragments(root: &str, depth: usize, field: &str) -> String {
    let open = format!("... on {root} {{ ").repeat(depth);
    format!("{open}{field}{}", " }".repeat(depth))
}

/// Whether a GraphQL answer carries a 403 error.
fn forbidden(answer: &Value) -> bool {
    answer["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["extensions"]["status"] == 403)
}

async fn graphql(http: &reqwest::Client, fleet: &Fleet, body: Value) -> Value {
    http.post(fleet.url("/graphql"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_reaches_no_mutation_through_fragments_aliases_or_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_tenants(tmp.path()).await;
    let viewer = authorized_client(&token_for(&fleet, "acme", Role::Viewer).await).unwrap();
    let create = |id: &str| format!(r#"createTenant(id: "{id}", name: "x") {{ id }}"#);

    let attacks = [
        (
            "x-inline",
            format!(
                "mutation {{ {} }}",
                in_fragments("Mutation", 9, &create("x-inline"))
            ),
        ),
        (
            "x-deep",
            format!(
                "mutation {{ {} }}",
                in_fragments("Mutation", 30, &create("x-deep"))
            ),
        ),
        (
            "x-named",
            format!(
                "mutation {{ ...A }} fragment A on Mutation {{ ...B }} \
                 fragment B on Mutation {{ ... on Mutation {{ ...C }} }} \
                 fragment C on Mutation {{ {} }}",
                create("x-named")
            ),
        ),
        (
            "x-alias",
            format!("mutation {{ harmless: {} }}", create("x-alias")),
        ),
    ];
    for (id, query) in &attacks {
        let answer = graphql(&viewer, &fleet, json!({ "query": query })).await;
        assert!(forbidden(&answer), "{id}: {answer}");
        assert!(answer["data"].is_null() || answer["data"]["createTenant"].is_null());
    }
    // A batch: the allowed query answers, the mutation beside it is refused.
    let batch = viewer
        .post(fleet.url("/graphql"))
        .json(&json!([
            {"query": "{ tenant { id } }"},
            {"query": format!("mutation {{ {} }}", create("x-batch"))},
        ]))
        .send()
        .await
        .unwrap();
    let answers: Vec<Value> = batch.json().await.unwrap();
    assert_eq!(answers[0]["data"]["tenant"]["id"], "acme", "{answers:?}");
    assert!(forbidden(&answers[1]), "{answers:?}");
    let tenants = tenant_ids(&fleet).await;
    for id in ["x-inline", "x-deep", "x-named", "x-alias", "x-batch"] {
        assert!(!tenants.contains(&id.to_owned()), "{id} was created");
    }

    // Aliases and batches do not multiply the questions sent to devices.
    let operator = token_for(&fleet, "acme", Role::Operator).await;
    let operator_http = authorized_client(&operator).unwrap();
    let aliased: String = (0..5)
        .map(|i| format!(r#"l{i}: live(deployment: "00000000-0000-4000-8000-00000000000{i}") {{ deviceId }} "#))
        .collect();
    let answer = graphql(
        &operator_http,
        &fleet,
        json!({ "query": format!("{{ {aliased} }}") }),
    )
    .await;
    assert_eq!(answer["errors"][0]["extensions"]["status"], 400, "{answer}");
    assert!(answer.to_string().contains("at most 4"), "{answer}");
    let batch: Vec<Value> = (0..17)
        .map(|_| json!({"query": "{ tenant { id } }"}))
        .collect();
    let r = operator_http
        .post(fleet.url("/graphql"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = operator_http
        .post(fleet.url("/graphql"))
        .json(&batch[..16])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The same over a WebSocket: a finops user may not follow events, however it nests them.
    let finops = token_for(&fleet, "acme", Role::Finops).await;
    let nested = format!(
        "subscription {{ {} }}",
        in_fragments("Subscription", 12, "events { id kind }")
    );
    let first = subscribe(&fleet, &finops, &nested).await;
    // Refused as an error message, or as a result with only errors: never data.
    assert!(
        ["error", "next"].contains(&first["type"].as_str().unwrap()),
        "{first}"
    );
    assert!(first["payload"]["data"].is_null(), "{first}");
    assert!(first.to_string().contains("403"), "{first}");
    // An operator may: it sees the next event of acme.
    let mut socket = open_socket(&fleet, &operator).await;
    start(&mut socket, "subscription { events { id kind } }").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, _) = call(
        &fleet.http,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/users",
        Some(json!({"email": "new@acme.test", "role": "viewer"})),
    )
    .await;
    assert_eq!(code, 201);
    let event = next_message(&mut socket).await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(
        event["payload"]["data"]["events"]["kind"], "user.added",
        "{event}"
    );
    fleet.shutdown().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A GraphQL WebSocket (graphql-transport-ws) for `token`, acknowledged.
async fn open_socket(fleet: &Fleet, token: &str) -> Socket {
    let url = format!("ws://{}/graphql/ws", fleet.co().http_addr);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let payload = json!({"Authorization": format!("Bearer {token}")});
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": payload}).to_string(),
        ))
        .await
        .unwrap();
    let ack = next_message(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

async fn start(socket: &mut Socket, query: &str) {
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {"query": query}}).to_string(),
        ))
        .await
        .unwrap();
}

/// The next text message, or `{"type": "closed"}` once the socket ends.
async fn next_message(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).unwrap(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(_))) | Ok(Some(Err(_))) | Ok(None) => return json!({"type": "closed"}),
            Err(_) => return json!({"type": "timeout"}),
        }
    }
}

/// The first answer to `query` subscribed over a new socket for `token`.
async fn subscribe(fleet: &Fleet, token: &str, query: &str) -> Value {
    let mut socket = open_socket(fleet, token).await;
    start(&mut socket, query).await;
    next_message(&mut socket).await
}

/// `method path` with `body` as `http` for tenant `tenant`: the status and the answer.
async fn call(
    http: &reqwest::Client,
    fleet: &Fleet,
    method: reqwest::Method,
    tenant: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http
        .request(method, fleet.url(path))
        .header("EOS-Tenant", tenant);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// `GET /api/v1/me` as `http` for acme.
async fn me(http: &reqwest::Client, fleet: &Fleet) -> (u16, Value) {
    call(
        http,
        fleet,
        reqwest::Method::GET,
        "acme",
        "/api/v1/me",
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nobody_grants_mints_or_keeps_a_role_above_their_own() {
    use reqwest::Method;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_tenants(tmp.path()).await;
    let acme_admin =
        authorized_client(&token_for(&fleet, "acme", Role::TenantAdmin).await).unwrap();

    // The attack as it was: a platform-admin user in acme, then its token.
    let (code, problem) = call(
        &acme_admin,
        &fleet,
        Method::POST,
        "acme",
        "/api/v1/users",
        Some(json!({"email": "root@acme.test", "role": "platform-admin"})),
    )
    .await;
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("only a platform admin deals in platform admins"),
        "{problem}"
    );
    // Even a platform admin makes platform admins in the platform tenant only.
    let (code, problem) = fleet
        .post(
            "/api/v1/users",
            json!({"email": "root@acme.test", "role": "platform-admin"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "in the platform tenant: {problem}");
    let (code, problem) = call(
        &fleet.http,
        &fleet,
        Method::POST,
        "acme",
        "/api/v1/users",
        Some(json!({"email": "root@acme.test", "role": "platform-admin"})),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "role", "{problem}");

    // A tenant admin of the platform tenant may not touch, or act as, the platform admins.
    let platform_admin =
        authorized_client(&token_for(&fleet, "default", Role::TenantAdmin).await).unwrap();
    let users: Value = fleet.get("/api/v1/users?limit=1000").await.unwrap();
    let root = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "platform-admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            Some(json!({"user_id": root})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{root}"),
            Some(json!({"role": "viewer"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{root}"), None),
        (
            Method::POST,
            "/api/v1/users".to_owned(),
            Some(json!({"email": "second@default.test", "role": "platform-admin"})),
        ),
    ] {
        let (code, problem) = call(
            &platform_admin,
            &fleet,
            method.clone(),
            "default",
            &path,
            body,
        )
        .await;
        assert_eq!(code, 403, "{method} {path}: {problem}");
    }

    // Role changes: up to one's own role, and the old tokens stop at once.
    let viewer_token = token_for(&fleet, "acme", Role::Viewer).await;
    let viewer = authorized_client(&viewer_token).unwrap();
    let (code, who) = me(&viewer, &fleet).await;
    assert_eq!(code, 200, "{who}");
    let id = who["subject"].as_str().unwrap().to_owned();
    let (code, problem) = call(
        &acme_admin,
        &fleet,
        Method::PATCH,
        "acme",
        &format!("/api/v1/users/{id}"),
        Some(json!({"role": "platform-admin"})),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    let (code, user) = call(
        &acme_admin,
        &fleet,
        Method::PATCH,
        "acme",
        &format!("/api/v1/users/{id}"),
        Some(json!({"role": "operator"})),
    )
    .await;
    assert_eq!(
        (code, user["role"].as_str()),
        (200, Some("operator")),
        "{user}"
    );
    let (code, problem) = me(&viewer, &fleet).await;
    assert_eq!(code, 401, "a token of the old role: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("operator now"));

    // Removing a user ends its token, and its open event stream within a few seconds.
    let operator_token = token_for(&fleet, "acme", Role::Operator).await;
    let operator = authorized_client(&operator_token).unwrap();
    let (code, who) = me(&operator, &fleet).await;
    assert_eq!(code, 200);
    let id = who["subject"].as_str().unwrap().to_owned();
    let mut stream = operator
        .get(fleet.url("/api/v1/events"))
        .header("EOS-Tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut socket = open_socket(&fleet, &operator_token).await;
    start(&mut socket, "subscription { events { id } }").await;
    let (code, _) = call(
        &acme_admin,
        &fleet,
        Method::DELETE,
        "acme",
        &format!("/api/v1/users/{id}"),
        None,
    )
    .await;
    assert_eq!(code, 204);
    let (code, problem) = me(&operator, &fleet).await;
    assert_eq!(code, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no longer exists")
    );
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the event stream of a removed user stays open"
    );
    // The socket closes (events of the removal may come first).
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let m = next_message(&mut socket).await;
            if m["type"] == "closed" {
                return;
            }
            assert_ne!(m["type"], "timeout");
        }
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket of a removed user stays open");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_may_not_mount_the_host_root_or_the_engine_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_tenants(tmp.path()).await;
    let operator = authorized_client(&token_for(&fleet, "acme", Role::Operator).await).unwrap();
    let sample =
        std::fs::read_to_string(repo_root().join("tests/fixtures/apps/web-oci/margo.yaml"))
            .unwrap();
    let hostile = sample.replace(
        "            memory: 32Mi",
        "            memory: 32Mi\n            volumes: [\"/:/host\", \"/var/run/docker.sock:/var/run/docker.sock\", \"state:/state\"]",
    );
    assert_ne!(hostile, sample);
    let (code, problem) = call(
        &operator,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/apps",
        Some(json!({ "description": hostile })),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "deploymentProfiles[0].components[0].x-eos-extensions.container.volumes[0]",
            "deploymentProfiles[0].components[0].x-eos-extensions.container.volumes[1]",
        ],
        "{problem}"
    );
    // Nothing was stored; the same app with only its named volume is fine.
    let (code, _) = call(
        &operator,
        &fleet,
        reqwest::Method::GET,
        "acme",
        "/api/v1/apps/com-eos-test-web-oci",
        None,
    )
    .await;
    assert_eq!(code, 404);
    let named = sample.replace(
        "            memory: 32Mi",
        "            memory: 32Mi\n            volumes: [\"state:/state\"]",
    );
    let (code, problem) = call(
        &operator,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/apps",
        Some(json!({ "description": named })),
    )
    .await;
    assert_eq!(code, 201, "{problem}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_reads_no_folder_of_the_co_and_nobody_reads_its_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_tenants(tmp.path()).await;
    let operator = authorized_client(&token_for(&fleet, "acme", Role::Operator).await).unwrap();
    let sample = repo_root().join("config/apps/hello-wasm");
    let data = tmp.path().join("co");
    let packages = std::fs::read_dir(data.join("packages"))
        .map(|d| d.count())
        .unwrap_or(0);
    for source in [
        sample.display().to_string(),
        data.display().to_string(),
        "/".to_owned(),
    ] {
        let (code, problem) = call(
            &operator,
            &fleet,
            reqwest::Method::POST,
            "acme",
            "/api/v1/apps",
            Some(json!({ "source": source })),
        )
        .await;
        assert_eq!(code, 403, "{source}: {problem}");
    }
    // A platform admin may read a folder, but not the data folder, a folder holding it, or /.
    for (source, why) in [
        (data.display().to_string(), "data folder"),
        (tmp.path().display().to_string(), "data folder"),
        ("/".to_owned(), "whole file system"),
        ("file:///etc".to_owned(), "not a remote Git URL"),
        (
            "ext::sh -c touch% /tmp/pwned".to_owned(),
            "not a remote Git URL",
        ),
        ("--upload-pack=touch /tmp/pwned".to_owned(), "nor a Git URL"),
    ] {
        let (code, problem) = call(
            &fleet.http,
            &fleet,
            reqwest::Method::POST,
            "acme",
            "/api/v1/apps",
            Some(json!({ "source": source })),
        )
        .await;
        assert_eq!(code, 422, "{source}: {problem}");
        assert!(problem.to_string().contains(why), "{source}: {problem}");
    }
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let after = std::fs::read_dir(data.join("packages"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(after, packages, "a failed fetch left a folder behind");
    let (code, problem) = call(
        &fleet.http,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/apps",
        Some(json!({ "source": sample.display().to_string() })),
    )
    .await;
    assert_eq!(code, 201, "{problem}");
    // Another tenant's record is not readable either.
    let (code, _) = call(
        &operator,
        &fleet,
        reqwest::Method::GET,
        "acme",
        "/api/v1/tenants/globex",
        None,
    )
    .await;
    assert_eq!(code, 404);
    fleet.shutdown().await;
}

/// The host folders a container of the deployment `part` mounts.
async fn host_mounts(part: &str) -> Vec<String> {
    let Some((docker, containers)) = eos_tests::all_containers().await else {
        return Vec::new();
    };
    let mut mounts = Vec::new();
    for c in containers {
        let named = c.names.unwrap_or_default().iter().any(|n| n.contains(part));
        let Some(id) = c.id.filter(|_| named) else {
            continue;
        };
        if let Ok(inspect) = docker.inspect_container(&id, None).await {
            mounts.extend(
                inspect
                    .host_config
                    .and_then(|h| h.binds)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|b| b.starts_with('/')),
            );
        }
    }
    mounts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_written_git_commit_mounts_nothing_of_the_host_on_a_device() {
    use eos_domain::ids::SiteId;
    use eos_domain::layout::{SiteDesiredState, SiteFiles};
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    // The web container app without its published port (other tests use that port).
    let description =
        std::fs::read_to_string(repo_root().join("tests/fixtures/apps/web-oci/margo.yaml"))
            .unwrap()
            .replace("            ports: [\"18765:80\"]\n", "");
    let (code, app) = fleet
        .post("/api/v1/apps", json!({ "description": description }))
        .await
        .unwrap();
    assert_eq!(code, 201, "{app}");
    let (code, deployment) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": "com-eos-test-web-oci", "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{deployment}");
    let id = deployment["id"].as_str().unwrap().to_owned();
    eos_tests::eventually(
        "the deployment to be installed",
        eos_tests::LIMIT,
        || async { (fleet.deployment(&id).await["state"] == "installed").then_some(()) },
    )
    .await;

    // Whoever can push to the deployments repository writes a host mount into the deployment,
    // with a grant in its annotation that no platform admin gave and the device does not allow.
    let clone = tmp.path().join("hand");
    git(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            &tmp.path().join("co/deployments.git").display().to_string(),
            "hand",
        ],
    );
    let site = SiteId::parse("site-1").unwrap();
    let mut files = SiteFiles::new();
    for entry in walk(&clone.join("sites/site-1")) {
        let path = entry.strip_prefix(&clone).unwrap().display().to_string();
        files.insert(path, std::fs::read_to_string(&entry).unwrap());
    }
    let mut state = SiteDesiredState::from_files(&site, &files).unwrap();
    let deployment = state.deployments.values_mut().next().unwrap();
    deployment.metadata.annotations.insert(
        eos_domain::workload::ANNOTATION.into(),
        r#"{"hostPaths":["/srv"]}"#.into(),
    );
    let component = &mut deployment.spec.deployment_profile.components[0];
    component.extensions.get_mut("x-eos-extensions").unwrap()["container"]["volumes"] =
        json!(["/srv/eos-attack:/h", "/:/host"]);
    state.manifest_version += 1;
    for (path, text) in state.to_files() {
        std::fs::write(clone.join(path), text).unwrap();
    }
    git(&clone, &["commit", "--quiet", "-am", "mount the host"]);
    git(&clone, &["push", "--quiet", "origin", "HEAD:main"]);

    let refused = eos_tests::eventually(
        "the EN to refuse the host mount",
        Duration::from_secs(60),
        || async {
            let view = fleet.deployment(&id).await;
            view.to_string()
                .contains("workload security policy")
                .then_some(view)
        },
    )
    .await;
    assert!(
        refused.to_string().contains("allows no host paths"),
        "{refused}"
    );
    assert_eq!(host_mounts(&id[..8]).await, Vec::<String>::new());
    fleet.shutdown().await;
    // The desired state is the hand-written one now: the container goes by hand too.
    if let Some((docker, containers)) = eos_tests::all_containers().await {
        for c in containers {
            let ours = c
                .names
                .unwrap_or_default()
                .iter()
                .any(|n| n.contains(&id[..8]));
            if let (true, Some(container)) = (ours, c.id) {
                let force = bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(&container, Some(force)).await;
            }
        }
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => out.extend(walk(&path)),
            false => out.push(path),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_platform_admin_grants_host_paths_and_only_within_them() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_tenants(tmp.path()).await;
    let admin = authorized_client(&token_for(&fleet, "acme", Role::TenantAdmin).await).unwrap();
    let operator = authorized_client(&token_for(&fleet, "acme", Role::Operator).await).unwrap();
    let grant = json!({"hostPaths": ["/srv/acme"]});
    let (code, _) = call(
        &admin,
        &fleet,
        reqwest::Method::PUT,
        "acme",
        "/api/v1/workload-policy",
        Some(grant.clone()),
    )
    .await;
    assert_eq!(code, 403, "a tenant admin grants itself nothing");
    for (bad, why) in [
        (json!({"hostPaths": ["/"]}), "whole file system"),
        (json!({"hostPaths": ["/var/run"]}), "docker.sock"),
        (json!({"hostPaths": ["/srv/../etc"]}), "plain path"),
        (json!({"hostPaths": ["srv"]}), "absolute"),
    ] {
        let (code, problem) = call(
            &fleet.http,
            &fleet,
            reqwest::Method::PUT,
            "acme",
            "/api/v1/workload-policy",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(code, 422, "{bad}: {problem}");
        assert!(problem.to_string().contains(why), "{bad}: {problem}");
    }
    let (code, policy) = call(
        &fleet.http,
        &fleet,
        reqwest::Method::PUT,
        "acme",
        "/api/v1/workload-policy",
        Some(grant.clone()),
    )
    .await;
    assert_eq!((code, &policy["hostPaths"]), (200, &grant["hostPaths"]));
    assert_eq!(policy["clusterScoped"], false);
    let (code, seen) = call(
        &operator,
        &fleet,
        reqwest::Method::GET,
        "acme",
        "/api/v1/workload-policy",
        None,
    )
    .await;
    assert_eq!((code, &seen["hostPaths"]), (200, &grant["hostPaths"]));

    let sample =
        std::fs::read_to_string(repo_root().join("tests/fixtures/apps/web-oci/margo.yaml"))
            .unwrap();
    let with_volumes = |volumes: &str| {
        sample.replace(
            "            memory: 32Mi",
            &format!("            memory: 32Mi\n            volumes: {volumes}"),
        )
    };
    let (code, problem) = call(
        &operator,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/apps",
        Some(json!({ "description": with_volumes(r#"["/srv/globex:/d"]"#) })),
    )
    .await;
    assert_eq!(code, 422, "outside the grant: {problem}");
    assert!(
        problem.to_string().contains("allows only /srv/acme"),
        "{problem}"
    );
    let (code, problem) = call(
        &operator,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/apps",
        Some(json!({ "description": with_volumes(r#"["/srv/acme/cameras:/d:ro"]"#) })),
    )
    .await;
    assert_eq!(code, 201, "inside the grant: {problem}");
    // The other tenant was granted nothing.
    let globex = authorized_client(&token_for(&fleet, "globex", Role::Operator).await).unwrap();
    let (code, _) = call(
        &globex,
        &fleet,
        reqwest::Method::POST,
        "globex",
        "/api/v1/apps",
        Some(json!({ "description": with_volumes(r#"["/srv/acme/cameras:/d:ro"]"#) })),
    )
    .await;
    assert_eq!(code, 422);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tier_keeps_its_data_folder_to_itself() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let mode = |path: std::path::PathBuf| {
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    for folder in ["co", "lo", "en/node-1"] {
        assert_eq!(mode(tmp.path().join(folder)), 0o700, "{folder}");
    }
    for key in ["co/token-signing.key", "co/admin.token"] {
        assert_eq!(mode(tmp.path().join(key)), 0o600, "{key}");
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_signing_key_rotates_and_tokens_of_the_old_key_live_out_their_time() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = fleet_with_tenants(tmp.path()).await;
    let operator = authorized_client(&token_for(&fleet, "acme", Role::Operator).await).unwrap();
    let admin = authorized_client(&token_for(&fleet, "acme", Role::TenantAdmin).await).unwrap();
    let (code, _) = call(
        &admin,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/signing-keys",
        None,
    )
    .await;
    assert_eq!(code, 403, "a tenant admin rotates nothing");
    let admin_token = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join("co/admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let bootstrap = admin_token(tmp.path());
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let (code, rotation) = fleet
        .post("/api/v1/signing-keys", Value::Null)
        .await
        .unwrap();
    assert_eq!(code, 201, "{rotation}");
    assert_eq!(rotation["retired_kid"], kid(&bootstrap));
    // The bootstrap token was reissued with the new key; the old one still counts.
    let reissued = admin_token(tmp.path());
    assert_eq!(rotation["kid"], kid(&reissued));
    for token in [&bootstrap, &reissued] {
        let (code, _) = me(&authorized_client(token).unwrap(), &fleet).await;
        assert_eq!(code, 200);
    }
    let jwks: Value = fleet.get("/.well-known/jwks.json").await.unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [
            rotation["kid"].as_str().unwrap(),
            rotation["retired_kid"].as_str().unwrap()
        ]
    );
    // Tokens issued before work on, and after a restart too (the keys are kept).
    fleet.stop_co().await;
    fleet.start_co().await.unwrap();
    let (code, _) = me(&operator, &fleet).await;
    assert_eq!(code, 200, "an operator's token of the retired key");
    let jwks: Value = fleet.get("/.well-known/jwks.json").await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    let fresh = token_for(&fleet, "acme", Role::Viewer).await;
    assert_eq!(kid(&fresh), rotation["kid"].as_str().unwrap());
    fleet.shutdown().await;
}

/// A tar.gz of `entries`: (path, content, entry type, link target).
fn tar_gz(entries: &[(&str, &str, tar::EntryType, Option<&str>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, content, kind, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        match link {
            Some(target) => tar.append_link(&mut header, path, target).unwrap(),
            None => {
                // Written byte for byte: the tar crate refuses to write `..` itself.
                header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                header.set_cksum();
                tar.append(&header, content.as_bytes()).unwrap();
            }
        }
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_uploads_a_package_and_hostile_archives_are_refused() {
    use tar::EntryType::{Regular, Symlink};
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_tenants(tmp.path()).await;
    let operator = authorized_client(&token_for(&fleet, "acme", Role::Operator).await).unwrap();
    let upload = |body: Vec<u8>, content_type: &'static str| {
        let operator = operator.clone();
        let url = fleet.url("/api/v1/app-packages");
        async move {
            let r = operator
                .post(url)
                .header("EOS-Tenant", "acme")
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let folder = repo_root().join("config/apps/hello-wasm");
    let margo = std::fs::read_to_string(folder.join("margo.yaml")).unwrap();
    for (name, archive, why) in [
        (
            "escape",
            tar_gz(&[
                ("margo.yaml", margo.as_str(), Regular, None),
                ("../../outside", "x", Regular, None),
            ]),
            "absolute paths and .. are not allowed",
        ),
        (
            "link",
            tar_gz(&[
                ("margo.yaml", margo.as_str(), Regular, None),
                ("hello.wat", "", Symlink, Some("/etc/shadow")),
            ]),
            "only plain files and folders",
        ),
        ("not-gzip", b"margo".to_vec(), "not a gzip-compressed tar"),
        (
            "no-description",
            tar_gz(&[("readme.txt", "hi", Regular, None)]),
            "no ApplicationDescription",
        ),
    ] {
        let (code, problem) = upload(archive, "application/gzip").await;
        assert_eq!(code, 422, "{name}: {problem}");
        assert!(problem.to_string().contains(why), "{name}: {problem}");
    }
    let (code, _) = upload(b"{}".to_vec(), "application/json").await;
    assert_eq!(code, 415);
    assert!(
        !tmp.path().join("outside").exists(),
        "nothing was written outside the package"
    );
    let packages = std::fs::read_dir(tmp.path().join("co/packages"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(packages, 0, "a refused upload leaves nothing behind");
    // The sample package, packed as edgectl packs it, is taken from an operator.
    let wat = std::fs::read_to_string(folder.join("hello.wat")).unwrap();
    let mut entries = vec![
        ("margo.yaml", margo.as_str(), Regular, None),
        ("hello.wat", wat.as_str(), Regular, None),
    ];
    let resources: Vec<(String, String)> = std::fs::read_dir(folder.join("resources"))
        .map(|d| {
            d.map(|e| {
                let e = e.unwrap();
                (
                    format!("resources/{}", e.file_name().to_string_lossy()),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    for (path, text) in &resources {
        entries.push((path.as_str(), text.as_str(), Regular, None));
    }
    let (code, app) = upload(tar_gz(&entries), "application/gzip").await;
    assert_eq!(code, 201, "{app}");
    assert!(
        app["source"]
            .as_str()
            .unwrap()
            .starts_with("upload:sha256:"),
        "{app}"
    );
    fleet.shutdown().await;
}

/// A component naming a file of the device (`file://…`) runs nothing and quotes nothing of
/// the file unless the device's `en.toml` lets components name files under that folder; and
/// a device file that is not a plain file (`/dev/zero`) is never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_component_reads_no_file_of_the_device_outside_the_folders_it_allows() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("modules");
    std::fs::create_dir_all(&allowed).unwrap();
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET-4711 root:x:0:0\n").unwrap();
    // A link under the allowed folder leads to the secret: judged as it resolves.
    std::os::unix::fs::symlink(&secret, allowed.join("linked.wat")).unwrap();
    std::fs::copy(
        repo_root().join("config/apps/hello-wasm/hello.wat"),
        allowed.join("hello.wat"),
    )
    .unwrap();
    let roots = allowed.clone();
    let fleet = Fleet::start_with_tiers(tmp.path(), "site-1", &["node-1"], |_| {}, &|tier| {
        if let eos_tests::Tier::En(c) = tier {
            c.file_artifact_roots = vec![roots.clone()];
        }
    })
    .await
    .unwrap();
    fleet.await_online(&["node-1"]).await;
    let description = |version: &str, path: &std::path::Path| {
        std::fs::read_to_string(repo_root().join("config/apps/hello-wasm/margo.yaml"))
            .unwrap()
            .replace("version: 1.0.0", &format!("version: {version}"))
            .replace(
                "repository: ./hello.wat",
                &format!("repository: file://{}", path.display()),
            )
    };
    let mut outcomes = Vec::new();
    for (version, path) in [
        ("1.0.1", secret.clone()),
        ("1.0.2", allowed.join("linked.wat")),
        ("1.0.3", std::path::PathBuf::from("/dev/zero")),
        ("1.0.4", allowed.join("hello.wat")),
    ] {
        let (code, app) = fleet
            .post(
                "/api/v1/apps",
                json!({ "description": description(version, &path) }),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{app}");
        let (code, created) = fleet
            .post(
                "/api/v1/deployments",
                json!({"app_id": "com-eos-hello-wasm", "version": version, "site": "site-1"}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let view = eos_tests::eventually("the EN's answer", eos_tests::LIMIT, || async {
            let view = fleet.deployment(&id).await;
            (view["state"] == "installed" || view["state"] == "failed").then_some(view)
        })
        .await;
        outcomes.push((version, view));
    }
    for (version, view) in &outcomes[..3] {
        assert_eq!(view["state"], "failed", "{version}: {view}");
        assert!(
            view.to_string().contains("file_artifact_roots"),
            "{version}: {view}"
        );
        assert!(
            !view.to_string().contains("TOPSECRET"),
            "{version} quotes the file: {view}"
        );
    }
    assert_eq!(outcomes[3].1["state"], "installed", "{}", outcomes[3].1);
    fleet.shutdown().await;
}

/// A claim for a site nobody has makes the site the claimant's at once: another tenant can
/// neither claim it before its LO connects nor see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_binds_a_new_site_to_its_tenant_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with_tenants(tmp.path()).await;
    let acme = authorized_client(&token_for(&fleet, "acme", Role::Operator).await).unwrap();
    let globex = authorized_client(&token_for(&fleet, "globex", Role::Operator).await).unwrap();
    let claim = json!({"role": "lo"});
    let (code, answer) = call(
        &acme,
        &fleet,
        reqwest::Method::POST,
        "acme",
        "/api/v1/sites/plant-7/claims",
        Some(claim.clone()),
    )
    .await;
    assert_eq!(code, 201, "{answer}");
    let (code, answer) = call(
        &globex,
        &fleet,
        reqwest::Method::POST,
        "globex",
        "/api/v1/sites/plant-7/claims",
        Some(claim),
    )
    .await;
    assert_eq!(code, 404, "globex claimed acme's new site: {answer}");
    let (code, site) = call(
        &acme,
        &fleet,
        reqwest::Method::GET,
        "acme",
        "/api/v1/sites/plant-7",
        None,
    )
    .await;
    assert_eq!(code, 200, "{site}");
    assert_eq!(site["lo_connected"], false, "{site}");
    let (code, _) = call(
        &globex,
        &fleet,
        reqwest::Method::GET,
        "globex",
        "/api/v1/sites/plant-7",
        None,
    )
    .await;
    assert_eq!(code, 404);
    fleet.shutdown().await;
}

/// A host device reaches a container only where the tenant's grant and the device's en.toml
/// both allow it: the CO refuses the app without a grant, naming the field; the EN whose
/// ceiling allows no devices refuses it again; where both allow it, the container gets that
/// device and nothing gains privileges on exec. GPUs need a grant of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_reaches_a_container_only_where_both_grant_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_tiers(
        tmp.path(),
        "site-1",
        &["node-1", "node-2"],
        |_| {},
        &|tier| {
            if let eos_tests::Tier::En(c) = tier
                && c.device_id.ends_with("node-1")
            {
                c.workload_policy.devices = vec!["/dev/null".into()];
            }
        },
    )
    .await
    .unwrap();
    fleet.await_online(&["node-1", "node-2"]).await;
    let sample =
        std::fs::read_to_string(repo_root().join("tests/fixtures/apps/web-oci/margo.yaml"))
            .unwrap()
            .replace("            ports: [\"18765:80\"]\n", "");
    let with = |extra: &str| {
        sample.replace(
            "            memory: 32Mi",
            &format!("            memory: 32Mi\n            {extra}"),
        )
    };
    let device_app = with("devices: [\"/dev/null:/dev/eos-null\"]");
    let (code, problem) = fleet
        .post("/api/v1/apps", json!({ "description": device_app }))
        .await
        .unwrap();
    assert_eq!(code, 422, "{problem}");
    assert!(
        problem
            .to_string()
            .contains("deploymentProfiles[0].components[0].x-eos-extensions.container.devices[0]"),
        "{problem}"
    );
    let (code, problem) = fleet
        .post(
            "/api/v1/apps",
            json!({ "description": with("gpus: all").replace("version: 1.0.0", "version: 1.0.9") }),
        )
        .await
        .unwrap();
    assert_eq!(code, 422, "{problem}");
    assert!(
        problem.to_string().contains("GPUs are not allowed"),
        "{problem}"
    );
    let granted = fleet
        .http
        .put(fleet.url("/api/v1/workload-policy"))
        .json(&json!({"devices": ["/dev/null"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    let (code, app) = fleet
        .post("/api/v1/apps", json!({ "description": device_app }))
        .await
        .unwrap();
    assert_eq!(code, 201, "{app}");
    let mut ids = Vec::new();
    for host in ["node-1", "node-2"] {
        let (code, created) = fleet
            .post(
                "/api/v1/deployments",
                json!({"app_id": "com-eos-test-web-oci", "site": "site-1", "host": host}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let view = |id: String| {
        let fleet = &fleet;
        async move {
            eos_tests::eventually("the EN's answer", eos_tests::LIMIT, || async {
                let v = fleet.deployment(&id).await;
                (v["state"] == "installed" || v["state"] == "failed").then_some(v)
            })
            .await
        }
    };
    let (on_1, on_2) = (view(ids[0].clone()).await, view(ids[1].clone()).await);
    assert_eq!(on_1["state"], "installed", "{on_1}");
    assert_eq!(on_2["state"], "failed", "{on_2}");
    assert!(
        on_2.to_string().contains("allows no devices"),
        "node-2's en.toml allows no devices: {on_2}"
    );
    let (docker, containers) = eos_tests::all_containers().await.unwrap();
    let ours = containers
        .iter()
        .find(|c| c.names.iter().flatten().any(|n| n.contains(&ids[0][..8])))
        .and_then(|c| c.id.clone())
        .expect("node-1 runs the container");
    let inspected = docker.inspect_container(&ours, None).await.unwrap();
    // No GPU grant: even NVIDIA's runtime hands the container none.
    assert!(
        inspected
            .config
            .and_then(|c| c.env)
            .unwrap_or_default()
            .contains(&"NVIDIA_VISIBLE_DEVICES=void".to_owned())
    );
    let host = inspected.host_config.unwrap();
    let devices: Vec<(String, String)> = host
        .devices
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            (
                d.path_on_host.unwrap_or_default(),
                d.path_in_container.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        devices,
        [("/dev/null".to_owned(), "/dev/eos-null".to_owned())]
    );
    assert!(
        host.security_opt
            .unwrap_or_default()
            .contains(&"no-new-privileges".to_owned())
    );
    for id in &ids {
        fleet.undeploy(id).await.unwrap();
    }
    fleet.shutdown().await;
}
