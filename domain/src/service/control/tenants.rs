//! Tenants and their users: creating a tenant, and adding, listing, changing and removing the
//! users of one. Which action a role may take is enforced with identity; here every user read
//! or change is of the tenant named, and nobody deals in a role above their own
//! ([`Principal::may_grant`]): not adding, changing or removing such a user, nor minting its
//! tokens. `platform-admin` belongs to users of the platform tenant only.

use super::super::page::{Page, PageRequest};
use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::{ControlPlane, change};
use crate::auth::Principal;
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
            workload_policy: None,
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

    /// The tenant's workload security policy (the strict default until a platform admin
    /// grants more).
    pub async fn workload_policy(
        &self,
        tenant: &TenantId,
    ) -> Result<crate::workload::WorkloadPolicy, ServiceError> {
        Ok(self
            .tenant(tenant)
            .await?
            .workload_policy
            .unwrap_or_default())
    }

    /// Replaces the tenant's workload security policy (a platform admin's call: the HTTP
    /// adapter's table says so). It holds for apps added and deployments made or updated from
    /// now on; each deployment carries it to its devices, which enforce it within their own
    /// ceiling.
    pub async fn set_workload_policy(
        &self,
        tenant: &TenantId,
        policy: crate::workload::WorkloadPolicy,
    ) -> Result<crate::workload::WorkloadPolicy, ServiceError> {
        self.tenant(tenant).await?;
        policy.check().map_err(|problems| ServiceError::Invalid {
            what: "workload policy".into(),
            problems,
        })?;
        let tx = self.store.begin().await?;
        if !tx.set_workload_policy(tenant, &policy).await? {
            return Err(not_found("tenant", tenant));
        }
        let data = serde_json::to_value(&policy).expect("a policy is JSON");
        let e = change(
            tenant,
            change::WORKLOAD_POLICY_SET,
            None,
            tenant.as_str(),
            data,
            &self.clock.now(),
        );
        tx.append_event(&e).await?;
        tx.commit().await?;
        self.bell.ring();
        Ok(policy)
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

    /// Adds a user to the tenant for `actor`; `Conflict` when the tenant has a user of that
    /// email, `Forbidden` when the role is above the actor's own.
    pub async fn add_user(
        &self,
        actor: &Principal,
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
        if let Some(role) = role {
            grant(actor, role, "grant")?;
        }
        if role == Some(Role::PlatformAdmin) && !tenant.is_platform() {
            problems.push(
                "role",
                format!(
                    "platform-admin is only for users of the platform tenant {}",
                    TenantId::platform()
                ),
            );
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

    /// A user of the tenant that `actor` may act on or mint a token for (its role is not
    /// above the actor's own).
    pub async fn user_for(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        id: &str,
        what: &'static str,
    ) -> Result<UserRecord, ServiceError> {
        let user = self.user(tenant, id).await?;
        grant(actor, user.role, what)?;
        Ok(user)
    }

    /// Gives one of the tenant's users another role, for `actor`: neither the user's present
    /// role nor the new one may be above the actor's own.
    pub async fn set_user_role(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        id: &str,
        role: &str,
    ) -> Result<UserRecord, ServiceError> {
        let Some(new) = Role::parse(role) else {
            let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            let mut problems = Problems::default();
            problems.push("role", format!("{role:?} is none of {}", all.join(", ")));
            return Err(ServiceError::Invalid {
                what: "user".into(),
                problems,
            });
        };
        if new == Role::PlatformAdmin && !tenant.is_platform() {
            let mut problems = Problems::default();
            problems.push(
                "role",
                format!(
                    "platform-admin is only for users of the platform tenant {}",
                    TenantId::platform()
                ),
            );
            return Err(ServiceError::Invalid {
                what: "user".into(),
                problems,
            });
        }
        let mut user = self
            .user_for(actor, tenant, id, "change a user who is")
            .await?;
        grant(actor, new, "grant")?;
        if user.role == new {
            return Ok(user);
        }
        let tx = self.store.begin().await?;
        if !tx.set_user_role(tenant, id, new).await? {
            return Err(not_found("user", id));
        }
        let data = serde_json::json!({"email": user.email, "from": user.role, "role": new});
        let e = change(
            tenant,
            change::USER_ROLE_CHANGED,
            None,
            id,
            data,
            &self.clock.now(),
        );
        tx.append_event(&e).await?;
        tx.commit().await?;
        self.bell.ring();
        user.role = new;
        Ok(user)
    }

    /// The stored user a token of this CO names, as it is now: `None` when it was removed.
    /// Tokens carry a role; a token whose user has another role now is no longer good.
    pub async fn token_user(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<UserRecord>, ServiceError> {
        Ok(self.store.get_user(tenant, id).await?)
    }

    /// The platform tenant's bootstrap admin (the user `email`), added when missing: the
    /// subject of the token the CO writes to `admin.token`, so that removing the user revokes
    /// that token like any other.
    pub async fn bootstrap_admin(&self, email: &str) -> Result<UserRecord, ServiceError> {
        let tenant = TenantId::platform();
        if let Some(user) = self.store.user_by_email(&tenant, email).await? {
            return Ok(user);
        }
        let actor = Principal {
            subject: "eos-co".into(),
            tenant: tenant.clone(),
            roles: vec![Role::PlatformAdmin],
        };
        let req = UserRequest {
            email: email.into(),
            role: Role::PlatformAdmin.as_str().into(),
            sso_id: None,
        };
        match self.add_user(&actor, &tenant, req).await {
            // Another CO on the same database added it first.
            Err(ServiceError::Conflict(_)) => self
                .store
                .user_by_email(&tenant, email)
                .await?
                .ok_or_else(|| not_found("user", email)),
            other => other,
        }
    }

    /// Removes one of the tenant's users, for `actor` (whose role may not be below the
    /// user's). Its tokens stop working at once.
    pub async fn remove_user(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        id: &str,
    ) -> Result<(), ServiceError> {
        self.user_for(actor, tenant, id, "remove a user who is")
            .await?;
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

/// `Forbidden` unless `actor` may deal in `role`.
fn grant(actor: &Principal, role: Role, what: &'static str) -> Result<(), ServiceError> {
    actor
        .may_grant(role, what)
        .map_err(|denied| ServiceError::Forbidden(denied.to_string()))
}

fn check_text(problems: &mut Problems, path: &str, text: &str) {
    if text.trim().is_empty() || text.len() > MAX_NAME || text.chars().any(char::is_control) {
        problems.push(
            path,
            format!("must be 1 to {MAX_NAME} characters, none of them control characters"),
        );
    }
}
