//! GraphQL at `/graphql` (async-graphql): queries and mutations over the same control-plane
//! services as REST (no logic in resolvers), subscriptions over WebSocket at `/graphql/ws` on the
//! same event log as server-sent events, a data loader so a page of devices with their sites
//! is two store reads, and limits on depth and complexity. Every request carries a token and acts
//! for one tenant as for REST (for a WebSocket, the token and `EOS-Tenant` may come in the
//! `connection_init` payload instead, as browsers send them); `auth::RootGuard` checks each root
//! field against the table before its resolver runs.

mod query;
mod subscription;

use crate::problem::ApiError;
use crate::routes::{Shared, Site};
use crate::tenancy::{HasControl, TENANT_HEADER, TenantScope};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{ErrorExtensions, Schema};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::Extension;
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use eos_domain::auth::Principal;
use eos_domain::ids::{SiteId, TenantId};
use eos_domain::service::ServiceError;
use std::collections::HashMap;
use std::sync::Arc;

pub use query::{Mutation, Query};
pub use subscription::Subscription;

/// How deep a query may nest.
pub const MAX_DEPTH: usize = 12;
/// How many operations one batch (`POST /graphql` with a JSON array) may hold.
pub const MAX_BATCH: usize = 16;
/// How much a query may cost: each field costs 1, and a list field costs its page size times
/// what each item costs, so `devices(limit: 1000) { id site { id } }` costs about 3,000.
pub const MAX_COMPLEXITY: usize = 50_000;
/// How deep a query that asks only about the schema (`__schema`, `__type`) may nest: the
/// introspection query of GraphiQL and of client generators follows `ofType` about eight
/// levels down, deeper than [`MAX_DEPTH`] allows other queries.
pub const MAX_INTROSPECTION_DEPTH: usize = 20;

pub type EosSchema = Schema<Query, Mutation, Subscription>;

/// The schema, without a request's tenant: that comes with each request.
pub fn schema(control: Shared, bell: Arc<crate::Bell>) -> EosSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(control)
        .data(bell)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(crate::auth::GraphQlPrecheck)
        .finish()
}

/// The schema for queries that only introspect: deeper, as costly at most.
fn introspection_schema(control: Shared, bell: Arc<crate::Bell>) -> EosSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(control)
        .data(bell)
        .limit_depth(MAX_INTROSPECTION_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(crate::auth::GraphQlPrecheck)
        .finish()
}

/// Whether every operation of `query` selects only introspection fields (`__schema`,
/// `__type`, `__typename`) at its top.
fn only_introspects(query: &str) -> bool {
    use async_graphql::parser::types::Selection;
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let mut operations = doc.operations.iter().map(|(_, op)| op);
    operations.all(|op| {
        op.node
            .selection_set
            .node
            .items
            .iter()
            .all(|s| match &s.node {
                Selection::Field(f) => f.node.name.node.starts_with("__"),
                _ => false,
            })
    })
}

/// The schema's text (SDL), as `openapi/schema.graphql` commits it.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}

/// Loads the sites of many devices in one store read (per request, of its tenant).
pub(crate) struct SiteLoader {
    control: Shared,
    tenant: TenantId,
}

impl Loader<SiteId> for SiteLoader {
    type Value = Site;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[SiteId]) -> Result<HashMap<SiteId, Site>, Self::Error> {
        let sites = self
            .control
            .sites_of(&self.tenant, keys)
            .await
            .map_err(gql)?;
        Ok(sites
            .into_iter()
            .map(|s| (s.id.clone(), s.into()))
            .collect())
    }
}

/// The site loader of a request: sites it loaded stay cached for the rest of the request.
pub(crate) type Sites = DataLoader<SiteLoader, HashMapCache>;

/// A site loader of the tenant's, for one request or one WebSocket connection.
fn site_loader(control: &Shared, tenant: &TenantId) -> Sites {
    DataLoader::with_cache(
        SiteLoader {
            control: control.clone(),
            tenant: tenant.clone(),
        },
        tokio::spawn,
        HashMapCache::default(),
    )
}

/// What one request runs with: its caller, its tenant, and a site loader of that tenant's.
fn for_tenant(
    request: async_graphql::Request,
    control: &Shared,
    principal: &Principal,
    tenant: &TenantId,
) -> async_graphql::Request {
    request
        .data(site_loader(control, tenant))
        .data(principal.clone())
        .data(tenant.clone())
}

/// A control-plane error as a GraphQL error: the problem document's detail as the message,
/// and its `type`, `status` and field errors in the extensions.
pub(crate) fn gql(e: ServiceError) -> async_graphql::Error {
    problem_error(e.into())
}

/// A GraphQL error carrying the REST problem's `type`, `status` and field `errors` in its
/// extensions (for errors found before a service is called: a bad filter, say).
pub(crate) fn problem_error(ApiError(_, problem): ApiError) -> async_graphql::Error {
    async_graphql::Error::new(problem.detail.clone().unwrap_or(problem.title.clone())).extend_with(
        |_, ext| {
            ext.set("type", problem.problem_type.clone());
            ext.set("status", problem.status);
            if !problem.errors.is_empty() {
                let errors: Vec<async_graphql::Value> = problem
                    .errors
                    .iter()
                    .map(|f| {
                        let mut m = async_graphql::indexmap::IndexMap::new();
                        m.insert(async_graphql::Name::new("field"), f.field.clone().into());
                        m.insert(
                            async_graphql::Name::new("message"),
                            f.message.clone().into(),
                        );
                        async_graphql::Value::Object(m)
                    })
                    .collect();
                ext.set("errors", errors);
            }
        },
    )
}

#[derive(Clone)]
struct GraphQlState {
    schema: EosSchema,
    introspection: EosSchema,
    control: Shared,
    /// Verifies the token of a WebSocket's `connection_init`.
    authority: Arc<crate::auth::Authority>,
}

/// The GraphQL routes: `POST /graphql` (one query or a batch of them), `GET /graphql` (a query
/// in the URL), `GET /graphql/ws` (subscriptions; graphql-transport-ws or graphql-ws) and
/// GraphiQL at `GET /graphiql`.
pub fn router(
    control: Shared,
    bell: Arc<crate::Bell>,
    authority: Arc<crate::auth::Authority>,
) -> Router {
    let state = GraphQlState {
        schema: schema(control.clone(), bell.clone()),
        introspection: introspection_schema(control.clone(), bell),
        control,
        authority,
    };
    Router::new()
        .route("/graphql", get(execute).post(execute))
        .route("/graphql/ws", get(subscribe))
        .route("/graphiql", get(crate::graphiql::page))
        .route("/graphiql/assets/{name}", get(crate::graphiql::asset))
        .with_state(state)
}

impl HasControl for GraphQlState {
    fn control(&self) -> &eos_domain::service::ControlPlane {
        &self.control
    }
}

async fn execute(
    State(state): State<GraphQlState>,
    Extension(principal): Extension<Principal>,
    TenantScope(tenant): TenantScope,
    request: GraphQLBatchRequest,
) -> Response {
    use axum::response::IntoResponse;
    let run = |r: async_graphql::Request| {
        let schema = match only_introspects(&r.query) {
            true => &state.introspection,
            false => &state.schema,
        };
        schema.execute(for_tenant(r, &state.control, &principal, &tenant))
    };
    match request.into_inner() {
        async_graphql::BatchRequest::Single(r) => {
            GraphQLResponse::from(run(r).await).into_response()
        }
        async_graphql::BatchRequest::Batch(rs) if rs.len() > MAX_BATCH => ApiError::bad_request(
            format!("a batch holds {} operations; at most {MAX_BATCH}", rs.len()),
        )
        .into_response(),
        async_graphql::BatchRequest::Batch(rs) => {
            let answers = futures::future::join_all(rs.into_iter().map(run)).await;
            GraphQLResponse::from(async_graphql::BatchResponse::Batch(answers)).into_response()
        }
    }
}

/// Subscriptions over WebSocket. Browsers cannot set headers on a WebSocket, so the upgrade
/// itself needs no token: the caller is the one the `connection_init` payload's `Authorization`
/// (`Bearer …`) names, or else the upgrade request's own `Authorization` header; without either,
/// or with a token that does not verify, the connection ends there. The tenant is the token's,
/// or the one `EOS-Tenant` names (in the payload, else on the upgrade request) where the caller
/// may act there. Each subscription's root field is checked like any other.
async fn subscribe(
    State(state): State<GraphQlState>,
    headers: axum::http::HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (upgrade_token, upgrade_tenant) = (
        header(axum::http::header::AUTHORIZATION.as_str()),
        header(TENANT_HEADER),
    );
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let (control, authority) = (state.control.clone(), state.authority.clone());
            // The caller, once `connection_init` names one: the socket is watched from then on
            // and closed within a few seconds of its user being removed or demoted.
            let (caller_tx, mut caller_rx) = tokio::sync::watch::channel(None);
            let serve = GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let text = |key: &str| {
                        payload
                            .get(key)
                            .or_else(|| payload.get(key.to_lowercase()))
                            .and_then(|v| v.as_str())
                            .map(str::to_owned)
                    };
                    let bearer = text("Authorization").or(upgrade_token).ok_or_else(|| {
                        async_graphql::Error::new(
                            "unauthorized: send the token in the connection_init payload as \
                             Authorization: Bearer <token>",
                        )
                    })?;
                    let token = bearer
                        .strip_prefix("Bearer ")
                        .or_else(|| bearer.strip_prefix("bearer "))
                        .unwrap_or(&bearer)
                        .trim();
                    let caller = authority
                        .authenticate(token, &control)
                        .await
                        .map_err(|why| async_graphql::Error::new(format!("unauthorized: {why}")))?;
                    let principal = caller.principal.clone();
                    let id = match text(TENANT_HEADER).or(upgrade_tenant) {
                        None => principal.tenant.clone(),
                        Some(t) => TenantId::parse(t.trim()).map_err(|e| {
                            async_graphql::Error::new(format!("{TENANT_HEADER}: {e}"))
                        })?,
                    };
                    principal
                        .may(eos_domain::auth::Action::Read, &id)
                        .map_err(|denied| async_graphql::Error::new(denied.to_string()))?;
                    let tenant = control.tenant(&id).await.map_err(gql)?.id;
                    let mut data = async_graphql::Data::default();
                    data.insert(site_loader(&control, &tenant));
                    data.insert(principal);
                    data.insert(tenant);
                    caller_tx.send_replace(Some(caller));
                    Ok(data)
                })
                .serve();
            let watched = async move {
                let caller = loop {
                    if let Some(caller) = caller_rx.borrow_and_update().clone() {
                        break caller;
                    }
                    if caller_rx.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                };
                crate::auth::revoked(state.control.clone(), caller).await
            };
            tokio::select! {
                _ = serve => {}
                why = watched => tracing::info!(reason = %why, "closed a GraphQL WebSocket"),
            }
        })
}
