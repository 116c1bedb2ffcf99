//! The control plane's use cases: add an application, deploy it to a site, undeploy it, take in
//! status and fleet reports from LOs.

use super::ports::{
    Ambient, ControlStore, DesiredStateRepo, EventBell, NoBell, PackageSource, SiteNotifier,
};
use super::records::*;
use super::{ServiceError, not_found};
use crate::ids::{AppId, DeploymentId, DeviceId, SiteId};
use crate::layout::{SiteDesiredState, SiteFile, SiteFiles};
use crate::margo::manifest::digest_of;
use crate::margo::status::DeploymentState;
use crate::margo::{
    ApplicationDeployment, ApplicationDescription, DeploymentStatus, DeviceCapabilities,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

mod deploy;
mod lists;
mod live;
mod update;
pub use deploy::{DeployRequest, MAX_IDEMPOTENCY_KEY};
pub use live::MAX_LOG_LINES;
pub use update::UpdateRequest;

pub struct ControlPlane {
    store: Arc<dyn ControlStore>,
    git: Arc<dyn DesiredStateRepo>,
    notifier: Arc<dyn SiteNotifier>,
    packages: Arc<dyn PackageSource>,
    clock: Arc<dyn Ambient>,
    /// Serializes publishing so manifest versions of a site strictly increase.
    publish_lock: async_lock::Mutex<()>,
    /// Serializes changes to existing deployments (update, undeploy), so a conditional change
    /// checks and writes with nothing in between. The CO is the only writer of deployments.
    change_lock: async_lock::Mutex<()>,
    /// Rung after each commit that logged events.
    bell: Arc<dyn EventBell>,
}

impl ControlPlane {
    pub fn new(
        store: Arc<dyn ControlStore>,
        git: Arc<dyn DesiredStateRepo>,
        notifier: Arc<dyn SiteNotifier>,
        packages: Arc<dyn PackageSource>,
        clock: Arc<dyn Ambient>,
    ) -> Self {
        Self {
            store,
            git,
            notifier,
            packages,
            clock,
            publish_lock: Default::default(),
            change_lock: Default::default(),
            bell: Arc::new(NoBell),
        }
    }

    /// The same control plane, ringing `bell` after each commit that logged events.
    pub fn with_bell(mut self, bell: Arc<dyn EventBell>) -> Self {
        self.bell = bell;
        self
    }

    /// Deletes the events created before `before` (RFC 3339); returns how many.
    pub async fn prune_events(&self, before: &str) -> Result<u64, ServiceError> {
        Ok(self.store.prune_events(before).await?)
    }

    /// The number of the newest event (0 when there is none).
    pub async fn last_event_id(&self) -> Result<u64, ServiceError> {
        Ok(self.store.last_event_id().await?)
    }

    /// What happened to a deployment, oldest first: created, updated, each device's status
    /// changes, removing, removed (at most the first 1,000 events).
    pub async fn deployment_history(&self, id: &str) -> Result<Vec<EventRecord>, ServiceError> {
        let deployment = self.deployment(id).await?;
        let filter = EventFilter {
            subject: Some(deployment.id.to_string()),
            ..EventFilter::default()
        };
        Ok(self.store.events_after(0, &filter, 1000).await?)
    }

    /// Events numbered above `after` of `filter`, at most `limit`, in order.
    pub async fn events_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<Vec<EventRecord>, ServiceError> {
        Ok(self.store.events_after(after, filter, limit).await?)
    }

    /// Registers an application from a directory or a Git repository the CO can read.
    pub async fn add_app_from_source(
        &self,
        source: &str,
    ) -> Result<AppVersionRecord, ServiceError> {
        let package = self
            .packages
            .fetch(source)
            .await
            .map_err(|e| invalid_source(source, e))?;
        let stored = self
            .store_app(&package.description_yaml, source, Some(&package.folder))
            .await;
        // The copy is kept only for a version it brought.
        if !matches!(stored, Ok((_, true))) {
            self.packages.discard(&package.folder).await;
        }
        Ok(stored?.0)
    }

    pub fn store(&self) -> &Arc<dyn ControlStore> {
        &self.store
    }

    /// Registers an application version from its description text; adding the same bytes twice
    /// is idempotent, a different description under an existing version is a conflict.
    /// `folder` is where the package's files are kept: `./` component repositories (the EOS
    /// development form for WASM modules) are resolved against it into `file://` paths.
    pub async fn add_app(
        &self,
        description_yaml: &str,
        source: &str,
        folder: Option<&str>,
    ) -> Result<AppVersionRecord, ServiceError> {
        Ok(self.store_app(description_yaml, source, folder).await?.0)
    }

    /// Adds a version, or finds it stored already with the same description: the record, and
    /// whether it is new. The digest is of the description as published, before local
    /// repositories are resolved to the CO's copy of the package, so adding the same package
    /// again finds the version it added before.
    async fn store_app(
        &self,
        description_yaml: &str,
        source: &str,
        folder: Option<&str>,
    ) -> Result<(AppVersionRecord, bool), ServiceError> {
        let mut ad = ApplicationDescription::from_yaml(description_yaml).map_err(|problems| {
            ServiceError::Invalid {
                what: "application description".into(),
                problems,
            }
        })?;
        let digest = digest_of(ad.to_yaml().as_bytes());
        resolve_local_repositories(&mut ad, folder)?;
        let document = ad.to_yaml();
        let record = AppVersionRecord {
            app_id: ad.id.clone(),
            version: ad.metadata.version.clone(),
            name: ad.metadata.name.clone(),
            description: ad.metadata.description.clone(),
            digest,
            document,
            source: source.to_owned(),
            created_at: self.clock.now(),
        };
        let app = AppId::parse(&record.app_id).map_err(|e| ServiceError::Backend(e.to_string()))?;
        if let Some(existing) = self
            .store
            .app_versions(&app)
            .await?
            .into_iter()
            .find(|v| v.version == record.version)
        {
            return if existing.digest == record.digest {
                Ok((existing, false))
            } else {
                Err(ServiceError::Conflict(format!(
                    "{}@{} exists with another description (digest {}); versions are immutable, publish a new version",
                    record.app_id, record.version, existing.digest
                )))
            };
        }
        let tx = self.store.begin().await?;
        tx.insert_app_version(&record).await?;
        tx.append_event(&change(
            change::APP_ADDED,
            None,
            &record.app_id,
            serde_json::json!({"version": record.version, "name": record.name}),
            &record.created_at,
        ))
        .await?;
        tx.commit().await?;
        self.bell.ring();
        Ok((record, true))
    }

    pub async fn app_versions(&self, app_id: &str) -> Result<Vec<AppVersionRecord>, ServiceError> {
        let app = AppId::parse(app_id).map_err(|_| not_found("application", app_id))?;
        let versions = self.store.app_versions(&app).await?;
        if versions.is_empty() {
            return Err(not_found("application", app_id));
        }
        Ok(versions)
    }

    async fn app_version(
        &self,
        app_id: &str,
        version: Option<&str>,
    ) -> Result<AppVersionRecord, ServiceError> {
        let versions = self.app_versions(app_id).await?;
        match version {
            Some(v) => versions
                .into_iter()
                .find(|r| r.version == v)
                .ok_or_else(|| not_found("application version", format!("{app_id}@{v}"))),
            None => versions
                .into_iter()
                .last()
                .ok_or_else(|| not_found("application", app_id)),
        }
    }

    /// Removes a deployment from the site's desired state; it is `removed` once the LO says so.
    pub async fn undeploy(&self, id: &str) -> Result<DeploymentRecord, ServiceError> {
        let _change = self.change_lock.lock().await;
        let mut record = self.deployment(id).await?;
        if record.phase == DeploymentPhase::Active {
            let tx = self.store.begin().await?;
            tx.update_deployment_phase(&record.id, DeploymentPhase::Removing)
                .await?;
            tx.append_event(&change(
                change::DEPLOYMENT_REMOVING,
                Some(&record.site),
                record.id.as_str(),
                serde_json::json!({"app_id": record.app_id, "version": record.version}),
                &self.clock.now(),
            ))
            .await?;
            tx.commit().await?;
            self.bell.ring();
            record.phase = DeploymentPhase::Removing;
            self.publish_site(
                &record.site,
                &format!(
                    "undeploy {} ({}@{})",
                    record.id, record.app_id, record.version
                ),
            )
            .await?;
        }
        Ok(record)
    }

    async fn deployment(&self, id: &str) -> Result<DeploymentRecord, ServiceError> {
        let did = DeploymentId::parse(id).map_err(|_| not_found("deployment", id))?;
        self.store
            .get_deployment(&did)
            .await?
            .ok_or_else(|| not_found("deployment", id))
    }

    /// A deployment with its per-device status.
    pub async fn deployment_view(&self, id: &str) -> Result<DeploymentView, ServiceError> {
        let deployment = self.deployment(id).await?;
        self.view_of(deployment).await
    }

    pub async fn list_deployment_views(&self) -> Result<Vec<DeploymentView>, ServiceError> {
        let mut out = Vec::new();
        for d in self.store.list_deployments(None).await? {
            out.push(self.view_of(d).await?);
        }
        Ok(out)
    }

    async fn view_of(&self, deployment: DeploymentRecord) -> Result<DeploymentView, ServiceError> {
        let devices = self.store.device_statuses(&deployment.id).await?;
        let state = match deployment.phase {
            DeploymentPhase::Removed => DeploymentState::Removed,
            _ => DeploymentState::overall(devices.iter().map(|d| d.state))
                .unwrap_or(DeploymentState::Pending),
        };
        Ok(DeploymentView {
            deployment,
            state,
            devices,
        })
    }

    /// The files of a site's desired state as the store has it, at the site's stored version.
    async fn site_files(&self, site: &SiteRecord) -> Result<SiteFiles, ServiceError> {
        let mut deployments = BTreeMap::new();
        for d in self
            .store
            .list_deployments(Some(&site.id))
            .await?
            .into_iter()
            .filter(|d| d.phase == DeploymentPhase::Active)
        {
            let doc = ApplicationDeployment::from_yaml(&d.document).map_err(|p| {
                ServiceError::Backend(format!("stored deployment {} is invalid: {p}", d.id))
            })?;
            deployments.insert(d.id, doc);
        }
        let state = SiteDesiredState {
            site: site.id.clone(),
            manifest_version: site.manifest_version,
            deployments,
        };
        Ok(state.to_files(&SiteFile {
            id: site.id.clone(),
            labels: site.labels.clone(),
        }))
    }

    async fn publish_site(&self, site: &SiteId, message: &str) -> Result<String, ServiceError> {
        let _guard = self.publish_lock.lock().await;
        let mut site_record = self
            .store
            .get_site(site)
            .await?
            .ok_or_else(|| not_found("site", site))?;
        // The new manifestVersion is stored before the commit is made: a crash in between
        // leaves a gap, never a repeated version, which LOs would refuse.
        site_record.manifest_version += 1;
        self.store.upsert_site(&site_record).await?;
        self.clock.failpoint("co.deploy.before_commit");
        let files = self.site_files(&site_record).await?;
        let commit = self
            .git
            .publish(site, files, message)
            .await
            .map_err(ServiceError::Backend)?;
        self.notifier.notify(site, &commit).await;
        Ok(commit)
    }

    /// Publishes again every site whose desired state in the deployments repository is not what
    /// the store has: after a restart, this makes good a change the store has but the
    /// repository missed (a crash between the two). Sites already in step are left alone.
    /// Returns the sites that could not be published, with the reason.
    pub async fn resync_sites(&self) -> Result<Vec<(SiteId, String)>, ServiceError> {
        let mut failed = Vec::new();
        for site in self.store.list_sites().await? {
            let wanted = self.site_files(&site).await?;
            if self.git.current(&site.id).await.is_ok_and(|c| c == wanted) {
                continue;
            }
            if let Err(e) = self.publish_site(&site.id, "resync after start").await {
                failed.push((site.id, e.to_string()));
            }
        }
        Ok(failed)
    }

    /// An LO connected, reported in or heartbeat (`connected`), or its link dropped: the site
    /// exists from now on, and `last_seen` is the time of last contact.
    pub async fn site_seen(&self, site: &SiteId, connected: bool) -> Result<(), ServiceError> {
        // Losing the link is not contact: the last contact stays what it was.
        let contact = connected.then(|| self.clock.now());
        let was = self.store.get_site(site).await?.map(|s| s.lo_connected);
        // Only the connection columns change: a read-modify-write of the whole record here would
        // race with publishing and could put back an older manifestVersion.
        let tx = self.store.begin().await?;
        tx.set_site_contact(site, connected, contact.as_deref())
            .await?;
        if was != Some(connected) {
            let kind = match connected {
                true => change::SITE_CONNECTED,
                false => change::SITE_DISCONNECTED,
            };
            let at = self.clock.now();
            tx.append_event(&change(kind, Some(site), site.as_str(), Value::Null, &at))
                .await?;
        }
        tx.commit().await?;
        if was != Some(connected) {
            self.bell.ring();
        }
        Ok(())
    }

    /// An LO opened its uplink with the outbox `outbox_id`: the site is connected, and the answer
    /// is the sequence number up to which that outbox's reports are already applied (the LO drops
    /// them without resending).
    pub async fn uplink_opened(&self, site: &SiteId, outbox_id: &str) -> Result<u64, ServiceError> {
        self.site_seen(site, true).await?;
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
                Some(report) => apply_report(&*tx, site, report, at).await,
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
            settle_removals(&*tx, site, version, &self.clock.now()).await?;
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
        site: &str,
        limit: u64,
    ) -> Result<Vec<SiteEvent>, ServiceError> {
        let id = SiteId::parse(site).map_err(|_| not_found("site", site))?;
        if self.store.get_site(&id).await?.is_none() {
            return Err(not_found("site", site));
        }
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
        let tx = self.store.begin().await?;
        record_device(&*tx, device, capabilities, online, self.clock.now()).await?;
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
        let tx = self.store.begin().await?;
        record_status(&*tx, site, status, self.clock.now()).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(())
    }
}

async fn record_device(
    store: &dyn ControlStore,
    device: DeviceId,
    capabilities: DeviceCapabilities,
    online: bool,
    at: String,
) -> Result<(), ServiceError> {
    let was = store.get_device(&device).await?.map(|d| d.online);
    let kind = match (was, online) {
        (None, _) => Some(change::DEVICE_JOINED),
        (Some(false), true) => Some(change::DEVICE_ONLINE),
        (Some(true), false) => Some(change::DEVICE_OFFLINE),
        _ => None,
    };
    if let Some(kind) = kind {
        let data = serde_json::json!({ "online": online });
        let e = change(kind, Some(device.site()), device.to_string(), data, &at);
        store.append_event(&e).await?;
    }
    store
        .upsert_device(&DeviceRecord {
            id: device,
            capabilities,
            online,
            last_seen: Some(at),
            usage: None,
        })
        .await?;
    Ok(())
}

/// An event of the log, not yet numbered.
fn change(
    kind: &str,
    site: Option<&SiteId>,
    subject: impl ToString,
    data: Value,
    at: &str,
) -> EventRecord {
    EventRecord {
        id: 0,
        kind: kind.to_owned(),
        site: site.cloned(),
        subject: subject.to_string(),
        data,
        created_at: at.to_owned(),
    }
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
    site: &SiteId,
    status: DeploymentStatus,
    at: String,
) -> Result<(), ServiceError> {
    let id = &status.deployment_id;
    let deployment = match DeploymentId::parse(id) {
        Ok(did) => store.get_deployment(&did).await?,
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
    site: &SiteId,
    version: u64,
    at: &str,
) -> Result<(), ServiceError> {
    let newest = store.get_site(site).await?.map(|s| s.manifest_version);
    if newest.is_none_or(|newest| version < newest) {
        return Ok(());
    }
    for deployment in store.list_deployments(Some(site)).await? {
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
            record_device(store, device, *capabilities, online, at).await
        }
        SiteReport::Status(status) => record_status(store, site, status, at).await,
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

fn invalid_source(source: &str, reason: String) -> ServiceError {
    let mut problems = crate::Problems::default();
    problems.push("source", format!("{source}: {reason}"));
    ServiceError::Invalid {
        what: "application source".into(),
        problems,
    }
}

fn resolve_local_repositories(
    ad: &mut ApplicationDescription,
    folder: Option<&str>,
) -> Result<(), ServiceError> {
    for (i, profile) in ad.deployment_profiles.iter_mut().enumerate() {
        for (j, component) in profile.components.iter_mut().enumerate() {
            let Some(repo) = component.properties.repository.as_mut() else {
                continue;
            };
            let Some(relative) = repo.strip_prefix("./") else {
                continue;
            };
            let Some(folder) = folder else {
                let mut problems = crate::Problems::default();
                problems.push(format!("deploymentProfiles[{i}].components[{j}].properties.repository"), "a ./ path needs a package folder: add the application from its directory or repository");
                return Err(ServiceError::Invalid {
                    what: "application description".into(),
                    problems,
                });
            };
            *repo = format!("file://{}/{relative}", folder.trim_end_matches('/'));
        }
    }
    Ok(())
}

/// The description of a stored app version, read back (it was checked when it was added).
fn stored_description(version: &AppVersionRecord) -> Result<ApplicationDescription, ServiceError> {
    ApplicationDescription::from_yaml(&version.document).map_err(|problems| ServiceError::Invalid {
        what: "stored description".into(),
        problems,
    })
}

fn invalid(path: &str, message: String) -> ServiceError {
    let mut problems = crate::Problems::default();
    problems.push(path, message);
    ServiceError::Invalid {
        what: "deployment request".into(),
        problems,
    }
}
