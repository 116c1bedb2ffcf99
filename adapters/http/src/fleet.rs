//! The fleet one thing at a time: a site (`GET`/`PATCH /api/v1/sites/{site_id}`: its labels and
//! time zone), a device (`GET /api/v1/devices/{site_id}/{host}`), and the operator's actions on
//! a device, `POST …/cordon` (take no new workloads), `…/drain` (move what runs there
//! elsewhere) and `…/uncordon` (take workloads again).

use crate::problem::{ApiError, ProblemDocument};
use crate::routes::{Device, Shared, Site, body};
use crate::tenancy::TenantScope;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use eos_domain::service::Schedule;
use eos_domain::service::control::SiteUpdate;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One site.
#[utoipa::path(get, path = "/api/v1/sites/{site_id}", tag = "sites", params(("site_id" = String, Path)), responses((status = 200, body = Site), (status = 404, body = ProblemDocument)))]
pub async fn get_site(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
) -> Result<Json<Site>, ApiError> {
    Ok(Json(c.site(&t, &id).await?.into()))
}

/// What a `PATCH` of a site changes; a field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSite {
    /// Every label of the site (replacing those it has): keys such as `region` or
    /// `example.com/line`, values of at most 63 letters, digits, '-', '_' and '.'.
    pub labels: Option<BTreeMap<String, String>>,
    /// An IANA time zone name (`Europe/Berlin`); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Option<String>>,
}

/// A field that is present, `null` or not: `Some(None)` for `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Sets a site's labels and time zone; the site's `site.yaml` in the deployments repository
/// carries them to its LO.
#[utoipa::path(patch, path = "/api/v1/sites/{site_id}", tag = "sites", params(("site_id" = String, Path)), request_body = UpdateSite, responses((status = 200, body = Site), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn update_site(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path(id): Path<String>,
    payload: Result<Json<UpdateSite>, JsonRejection>,
) -> Result<Json<Site>, ApiError> {
    let req = body(payload)?;
    let update = SiteUpdate {
        labels: req.labels,
        time_zone: req.time_zone,
    };
    Ok(Json(c.update_site(&t, &id, update).await?.into()))
}

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
