//! The Margo DeploymentStatus: how one deployment stands on one device, component by component.

use super::walk::{Walk, index, join};
use crate::Problems;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// States of a deployment and of each component (the same enum for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    Pending,
    Installing,
    Installed,
    Failed,
    Removing,
    Removed,
}

impl DeploymentState {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Installing,
        Self::Installed,
        Self::Failed,
        Self::Removing,
        Self::Removed,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Installing => "installing",
            Self::Installed => "installed",
            Self::Failed => "failed",
            Self::Removing => "removing",
            Self::Removed => "removed",
        }
    }

    /// Severity for the overall state: failed > removing > installing > pending > installed > removed
    /// (the spec's list has a duplicate "removing"; `margo/SPEC-NOTES.md` §3 gives this order).
    pub fn severity(self) -> u8 {
        match self {
            Self::Failed => 5,
            Self::Removing => 4,
            Self::Installing => 3,
            Self::Pending => 2,
            Self::Installed => 1,
            Self::Removed => 0,
        }
    }

    /// The overall state of several component states: the most severe one.
    pub fn overall(states: impl IntoIterator<Item = Self>) -> Option<Self> {
        states.into_iter().max_by_key(|s| s.severity())
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverallStatus {
    pub state: DeploymentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub name: String,
    pub state: DeploymentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub deployment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_manifest_version: Option<u64>,
    pub status: OverallStatus,
    pub components: Vec<ComponentStatus>,
}

impl DeploymentStatus {
    /// Parses and validates a status report (PR1, GW or rc.3 shape).
    pub fn from_json(text: &str) -> Result<Self, Problems> {
        let mut tree = super::parse_tree(text)?;
        let mut problems = Problems::default();
        walk_status(&mut Walk::new(&mut problems), &tree);
        problems.into_result(())?;
        if let Some(root) = tree.as_object_mut() {
            root.remove("apiVersion");
            root.remove("kind");
        }
        super::typed(tree)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a status always serializes")
    }
}

fn walk_status(w: &mut Walk<'_>, tree: &Value) {
    let Some(root) = w.object(tree, "") else {
        return;
    };
    w.no_unknown_fields(
        root,
        &[
            "apiVersion",
            "kind",
            "deploymentId",
            "deviceId",
            "adoptedManifestVersion",
            "status",
            "components",
        ],
        "",
    );
    if let Some(kind) = w.optional_str(root, "kind", "")
        && kind != "DeploymentStatusManifest"
    {
        w.problem(
            "kind",
            format!("must be DeploymentStatusManifest, found {kind:?}"),
        );
    }
    w.required_str(root, "deploymentId", "");
    if let Some(v) = root.get("adoptedManifestVersion")
        && v.as_u64().is_none_or(|n| n == 0)
    {
        w.problem(
            "adoptedManifestVersion",
            "must be a whole number of at least 1",
        );
    }
    if let Some(status) = w.required(root, "status", "")
        && let Some(m) = w.object(status, "status")
    {
        w.no_unknown_fields(m, &["state", "error"], "status");
        walk_state(w, m, "status");
    }
    let Some(components) = w.required(root, "components", "") else {
        return;
    };
    for (i, c) in w
        .list(components, "components")
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = index("components", i);
        let Some(m) = w.object(c, &p) else { continue };
        w.no_unknown_fields(m, &["name", "state", "error"], &p);
        w.required_str(m, "name", &p);
        walk_state(w, m, &p);
    }
}

fn walk_state(w: &mut Walk<'_>, m: &serde_json::Map<String, Value>, path: &str) {
    if let Some(state) = w.required_str(m, "state", path)
        && DeploymentState::parse(&state).is_none()
    {
        w.problem(join(path, "state"), format!("unknown state {state:?} (expected pending, installing, installed, failed, removing or removed)"));
    }
}

#[cfg(test)]
mod tests {
    use super::DeploymentState::*;
    use super::*;

    #[test]
    fn overall_state_is_the_most_severe() {
        assert_eq!(
            DeploymentState::overall([Installed, Failed, Pending]),
            Some(Failed)
        );
        assert_eq!(
            DeploymentState::overall([Installed, Installing]),
            Some(Installing)
        );
        assert_eq!(
            DeploymentState::overall([Removed, Installed]),
            Some(Installed)
        );
        assert_eq!(DeploymentState::overall([]), None);
    }
}
