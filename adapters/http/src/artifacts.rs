//! The artifacts view (seed 004): `GET /api/v1/artifacts` lists every artifact the tenant's
//! deployments run, with the digest its reference names now, its signature status against the
//! tenant's signature policy and the key that signed it, and its SBOM reference;
//! `GET /api/v1/artifacts/{digest}` those of one digest (one per name it is deployed under).

use crate::problem::{ApiError, ProblemDocument};
use crate::routes::Shared;
use crate::tenancy::TenantScope;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

/// One artifact the tenant's deployments run.
#[derive(Serialize, ToSchema)]
pub struct Artifact {
    /// The reference as deployments name it (`HOST/NAME:TAG`, or `eos-artifact:sha256:…` for
    /// a file a package carries).
    pub name: String,
    /// The runtime that runs it (`oci`, `wasm`, `compose`, `helm`, …).
    pub runtime: String,
    /// The digest the reference names now (`sha256:…`); absent when the registry did not
    /// answer.
    pub digest: Option<String>,
    /// `trusted` (signed by a key of the tenant's policy), `untrusted` (signed, by no such
    /// key), `unsigned`, `not-applicable` (not in a registry) or `unknown` (see `error`).
    pub signature: String,
    /// Cosign signatures over that digest.
    pub signatures: usize,
    /// The key of the tenant's signature policy that signed it (`key 1` is the first).
    pub signer: Option<String>,
    /// Where its SBOM is (a CycloneDX or SPDX referrer, or cosign's `.sbom` tag).
    pub sbom_ref: Option<String>,
    /// Why the registry could not tell.
    pub error: Option<String>,
    pub used_by: Vec<ArtifactUse>,
}

/// A deployment component that runs the artifact.
#[derive(Serialize, ToSchema)]
pub struct ArtifactUse {
    pub deployment_id: String,
    pub app_id: String,
    pub version: String,
    pub component: String,
}

impl From<eos_domain::service::control::ArtifactView> for Artifact {
    fn from(a: eos_domain::service::control::ArtifactView) -> Self {
        let signature = serde_json::to_value(a.signature)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            name: a.name,
            runtime: a.runtime,
            digest: a.digest,
            signature,
            signatures: a.signatures,
            signer: a.signer,
            sbom_ref: a.sbom_ref,
            error: a.error,
            used_by: a
                .used_by
                .into_iter()
                .map(|u| ArtifactUse {
                    deployment_id: u.deployment_id,
                    app_id: u.app_id,
                    version: u.version,
                    component: u.component,
                })
                .collect(),
        }
    }
}

/// Every artifact the tenant's active deployments run, asked of their registries now.
#[utoipa::path(get, path = "/api/v1/artifacts", tag = "artifacts", responses((status = 200, body = Vec<Artifact>)))]
pub async fn list_artifacts(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
) -> Result<Json<Vec<Artifact>>, ApiError> {
    let artifacts = c.artifacts(&tenant).await?;
    Ok(Json(artifacts.into_iter().map(Artifact::from).collect()))
}

/// The artifacts of the tenant's deployments whose digest is `digest` (`sha256:…`): one per
/// name the digest is deployed under (signatures are kept per repository).
#[utoipa::path(get, path = "/api/v1/artifacts/{digest}", tag = "artifacts", params(("digest" = String, Path)), responses((status = 200, body = Vec<Artifact>), (status = 404, body = ProblemDocument)))]
pub async fn get_artifact(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
    Path(digest): Path<String>,
) -> Result<Json<Vec<Artifact>>, ApiError> {
    let found = c.artifact(&tenant, &digest).await?;
    Ok(Json(found.into_iter().map(Artifact::from).collect()))
}
