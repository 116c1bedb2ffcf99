//! From a provider's token claims to an EOS principal, in Keycloak's shapes: realm roles in
//! `realm_access.roles`, client roles in `resource_access.<client>.roles` (names that are not EOS
//! roles, such as Keycloak's `offline_access`, are ignored), and the tenant from a claim or from
//! a group under a prefix (`/tenants/acme`).

use eos_domain::auth::Principal;
use eos_domain::ids::TenantId;
use eos_domain::service::Role;
use serde_json::Value;

/// Where a token's roles and tenant are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// The client whose roles count (`resource_access.<client>.roles`).
    pub roles_client: String,
    /// The claim that names the tenant.
    pub tenant_claim: String,
    /// Groups under this prefix name the tenant when the claim is absent.
    pub tenant_group_prefix: String,
}

/// The principal the claims name, or why they name none.
pub fn principal(claims: &Value, mapping: &ClaimMapping) -> Result<Principal, String> {
    let subject = claims["preferred_username"]
        .as_str()
        .or_else(|| claims["sub"].as_str())
        .ok_or("the token names no subject (sub)")?
        .to_owned();
    let names = [
        &claims["realm_access"]["roles"],
        &claims["resource_access"][mapping.roles_client.as_str()]["roles"],
    ];
    let mut roles = Vec::new();
    for role in names
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(Role::parse)
    {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let tenant = match claims.get(&mapping.tenant_claim) {
        Some(Value::String(t)) => Some(TenantId::parse(t).map_err(|e| {
            format!(
                "the token's {} claim {t:?} is not a tenant: {e}",
                mapping.tenant_claim
            )
        })?),
        Some(other) => {
            return Err(format!(
                "the token's {} claim is not a string: {other}",
                mapping.tenant_claim
            ));
        }
        None => tenant_from_groups(claims, mapping)?,
    };
    let tenant = match tenant {
        Some(t) => t,
        None if roles.contains(&Role::PlatformAdmin) => TenantId::default_tenant(),
        None => {
            return Err(format!(
                "the token names no tenant: no {} claim and no group under {}",
                mapping.tenant_claim, mapping.tenant_group_prefix
            ));
        }
    };
    Ok(Principal {
        subject,
        tenant,
        roles,
    })
}

/// The one tenant the token's groups name, if any.
fn tenant_from_groups(claims: &Value, mapping: &ClaimMapping) -> Result<Option<TenantId>, String> {
    let mut found: Vec<&str> = claims["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|g| g.strip_prefix(mapping.tenant_group_prefix.as_str()))
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [] => Ok(None),
        [one] => TenantId::parse(*one).map(Some).map_err(|e| {
            format!(
                "the token's group {}{one} is not a tenant: {e}",
                mapping.tenant_group_prefix
            )
        }),
        many => Err(format!(
            "the token's groups name several tenants ({}); a token acts for one",
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> ClaimMapping {
        ClaimMapping {
            roles_client: "edgectl".into(),
            tenant_claim: "tenant".into(),
            tenant_group_prefix: "/tenants/".into(),
        }
    }

    #[test]
    fn realm_and_client_roles_count_and_other_names_are_ignored() {
        let claims = json!({
            "sub": "0b6f", "preferred_username": "alice", "tenant": "acme",
            "realm_access": {"roles": ["default-roles-eos", "offline_access", "viewer"]},
            "resource_access": {"edgectl": {"roles": ["operator", "viewer"]},
                                "account": {"roles": ["tenant-admin"]}},
        });
        let p = principal(&claims, &mapping()).unwrap();
        assert_eq!(p.subject, "alice");
        assert_eq!(p.tenant.as_str(), "acme");
        assert_eq!(p.roles, vec![Role::Viewer, Role::Operator]);
    }

    #[test]
    fn the_tenant_comes_from_one_group_when_the_claim_is_absent() {
        let claims = json!({"sub": "b", "groups": ["/staff", "/tenants/globex/ops"]});
        assert_eq!(
            principal(&claims, &mapping()).unwrap().tenant.as_str(),
            "globex"
        );
        let two = json!({"sub": "b", "groups": ["/tenants/a", "/tenants/b"]});
        assert!(
            principal(&two, &mapping())
                .unwrap_err()
                .contains("several tenants")
        );
    }

    #[test]
    fn no_tenant_is_refused_except_for_a_platform_admin() {
        let claims = json!({"sub": "c", "realm_access": {"roles": ["operator"]}});
        assert!(
            principal(&claims, &mapping())
                .unwrap_err()
                .contains("no tenant")
        );
        let admin = json!({"sub": "c", "realm_access": {"roles": ["platform-admin"]}});
        assert_eq!(
            principal(&admin, &mapping()).unwrap().tenant,
            TenantId::default_tenant()
        );
    }

    #[test]
    fn a_malformed_tenant_is_named() {
        let claims = json!({"sub": "d", "tenant": "Not A Tenant"});
        let why = principal(&claims, &mapping()).unwrap_err();
        assert!(why.contains("tenant claim \"Not A Tenant\""), "{why}");
    }
}
