//! Typed Margo documents. Input accepts the PR1 and rc.3 shapes; output is always rc.3.
//!
//! Each document is parsed in two steps: a walk over the untyped tree that collects every problem
//! with its field path, then a typed deserialization of the (normalized) tree.

pub mod application;
pub mod capabilities;
pub mod configuration;
pub mod constraints;
pub mod deployment;
pub mod manifest;
pub mod misc;
pub mod quantity;
pub mod status;
mod walk;

pub use application::{
    ApplicationDescription, Component, ComponentProperties, DeploymentProfile, Parameter,
    ProfileType,
};
pub use capabilities::DeviceCapabilities;
pub use constraints::{DeviceConstraints, MatchExpression, Operator, Selector};
pub use deployment::ApplicationDeployment;
pub use manifest::StateManifest;
pub use status::{ComponentStatus, DeploymentState, DeploymentStatus, StatusError};

use crate::Problems;

/// Parses YAML (or JSON, a subset) into an untyped tree, as a problem list on failure.
pub(crate) fn parse_tree(text: &str) -> Result<serde_json::Value, Problems> {
    serde_yaml::from_str::<serde_json::Value>(text).map_err(|e| {
        let mut p = Problems::default();
        let at = e
            .location()
            .map(|l| format!("line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        p.push(at, format!("not valid YAML: {e}"));
        p
    })
}

/// Deserializes a normalized tree into its typed form; a failure here is reported as a problem at
/// the document root (the walk has already reported every field it knows).
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    tree: serde_json::Value,
) -> Result<T, Problems> {
    serde_json::from_value(tree).map_err(|e| {
        let mut p = Problems::default();
        p.push("", format!("cannot read document: {e}"));
        p
    })
}

/// Whether a key is a Margo extension (`x-<name>-extensions`), which must be ignored, never refused.
pub fn is_extension_key(key: &str) -> bool {
    key.strip_prefix("x-")
        .and_then(|k| k.strip_suffix("-extensions"))
        .is_some_and(|name| {
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}
