//! Routes of `/api/v1`: applications, sites, devices, deployments, health.

use crate::problem::{ApiError, ProblemDocument, rejection};
use crate::tenancy::{BearerAuth, TenantHeader, TenantScope};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use eos_domain::service::control::{DeployRequest, UpdateRequest};
use eos_domain::service::{
    AppVersionRecord, ControlPlane, DeploymentView, DeviceRecord, SiteRecord,
};
use eos_domain::service::{ComponentLive as LiveRecord, DeviceLive as DeviceLiveRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// Requests larger than this are refused with 413 and a problem document.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The largest application package an upload may carry (`POST /api/v1/app-packages`).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "EOS central orchestrator",
        description = "Applications, sites, devices and deployments of an EOS fleet, each of a tenant: a request acts for the tenant its EOS-Tenant header names (default: default) and sees nothing of another. Errors are RFC 9457 problem documents.",
        version = "0.1.0"
    ),
    paths(
        health,
        crate::lists::list_apps,
        add_app,
        upload_app,
        get_app,
        crate::lists::list_sites,
        list_site_events,
        crate::lists::list_devices,
        create_deployment,
        preview_deployment,
        crate::lists::list_deployments,
        get_deployment,
        update_deployment,
        delete_deployment,
        get_deployment_live,
        crate::events::events,
        crate::events::deployment_history,
        crate::fleet::get_site,
        crate::fleet::update_site,
        crate::fleet::get_device,
        crate::fleet::cordon,
        crate::fleet::drain,
        crate::fleet::uncordon,
        crate::resources::app_resource,
        crate::models::list_models,
        crate::models::register_model,
        crate::models::get_model,
        crate::models::remove_model,
        crate::models::compatibility,
        crate::tenancy::list_tenants,
        crate::tenancy::create_tenant,
        crate::tenancy::get_tenant,
        crate::tenancy::list_users,
        crate::tenancy::signature_policy,
        crate::tenancy::set_signature_policy,
        crate::tenancy::workload_policy,
        crate::tenancy::set_workload_policy,
        crate::tenancy::add_user,
        crate::tenancy::get_user,
        crate::tenancy::remove_user,
        crate::tenancy::update_user,
        crate::identity::me,
        crate::identity::provider,
        crate::enrolment::create_claim,
        crate::enrolment::enrol,
        crate::enrolment::revoke,
        crate::enrolment::renew,
        crate::enrolment::certificate_authority,
        crate::enrolment::revocation_status,
        crate::artifacts::list_artifacts,
        crate::artifacts::get_artifact,
        crate::identity::issue_token,
        crate::identity::rotate_signing_key
    ),
    modifiers(&TenantHeader, &BearerAuth),
    components(schemas(
        ProblemDocument,
        Health,
        AddApp,
        AppVersion,
        App,
        Site,
        SiteEvent,
        Usage,
        Device,
        CreateDeployment,
        PlacementPreview,
        DeviceVerdict,
        UpdateDeployment,
        Deployment,
        DeviceStatus,
        DeviceLive,
        ComponentLive,
        crate::events::ChangeEvent,
        crate::fleet::UpdateSite,
        crate::models::DeviceModel,
        crate::models::RegisterModel,
        crate::models::Compatibility,
        crate::models::ProfileVerdict,
        crate::tenancy::Tenant,
        crate::tenancy::CreateTenant,
        crate::tenancy::User,
        crate::tenancy::AddUser,
        crate::tenancy::UpdateUser,
        crate::tenancy::SignaturePolicyBody,
        crate::tenancy::WorkloadPolicyBody,
        crate::identity::Me,
        crate::identity::AuthProvider,
        crate::enrolment::CreateClaim,
        crate::enrolment::Claim,
        crate::enrolment::CaCertificate,
        crate::enrolment::RevocationQuestion,
        crate::enrolment::RevocationStatus,
        crate::artifacts::Artifact,
        crate::artifacts::ArtifactUse,
        crate::enrolment::Enrol,
        crate::enrolment::Enrolled,
        crate::enrolment::Revoke,
        crate::enrolment::Renew,
        crate::enrolment::Revoked,
        crate::identity::IssueToken,
        crate::identity::IssuedToken,
        crate::auth::Rotation
    ))
)]
pub struct ApiDoc;

pub(crate) type Shared = Arc<ControlPlane>;

/// The REST router with GraphQL beside it, to be nested at the root of the CO's HTTP server; `bell` is the one the
/// control plane rings (`ControlPlane::with_bell`), which event streams wait on; `authority`
/// verifies every request's token (and issues tokens for users).
pub fn router(
    control: Shared,
    bell: Arc<crate::Bell>,
    authority: Arc<crate::auth::Authority>,
) -> Router {
    use crate::lists::{list_apps, list_deployments, list_devices, list_sites};
    Router::new()
        .route("/api/v1/health", get(health))
        .route(
            "/api/v1/tenants",
            get(crate::tenancy::list_tenants).post(crate::tenancy::create_tenant),
        )
        .route(
            "/api/v1/tenants/{tenant_id}",
            get(crate::tenancy::get_tenant),
        )
        .route(
            "/api/v1/users",
            get(crate::tenancy::list_users).post(crate::tenancy::add_user),
        )
        .route(
            "/api/v1/signature-policy",
            get(crate::tenancy::signature_policy).put(crate::tenancy::set_signature_policy),
        )
        .route(
            "/api/v1/workload-policy",
            get(crate::tenancy::workload_policy).put(crate::tenancy::set_workload_policy),
        )
        .route(
            "/api/v1/users/{user_id}",
            get(crate::tenancy::get_user)
                .patch(crate::tenancy::update_user)
                .delete(crate::tenancy::remove_user),
        )
        .route("/api/v1/artifacts", get(crate::artifacts::list_artifacts))
        .route(
            "/api/v1/artifacts/{digest}",
            get(crate::artifacts::get_artifact),
        )
        .route("/api/v1/apps", get(list_apps).post(add_app))
        .route("/api/v1/apps/{app_id}", get(get_app))
        .route(
            "/api/v1/apps/{app_id}/resources/{kind}",
            get(crate::resources::app_resource),
        )
        .route(
            "/api/v1/apps/{app_id}/compatibility",
            get(crate::models::compatibility),
        )
        .route(
            "/api/v1/device-models",
            get(crate::models::list_models).post(crate::models::register_model),
        )
        .route(
            "/api/v1/device-models/{model_id}",
            get(crate::models::get_model).delete(crate::models::remove_model),
        )
        .route("/api/v1/sites", get(list_sites))
        .route(
            "/api/v1/sites/{site_id}",
            get(crate::fleet::get_site).patch(crate::fleet::update_site),
        )
        .route("/api/v1/sites/{site_id}/events", get(list_site_events))
        .route("/api/v1/devices", get(list_devices))
        .route(
            "/api/v1/devices/{site_id}/{host}",
            get(crate::fleet::get_device),
        )
        .route(
            "/api/v1/devices/{site_id}/{host}/cordon",
            post(crate::fleet::cordon),
        )
        .route(
            "/api/v1/devices/{site_id}/{host}/drain",
            post(crate::fleet::drain),
        )
        .route(
            "/api/v1/devices/{site_id}/{host}/uncordon",
            post(crate::fleet::uncordon),
        )
        .route(
            "/api/v1/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route("/api/v1/deployments/preview", post(preview_deployment))
        .route(
            "/api/v1/deployments/{deployment_id}",
            get(get_deployment)
                .patch(update_deployment)
                .delete(delete_deployment),
        )
        .route(
            "/api/v1/deployments/{deployment_id}/live",
            get(get_deployment_live),
        )
        .route(
            "/api/reference",
            get(|| async { axum::response::Html(crate::reference::page()) }),
        )
        .route(
            "/api/v1/openapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    crate::openapi_json(),
                )
            }),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not Found",
                "no such route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(control.clone())
        .merge(
            Router::new()
                .route("/api/v1/app-packages", post(upload_app))
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
                .with_state(control.clone()),
        )
        .merge(
            Router::new()
                .route("/api/v1/events", get(crate::events::events))
                .route(
                    "/api/v1/deployments/{deployment_id}/history",
                    get(crate::events::deployment_history),
                )
                .with_state((control.clone(), bell.clone())),
        )
        .merge(
            crate::graphql::router(control.clone(), bell, authority.clone())
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .merge(crate::enrolment::router(control.clone(), authority.ca()))
        .merge(crate::identity::router(control.clone(), authority.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            (authority, control),
            crate::auth::authorize,
        ))
}

pub(crate) fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload
        .map(|Json(v)| v)
        .map_err(|r| rejection(r.status(), r.body_text()))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

#[utoipa::path(get, path = "/api/v1/health", tag = "health", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Add an application from a source the CO can read, or from the description text itself.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddApp {
    /// A directory or a Git repository URL holding a Margo ApplicationDescription.
    pub source: Option<String>,
    /// The ApplicationDescription YAML, when not given by `source`.
    pub description: Option<String>,
}

#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct AppVersion {
    pub app_id: String,
    pub version: String,
    pub name: String,
    pub description: Option<String>,
    /// The catalog's one-line summary.
    pub tagline: Option<String>,
    /// The catalog's tags (what `GET /api/v1/apps?tag=` matches).
    pub tags: Vec<String>,
    pub digest: String,
    pub source: String,
    pub created_at: String,
}

impl From<AppVersionRecord> for AppVersion {
    fn from(r: AppVersionRecord) -> Self {
        let catalog = eos_domain::margo::ApplicationDescription::from_yaml(&r.document)
            .map(|ad| ad.metadata.catalog.application)
            .unwrap_or_default();
        Self {
            app_id: r.app_id,
            version: r.version,
            name: r.name,
            description: r.description,
            tagline: catalog.tagline,
            tags: catalog.tags,
            digest: r.digest,
            source: r.source,
            created_at: r.created_at,
        }
    }
}

#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct App {
    pub app_id: String,
    pub name: String,
    pub latest: String,
    pub versions: Vec<AppVersion>,
}

#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = AddApp, responses((status = 201, body = AppVersion), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument), (status = 409, body = ProblemDocument)))]
async fn add_app(
    State(c): State<Shared>,
    axum::Extension(actor): axum::Extension<eos_domain::auth::Principal>,
    TenantScope(t): TenantScope,
    payload: Result<Json<AddApp>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body(payload)?;
    let record = match (req.source, req.description) {
        (Some(source), None) => c.add_app_from_source(&actor, &t, &source).await?,
        (None, Some(text)) => c.add_app(&t, &text, "inline", None).await?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of source or description",
            ));
        }
    };
    Ok((StatusCode::CREATED, Json(AppVersion::from(record))))
}

/// Registers an application from an uploaded package: the package's folder as a
/// gzip-compressed tar (`Content-Type: application/gzip`, or `application/octet-stream`),
/// paths relative to the package root,
/// plain files and folders only, at most 10,000 files and 256 MiB unpacked (64 MiB sent). What
/// `edgectl app add ./folder` sends, so it works against a CO on another machine.
#[utoipa::path(post, path = "/api/v1/app-packages", tag = "apps", request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The package folder as a tar.gz (sent as application/gzip or application/octet-stream)"), responses((status = 201, body = AppVersion), (status = 409, body = ProblemDocument), (status = 413, body = ProblemDocument), (status = 415, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn upload_app(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let gzip = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.split(';').next().unwrap_or_default().trim();
            [
                "application/gzip",
                "application/x-gzip",
                "application/octet-stream",
            ]
            .contains(&v)
        });
    if !gzip {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported Media Type",
            "send the package folder as a tar.gz with Content-Type: application/gzip (or \
             application/octet-stream)",
        ));
    }
    let record = c.add_app_from_upload(&t, &body).await?;
    Ok((StatusCode::CREATED, Json(AppVersion::from(record))))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)), responses((status = 200, body = App), (status = 404, body = ProblemDocument)))]
async fn get_app(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(app_id): Path<String>,
) -> Result<Json<App>, ApiError> {
    Ok(Json(App::of(c.app_versions(&t, &app_id).await?)))
}

impl App {
    /// The app of its versions, oldest first (`ControlPlane::app_versions`: never empty).
    pub(crate) fn of(versions: Vec<AppVersionRecord>) -> Self {
        let latest = versions.last().expect("app_versions is never empty");
        Self {
            app_id: latest.app_id.clone(),
            name: latest.name.clone(),
            latest: latest.version.clone(),
            versions: versions.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Clone, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct Site {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub manifest_version: u64,
    pub lo_connected: bool,
    pub last_seen: Option<String>,
    /// The site's IANA time zone (`Europe/Berlin`).
    pub time_zone: Option<String>,
}

impl From<SiteRecord> for Site {
    fn from(r: SiteRecord) -> Self {
        Self {
            id: r.id.to_string(),
            labels: r.labels,
            manifest_version: r.manifest_version,
            lo_connected: r.lo_connected,
            last_seen: r.last_seen,
            time_zone: r.time_zone,
        }
    }
}

/// Something that happened at a site: a desired state refused or skipped, a workload crashed.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct SiteEvent {
    /// `desired-state-rejected`, `desired-state-skipped` or `component-crashed`.
    pub kind: String,
    pub device_id: Option<String>,
    pub deployment_id: Option<String>,
    pub component: Option<String>,
    pub message: String,
    /// When the site observed it, which may be long before the CO heard of it.
    pub observed_at: String,
}

impl From<eos_domain::service::SiteEvent> for SiteEvent {
    fn from(e: eos_domain::service::SiteEvent) -> Self {
        Self {
            kind: e.kind,
            device_id: e.device_id,
            deployment_id: e.deployment_id,
            component: e.component,
            message: e.message,
            observed_at: e.observed_at,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// How many of the newest events (default 100, at most 1000).
    pub limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/sites/{site_id}/events", tag = "sites", params(("site_id" = String, Path), EventsQuery), responses((status = 200, body = Vec<SiteEvent>, description = "The site's newest events, oldest first"), (status = 404, body = ProblemDocument)))]
async fn list_site_events(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(site_id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Vec<SiteEvent>>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        c.site_events(&t, &site_id, limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// A device's resource use, as a heartbeat reported it.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct Usage {
    /// Linux load average over a minute.
    pub cpu_load_1m: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// Components the device runs.
    pub workloads: u64,
    /// When the site received the heartbeat.
    pub observed_at: String,
}

#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
#[graphql(complex)]
pub struct Device {
    /// `<site>/<host>`.
    pub id: String,
    /// In GraphQL `siteId`; `site` there is the site itself.
    #[graphql(name = "siteId")]
    pub site: String,
    pub online: bool,
    pub last_seen: Option<String>,
    /// Resource use from the latest heartbeat that reached the CO.
    pub usage: Option<Usage>,
    /// The device model (`/api/v1/device-models`) of the vendor and model number it reports.
    pub model: Option<String>,
    /// `open`, `cordoned` (takes no new workloads) or `draining` (what runs there moves).
    pub schedule: String,
    /// `online`, `offline`, `cordoned`, `draining`, or `drained` (draining, and its last
    /// heartbeat reported no workloads).
    pub status: String,
    /// The device's Margo DeviceCapabilities (rc.3).
    #[schema(value_type = Object)]
    pub capabilities: Value,
}

impl From<DeviceRecord> for Device {
    fn from(r: DeviceRecord) -> Self {
        let status = r.status().as_str().to_owned();
        Self {
            schedule: r.schedule.to_string(),
            status,
            id: r.id.to_string(),
            site: r.id.site().to_string(),
            online: r.online,
            last_seen: r.last_seen,
            usage: r.usage.map(|u| Usage {
                cpu_load_1m: u.cpu_load_1m,
                memory_used_bytes: u.memory_used_bytes,
                memory_total_bytes: u.memory_total_bytes,
                workloads: u.workloads,
                observed_at: u.observed_at,
            }),
            capabilities: serde_json::to_value(&r.capabilities).unwrap_or_default(),
            model: r.model,
        }
    }
}

#[derive(Deserialize, ToSchema, async_graphql::InputObject)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    pub app_id: String,
    /// The newest version when absent.
    pub version: Option<String>,
    pub site: String,
    /// Pin to this host of the site; otherwise the site's LO chooses by constraints.
    pub host: Option<String>,
    /// A deployment profile id; the first profile when absent.
    pub profile: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    #[graphql(default)]
    pub parameters: BTreeMap<String, Value>,
}

impl CreateDeployment {
    pub(crate) fn into_request(self, idempotency_key: Option<String>) -> DeployRequest {
        DeployRequest {
            app_id: self.app_id,
            version: self.version,
            site: self.site,
            host: self.host,
            profile: self.profile,
            parameters: self.parameters,
            idempotency_key,
        }
    }
}

/// Where a deployment would go, and why every other device of the site would not take it.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct PlacementPreview {
    /// The device the site's placement rule chooses, `null` when none can run it.
    pub chosen: Option<String>,
    /// Every other device of the site, with the reason.
    pub rejected: Vec<DeviceVerdict>,
}

#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct DeviceVerdict {
    pub device: String,
    pub reason: String,
}

/// Places a deployment without making it: the device the site's LO would choose by the same
/// rule, from what the devices last reported, and why each other device would not take it
/// (offline, no runtime for it, too little capacity, a constraint unmet). Nothing is stored.
#[utoipa::path(post, path = "/api/v1/deployments/preview", tag = "deployments", request_body = CreateDeployment, responses((status = 200, body = PlacementPreview), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn preview_deployment(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    payload: Result<Json<CreateDeployment>, JsonRejection>,
) -> Result<Json<PlacementPreview>, ApiError> {
    let placement = c.preview(&t, &body(payload)?.into_request(None)).await?;
    Ok(Json(placement.into()))
}

impl From<eos_domain::placement::Placement> for PlacementPreview {
    fn from(placement: eos_domain::placement::Placement) -> Self {
        Self {
            chosen: placement.chosen.map(|d| d.to_string()),
            rejected: placement
                .rejected
                .into_iter()
                .map(|r| DeviceVerdict {
                    device: r.device,
                    reason: r.reason,
                })
                .collect(),
        }
    }
}

/// A change to a deployment; what is absent stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDeployment {
    /// Another version of the deployment's application (a rollout or a rollback).
    pub version: Option<String>,
    /// The deployment's parameters, replacing the current ones.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<BTreeMap<String, Value>>,
}

#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct DeviceStatus {
    pub device_id: String,
    pub state: String,
    pub error: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
#[graphql(complex)]
pub struct Deployment {
    pub id: String,
    pub app_id: String,
    pub version: String,
    pub site: String,
    pub target: String,
    pub profile: String,
    /// `active`, `removing` or `removed`.
    pub phase: String,
    /// The overall Margo state: the most severe device state, `pending` before any report.
    pub state: String,
    pub devices: Vec<DeviceStatus>,
    pub created_at: String,
    /// The ApplicationDeployment YAML committed to the deployments repository.
    pub document: String,
}

impl From<DeploymentView> for Deployment {
    fn from(v: DeploymentView) -> Self {
        let d = v.deployment;
        Self {
            id: d.id.to_string(),
            app_id: d.app_id,
            version: d.version,
            site: d.site.to_string(),
            target: d.target,
            profile: d.profile_id,
            phase: d.phase.as_str().into(),
            state: v.state.as_str().into(),
            devices: v
                .devices
                .into_iter()
                .map(|s| DeviceStatus {
                    device_id: s.device_id,
                    state: s.state.as_str().into(),
                    error: s.error.map(|e| e.message),
                    components: serde_json::to_value(s.components).unwrap_or_default(),
                    updated_at: s.updated_at,
                })
                .collect(),
            created_at: d.created_at,
            document: d.document,
        }
    }
}

/// Deploys an application version to a site. With `Idempotency-Key`, a retry of the same
/// request gets the deployment the first one made (201 again), and another request under the
/// same key is refused (422).
#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments", params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 ASCII characters naming this request; a retry with the same key and body gets the same deployment")), request_body = CreateDeployment, responses((status = 201, body = Deployment, headers(("ETag" = String, description = "The deployment's entity tag"))), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn create_deployment(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    headers: axum::http::HeaderMap,
    payload: Result<Json<CreateDeployment>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad-header",
                        "Bad Header",
                        "Idempotency-Key is not text",
                    )
                })?
                .to_owned(),
        ),
    };
    let record = c
        .deploy(&t, body(payload)?.into_request(idempotency_key))
        .await?;
    let view = c.deployment_view(&t, record.id.as_str()).await?;
    Ok(with_etag(StatusCode::CREATED, view))
}

/// A deployment with its `ETag` header: what `If-Match` on an update names.
fn with_etag(status: StatusCode, view: DeploymentView) -> impl IntoResponse {
    let etag = view.deployment.etag();
    (
        status,
        [(axum::http::header::ETAG, etag)],
        Json(Deployment::from(view)),
    )
}

/// The entity tags of an `If-Match` header (`*`, or quoted tags separated by commas); a weak
/// tag never matches, as `If-Match` compares strongly.
fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<Vec<String>>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-header",
            "Bad Header",
            "If-Match is not text",
        )
    })?;
    Ok(Some(
        text.split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
    ))
}

/// A deployment, with its entity tag in `ETag`.
#[utoipa::path(get, path = "/api/v1/deployments/{deployment_id}", tag = "deployments", params(("deployment_id" = String, Path)), responses((status = 200, body = Deployment, headers(("ETag" = String, description = "The entity tag an update's If-Match names"))), (status = 404, body = ProblemDocument)))]
async fn get_deployment(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(with_etag(StatusCode::OK, c.deployment_view(&t, &id).await?))
}

/// Moves a deployment to another version of its application and/or new parameters. The site
/// replaces the components whose spec changed and keeps the others running. With `If-Match`
/// (the `ETag` a read gave), the update is made only if nothing changed the deployment since.
#[utoipa::path(patch, path = "/api/v1/deployments/{deployment_id}", tag = "deployments", params(("deployment_id" = String, Path), ("If-Match" = Option<String>, Header, description = "The ETag the deployment had when read; 412 if it changed since")), request_body = UpdateDeployment, responses((status = 200, body = Deployment, headers(("ETag" = String, description = "The updated deployment's entity tag"))), (status = 404, body = ProblemDocument), (status = 409, body = ProblemDocument), (status = 412, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn update_deployment(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    payload: Result<Json<UpdateDeployment>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let if_match = if_match(&headers)?;
    let req = body(payload)?;
    c.update_deployment(
        &t,
        &id,
        UpdateRequest {
            version: req.version,
            parameters: req.parameters,
            if_match,
        },
    )
    .await?;
    Ok(with_etag(StatusCode::OK, c.deployment_view(&t, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/deployments/{deployment_id}", tag = "deployments", params(("deployment_id" = String, Path)), responses((status = 202, body = Deployment, description = "Removal started; the phase becomes removed once the site confirms"), (status = 404, body = ProblemDocument)))]
async fn delete_deployment(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    c.undeploy(&t, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Deployment::from(c.deployment_view(&t, &id).await?)),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct LiveQuery {
    /// Only this component (all of the deployment's when absent).
    pub component: Option<String>,
    /// The last log lines wanted per component, at most 1000 (default 50; 0 for none).
    pub lines: Option<u32>,
}

/// One component as its runtime driver sees it now.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct ComponentLive {
    pub component: String,
    pub runtime: String,
    /// Percent of one core (200 is two cores busy); absent where the driver cannot tell.
    pub cpu_percent: Option<f64>,
    /// Absent where the driver cannot tell.
    pub memory_bytes: Option<u64>,
    /// The last lines the component wrote, oldest first.
    pub log: Vec<String>,
    /// What the driver could not tell, and why.
    pub error: Option<String>,
}

/// What a device running the deployment said of it, or why it said nothing.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct DeviceLive {
    pub device_id: String,
    pub components: Vec<ComponentLive>,
    /// Why the device gave no answer (its site or the device is offline, or silent).
    pub error: Option<String>,
}

impl From<DeviceLiveRecord> for DeviceLive {
    fn from(r: DeviceLiveRecord) -> Self {
        Self {
            device_id: r.device_id,
            components: r.components.into_iter().map(Into::into).collect(),
            error: r.error,
        }
    }
}

impl From<LiveRecord> for ComponentLive {
    fn from(c: LiveRecord) -> Self {
        Self {
            component: c.component,
            runtime: c.runtime,
            cpu_percent: c.cpu_percent,
            memory_bytes: c.memory_bytes,
            log: c.log,
            error: c.error,
        }
    }
}

/// Asks the devices that run the deployment, live through their sites, for each component's
/// resource use and last log lines. Nothing is stored; a device that cannot be reached says
/// why in its entry.
#[utoipa::path(get, path = "/api/v1/deployments/{deployment_id}/live", tag = "deployments", params(("deployment_id" = String, Path), LiveQuery), responses((status = 200, body = Vec<DeviceLive>), (status = 400, body = ProblemDocument), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn get_deployment_live(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
    Query(query): Query<LiveQuery>,
) -> Result<Json<Vec<DeviceLive>>, ApiError> {
    let live = c
        .live(
            &t,
            &id,
            query.component.as_deref(),
            query.lines.unwrap_or(50),
        )
        .await?;
    Ok(Json(live.into_iter().map(Into::into).collect()))
}
