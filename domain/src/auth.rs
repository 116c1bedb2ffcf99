//! Who may do what: the actions an API operation needs, which roles grant them, and the tenant
//! rule (a principal acts in its own tenant; a platform admin in any). Pure rules; tokens and
//! the table of operations live in the HTTP adapter.

use crate::ids::TenantId;
use crate::service::Role;

/// What an API operation does, as far as permission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Needs no token: health, the API's own documents, the signing keys.
    Public,
    /// Reads the tenant's catalog and fleet: apps, sites, devices, deployments, models.
    Read,
    /// Reads what runs and what happened: live logs and usage, events, histories.
    ReadOperations,
    /// Adds applications to the catalog.
    ManageApps,
    /// Creates, previews, updates and deletes deployments.
    Deploy,
    /// Changes sites and devices: labels, time zones, cordon, drain; registers device models.
    ManageFleet,
    /// Reads, adds and removes the tenant's users and issues their tokens.
    ManageUsers,
    /// Sets the tenant's security policy (which artifacts must be signed, by which keys) and
    /// revokes its sites' and devices' certificates.
    ManageSecurity,
    /// Lists and creates tenants: the platform's own business.
    ManageTenants,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Self::Public,
        Self::Read,
        Self::ReadOperations,
        Self::ManageApps,
        Self::Deploy,
        Self::ManageFleet,
        Self::ManageUsers,
        Self::ManageSecurity,
        Self::ManageTenants,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Read => "read",
            Self::ReadOperations => "read-operations",
            Self::ManageApps => "manage-apps",
            Self::Deploy => "deploy",
            Self::ManageFleet => "manage-fleet",
            Self::ManageUsers => "manage-users",
            Self::ManageSecurity => "manage-security",
            Self::ManageTenants => "manage-tenants",
        }
    }
}

impl Role {
    /// Whether the role grants `action` (in its tenant; see [`Principal::may`]).
    pub fn grants(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::PlatformAdmin => true,
            Role::TenantAdmin => action != ManageTenants,
            Role::Operator => matches!(
                action,
                Public | Read | ReadOperations | ManageApps | Deploy | ManageFleet
            ),
            // Audits what happened and what runs, and keeps the supply chain and the fleet's
            // credentials: artifact signatures, certificate revocation, key rotation (seed 004
            // §2 and UC 3.7).
            Role::SecurityAnalyst => {
                matches!(action, Public | Read | ReadOperations | ManageSecurity)
            }
            Role::Viewer => matches!(action, Public | Read | ReadOperations),
            // Reports on what the fleet is and costs; no logs or event trails.
            Role::Finops => matches!(action, Public | Read),
        }
    }
}

/// Who a request comes from, as its verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject (a user id, or `bootstrap-admin`).
    pub subject: String,
    /// The tenant the principal belongs to.
    pub tenant: TenantId,
    pub roles: Vec<Role>,
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{subject} belongs to tenant {own} and may not act for tenant {asked}")]
    OtherTenant {
        subject: String,
        own: String,
        asked: String,
    },
    #[error("{subject} (roles: {roles}) may not {action}: it needs one of {needs}")]
    Role {
        subject: String,
        roles: String,
        action: &'static str,
        needs: String,
    },
    #[error("{subject} may not {what} {role}: {why}")]
    AboveOwn {
        subject: String,
        /// `grant`, `act as` (a token), `change a user who is`, …
        what: &'static str,
        role: &'static str,
        why: String,
    },
}

impl Principal {
    /// Whether the principal is a platform admin: it has the role *and* belongs to the platform
    /// tenant. A `platform-admin` role held in any other tenant (a stored row of an ordinary
    /// tenant, a provider's token naming another tenant) counts for nothing.
    pub fn is_platform_admin(&self) -> bool {
        self.tenant.is_platform() && self.roles.contains(&Role::PlatformAdmin)
    }

    /// The roles that count: all of them, less `platform-admin` outside the platform tenant.
    pub fn effective_roles(&self) -> impl Iterator<Item = Role> + '_ {
        self.roles
            .iter()
            .copied()
            .filter(|r| *r != Role::PlatformAdmin || self.tenant.is_platform())
    }

    /// Whether the principal may give `role` to a user (add one with it, change one to it),
    /// mint a token carrying it, or change or remove a user who has it: only a platform admin
    /// deals in `platform-admin`, and anyone else only in roles that grant nothing the
    /// principal's own roles do not.
    pub fn may_grant(&self, role: Role, what: &'static str) -> Result<(), Denied> {
        let refuse = |why: String| Denied::AboveOwn {
            subject: self.subject.clone(),
            what,
            role: role.as_str(),
            why,
        };
        if role == Role::PlatformAdmin {
            return match self.is_platform_admin() {
                true => Ok(()),
                false => Err(refuse(
                    "only a platform admin deals in platform admins".into(),
                )),
            };
        }
        let above: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| role.grants(*a) && !self.effective_roles().any(|r| r.grants(*a)))
            .map(Action::as_str)
            .collect();
        match above.is_empty() {
            true => Ok(()),
            false => Err(refuse(format!(
                "it grants {} that the principal's own roles do not",
                above.join(", ")
            ))),
        }
    }

    /// Whether the principal may do `action` for `tenant`: in its own tenant by its roles; in
    /// another only as a platform admin.
    pub fn may(&self, action: Action, tenant: &TenantId) -> Result<(), Denied> {
        if action == Action::Public {
            return Ok(());
        }
        if *tenant != self.tenant && !self.is_platform_admin() {
            return Err(Denied::OtherTenant {
                subject: self.subject.clone(),
                own: self.tenant.to_string(),
                asked: tenant.to_string(),
            });
        }
        if self.effective_roles().any(|r| r.grants(action)) {
            return Ok(());
        }
        let names = |roles: &mut dyn Iterator<Item = Role>| {
            roles.map(Role::as_str).collect::<Vec<_>>().join(", ")
        };
        Err(Denied::Role {
            subject: self.subject.clone(),
            roles: match self.roles.is_empty() {
                true => "none of EOS's".into(),
                false => names(&mut self.roles.iter().copied()),
            },
            action: action.as_str(),
            needs: names(&mut Role::ALL.into_iter().filter(|r| r.grants(action))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: &str, roles: &[Role]) -> Principal {
        Principal {
            subject: "u1".into(),
            tenant: TenantId::parse(tenant).unwrap(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn each_role_grants_what_the_personas_need_and_nothing_more() {
        use Action::*;
        let granted = |role: Role| -> Vec<Action> {
            Action::ALL
                .into_iter()
                .filter(|a| role.grants(*a))
                .collect()
        };
        assert_eq!(granted(Role::PlatformAdmin), Action::ALL.to_vec());
        assert_eq!(
            granted(Role::TenantAdmin),
            [
                Public,
                Read,
                ReadOperations,
                ManageApps,
                Deploy,
                ManageFleet,
                ManageUsers,
                ManageSecurity
            ]
        );
        assert_eq!(
            granted(Role::Operator),
            [
                Public,
                Read,
                ReadOperations,
                ManageApps,
                Deploy,
                ManageFleet
            ]
        );
        assert_eq!(
            granted(Role::SecurityAnalyst),
            [Public, Read, ReadOperations, ManageSecurity]
        );
        assert_eq!(granted(Role::Viewer), [Public, Read, ReadOperations]);
        assert_eq!(granted(Role::Finops), [Public, Read]);
    }

    #[test]
    fn another_tenant_is_out_of_reach_except_for_a_platform_admin() {
        let acme = TenantId::parse("acme").unwrap();
        let operator = principal("globex", &[Role::Operator]);
        let denied = operator.may(Action::Read, &acme).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "u1 belongs to tenant globex and may not act for tenant acme"
        );
        assert!(operator.may(Action::Public, &acme).is_ok());
        let admin = principal("default", &[Role::PlatformAdmin]);
        assert!(admin.may(Action::Deploy, &acme).is_ok());
    }

    #[test]
    fn platform_admin_counts_only_in_the_platform_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        let forged = principal("acme", &[Role::PlatformAdmin]);
        assert!(!forged.is_platform_admin());
        assert!(forged.may(Action::ManageTenants, &acme).is_err());
        assert!(
            forged.may(Action::Read, &acme).is_err(),
            "the role counts for nothing"
        );
        assert!(
            forged
                .may(Action::Read, &TenantId::parse("globex").unwrap())
                .is_err()
        );
        assert!(principal("default", &[Role::PlatformAdmin]).is_platform_admin());
    }

    #[test]
    fn nobody_grants_a_role_above_their_own() {
        let admin = principal("acme", &[Role::TenantAdmin]);
        for role in [
            Role::TenantAdmin,
            Role::Operator,
            Role::SecurityAnalyst,
            Role::Viewer,
            Role::Finops,
        ] {
            assert!(admin.may_grant(role, "grant").is_ok(), "{role:?}");
        }
        let denied = admin.may_grant(Role::PlatformAdmin, "grant").unwrap_err();
        assert_eq!(
            denied.to_string(),
            "u1 may not grant platform-admin: only a platform admin deals in platform admins"
        );
        let operator = principal("acme", &[Role::Operator]);
        assert!(operator.may_grant(Role::Viewer, "grant").is_ok());
        assert_eq!(
            operator
                .may_grant(Role::SecurityAnalyst, "grant")
                .unwrap_err()
                .to_string(),
            "u1 may not grant security-analyst: it grants manage-security that the principal's own roles do not"
        );
        assert!(operator.may_grant(Role::TenantAdmin, "grant").is_err());
        let platform = principal("default", &[Role::PlatformAdmin]);
        assert!(platform.may_grant(Role::PlatformAdmin, "grant").is_ok());
        let forged = principal("acme", &[Role::PlatformAdmin]);
        assert!(forged.may_grant(Role::PlatformAdmin, "grant").is_err());
        assert!(forged.may_grant(Role::Viewer, "grant").is_err());
    }

    #[test]
    fn a_refusal_names_the_roles_that_would_do() {
        let t = TenantId::parse("acme").unwrap();
        let viewer = principal("acme", &[Role::Viewer, Role::Finops]);
        assert_eq!(
            viewer.may(Action::Deploy, &t).unwrap_err().to_string(),
            "u1 (roles: viewer, finops) may not deploy: it needs one of platform-admin, tenant-admin, operator"
        );
        assert!(
            viewer.may(Action::ReadOperations, &t).is_ok(),
            "any role that grants it"
        );
    }
}
