//! Single sign-on through a real OpenID Connect provider (npm oidc-provider, Keycloak-shaped
//! claims). People log in with the authorization code flow and PKCE, through the same code as
//! `edgectl login`; the CO verifies the provider's RS256 access tokens by its discovered JWKS.
//! Realm roles, client roles, the tenant claim and tenant groups all map onto EOS principals, and
//! then the whole role × operation matrix holds for REST and GraphQL. A key rotation needs no
//! restart of the CO; a withdrawn key's tokens are refused; HMAC and unsigned tokens claiming
//! the provider's issuer are refused.

use crate::authz::check_matrix;
use base64::Engine;
use eos_domain::service::Role;
use eos_tests::oidc::IdentityProvider;
use eos_tests::{Fleet, authorized_client};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One account per role in tenant `acme`, in each of Keycloak's shapes (realm roles, client
/// roles, the tenant by claim or by group), another tenant's admin, a user with no EOS role
/// and an operator with no tenant.
fn accounts() -> Value {
    let mut accounts = serde_json::Map::new();
    for (i, role) in Role::ALL.iter().enumerate() {
        let account = match i % 3 {
            // A platform admin belongs to the platform tenant: no tenant claim names it.
            _ if *role == Role::PlatformAdmin => json!({"realm": [role.as_str()]}),
            0 => json!({"realm": [role.as_str(), "offline_access"], "tenant": "acme"}),
            1 => json!({"client": [role.as_str()], "tenant": "acme"}),
            _ => json!({"realm": [role.as_str()], "groups": ["/staff", "/tenants/acme"]}),
        };
        accounts.insert(format!("{}-acme", role.as_str()), account);
    }
    accounts.insert(
        "admin-globex".into(),
        json!({"client": ["tenant-admin"], "groups": ["/tenants/globex"]}),
    );
    accounts.insert(
        "nobody".into(),
        json!({"realm": ["default-roles-eos"], "tenant": "acme"}),
    );
    accounts.insert("drifter".into(), json!({"realm": ["operator"]}));
    // The provider names a platform admin of an ordinary tenant: the role counts for nothing.
    accounts.insert(
        "usurper".into(),
        json!({"realm": ["platform-admin"], "tenant": "acme"}),
    );
    Value::Object(accounts)
}

async fn fleet_with(provider: &IdentityProvider, dir: &std::path::Path, cache_secs: u64) -> Fleet {
    let mut oidc = provider.co_config();
    oidc.jwks_cache_secs = cache_secs;
    let fleet = Fleet::start_with_co(dir, "site-1", &[], |c| c.oidc = Some(oidc))
        .await
        .unwrap();
    for tenant in ["acme", "globex"] {
        let (code, body) = fleet
            .post("/api/v1/tenants", json!({"id": tenant, "name": tenant}))
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }
    fleet
}

/// `GET /api/v1/me` with `token`: the status and the answer.
async fn me(fleet: &Fleet, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(fleet.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn people_log_in_at_the_provider_and_every_role_is_allowed_and_refused_as_the_rules_say() {
    let provider = IdentityProvider::start(accounts(), 600).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with(&provider, tmp.path(), 300).await;

    // Clients find out where to log in without a token.
    let settings: Value = reqwest::get(fleet.url("/api/v1/auth/provider"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["kind"], "oidc");
    assert_eq!(settings["issuer"], provider.issuer.as_str());
    assert_eq!(settings["client_id"], "edgectl");

    let mut clients = Vec::new();
    for role in Role::ALL {
        let account = format!("{}-acme", role.as_str());
        let token = provider.token(&account).await.unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            header.alg,
            jsonwebtoken::Algorithm::RS256,
            "the provider's own token"
        );
        let (code, who) = me(&fleet, &token).await;
        assert_eq!(code, 200, "{account}: {who}");
        assert_eq!(who["subject"], account.as_str());
        let tenant = match role {
            Role::PlatformAdmin => "default",
            _ => "acme",
        };
        assert_eq!(who["tenant"], tenant, "{account}");
        assert_eq!(who["roles"], json!([role.as_str()]), "{account}");
        clients.push((role, authorized_client(&token).unwrap()));
    }
    let outsider = provider.token("admin-globex").await.unwrap();
    assert_eq!(me(&fleet, &outsider).await.1["tenant"], "globex");
    check_matrix(&fleet, &clients, &authorized_client(&outsider).unwrap()).await;

    // A person with no EOS role is known and may do nothing.
    let nobody = provider.token("nobody").await.unwrap();
    let (code, problem) = me(&fleet, &nobody).await;
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("nobody (roles: none of EOS's) may not read"),
        "{problem}"
    );
    // A platform admin of an ordinary tenant is no platform admin: not even a reader there.
    let usurper = provider.token("usurper").await.unwrap();
    let (code, problem) = me(&fleet, &usurper).await;
    assert_eq!(code, 403, "{problem}");
    let r = authorized_client(&usurper)
        .unwrap()
        .post(fleet.url("/api/v1/tenants"))
        .json(&json!({"id": "usurped", "name": "usurped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A token that names no tenant is refused, saying so.
    let (code, problem) = me(&fleet, &provider.token("drifter").await.unwrap()).await;
    assert_eq!(code, 401);
    assert!(
        problem["detail"].as_str().unwrap().contains("no tenant"),
        "{problem}"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_key_is_taken_up_at_once_and_forged_tokens_are_refused() {
    let mut provider = IdentityProvider::start(accounts(), 600).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_with(&provider, tmp.path(), 300).await;
    let before = provider.token("operator-acme").await.unwrap();
    assert_eq!(me(&fleet, &before).await.0, 200);

    // The provider rotates its key: a token signed with the new one works at once, and the
    // withdrawn key's token no longer does.
    provider.restart().await.unwrap();
    let after = provider.token("operator-acme").await.unwrap();
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_ne!(kid(&before), kid(&after));
    assert_eq!(me(&fleet, &after).await.0, 200);
    let (code, problem) = me(&fleet, &before).await;
    assert_eq!(code, 401);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not publish"),
        "{problem}"
    );

    // Tokens claiming the provider's issuer but not signed by its key.
    let parts: Vec<&str> = after.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["realm_access"]["roles"] = json!(["platform-admin"]);
    let jwks: Value = reqwest::get(format!("{}/jwks", provider.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_n = B64.decode(jwks["keys"][0]["n"].as_str().unwrap()).unwrap();
    let mut hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs256.kid = Some(kid(&after));
    let hmac = jsonwebtoken::encode(
        &hs256,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public_n),
    )
    .unwrap();
    let unsigned = format!(
        "{}.{}.",
        B64.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, kid(&after))),
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    for (what, token, why) in [
        ("HS256 with the public key", hmac, "algorithm"),
        ("alg none", unsigned, "cannot be read"),
        ("tampered", tampered, "signature"),
    ] {
        let (code, problem) = me(&fleet, &token).await;
        assert_eq!(code, 401, "{what}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(why), "{what}: {detail}");
    }
    fleet.shutdown().await;
}
