//! The Margo state manifest: the versioned list of deployments a client should run, by digest.

use super::walk::{Walk, index, join};
use crate::Problems;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.margo.bundle.v1+tar+gzip";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateManifest {
    pub manifest_version: u64,
    pub bundle: Option<Bundle>,
    pub deployments: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub deployment_id: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    pub url: String,
}

/// `sha256:` followed by exactly 64 lowercase hexadecimal digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// The digest of exact bytes, in Margo's grammar.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl StateManifest {
    pub fn from_json(text: &str) -> Result<Self, Problems> {
        let tree = super::parse_tree(text)?;
        let mut problems = Problems::default();
        walk_manifest(&mut Walk::new(&mut problems), &tree);
        problems.into_result(())?;
        super::typed(tree)
    }

    /// Deterministic JSON (keys in declaration order, no whitespace), the body an ETag is taken of.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a manifest always serializes")
    }
}

fn walk_manifest(w: &mut Walk<'_>, tree: &Value) {
    let Some(root) = w.object(tree, "") else {
        return;
    };
    w.no_unknown_fields(root, &["manifestVersion", "bundle", "deployments"], "");
    if let Some(v) = w.required(root, "manifestVersion", "")
        && v.as_u64().is_none_or(|n| n == 0)
    {
        w.problem(
            "manifestVersion",
            format!("must be a whole number from 1 to 2^64-1, found {v}"),
        );
    }
    let deployments = root.get("deployments").and_then(Value::as_array);
    match root.get("bundle") {
        None => w.problem(
            "bundle",
            "required field is missing (null when there are no deployments)",
        ),
        Some(Value::Null) => {}
        Some(b) => {
            if deployments.is_some_and(|d| d.is_empty()) {
                w.problem("bundle", "must be null when deployments is empty");
            }
            if let Some(m) = w.object(b, "bundle") {
                w.no_unknown_fields(m, &["mediaType", "digest", "sizeBytes", "url"], "bundle");
                if let Some(mt) = w.required_str(m, "mediaType", "bundle")
                    && mt != BUNDLE_MEDIA_TYPE
                {
                    w.problem(
                        "bundle.mediaType",
                        format!("{mt:?} is not {BUNDLE_MEDIA_TYPE}"),
                    );
                }
                digest_field(w, m, "bundle");
                w.required_str(m, "url", "bundle");
            }
        }
    }
    let Some(list) = w.required(root, "deployments", "") else {
        return;
    };
    for (i, d) in w
        .list(list, "deployments")
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = index("deployments", i);
        let Some(m) = w.object(d, &p) else { continue };
        w.no_unknown_fields(m, &["deploymentId", "digest", "sizeBytes", "url"], &p);
        w.required_str(m, "deploymentId", &p);
        digest_field(w, m, &p);
        w.required_str(m, "url", &p);
    }
}

fn digest_field(w: &mut Walk<'_>, m: &serde_json::Map<String, Value>, path: &str) {
    if let Some(d) = w.required_str(m, "digest", path)
        && !is_digest(&d)
    {
        w.problem(
            join(path, "digest"),
            format!("{d:?} is not sha256:<64 lowercase hex digits>"),
        );
    }
}
