//! Authentication and authorization of every request, in one place. A request carries a bearer
//! token: a JWT the CO signed (EdDSA only, its issuer and audience, not expired), or, where an
//! OpenID Connect provider is configured, an access token of that provider (an
//! [`ExternalIdentity`] the CO wires in); the token names the principal's tenant and roles. [`REST`] lists every operation with the action it
//! needs and [`GRAPHQL`] every root field; the middleware and the GraphQL guard here are the
//! only places that decide, by `eos_domain::auth`'s rules. A missing or bad token is 401, a
//! refusal 403, both problem documents.

use crate::problem::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use eos_domain::auth::{Action, Principal};
use eos_domain::ids::TenantId;
use eos_domain::service::{ControlPlane, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The audience of every token the CO issues and accepts.
pub const AUDIENCE: &str = "eos";
/// How far a token's times may be off the CO's clock.
pub const LEEWAY_SECS: u64 = 30;

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub tenant: String,
    pub roles: Vec<String>,
}

/// The CO's token authority: signs tokens with its current Ed25519 key and verifies them by
/// the key their `kid` names: the current one, or a retired one until the last token it signed
/// has expired (see [`Authority::rotate`]).
pub struct Authority {
    issuer: String,
    validation: Validation,
    keys: std::sync::RwLock<Keys>,
    /// Keeps the keys across restarts when they change (the CO's data directory).
    keeper: Option<Arc<dyn KeyKeeper>>,
    /// The external provider whose tokens are accepted too, when one is configured.
    external: Option<Arc<dyn ExternalIdentity>>,
    /// The certificate authority that enrols LOs and ENs, when the CO runs one.
    ca: Option<Arc<dyn crate::enrolment::CertificateAuthority>>,
}

/// The signing key and the retired keys still accepted.
struct Keys {
    current: SigningKey,
    retired: Vec<RetiredKey>,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key, raw (32 bytes), for the JWKS document.
    public_key: Vec<u8>,
}

/// A key the CO no longer signs with, accepted until `until` (seconds since the epoch): the
/// expiry of the longest-lived token it can have signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    pub kid: String,
    /// The raw Ed25519 public key, base64url.
    pub x: String,
    pub until: u64,
}

/// Keeps the authority's keys where the CO finds them at its next start.
pub trait KeyKeeper: Send + Sync {
    /// Stores `pkcs8` as the signing key and `retired` as the keys still accepted; the new key
    /// is used only once this succeeds.
    fn keep(&self, pkcs8: &[u8], retired: &[RetiredKey]) -> Result<(), String>;
    /// Called once the authority signs with the new key (the CO reissues its bootstrap token).
    fn rotated(&self, authority: &Authority);
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rotation {
    /// The key new tokens are signed with.
    pub kid: String,
    /// The key retired, and until when its tokens are still accepted (seconds since the epoch).
    pub retired_kid: String,
    pub retired_until: u64,
}

impl SigningKey {
    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| format!("not an Ed25519 key in PKCS#8: {e}"))?;
        let public_key = pair.public_key().as_ref().to_vec();
        Ok(Self {
            kid: kid_of(&public_key),
            encoding: EncodingKey::from_ed_der(pkcs8),
            decoding: DecodingKey::from_ed_der(&public_key),
            public_key,
        })
    }
}

/// A key's id: its public key's SHA-256, the first 12 bytes, base64url.
fn kid_of(public_key: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])
}

fn jwk(kid: &str, x: &str) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid,
        "x": x,
    })
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// An external identity provider (OpenID Connect) whose access tokens the CO accepts beside its
/// own; the CO wires one in from its `[oidc]` settings.
#[async_trait::async_trait]
pub trait ExternalIdentity: Send + Sync {
    /// The issuer (`iss`) of the provider's tokens.
    fn issuer(&self) -> &str;
    /// Where and how people log in, for `GET /api/v1/auth/provider`.
    fn login(&self) -> crate::identity::AuthProvider;
    /// The principal a token of the provider names, or why it is refused.
    async fn verify(&self, token: &str) -> Result<Principal, String>;
}

/// Why a token was refused (said in the 401's detail).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

impl Authority {
    /// An authority over the Ed25519 key in `pkcs8` (DER), naming itself `issuer`.
    pub fn from_pkcs8(pkcs8: &[u8], issuer: &str) -> Result<Self, String> {
        let current = SigningKey::from_pkcs8(pkcs8)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            issuer: issuer.to_owned(),
            validation,
            keys: std::sync::RwLock::new(Keys {
                current,
                retired: Vec::new(),
            }),
            keeper: None,
            external: None,
            ca: None,
        })
    }

    /// Accepts tokens of the `retired` keys too, each until its time (past ones are dropped).
    pub fn with_retired(self, retired: Vec<RetiredKey>) -> Self {
        let now = now_secs();
        self.write_keys().retired = retired.into_iter().filter(|r| r.until > now).collect();
        self
    }

    /// Keeps the keys with `keeper` whenever they change.
    pub fn with_keeper(mut self, keeper: Arc<dyn KeyKeeper>) -> Self {
        self.keeper = Some(keeper);
        self
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The retired keys still accepted.
    pub fn retired(&self) -> Vec<RetiredKey> {
        self.read_keys().retired.clone()
    }

    /// Signs with a new key from now on. The current key is retired: its tokens are accepted
    /// until the longest-lived one it can have signed expires ([`crate::identity::MAX_TTL_SECS`]
    /// from now), and the JWKS lists it until then. The keeper stores the keys first; when it
    /// cannot, nothing changes.
    pub fn rotate(&self) -> Result<Rotation, String> {
        let pkcs8 = Self::generate_key();
        let next = SigningKey::from_pkcs8(&pkcs8)?;
        let now = now_secs();
        let rotation = {
            let mut keys = self.write_keys();
            let until = now + crate::identity::MAX_TTL_SECS + LEEWAY_SECS;
            let retiring = RetiredKey {
                kid: keys.current.kid.clone(),
                x: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(&keys.current.public_key),
                until,
            };
            let mut retired: Vec<RetiredKey> = keys
                .retired
                .iter()
                .filter(|r| r.until > now)
                .cloned()
                .collect();
            retired.push(retiring.clone());
            if let Some(keeper) = &self.keeper {
                keeper.keep(&pkcs8, &retired)?;
            }
            keys.retired = retired;
            keys.current = next;
            Rotation {
                kid: keys.current.kid.clone(),
                retired_kid: retiring.kid,
                retired_until: retiring.until,
            }
        };
        if let Some(keeper) = &self.keeper {
            keeper.rotated(self);
        }
        Ok(rotation)
    }

    /// Accepts the access tokens of `provider` too.
    pub fn with_external(mut self, provider: Arc<dyn ExternalIdentity>) -> Self {
        self.external = Some(provider);
        self
    }

    /// Enrols LOs and ENs with `ca`.
    pub fn with_ca(mut self, ca: Arc<dyn crate::enrolment::CertificateAuthority>) -> Self {
        self.ca = Some(ca);
        self
    }

    /// The certificate authority, when the CO runs one.
    pub fn ca(&self) -> Option<Arc<dyn crate::enrolment::CertificateAuthority>> {
        self.ca.clone()
    }

    /// The external provider, when one is configured.
    pub fn external(&self) -> Option<&dyn ExternalIdentity> {
        self.external.as_deref()
    }

    /// The principal a bearer token names: the external provider's token when its issuer is the
    /// provider's, else one of the CO's own (see [`Authority::verify`]) whose user still stands
    /// in `users` ([`still_stands`]).
    pub async fn authenticate(
        &self,
        token: &str,
        users: &ControlPlane,
    ) -> Result<Authenticated, Refused> {
        if let Some(external) = &self.external
            && issuer_of(token).as_deref() == Some(external.issuer())
        {
            let principal = external.verify(token).await.map_err(Refused)?;
            return Ok(Authenticated {
                principal,
                own: false,
            });
        }
        let principal = self.verify(token)?;
        still_stands(users, &principal).await?;
        Ok(Authenticated {
            principal,
            own: true,
        })
    }

    /// A new Ed25519 key in PKCS#8 (DER), for the CO to keep.
    pub fn generate_key() -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("the system's random source works")
            .as_ref()
            .to_vec()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for `principal`, valid from `now` (seconds since the epoch) for `ttl_secs`,
    /// signed with the current key.
    pub fn issue(&self, principal: &Principal, now: u64, ttl_secs: u64) -> String {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.into(),
            sub: principal.subject.clone(),
            iat: now,
            exp: now + ttl_secs,
            tenant: principal.tenant.to_string(),
            roles: principal.roles.iter().map(|r| r.as_str().into()).collect(),
        };
        let keys = self.read_keys();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &keys.current.encoding)
            .expect("an Ed25519 key signs")
    }

    /// The principal a token names, when the token is this CO's, of the right audience,
    /// unexpired, signed with an allowed algorithm (EdDSA; `none` and HMAC are refused) by the
    /// key its `kid` names: the current one, or a retired one still accepted.
    pub fn verify(&self, token: &str) -> Result<Principal, Refused> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|e| Refused(describe(&e)))?
            .kid;
        let data = {
            let keys = self.read_keys();
            let now = now_secs();
            let decoding = match kid.as_deref() {
                None => keys.current.decoding.clone(),
                Some(k) if k == keys.current.kid => keys.current.decoding.clone(),
                // A retired key still accepted; any other kid is judged by the current key (and
                // its signature does not verify).
                Some(k) => match keys.retired.iter().find(|r| r.kid == k && r.until > now) {
                    Some(retired) => DecodingKey::from_ed_components(&retired.x)
                        .map_err(|e| Refused(format!("retired key {k}: {e}")))?,
                    None => keys.current.decoding.clone(),
                },
            };
            jsonwebtoken::decode::<Claims>(token, &decoding, &self.validation)
                .map_err(|e| Refused(describe(&e)))?
        };
        let claims = data.claims;
        let tenant = TenantId::parse(&claims.tenant)
            .map_err(|e| Refused(format!("the token's tenant: {e}")))?;
        let roles = claims
            .roles
            .iter()
            .map(|r| Role::parse(r).ok_or_else(|| Refused(format!("unknown role {r:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Principal {
            subject: claims.sub,
            tenant,
            roles,
        })
    }

    /// The JSON Web Key Set of the CO's signing keys (`GET /.well-known/jwks.json`): the current
    /// one first, then the retired ones still accepted.
    pub fn jwks(&self) -> serde_json::Value {
        let keys = self.read_keys();
        let now = now_secs();
        let current =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&keys.current.public_key);
        let mut list = vec![jwk(&keys.current.kid, &current)];
        list.extend(
            keys.retired
                .iter()
                .filter(|r| r.until > now)
                .map(|r| jwk(&r.kid, &r.x)),
        );
        serde_json::json!({ "keys": list })
    }
}

/// A verified caller, and whether its token is one of the CO's own (tied to a stored user,
/// checked again while a stream stays open) or the external provider's.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub own: bool,
}

/// How often an open stream (server-sent events, a GraphQL WebSocket) checks that its caller's
/// user still stands.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Refused unless the user a CO token names still exists with the role the token carries:
/// removing a user or changing its role ends what its tokens allow at once.
pub async fn still_stands(users: &ControlPlane, principal: &Principal) -> Result<(), Refused> {
    let user = users
        .token_user(&principal.tenant, &principal.subject)
        .await
        .map_err(|e| Refused(format!("cannot check the token's user: {e}")))?;
    match user {
        None => Err(Refused(format!(
            "the token's user {} of tenant {} no longer exists",
            principal.subject, principal.tenant
        ))),
        Some(u) if principal.roles != [u.role] => Err(Refused(format!(
            "the token's user {} is {} now: the token no longer counts, get a new one",
            principal.subject,
            u.role.as_str()
        ))),
        Some(_) => Ok(()),
    }
}

/// Resolves, with the reason, once `caller` no longer stands (never for a provider's token,
/// whose lifetime the provider decides): open streams end on it.
pub async fn revoked(users: Arc<ControlPlane>, caller: Authenticated) -> Refused {
    if !caller.own {
        return std::future::pending().await;
    }
    // A store that cannot answer three times in a row ends the stream too (fail closed).
    let mut unanswered = 0;
    loop {
        tokio::time::sleep(RECHECK).await;
        match still_stands(&users, &caller.principal).await {
            Ok(()) => unanswered = 0,
            Err(why) if why.0.starts_with("cannot check") && unanswered < 2 => unanswered += 1,
            Err(why) => return why,
        }
    }
}

/// The issuer a token claims, read without verifying anything (only to pick the verifier).
fn issuer_of(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// A person-readable reason for a refused token.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::InvalidIssuer => "the token is not of this CO (issuer)".into(),
        ErrorKind::InvalidAudience => format!("the token is not for {AUDIENCE} (audience)"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not allowed (EdDSA only)".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token lacks the {c} claim"),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        _ => format!("the token cannot be read: {e}"),
    }
}

/// Every REST operation (method, route) and the action it needs. The middleware refuses what
/// is not here (fail closed), and a test checks that every operation of the OpenAPI document is.
pub const REST: &[(&str, &str, Action)] = &[
    ("GET", "/api/v1/health", Action::Public),
    ("GET", "/api/v1/openapi.json", Action::Public),
    ("GET", "/api/v1/auth/provider", Action::Public),
    ("POST", "/api/v1/enrolments", Action::Public),
    ("POST", "/api/v1/renewals", Action::Public),
    ("GET", "/api/v1/ca", Action::Public),
    ("POST", "/api/v1/revocation-status", Action::Public),
    (
        "POST",
        "/api/v1/sites/{site_id}/claims",
        Action::ManageFleet,
    ),
    (
        "POST",
        "/api/v1/sites/{site_id}/revocations",
        Action::ManageSecurity,
    ),
    ("GET", "/api/v1/signature-policy", Action::Read),
    ("PUT", "/api/v1/signature-policy", Action::ManageSecurity),
    ("GET", "/api/v1/workload-policy", Action::Read),
    ("GET", "/api/v1/artifacts", Action::Read),
    ("GET", "/api/v1/artifacts/{digest}", Action::Read),
    ("PUT", "/api/v1/workload-policy", Action::ManageTenants),
    ("GET", "/api/reference", Action::Public),
    ("GET", "/.well-known/jwks.json", Action::Public),
    ("POST", "/api/v1/signing-keys", Action::ManageTenants),
    ("GET", "/graphiql", Action::Public),
    ("GET", "/graphiql/assets/{name}", Action::Public),
    // GraphQL needs a token of the tenant; each root field is checked against GRAPHQL.
    ("GET", "/graphql", Action::Read),
    ("POST", "/graphql", Action::Read),
    // The upgrade is open: the token comes in `connection_init` (browsers cannot set headers
    // on a WebSocket), checked there; each subscription's fields by `GRAPHQL`.
    ("GET", "/graphql/ws", Action::Public),
    ("GET", "/api/v1/me", Action::Read),
    ("POST", "/api/v1/tokens", Action::ManageUsers),
    ("GET", "/api/v1/tenants", Action::ManageTenants),
    ("POST", "/api/v1/tenants", Action::ManageTenants),
    ("GET", "/api/v1/tenants/{tenant_id}", Action::Read),
    ("GET", "/api/v1/users", Action::ManageUsers),
    ("POST", "/api/v1/users", Action::ManageUsers),
    ("GET", "/api/v1/users/{user_id}", Action::ManageUsers),
    ("PATCH", "/api/v1/users/{user_id}", Action::ManageUsers),
    ("DELETE", "/api/v1/users/{user_id}", Action::ManageUsers),
    ("GET", "/api/v1/apps", Action::Read),
    ("POST", "/api/v1/apps", Action::ManageApps),
    ("POST", "/api/v1/app-packages", Action::ManageApps),
    ("GET", "/api/v1/apps/{app_id}", Action::Read),
    (
        "GET",
        "/api/v1/apps/{app_id}/resources/{kind}",
        Action::Read,
    ),
    ("GET", "/api/v1/apps/{app_id}/compatibility", Action::Read),
    ("GET", "/api/v1/device-models", Action::Read),
    ("POST", "/api/v1/device-models", Action::ManageFleet),
    ("GET", "/api/v1/device-models/{model_id}", Action::Read),
    (
        "DELETE",
        "/api/v1/device-models/{model_id}",
        Action::ManageFleet,
    ),
    ("GET", "/api/v1/sites", Action::Read),
    ("GET", "/api/v1/sites/{site_id}", Action::Read),
    ("PATCH", "/api/v1/sites/{site_id}", Action::ManageFleet),
    (
        "GET",
        "/api/v1/sites/{site_id}/events",
        Action::ReadOperations,
    ),
    ("GET", "/api/v1/devices", Action::Read),
    ("GET", "/api/v1/devices/{site_id}/{host}", Action::Read),
    (
        "POST",
        "/api/v1/devices/{site_id}/{host}/cordon",
        Action::ManageFleet,
    ),
    (
        "POST",
        "/api/v1/devices/{site_id}/{host}/drain",
        Action::ManageFleet,
    ),
    (
        "POST",
        "/api/v1/devices/{site_id}/{host}/uncordon",
        Action::ManageFleet,
    ),
    ("GET", "/api/v1/deployments", Action::Read),
    ("POST", "/api/v1/deployments", Action::Deploy),
    ("POST", "/api/v1/deployments/preview", Action::Deploy),
    ("GET", "/api/v1/deployments/{deployment_id}", Action::Read),
    (
        "PATCH",
        "/api/v1/deployments/{deployment_id}",
        Action::Deploy,
    ),
    (
        "DELETE",
        "/api/v1/deployments/{deployment_id}",
        Action::Deploy,
    ),
    (
        "GET",
        "/api/v1/deployments/{deployment_id}/live",
        Action::ReadOperations,
    ),
    (
        "GET",
        "/api/v1/deployments/{deployment_id}/history",
        Action::ReadOperations,
    ),
    ("GET", "/api/v1/events", Action::ReadOperations),
];

/// Every GraphQL root field (`Type.field`) and the action it needs, as for the REST
/// operation it mirrors. A test checks that every root field of the schema is here.
pub const GRAPHQL: &[(&str, Action)] = &[
    ("Query.tenant", Action::Read),
    ("Query.apps", Action::Read),
    ("Query.app", Action::Read),
    ("Query.sites", Action::Read),
    ("Query.site", Action::Read),
    ("Query.siteEvents", Action::ReadOperations),
    ("Query.device", Action::Read),
    ("Query.devices", Action::Read),
    ("Query.deployments", Action::Read),
    ("Query.deployment", Action::Read),
    ("Query.preview", Action::Deploy),
    ("Query.live", Action::ReadOperations),
    ("Query.events", Action::ReadOperations),
    ("Query.deviceModels", Action::Read),
    ("Query.deviceModel", Action::Read),
    ("Query.compatibility", Action::Read),
    ("Query.tenants", Action::ManageTenants),
    ("Query.users", Action::ManageUsers),
    ("Query.workloadPolicy", Action::Read),
    ("Mutation.addApp", Action::ManageApps),
    ("Mutation.deploy", Action::Deploy),
    ("Mutation.updateDeployment", Action::Deploy),
    ("Mutation.undeploy", Action::Deploy),
    ("Mutation.registerDeviceModel", Action::ManageFleet),
    ("Mutation.updateSite", Action::ManageFleet),
    ("Mutation.cordonDevice", Action::ManageFleet),
    ("Mutation.drainDevice", Action::ManageFleet),
    ("Mutation.uncordonDevice", Action::ManageFleet),
    ("Mutation.removeDeviceModel", Action::ManageFleet),
    ("Mutation.createTenant", Action::ManageTenants),
    ("Mutation.addUser", Action::ManageUsers),
    ("Mutation.removeUser", Action::ManageUsers),
    ("Mutation.setUserRole", Action::ManageUsers),
    ("Mutation.setWorkloadPolicy", Action::ManageTenants),
    ("Subscription.events", Action::ReadOperations),
    ("Subscription.deploymentStatus", Action::ReadOperations),
    ("Subscription.nodes", Action::ReadOperations),
];

/// The action a REST operation needs; `None` for one not in [`REST`].
pub fn rest_action(method: &Method, route: &str) -> Option<Action> {
    REST.iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, a)| *a)
}

/// The action a GraphQL root field needs; `None` for one not in [`GRAPHQL`].
pub fn graphql_action(parent: &str, field: &str) -> Option<Action> {
    GRAPHQL
        .iter()
        .find(|(f, _)| f.split_once('.') == Some((parent, field)))
        .map(|(_, a)| *a)
}

/// The tenant a request acts for, after authorization: the principal's own, or the one its
/// `EOS-Tenant` header names when the principal may act there.
#[derive(Debug, Clone)]
pub struct ActingTenant(pub TenantId);

/// A 401 with the reason and `WWW-Authenticate: Bearer`.
pub fn unauthorized(detail: impl Into<String>) -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        detail,
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"eos\""),
    );
    response
}

/// A 403 with the reason.
pub fn forbidden(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
}

/// The bearer token of a request, if it has one.
fn bearer(request: &Request) -> Option<Result<&str, ()>> {
    let value = request.headers().get(header::AUTHORIZATION)?;
    let text = value.to_str().map_err(|_| ());
    Some(text.and_then(|t| {
        t.strip_prefix("Bearer ")
            .or_else(|| t.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(())
    }))
}

/// The middleware: finds the operation's action, verifies the token, settles the tenant,
/// checks the roles, and hands the handler the [`Principal`] and [`ActingTenant`].
pub async fn authorize(
    State((authority, users)): State<(Arc<Authority>, Arc<ControlPlane>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        // No route matched: the fallback answers 404 (or 405) and reveals nothing.
        return next.run(request).await;
    };
    let Some(action) = rest_action(request.method(), &route) else {
        return forbidden(format!(
            "{} {route} is in no authorization rule",
            request.method()
        ))
        .into_response();
    };
    if action == Action::Public {
        return next.run(request).await;
    }
    let token = match bearer(&request) {
        None => {
            return unauthorized("this operation needs a bearer token (Authorization: Bearer …)");
        }
        Some(Err(())) => {
            return unauthorized("the Authorization header is not \"Bearer <token>\"");
        }
        Some(Ok(token)) => token,
    };
    let caller = match authority.authenticate(token, &users).await {
        Ok(c) => c,
        Err(why) => return unauthorized(why.to_string()),
    };
    let principal = caller.principal.clone();
    let tenant = match request.headers().get(crate::TENANT_HEADER) {
        None => principal.tenant.clone(),
        Some(value) => match value
            .to_str()
            .ok()
            .and_then(|v| TenantId::parse(v.trim()).ok())
        {
            Some(t) => t,
            None => {
                return ApiError::bad_request(format!(
                    "{} {value:?} is not a tenant id (lowercase letters, digits and '-', 1 to 63)",
                    crate::TENANT_HEADER
                ))
                .into_response();
            }
        },
    };
    if let Err(denied) = principal.may(action, &tenant) {
        return forbidden(denied.to_string()).into_response();
    }
    request.extensions_mut().insert(ActingTenant(tenant));
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A first look at each operation before anything runs, so that a refused field answers 403
/// even where the document would fail validation: every root field the document selects,
/// through any nesting of fragments, is judged by [`GRAPHQL`] (introspection fields aside), and
/// a document the walk cannot follow to its end is refused. [`RootGuard`] judges each field
/// again as it is resolved; this walk only refuses earlier, it never lets anything through.
pub struct GraphQlPrecheck;

/// How deep fragments may nest inside an operation's root selection before the walk refuses
/// the document (no real query comes near it).
pub const MAX_FRAGMENT_NESTING: usize = 32;

/// Root fields that ask devices over their links (each one a round trip to every device that
/// runs a deployment).
pub const FANS_OUT: &[&str] = &["live"];
/// How many of [`FANS_OUT`] one document may select, under any aliases.
pub const MAX_FAN_OUT_FIELDS: usize = 4;

impl async_graphql::extensions::ExtensionFactory for GraphQlPrecheck {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(GraphQlPrecheck)
    }
}

/// A GraphQL error with the problem type `forbidden` and status 403 in its extensions.
fn forbidden_gql(detail: String) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(detail, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("type", format!("{}forbidden", crate::problem::TYPE_BASE));
    extensions.set("status", 403);
    error.extensions = Some(extensions);
    error
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for GraphQlPrecheck {
    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<async_graphql::parser::types::ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let (Some(principal), Some(tenant)) =
            (ctx.data_opt::<Principal>(), ctx.data_opt::<TenantId>())
        else {
            return Err(forbidden_gql("no verified principal".into()));
        };
        let fields = root_fields(&document).map_err(forbidden_gql)?;
        let asking_devices = fields
            .iter()
            .filter(|(_, f)| FANS_OUT.contains(&f.as_str()))
            .count();
        if asking_devices > MAX_FAN_OUT_FIELDS {
            let mut error = async_graphql::ServerError::new(
                format!(
                    "the document asks devices live {asking_devices} times (live, under any \
                     alias); at most {MAX_FAN_OUT_FIELDS} per request"
                ),
                None,
            );
            let mut extensions = async_graphql::ErrorExtensionValues::default();
            extensions.set("type", format!("{}bad-request", crate::problem::TYPE_BASE));
            extensions.set("status", 400);
            error.extensions = Some(extensions);
            return Err(error);
        }
        for (root, field) in fields {
            if field.starts_with("__") {
                continue; // introspection: `__schema`, `__type`, `__typename`
            }
            let Some(action) = graphql_action(root, &field) else {
                continue; // no such field: validation answers it; the guard never sees it run
            };
            if let Err(denied) = principal.may(action, tenant) {
                return Err(forbidden_gql(denied.to_string()));
            }
        }
        Ok(document)
    }
}

/// The root fields an executable document selects, with their operation's root type
/// (`Query`, `Mutation`, `Subscription`), through inline fragments and fragment spreads to any
/// depth up to [`MAX_FRAGMENT_NESTING`]; deeper, or a spread of a fragment already being
/// followed (a cycle), is an error, never a field skipped.
fn root_fields(
    document: &async_graphql::parser::types::ExecutableDocument,
) -> Result<Vec<(&'static str, String)>, String> {
    use async_graphql::parser::types::{OperationType, Selection, SelectionSet};
    fn walk<'d>(
        set: &'d SelectionSet,
        document: &'d async_graphql::parser::types::ExecutableDocument,
        root: &'static str,
        out: &mut Vec<(&'static str, String)>,
        following: &mut Vec<&'d str>,
    ) -> Result<(), String> {
        if following.len() > MAX_FRAGMENT_NESTING {
            return Err(format!(
                "fragments nest deeper than {MAX_FRAGMENT_NESTING} at the root of the operation"
            ));
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push((root, f.node.name.node.to_string())),
                Selection::InlineFragment(f) => {
                    following.push("");
                    walk(&f.node.selection_set.node, document, root, out, following)?;
                    following.pop();
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    if following.contains(&name) {
                        return Err(format!("fragment {name} spreads itself"));
                    }
                    let fragment = document
                        .fragments
                        .get(&s.node.fragment_name.node)
                        .ok_or_else(|| format!("fragment {name} is not defined"))?;
                    following.push(name);
                    walk(
                        &fragment.node.selection_set.node,
                        document,
                        root,
                        out,
                        following,
                    )?;
                    following.pop();
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for (_, operation) in document.operations.iter() {
        let root = match operation.node.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => "Subscription",
        };
        walk(
            &operation.node.selection_set.node,
            document,
            root,
            &mut out,
            &mut Vec::new(),
        )?;
    }
    Ok(out)
}

/// The guard on every root field of the GraphQL schema (`#[Object(guard = …)]` on `Query` and
/// `Mutation`, `#[Subscription(guard = …)]` on `Subscription`): async-graphql runs it before
/// each root resolver however the field was reached (inline or named fragments, aliases,
/// batches, subscriptions over WebSocket), so no walk of the document can be outrun. It judges
/// by [`GRAPHQL`] and refuses what it cannot judge (fail closed): a field with no row, a request
/// without a verified principal.
pub struct RootGuard(pub &'static str);

impl RootGuard {
    pub const QUERY: Self = Self("Query");
    pub const MUTATION: Self = Self("Mutation");
    pub const SUBSCRIPTION: Self = Self("Subscription");
}

/// The guard on a nested field that shows more than the root field reaching it needs (a
/// deployment's history below `deployments`): the caller needs this action too.
pub struct Needs(pub Action);

impl async_graphql::Guard for Needs {
    async fn check(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<()> {
        use async_graphql::ErrorExtensions;
        let (Some(principal), Some(tenant)) =
            (ctx.data_opt::<Principal>(), ctx.data_opt::<TenantId>())
        else {
            return Err(async_graphql::Error::new("no verified principal"));
        };
        principal.may(self.0, tenant).map_err(|denied| {
            async_graphql::Error::new(denied.to_string()).extend_with(|_, e| {
                e.set("type", format!("{}forbidden", crate::problem::TYPE_BASE));
                e.set("status", 403);
            })
        })
    }
}

impl async_graphql::Guard for RootGuard {
    async fn check(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<()> {
        let field = ctx.item.node.name.node.as_str();
        let refuse = |detail: String| {
            use async_graphql::ErrorExtensions;
            async_graphql::Error::new(detail).extend_with(|_, e| {
                e.set("type", format!("{}forbidden", crate::problem::TYPE_BASE));
                e.set("status", 403);
            })
        };
        let (Some(principal), Some(tenant)) =
            (ctx.data_opt::<Principal>(), ctx.data_opt::<TenantId>())
        else {
            return Err(refuse("no verified principal".into()));
        };
        let Some(action) = graphql_action(self.0, field) else {
            return Err(refuse(format!(
                "{}.{field} is in no authorization rule",
                self.0
            )));
        };
        principal
            .may(action, tenant)
            .map_err(|denied| refuse(denied.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> Authority {
        Authority::from_pkcs8(&Authority::generate_key(), "https://co.test").unwrap()
    }

    fn operator() -> Principal {
        Principal {
            subject: "u1".into(),
            tenant: TenantId::parse("acme").unwrap(),
            roles: vec![Role::Operator],
        }
    }

    #[test]
    fn a_token_it_issued_verifies_and_names_the_principal() {
        let a = authority();
        let now = jsonwebtoken::get_current_timestamp();
        let token = a.issue(&operator(), now, 60);
        assert_eq!(a.verify(&token).unwrap(), operator());
    }

    #[test]
    fn another_authority_s_token_is_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let token = authority().issue(&operator(), now, 60);
        let refused = authority().verify(&token).unwrap_err();
        assert_eq!(refused.to_string(), "the token's signature does not verify");
    }

    #[test]
    fn the_jwks_names_the_key_the_tokens_name() {
        let a = authority();
        let token = a.issue(&operator(), jsonwebtoken::get_current_timestamp(), 60);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), a.jwks()["keys"][0]["kid"].as_str());
        assert_eq!(a.jwks()["keys"][0]["crv"], "Ed25519");
    }

    #[test]
    fn a_rotated_key_s_tokens_work_until_their_time_and_no_longer() {
        let a = authority();
        let now = jsonwebtoken::get_current_timestamp();
        let before = a.issue(&operator(), now, 60);
        let old_kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();
        let rotation = a.rotate().unwrap();
        assert_eq!(rotation.retired_kid, old_kid);
        assert!(rotation.retired_until >= now + crate::identity::MAX_TTL_SECS);
        let after = a.issue(&operator(), now, 60);
        assert_eq!(
            jsonwebtoken::decode_header(&after).unwrap().kid.unwrap(),
            rotation.kid
        );
        assert_eq!(
            a.verify(&before).unwrap(),
            operator(),
            "the old key still counts"
        );
        assert_eq!(a.verify(&after).unwrap(), operator());
        assert_eq!(a.jwks()["keys"].as_array().unwrap().len(), 2);
        // Once its time is up, the retired key counts for nothing and leaves the JWKS.
        let mut expired = a.retired();
        expired[0].until = now - 1;
        let a = a.with_retired(expired);
        let refused = a.verify(&before).unwrap_err().to_string();
        assert_eq!(refused, "the token's signature does not verify");
        assert_eq!(a.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn every_graphql_row_names_a_root_type() {
        for (field, _) in GRAPHQL {
            let (parent, _) = field.split_once('.').unwrap();
            assert!(
                ["Query", "Mutation", "Subscription"].contains(&parent),
                "{field}"
            );
        }
    }
}
