//! Catalog files of an app version: the icon, description, license and release notes its
//! description names under `metadata.catalog.application`, read from the package when the
//! version is added, stored with it, and served by kind.

use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::ControlPlane;
use crate::ids::TenantId;
use crate::margo::ApplicationDescription;
use crate::problem::Problems;

/// The largest catalog file the app store keeps.
pub const MAX_RESOURCE_BYTES: u64 = 4 << 20;

impl ControlPlane {
    /// The catalog files `ad` names, read from the package in `folder`: every one must be in
    /// the package, of a type its kind takes, and at most [`MAX_RESOURCE_BYTES`]. Without a
    /// folder (a description sent alone) there are none to read.
    pub(super) async fn read_resources(
        &self,
        tenant: &TenantId,
        ad: &ApplicationDescription,
        folder: Option<&str>,
    ) -> Result<Vec<AppResourceRecord>, ServiceError> {
        let Some(folder) = folder else {
            return Ok(Vec::new());
        };
        let app = &ad.metadata.catalog.application;
        let mut problems = Problems::default();
        let mut found = Vec::new();
        for (kind, path) in [
            (ResourceKind::Icon, &app.icon),
            (ResourceKind::Description, &app.description_file),
            (ResourceKind::License, &app.license_file),
            (ResourceKind::ReleaseNotes, &app.release_notes),
        ] {
            let Some(path) = path else { continue };
            let at = format!("metadata.catalog.application.{}", kind.field());
            let media_type = match kind.media_type(path) {
                Ok(m) => m,
                Err(why) => {
                    problems.push(at, why);
                    continue;
                }
            };
            match self.packages.read(folder, path, MAX_RESOURCE_BYTES).await {
                Ok(data) => found.push(AppResourceRecord {
                    tenant: tenant.clone(),
                    app_id: ad.id.clone(),
                    version: ad.metadata.version.clone(),
                    kind,
                    media_type: media_type.to_owned(),
                    data,
                }),
                Err(why) => problems.push(at, why),
            }
        }
        problems
            .into_result(found)
            .map_err(|problems| ServiceError::Invalid {
                what: "application package".into(),
                problems,
            })
    }

    /// A catalog file of an app version (the newest when `version` is `None`).
    pub async fn app_resource(
        &self,
        tenant: &TenantId,
        app_id: &str,
        version: Option<&str>,
        kind: &str,
    ) -> Result<AppResourceRecord, ServiceError> {
        let kind = ResourceKind::parse(kind).ok_or_else(|| not_found("catalog resource", kind))?;
        let app = self.app_version(tenant, app_id, version).await?;
        self.store
            .get_app_resource(tenant, &app.app_id, &app.version, kind)
            .await?
            .ok_or_else(|| {
                not_found(
                    "catalog resource",
                    format!("{} of {}@{}", kind.as_str(), app.app_id, app.version),
                )
            })
    }
}
