//! Tenants and their users: creating a tenant, and adding, listing and removing the users of
//! one. Which role may do what is enforced with identity; here every user read or change is of
//! the tenant named.

use super::super::page::{Page, PageRequest};
use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::{ControlPlane, change};
use crate::ids::TenantId;
use crate::problem::Problems;

/// The longest tenant name and email address taken.
pub const MAX_NAME: usize = 200;

/// A tenant to create.
#[derive(Debug, Clone, Default)]
pub struct TenantRequest {
    pub id: String,
    pub name: String,
    /// `standard` when absent.
    pub plan: Option<String>,
}

/// A user to add to a tenant.
#[derive(Debug, Clone)]
pub struct UserRequest {
    pub email: String,
    /// One of [`Role::ALL`], as `Role::as_str` writes it.
    pub role: String,
    pub sso_id: Option<String>,
}

impl ControlPlane {
    /// Creates a tenant; `Conflict` when its id is taken.
    pub async fn create_tenant(&self, req: TenantRequest) -> Result<TenantRecord, ServiceError> {
        let mut problems = Problems::default();
        let id = TenantId::parse(&req.id)
            .map_err(|e| problems.push("id", e.to_string()))
            .ok();
        check_text(&mut problems, "name", &req.name);
        let plan = req.plan.unwrap_or_else(|| "standard".into());
        check_text(&mut problems, "plan", &plan);
        let Some(id) = id.filter(|_| problems.is_empty()) else {
            return Err(ServiceError::Invalid {
                what: "tenant".into(),
                problems,
            });
        };
        if self.store.get_tenant(&id).await?.is_some() {
            return Err(ServiceError::Conflict(format!("tenant {id} exists")));
        }
        let record = TenantRecord {
            id: id.clone(),
            name: req.name,
            plan,
            created_at: self.clock.now(),
            signature_policy: None,
        };
        let tx = self.store.begin().await?;
        tx.insert_tenant(&record).await?;
        let data = serde_json::json!({"name": record.name, "plan": record.plan});
        let e = change(
            &id,
            change::TENANT_CREATED,
            None,
            &id,
            data,
            &record.created_at,
        );
        tx.append_event(&e).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(record)
    }

    /// The tenant's artifact signature policy (none required until set).
    pub async fn signature_policy(
        &self,
        tenant: &TenantId,
    ) -> Result<crate::signing::SignaturePolicy, ServiceError> {
        Ok(self
            .tenant(tenant)
            .await?
            .signature_policy
            .unwrap_or_default())
    }

    /// Replaces the tenant's artifact signature policy. It holds for deployments made or
    /// updated from now on (each carries the policy it was made under to its devices).
    pub async fn set_signature_policy(
        &self,
        tenant: &TenantId,
        policy: crate::signing::SignaturePolicy,
    ) -> Result<crate::signing::SignaturePolicy, ServiceError> {
        self.tenant(tenant).await?;
        policy.check().map_err(|problems| ServiceError::Invalid {
            what: "signature policy".into(),
            problems,
        })?;
        let policy = crate::signing::SignaturePolicy {
            required: policy.required,
            public_keys: policy
                .public_keys
                .iter()
                .map(|k| format!("{}\n", k.trim()))
                .collect(),
        };
        let tx = self.store.begin().await?;
        if !tx.set_signature_policy(tenant, &policy).await? {
            return Err(not_found("tenant", tenant));
        }
        let data =
            serde_json::json!({"required": policy.required, "keys": policy.public_keys.len()});
        let e = change(
            tenant,
            change::SIGNATURE_POLICY_SET,
            None,
            tenant,
            data,
            &self.clock.now(),
        );
        tx.append_event(&e).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(policy)
    }

    pub async fn tenants_page(
        &self,
        page: &PageRequest,
    ) -> Result<Page<TenantRecord>, ServiceError> {
        let fetched = self
            .store
            .page_tenants(page.after.as_deref(), page.fetch())
            .await?;
        Ok(page.page(fetched, |t| t.id.to_string()))
    }

    /// Adds a user to the tenant; `Conflict` when the tenant has a user of that email.
    pub async fn add_user(
        &self,
        tenant: &TenantId,
        req: UserRequest,
    ) -> Result<UserRecord, ServiceError> {
        self.tenant(tenant).await?;
        let mut problems = Problems::default();
        let email = req.email.trim().to_lowercase();
        let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
        if !well_formed || email.len() > MAX_NAME || email.chars().any(char::is_whitespace) {
            problems.push(
                "email",
                format!(
                    "{:?} is not an email address (name@domain.tld, at most {MAX_NAME} characters)",
                    req.email
                ),
            );
        }
        let role = Role::parse(&req.role);
        if role.is_none() {
            let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            problems.push(
                "role",
                format!("{:?} is none of {}", req.role, all.join(", ")),
            );
        }
        if let Some(sso) = &req.sso_id {
            check_text(&mut problems, "sso_id", sso);
        }
        let Some(role) = role.filter(|_| problems.is_empty()) else {
            return Err(ServiceError::Invalid {
                what: "user".into(),
                problems,
            });
        };
        let record = UserRecord {
            id: self.clock.new_uuid(),
            tenant: tenant.clone(),
            email,
            role,
            sso_id: req.sso_id,
            created_at: self.clock.now(),
        };
        let tx = self.store.begin().await?;
        tx.insert_user(&record).await.map_err(|e| match e {
            super::super::StoreError::Conflict(_) => ServiceError::Conflict(format!(
                "tenant {tenant} has a user {} already",
                record.email
            )),
            other => other.into(),
        })?;
        let data = serde_json::json!({"email": record.email, "role": record.role});
        let e = change(
            tenant,
            change::USER_ADDED,
            None,
            &record.id,
            data,
            &record.created_at,
        );
        tx.append_event(&e).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(record)
    }

    pub async fn user(&self, tenant: &TenantId, id: &str) -> Result<UserRecord, ServiceError> {
        self.store
            .get_user(tenant, id)
            .await?
            .ok_or_else(|| not_found("user", id))
    }

    pub async fn users_page(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<UserRecord>, ServiceError> {
        let fetched = self
            .store
            .page_users(tenant, page.after.as_deref(), page.fetch())
            .await?;
        Ok(page.page(fetched, |u| u.id.clone()))
    }

    /// Removes one of the tenant's users.
    pub async fn remove_user(&self, tenant: &TenantId, id: &str) -> Result<(), ServiceError> {
        let tx = self.store.begin().await?;
        if !tx.delete_user(tenant, id).await? {
            return Err(not_found("user", id));
        }
        let e = change(
            tenant,
            change::USER_REMOVED,
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
}

fn check_text(problems: &mut Problems, path: &str, text: &str) {
    if text.trim().is_empty() || text.len() > MAX_NAME || text.chars().any(char::is_control) {
        problems.push(
            path,
            format!("must be 1 to {MAX_NAME} characters, none of them control characters"),
        );
    }
}
