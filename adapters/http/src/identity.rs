//! Who am I, where to log in, tokens for users, and the CO's signing keys: `GET /api/v1/me`,
//! `GET /api/v1/auth/provider`, `POST /api/v1/tokens`, `GET /.well-known/jwks.json` and
//! `POST /api/v1/signing-keys` (rotation).

use crate::auth::Authority;
use crate::problem::{ApiError, ProblemDocument};
use crate::routes::{Shared, body};
use crate::tenancy::TenantScope;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use eos_domain::auth::Principal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// How long a user's token lives unless asked otherwise: a working day.
pub const DEFAULT_TTL_SECS: u64 = 12 * 3600;
/// The longest a user's token may live.
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

type IdentityState = (Shared, Arc<Authority>);

pub(crate) fn router(control: Shared, authority: Arc<Authority>) -> Router {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/auth/provider", get(provider))
        .route("/api/v1/tokens", post(issue_token))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v1/signing-keys", post(rotate_signing_key))
        .with_state((control, authority))
}

/// The caller as its token names it, and the tenant this request acts for.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub subject: String,
    /// The tenant the caller belongs to.
    pub tenant: String,
    /// The tenant this request acts for (the caller's own, or the one `EOS-Tenant` names).
    pub acting_for: String,
    pub roles: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "identity", responses((status = 200, body = Me)))]
pub async fn me(
    Extension(principal): Extension<Principal>,
    TenantScope(tenant): TenantScope,
) -> Json<Me> {
    Json(Me {
        subject: principal.subject,
        tenant: principal.tenant.to_string(),
        acting_for: tenant.to_string(),
        roles: principal.roles.iter().map(|r| r.as_str().into()).collect(),
    })
}

/// Who issues the tokens this CO accepts from people, and how to log in there.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthProvider {
    /// `oidc`: people log in at an OpenID Connect provider (`edgectl login`); `builtin`: the
    /// CO issues every token itself (`edgectl user token`, or the bootstrap `admin.token`).
    pub kind: String,
    /// The issuer (`iss`) of the tokens.
    pub issuer: String,
    /// The public client to log in with (`oidc` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The scopes to ask for (`oidc` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The resource indicator (RFC 8707) to ask tokens for, when the provider wants one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Where people log in (no token needed: this is how a client finds out).
#[utoipa::path(get, path = "/api/v1/auth/provider", tag = "identity", responses((status = 200, body = AuthProvider)))]
pub async fn provider(State(state): State<IdentityState>) -> Json<AuthProvider> {
    let authority = &state.1;
    Json(match authority.external() {
        Some(external) => external.login(),
        None => AuthProvider {
            kind: "builtin".into(),
            issuer: authority.issuer().into(),
            client_id: None,
            scopes: Vec::new(),
            resource: None,
        },
    })
}

/// Issue a token for one of the tenant's users.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    pub user_id: String,
    /// Seconds the token lives (default 43,200: 12 hours; at most 30 days).
    pub ttl_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct IssuedToken {
    /// The bearer token (a JWT signed by the CO).
    pub token: String,
    pub subject: String,
    pub tenant: String,
    pub roles: Vec<String>,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

/// A token for one of the tenant's users, with the user's role: what `edgectl login` gets
/// when no single sign-on provider is configured, and what scripts run with. Nobody mints a
/// token for a user whose role is above their own. The token works while its user exists with
/// that role.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "identity", request_body = IssueToken, responses((status = 201, body = IssuedToken), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn issue_token(
    State((control, authority)): State<IdentityState>,
    Extension(actor): Extension<Principal>,
    TenantScope(tenant): TenantScope,
    payload: Result<Json<IssueToken>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let req = body(payload)?;
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "Validation Failed",
            format!("ttl_secs: {ttl} is not between 1 and {MAX_TTL_SECS}"),
        ));
    }
    let user = control
        .user_for(
            &actor,
            &tenant,
            &req.user_id,
            "mint a token for a user who is",
        )
        .await?;
    let principal = Principal {
        subject: user.id.clone(),
        tenant: user.tenant.clone(),
        roles: vec![user.role],
    };
    let now = jsonwebtoken::get_current_timestamp();
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            token: authority.issue(&principal, now, ttl),
            subject: principal.subject,
            tenant: principal.tenant.to_string(),
            roles: vec![user.role.as_str().into()],
            expires_at: now + ttl,
        }),
    ))
}

async fn jwks(State((_, authority)): State<IdentityState>) -> Json<serde_json::Value> {
    Json(authority.jwks())
}

/// Signs tokens with a new key from now on (platform admins). Tokens signed with the key it
/// retires keep working until the longest-lived of them expires (30 days), and the JWKS lists
/// it until then; the bootstrap admin token is reissued with the new key.
#[utoipa::path(post, path = "/api/v1/signing-keys", tag = "identity", responses((status = 201, body = crate::auth::Rotation), (status = 500, body = ProblemDocument)))]
pub async fn rotate_signing_key(
    State(state): State<IdentityState>,
) -> Result<(StatusCode, Json<crate::auth::Rotation>), ApiError> {
    let rotation = state.1.rotate().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
            format!("the new signing key could not be kept: {e}"),
        )
    })?;
    tracing::warn!(kid = %rotation.kid, retired = %rotation.retired_kid, "rotated the token signing key");
    Ok((StatusCode::CREATED, Json(rotation)))
}
