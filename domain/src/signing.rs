//! Artifact signatures: a tenant's policy (whether its artifacts must carry a cosign signature,
//! and the public keys that may have made it), checked when set, carried in each deployment the
//! CO commits (the `eos.dev/signature-policy` annotation) and so in each component the EN runs,
//! which verifies the artifact before anything starts. Pure rules; the verification is the
//! registry adapter's.

use crate::Problems;
use serde::{Deserialize, Serialize};

/// The deployment annotation that carries the policy its tenant had when it was made (JSON).
pub const ANNOTATION: &str = "eos.dev/signature-policy";
/// The runtimes whose artifacts can be verified: images, modules, compose archives and Helm
/// charts in OCI registries (the images a compose file or chart names are pulled as named).
pub const VERIFIABLE_RUNTIMES: [&str; 4] = ["oci", "wasm", "compose", "helm"];
/// The most public keys one policy may name.
pub const MAX_KEYS: usize = 8;
/// The largest public key, in bytes of PEM.
pub const MAX_KEY_BYTES: usize = 8 * 1024;

/// Whether a tenant's artifacts must be signed, and by which keys (any one of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturePolicy {
    /// Artifacts must carry a signature by one of `public_keys`; nothing unsigned starts.
    pub required: bool,
    /// PEM public keys (`-----BEGIN PUBLIC KEY-----`: ECDSA P-256 as `cosign generate-key-pair`
    /// makes them, P-384, RSA or Ed25519).
    #[serde(default)]
    pub public_keys: Vec<String>,
}

impl SignaturePolicy {
    /// Problems with the policy, by field: a required policy names at least one key, and each
    /// key is one PEM public key of reasonable size.
    pub fn check(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        if self.required && self.public_keys.is_empty() {
            problems.push(
                "public_keys",
                "a policy that requires signatures names at least one public key",
            );
        }
        if self.public_keys.len() > MAX_KEYS {
            problems.push(
                "public_keys",
                format!("{} keys; at most {MAX_KEYS}", self.public_keys.len()),
            );
        }
        for (i, key) in self.public_keys.iter().enumerate() {
            let text = key.trim();
            if text.len() > MAX_KEY_BYTES {
                problems.push(
                    format!("public_keys[{i}]"),
                    format!("{} bytes; at most {MAX_KEY_BYTES}", text.len()),
                );
            } else if !text.starts_with("-----BEGIN PUBLIC KEY-----")
                || !text.ends_with("-----END PUBLIC KEY-----")
            {
                problems.push(
                    format!("public_keys[{i}]"),
                    "not a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----)",
                );
            }
        }
        problems.into_result(())
    }

    /// Whether a component of `runtime` can satisfy the policy at all.
    pub fn verifiable(runtime: &str) -> bool {
        VERIFIABLE_RUNTIMES.contains(&runtime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";

    #[test]
    fn a_required_policy_needs_a_key_and_keys_must_be_pem() {
        assert!(SignaturePolicy::default().check().is_ok());
        let none = SignaturePolicy {
            required: true,
            public_keys: vec![],
        };
        assert_eq!(none.check().unwrap_err().0[0].path, "public_keys");
        let bad = SignaturePolicy {
            required: true,
            public_keys: vec![KEY.into(), "ssh-ed25519 AAAA".into()],
        };
        let problems = bad.check().unwrap_err();
        assert_eq!(problems.0.len(), 1);
        assert_eq!(problems.0[0].path, "public_keys[1]");
    }

    #[test]
    fn only_registry_runtimes_are_verifiable() {
        for runtime in ["oci", "wasm", "compose", "helm"] {
            assert!(SignaturePolicy::verifiable(runtime), "{runtime}");
        }
        // A plugin's runtime reads its own kinds of repository, which carry no signature.
        assert!(!SignaturePolicy::verifiable("exec"));
    }
}
