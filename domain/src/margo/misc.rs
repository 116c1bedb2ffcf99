//! Smaller Margo documents: RFC 9457 problem details and the identity discovery documents.

use super::walk::Walk;
use crate::Problems;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Base of Margo's problem `type` URIs.
pub const PROBLEM_TYPE_BASE: &str = "https://docs.margo.org/specification/problem-types#";

/// An RFC 9457 problem document with Margo's extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetail {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl ProblemDetail {
    pub fn from_yaml(text: &str) -> Result<Self, Problems> {
        let tree = super::parse_tree(text)?;
        let mut problems = Problems::default();
        let mut w = Walk::new(&mut problems);
        if let Some(m) = w.object(&tree, "") {
            w.no_unknown_fields(
                m,
                &[
                    "type",
                    "title",
                    "status",
                    "detail",
                    "instance",
                    "retryable",
                    "retryAfterSeconds",
                    "backoffStrategy",
                    "errors",
                ],
                "",
            );
            w.required_str(m, "type", "");
            w.required_str(m, "title", "");
            if w.required(m, "status", "")
                .is_some_and(|s| s.as_u64().is_none_or(|n| !(100..600).contains(&n)))
            {
                w.problem("status", "must be an HTTP status code");
            }
            if let Some(b) = m.get("backoffStrategy").and_then(Value::as_str)
                && !["none", "fixed", "exponential"].contains(&b)
            {
                w.problem(
                    "backoffStrategy",
                    format!("{b:?} is not none, fixed or exponential"),
                );
            }
        }
        problems.into_result(())?;
        super::typed(tree)
    }
}

/// MIAF discovery (`GET /.well-known/margo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryDocument {
    pub trust_domain: String,
    pub trust_bundle_uri: String,
}

/// A SPIFFE trust bundle (a JWK Set with SPIFFE fields); unknown fields are ignored per MIAF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpiffeBundle {
    pub spiffe_sequence: u64,
    #[serde(default)]
    pub spiffe_refresh_hint: Option<u64>,
    pub keys: Vec<Value>,
}

/// The PR1 onboarding request (removed by MIAF in rc.3; read for compatibility only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingRequest {
    pub api_version: String,
    pub kind: String,
    pub certificate: String,
}

/// Reads a small identity document, refusing an empty SPIFFE bundle (MIAF: fail closed).
pub fn read_identity_document<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Problems> {
    super::typed(super::parse_tree(text)?)
}
