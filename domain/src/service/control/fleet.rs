//! Devices one at a time: read one, and cordon, drain or uncordon it. A schedule is stored and
//! committed to the site's `site.yaml` in the deployments repository, so the site's LO applies
//! it from Git like the rest of its desired state, also while the CO cannot reach it.

use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::{ControlPlane, change};
use crate::ids::{DeviceId, TenantId};

impl ControlPlane {
    /// One of the tenant's devices, with its model.
    pub async fn device(&self, tenant: &TenantId, id: &str) -> Result<DeviceRecord, ServiceError> {
        let did = DeviceId::parse(id).map_err(|_| not_found("device", id))?;
        let device = self
            .store
            .get_device(tenant, &did)
            .await?
            .ok_or_else(|| not_found("device", id))?;
        let mut with = self.with_models(tenant, vec![device]).await?;
        Ok(with.remove(0))
    }

    /// Sets a device's schedule: `Cordoned` takes no new workloads and keeps what runs there,
    /// `Draining` moves what runs there to other devices of the site (a deployment pinned to
    /// it waits, not placeable, until it opens again), `Open` takes workloads again. The site's
    /// desired state is committed again with the new schedule; setting the schedule a device
    /// has already changes nothing.
    pub async fn set_schedule(
        &self,
        tenant: &TenantId,
        id: &str,
        schedule: Schedule,
    ) -> Result<DeviceRecord, ServiceError> {
        let _change = self.change_lock.lock().await;
        let mut device = self.device(tenant, id).await?;
        if device.schedule == schedule {
            return Ok(device);
        }
        let kind = match schedule {
            Schedule::Open => change::DEVICE_UNCORDONED,
            Schedule::Cordoned => change::DEVICE_CORDONED,
            Schedule::Draining => change::DEVICE_DRAINING,
        };
        let site = device.id.site().clone();
        let tx = self.store.begin().await?;
        tx.set_device_schedule(tenant, &device.id, schedule).await?;
        tx.append_event(&change(
            tenant,
            kind,
            Some(&site),
            &device.id,
            serde_json::json!({"schedule": schedule, "was": device.schedule}),
            &self.clock.now(),
        ))
        .await?;
        tx.commit().await?;
        self.bell.ring();
        device.schedule = schedule;
        let verb = match schedule {
            Schedule::Open => "uncordon",
            Schedule::Cordoned => "cordon",
            Schedule::Draining => "drain",
        };
        self.publish_site(&site, &format!("{verb} {}", device.id))
            .await?;
        Ok(device)
    }
}
