//! Enrolling LOs and ENs: an operator makes a claim token for a site
//! (`POST /api/v1/sites/{site_id}/claims`), and the new device presents it once with its
//! certificate signing request (`POST /api/v1/enrolments`, no bearer token: the claim token is
//! the credential). The certificate names the identity the claim was for, whatever the request
//! asked; the device's private key never leaves it. The CO wires in its certificate authority
//! as a [`CertificateAuthority`].

use crate::problem::{ApiError, ProblemDocument};
use crate::routes::{Shared, body};
use crate::tenancy::TenantScope;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use eos_domain::service::{ClaimRequest, ClaimRole, split_claim_token};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// The CO's certificate authority, as the enrolment endpoint uses it.
pub trait CertificateAuthority: Send + Sync {
    /// A certificate for the key that signed `csr_pem`, naming the LO of `tenant`'s `site`
    /// (`host` none) or its EN `host`, and, for an LO, the server `names` it asked for; with
    /// its end of validity (RFC 3339).
    fn issue(
        &self,
        csr_pem: &str,
        tenant: &str,
        site: &str,
        host: Option<&str>,
        names: &[String],
    ) -> Result<(String, String), String>;
    /// The next certificate for the holder of `certificate_pem` and its key (`proof`: the
    /// request signed with it), naming the same identity.
    fn renew(
        &self,
        certificate_pem: &str,
        csr_pem: &str,
        proof: &[u8],
        names: &[String],
    ) -> Result<Renewal, String>;
    /// The CA certificate every tier trusts (PEM).
    fn ca_pem(&self) -> String;
    /// The SHA-256 of the CA certificate's DER (64 hex digits), which claim tokens carry.
    fn fingerprint(&self) -> String;
    /// Refused unless `csr_pem` is a request the CA could sign (checked before a claim token
    /// is spent on it).
    fn check_request(&self, csr_pem: &str) -> Result<(), String>;
    /// Who holds `certificate_pem` (tenant, site, host): refused unless the CA issued it, it
    /// is unexpired, and `proof` is `message` signed with its key.
    fn holder(
        &self,
        certificate_pem: &str,
        message: &[u8],
        proof: &[u8],
    ) -> Result<(String, String, Option<String>), String>;
}

/// A renewed certificate and what the caller checks it against.
pub struct Renewal {
    /// The tenant the certificate names.
    pub tenant: String,
    pub site: String,
    pub host: Option<String>,
    pub certificate_pem: String,
    pub expires_at: String,
    /// When the certificate it replaces was issued (RFC 3339): a revocation since refuses it.
    pub previous_issued_at: String,
}

type EnrolState = (Shared, Option<Arc<dyn CertificateAuthority>>);

pub(crate) fn router(control: Shared, ca: Option<Arc<dyn CertificateAuthority>>) -> Router {
    Router::new()
        .route("/api/v1/sites/{site_id}/claims", post(create_claim))
        .route("/api/v1/enrolments", post(enrol))
        .route("/api/v1/sites/{site_id}/revocations", post(revoke))
        .route("/api/v1/renewals", post(renew))
        .route("/api/v1/ca", axum::routing::get(certificate_authority))
        .route("/api/v1/revocation-status", post(revocation_status))
        .with_state((control, ca))
}

/// A claim token to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClaim {
    /// `lo` (the site's local orchestrator) or `en` (one edge node).
    pub role: String,
    /// The EN's host name (required for `en`).
    pub host: Option<String>,
    /// Seconds the token lives (default 3,600; at most 86,400).
    pub ttl_secs: Option<u64>,
}

/// The CO's certificate authority, which every tier trusts.
#[derive(Serialize, ToSchema)]
pub struct CaCertificate {
    /// PEM.
    pub certificate: String,
    /// The SHA-256 of its DER, 64 hex digits (what claim tokens end in).
    pub fingerprint: String,
}

/// The CA certificate: public, so a device checks it against its claim token's fingerprint
/// before it sends the token anywhere.
#[utoipa::path(get, path = "/api/v1/ca", tag = "enrolment", responses((status = 200, body = CaCertificate), (status = 404, body = ProblemDocument)))]
pub async fn certificate_authority(
    State(state): State<EnrolState>,
) -> Result<Json<CaCertificate>, ApiError> {
    let ca = state.1.ok_or_else(no_ca)?;
    Ok(Json(CaCertificate {
        certificate: ca.ca_pem(),
        fingerprint: ca.fingerprint(),
    }))
}

/// A claim token, shown once.
#[derive(Serialize, ToSchema)]
pub struct Claim {
    /// Give it to the new LO or EN (`claim_token` in its config); it works once. It ends in
    /// the CO's CA fingerprint (`.<64 hex>`): the device enrols with no CO of another CA.
    pub token: String,
    pub site: String,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub expires_at: String,
}

/// Makes a single-use claim token for a new LO or EN of the site.
#[utoipa::path(post, path = "/api/v1/sites/{site_id}/claims", tag = "enrolment", params(("site_id" = String, Path)), request_body = CreateClaim, responses((status = 201, body = Claim), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn create_claim(
    State(state): State<EnrolState>,
    TenantScope(tenant): TenantScope,
    Path(site): Path<String>,
    payload: Result<Json<CreateClaim>, JsonRejection>,
) -> Result<(StatusCode, Json<Claim>), ApiError> {
    let req = body(payload)?;
    let (token, record) = state
        .0
        .create_claim(
            &tenant,
            &site,
            ClaimRequest {
                role: req.role,
                host: req.host,
                ttl_secs: req.ttl_secs,
            },
        )
        .await?;
    let token = match &state.1 {
        Some(ca) => format!("{token}.{}", ca.fingerprint()),
        None => token,
    };
    Ok((
        StatusCode::CREATED,
        Json(Claim {
            token,
            site: record.site.to_string(),
            role: record.role.as_str().into(),
            host: record.host,
            expires_at: record.expires_at,
        }),
    ))
}

/// What to revoke.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// The EN's host name; none revokes the site's LO.
    pub host: Option<String>,
}

/// A revocation.
#[derive(Serialize, ToSchema)]
pub struct Revoked {
    pub site: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Certificates issued until then are refused.
    pub revoked_at: String,
}

/// Revokes the certificates of a site's LO, or of one of its ENs: refused from now on, and cut
/// off at once when connected. The device can enrol again with a new claim token.
#[utoipa::path(post, path = "/api/v1/sites/{site_id}/revocations", tag = "enrolment", params(("site_id" = String, Path)), request_body = Revoke, responses((status = 201, body = Revoked), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn revoke(
    State(state): State<EnrolState>,
    TenantScope(tenant): TenantScope,
    Path(site): Path<String>,
    payload: Result<Json<Revoke>, JsonRejection>,
) -> Result<(StatusCode, Json<Revoked>), ApiError> {
    let req = body(payload)?;
    let r = state.0.revoke(&tenant, &site, req.host).await?;
    Ok((
        StatusCode::CREATED,
        Json(Revoked {
            site: r.site.to_string(),
            host: r.host,
            revoked_at: r.revoked_at,
        }),
    ))
}

/// A new device's enrolment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrol {
    /// The claim token.
    pub token: String,
    /// A PKCS#10 certificate signing request (PEM) for the key the device made.
    pub csr: String,
    /// For an LO: the DNS names and addresses its ENs reach it at.
    #[serde(default)]
    pub names: Vec<String>,
}

/// The device's certificate.
#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    /// PEM.
    pub certificate: String,
    /// The CA certificate to trust (PEM).
    pub ca: String,
    pub site: String,
    /// The EN's host (none for an LO).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub expires_at: String,
}

/// The refusal of a certificate of `tenant` for `site` when the site now belongs to another
/// tenant (it may have changed hands since the certificate was issued).
async fn site_of_other_tenant(
    control: &Shared,
    site: &eos_domain::ids::SiteId,
    tenant: &str,
) -> Result<Option<Response>, ApiError> {
    let known = control
        .store()
        .get_site(site)
        .await
        .map_err(|e| ApiError::from(eos_domain::service::ServiceError::from(e)))?;
    Ok(known.filter(|k| k.tenant.as_str() != tenant).map(|_| {
        crate::auth::unauthorized(format!(
            "site {site} belongs to another tenant than the certificate's ({tenant})"
        ))
    }))
}

/// The most bytes of a signing request taken.
const MAX_CSR: usize = 16 * 1024;

/// Enrols a new LO or EN: spends its claim token and signs its request.
#[utoipa::path(post, path = "/api/v1/enrolments", tag = "enrolment", request_body = Enrol, responses((status = 201, body = Enrolled), (status = 401, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn enrol(
    State(state): State<EnrolState>,
    payload: Result<Json<Enrol>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (control, ca) = state;
    let req = body(payload)?;
    let ca = ca.ok_or_else(no_ca)?;
    if req.csr.len() > MAX_CSR || !req.csr.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err(invalid(
            "csr",
            format!("not a PEM certificate signing request of at most {MAX_CSR} bytes"),
        ));
    }
    // A malformed request is refused before the claim is spent: the device may try again.
    ca.check_request(&req.csr)
        .map_err(|why| invalid("csr", why))?;
    let (secret, fingerprint) = split_claim_token(&req.token);
    if fingerprint.is_some_and(|f| f != ca.fingerprint()) {
        return Ok(crate::auth::unauthorized(
            "the claim token names another CA than this CO's: it was made by another CO",
        ));
    }
    let claim = match control.redeem_claim(secret).await? {
        Ok(claim) => claim,
        Err(refused) => return Ok(crate::auth::unauthorized(refused.to_string())),
    };
    let names = match claim.role {
        ClaimRole::Lo => req.names,
        ClaimRole::En => Vec::new(),
    };
    let (certificate, expires_at) = ca
        .issue(
            &req.csr,
            claim.tenant.as_str(),
            claim.site.as_str(),
            claim.host.as_deref(),
            &names,
        )
        .map_err(|why| invalid("csr", why))?;
    tracing::info!(site = %claim.site, host = ?claim.host, role = claim.role.as_str(), "enrolled");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            certificate,
            ca: ca.ca_pem(),
            site: claim.site.to_string(),
            host: claim.host,
            expires_at,
        }),
    )
        .into_response())
}

/// A device's renewal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renew {
    /// The device's current certificate (PEM), of this CO's CA and unexpired.
    pub certificate: String,
    /// A PKCS#10 request (PEM) for the device's new key.
    pub csr: String,
    /// `csr` signed with the current certificate's key (ECDSA P-256, SHA-256; base64).
    pub proof: String,
    /// For an LO: the names its ENs reach it at.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Renews a device's certificate before it expires: no claim token, the current certificate
/// and its key are the credential. A revoked certificate is refused.
#[utoipa::path(post, path = "/api/v1/renewals", tag = "enrolment", request_body = Renew, responses((status = 201, body = Enrolled), (status = 401, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn renew(
    State(state): State<EnrolState>,
    payload: Result<Json<Renew>, JsonRejection>,
) -> Result<Response, ApiError> {
    use base64::Engine;
    let (control, ca) = state;
    let req = body(payload)?;
    let ca = ca.ok_or_else(no_ca)?;
    if req.csr.len() > MAX_CSR || req.certificate.len() > MAX_CSR {
        return Err(invalid("csr", format!("at most {MAX_CSR} bytes")));
    }
    let proof = base64::engine::general_purpose::STANDARD
        .decode(req.proof.trim())
        .map_err(|e| invalid("proof", format!("not base64: {e}")))?;
    let renewal = match ca.renew(&req.certificate, &req.csr, &proof, &req.names) {
        Ok(r) => r,
        Err(why) => return Ok(crate::auth::unauthorized(why)),
    };
    let site = eos_domain::ids::SiteId::parse(&renewal.site)
        .map_err(|e| invalid("certificate", e.to_string()))?;
    // The site may have changed hands since the certificate was issued: a certificate of
    // another tenant's site is not renewed.
    if let Some(refused) = site_of_other_tenant(&control, &site, &renewal.tenant).await? {
        return Ok(refused);
    }
    let revoked = control
        .site_revocations(&site)
        .await?
        .into_iter()
        .find(|r| {
            r.host == renewal.host
                && eos_domain::service::revocation_covers(
                    &r.revoked_at,
                    &renewal.previous_issued_at,
                )
        });
    if let Some(r) = revoked {
        return Ok(crate::auth::unauthorized(format!(
            "the certificate was revoked at {}",
            r.revoked_at
        )));
    }
    tracing::info!(site = %renewal.site, host = ?renewal.host, "certificate renewed");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            certificate: renewal.certificate_pem,
            ca: ca.ca_pem(),
            site: renewal.site,
            host: renewal.host,
            expires_at: renewal.expires_at,
        }),
    )
        .into_response())
}

fn no_ca() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not Found",
        "this CO has no certificate authority",
    )
}

fn invalid(field: &str, why: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
        "Validation Failed",
        format!("{field}: {}", why.into()),
    )
}

/// A device asking whether its site's LO was revoked.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationQuestion {
    /// The device's certificate (PEM), of this CO's CA and unexpired.
    pub certificate: String,
    /// `certificate` signed with its key (ECDSA P-256, SHA-256; base64).
    pub proof: String,
}

/// What a device learns of its site's revocations.
#[derive(Serialize, ToSchema)]
pub struct RevocationStatus {
    pub site: String,
    /// When the site's LO was last revoked: its certificates issued until then are refused,
    /// and the site's ENs take no command from an LO speaking with one.
    pub lo_revoked_at: Option<String>,
}

/// Tells an EN whether its site's LO was revoked (no bearer token: the certificate and its key
/// are the credential). An EN asks every so often, so an LO cut off at the CO loses its ENs too.
#[utoipa::path(post, path = "/api/v1/revocation-status", tag = "enrolment", request_body = RevocationQuestion, responses((status = 200, body = RevocationStatus), (status = 401, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn revocation_status(
    State(state): State<EnrolState>,
    payload: Result<Json<RevocationQuestion>, JsonRejection>,
) -> Result<Response, ApiError> {
    use base64::Engine;
    let (control, ca) = state;
    let req = body(payload)?;
    let ca = ca.ok_or_else(no_ca)?;
    if req.certificate.len() > MAX_CSR {
        return Err(invalid("certificate", format!("at most {MAX_CSR} bytes")));
    }
    let proof = base64::engine::general_purpose::STANDARD
        .decode(req.proof.trim())
        .map_err(|e| invalid("proof", format!("not base64: {e}")))?;
    let (tenant, site, _) = match ca.holder(&req.certificate, req.certificate.as_bytes(), &proof) {
        Ok(who) => who,
        Err(why) => return Ok(crate::auth::unauthorized(why)),
    };
    let site =
        eos_domain::ids::SiteId::parse(&site).map_err(|e| invalid("certificate", e.to_string()))?;
    if let Some(refused) = site_of_other_tenant(&control, &site, &tenant).await? {
        return Ok(refused);
    }
    let lo_revoked_at = control
        .site_revocations(&site)
        .await?
        .into_iter()
        .filter(|r| r.host.is_none())
        .map(|r| r.revoked_at)
        .max();
    Ok(Json(RevocationStatus {
        site: site.to_string(),
        lo_revoked_at,
    })
    .into_response())
}
