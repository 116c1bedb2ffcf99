//! What the control plane stores: applications, sites, devices, deployments and their status.

use crate::ids::{DeploymentId, DeviceId, SiteId, TenantId};
use crate::margo::status::{ComponentStatus, DeploymentState, StatusError};
use crate::margo::{DeploymentStatus, DeviceCapabilities};
pub use crate::placement::Schedule;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One immutable version of an application, with the digest of its description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppVersionRecord {
    pub tenant: TenantId,
    pub app_id: String,
    pub version: String,
    pub name: String,
    pub description: Option<String>,
    /// `sha256:` digest of the description as stored.
    pub digest: String,
    /// The normalized (rc.3) ApplicationDescription YAML.
    pub document: String,
    /// Where it was added from (a directory or a Git URL).
    pub source: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub id: SiteId,
    /// The tenant the site and everything at it belong to.
    pub tenant: TenantId,
    pub labels: BTreeMap<String, String>,
    /// The last manifestVersion committed for this site.
    pub manifest_version: u64,
    pub lo_connected: bool,
    pub last_seen: Option<String>,
    /// The site's IANA time zone (`Europe/Berlin`), set by an operator.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: DeviceId,
    /// Its site's tenant.
    pub tenant: TenantId,
    pub capabilities: DeviceCapabilities,
    pub online: bool,
    pub last_seen: Option<String>,
    /// Resource use from the latest heartbeat that reached the CO.
    pub usage: Option<DeviceUsage>,
    /// The id of the tenant's device model whose vendor and model number the device reports.
    /// Not stored: the control plane fills it in when it lists devices.
    #[serde(default)]
    pub model: Option<String>,
    /// Whether it takes workloads; only cordon, drain and uncordon change it (reports from
    /// the site leave it alone).
    #[serde(default)]
    pub schedule: Schedule,
}

/// A device's status as operators see it: its schedule when an operator closed it, else
/// whether it is online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Online,
    Offline,
    /// Takes no new workloads; what runs there stays.
    Cordoned,
    /// Its workloads are moving elsewhere.
    Draining,
    /// Drained: its last heartbeat reported no workloads; it takes none.
    Drained,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Cordoned => "cordoned",
            Self::Draining => "draining",
            Self::Drained => "drained",
        }
    }
}

impl DeviceRecord {
    pub fn status(&self) -> DeviceStatus {
        match self.schedule {
            Schedule::Cordoned => DeviceStatus::Cordoned,
            Schedule::Draining if self.usage.as_ref().is_some_and(|u| u.workloads == 0) => {
                DeviceStatus::Drained
            }
            Schedule::Draining => DeviceStatus::Draining,
            Schedule::Open if self.online => DeviceStatus::Online,
            Schedule::Open => DeviceStatus::Offline,
        }
    }
}

/// A file of an app version's catalog entry (`metadata.catalog.application`), kept with the
/// version so the portal and clients can show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppResourceRecord {
    pub tenant: TenantId,
    pub app_id: String,
    pub version: String,
    pub kind: ResourceKind,
    /// `image/png`, `text/markdown`, `application/pdf`, …
    pub media_type: String,
    pub data: Vec<u8>,
}

/// Which catalog file a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Icon,
    Description,
    License,
    ReleaseNotes,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 4] = [
        Self::Icon,
        Self::Description,
        Self::License,
        Self::ReleaseNotes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Icon => "icon",
            Self::Description => "description",
            Self::License => "license",
            Self::ReleaseNotes => "release-notes",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The field of `metadata.catalog.application` that names the file.
    pub fn field(self) -> &'static str {
        match self {
            Self::Icon => "icon",
            Self::Description => "descriptionFile",
            Self::License => "licenseFile",
            Self::ReleaseNotes => "releaseNotes",
        }
    }

    /// The media type of a file of this kind named `path`, by its extension; `Err` lists the
    /// extensions the kind takes (Margo: icons are images, the description markdown, the
    /// license text, markdown or PDF, the release notes markdown or PDF).
    pub fn media_type(self, path: &str) -> Result<&'static str, String> {
        let ext = path
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let allowed: &[(&str, &str)] = match self {
            Self::Icon => &[
                ("png", "image/png"),
                ("jpg", "image/jpeg"),
                ("jpeg", "image/jpeg"),
                ("svg", "image/svg+xml"),
                ("gif", "image/gif"),
                ("webp", "image/webp"),
            ],
            Self::Description => &[("md", "text/markdown")],
            Self::License => &[
                ("txt", "text/plain"),
                ("md", "text/markdown"),
                ("pdf", "application/pdf"),
            ],
            Self::ReleaseNotes => &[("md", "text/markdown"), ("pdf", "application/pdf")],
        };
        allowed
            .iter()
            .find(|(e, _)| *e == ext)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(e, _)| *e).collect();
                format!(
                    "{path}: the {} must be one of .{}",
                    self.as_str(),
                    names.join(", .")
                )
            })
    }
}

/// A device model as its maker registers it: vendor, model number and a capability template
/// (a Margo DeviceCapabilities document: CPUs, memory, storage, peripherals such as
/// accelerators, interfaces, runtimes). Devices that report the same vendor and model number
/// point at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceModelRecord {
    pub tenant: TenantId,
    /// Lowercase letters, digits and '-' (`acme-edge-5000`).
    pub id: String,
    pub vendor: String,
    pub model: String,
    pub capabilities: DeviceCapabilities,
    pub created_at: String,
}

/// Whether one deployment profile of an app version can run on a model or a device, and why
/// not when it cannot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileCompatibility {
    pub profile: String,
    /// The runtime the profile needs (`wasm`, `oci`, `compose`, `helm`, …).
    pub runtime: Option<String>,
    pub compatible: bool,
    pub reason: Option<String>,
}

/// An app version judged against a device model's template or a device's capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompatibilityReport {
    pub app_id: String,
    pub version: String,
    /// `model <id>` or `device <site>/<host>`.
    pub against: String,
    /// Whether some profile can run there.
    pub compatible: bool,
    pub profiles: Vec<ProfileCompatibility>,
}

/// A device's resource use, as a heartbeat reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceUsage {
    /// Run-queue length averaged over a minute (Linux load average).
    pub cpu_load_1m: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// Components the EN runs.
    pub workloads: u64,
    /// When the LO received the heartbeat (RFC 3339).
    pub observed_at: String,
}

/// The lifecycle of a deployment as the CO sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentPhase {
    Active,
    Removing,
    Removed,
}

impl DeploymentPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Removing => "removing",
            Self::Removed => "removed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Removing, Self::Removed]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: DeploymentId,
    pub tenant: TenantId,
    pub app_id: String,
    pub version: String,
    pub site: SiteId,
    /// `<site>/<host>` or `<site>/*`.
    pub target: String,
    pub profile_id: String,
    pub parameters: BTreeMap<String, Value>,
    pub phase: DeploymentPhase,
    /// The rendered ApplicationDeployment YAML committed to Git.
    pub document: String,
    pub created_at: String,
}

impl DeploymentRecord {
    /// The entity tag of what an update may change (version, profile, parameters, phase and
    /// the rendered document), quoted as HTTP writes it. Status reports do not change it, so a
    /// client's `If-Match` fails only when another change came first.
    pub fn etag(&self) -> String {
        use sha2::Digest;
        let what = serde_json::json!([
            self.version,
            self.profile_id,
            self.parameters,
            self.phase.as_str(),
            self.document
        ]);
        let digest = sha2::Sha256::digest(what.to_string().as_bytes());
        format!("\"{}\"", &hex::encode(digest)[..24])
    }
}

/// One change of the control plane's data, as the event log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its number in the log, in commit order (0 until stored). Numbers are shared by all
    /// tenants, so one tenant's stream has gaps where others' events are.
    pub id: u64,
    /// The tenant whose data changed; only its readers see the event.
    pub tenant: TenantId,
    /// What happened: one of [`change`]'s kinds.
    pub kind: String,
    /// The site it happened at, when it belongs to one.
    pub site: Option<SiteId>,
    /// What it happened to: an app id, deployment id, device id or site id.
    pub subject: String,
    /// The details, as JSON.
    pub data: Value,
    pub created_at: String,
}

/// The kinds of [`EventRecord`]: `<what>.<happened>`.
pub mod change {
    pub const APP_ADDED: &str = "app.added";
    pub const DEPLOYMENT_CREATED: &str = "deployment.created";
    pub const DEPLOYMENT_UPDATED: &str = "deployment.updated";
    pub const DEPLOYMENT_REMOVING: &str = "deployment.removing";
    pub const DEPLOYMENT_REMOVED: &str = "deployment.removed";
    /// A device reported another state of a deployment.
    pub const DEPLOYMENT_STATUS: &str = "deployment.status";
    /// A device the CO did not know reported in.
    pub const DEVICE_JOINED: &str = "device.joined";
    pub const DEVICE_ONLINE: &str = "device.online";
    pub const DEVICE_OFFLINE: &str = "device.offline";
    /// An operator cordoned a device: it takes no new workloads.
    pub const DEVICE_CORDONED: &str = "device.cordoned";
    /// An operator drained a device: its workloads move elsewhere.
    pub const DEVICE_DRAINING: &str = "device.draining";
    /// An operator opened a cordoned or draining device again.
    pub const DEVICE_UNCORDONED: &str = "device.uncordoned";
    pub const SITE_CONNECTED: &str = "site.connected";
    pub const SITE_DISCONNECTED: &str = "site.disconnected";
    /// An operator set a site's labels or time zone.
    pub const SITE_UPDATED: &str = "site.updated";
    /// An entry of a site's own event log (a refused desired state, a crashed component).
    pub const SITE_EVENT: &str = "site.event";
    pub const TENANT_CREATED: &str = "tenant.created";
    pub const SIGNATURE_POLICY_SET: &str = "tenant.signature_policy_set";
    pub const WORKLOAD_POLICY_SET: &str = "tenant.workload_policy_set";
    pub const USER_ADDED: &str = "user.added";
    pub const USER_REMOVED: &str = "user.removed";
    pub const USER_ROLE_CHANGED: &str = "user.role_changed";
    pub const DEVICE_MODEL_REGISTERED: &str = "device-model.registered";
    pub const DEVICE_MODEL_REMOVED: &str = "device-model.removed";
}

/// Which events a reader wants: kinds starting with `kind` (`deployment` or
/// `deployment.status`), of one site, about one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Whose events: never optional, a reader sees one tenant's.
    pub tenant: TenantId,
    pub kind: Option<String>,
    pub site: Option<SiteId>,
    /// Only events about this app, deployment, device or site.
    pub subject: Option<String>,
}

impl EventFilter {
    /// Every event of `tenant`.
    pub fn of(tenant: TenantId) -> Self {
        Self {
            tenant,
            kind: None,
            site: None,
            subject: None,
        }
    }

    /// Whether `event` is one the filter wants (as the store's query selects them).
    pub fn matches(&self, event: &EventRecord) -> bool {
        let kind = self.kind.as_deref().is_none_or(|k| {
            event.kind == k
                || event
                    .kind
                    .strip_prefix(k)
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        event.tenant == self.tenant
            && kind
            && self
                .site
                .as_ref()
                .is_none_or(|s| event.site.as_ref() == Some(s))
            && self.subject.as_ref().is_none_or(|s| &event.subject == s)
    }
}

/// What an `Idempotency-Key` of a deployment request made: the digest of the request it came
/// with and the deployment created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Keys are the tenant's own: another tenant's request under the same key is another.
    pub tenant: TenantId,
    pub key: String,
    pub request_digest: String,
    pub deployment_id: DeploymentId,
    pub created_at: String,
}

/// A tenant: an organisation using the CO, whose data no other tenant sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    /// What people call it (`ACME Manufacturing`).
    pub name: String,
    /// The subscription plan, free text (`standard`).
    pub plan: String,
    pub created_at: String,
    /// Whether its artifacts must be signed, and by which keys; none until set.
    pub signature_policy: Option<crate::signing::SignaturePolicy>,
    /// What its components may ask of a device beyond the default (none until set).
    pub workload_policy: Option<crate::workload::WorkloadPolicy>,
}

/// What a user may do, as the seeds name the personas. The checks themselves come with
/// identity; here a role is recorded with each user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the platform: every tenant.
    PlatformAdmin,
    /// Manages one tenant's users and settings.
    TenantAdmin,
    /// Registers apps, deploys and rolls out in one tenant.
    Operator,
    /// Reads audit trails and security posture.
    SecurityAnalyst,
    /// Reads everything of the tenant, changes nothing.
    Viewer,
    /// Reads cost and usage reports.
    Finops,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Self::PlatformAdmin,
        Self::TenantAdmin,
        Self::Operator,
        Self::SecurityAnalyst,
        Self::Viewer,
        Self::Finops,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "platform-admin",
            Self::TenantAdmin => "tenant-admin",
            Self::Operator => "operator",
            Self::SecurityAnalyst => "security-analyst",
            Self::Viewer => "viewer",
            Self::Finops => "finops",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A person (or a script's account) of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// A UUID the CO gives it.
    pub id: String,
    pub tenant: TenantId,
    /// Unique within the tenant.
    pub email: String,
    pub role: Role,
    /// The subject of the user's identity at the single sign-on provider, once known.
    pub sso_id: Option<String>,
    pub created_at: String,
}

/// The latest status of a deployment on one device, as an LO reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatusRecord {
    pub deployment_id: DeploymentId,
    pub device_id: String,
    pub state: DeploymentState,
    pub error: Option<StatusError>,
    pub components: Vec<ComponentStatus>,
    pub updated_at: String,
}

/// A deployment with its per-device status and the state they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    pub deployment: DeploymentRecord,
    /// The most severe device state; `pending` while no device has reported.
    pub state: DeploymentState,
    pub devices: Vec<DeviceStatusRecord>,
}

/// How far the CO has applied the reports of a site's LO outbox. Reports carry the outbox's
/// sequence numbers; one at or below `applied_seq` of the same outbox is a duplicate (a resend
/// after a lost acknowledgement) and is skipped, so each report takes effect at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkCursor {
    pub site: SiteId,
    /// Identifies one LO outbox journal; a new journal (a wiped LO) starts a new cursor.
    pub outbox_id: String,
    pub applied_seq: u64,
    /// Reports applied from this outbox.
    pub applied: u64,
    /// Duplicates skipped from this outbox.
    pub duplicates: u64,
}

/// A report from an LO, as the control plane applies it.
#[derive(Debug, Clone, PartialEq)]
pub enum SiteReport {
    Device {
        device: DeviceId,
        capabilities: Box<DeviceCapabilities>,
        online: bool,
    },
    Status(DeploymentStatus),
    /// The LO refused a commit of its desired state and keeps the last good one.
    Rejected {
        commit: String,
        problems: String,
    },
    /// The LO went from one desired state straight to a newer one; these commits in between
    /// were never applied.
    Skipped {
        from_commit: String,
        to_commit: String,
        skipped: Vec<String>,
    },
    /// Something happened to a workload at the site (it crashed and its EN restarts it).
    Component {
        kind: String,
        device_id: String,
        deployment_id: String,
        component: String,
        message: String,
    },
}

/// One report of a site's outbox: its number, when the LO observed it (`None`: unknown, the
/// CO's time of arrival stands in) and the report (`None`: unreadable).
#[derive(Debug, Clone, PartialEq)]
pub struct NumberedReport {
    pub seq: u64,
    pub observed_at: Option<String>,
    pub report: Option<SiteReport>,
}

/// Something that happened at a site, in the CO's event log of the site: refused and skipped
/// desired states, crashed workloads. Kept even when later statuses supersede what it explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteEvent {
    pub site: SiteId,
    /// `desired-state-rejected`, `desired-state-skipped` or `component-crashed`.
    pub kind: String,
    pub device_id: Option<String>,
    pub deployment_id: Option<String>,
    pub component: Option<String>,
    pub message: String,
    /// When the site observed it (RFC 3339).
    pub observed_at: String,
}

/// Event kinds of [`SiteEvent`].
pub mod event_kind {
    pub const DESIRED_STATE_REJECTED: &str = "desired-state-rejected";
    pub const DESIRED_STATE_SKIPPED: &str = "desired-state-skipped";
    pub const COMPONENT_CRASHED: &str = "component-crashed";
}

/// A question for the EN that runs a deployment: its components' resource use and log tail.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveQuery {
    pub device: DeviceId,
    pub deployment: DeploymentId,
    /// One component, or all of the deployment's on the device.
    pub component: Option<String>,
    /// Log lines wanted per component (0 for none).
    pub lines: u32,
}

/// One component as its driver sees it now; `None` where the driver cannot tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentLive {
    pub component: String,
    pub runtime: String,
    /// Percent of one core (200 is two cores busy).
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// The last lines it wrote, oldest first.
    pub log: Vec<String>,
    /// What the driver could not tell, and why.
    pub error: Option<String>,
}

/// What one device running a deployment said of it, or why it said nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceLive {
    pub device_id: String,
    pub components: Vec<ComponentLive>,
    pub error: Option<String>,
}

#[cfg(test)]
mod event_filter_tests {
    use super::*;

    #[test]
    fn a_filter_takes_its_tenant_a_kind_with_the_kinds_under_it_a_site_and_a_subject() {
        let acme = TenantId::parse("acme").unwrap();
        let event = |kind: &str, site: &str, subject: &str| EventRecord {
            id: 1,
            tenant: acme.clone(),
            kind: kind.into(),
            site: Some(SiteId::parse(site).unwrap()),
            subject: subject.into(),
            data: Value::Null,
            created_at: "t".into(),
        };
        let filter = |kind: Option<&str>, site: Option<&str>, subject: Option<&str>| EventFilter {
            tenant: acme.clone(),
            kind: kind.map(Into::into),
            site: site.map(|s| SiteId::parse(s).unwrap()),
            subject: subject.map(Into::into),
        };
        let e = event(change::DEPLOYMENT_STATUS, "s1", "d1");
        assert!(filter(None, None, None).matches(&e));
        assert!(filter(Some("deployment"), Some("s1"), Some("d1")).matches(&e));
        assert!(filter(Some("deployment.status"), None, None).matches(&e));
        assert!(
            !filter(Some("deploy"), None, None).matches(&e),
            "whole parts only"
        );
        assert!(!filter(Some("deployment.created"), None, None).matches(&e));
        assert!(!filter(None, Some("s2"), None).matches(&e));
        assert!(!filter(None, None, Some("d2")).matches(&e));
        let other = EventFilter::of(TenantId::parse("globex").unwrap());
        assert!(
            !other.matches(&e),
            "another tenant's reader sees none of it"
        );
    }
}

/// What a claim token lets its holder become: a site's LO, or one EN of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimRole {
    Lo,
    En,
}

impl ClaimRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lo => "lo",
            Self::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lo" => Some(Self::Lo),
            "en" => Some(Self::En),
            _ => None,
        }
    }
}

/// A claim token as the CO keeps it: only the token's SHA-256, what it is for, and whether it
/// was used (a token works once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub tenant: TenantId,
    pub site: SiteId,
    pub role: ClaimRole,
    /// The EN's host name (for an EN claim).
    pub host: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
}

/// A revocation: every certificate of a site's LO (`host` none) or of one of its ENs issued
/// until `revoked_at` is refused from then on. A device enrolled again afterwards (with a new
/// claim) is welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub tenant: TenantId,
    pub site: SiteId,
    pub host: Option<String>,
    pub revoked_at: String,
}
