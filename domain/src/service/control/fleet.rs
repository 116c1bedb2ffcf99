//! The fleet one thing at a time: a device read, cordoned, drained or uncordoned; a site's
//! labels and time zone set. Each change is stored and committed to the site's `site.yaml` in
//! the deployments repository, so the site's LO applies it from Git like the rest of its
//! desired state, also while the CO cannot reach it.

use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::{ControlPlane, change};
use crate::ids::{DeviceId, TenantId, check_label_key, check_label_value, check_time_zone};
use crate::problem::Problems;
use std::collections::BTreeMap;

/// What an operator changes of a site; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteUpdate {
    /// The site's labels, all of them (they replace the ones it has).
    pub labels: Option<BTreeMap<String, String>>,
    /// `Some(None)` clears the time zone.
    pub time_zone: Option<Option<String>>,
}

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

    /// Sets a site's labels and time zone, then commits the site again so its `site.yaml`
    /// carries them. Every bad label and an unknown time zone are reported together; nothing
    /// changes then.
    pub async fn update_site(
        &self,
        tenant: &TenantId,
        id: &str,
        update: SiteUpdate,
    ) -> Result<SiteRecord, ServiceError> {
        let _change = self.change_lock.lock().await;
        let mut site = self.site(tenant, id).await?;
        let mut problems = Problems::default();
        for (key, value) in update.labels.iter().flatten() {
            if let Err(why) = check_label_key(key) {
                problems.push(format!("labels.{key}"), why);
            }
            if let Err(why) = check_label_value(value) {
                problems.push(format!("labels.{key}"), why);
            }
        }
        if let Some(Some(tz)) = &update.time_zone
            && let Err(why) = check_time_zone(tz)
        {
            problems.push("time_zone", why);
        }
        if !problems.is_empty() {
            return Err(ServiceError::Invalid {
                what: "site".into(),
                problems,
            });
        }
        let labels = update.labels.unwrap_or_else(|| site.labels.clone());
        let time_zone = update.time_zone.unwrap_or_else(|| site.time_zone.clone());
        if labels == site.labels && time_zone == site.time_zone {
            return Ok(site);
        }
        let tx = self.store.begin().await?;
        tx.set_site_meta(tenant, &site.id, &labels, time_zone.as_deref())
            .await?;
        tx.append_event(&change(
            tenant,
            change::SITE_UPDATED,
            Some(&site.id),
            &site.id,
            serde_json::json!({"labels": labels, "time_zone": time_zone}),
            &self.clock.now(),
        ))
        .await?;
        tx.commit().await?;
        self.bell.ring();
        site.labels = labels;
        site.time_zone = time_zone;
        self.publish_site(&site.id, &format!("update site {}", site.id))
            .await?;
        Ok(site)
    }
}
