//! OpenID Connect for EOS. The CO side ([`Verifier`]) accepts the access tokens of one external
//! provider: it finds the provider by discovery, keeps its JSON Web Key Set (fetched again for a
//! key it has not seen, so rotation needs no restart) and maps Keycloak's claim shapes onto an
//! EOS principal ([`claims`]). The client side ([`login`]) is `edgectl login`: the authorization
//! code flow with PKCE on a loopback redirect, and refresh.

pub mod claims;
mod http;
pub mod login;
mod verify;

pub use claims::ClaimMapping;
pub use verify::{OidcConfig, Rejected, Verifier};
