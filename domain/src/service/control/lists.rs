//! The control plane's lists, a page at a time: applications, sites, devices and deployments,
//! each in a stable order with its filters.

use super::super::page::{AppFilter, DeploymentFilter, DeviceFilter, Page, PageRequest};
use super::super::records::*;
use super::super::{ServiceError, StoreError};
use super::{ControlPlane, invalid, stored_description};
use crate::ids::TenantId;

impl ControlPlane {
    /// The newest version of each application of `filter`, by app id. The filter looks into
    /// each description, so pages of the store are read until one of matches is full.
    pub async fn apps_page(
        &self,
        tenant: &TenantId,
        filter: &AppFilter,
        page: &PageRequest,
    ) -> Result<Page<AppVersionRecord>, ServiceError> {
        let mut matched = Vec::new();
        let mut after = page.after.clone();
        loop {
            let fetched = self
                .store
                .page_apps(tenant, after.as_deref(), page.fetch())
                .await?;
            let end = (fetched.len() as u64) < page.fetch();
            after = fetched.last().map(|a| a.app_id.clone());
            for app in fetched {
                if app_matches(&app, filter)? {
                    matched.push(app);
                }
            }
            if end || matched.len() as u64 >= page.fetch() {
                break;
            }
        }
        Ok(page.page(matched, |a| a.app_id.clone()))
    }

    /// Sites, by id.
    pub async fn sites_page(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<SiteRecord>, ServiceError> {
        let fetched = self
            .store
            .page_sites(tenant, page.after.as_deref(), page.fetch())
            .await?;
        Ok(page.page(fetched, |s| s.id.to_string()))
    }

    /// Devices of `filter`, by id (`<site>/<host>`).
    pub async fn devices_page(
        &self,
        tenant: &TenantId,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<Page<DeviceRecord>, ServiceError> {
        let fetched = self
            .store
            .page_devices(tenant, filter, page.after.as_deref(), page.fetch())
            .await?;
        let page = page.page(fetched, |d| d.id.to_string());
        Ok(Page {
            items: self.with_models(tenant, page.items).await?,
            next: page.next,
        })
    }

    /// Deployments of `filter` with their status, oldest first.
    pub async fn deployments_page(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
        page: &PageRequest,
    ) -> Result<Page<DeploymentView>, ServiceError> {
        if let Some(phase) = &filter.phase
            && DeploymentPhase::parse(phase).is_none()
        {
            return Err(invalid(
                "phase",
                format!("{phase:?} is none of active, removing, removed"),
            ));
        }
        let fetched = match self
            .store
            .page_deployments(tenant, filter, page.after.as_deref(), page.fetch())
            .await
        {
            Err(StoreError::Conflict(m)) => return Err(invalid("cursor", m)),
            other => other?,
        };
        let page = page.page(fetched, |d| d.id.to_string());
        let mut views = Vec::with_capacity(page.items.len());
        for d in page.items {
            views.push(self.view_of(d).await?);
        }
        Ok(Page {
            items: views,
            next: page.next,
        })
    }
}

/// Whether the newest version `app` is one `filter` wants.
fn app_matches(app: &AppVersionRecord, filter: &AppFilter) -> Result<bool, ServiceError> {
    if filter.q.is_none() && filter.tag.is_none() {
        return Ok(true);
    }
    let ad = stored_description(app)?;
    let catalog = &ad.metadata.catalog.application;
    if let Some(tag) = &filter.tag
        && !catalog.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    {
        return Ok(false);
    }
    let Some(q) = &filter.q else {
        return Ok(true);
    };
    let text = [
        Some(ad.id.as_str()),
        Some(ad.metadata.name.as_str()),
        ad.metadata.description.as_deref(),
        catalog.tagline.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
    .to_lowercase();
    Ok(q.split_whitespace()
        .all(|word| text.contains(&word.to_lowercase())))
}
