//! Device models and compatibility reports: `/api/v1/device-models` (registered with their
//! capability template) and `GET /api/v1/apps/{app_id}/compatibility` (an app version judged
//! against a model or a device).

use crate::lists::{PageQuery, paged};
use crate::problem::{ApiError, ProblemDocument};
use crate::routes::{Shared, body};
use crate::tenancy::TenantScope;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eos_domain::service::control::Against;
use eos_domain::service::{
    CompatibilityReport, DeviceModelRecord, PageRequest, ProfileCompatibility,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A device model: a vendor's model with the capabilities every device of it has.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct DeviceModel {
    pub id: String,
    pub vendor: String,
    pub model: String,
    /// The capability template: a Margo DeviceCapabilities document.
    #[schema(value_type = Object)]
    pub capabilities: Value,
    pub created_at: String,
}

impl From<DeviceModelRecord> for DeviceModel {
    fn from(r: DeviceModelRecord) -> Self {
        Self {
            id: r.id,
            vendor: r.vendor,
            model: r.model,
            capabilities: serde_json::to_value(&r.capabilities).unwrap_or_default(),
            created_at: r.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModel {
    /// Lowercase letters, digits and '-' (`acme-edge-5000`).
    pub id: String,
    /// A Margo DeviceCapabilities document; its `properties.vendor` and
    /// `properties.modelNumber` name the model.
    #[schema(value_type = Object)]
    pub capabilities: Value,
}

/// The tenant's device models, by id.
#[utoipa::path(get, path = "/api/v1/device-models", tag = "devices", params(PageQuery), responses((status = 200, body = Vec<DeviceModel>, headers(("Link" = String, description = "The next page, rel=\"next\", when there is one"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 422, body = ProblemDocument)))]
pub async fn list_models(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(paged(
        &uri,
        c.models_page(&t, &page).await?.map(DeviceModel::from),
    ))
}

/// Registers a device model; devices that report its vendor and model number point at it.
#[utoipa::path(post, path = "/api/v1/device-models", tag = "devices", request_body = RegisterModel, responses((status = 201, body = DeviceModel), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn register_model(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    payload: Result<Json<RegisterModel>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body(payload)?;
    let record = c
        .register_model(&t, &req.id, &req.capabilities.to_string())
        .await?;
    Ok((StatusCode::CREATED, Json(DeviceModel::from(record))))
}

/// One device model.
#[utoipa::path(get, path = "/api/v1/device-models/{model_id}", tag = "devices", params(("model_id" = String, Path)), responses((status = 200, body = DeviceModel), (status = 404, body = ProblemDocument)))]
pub async fn get_model(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
) -> Result<Json<DeviceModel>, ApiError> {
    Ok(Json(c.device_model(&t, &id).await?.into()))
}

/// Removes a device model (its devices point at none afterwards).
#[utoipa::path(delete, path = "/api/v1/device-models/{model_id}", tag = "devices", params(("model_id" = String, Path)), responses((status = 204, description = "Removed"), (status = 404, body = ProblemDocument)))]
pub async fn remove_model(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    c.remove_model(&t, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One deployment profile judged.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct ProfileVerdict {
    pub profile: String,
    /// The runtime the profile needs.
    pub runtime: Option<String>,
    pub compatible: bool,
    /// Why it cannot run there (a missing runtime, too little capacity, a rule unmet).
    pub reason: Option<String>,
}

/// An app version judged against a device model or a device.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct Compatibility {
    pub app_id: String,
    pub version: String,
    /// `model <id>` or `device <site>/<host>`.
    pub against: String,
    /// Whether some profile can run there.
    pub compatible: bool,
    pub profiles: Vec<ProfileVerdict>,
}

impl From<CompatibilityReport> for Compatibility {
    fn from(r: CompatibilityReport) -> Self {
        Self {
            app_id: r.app_id,
            version: r.version,
            against: r.against,
            compatible: r.compatible,
            profiles: r
                .profiles
                .into_iter()
                .map(|p: ProfileCompatibility| ProfileVerdict {
                    profile: p.profile,
                    runtime: p.runtime,
                    compatible: p.compatible,
                    reason: p.reason,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CompatibilityQuery {
    /// The app version (the newest when absent).
    pub version: Option<String>,
    /// A device model id: judge against its capability template.
    pub model: Option<String>,
    /// A device id (`<site>/<host>`): judge against what it reported.
    pub device: Option<String>,
}

/// Which `model` or `device` a compatibility question names: exactly one.
pub(crate) fn against(model: Option<String>, device: Option<String>) -> Result<Against, ApiError> {
    match (model, device) {
        (Some(m), None) => Ok(Against::Model(m)),
        (None, Some(d)) => Ok(Against::Device(d)),
        _ => Err(ApiError::bad_request("give exactly one of model or device")),
    }
}

/// Whether an app version can run on a device model or a device: per deployment profile, with
/// the reason when it cannot (the rule a site's placement applies, the device taken as online).
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/compatibility", tag = "apps", params(("app_id" = String, Path), CompatibilityQuery), responses((status = 200, body = Compatibility), (status = 400, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
pub async fn compatibility(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(app_id): Path<String>,
    Query(q): Query<CompatibilityQuery>,
) -> Result<Json<Compatibility>, ApiError> {
    let against = against(q.model, q.device)?;
    let report = c
        .compatibility(&t, &app_id, q.version.as_deref(), &against)
        .await?;
    Ok(Json(report.into()))
}
