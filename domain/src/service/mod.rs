//! Control-plane services of the CO, written against ports that adapters implement.

pub mod control;
pub mod page;
pub mod ports;
pub mod records;

pub use control::{
    ClaimRefused, ClaimRequest, ControlPlane, TOKEN_PREFIX, TenantRequest, UserRequest,
    revocation_covers, split_claim_token,
};
pub use page::{
    AppFilter, DeploymentFilter, DeviceFilter, LabelRequirement, MAX_PAGE, Page, PageRequest,
    label_pairs, parse_label_selector,
};
pub use ports::{
    Ambient, ControlStore, DesiredStateRepo, EventBell, FetchedPackage, NoBell, PackageSource,
    SiteNotifier, StoreError, StoreTransaction,
};
pub use records::*;

/// Why a control-plane operation failed; each kind maps onto one problem `type` at the edges.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("invalid {what}:\n{problems}")]
    Invalid {
        what: String,
        problems: crate::Problems,
    },
    /// A conditional change whose condition (`If-Match`) no longer holds.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("not placeable: {0}")]
    NotPlaceable(String),
    #[error("backend failure: {0}")]
    Backend(String),
    /// The caller's roles do not reach what it asked (a role above its own, say).
    #[error("{0}")]
    Forbidden(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Backend(m) => Self::Backend(m),
        }
    }
}

pub(crate) fn not_found(what: &'static str, id: impl ToString) -> ServiceError {
    ServiceError::NotFound {
        what,
        id: id.to_string(),
    }
}
