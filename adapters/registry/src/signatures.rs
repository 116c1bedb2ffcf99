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
        if layers.is_empty() {
            return Err(SignatureError::Unsigned {
                reference: reference.into(),
                digest,
            });
        }
        let trusted = verifiers.iter().any(|key| {
            layers
                .iter()
                .any(|layer| key.verify(layer).unwrap_or(false))
        });
        if !trusted {
            return Err(SignatureError::Untrusted {
                reference: reference.into(),
                digest,
                count: layers.len(),
            });
        }
        Ok(pinned)
    }
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
