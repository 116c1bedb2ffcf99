//! Identity and authorization through the real CO. The tables in `eos_adapter_http::auth` name
//! every REST operation of the OpenAPI document and every GraphQL root field of the schema (and
//! nothing else). For each row and each role, a token of a user with that role (issued by
//! `POST /api/v1/tokens`) is allowed or refused (403) exactly as [`EXPECTED`] says, a table
//! written here from seed 004's roles (not read from the code's own rules), and a tenant admin
//! of another tenant is refused everywhere. Tokens that are expired, of another
//! issuer or audience, unsigned (`alg: none`), HMAC-signed with the public key, or tampered with
//! are refused with 401 and a problem document, as is a request with no token.

use base64::Engine;
use eos_adapter_http::auth::{Authority, GRAPHQL, REST};
use eos_domain::auth::{Action, Principal};
use eos_domain::ids::TenantId;
use eos_domain::service::Role;
use eos_tests::{Fleet, authorized_client, repo_root};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What each role may do, from seed 004 §2 and §3 (the personas and their use cases), by
/// action: platform admin, tenant admin, operator, security analyst, viewer, finops.
/// - read: every persona reads the tenant's catalog and fleet (the viewer's status board).
/// - read-operations: live monitoring, incidents and audit trails (UC 3.4, 3.5, 3.9) for
///   operators, analysts and viewers; FinOps sees cost views only.
/// - manage-apps, deploy, manage-fleet: the operator's use cases (UC 3.1–3.3, 3.6).
/// - manage-users: user management (UC 3.8) for tenant and platform admins.
/// - manage-security: signatures, key rotation, certificate revocation (UC 3.7) for the
///   security analyst and admins.
/// - manage-tenants: the platform admin's alone.
pub(crate) const EXPECTED: &[(Action, [bool; 6])] = &[
    (Action::Public, [true, true, true, true, true, true]),
    (Action::Read, [true, true, true, true, true, true]),
    (
        Action::ReadOperations,
        [true, true, true, true, true, false],
    ),
    (Action::ManageApps, [true, true, true, false, false, false]),
    (Action::Deploy, [true, true, true, false, false, false]),
    (Action::ManageFleet, [true, true, true, false, false, false]),
    (
        Action::ManageUsers,
        [true, true, false, false, false, false],
    ),
    (
        Action::ManageSecurity,
        [true, true, false, true, false, false],
    ),
    (
        Action::ManageTenants,
        [true, false, false, false, false, false],
    ),
];

/// Whether the seed lets `role` take `action`, as [`EXPECTED`] writes it.
pub(crate) fn expected(role: Role, action: Action) -> bool {
    let column = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Operator,
        Role::SecurityAnalyst,
        Role::Viewer,
        Role::Finops,
    ]
    .iter()
    .position(|r| *r == role)
    .unwrap();
    EXPECTED
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, row)| row[column])
        .unwrap()
}

/// A token for a new user of `tenant` with `role`, issued through the API by the admin.
pub(crate) async fn token_for(fleet: &Fleet, tenant: &str, role: Role) -> String {
    let email = format!("{}@{tenant}.test", role.as_str());
    let r = fleet
        .http
        .post(fleet.url("/api/v1/users"))
        .header("EOS-Tenant", tenant)
        .json(&json!({"email": email, "role": role.as_str()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user: Value = r.json().await.unwrap();
    let r = fleet
        .http
        .post(fleet.url("/api/v1/tokens"))
        .header("EOS-Tenant", tenant)
        .json(&json!({"user_id": user["id"], "ttl_secs": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let issued: Value = r.json().await.unwrap();
    assert_eq!(issued["roles"], json!([role.as_str()]));
    issued["token"].as_str().unwrap().to_owned()
}

/// The route with its parameters filled in with names that exist nowhere.
fn concrete(route: &str) -> String {
    route
        .replace("{tenant_id}", "acme")
        .replace("{site_id}", "site-x")
        .replace("{host}", "node-x")
        .replace("{deployment_id}", "00000000-0000-4000-8000-000000000000")
        .replace("{app_id}", "com-nowhere")
        .replace("{model_id}", "nowhere")
        .replace("{user_id}", "nobody")
        .replace("{kind}", "icon")
        .replace("{name}", "none.js")
}

/// The status of `method route` sent with `token` for tenant `acme`.
async fn status(http: &reqwest::Client, fleet: &Fleet, method: &str, route: &str) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http
        .request(method.clone(), fleet.url(&concrete(route)))
        .header("EOS-Tenant", "acme");
    if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
        request = request.json(&json!({}));
    }
    // Only the status is read: the event stream never ends.
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tables_name_every_operation_and_root_field_and_nothing_else() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    for (method, path) in &documented {
        assert!(
            REST.iter().any(|(m, r, _)| m == method && r == path),
            "{method} {path} is in the OpenAPI document but in no authorization rule"
        );
    }
    // Rows not in the document are the API's own pages, GraphQL and the keys.
    for (method, route, _) in REST {
        let undocumented = [
            "/graphql",
            "/graphiql",
            "/.well-known/",
            "/api/reference",
            "/api/v1/openapi.json",
        ];
        assert!(
            documented.iter().any(|(m, p)| m == method && p == route)
                || undocumented.iter().any(|u| route.starts_with(u)),
            "{method} {route} has a rule but no operation"
        );
    }
    let sdl = std::fs::read_to_string(repo_root().join("openapi/schema.graphql")).unwrap();
    let mut fields = Vec::new();
    for root in ["Query", "Mutation", "Subscription"] {
        let body = sdl
            .split(&format!("type {root} {{"))
            .nth(1)
            .unwrap()
            .split("\n}")
            .next()
            .unwrap();
        let mut in_description = false;
        for line in body
            .lines()
            .filter(|l| l.starts_with('\t') && !l.starts_with("\t\t"))
        {
            let text = line.trim();
            if let Some(rest) = text.strip_prefix("\"\"\"") {
                if !rest.ends_with("\"\"\"") {
                    in_description = !in_description;
                }
                continue;
            }
            if in_description || text.starts_with('"') {
                continue;
            }
            let name: String = line
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !name.is_empty() {
                fields.push(format!("{root}.{name}"));
            }
        }
    }
    assert!(fields.len() > 30, "{fields:?}");
    for field in &fields {
        assert!(
            GRAPHQL.iter().any(|(f, _)| f == field),
            "{field} is in no rule"
        );
    }
    for (field, _) in GRAPHQL {
        assert!(
            fields.contains(&field.to_string()),
            "{field} has a rule but no field"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_and_root_field_allows_and_refuses_each_role_as_the_rules_say() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &[]).await.unwrap();
    for tenant in ["acme", "globex"] {
        let (code, body) = fleet
            .post("/api/v1/tenants", json!({"id": tenant, "name": tenant}))
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }
    let mut clients = Vec::new();
    for role in Role::ALL {
        // Platform admins belong to the platform tenant and act for acme with EOS-Tenant.
        let tenant = match role {
            Role::PlatformAdmin => "default",
            _ => "acme",
        };
        let token = token_for(&fleet, tenant, role).await;
        clients.push((role, authorized_client(&token).unwrap()));
    }
    let outsider =
        authorized_client(&token_for(&fleet, "globex", Role::TenantAdmin).await).unwrap();
    check_matrix(&fleet, &clients, &outsider).await;
    fleet.shutdown().await;
}

/// Every REST row and GraphQL root field, tried as each role's client (for tenant `acme`), is
/// allowed or refused (403, never 401) exactly as [`EXPECTED`] says; `outsider` (another tenant's
/// admin) is refused everywhere and no token is 401 everywhere but on public routes.
pub(crate) async fn check_matrix(
    fleet: &Fleet,
    clients: &[(Role, reqwest::Client)],
    outsider: &reqwest::Client,
) {
    assert_eq!(clients.len(), Role::ALL.len());
    let anonymous = reqwest::Client::new();

    let mut checked = 0;
    for (method, route, action) in REST {
        for (role, http) in clients {
            let allowed = expected(*role, *action);
            let got = status(http, fleet, method, route).await;
            assert_eq!(
                got == 403,
                !allowed,
                "{method} {route} as {}: {got} (the rule says {})",
                role.as_str(),
                if allowed { "allow" } else { "refuse" }
            );
            assert_ne!(got, 401, "{method} {route} as {}", role.as_str());
            checked += 1;
        }
        let outside = status(outsider, fleet, method, route).await;
        let bare = status(&anonymous, fleet, method, route).await;
        if *action == Action::Public {
            assert!(outside != 403 && bare != 401, "{method} {route} is public");
        } else {
            assert_eq!(outside, 403, "{method} {route} by another tenant's admin");
            assert_eq!(bare, 401, "{method} {route} without a token");
        }
    }
    assert_eq!(checked, REST.len() * Role::ALL.len());

    for (field, action) in GRAPHQL {
        let (root, name) = field.split_once('.').unwrap();
        let query = format!("{} {{ {name} }}", root.to_lowercase());
        for (role, http) in clients {
            let r = http
                .post(fleet.url("/graphql"))
                .header("EOS-Tenant", "acme")
                .json(&json!({"query": query}))
                .send()
                .await
                .unwrap();
            let answer: Value = r.json().await.unwrap();
            let refused = answer["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["extensions"]["status"] == 403);
            let allowed = expected(*role, *action);
            assert_eq!(refused, !allowed, "{field} as {}: {answer}", role.as_str());
        }
        let r = outsider
            .post(fleet.url("/graphql"))
            .header("EOS-Tenant", "acme")
            .json(&json!({"query": query}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{field} by another tenant's admin");
    }
}

/// The CO's signing key, as its data directory keeps it.
fn signing_key(tmp: &std::path::Path) -> Vec<u8> {
    std::fs::read(tmp.join("co/token-signing.key")).unwrap()
}

/// Claims of an operator of the default tenant, as the CO would sign them, with `edit` applied.
fn claims(edit: impl FnOnce(&mut Value)) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    let mut c = json!({
        "iss": "eos-co", "aud": "eos", "sub": "mallory", "iat": now, "exp": now + 600,
        "tenant": "default", "roles": ["operator"],
    });
    edit(&mut c);
    c
}

fn sign_ed(key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        claims,
        &jsonwebtoken::EncodingKey::from_ed_der(key),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_are_refused_with_401_and_a_problem_document() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &[]).await.unwrap();
    let key = signing_key(tmp.path());
    // A token the test signs with the CO's key counts only for a stored user of that role.
    let (code, user) = fleet
        .post(
            "/api/v1/users",
            json!({"email": "mallory@default.test", "role": "operator"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{user}");
    let good = sign_ed(&key, &claims(|c| c["sub"] = user["id"].clone()));
    let nobody = sign_ed(&key, &claims(|_| {}));
    let promoted = sign_ed(
        &key,
        &claims(|c| {
            c["sub"] = user["id"].clone();
            c["roles"] = json!(["tenant-admin"]);
        }),
    );
    let jwks: Value = fleet.get("/.well-known/jwks.json").await.unwrap();
    let public = B64.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();

    let mut tampered = good.clone();
    {
        let parts: Vec<&str> = good.split('.').collect();
        let mut payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        payload["roles"] = json!(["platform-admin"]);
        let forged = B64.encode(serde_json::to_vec(&payload).unwrap());
        tampered = tampered.replace(parts[1], &forged);
    }
    let unsigned = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(serde_json::to_vec(&claims(|_| {})).unwrap())
    );
    let hmac_with_public_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(|_| {}),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    let other_issuer = Authority::from_pkcs8(&key, "https://elsewhere.test")
        .unwrap()
        .issue(
            &Principal {
                subject: "mallory".into(),
                tenant: TenantId::default_tenant(),
                roles: vec![Role::Operator],
            },
            jsonwebtoken::get_current_timestamp(),
            600,
        );
    let cases = [
        (
            "expired",
            sign_ed(
                &key,
                &claims(|c| c["exp"] = json!(c["iat"].as_u64().unwrap() - 3600)),
            ),
            "expired",
        ),
        ("another issuer", other_issuer, "issuer"),
        (
            "another audience",
            sign_ed(&key, &claims(|c| c["aud"] = json!("someone-else"))),
            "audience",
        ),
        ("alg none", unsigned, "cannot be read"),
        (
            "HS256 with the public key",
            hmac_with_public_key,
            "algorithm",
        ),
        ("tampered", tampered, "signature"),
        ("not a token", "not-a-token".to_owned(), "cannot be read"),
        ("a user that does not exist", nobody, "no longer exists"),
        ("a role the user does not have", promoted, "operator now"),
    ];
    let plain = reqwest::Client::new();
    // The good token works, so each refusal below is the token's fault.
    let ok = plain
        .get(fleet.url("/api/v1/me"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let me: Value = ok.json().await.unwrap();
    assert_eq!(me["roles"], json!(["operator"]));
    for (what, token, why) in cases {
        let r = plain
            .get(fleet.url("/api/v1/deployments"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{what}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{what}"
        );
        let problem: Value = r.json().await.unwrap();
        assert_eq!(
            problem["type"], "https://eos.dev/problems/unauthorized",
            "{what}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(why), "{what}: {detail}");
    }
    let none = plain
        .get(fleet.url("/api/v1/deployments"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    fleet.shutdown().await;
}
