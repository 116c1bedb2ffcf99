//! Which tenant a request acts for, and the tenants and users resources. The tenant is the
//! caller's token's, or the one the `EOS-Tenant` header names where the caller may act there (a
//! platform admin); `auth` settles it. Every handler gets a [`TenantScope`] that exists, and
//! passes it to the control plane, which scopes every read and change by it.

use crate::lists::{PageQuery, paged};
use crate::problem::{ApiError, ProblemDocument};
use crate::routes::{Shared, body};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use eos_domain::auth::Principal;
use eos_domain::ids::TenantId;
use eos_domain::service::{
    ControlPlane, PageRequest, TenantRecord, TenantRequest, UserRecord, UserRequest,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};

/// The header naming the tenant a request acts for.
pub const TENANT_HEADER: &str = "EOS-Tenant";

/// States whose handlers reach the control plane.
pub(crate) trait HasControl {
    fn control(&self) -> &ControlPlane;
}

impl HasControl for Shared {
    fn control(&self) -> &ControlPlane {
        self
    }
}

impl HasControl for (Shared, Arc<crate::Bell>) {
    fn control(&self) -> &ControlPlane {
        &self.0
    }
}

impl HasControl
    for (
        Shared,
        Option<Arc<dyn crate::enrolment::CertificateAuthority>>,
    )
{
    fn control(&self) -> &ControlPlane {
        &self.0
    }
}

impl HasControl for (Shared, Arc<crate::auth::Authority>) {
    fn control(&self) -> &ControlPlane {
        &self.0
    }
}

/// The tenant a request acts for; one that exists.
pub struct TenantScope(pub TenantId);

impl<S: HasControl + Send + Sync> FromRequestParts<S> for TenantScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Settled by the authorization middleware from the token and the header; a route
        // without it is refused rather than served for a tenant nobody vouched for.
        let Some(crate::auth::ActingTenant(id)) = parts.extensions.get().cloned() else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "this operation needs a bearer token",
            ));
        };
        Ok(Self(state.control().tenant(&id).await?.id))
    }
}

/// The `EOS-Tenant` header, as the OpenAPI document lists it on each operation that acts for a
/// tenant (all but health, the document itself and the platform's tenants), and the 401 and
/// 403 answers of every operation that needs a token. The bearer scheme itself is `BearerAuth`.
pub(crate) struct TenantHeader;

/// The `bearer` security scheme (a JWT), required by every operation but health.
pub(crate) struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some("A token of this CO's (edgectl login, POST /api/v1/tokens, or the bootstrap admin token in the CO's data directory)"))
                        .build(),
                ),
            );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        for (path, item) in openapi.paths.paths.iter_mut() {
            if is_public(path)
                && let Some(op) = item.get.as_mut()
            {
                op.security = Some(vec![SecurityRequirement::default()]);
            }
        }
    }
}

/// Whether the authorization table lets anyone call `path` (no token, no tenant).
fn is_public(path: &str) -> bool {
    crate::auth::REST
        .iter()
        .any(|(_, route, action)| *route == path && *action == eos_domain::auth::Action::Public)
}

impl utoipa::Modify for TenantHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header: Parameter = ParameterBuilder::new()
            .name(TENANT_HEADER)
            .parameter_in(ParameterIn::Header)
            .description(Some(
                "The tenant the request acts for (default: `default`). Everything read or changed is of this tenant; another tenant's data is not found.",
            ))
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
            ))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if is_public(path) {
                continue;
            }
            // The platform's tenants are not of a tenant: no header there.
            let of_tenant = !path.starts_with("/api/v1/tenants");
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let mut answers = vec![
                    (
                        "401",
                        "No bearer token, or one that does not verify (expired, of another issuer or audience, badly signed)",
                    ),
                    ("403", "The caller's roles or tenant do not allow this"),
                ];
                if of_tenant {
                    op.parameters
                        .get_or_insert_with(Vec::new)
                        .insert(0, header.clone());
                    answers.push(("400", "The EOS-Tenant header is no tenant id"));
                    answers.push(("404", "The tenant, or what the request names, is not found"));
                }
                for (status, why) in answers {
                    op.responses
                        .responses
                        .entry(status.into())
                        .or_insert_with(|| problem(why).into());
                }
            }
        }
    }
}

/// A problem-document response, as the API's others are described.
fn problem(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDocument")))
                .build(),
        )
        .build()
}

/// A tenant: an organisation whose applications, sites, devices, deployments, events and users
/// no other tenant sees.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub created_at: String,
}

impl From<TenantRecord> for Tenant {
    fn from(r: TenantRecord) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name,
            plan: r.plan,
            created_at: r.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase letters, digits and '-', 1 to 63 characters (`acme`).
    pub id: String,
    /// What people call it (`ACME Manufacturing`).
    pub name: String,
    /// The subscription plan (default `standard`).
    pub plan: Option<String>,
}

/// The platform's tenants, by id.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageQuery), responses((status = 200, body = Vec<Tenant>, headers(("Link" = String, description = "The next page, rel=\"next\", when there is one"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 422, body = ProblemDocument)))]
pub async fn list_tenants(
    State(c): State<Shared>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(paged(&uri, c.tenants_page(&page).await?.map(Tenant::from)))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant, responses((status = 201, body = Tenant), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn create_tenant(
    State(c): State<Shared>,
    payload: Result<Json<CreateTenant>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body(payload)?;
    let record = c
        .create_tenant(TenantRequest {
            id: req.id,
            name: req.name,
            plan: req.plan,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Tenant::from(record))))
}

/// One tenant: the one the request acts for (any tenant for a platform admin; another tenant
/// is 404 to everyone else, as if it did not exist).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}", tag = "tenants", params(("tenant_id" = String, Path)), responses((status = 200, body = Tenant), (status = 404, body = ProblemDocument)))]
pub async fn get_tenant(
    State(c): State<Shared>,
    Extension(actor): Extension<Principal>,
    TenantScope(acting): TenantScope,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let not_found = || {
        ApiError::from(eos_domain::service::ServiceError::NotFound {
            what: "tenant",
            id: id.clone(),
        })
    };
    let id = TenantId::parse(&id).map_err(|_| not_found())?;
    if id != acting && !actor.is_platform_admin() {
        return Err(not_found());
    }
    Ok(Json(c.tenant(&id).await?.into()))
}

/// A user of the tenant.
#[derive(Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct User {
    pub id: String,
    pub email: String,
    /// `platform-admin`, `tenant-admin`, `operator`, `security-analyst`, `viewer` or `finops`.
    pub role: String,
    /// The user's subject at the single sign-on provider, once known.
    pub sso_id: Option<String>,
    pub created_at: String,
}

impl From<UserRecord> for User {
    fn from(r: UserRecord) -> Self {
        Self {
            id: r.id,
            email: r.email,
            role: r.role.as_str().to_owned(),
            sso_id: r.sso_id,
            created_at: r.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    /// Unique within the tenant (compared in lower case).
    pub email: String,
    /// `platform-admin`, `tenant-admin`, `operator`, `security-analyst`, `viewer` or `finops`.
    pub role: String,
    pub sso_id: Option<String>,
}

/// The tenant's users, by id.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery), responses((status = 200, body = Vec<User>, headers(("Link" = String, description = "The next page, rel=\"next\", when there is one"), ("X-Next-Cursor" = String, description = "The next page's cursor"))), (status = 422, body = ProblemDocument)))]
pub async fn list_users(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(paged(
        &uri,
        c.users_page(&tenant, &page).await?.map(User::from),
    ))
}

/// Adds a user to the tenant, with a role no higher than the caller's own (only a platform
/// admin adds platform admins, and only to the platform tenant).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = AddUser, responses((status = 201, body = User), (status = 403, body = ProblemDocument), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn add_user(
    State(c): State<Shared>,
    Extension(actor): Extension<Principal>,
    TenantScope(tenant): TenantScope,
    payload: Result<Json<AddUser>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body(payload)?;
    let record = c
        .add_user(
            &actor,
            &tenant,
            UserRequest {
                email: req.email,
                role: req.role,
                sso_id: req.sso_id,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(User::from(record))))
}

/// One of the tenant's users.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)), responses((status = 200, body = User), (status = 404, body = ProblemDocument)))]
pub async fn get_user(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(c.user(&tenant, &id).await?.into()))
}

/// Removes one of the tenant's users (not one whose role is above the caller's). Its tokens
/// stop working at once, open event streams and GraphQL WebSockets included.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)), responses((status = 204, description = "Removed"), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
pub async fn remove_user(
    State(c): State<Shared>,
    Extension(actor): Extension<Principal>,
    TenantScope(tenant): TenantScope,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    c.remove_user(&actor, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A change to a user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// The user's new role: `platform-admin` (platform tenant only), `tenant-admin`,
    /// `operator`, `security-analyst`, `viewer` or `finops`.
    pub role: String,
}

/// Changes a user's role. Neither the user's present role nor the new one may be above the
/// caller's own. Tokens issued before carry the old role and stop working at once.
#[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)), request_body = UpdateUser, responses((status = 200, body = User), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
pub async fn update_user(
    State(c): State<Shared>,
    Extension(actor): Extension<Principal>,
    TenantScope(tenant): TenantScope,
    Path(id): Path<String>,
    payload: Result<Json<UpdateUser>, JsonRejection>,
) -> Result<Json<User>, ApiError> {
    let req = body(payload)?;
    Ok(Json(
        c.set_user_role(&actor, &tenant, &id, &req.role)
            .await?
            .into(),
    ))
}

/// The tenant's artifact signature policy.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignaturePolicyBody {
    /// Whether images and modules must carry a cosign signature by one of `public_keys`
    /// before a device starts them (`oci` and `wasm` components; others cannot be verified and
    /// are refused while this is on).
    pub required: bool,
    /// PEM public keys (`-----BEGIN PUBLIC KEY-----`), as `cosign generate-key-pair` writes
    /// `cosign.pub`; a signature by any one of them is enough.
    #[serde(default)]
    pub public_keys: Vec<String>,
}

impl From<eos_domain::signing::SignaturePolicy> for SignaturePolicyBody {
    fn from(p: eos_domain::signing::SignaturePolicy) -> Self {
        Self {
            required: p.required,
            public_keys: p.public_keys,
        }
    }
}

/// The tenant's artifact signature policy (not required until set).
#[utoipa::path(get, path = "/api/v1/signature-policy", tag = "tenants", responses((status = 200, body = SignaturePolicyBody)))]
pub async fn signature_policy(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
) -> Result<Json<SignaturePolicyBody>, ApiError> {
    Ok(Json(c.signature_policy(&tenant).await?.into()))
}

/// Sets the tenant's artifact signature policy. It holds for deployments made or updated from
/// now on: each carries the policy it was made under to its devices, which verify the artifact
/// before they start anything.
#[utoipa::path(put, path = "/api/v1/signature-policy", tag = "tenants", request_body = SignaturePolicyBody, responses((status = 200, body = SignaturePolicyBody), (status = 422, body = ProblemDocument)))]
pub async fn set_signature_policy(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
    payload: Result<Json<SignaturePolicyBody>, JsonRejection>,
) -> Result<Json<SignaturePolicyBody>, ApiError> {
    let req = body(payload)?;
    let policy = eos_domain::signing::SignaturePolicy {
        required: req.required,
        public_keys: req.public_keys,
    };
    Ok(Json(c.set_signature_policy(&tenant, policy).await?.into()))
}

/// A tenant's workload security policy: what its components may ask of a device beyond an
/// ordinary container. The default allows no host bind mounts, devices or GPUs; a device counts a grant only
/// within its own `en.toml` ceiling, and `/`, `/proc`, `/sys`, `/dev`, `/etc`, the engine
/// sockets and the EN's data folder are never mounted.
#[derive(
    Serialize, Deserialize, ToSchema, async_graphql::SimpleObject, async_graphql::InputObject,
)]
#[graphql(input_name = "WorkloadPolicyInput")]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadPolicyBody {
    /// Absolute host folders whose contents components may bind-mount (`/srv/data`), at most
    /// 32.
    #[serde(default)]
    pub host_paths: Vec<String>,
    /// Whether Helm charts may create cluster-scoped objects (Namespaces, ClusterRoles, …).
    #[serde(default)]
    #[graphql(default)]
    pub cluster_scoped: bool,
    /// Host devices under `/dev` containers may be given (`/dev/video0`, `/dev/dri`), at most
    /// 32; `/dev/mem`, `/dev/kmem`, `/dev/port` and `/dev/kmsg` never are.
    #[serde(default)]
    #[graphql(default)]
    pub devices: Vec<String>,
    /// Whether containers may ask for the node's GPUs.
    #[serde(default)]
    #[graphql(default)]
    pub gpus: bool,
}

impl From<eos_domain::workload::WorkloadPolicy> for WorkloadPolicyBody {
    fn from(p: eos_domain::workload::WorkloadPolicy) -> Self {
        Self {
            host_paths: p.host_paths,
            cluster_scoped: p.cluster_scoped,
            devices: p.devices,
            gpus: p.gpus,
        }
    }
}

impl From<WorkloadPolicyBody> for eos_domain::workload::WorkloadPolicy {
    fn from(b: WorkloadPolicyBody) -> Self {
        Self {
            host_paths: b.host_paths,
            cluster_scoped: b.cluster_scoped,
            devices: b.devices,
            gpus: b.gpus,
        }
    }
}

/// The tenant's workload security policy (the strict default until a platform admin sets one).
#[utoipa::path(get, path = "/api/v1/workload-policy", tag = "tenants", responses((status = 200, body = WorkloadPolicyBody)))]
pub async fn workload_policy(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
) -> Result<Json<WorkloadPolicyBody>, ApiError> {
    Ok(Json(c.workload_policy(&tenant).await?.into()))
}

/// Sets the tenant's workload security policy (platform admins only: name the tenant with
/// `EOS-Tenant`). It holds for apps added and deployments made or updated from now on; each
/// deployment carries it to its devices, which enforce it within their own ceiling.
#[utoipa::path(put, path = "/api/v1/workload-policy", tag = "tenants", request_body = WorkloadPolicyBody, responses((status = 200, body = WorkloadPolicyBody), (status = 422, body = ProblemDocument)))]
pub async fn set_workload_policy(
    State(c): State<Shared>,
    TenantScope(tenant): TenantScope,
    payload: Result<Json<WorkloadPolicyBody>, JsonRejection>,
) -> Result<Json<WorkloadPolicyBody>, ApiError> {
    let req = body(payload)?;
    Ok(Json(
        c.set_workload_policy(&tenant, req.into()).await?.into(),
    ))
}
