//! EOS domain: Margo documents, identifiers, desired and actual state, the diff that yields
//! operations, placement, and the control-plane services written against ports.
//!
//! Invariant: this crate does no I/O and knows no wire format other than the Margo documents it
//! models. Everything that touches a disk, a socket, a database or a runtime lives in `adapters/`.

pub mod auth;
pub mod container;
pub mod diff;
pub mod ids;
pub mod layout;
pub mod margo;
pub mod outbox;
pub mod placement;
pub mod problem;
pub mod render;
pub mod service;
pub mod signing;
pub mod state;
pub mod workload;

pub use problem::{Problem, Problems};
