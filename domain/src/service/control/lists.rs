//! The control plane's lists, a page at a time: applications, sites, devices and deployments,
//! each in a stable order with its filters.

use super::super::page::{DeploymentFilter, DeviceFilter, Page, PageRequest};
use super::super::records::*;
use super::super::{ServiceError, StoreError};
use super::{ControlPlane, invalid};

impl ControlPlane {
    /// The newest version of each application, by app id.
    pub async fn apps_page(
        &self,
        page: &PageRequest,
    ) -> Result<Page<AppVersionRecord>, ServiceError> {
        let fetched = self
            .store
            .page_apps(page.after.as_deref(), page.fetch())
            .await?;
        Ok(page.page(fetched, |a| a.app_id.clone()))
    }

    /// Sites, by id.
    pub async fn sites_page(&self, page: &PageRequest) -> Result<Page<SiteRecord>, ServiceError> {
        let fetched = self
            .store
            .page_sites(page.after.as_deref(), page.fetch())
            .await?;
        Ok(page.page(fetched, |s| s.id.to_string()))
    }

    /// Devices of `filter`, by id (`<site>/<host>`).
    pub async fn devices_page(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<Page<DeviceRecord>, ServiceError> {
        let fetched = self
            .store
            .page_devices(filter, page.after.as_deref(), page.fetch())
            .await?;
        Ok(page.page(fetched, |d| d.id.to_string()))
    }

    /// Deployments of `filter` with their status, oldest first.
    pub async fn deployments_page(
        &self,
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
            .page_deployments(filter, page.after.as_deref(), page.fetch())
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
