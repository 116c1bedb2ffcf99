//! One device: `GET /api/v1/devices/{site_id}/{host}`, and the operator's actions on it,
//! `POST …/cordon` (take no new workloads), `…/drain` (move what runs there elsewhere) and
//! `…/uncordon` (take workloads again).

use crate::problem::{ApiError, ProblemDocument};
use crate::routes::{Device, Shared};
use crate::tenancy::TenantScope;
use axum::Json;
use axum::extract::{Path, State};
use eos_domain::service::Schedule;

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{site_id}/{host}", tag = "devices", params(("site_id" = String, Path), ("host" = String, Path)), responses((status = 200, body = Device), (status = 404, body = ProblemDocument)))]
pub async fn get_device(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path((site, host)): Path<(String, String)>,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(c.device(&t, &format!("{site}/{host}")).await?.into()))
}

async fn set(
    c: &Shared,
    t: &eos_domain::ids::TenantId,
    site: &str,
    host: &str,
    to: Schedule,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(
        c.set_schedule(t, &format!("{site}/{host}"), to)
            .await?
            .into(),
    ))
}

/// Cordons a device: it takes no new workloads; what runs there stays. The site's LO learns
/// it from the site's `site.yaml` in the deployments repository.
#[utoipa::path(post, path = "/api/v1/devices/{site_id}/{host}/cordon", tag = "devices", params(("site_id" = String, Path), ("host" = String, Path)), responses((status = 200, body = Device), (status = 404, body = ProblemDocument)))]
pub async fn cordon(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path((site, host)): Path<(String, String)>,
) -> Result<Json<Device>, ApiError> {
    set(&c, &t, &site, &host, Schedule::Cordoned).await
}

/// Drains a device: what runs there moves to other devices of its site that can run it (a
/// deployment pinned to it waits, not placeable), and it takes no new workloads. Its status is
/// `draining` until its heartbeat reports no workloads, then `drained`.
#[utoipa::path(post, path = "/api/v1/devices/{site_id}/{host}/drain", tag = "devices", params(("site_id" = String, Path), ("host" = String, Path)), responses((status = 200, body = Device), (status = 404, body = ProblemDocument)))]
pub async fn drain(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path((site, host)): Path<(String, String)>,
) -> Result<Json<Device>, ApiError> {
    set(&c, &t, &site, &host, Schedule::Draining).await
}

/// Opens a cordoned or draining device: it takes workloads again (what moved away stays where
/// it went).
#[utoipa::path(post, path = "/api/v1/devices/{site_id}/{host}/uncordon", tag = "devices", params(("site_id" = String, Path), ("host" = String, Path)), responses((status = 200, body = Device), (status = 404, body = ProblemDocument)))]
pub async fn uncordon(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path((site, host)): Path<(String, String)>,
) -> Result<Json<Device>, ApiError> {
    set(&c, &t, &site, &host, Schedule::Open).await
}
