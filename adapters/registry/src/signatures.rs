//! Cosign signatures on registry artifacts, keyed mode (the sigstore crate): the signature
//! manifest cosign pushes beside an artifact (`<repository>:sha256-<digest>.sig`, or a Sigstore
//! bundle among its referrers) must hold a signature over the artifact's digest by one of the
//! policy's public keys. Nothing of Sigstore's public services is asked (no Fulcio, no Rekor), so
//! verification works on a site's own registry without the internet. What verifies is the
//! digest; the caller runs the artifact by that digest, so a tag moved afterwards changes nothing.
//! What verified is remembered (`verified.json` in the cache: reference and keys → digest), so an
//! EN whose registry is out of reach still runs what it verified before, and nothing else.

use crate::ArtifactCache;
use sha2::{Digest, Sha256};
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraint};
use sigstore::cosign::{ClientBuilder, CosignCapabilities};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use std::collections::BTreeMap;

/// Why an artifact is refused under a policy that requires signatures.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature policy's key {index} cannot be used: {reason}")]
    Key { index: usize, reason: String },
    #[error("{reference:?} is not a registry reference: {reason}")]
    Reference { reference: String, reason: String },
    #[error("cannot ask the registry about {reference}: {reason}")]
    Registry { reference: String, reason: String },
    #[error("{reference} ({digest}) is not signed: no cosign signature was found for it")]
    Unsigned { reference: String, digest: String },
    #[error(
        "{reference} ({digest}) has {count} signature(s), none made by a key the signature policy trusts"
    )]
    Untrusted {
        reference: String,
        digest: String,
        count: usize,
    },
}

impl ArtifactCache {
    /// Verifies that `reference` (`HOST/NAME:TAG` or `HOST/NAME@sha256:…`) carries a cosign
    /// signature by one of `public_keys` (PEM). Returns the reference pinned to the digest that
    /// verified (`HOST/NAME@sha256:…`).
    pub async fn verify_signature(
        &self,
        reference: &str,
        public_keys: &[String],
    ) -> Result<String, SignatureError> {
        let memo = memo_key(reference, public_keys);
        match self.ask_registry(reference, public_keys).await {
            Ok(pinned) => {
                let mut verified = self.verified();
                if verified.get(&memo) != Some(&pinned) {
                    verified.insert(memo, pinned.clone());
                    let bytes = serde_json::to_vec_pretty(&verified).expect("JSON");
                    if let Err(e) = self.write_atomically(&self.dir.join(VERIFIED), &bytes) {
                        tracing::warn!(error = %e, "cannot remember a verified artifact");
                    }
                }
                Ok(pinned)
            }
            Err(e @ SignatureError::Registry { .. }) => match self.verified().remove(&memo) {
                Some(pinned) => {
                    tracing::warn!(%reference, %pinned, error = %e, "registry out of reach; running what verified before");
                    Ok(pinned)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn verified(&self) -> BTreeMap<String, String> {
        std::fs::read(self.dir.join(VERIFIED))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    async fn ask_registry(
        &self,
        reference: &str,
        public_keys: &[String],
    ) -> Result<String, SignatureError> {
        let examined = self.examine(reference, public_keys).await?;
        if examined.signatures == 0 {
            return Err(SignatureError::Unsigned {
                reference: reference.into(),
                digest: examined.digest,
            });
        }
        if examined.trusted_key.is_none() {
            return Err(SignatureError::Untrusted {
                reference: reference.into(),
                digest: examined.digest,
                count: examined.signatures,
            });
        }
        Ok(examined.pinned)
    }

    /// What the registry says of `reference` (for the CO's artifacts view): the digest it
    /// names now, the signatures over that digest and which of `public_keys` made one, and
    /// its SBOM when one is attached (a referrer of a CycloneDX or SPDX artifact type, or
    /// cosign's `sha256-<hex>.sbom` tag).
    pub async fn inspect(
        &self,
        reference: &str,
        public_keys: &[String],
    ) -> Result<eos_domain::service::ports::ArtifactFacts, SignatureError> {
        let examined = self.examine(reference, public_keys).await?;
        let sbom = self.sbom_of(&examined.pinned, &examined.digest).await;
        Ok(eos_domain::service::ports::ArtifactFacts {
            digest: examined.digest,
            signatures: examined.signatures,
            trusted_key: examined.trusted_key,
            sbom,
        })
    }

    /// Where the SBOM of `pinned` (`HOST/NAME@sha256:…`) is, when one is attached.
    async fn sbom_of(&self, pinned: &str, digest: &str) -> Option<String> {
        let parsed: oci_client::Reference = pinned.parse().ok()?;
        let host = parsed.resolve_registry().to_owned();
        let auth = match self.logins.get(&host) {
            Some(l) => {
                oci_client::secrets::RegistryAuth::Basic(l.username.clone(), l.password.clone())
            }
            None => oci_client::secrets::RegistryAuth::Anonymous,
        };
        let client = crate::client(&host, &self.insecure);
        // Authenticates the client for this repository before the referrers call.
        client.fetch_manifest_digest(&parsed, &auth).await.ok()?;
        if let Ok(index) = client.pull_referrers(&parsed, None).await {
            let sbom = index.manifests.iter().find(|m| {
                m.artifact_type
                    .as_deref()
                    .is_some_and(|t| t.contains("cyclonedx") || t.contains("spdx"))
            });
            if let Some(m) = sbom {
                return Some(format!("{host}/{}@{}", parsed.repository(), m.digest));
            }
        }
        let tag = format!("{}.sbom", digest.replace(':', "-"));
        let attached = oci_client::Reference::with_tag(
            host.clone(),
            parsed.repository().to_owned(),
            tag.clone(),
        );
        client
            .fetch_manifest_digest(&attached, &auth)
            .await
            .ok()
            .map(|_| format!("{host}/{}:{tag}", parsed.repository()))
    }

    /// The digest `reference` names now, and the signatures over exactly that digest.
    async fn examine(
        &self,
        reference: &str,
        public_keys: &[String],
    ) -> Result<Examined, SignatureError> {
        let verifiers = public_keys
            .iter()
            .enumerate()
            .map(|(index, pem)| {
                PublicKeyVerifier::try_from(pem.as_bytes()).map_err(|e| SignatureError::Key {
                    index,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let image: OciReference =
            reference
                .parse()
                .map_err(
                    |e: sigstore::errors::SigstoreError| SignatureError::Reference {
                        reference: reference.into(),
                        reason: e.to_string(),
                    },
                )?;
        let host = image.registry().to_owned();
        let auth = match self.logins.get(&host) {
            Some(l) => Auth::Basic(l.username.clone(), l.password.clone()),
            None => Auth::Anonymous,
        };
        let mut client = ClientBuilder::default()
            .with_oci_client_config(ClientConfig {
                protocol: ClientProtocol::HttpsExcept(crate::plain_hosts(&host, &self.insecure)),
                ..Default::default()
            })
            .build()
            .map_err(|e| SignatureError::Registry {
                reference: reference.into(),
                reason: e.to_string(),
            })?;
        let registry_error = |e: sigstore::errors::SigstoreError| SignatureError::Registry {
            reference: reference.into(),
            reason: e.to_string(),
        };
        let (_, digest) = client
            .triangulate(&image, &auth)
            .await
            .map_err(registry_error)?;
        // The tag is resolved once: the signatures are looked up for that digest, and only a
        // signature over exactly that digest counts, so what runs is what was verified even
        // when the registry answers the tag differently the next time it is asked.
        let pinned = format!("{host}/{}@{digest}", image.repository());
        let pinned_image: OciReference =
            pinned
                .parse()
                .map_err(
                    |e: sigstore::errors::SigstoreError| SignatureError::Reference {
                        reference: pinned.clone(),
                        reason: e.to_string(),
                    },
                )?;
        let layers: Vec<_> = client
            .trusted_signature_layers(&auth, &pinned_image)
            .await
            .map_err(registry_error)?
            .into_iter()
            .filter(|layer| layer.simple_signing.critical.image.docker_manifest_digest == digest)
            .collect();
        let trusted_key = verifiers.iter().position(|key| {
            layers
                .iter()
                .any(|layer| key.verify(layer).unwrap_or(false))
        });
        Ok(Examined {
            pinned,
            digest,
            signatures: layers.len(),
            trusted_key,
        })
    }
}

/// What `examine` found of a reference.
struct Examined {
    /// `HOST/NAME@sha256:…`.
    pinned: String,
    digest: String,
    signatures: usize,
    trusted_key: Option<usize>,
}

/// Where what verified is remembered, in the cache folder.
const VERIFIED: &str = "verified.json";

/// The memo of a reference verified under a set of keys (order and spacing of keys aside).
fn memo_key(reference: &str, public_keys: &[String]) -> String {
    let mut keys: Vec<&str> = public_keys.iter().map(|k| k.trim()).collect();
    keys.sort_unstable();
    let mut hash = Sha256::new();
    for key in keys {
        hash.update(key.as_bytes());
        hash.update([0]);
    }
    format!("{reference} {}", hex::encode(&hash.finalize()[..12]))
}

/// The artifacts view's questions to registries (the control plane's
/// [`ArtifactInspector`](eos_domain::service::ports::ArtifactInspector)): a few at a time, each
/// within [`ASK_WITHIN`], with the logins given to the asking tenant only.
pub struct RegistryInspector {
    dir: std::path::PathBuf,
    logins: BTreeMap<String, crate::Login>,
    insecure: Vec<String>,
}

impl RegistryInspector {
    /// An inspector remembering under `dir`, with the CO's `logins` (each used for the tenants
    /// it names) and plain-HTTP hosts.
    pub fn new(
        dir: std::path::PathBuf,
        logins: BTreeMap<String, crate::Login>,
        insecure: Vec<String>,
    ) -> Self {
        Self {
            dir,
            logins,
            insecure,
        }
    }
}

/// How long one registry may take to answer about one artifact.
pub const ASK_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
/// Registries asked at the same time.
const AT_ONCE: usize = 4;

#[async_trait::async_trait]
impl eos_domain::service::ports::ArtifactInspector for RegistryInspector {
    async fn inspect(
        &self,
        tenant: &eos_domain::ids::TenantId,
        references: &[String],
        public_keys: &[String],
    ) -> Vec<Result<eos_domain::service::ports::ArtifactFacts, String>> {
        use futures::StreamExt;
        let cache = ArtifactCache::new(
            self.dir.join(tenant.as_str()),
            crate::logins_for(&self.logins, tenant.as_str()),
            self.insecure.clone(),
        );
        let cache = &cache;
        futures::stream::iter(references.iter().cloned())
            .map(|reference: String| async move {
                match tokio::time::timeout(ASK_WITHIN, cache.inspect(&reference, public_keys)).await
                {
                    Ok(Ok(facts)) => Ok(facts),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "the registry did not answer within {} s",
                        ASK_WITHIN.as_secs()
                    )),
                }
            })
            .buffered(AT_ONCE)
            .collect()
            .await
    }
}
