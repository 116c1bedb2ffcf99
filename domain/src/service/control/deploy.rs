//! Creating a deployment: rendered for its target, stored, committed to the site's desired
//! state; retried safely under an idempotency key.

use super::super::ports::StoreError;
use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::{ControlPlane, change, invalid, stored_description};
use crate::ids::{DeploymentId, DeviceId, DeviceTarget, HostName, SiteId, TenantId};
use crate::margo::status::DeploymentState;
use crate::margo::{ApplicationDeployment, ApplicationDescription};
use crate::placement::{Candidate, Placement, place};
use crate::render::{RenderRequest, render};
use serde_json::Value;
use std::collections::BTreeMap;

/// A deployment request made into Margo terms.
struct Rendered {
    site_id: SiteId,
    ad: ApplicationDescription,
    target: DeviceTarget,
    profile_id: String,
    document: ApplicationDeployment,
}

/// The longest idempotency key taken.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A request to deploy an application version to a site.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    pub app_id: String,
    /// The newest version when absent.
    pub version: Option<String>,
    pub site: String,
    /// A host of the site to pin to; otherwise the LO chooses.
    pub host: Option<String>,
    /// A deployment profile id; otherwise the first one.
    pub profile: Option<String>,
    pub parameters: BTreeMap<String, Value>,
    /// `Idempotency-Key`: a retry with the same key and request gets the same deployment.
    pub idempotency_key: Option<String>,
}

impl DeployRequest {
    /// What identifies the request apart from its idempotency key.
    fn digest(&self) -> String {
        use sha2::Digest;
        let what = serde_json::json!([
            self.app_id,
            self.version,
            self.site,
            self.host,
            self.profile,
            self.parameters
        ]);
        hex::encode(sha2::Sha256::digest(what.to_string().as_bytes()))
    }
}

impl ControlPlane {
    /// Renders the deployment, stores it, commits the site's new desired state and hints its LO.
    /// With an idempotency key, a request seen before gets the deployment it made then (and a
    /// different request under the same key is refused), so a client may retry safely.
    pub async fn deploy(
        &self,
        tenant: &TenantId,
        req: DeployRequest,
    ) -> Result<DeploymentRecord, ServiceError> {
        let digest = req.digest();
        if let Some(key) = &req.idempotency_key {
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.is_ascii() {
                return Err(invalid(
                    "Idempotency-Key",
                    format!("must be 1 to {MAX_IDEMPOTENCY_KEY} ASCII characters"),
                ));
            }
            if let Some(seen) = self.store.get_idempotency(tenant, key).await? {
                return self.replay(tenant, &seen, &digest).await;
            }
        }
        let id = DeploymentId::parse(self.clock.new_uuid())
            .map_err(|e| ServiceError::Backend(e.to_string()))?;
        let Rendered {
            site_id,
            ad,
            target,
            profile_id,
            document: rendered,
        } = self.rendered(tenant, &req, &id).await?;
        let record = DeploymentRecord {
            id: id.clone(),
            tenant: tenant.clone(),
            app_id: ad.id.clone(),
            version: ad.metadata.version.clone(),
            site: site_id.clone(),
            target: target.to_string(),
            profile_id,
            parameters: req.parameters,
            phase: DeploymentPhase::Active,
            document: rendered.to_yaml(),
            created_at: self.clock.now(),
        };
        // The deployment, its event and its key are stored together or not at all.
        let tx = self.store.begin().await?;
        tx.insert_deployment(&record).await?;
        let data = serde_json::json!({
            "app_id": record.app_id,
            "version": record.version,
            "target": record.target,
        });
        tx.append_event(&change(
            tenant,
            change::DEPLOYMENT_CREATED,
            Some(&record.site),
            record.id.as_str(),
            data,
            &record.created_at,
        ))
        .await?;
        match &req.idempotency_key {
            None => tx.commit().await?,
            Some(key) => {
                let seen = IdempotencyRecord {
                    tenant: tenant.clone(),
                    key: key.clone(),
                    request_digest: digest.clone(),
                    deployment_id: record.id.clone(),
                    created_at: record.created_at.clone(),
                };
                match tx.insert_idempotency(&seen).await {
                    Ok(()) => tx.commit().await?,
                    // A request with the same key was stored first: its answer is this one's.
                    Err(StoreError::Conflict(_)) => {
                        drop(tx);
                        let first =
                            self.store
                                .get_idempotency(tenant, key)
                                .await?
                                .ok_or_else(|| {
                                    ServiceError::Backend(format!("idempotency key {key} vanished"))
                                })?;
                        return self.replay(tenant, &first, &digest).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.bell.ring();
        self.publish_site(
            &site_id,
            &format!(
                "deploy {}@{} to {} ({})",
                record.app_id, record.version, record.target, id
            ),
        )
        .await?;
        Ok(record)
    }

    /// Where the site would place the deployment `req` asks for, judged here with the rule the
    /// site's LO applies and what the site's devices last reported: the device chosen, and why
    /// each other device was not (a compatibility report of the app version against each).
    /// Nothing is stored. The LO decides when the deployment is made; it may know newer facts.
    pub async fn preview(
        &self,
        tenant: &TenantId,
        req: &DeployRequest,
    ) -> Result<Placement, ServiceError> {
        let id = DeploymentId::parse("00000000-0000-4000-8000-000000000000")
            .map_err(|e| ServiceError::Backend(e.to_string()))?;
        let Rendered {
            site_id, document, ..
        } = self.rendered(tenant, req, &id).await?;
        let devices = self.store.list_devices(tenant, Some(&site_id)).await?;
        // A device's load: the active deployments of the site it reports installed.
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for d in self.store.list_deployments(tenant, Some(&site_id)).await? {
            if d.phase != DeploymentPhase::Active {
                continue;
            }
            for s in self.store.device_statuses(&d.id).await? {
                if s.state == DeploymentState::Installed {
                    *load.entry(s.device_id).or_default() += 1;
                }
            }
        }
        let candidates: Vec<Candidate> = devices
            .into_iter()
            .map(|d| Candidate {
                load: load.get(&d.id.to_string()).copied().unwrap_or(0),
                device: d.id,
                capabilities: d.capabilities,
                online: d.online,
                schedule: d.schedule,
            })
            .collect();
        Ok(place(&document, &candidates, None))
    }

    /// The request rendered for deployment `id`: its site (which must be the tenant's), the
    /// tenant's app version's description, the target, the profile and the
    /// ApplicationDeployment.
    async fn rendered(
        &self,
        tenant: &TenantId,
        req: &DeployRequest,
        id: &DeploymentId,
    ) -> Result<Rendered, ServiceError> {
        let site_id = SiteId::parse(&req.site).map_err(|_| not_found("site", &req.site))?;
        self.tenant_site(tenant, &site_id).await?;
        let version = self
            .app_version(tenant, &req.app_id, req.version.as_deref())
            .await?;
        let ad = stored_description(&version)?;
        let workload = self
            .check_workload_policy(tenant, &ad, "deployment request")
            .await?;
        let target = match &req.host {
            Some(h) => DeviceTarget::Pinned(DeviceId::new(
                site_id.clone(),
                HostName::parse(h).map_err(|e| invalid("host", e.to_string()))?,
            )),
            None => DeviceTarget::AnyIn(site_id.clone()),
        };
        let profile_id = req
            .profile
            .clone()
            .unwrap_or_else(|| ad.deployment_profiles[0].id.clone());
        let signatures = self.signature_policy(tenant).await?;
        let document = render(&RenderRequest {
            id,
            description: &ad,
            profile_id: &profile_id,
            target: &target,
            parameters: &req.parameters,
            installed: None,
            signatures: Some(&signatures),
            workload: Some(&workload),
        })
        .map_err(|problems| ServiceError::Invalid {
            what: "deployment request".into(),
            problems,
        })?;
        Ok(Rendered {
            site_id,
            ad,
            target,
            profile_id,
            document,
        })
    }

    /// The answer to a request whose idempotency key was seen: the deployment it made, when
    /// the request is the same.
    async fn replay(
        &self,
        tenant: &TenantId,
        seen: &IdempotencyRecord,
        digest: &str,
    ) -> Result<DeploymentRecord, ServiceError> {
        if seen.request_digest != digest {
            return Err(invalid(
                "Idempotency-Key",
                format!(
                    "{} was used for another request (deployment {})",
                    seen.key, seen.deployment_id
                ),
            ));
        }
        self.deployment(tenant, seen.deployment_id.as_str()).await
    }
}
