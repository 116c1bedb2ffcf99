//! The CO's REST API under `/api/v1` (axum), described by utoipa as OpenAPI 3.1, and GraphQL
//! beside it; every request but the public few carries a bearer token that `auth` verifies and
//! authorizes. Every error is an RFC 9457 problem document with a stable `type` per error kind.

mod artifacts;
pub mod auth;
pub mod enrolment;
mod events;
mod fleet;
mod graphiql;
pub mod graphql;
pub mod identity;
mod lists;
mod models;
mod problem;
mod reference;
mod resources;
mod routes;
mod tenancy;
pub mod tls;

pub use events::Bell;
pub use routes::{ApiDoc, router};
pub use tenancy::TENANT_HEADER;

/// The OpenAPI document as pretty JSON, the form committed as `openapi/openapi.json`.
pub fn openapi_json() -> String {
    use utoipa::OpenApi;
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}
