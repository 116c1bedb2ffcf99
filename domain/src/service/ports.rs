//! Ports of the control plane: what the CO needs from storage, Git, the LO link and the clock.

use super::page::{DeploymentFilter, DeviceFilter};
use super::records::*;
use crate::ids::{AppId, DeploymentId, DeviceId, SiteId, TenantId};
use crate::layout::SiteFiles;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Persistence of the control plane's records.
///
/// Every record an operator reads or changes belongs to a tenant, and every read of such
/// records takes the tenant and returns only its rows: scoping is in the query, not left to
/// callers. The few reads without a tenant serve the sites' links (a site id is the LO's own,
/// and the site's row says its tenant) and the event log's shared feed.
#[async_trait::async_trait]
pub trait ControlStore: Send + Sync {
    async fn insert_tenant(&self, tenant: &TenantRecord) -> StoreResult<()>;
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>>;
    async fn insert_claim(&self, claim: &ClaimRecord) -> StoreResult<()>;
    /// Records a revocation, replacing an earlier one of the same site and host.
    async fn put_revocation(&self, revocation: &Revocation) -> StoreResult<()>;
    /// Every revocation of a site (whatever tenant: the site's links ask).
    async fn site_revocations(&self, site: &SiteId) -> StoreResult<Vec<Revocation>>;
    async fn get_claim(&self, token_hash: &str) -> StoreResult<Option<ClaimRecord>>;
    /// Marks a claim used at `now` unless it was used already; whether this call used it.
    async fn use_claim(&self, token_hash: &str, now: &str) -> StoreResult<bool>;
    /// Replaces a tenant's signature policy; whether the tenant exists.
    async fn set_signature_policy(
        &self,
        id: &TenantId,
        policy: &crate::signing::SignaturePolicy,
    ) -> StoreResult<bool>;
    /// Replaces a tenant's workload security policy; whether the tenant exists.
    async fn set_workload_policy(
        &self,
        id: &TenantId,
        policy: &crate::workload::WorkloadPolicy,
    ) -> StoreResult<bool>;
    /// Up to `limit` tenants after the tenant id `after`, by id.
    async fn page_tenants(&self, after: Option<&str>, limit: u64)
    -> StoreResult<Vec<TenantRecord>>;

    /// Inserts a user; `Conflict` when the tenant has a user of that email.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn get_user(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<UserRecord>>;
    /// Up to `limit` users of `tenant` after the user id `after`, by id.
    async fn page_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Deletes one of the tenant's users; whether it was there.
    async fn delete_user(&self, tenant: &TenantId, id: &str) -> StoreResult<bool>;
    /// Gives one of the tenant's users another role; whether it was there.
    async fn set_user_role(&self, tenant: &TenantId, id: &str, role: Role) -> StoreResult<bool>;
    /// One of the tenant's users by email (lower case), if any.
    async fn user_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> StoreResult<Option<UserRecord>>;

    /// Inserts a device model; `Conflict` when the tenant has one of that id, or of that
    /// vendor and model.
    async fn insert_device_model(&self, model: &DeviceModelRecord) -> StoreResult<()>;
    async fn get_device_model(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<DeviceModelRecord>>;
    /// Up to `limit` of the tenant's device models after the id `after`, by id.
    async fn page_device_models(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<DeviceModelRecord>>;
    /// Deletes one of the tenant's device models; whether it was there.
    async fn delete_device_model(&self, tenant: &TenantId, id: &str) -> StoreResult<bool>;

    /// Stores a catalog file of an app version (with the version, in its transaction).
    async fn insert_app_resource(&self, resource: &AppResourceRecord) -> StoreResult<()>;
    async fn get_app_resource(
        &self,
        tenant: &TenantId,
        app_id: &str,
        version: &str,
        kind: ResourceKind,
    ) -> StoreResult<Option<AppResourceRecord>>;

    /// Inserts a version; `Conflict` when the tenant has that app@version already.
    async fn insert_app_version(&self, record: &AppVersionRecord) -> StoreResult<()>;
    async fn app_versions(
        &self,
        tenant: &TenantId,
        app: &AppId,
    ) -> StoreResult<Vec<AppVersionRecord>>;
    /// Creates a site, or sets an existing one's manifest version (nothing else of it).
    async fn upsert_site(&self, site: &SiteRecord) -> StoreResult<()>;
    /// Sets one of the tenant's sites' labels and time zone; whether the site is there.
    async fn set_site_meta(
        &self,
        tenant: &TenantId,
        id: &SiteId,
        labels: &BTreeMap<String, String>,
        time_zone: Option<&str>,
    ) -> StoreResult<bool>;
    /// A site by its id, whatever its tenant: for the site's own link, and for callers that
    /// check the tenant of what they read.
    async fn get_site(&self, id: &SiteId) -> StoreResult<Option<SiteRecord>>;
    /// Sets whether the site's LO is connected and, when given, its time of last contact,
    /// creating the site in `tenant` when it is new; leaves every other column alone.
    async fn set_site_contact(
        &self,
        tenant: &TenantId,
        id: &SiteId,
        connected: bool,
        last_seen: Option<&str>,
    ) -> StoreResult<()>;
    /// The tenant's sites among `ids` (one query for many: what a list of devices with their
    /// sites needs).
    async fn sites_by_ids(&self, tenant: &TenantId, ids: &[SiteId])
    -> StoreResult<Vec<SiteRecord>>;
    /// Every site of every tenant (for the CO's own upkeep at start).
    async fn list_sites(&self) -> StoreResult<Vec<SiteRecord>>;

    /// Inserts or updates a device from what its site reports; leaves its schedule alone.
    async fn upsert_device(&self, device: &DeviceRecord) -> StoreResult<()>;
    /// Sets one of the tenant's devices' schedule; whether the device is there.
    async fn set_device_schedule(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
        schedule: Schedule,
    ) -> StoreResult<bool>;
    async fn list_devices(
        &self,
        tenant: &TenantId,
        site: Option<&SiteId>,
    ) -> StoreResult<Vec<DeviceRecord>>;
    /// Sets a known device's resource use, leaving every other column alone (an unknown device
    /// is left out).
    async fn set_device_usage(&self, device: &DeviceId, usage: &DeviceUsage) -> StoreResult<()>;

    async fn insert_deployment(&self, deployment: &DeploymentRecord) -> StoreResult<()>;
    async fn update_deployment_phase(
        &self,
        id: &DeploymentId,
        phase: DeploymentPhase,
    ) -> StoreResult<()>;
    /// Replaces an active deployment's version, profile, parameters and rendered document (an
    /// update); its id, tenant, site, target and creation time stay.
    async fn replace_deployment(&self, deployment: &DeploymentRecord) -> StoreResult<()>;
    async fn get_deployment(
        &self,
        tenant: &TenantId,
        id: &DeploymentId,
    ) -> StoreResult<Option<DeploymentRecord>>;
    async fn list_deployments(
        &self,
        tenant: &TenantId,
        site: Option<&SiteId>,
    ) -> StoreResult<Vec<DeploymentRecord>>;

    async fn upsert_device_status(&self, status: &DeviceStatusRecord) -> StoreResult<()>;
    async fn device_statuses(
        &self,
        deployment: &DeploymentId,
    ) -> StoreResult<Vec<DeviceStatusRecord>>;

    /// Appends to a site's event log.
    async fn append_site_event(&self, event: &SiteEvent) -> StoreResult<()>;
    /// The newest `limit` events of a site, oldest first.
    async fn site_events(&self, site: &SiteId, limit: u64) -> StoreResult<Vec<SiteEvent>>;

    /// Up to `limit` of the tenant's applications after the app id `after`, by app id: the
    /// newest version of each.
    async fn page_apps(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<AppVersionRecord>>;
    /// Up to `limit` of the tenant's sites after the site id `after`, by id.
    async fn page_sites(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<SiteRecord>>;
    /// Up to `limit` of the tenant's devices of `filter` after the device id `after`, by id.
    async fn page_devices(
        &self,
        tenant: &TenantId,
        filter: &DeviceFilter,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<DeviceRecord>>;
    /// Up to `limit` of the tenant's deployments of `filter` created after the deployment
    /// `after` (an id), in the order they were created.
    async fn page_deployments(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<DeploymentRecord>>;

    /// One of the tenant's devices, if known.
    async fn get_device(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
    ) -> StoreResult<Option<DeviceRecord>>;

    /// Appends to the event log; returns the event's number.
    async fn append_event(&self, event: &EventRecord) -> StoreResult<u64>;
    /// Deletes the events created before `before` (an RFC 3339 time); returns how many.
    async fn prune_events(&self, before: &str) -> StoreResult<u64>;
    /// The number of the newest event (0 when the log is empty).
    async fn last_event_id(&self) -> StoreResult<u64>;
    /// Up to `limit` events of `filter` (which names its tenant) numbered above `after`, in
    /// order.
    async fn events_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: u64,
    ) -> StoreResult<Vec<EventRecord>>;
    /// Up to `limit` events of every tenant numbered above `after`, in order: for the one
    /// feed that hands each stream the events its filter wants.
    async fn feed_after(&self, after: u64, limit: u64) -> StoreResult<Vec<EventRecord>>;

    /// What a tenant's deployment request's idempotency key made, if it was seen.
    async fn get_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Records a key; `Conflict` when the tenant has recorded the key already.
    async fn insert_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()>;

    async fn get_cursor(&self, site: &SiteId) -> StoreResult<Option<UplinkCursor>>;
    async fn put_cursor(&self, cursor: &UplinkCursor) -> StoreResult<()>;

    /// Starts a unit of work: what is written through it becomes visible and durable together
    /// on `commit`, or not at all when it is dropped uncommitted.
    async fn begin(&self) -> StoreResult<Box<dyn StoreTransaction>>;
}

/// A store whose writes commit together.
#[async_trait::async_trait]
pub trait StoreTransaction: ControlStore {
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// The deployments Git repository, as the CO writes it.
#[async_trait::async_trait]
pub trait DesiredStateRepo: Send + Sync {
    /// Replaces everything under `sites/<site>/` with `files` in one commit; returns the commit id.
    async fn publish(
        &self,
        site: &SiteId,
        files: SiteFiles,
        message: &str,
    ) -> Result<String, String>;

    /// The files under `sites/<site>/` at the head of the repository (none for a new site).
    async fn current(&self, site: &SiteId) -> Result<SiteFiles, String>;
}

/// The live links to the sites' LOs: hints of new commits, and questions for the ENs behind
/// them.
#[async_trait::async_trait]
pub trait SiteNotifier: Send + Sync {
    /// Tells a site's LO that a new commit exists (a hint: the LO also polls).
    async fn notify(&self, site: &SiteId, commit: &str);

    /// Asks the EN of `query.device`, through its site's LO, how the deployment's components
    /// are doing now. Fails (with the reason) when the LO or the EN cannot be reached or does
    /// not answer in time; nothing is queued for later.
    /// Tells a site's LO of a revocation at once: an LO revoked is cut off, an EN revoked is cut
    /// off by its LO. Links opened later are checked against every revocation of the site.
    async fn revoked(&self, revocation: &Revocation) {
        let _ = revocation;
    }

    async fn inspect(&self, query: &super::LiveQuery) -> Result<Vec<super::ComponentLive>, String> {
        let _ = query;
        Err("no link to sites".into())
    }
}

/// Time and fresh identifiers, which the pure domain cannot make itself.
pub trait Ambient: Send + Sync {
    /// Now, as RFC 3339 UTC.
    fn now(&self) -> String;
    /// A fresh random (version 4) UUID.
    fn new_uuid(&self) -> String;
    /// A named point between two steps that must both happen, where tests make the daemon die
    /// (see `eos_app_common::failpoint`); nothing otherwise.
    fn failpoint(&self, _name: &str) {}
}

/// An application package as fetched: its description text and the local folder holding its files.
#[derive(Debug, Clone)]
pub struct FetchedPackage {
    pub description_yaml: String,
    /// Absolute path of a folder the CO keeps; `./` paths in the description resolve against it.
    pub folder: String,
}

/// Reads Margo application packages from directories and Git repositories.
#[async_trait::async_trait]
pub trait PackageSource: Send + Sync {
    /// Copies the package `source` names; one from a registry must carry a signature by one
    /// of `signatures`' keys when the policy requires signatures.
    async fn fetch(
        &self,
        tenant: &crate::ids::TenantId,
        source: &str,
        signatures: &crate::signing::SignaturePolicy,
    ) -> Result<FetchedPackage, String>;
    /// The file at `path` (relative, as the description names it: `./resources/icon.png`) in
    /// a package `fetch` made, refused when it leaves the package or is over `limit` bytes.
    async fn read(&self, folder: &str, path: &str, limit: u64) -> Result<Vec<u8>, String>;
    /// Deletes the copy `fetch` made in `folder`: the app store had that version already.
    async fn discard(&self, folder: &str);
    /// Keeps the file at `path` (relative, as a component's `./` repository names it) of the
    /// package in `folder` as an artifact of `tenant`, which its sites' LOs may fetch, and
    /// answers its digest (`sha256:…`); refused like `read` past the package-size cap.
    async fn keep(&self, tenant: &TenantId, folder: &str, path: &str) -> Result<String, String>;
    /// Unpacks an uploaded package (a gzip-compressed tar of the package's folder) as `fetch`
    /// keeps a fetched one; refused when an entry leaves the package, is a link, or the
    /// package is over the caps.
    async fn unpack(&self, archive: &[u8]) -> Result<FetchedPackage, String>;
}

/// Rung after each commit that added to the event log, so live readers (server-sent events)
/// look at once instead of at their next poll.
pub trait EventBell: Send + Sync {
    fn ring(&self);
}

/// A bell nobody hears: for a control plane without live readers.
pub struct NoBell;

impl EventBell for NoBell {
    fn ring(&self) {}
}

/// What a registry says of an artifact now: the digest its reference names, the cosign
/// signatures over that digest, which of a policy's keys made one, and its SBOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFacts {
    /// `sha256:…`.
    pub digest: String,
    /// Signatures over exactly that digest.
    pub signatures: usize,
    /// The index (in the keys asked about) of a key that made one of them.
    pub trusted_key: Option<usize>,
    /// Where its SBOM is (`HOST/NAME@sha256:…` of a CycloneDX or SPDX referrer, or cosign's
    /// `HOST/NAME:sha256-<hex>.sbom`), when one is attached.
    pub sbom: Option<String>,
}

/// Asks registries about artifacts (for the artifacts view).
#[async_trait::async_trait]
pub trait ArtifactInspector: Send + Sync {
    /// The facts of each of `references` (`HOST/NAME:TAG` or `HOST/NAME@sha256:…`) of
    /// `tenant`'s deployments, in order, signatures judged against `public_keys` (PEM), asked
    /// with the registry logins given to that tenant only; a registry that does not answer in
    /// time is an error for its references, not for the others.
    async fn inspect(
        &self,
        tenant: &crate::ids::TenantId,
        references: &[String],
        public_keys: &[String],
    ) -> Vec<Result<ArtifactFacts, String>>;
}
