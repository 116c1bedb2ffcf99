//! Updating an active deployment: another version of its application or new parameters,
//! rendered again for the same deployment and published.

use super::super::ServiceError;
use super::super::records::{DeploymentPhase, DeploymentRecord};
use super::{ControlPlane, change, stored_description};
use crate::ids::{DeviceTarget, TenantId};
use crate::render::{RenderRequest, render};
use serde_json::Value;
use std::collections::BTreeMap;

/// A change to an active deployment: another version of its application, new parameters, or
/// both. What is absent stays as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub version: Option<String>,
    pub parameters: Option<BTreeMap<String, Value>>,
    /// `If-Match`: the entity tags the client read (`*` for any); the update is made only when
    /// the deployment's [`DeploymentRecord::etag`] is one of them.
    pub if_match: Option<Vec<String>>,
}

impl ControlPlane {
    /// Moves an active deployment to another version of its application and/or new
    /// parameters. The new desired state is rendered for the same deployment id and target
    /// (an unchanged profile id when the new version still has it, else its first) and
    /// published; the site replaces each component whose spec changed and keeps the others.
    pub async fn update_deployment(
        &self,
        tenant: &TenantId,
        id: &str,
        req: UpdateRequest,
    ) -> Result<DeploymentRecord, ServiceError> {
        let _change = self.change_lock.lock().await;
        let current = self.deployment(tenant, id).await?;
        if let Some(tags) = &req.if_match {
            let etag = current.etag();
            if !tags.iter().any(|t| t == "*" || *t == etag) {
                return Err(ServiceError::PreconditionFailed(format!(
                    "deployment {id} is at {etag}, not {}: it changed since it was read",
                    tags.join(", ")
                )));
            }
        }
        if current.phase != DeploymentPhase::Active {
            return Err(ServiceError::Conflict(format!(
                "deployment {id} is {} and cannot change",
                current.phase.as_str()
            )));
        }
        let version = self
            .app_version(
                tenant,
                &current.app_id,
                Some(req.version.as_deref().unwrap_or(&current.version)),
            )
            .await?;
        let ad = stored_description(&version)?;
        let workload = self
            .check_workload_policy(tenant, &ad, "deployment request")
            .await?;
        let profile_id = if ad.profile(&current.profile_id).is_some() {
            current.profile_id.clone()
        } else {
            ad.deployment_profiles[0].id.clone()
        };
        let target = DeviceTarget::parse(&current.target)
            .map_err(|e| ServiceError::Backend(format!("stored target: {e}")))?;
        let parameters = req.parameters.unwrap_or_else(|| current.parameters.clone());
        let signatures = self.signature_policy(tenant).await?;
        let rendered = render(&RenderRequest {
            id: &current.id,
            description: &ad,
            profile_id: &profile_id,
            target: &target,
            parameters: &parameters,
            installed: Some(&current.parameters),
            signatures: Some(&signatures),
            workload: Some(&workload),
        })
        .map_err(|problems| ServiceError::Invalid {
            what: "deployment update".into(),
            problems,
        })?;
        let record = DeploymentRecord {
            version: ad.metadata.version.clone(),
            profile_id,
            parameters,
            document: rendered.to_yaml(),
            ..current
        };
        let tx = self.store.begin().await?;
        tx.replace_deployment(&record).await?;
        let data = serde_json::json!({"version": record.version, "etag": record.etag()});
        tx.append_event(&change(
            tenant,
            change::DEPLOYMENT_UPDATED,
            Some(&record.site),
            record.id.as_str(),
            data,
            &self.clock.now(),
        ))
        .await?;
        tx.commit().await?;
        self.bell.ring();
        self.publish_site(
            &record.site,
            &format!(
                "update {} to {}@{} ({})",
                record.id, record.app_id, record.version, record.target
            ),
        )
        .await?;
        Ok(record)
    }
}
