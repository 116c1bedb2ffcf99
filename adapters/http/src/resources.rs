//! An app version's catalog files: `GET /api/v1/apps/{app_id}/resources/{kind}` answers the
//! icon, description, license or release notes the package carried, with its media type.

use crate::problem::{ApiError, ProblemDocument};
use crate::routes::Shared;
use crate::tenancy::TenantScope;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResourceQuery {
    /// The app version (the newest when absent).
    pub version: Option<String>,
}

/// A catalog file of an app version: `icon`, `description`, `license` or `release-notes`, as
/// `metadata.catalog.application` names them in its package. A named version never changes,
/// so its files may be cached for good. Files are served with a sandboxing content security
/// policy: an SVG opened on its own runs no script.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/resources/{kind}", tag = "apps", params(("app_id" = String, Path), ("kind" = String, Path, description = "icon, description, license or release-notes"), ResourceQuery), responses((status = 200, description = "The file, with its media type (image/png, text/markdown, application/pdf, …)", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ProblemDocument)))]
pub async fn app_resource(
    State(c): State<Shared>,
    TenantScope(t): TenantScope,
    Path((app_id, kind)): Path<(String, String)>,
    Query(q): Query<ResourceQuery>,
) -> Result<Response, ApiError> {
    let r = c
        .app_resource(&t, &app_id, q.version.as_deref(), &kind)
        .await?;
    // A tenant's file, behind its token: a browser may keep it, a shared cache may not.
    let cache = if q.version.is_some() {
        "private, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let disposition = format!(
        "inline; filename=\"{}-{}-{}\"",
        r.app_id,
        r.version,
        r.kind.as_str()
    );
    Ok((
        [
            (header::CONTENT_TYPE, r.media_type),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            // A package's SVG icon opened on its own must not run scripts in the CO's origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; sandbox".to_owned(),
            ),
        ],
        r.data,
    )
        .into_response())
}
