//! The list endpoints, a page at a time: `limit` (1 to 1000, default 1000) items after
//! `cursor`, in a stable order, with each list's filters. The body is the page's array; when
//! more follow, a `Link` header (RFC 8288) names the next page with `rel="next"`, and
//! `X-Next-Cursor` holds its cursor.

use crate::problem::{ApiError, ProblemDocument};
use crate::routes::{AppVersion, Deployment, Device, Shared, Site};
use crate::tenancy::TenantScope;
use axum::Json;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use eos_domain::ids::SiteId;
use eos_domain::service::{
    AppFilter, DeploymentFilter, DeviceFilter, Page, PageRequest, Schedule, parse_label_selector,
};
use serde::{Deserialize, Serialize};

/// A page as the response: the items, and the next page's `Link` and cursor when there is one.
pub(crate) fn paged<T: Serialize>(uri: &Uri, page: Page<T>) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(next) = &page.next {
        // The same query, the cursor replaced.
        let mut query: Vec<(String, String)> = uri
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        query.retain(|(k, _)| k != "cursor");
        query.push(("cursor".into(), next.clone()));
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let link = format!("<{}?{query}>; rel=\"next\"", uri.path());
        if let Ok(v) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, v);
        }
        if let Ok(v) = HeaderValue::from_str(next) {
            headers.insert("x-next-cursor", v);
        }
    }
    (StatusCode::OK, headers, Json(page.items)).into_response()
}

fn site_of(site: Option<&str>) -> Result<Option<SiteId>, ApiError> {
    site.map(|s| SiteId::parse(s).map_err(|e| ApiError::bad_request(e.to_string())))
        .transpose()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The page after this one, as the previous page's `Link` or `X-Next-Cursor` gave it.
    pub cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 1000).
    pub limit: Option<u64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AppQuery {
    /// Words that the app's id, name, description or tagline all contain (any case).
    pub q: Option<String>,
    /// A tag of the app's catalog (any case).
    pub tag: Option<String>,
    /// The page after this one, as the previous page's `Link` or `X-Next-Cursor` gave it.
    pub cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 1000).
    pub limit: Option<u64>,
}

/// The newest version of every application, by app id; searched with `q` and `tag`.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", params(AppQuery), responses((status = 200, body = Vec<AppVersion>, description = "The newest version of every application, by id", headers(("Link" = String, description = "The next page, rel=\"next\", when there is one"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 422, body = ProblemDocument)))]
pub async fn list_apps(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<AppQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = AppFilter { q: q.q, tag: q.tag };
    let apps = c.apps_page(&t, &filter, &page).await?.map(AppVersion::from);
    Ok(paged(&uri, apps))
}

/// Sites, by id.
#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", params(PageQuery), responses((status = 200, body = Vec<Site>, headers(("Link" = String, description = "The next page, rel=\"next\", when there is one"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 422, body = ProblemDocument)))]
pub async fn list_sites(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let sites = c.sites_page(&t, &page).await?.map(Site::from);
    Ok(paged(&uri, sites))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Only devices of this site.
    pub site: Option<String>,
    /// Only devices online (`true`) or offline (`false`).
    pub online: Option<bool>,
    /// Only devices of this status: `online` or `offline` (and open to workloads), `cordoned`,
    /// or `draining` (drained ones too).
    pub status: Option<String>,
    /// Only devices with these labels, as `kubectl -l` writes them: `line=3,region=eu,gpu`
    /// (`gpu`: the label is there). An array label such as `eos.dev/runtimes` matches by any
    /// element.
    pub label: Option<String>,
    /// The page after this one, as the previous page's `Link` or `X-Next-Cursor` gave it.
    pub cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 1000).
    pub limit: Option<u64>,
}

/// The device filter of a list's query parameters; a bad status or selector is a 400.
pub(crate) fn device_filter(
    site: Option<&str>,
    online: Option<bool>,
    status: Option<&str>,
    label: Option<&str>,
) -> Result<DeviceFilter, ApiError> {
    let mut filter = DeviceFilter {
        site: site_of(site)?,
        online,
        ..Default::default()
    };
    match status {
        None => {}
        Some(s @ ("online" | "offline")) => {
            if online.is_some_and(|o| o != (s == "online")) {
                return Err(ApiError::bad_request(format!(
                    "status={s} contradicts online={}",
                    online.unwrap_or_default()
                )));
            }
            filter.online = Some(s == "online");
            filter.schedule = Some(Schedule::Open);
        }
        Some("cordoned") => filter.schedule = Some(Schedule::Cordoned),
        Some("draining" | "drained") => filter.schedule = Some(Schedule::Draining),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status {other:?} is not online, offline, cordoned or draining"
            )));
        }
    }
    if let Some(selector) = label {
        filter.labels = parse_label_selector(selector)
            .map_err(|why| ApiError::bad_request(format!("label {selector:?}: {why}")))?;
    }
    Ok(filter)
}

/// Devices, by id (`<site>/<host>`).
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceQuery), responses((status = 200, body = Vec<Device>, headers(("Link" = String, description = "The next page, rel=\"next\", when there is one"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 400, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn list_devices(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<DeviceQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = device_filter(
        q.site.as_deref(),
        q.online,
        q.status.as_deref(),
        q.label.as_deref(),
    )?;
    let devices = c.devices_page(&t, &filter, &page).await?.map(Device::from);
    Ok(paged(&uri, devices))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeploymentQuery {
    /// Only deployments to this site.
    pub site: Option<String>,
    /// Only deployments of this application.
    pub app_id: Option<String>,
    /// Only deployments in this phase: `active`, `removing` or `removed`.
    pub phase: Option<String>,
    /// The page after this one, as the previous page's `Link` or `X-Next-Cursor` gave it.
    pub cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 1000).
    pub limit: Option<u64>,
}

/// Deployments with their status, oldest first.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", params(DeploymentQuery), responses((status = 200, body = Vec<Deployment>, headers(("Link" = String, description = "The next page, rel=\"next\", when there is one"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 400, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn list_deployments(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<DeploymentQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = DeploymentFilter {
        site: site_of(q.site.as_deref())?,
        app_id: q.app_id,
        phase: q.phase,
    };
    let deployments = c
        .deployments_page(&t, &filter, &page)
        .await?
        .map(Deployment::from);
    Ok(paged(&uri, deployments))
}
