//! What sites tell the control plane: an LO's contact, its batches of numbered reports (device
//! changes, deployment statuses, site events) applied each once with their events, and the
//! resource use its heartbeats carry.

use super::super::ports::ControlStore;
use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::{ControlPlane, change};
use crate::ids::{DeploymentId, DeviceId, SiteId, TenantId};
use crate::margo::status::DeploymentState;
use crate::margo::{DeploymentStatus, DeviceCapabilities};
use serde_json::Value;

impl ControlPlane {
    /// A known site's LO reported in or heartbeat (`connected`), or its link dropped:
    /// `last_seen` is the time of last contact. A site that never opened its uplink is not
    /// found.
    pub async fn site_seen(&self, site: &SiteId, connected: bool) -> Result<(), ServiceError> {
        self.site_contact(None, site, connected).await
    }

    /// Records contact with a site's LO. With `claim` (the tenant an LO names as it opens its
    /// uplink), a new site is created in that tenant, and a site of another tenant is refused.
    async fn site_contact(
        &self,
        claim: Option<&TenantId>,
        site: &SiteId,
        connected: bool,
    ) -> Result<(), ServiceError> {
        // Losing the link is not contact: the last contact stays what it was.
        let contact = connected.then(|| self.clock.now());
        let existing = self.store.get_site(site).await?;
        let tenant = match (&existing, claim) {
            (Some(s), Some(t)) if &s.tenant != t => {
                return Err(ServiceError::Conflict(format!(
                    "site {site} belongs to another tenant than {t}: an LO opens the uplink of a site of its own tenant"
                )));
            }
            (Some(s), _) => s.tenant.clone(),
            (None, Some(t)) => self.tenant(t).await?.id,
            (None, None) => return Err(not_found("site", site)),
        };
        let was = existing.map(|s| s.lo_connected);
        // Only the connection columns change: a read-modify-write of the whole record here would
        // race with publishing and could put back an older manifestVersion.
        let tx = self.store.begin().await?;
        tx.set_site_contact(&tenant, site, connected, contact.as_deref())
            .await?;
        if was != Some(connected) {
            let kind = match connected {
                true => change::SITE_CONNECTED,
                false => change::SITE_DISCONNECTED,
            };
            let at = self.clock.now();
            let e = change(&tenant, kind, Some(site), site.as_str(), Value::Null, &at);
            tx.append_event(&e).await?;
        }
        tx.commit().await?;
        if was != Some(connected) {
            self.bell.ring();
        }
        Ok(())
    }

    /// An LO of `tenant` opened its uplink with the outbox `outbox_id`: the site is connected
    /// (and created in the tenant when it is new; a site of another tenant is refused), and the
    /// answer is the sequence number up to which that outbox's reports are already applied (the
    /// LO drops them without resending).
    pub async fn uplink_opened(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        outbox_id: &str,
    ) -> Result<u64, ServiceError> {
        self.site_contact(Some(tenant), site, true).await?;
        Ok(self
            .store
            .get_cursor(site)
            .await?
            .filter(|c| c.outbox_id == outbox_id)
            .map_or(0, |c| c.applied_seq))
    }

    /// Applies a batch of numbered reports from a site's outbox, in order, each at most once, and
    /// returns the sequence number to acknowledge (everything up to it is stored). A report that
    /// cannot be applied (`None`: unreadable; or refused here) still advances the cursor, so one
    /// bad report never blocks the ones behind it; the refusals come back for the log. A failing
    /// store fails the whole batch, which then commits nothing.
    pub async fn apply_reports(
        &self,
        site: &SiteId,
        outbox_id: &str,
        batch: Vec<NumberedReport>,
    ) -> Result<(u64, Vec<(u64, String)>), ServiceError> {
        // The reports and the cursor commit together: a crash leaves either all of this batch
        // applied with the cursor past it, or none of it with the cursor before it.
        let tx = self.store.begin().await?;
        // Everything a site reports is of the site's tenant.
        let tenant = tx
            .get_site(site)
            .await?
            .ok_or_else(|| not_found("site", site))?
            .tenant;
        let mut cursor = tx
            .get_cursor(site)
            .await?
            .filter(|c| c.outbox_id == outbox_id)
            .unwrap_or_else(|| UplinkCursor {
                site: site.clone(),
                outbox_id: outbox_id.to_owned(),
                applied_seq: 0,
                applied: 0,
                duplicates: 0,
            });
        let mut refused = Vec::new();
        let mut adopted: Option<u64> = None;
        for NumberedReport {
            seq,
            observed_at,
            report,
        } in batch
        {
            if seq <= cursor.applied_seq {
                cursor.duplicates += 1;
                continue;
            }
            let at = observed_at.unwrap_or_else(|| self.clock.now());
            if let Some(SiteReport::Status(status)) = &report {
                adopted = adopted.max(status.adopted_manifest_version);
            }
            let outcome = match report {
                Some(report) => apply_report(&*tx, &tenant, site, report, at).await,
                None => Err(ServiceError::Conflict("unreadable report".into())),
            };
            match outcome {
                Ok(()) => {}
                // The store failed: nothing of this batch commits, and the LO sends it again.
                Err(e @ ServiceError::Backend(_)) => return Err(e),
                Err(e) => refused.push((seq, e.to_string())),
            }
            cursor.applied_seq = seq;
            cursor.applied += 1;
        }
        if let Some(version) = adopted {
            settle_removals(&*tx, &tenant, site, version, &self.clock.now()).await?;
        }
        tx.put_cursor(&cursor).await?;
        self.clock.failpoint("co.reports.before_commit");
        tx.commit().await?;
        self.bell.ring();
        Ok((cursor.applied_seq, refused))
    }

    /// An LO's heartbeat carried the resource use of its online ENs. Telemetry, not a report:
    /// it bypasses the outbox, and a device of another site is refused.
    pub async fn usage_reported(
        &self,
        site: &SiteId,
        usage: Vec<(DeviceId, DeviceUsage)>,
    ) -> Result<(), ServiceError> {
        if let Some((device, _)) = usage.iter().find(|(d, _)| d.site() != site) {
            return Err(ServiceError::Conflict(format!(
                "device {device} is not of site {site}"
            )));
        }
        let tx = self.store.begin().await?;
        for (device, mut u) in usage {
            if u.observed_at.is_empty() {
                u.observed_at = self.clock.now();
            }
            tx.set_device_usage(&device, &u).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` events of a site, oldest first.
    pub async fn site_events(
        &self,
        tenant: &TenantId,
        site: &str,
        limit: u64,
    ) -> Result<Vec<SiteEvent>, ServiceError> {
        let id = SiteId::parse(site).map_err(|_| not_found("site", site))?;
        self.tenant_site(tenant, &id).await?;
        Ok(self.store.site_events(&id, limit).await?)
    }

    /// How far a site's reports are applied.
    pub async fn uplink_cursor(&self, site: &SiteId) -> Result<Option<UplinkCursor>, ServiceError> {
        Ok(self.store.get_cursor(site).await?)
    }

    /// An LO reported the capabilities and liveness of one of its devices.
    pub async fn device_reported(
        &self,
        device: DeviceId,
        capabilities: DeviceCapabilities,
        online: bool,
    ) -> Result<(), ServiceError> {
        let tenant = self.site_tenant(device.site()).await?;
        let tx = self.store.begin().await?;
        record_device(
            &*tx,
            &tenant,
            device,
            capabilities,
            online,
            self.clock.now(),
        )
        .await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(())
    }

    /// An LO reported a deployment's status on a device.
    pub async fn status_reported(
        &self,
        site: &SiteId,
        status: DeploymentStatus,
    ) -> Result<(), ServiceError> {
        let tenant = self.site_tenant(site).await?;
        let tx = self.store.begin().await?;
        record_status(&*tx, &tenant, site, status, self.clock.now()).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(())
    }

    /// The tenant of a known site.
    async fn site_tenant(&self, site: &SiteId) -> Result<TenantId, ServiceError> {
        Ok(self
            .store
            .get_site(site)
            .await?
            .ok_or_else(|| not_found("site", site))?
            .tenant)
    }
}

async fn record_device(
    store: &dyn ControlStore,
    tenant: &TenantId,
    device: DeviceId,
    capabilities: DeviceCapabilities,
    online: bool,
    at: String,
) -> Result<(), ServiceError> {
    let was = store.get_device(tenant, &device).await?.map(|d| d.online);
    let kind = match (was, online) {
        (None, _) => Some(change::DEVICE_JOINED),
        (Some(false), true) => Some(change::DEVICE_ONLINE),
        (Some(true), false) => Some(change::DEVICE_OFFLINE),
        _ => None,
    };
    if let Some(kind) = kind {
        let data = serde_json::json!({ "online": online });
        let e = change(
            tenant,
            kind,
            Some(device.site()),
            device.to_string(),
            data,
            &at,
        );
        store.append_event(&e).await?;
    }
    store
        .upsert_device(&DeviceRecord {
            id: device,
            tenant: tenant.clone(),
            capabilities,
            online,
            last_seen: Some(at),
            usage: None,
            model: None,
            schedule: Schedule::Open,
        })
        .await?;
    Ok(())
}

/// Marks a deployment removed, with its event.
async fn mark_removed(
    store: &dyn ControlStore,
    deployment: &DeploymentRecord,
    at: &str,
) -> Result<(), ServiceError> {
    store
        .update_deployment_phase(&deployment.id, DeploymentPhase::Removed)
        .await?;
    let data = serde_json::json!({"app_id": deployment.app_id, "version": deployment.version});
    let e = change(
        &deployment.tenant,
        change::DEPLOYMENT_REMOVED,
        Some(&deployment.site),
        deployment.id.as_str(),
        data,
        at,
    );
    store.append_event(&e).await?;
    Ok(())
}

async fn record_status(
    store: &dyn ControlStore,
    tenant: &TenantId,
    site: &SiteId,
    status: DeploymentStatus,
    at: String,
) -> Result<(), ServiceError> {
    let id = &status.deployment_id;
    let deployment = match DeploymentId::parse(id) {
        Ok(did) => store.get_deployment(tenant, &did).await?,
        Err(_) => None,
    }
    .ok_or_else(|| not_found("deployment", id))?;
    if &deployment.site != site {
        return Err(ServiceError::Conflict(format!(
            "deployment {} belongs to site {}, not {site}",
            deployment.id, deployment.site
        )));
    }
    let device_id = status
        .device_id
        .clone()
        .unwrap_or_else(|| format!("{site}/*"));
    // An LO speaks for its own site's devices only.
    let in_site = device_id == format!("{site}/*")
        || DeviceId::parse(&device_id).is_ok_and(|d| d.site() == site);
    if !in_site {
        return Err(ServiceError::Conflict(format!(
            "device {device_id} is not of site {site}"
        )));
    }
    let before = store
        .device_statuses(&deployment.id)
        .await?
        .into_iter()
        .find(|s| s.device_id == device_id)
        .map(|s| s.state);
    let state = status.status.state;
    if before != Some(state) {
        let data = serde_json::json!({
            "device_id": device_id,
            "state": state,
            "error": status.status.error,
        });
        let e = change(
            tenant,
            change::DEPLOYMENT_STATUS,
            Some(site),
            deployment.id.as_str(),
            data,
            &at,
        );
        store.append_event(&e).await?;
    }
    store
        .upsert_device_status(&DeviceStatusRecord {
            deployment_id: deployment.id.clone(),
            device_id,
            state,
            error: status.status.error.clone(),
            components: status.components.clone(),
            updated_at: at.clone(),
        })
        .await?;
    if deployment.phase == DeploymentPhase::Removing {
        let statuses = store.device_statuses(&deployment.id).await?;
        if statuses.iter().all(|s| s.state == DeploymentState::Removed) {
            mark_removed(store, &deployment, &at).await?;
        }
    }
    Ok(())
}

/// The site's LO runs desired state `version`: once that is the newest, every deployment being
/// removed is gone from it, so one no device reports running any more (perhaps one the LO never
/// saw: created and deleted while the site was cut off) is removed.
async fn settle_removals(
    store: &dyn ControlStore,
    tenant: &TenantId,
    site: &SiteId,
    version: u64,
    at: &str,
) -> Result<(), ServiceError> {
    let newest = store.get_site(site).await?.map(|s| s.manifest_version);
    if newest.is_none_or(|newest| version < newest) {
        return Ok(());
    }
    for deployment in store.list_deployments(tenant, Some(site)).await? {
        if deployment.phase != DeploymentPhase::Removing {
            continue;
        }
        let statuses = store.device_statuses(&deployment.id).await?;
        if statuses.iter().all(|s| s.state == DeploymentState::Removed) {
            mark_removed(store, &deployment, at).await?;
        }
    }
    Ok(())
}

/// Applies one report, observed at `at`, through `store` (a transaction, when applied as part
/// of a batch).
async fn apply_report(
    store: &dyn ControlStore,
    tenant: &TenantId,
    site: &SiteId,
    report: SiteReport,
    at: String,
) -> Result<(), ServiceError> {
    let logged = |e: &SiteEvent| {
        let data = serde_json::json!({
            "kind": e.kind,
            "message": e.message,
            "device_id": e.device_id,
            "deployment_id": e.deployment_id,
            "component": e.component,
        });
        change(
            tenant,
            change::SITE_EVENT,
            Some(site),
            site.as_str(),
            data,
            &e.observed_at,
        )
    };
    let event = |kind: &str, message: String| SiteEvent {
        site: site.clone(),
        kind: kind.to_owned(),
        device_id: None,
        deployment_id: None,
        component: None,
        message,
        observed_at: at.clone(),
    };
    match report {
        SiteReport::Device {
            device,
            capabilities,
            online,
        } => {
            if device.site() != site {
                return Err(ServiceError::Conflict(format!(
                    "device {device} is not of site {site}"
                )));
            }
            record_device(store, tenant, device, *capabilities, online, at).await
        }
        SiteReport::Status(status) => record_status(store, tenant, site, status, at).await,
        SiteReport::Rejected { commit, problems } => {
            let message = format!("commit {commit} refused, the last good one stays: {problems}");
            let e = event(event_kind::DESIRED_STATE_REJECTED, message);
            store.append_event(&logged(&e)).await?;
            Ok(store.append_site_event(&e).await?)
        }
        SiteReport::Skipped {
            from_commit,
            to_commit,
            skipped,
        } => {
            let message = format!(
                "went from {from_commit} straight to {to_commit}; never applied: {}",
                skipped.join(", ")
            );
            let e = event(event_kind::DESIRED_STATE_SKIPPED, message);
            store.append_event(&logged(&e)).await?;
            Ok(store.append_site_event(&e).await?)
        }
        SiteReport::Component {
            kind,
            device_id,
            deployment_id,
            component,
            message,
        } => {
            let in_site = DeviceId::parse(&device_id).is_ok_and(|d| d.site() == site);
            if !in_site {
                return Err(ServiceError::Conflict(format!(
                    "device {device_id} is not of site {site}"
                )));
            }
            let e = SiteEvent {
                device_id: Some(device_id),
                deployment_id: Some(deployment_id),
                component: Some(component),
                ..event(&kind, message)
            };
            store.append_event(&logged(&e)).await?;
            Ok(store.append_site_event(&e).await?)
        }
    }
}
