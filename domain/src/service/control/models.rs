//! Device models and compatibility: models registered with their capability template, devices
//! pointed at the model they report, and an app version judged against a model or a device by
//! the same rule the site's placement applies.

use super::super::page::{MAX_PAGE, Page, PageRequest};
use super::super::records::*;
use super::super::{ServiceError, StoreError, not_found};
use super::{ControlPlane, change, stored_description};
use crate::ids::{DeviceId, TenantId, check_label_name};
use crate::margo::DeviceCapabilities;
use crate::placement::{Candidate, check};
use crate::problem::Problems;

/// Which template or device an app version is judged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Against {
    Model(String),
    Device(String),
}

impl ControlPlane {
    /// Registers a device model from its capability template (a Margo DeviceCapabilities
    /// document, as JSON); its vendor and model are the template's `vendor` and `modelNumber`.
    pub async fn register_model(
        &self,
        tenant: &TenantId,
        id: &str,
        template_json: &str,
    ) -> Result<DeviceModelRecord, ServiceError> {
        self.tenant(tenant).await?;
        let mut problems = Problems::default();
        if let Err(why) = check_label_name(id) {
            problems.push("id", format!("{id:?}: {why}"));
        }
        let template = match DeviceCapabilities::from_json(template_json) {
            Ok(t) => Some(t),
            Err(p) => {
                for found in p.iter() {
                    problems.push(format!("capabilities.{}", found.path), &found.message);
                }
                None
            }
        };
        let Some(template) = template.filter(|_| problems.is_empty()) else {
            return Err(ServiceError::Invalid {
                what: "device model".into(),
                problems,
            });
        };
        let record = DeviceModelRecord {
            tenant: tenant.clone(),
            id: id.to_owned(),
            vendor: template.properties.vendor.clone(),
            model: template.properties.model_number.clone(),
            capabilities: template,
            created_at: self.clock.now(),
        };
        let tx = self.store.begin().await?;
        tx.insert_device_model(&record).await.map_err(|e| match e {
            StoreError::Conflict(_) => ServiceError::Conflict(format!(
                "tenant {tenant} has a device model {id} or one of {} {} already",
                record.vendor, record.model
            )),
            other => other.into(),
        })?;
        let data = serde_json::json!({"vendor": record.vendor, "model": record.model});
        let e = change(
            tenant,
            change::DEVICE_MODEL_REGISTERED,
            None,
            id,
            data,
            &record.created_at,
        );
        tx.append_event(&e).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(record)
    }

    pub async fn device_model(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<DeviceModelRecord, ServiceError> {
        self.store
            .get_device_model(tenant, id)
            .await?
            .ok_or_else(|| not_found("device model", id))
    }

    pub async fn models_page(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<DeviceModelRecord>, ServiceError> {
        let fetched = self
            .store
            .page_device_models(tenant, page.after.as_deref(), page.fetch())
            .await?;
        Ok(page.page(fetched, |m| m.id.clone()))
    }

    pub async fn remove_model(&self, tenant: &TenantId, id: &str) -> Result<(), ServiceError> {
        let tx = self.store.begin().await?;
        if !tx.delete_device_model(tenant, id).await? {
            return Err(not_found("device model", id));
        }
        let e = change(
            tenant,
            change::DEVICE_MODEL_REMOVED,
            None,
            id,
            serde_json::Value::Null,
            &self.clock.now(),
        );
        tx.append_event(&e).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(())
    }

    /// Points each device at the tenant's model of its vendor and model number, if any.
    pub(super) async fn with_models(
        &self,
        tenant: &TenantId,
        mut devices: Vec<DeviceRecord>,
    ) -> Result<Vec<DeviceRecord>, ServiceError> {
        let models = self.all_models(tenant).await?;
        for d in &mut devices {
            let props = &d.capabilities.properties;
            d.model = models
                .iter()
                .find(|m| m.vendor == props.vendor && m.model == props.model_number)
                .map(|m| m.id.clone());
        }
        Ok(devices)
    }

    /// Every model of the tenant (a maker's catalogue: tens, not thousands), read a store page
    /// at a time.
    async fn all_models(&self, tenant: &TenantId) -> Result<Vec<DeviceModelRecord>, ServiceError> {
        let mut all: Vec<DeviceModelRecord> = Vec::new();
        loop {
            let after = all.last().map(|m| m.id.clone());
            let page = self
                .store
                .page_device_models(tenant, after.as_deref(), MAX_PAGE)
                .await?;
            let done = (page.len() as u64) < MAX_PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// How an app version (the newest when `version` is `None`) fits a device model's template
    /// or a device's reported capabilities: per deployment profile, whether it can run there
    /// (runtime, capacity, eligibility rules) and why not. A device is judged as if online.
    pub async fn compatibility(
        &self,
        tenant: &TenantId,
        app_id: &str,
        version: Option<&str>,
        against: &Against,
    ) -> Result<CompatibilityReport, ServiceError> {
        let app = self.app_version(tenant, app_id, version).await?;
        let ad = stored_description(&app)?;
        let (label, device, capabilities) = match against {
            Against::Model(id) => {
                let m = self.device_model(tenant, id).await?;
                // A template names no device; placement's rule needs one.
                let placeholder = DeviceId::parse("model/template")
                    .map_err(|e| ServiceError::Backend(e.to_string()))?;
                (format!("model {id}"), placeholder, m.capabilities)
            }
            Against::Device(id) => {
                let did = DeviceId::parse(id).map_err(|_| not_found("device", id))?;
                let d = self
                    .store
                    .get_device(tenant, &did)
                    .await?
                    .ok_or_else(|| not_found("device", id))?;
                (format!("device {id}"), did, d.capabilities)
            }
        };
        let candidate = Candidate {
            device,
            capabilities,
            online: true,
            schedule: Schedule::Open,
            load: 0,
        };
        let profiles: Vec<ProfileCompatibility> = ad
            .deployment_profiles
            .iter()
            .map(|p| {
                let runtime = p.runtime();
                let verdict = check(
                    &candidate,
                    runtime.as_deref(),
                    p.device_constraints.as_ref(),
                );
                ProfileCompatibility {
                    profile: p.id.clone(),
                    runtime,
                    compatible: verdict.is_ok(),
                    reason: verdict.err(),
                }
            })
            .collect();
        Ok(CompatibilityReport {
            app_id: app.app_id,
            version: app.version,
            against: label,
            compatible: profiles.iter().any(|p| p.compatible),
            profiles,
        })
    }
}
