//! The control plane's use cases: add an application, deploy it to a site, undeploy it. What
//! sites report is in `reports`, the event log in `events`, lists in `lists`.

use super::ports::{
    Ambient, ControlStore, DesiredStateRepo, EventBell, NoBell, PackageSource, SiteNotifier,
};
use super::records::*;
use super::{ServiceError, not_found};
use crate::ids::{AppId, DeploymentId, SiteId, TenantId};
use crate::layout::{SiteDesiredState, SiteFile, SiteFiles};
use crate::margo::manifest::digest_of;
use crate::margo::status::DeploymentState;
use crate::margo::{ApplicationDeployment, ApplicationDescription};
use crate::state::PACKAGE_ARTIFACT;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

mod artifacts;
mod claims;
mod deploy;
mod events;
mod fleet;
mod lists;
mod live;
mod models;
mod reports;
mod resources;
mod tenants;
mod update;
pub use artifacts::{ArtifactUse, ArtifactView, SignatureStatus};
pub use claims::{
    ClaimRefused, ClaimRequest, DEFAULT_CLAIM_TTL_SECS, MAX_CLAIM_TTL_SECS, TOKEN_PREFIX,
    revocation_covers, split_claim_token, token_hash,
};
pub use deploy::{DeployRequest, MAX_IDEMPOTENCY_KEY};
pub use fleet::SiteUpdate;
pub use live::MAX_LOG_LINES;
pub use models::Against;
pub use resources::MAX_RESOURCE_BYTES;
pub use tenants::{TenantRequest, UserRequest};
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
    /// Asks registries about the artifacts deployments run (the artifacts view).
    artifacts: Option<Arc<dyn super::ports::ArtifactInspector>>,
    /// The hosts (`HOST` or `HOST:PORT`) Git and registry sources may name, and the artifacts
    /// view may ask; empty: any.
    source_hosts: Vec<String>,
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
            artifacts: None,
            source_hosts: Vec::new(),
        }
    }

    /// The same control plane, reaching only `hosts` for sources and registries (empty: any).
    pub fn with_source_hosts(mut self, hosts: Vec<String>) -> Self {
        self.source_hosts = hosts;
        self
    }

    /// Refused unless the CO's configuration lets it reach the host `source` names.
    pub(crate) fn check_source_host(&self, source: &str) -> Result<(), String> {
        if self.source_hosts.is_empty() {
            return Ok(());
        }
        let host =
            source_host(source).ok_or_else(|| "names no host the CO may reach".to_owned())?;
        match self
            .source_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
        {
            true => Ok(()),
            false => Err(format!(
                "the CO's configuration does not let it reach {host} (source_hosts: {})",
                self.source_hosts.join(", ")
            )),
        }
    }

    /// The same control plane, answering the artifacts view with what `inspector` finds in
    /// registries.
    pub fn with_artifacts(mut self, inspector: Arc<dyn super::ports::ArtifactInspector>) -> Self {
        self.artifacts = Some(inspector);
        self
    }

    /// The same control plane, ringing `bell` after each commit that logged events.
    pub fn with_bell(mut self, bell: Arc<dyn EventBell>) -> Self {
        self.bell = bell;
        self
    }

    /// Registers an application from an OCI artifact, a Git repository, or a folder on the
    /// CO's own disk, which only a platform admin may name (the CO's disk is not a tenant's).
    pub async fn add_app_from_source(
        &self,
        actor: &crate::auth::Principal,
        tenant: &TenantId,
        source: &str,
    ) -> Result<AppVersionRecord, ServiceError> {
        let remote = source.contains("://")
            || source.contains("::")
            || source.starts_with("git@")
            || source.ends_with(".git");
        if !remote && !actor.is_platform_admin() {
            return Err(ServiceError::Forbidden(format!(
                "{} may not read a folder on the CO's disk ({source:?}): only a platform admin \
                 may; name an OCI artifact (oci://…) or a Git repository, or send the \
                 description itself",
                actor.subject
            )));
        }
        if remote {
            self.check_source_host(source)
                .map_err(|e| invalid_source(source, e))?;
        }
        let signatures = self.signature_policy(tenant).await?;
        let package = self
            .packages
            .fetch(tenant, source, &signatures)
            .await
            .map_err(|e| invalid_source(source, e))?;
        let stored = self
            .store_app(
                tenant,
                &package.description_yaml,
                source,
                Some(&package.folder),
            )
            .await;
        // The copy is kept only for a version it brought.
        if !matches!(stored, Ok((_, true))) {
            self.packages.discard(&package.folder).await;
        }
        Ok(stored?.0)
    }

    /// Refuses a description whose components ask more of a device than the tenant's workload
    /// security policy allows, naming each field; the policy when it allows all.
    pub(crate) async fn check_workload_policy(
        &self,
        tenant: &TenantId,
        ad: &ApplicationDescription,
        what: &str,
    ) -> Result<crate::workload::WorkloadPolicy, ServiceError> {
        let policy = self.workload_policy(tenant).await?;
        let found = crate::workload::description_problems(ad, &policy);
        if found.is_empty() {
            return Ok(policy);
        }
        let mut problems = crate::Problems::default();
        for (field, message) in found {
            problems.push(field, message);
        }
        Err(ServiceError::Invalid {
            what: what.into(),
            problems,
        })
    }

    /// Registers an application from an uploaded package: a gzip-compressed tar of the
    /// package's folder (what `edgectl app add ./folder` sends), for any caller who may add apps.
    pub async fn add_app_from_upload(
        &self,
        tenant: &TenantId,
        archive: &[u8],
    ) -> Result<AppVersionRecord, ServiceError> {
        let package = self
            .packages
            .unpack(archive)
            .await
            .map_err(|e| invalid_source("the uploaded package", e))?;
        let digest = digest_of(archive);
        let source = format!("upload:{digest}");
        let stored = self
            .store_app(
                tenant,
                &package.description_yaml,
                &source,
                Some(&package.folder),
            )
            .await;
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
        tenant: &TenantId,
        description_yaml: &str,
        source: &str,
        folder: Option<&str>,
    ) -> Result<AppVersionRecord, ServiceError> {
        Ok(self
            .store_app(tenant, description_yaml, source, folder)
            .await?
            .0)
    }

    /// Adds a version, or finds it stored already with the same description: the record, and
    /// whether it is new. The digest is of the description as published, before local
    /// repositories are resolved to the CO's copy of the package, so adding the same package
    /// again finds the version it added before.
    async fn store_app(
        &self,
        tenant: &TenantId,
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
        self.check_workload_policy(tenant, &ad, "application description")
            .await?;
        let resources = self.read_resources(tenant, &ad, folder).await?;
        self.keep_package_artifacts(tenant, &mut ad, folder).await?;
        let document = ad.to_yaml();
        self.tenant(tenant).await?;
        let record = AppVersionRecord {
            tenant: tenant.clone(),
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
            .app_versions(tenant, &app)
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
        for r in &resources {
            tx.insert_app_resource(r).await?;
        }
        tx.append_event(&change(
            tenant,
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

    pub async fn app_versions(
        &self,
        tenant: &TenantId,
        app_id: &str,
    ) -> Result<Vec<AppVersionRecord>, ServiceError> {
        let app = AppId::parse(app_id).map_err(|_| not_found("application", app_id))?;
        let versions = self.store.app_versions(tenant, &app).await?;
        if versions.is_empty() {
            return Err(not_found("application", app_id));
        }
        Ok(versions)
    }

    async fn app_version(
        &self,
        tenant: &TenantId,
        app_id: &str,
        version: Option<&str>,
    ) -> Result<AppVersionRecord, ServiceError> {
        let versions = self.app_versions(tenant, app_id).await?;
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
    pub async fn undeploy(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<DeploymentRecord, ServiceError> {
        let _change = self.change_lock.lock().await;
        let mut record = self.deployment(tenant, id).await?;
        if record.phase == DeploymentPhase::Active {
            let tx = self.store.begin().await?;
            tx.update_deployment_phase(&record.id, DeploymentPhase::Removing)
                .await?;
            tx.append_event(&change(
                tenant,
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

    async fn deployment(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<DeploymentRecord, ServiceError> {
        let did = DeploymentId::parse(id).map_err(|_| not_found("deployment", id))?;
        self.store
            .get_deployment(tenant, &did)
            .await?
            .ok_or_else(|| not_found("deployment", id))
    }

    /// A deployment with its per-device status.
    pub async fn deployment_view(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<DeploymentView, ServiceError> {
        let deployment = self.deployment(tenant, id).await?;
        self.view_of(deployment).await
    }

    /// The tenant, which must exist: what a request names is checked before anything is read
    /// or written for it.
    pub async fn tenant(&self, id: &TenantId) -> Result<TenantRecord, ServiceError> {
        self.store
            .get_tenant(id)
            .await?
            .ok_or_else(|| not_found("tenant", id))
    }

    /// One of the tenant's sites.
    pub async fn site(&self, tenant: &TenantId, id: &str) -> Result<SiteRecord, ServiceError> {
        let site = SiteId::parse(id).map_err(|_| not_found("site", id))?;
        self.tenant_site(tenant, &site).await
    }

    /// The tenant's sites among `ids`, read together; ids of no site of the tenant are left
    /// out.
    pub async fn sites_of(
        &self,
        tenant: &TenantId,
        ids: &[SiteId],
    ) -> Result<Vec<SiteRecord>, ServiceError> {
        Ok(self.store.sites_by_ids(tenant, ids).await?)
    }

    /// A site of the tenant. Another tenant's site is not found, exactly as a site that does
    /// not exist, so a reply never tells one tenant what another has.
    async fn tenant_site(
        &self,
        tenant: &TenantId,
        site: &SiteId,
    ) -> Result<SiteRecord, ServiceError> {
        self.store
            .get_site(site)
            .await?
            .filter(|s| &s.tenant == tenant)
            .ok_or_else(|| not_found("site", site))
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
            .list_deployments(&site.tenant, Some(&site.id))
            .await?
            .into_iter()
            .filter(|d| d.phase == DeploymentPhase::Active)
        {
            let doc = ApplicationDeployment::from_yaml(&d.document).map_err(|p| {
                ServiceError::Backend(format!("stored deployment {} is invalid: {p}", d.id))
            })?;
            deployments.insert(d.id, doc);
        }
        let mut meta = SiteFile::new(site.id.clone());
        meta.labels = site.labels.clone();
        meta.time_zone = site.time_zone.clone();
        for d in self
            .store
            .list_devices(&site.tenant, Some(&site.id))
            .await?
        {
            meta.set_schedule(d.id.host().as_str(), d.schedule);
        }
        let state = SiteDesiredState {
            site: site.id.clone(),
            manifest_version: site.manifest_version,
            deployments,
            meta,
        };
        Ok(state.to_files())
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
}

/// An event of the log, not yet numbered.
fn change(
    tenant: &TenantId,
    kind: &str,
    site: Option<&SiteId>,
    subject: impl ToString,
    data: Value,
    at: &str,
) -> EventRecord {
    EventRecord {
        id: 0,
        tenant: tenant.clone(),
        kind: kind.to_owned(),
        site: site.cloned(),
        subject: subject.to_string(),
        data,
        created_at: at.to_owned(),
    }
}

/// The host (`HOST` or `HOST:PORT`) a remote source names: `oci://HOST/…`, `https://HOST/…`,
/// `ssh://[USER@]HOST/…`, `git@HOST:PATH`, or a registry reference `HOST/NAME:TAG`.
pub fn source_host(source: &str) -> Option<String> {
    let rest = source.split_once("://").map_or(source, |(_, rest)| rest);
    let rest = rest
        .rsplit_once('@')
        .filter(|(user, _)| !user.contains('/'))
        .map_or(rest, |(_, r)| r);
    let host = if source.contains("://") {
        rest.split('/').next()?
    } else if let Some((host, _)) = rest
        .split_once(':')
        .filter(|(h, p)| !h.contains('/') && !p.starts_with(|c: char| c.is_ascii_digit()))
    {
        // git@HOST:PATH
        host
    } else {
        rest.split('/').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn invalid_source(source: &str, reason: String) -> ServiceError {
    let mut problems = crate::Problems::default();
    problems.push("source", format!("{source}: {reason}"));
    ServiceError::Invalid {
        what: "application source".into(),
        problems,
    }
}

impl ControlPlane {
    /// Keeps each file a component names by a `./` path in its package as an artifact of the
    /// tenant, and names it by digest (`eos-artifact:sha256:…`): ENs get it through their LO
    /// from the CO, never from a path on the CO's disk.
    async fn keep_package_artifacts(
        &self,
        tenant: &TenantId,
        ad: &mut ApplicationDescription,
        folder: Option<&str>,
    ) -> Result<(), ServiceError> {
        let mut problems = crate::Problems::default();
        for (i, profile) in ad.deployment_profiles.iter_mut().enumerate() {
            for (j, component) in profile.components.iter_mut().enumerate() {
                let Some(repo) = component.properties.repository.as_mut() else {
                    continue;
                };
                let Some(relative) = repo.strip_prefix("./") else {
                    continue;
                };
                let field =
                    format!("deploymentProfiles[{i}].components[{j}].properties.repository");
                let Some(folder) = folder else {
                    problems.push(field, "a ./ path needs a package folder: add the application from its directory or repository");
                    continue;
                };
                match self.packages.keep(tenant, folder, relative).await {
                    Ok(digest) => *repo = format!("{PACKAGE_ARTIFACT}{digest}"),
                    Err(why) => problems.push(field, why),
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Invalid {
                what: "application description".into(),
                problems,
            })
        }
    }
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

#[cfg(test)]
mod source_host_tests {
    use super::source_host;

    #[test]
    fn sources_name_their_hosts() {
        for (source, host) in [
            (
                "oci://reg.example:5000/apps/hello:1.0.0",
                "reg.example:5000",
            ),
            ("https://github.com/acme/app.git", "github.com"),
            (
                "ssh://git@git.example:2222/acme/app.git",
                "git.example:2222",
            ),
            ("git@git.example:acme/app.git", "git.example"),
            ("127.0.0.1:5000/eos-test/busybox:1.0.0", "127.0.0.1:5000"),
            ("https://user@Example.COM/x.git", "example.com"),
        ] {
            assert_eq!(source_host(source).as_deref(), Some(host), "{source}");
        }
    }
}
