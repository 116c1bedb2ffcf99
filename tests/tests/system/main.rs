//! The cross-crate test suite as one test binary: architecture rules, the committed OpenAPI
//! document, and every end-to-end flow over real processes and services. One binary links the
//! whole system once instead of once per file, which saves minutes of linking and gigabytes of
//! disk on a two-core CI machine. Run one part with a filter: `cargo test -p eos-tests --test
//! system -- oci::`.

mod architecture;
mod attacks;
mod authz;
mod catalog;
mod compose;
mod concurrency;
mod crash;
mod drain;
mod e2e;
mod enrolment;
mod events;
mod failpoints;
mod fingerprint;
mod generated_client;
mod graphql;
mod helm;
mod labels;
mod long_outage;
mod models;
mod oci;
mod oidc;
mod openapi;
mod outage;
mod pages;
mod plugins;
mod postgres;
mod preview;
mod signatures;
mod sse;
mod tenants;
mod wasm_registry;
