//! The artifacts view (seed 004): every artifact the tenant's deployments run, with the digest
//! its reference names now, whether a key of the tenant's signature policy signed that digest,
//! and its SBOM when one is attached (the registry adapter asks, a few at a time and each within
//! a deadline); an artifact whose registry does not answer is listed with the reason. A file a
//! package carries (`eos-artifact:sha256:…`) is named by its digest already and has no registry
//! to carry a signature.

use super::{ControlPlane, ServiceError, not_found};
use crate::ids::TenantId;
use crate::margo::ApplicationDeployment;
use crate::service::ports::ArtifactFacts;
use crate::service::records::DeploymentPhase;
use crate::state::PACKAGE_ARTIFACT;
use serde::Serialize;
use std::collections::BTreeMap;

/// Whether an artifact's digest carries a signature the tenant trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// Signed by a key of the tenant's signature policy.
    Trusted,
    /// Signed, by no key of the policy (or the tenant has no keys to judge by).
    Untrusted,
    /// No signature over this digest.
    Unsigned,
    /// Not in a registry (a file a package carries), so it carries no signature.
    NotApplicable,
    /// The registry did not answer (see `error`).
    Unknown,
}

/// One deployment component that runs an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactUse {
    pub deployment_id: String,
    pub app_id: String,
    pub version: String,
    pub component: String,
}

/// One artifact the tenant's deployments run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactView {
    /// The reference as deployments name it (`HOST/NAME:TAG`, or `eos-artifact:sha256:…`).
    pub name: String,
    /// The runtime that runs it (`oci`, `wasm`, `compose`, `helm`, …).
    pub runtime: String,
    /// The digest the reference names now (`sha256:…`), when known.
    pub digest: Option<String>,
    pub signature: SignatureStatus,
    /// Signatures over that digest.
    pub signatures: usize,
    /// Which key of the tenant's policy signed it: `key 1` is the first.
    pub signer: Option<String>,
    /// Where its SBOM is, when one is attached.
    pub sbom_ref: Option<String>,
    /// Why the registry could not tell.
    pub error: Option<String>,
    pub used_by: Vec<ArtifactUse>,
}

impl ControlPlane {
    /// Every artifact the tenant's active deployments run, by name.
    pub async fn artifacts(&self, tenant: &TenantId) -> Result<Vec<ArtifactView>, ServiceError> {
        let inspector = self.artifacts.clone().ok_or_else(|| {
            ServiceError::Backend("this CO has no registry client for the artifacts view".into())
        })?;
        let keys = self.signature_policy(tenant).await?.public_keys;
        let mut found: BTreeMap<String, (String, Vec<ArtifactUse>)> = BTreeMap::new();
        for d in self.store.list_deployments(tenant, None).await? {
            if d.phase != DeploymentPhase::Active {
                continue;
            }
            let Ok(ad) = ApplicationDeployment::from_yaml(&d.document) else {
                continue;
            };
            let profile = &ad.spec.deployment_profile;
            let runtime = profile.runtime().unwrap_or_else(|| "custom".into());
            for c in &profile.components {
                let Some(name) = artifact_name(
                    c.properties.repository.as_deref(),
                    c.properties.revision.as_deref(),
                ) else {
                    continue;
                };
                found
                    .entry(name)
                    .or_insert_with(|| (runtime.clone(), Vec::new()))
                    .1
                    .push(ArtifactUse {
                        deployment_id: d.id.to_string(),
                        app_id: d.app_id.clone(),
                        version: d.version.clone(),
                        component: c.name.clone(),
                    });
            }
        }
        let references: Vec<String> = found
            .keys()
            .filter(|name| !name.starts_with(PACKAGE_ARTIFACT))
            .filter(|name| self.check_source_host(name).is_ok())
            .take(MAX_ASKED)
            .cloned()
            .collect();
        let mut facts: BTreeMap<String, Result<ArtifactFacts, String>> = references
            .iter()
            .cloned()
            .zip(inspector.inspect(tenant, &references, &keys).await)
            .collect();
        let views = found
            .into_iter()
            .map(|(name, (runtime, used_by))| {
                let mut view = ArtifactView {
                    name: name.clone(),
                    runtime,
                    digest: None,
                    signature: SignatureStatus::Unknown,
                    signatures: 0,
                    signer: None,
                    sbom_ref: None,
                    error: None,
                    used_by,
                };
                if let Some(digest) = name.strip_prefix(PACKAGE_ARTIFACT) {
                    view.digest = Some(digest.to_owned());
                    view.signature = SignatureStatus::NotApplicable;
                    return view;
                }
                match facts.remove(&name) {
                    Some(Ok(facts)) => {
                        view.signature = match (facts.trusted_key, facts.signatures) {
                            (Some(_), _) => SignatureStatus::Trusted,
                            (None, 0) => SignatureStatus::Unsigned,
                            (None, _) => SignatureStatus::Untrusted,
                        };
                        view.digest = Some(facts.digest);
                        view.signatures = facts.signatures;
                        view.signer = facts.trusted_key.map(|i| format!("key {}", i + 1));
                        view.sbom_ref = facts.sbom;
                    }
                    // A registry's words come back short: its first line, at most 200 bytes.
                    Some(Err(why)) => view.error = Some(short(&why)),
                    None => {
                        view.error = Some(match self.check_source_host(&name) {
                            Err(why) => format!("not asked: {why}"),
                            Ok(()) => format!(
                                "not asked: the view asks registries about at most \
                                 {MAX_ASKED} artifacts"
                            ),
                        })
                    }
                }
                view
            })
            .collect();
        Ok(views)
    }

    /// The artifacts of the tenant's deployments whose digest is `digest`: one per name it is
    /// deployed under (the same image copied to two repositories is one digest with two
    /// names, and cosign keeps signatures per repository).
    pub async fn artifact(
        &self,
        tenant: &TenantId,
        digest: &str,
    ) -> Result<Vec<ArtifactView>, ServiceError> {
        let found: Vec<ArtifactView> = self
            .artifacts(tenant)
            .await?
            .into_iter()
            .filter(|a| a.digest.as_deref() == Some(digest))
            .collect();
        match found.is_empty() {
            true => Err(not_found("artifact", digest)),
            false => Ok(found),
        }
    }
}

/// The most registry references one view asks about.
pub const MAX_ASKED: usize = 100;

/// The first line of `text`, at most 200 bytes of it.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut end = line.len().min(200);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}

/// What a component's repository names, as a registry reference (`HOST/NAME:TAG`, the
/// revision as the tag unless it names one) or a package file; none for anything else.
fn artifact_name(repository: Option<&str>, revision: Option<&str>) -> Option<String> {
    let repository = repository?;
    if repository.starts_with(PACKAGE_ARTIFACT) {
        return Some(repository.to_owned());
    }
    crate::state::oci_reference_of(repository, revision.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_name_their_artifacts_by_reference_and_revision() {
        assert_eq!(
            artifact_name(Some("oci://reg:5000/team/web"), Some("1.2.0")).as_deref(),
            Some("reg:5000/team/web:1.2.0")
        );
        assert_eq!(
            artifact_name(Some("oci://reg/web@sha256:ab"), Some("1.2.0")).as_deref(),
            Some("reg/web@sha256:ab")
        );
        let file = format!("eos-artifact:sha256:{}", "0".repeat(64));
        assert_eq!(artifact_name(Some(&file), None), Some(file.clone()));
        assert_eq!(artifact_name(Some("file:///opt/x.wasm"), None), None);
        assert_eq!(artifact_name(None, None), None);
    }
}
