//! Conversions between rows and domain records; a row that does not convert is a backend error
//! naming the table and key, never a panic.

use crate::entity::*;
use eos_domain::ids::{DeploymentId, DeviceId, SiteId, TenantId};
use eos_domain::margo::DeploymentState;
use eos_domain::service::*;
use sea_orm::ActiveValue::Set;

fn corrupt(table: &str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{table} row {key:?} is unreadable: {e}"))
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

/// A stored tenant id, read back.
pub(crate) fn tenant_of(table: &str, key: &str, id: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(id).map_err(|e| corrupt(table, key, e))
}

pub fn app_version_from(m: app_versions::Model) -> Result<AppVersionRecord, StoreError> {
    let key = format!("{}@{}", m.app_id, m.version);
    Ok(AppVersionRecord {
        tenant: tenant_of("app_versions", &key, &m.tenant_id)?,
        app_id: m.app_id,
        version: m.version,
        name: m.name,
        description: m.description,
        digest: m.digest,
        document: m.document,
        source: m.source,
        created_at: m.created_at,
    })
}

pub fn app_version_to(r: &AppVersionRecord) -> app_versions::ActiveModel {
    app_versions::ActiveModel {
        tenant_id: Set(r.tenant.to_string()),
        app_id: Set(r.app_id.clone()),
        version: Set(r.version.clone()),
        name: Set(r.name.clone()),
        description: Set(r.description.clone()),
        digest: Set(r.digest.clone()),
        document: Set(r.document.clone()),
        source: Set(r.source.clone()),
        created_at: Set(r.created_at.clone()),
        ..Default::default()
    }
}

pub fn site_from(m: sites::Model) -> Result<SiteRecord, StoreError> {
    Ok(SiteRecord {
        id: SiteId::parse(&m.id).map_err(|e| corrupt("sites", &m.id, e))?,
        tenant: tenant_of("sites", &m.id, &m.tenant_id)?,
        labels: serde_json::from_str(&m.labels).map_err(|e| corrupt("sites", &m.id, e))?,
        manifest_version: m.manifest_version as u64,
        lo_connected: m.lo_connected,
        last_seen: m.last_seen,
        time_zone: m.time_zone,
    })
}

pub fn site_to(r: &SiteRecord) -> sites::ActiveModel {
    sites::ActiveModel {
        id: Set(r.id.to_string()),
        tenant_id: Set(r.tenant.to_string()),
        labels: Set(json(&r.labels)),
        manifest_version: Set(r.manifest_version as i64),
        lo_connected: Set(r.lo_connected),
        last_seen: Set(r.last_seen.clone()),
        time_zone: Set(r.time_zone.clone()),
    }
}

pub fn device_from(m: devices::Model) -> Result<DeviceRecord, StoreError> {
    Ok(DeviceRecord {
        id: DeviceId::parse(&m.id).map_err(|e| corrupt("devices", &m.id, e))?,
        tenant: tenant_of("devices", &m.id, &m.tenant_id)?,
        capabilities: serde_json::from_str(&m.capabilities)
            .map_err(|e| corrupt("devices", &m.id, e))?,
        online: m.online,
        last_seen: m.last_seen,
        usage: m
            .usage
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("devices", &m.id, e))?,
        model: None,
        schedule: Schedule::parse(&m.schedule).ok_or_else(|| {
            corrupt(
                "devices",
                &m.id,
                format!("unknown schedule {:?}", m.schedule),
            )
        })?,
    })
}

pub fn device_to(r: &DeviceRecord) -> devices::ActiveModel {
    devices::ActiveModel {
        id: Set(r.id.to_string()),
        tenant_id: Set(r.tenant.to_string()),
        site_id: Set(r.id.site().to_string()),
        capabilities: Set(json(&r.capabilities)),
        online: Set(r.online),
        last_seen: Set(r.last_seen.clone()),
        usage: Set(r.usage.as_ref().map(json)),
        schedule: Set(r.schedule.as_str().to_owned()),
    }
}

pub fn deployment_from(m: deployments::Model) -> Result<DeploymentRecord, StoreError> {
    let key = m.id.clone();
    Ok(DeploymentRecord {
        id: DeploymentId::parse(&m.id).map_err(|e| corrupt("deployments", &key, e))?,
        tenant: tenant_of("deployments", &key, &m.tenant_id)?,
        app_id: m.app_id,
        version: m.version,
        site: SiteId::parse(&m.site_id).map_err(|e| corrupt("deployments", &key, e))?,
        target: m.target,
        profile_id: m.profile_id,
        parameters: serde_json::from_str(&m.parameters)
            .map_err(|e| corrupt("deployments", &key, e))?,
        phase: DeploymentPhase::parse(&m.phase)
            .ok_or_else(|| corrupt("deployments", &key, format!("unknown phase {:?}", m.phase)))?,
        document: m.document,
        created_at: m.created_at,
    })
}

pub fn deployment_to(r: &DeploymentRecord) -> deployments::ActiveModel {
    deployments::ActiveModel {
        id: Set(r.id.to_string()),
        tenant_id: Set(r.tenant.to_string()),
        app_id: Set(r.app_id.clone()),
        version: Set(r.version.clone()),
        site_id: Set(r.site.to_string()),
        target: Set(r.target.clone()),
        profile_id: Set(r.profile_id.clone()),
        parameters: Set(json(&r.parameters)),
        phase: Set(r.phase.as_str().to_owned()),
        document: Set(r.document.clone()),
        created_at: Set(r.created_at.clone()),
        ..Default::default()
    }
}

pub fn status_from(m: device_statuses::Model) -> Result<DeviceStatusRecord, StoreError> {
    let key = format!("{}/{}", m.deployment_id, m.device_id);
    Ok(DeviceStatusRecord {
        deployment_id: DeploymentId::parse(&m.deployment_id)
            .map_err(|e| corrupt("device_statuses", &key, e))?,
        device_id: m.device_id,
        state: DeploymentState::parse(&m.state).ok_or_else(|| {
            corrupt(
                "device_statuses",
                &key,
                format!("unknown state {:?}", m.state),
            )
        })?,
        error: m
            .error
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("device_statuses", &key, e))?,
        components: serde_json::from_str(&m.components)
            .map_err(|e| corrupt("device_statuses", &key, e))?,
        updated_at: m.updated_at,
    })
}

pub fn status_to(r: &DeviceStatusRecord) -> device_statuses::ActiveModel {
    device_statuses::ActiveModel {
        deployment_id: Set(r.deployment_id.to_string()),
        device_id: Set(r.device_id.clone()),
        state: Set(r.state.as_str().to_owned()),
        error: Set(r.error.as_ref().map(json)),
        components: Set(json(&r.components)),
        updated_at: Set(r.updated_at.clone()),
    }
}

pub fn cursor_from(m: uplink_cursors::Model) -> Result<UplinkCursor, StoreError> {
    let count = |v: i64| u64::try_from(v).map_err(|e| corrupt("uplink_cursors", &m.site_id, e));
    Ok(UplinkCursor {
        site: SiteId::parse(&m.site_id).map_err(|e| corrupt("uplink_cursors", &m.site_id, e))?,
        outbox_id: m.outbox_id.clone(),
        applied_seq: count(m.applied_seq)?,
        applied: count(m.applied)?,
        duplicates: count(m.duplicates)?,
    })
}

pub fn cursor_to(c: &UplinkCursor) -> uplink_cursors::ActiveModel {
    // SQL integers are signed; sequence numbers never come near i64::MAX.
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    uplink_cursors::ActiveModel {
        site_id: Set(c.site.to_string()),
        outbox_id: Set(c.outbox_id.clone()),
        applied_seq: Set(int(c.applied_seq)),
        applied: Set(int(c.applied)),
        duplicates: Set(int(c.duplicates)),
    }
}

pub fn event_from(m: site_events::Model) -> Result<SiteEvent, StoreError> {
    Ok(SiteEvent {
        site: SiteId::parse(&m.site_id)
            .map_err(|e| corrupt("site_events", &m.id.to_string(), e))?,
        kind: m.kind,
        device_id: m.device_id,
        deployment_id: m.deployment_id,
        component: m.component,
        message: m.message,
        observed_at: m.observed_at,
    })
}

pub fn event_to(e: &SiteEvent) -> site_events::ActiveModel {
    site_events::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        site_id: Set(e.site.to_string()),
        kind: Set(e.kind.clone()),
        device_id: Set(e.device_id.clone()),
        deployment_id: Set(e.deployment_id.clone()),
        component: Set(e.component.clone()),
        message: Set(e.message.clone()),
        observed_at: Set(e.observed_at.clone()),
    }
}

pub fn tenant_from(m: tenants::Model) -> Result<TenantRecord, StoreError> {
    Ok(TenantRecord {
        id: tenant_of("tenants", &m.id, &m.id)?,
        name: m.name,
        plan: m.plan,
        created_at: m.created_at,
        signature_policy: match m.signature_policy {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| corrupt("tenants", &m.id, format!("signature_policy: {e}")))?,
            ),
        },
        workload_policy: match m.workload_policy {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| corrupt("tenants", &m.id, format!("workload_policy: {e}")))?,
            ),
        },
    })
}

pub fn tenant_to(r: &TenantRecord) -> tenants::ActiveModel {
    tenants::ActiveModel {
        id: Set(r.id.to_string()),
        name: Set(r.name.clone()),
        plan: Set(r.plan.clone()),
        created_at: Set(r.created_at.clone()),
        signature_policy: Set(r
            .signature_policy
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("a policy is JSON"))),
        workload_policy: Set(r
            .workload_policy
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("a policy is JSON"))),
    }
}

pub fn user_from(m: users::Model) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        tenant: tenant_of("users", &m.id, &m.tenant_id)?,
        role: Role::parse(&m.role)
            .ok_or_else(|| corrupt("users", &m.id, format!("unknown role {:?}", m.role)))?,
        id: m.id,
        email: m.email,
        sso_id: m.sso_id,
        created_at: m.created_at,
    })
}

pub fn user_to(r: &UserRecord) -> users::ActiveModel {
    users::ActiveModel {
        id: Set(r.id.clone()),
        tenant_id: Set(r.tenant.to_string()),
        email: Set(r.email.clone()),
        role: Set(r.role.as_str().to_owned()),
        sso_id: Set(r.sso_id.clone()),
        created_at: Set(r.created_at.clone()),
    }
}

pub fn device_model_from(m: device_models::Model) -> Result<DeviceModelRecord, StoreError> {
    Ok(DeviceModelRecord {
        tenant: tenant_of("device_models", &m.id, &m.tenant_id)?,
        capabilities: serde_json::from_str(&m.capabilities)
            .map_err(|e| corrupt("device_models", &m.id, e))?,
        id: m.id,
        vendor: m.vendor,
        model: m.model,
        created_at: m.created_at,
    })
}

pub fn device_model_to(r: &DeviceModelRecord) -> device_models::ActiveModel {
    device_models::ActiveModel {
        tenant_id: Set(r.tenant.to_string()),
        id: Set(r.id.clone()),
        vendor: Set(r.vendor.clone()),
        model: Set(r.model.clone()),
        capabilities: Set(json(&r.capabilities)),
        created_at: Set(r.created_at.clone()),
    }
}

pub fn app_resource_from(m: app_resources::Model) -> Result<AppResourceRecord, StoreError> {
    let key = format!("{}@{} {}", m.app_id, m.version, m.kind);
    Ok(AppResourceRecord {
        tenant: tenant_of("app_resources", &key, &m.tenant_id)?,
        kind: ResourceKind::parse(&m.kind)
            .ok_or_else(|| corrupt("app_resources", &key, format!("unknown kind {:?}", m.kind)))?,
        app_id: m.app_id,
        version: m.version,
        media_type: m.media_type,
        data: m.data,
    })
}

pub fn app_resource_to(r: &AppResourceRecord) -> app_resources::ActiveModel {
    app_resources::ActiveModel {
        tenant_id: Set(r.tenant.to_string()),
        app_id: Set(r.app_id.clone()),
        version: Set(r.version.clone()),
        kind: Set(r.kind.as_str().to_owned()),
        media_type: Set(r.media_type.clone()),
        data: Set(r.data.clone()),
    }
}
