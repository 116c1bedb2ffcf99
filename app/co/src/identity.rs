//! The CO's token authority at start: its Ed25519 signing key, kept in the data directory
//! (created on first start, readable by the CO's user only), and the bootstrap admin token, a
//! platform admin's, written once to `admin.token` beside it so the first operator can log in
//! with nothing external. The bootstrap admin is a stored user of the platform tenant
//! ([`BOOTSTRAP_EMAIL`]): removing it revokes the token, and the next start writes a new one.

use anyhow::Context;
use eos_adapter_http::auth::Authority;
use eos_domain::auth::Principal;
use eos_domain::ids::TenantId;
use eos_domain::service::ControlPlane;
use std::path::{Path, PathBuf};

/// The signing key's file in the data directory (PKCS#8 DER).
pub const KEY_FILE: &str = "token-signing.key";
/// The bootstrap admin token's file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// How long the bootstrap admin token lives: a year. Delete the file and restart the CO for a
/// new one.
pub const ADMIN_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// The bootstrap admin's email, in the platform tenant.
pub const BOOTSTRAP_EMAIL: &str = "admin@eos.invalid";

/// Writes `bytes` to `path`, readable and writable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// The retired signing keys still accepted, in the data directory (JSON).
pub const RETIRED_FILE: &str = "token-signing.retired.json";

/// Keeps the authority's keys in the data directory: the signing key, the retired keys still
/// accepted, and the bootstrap admin token reissued with a new key.
struct KeyFiles {
    data_dir: PathBuf,
}

impl eos_adapter_http::auth::KeyKeeper for KeyFiles {
    fn keep(
        &self,
        pkcs8: &[u8],
        retired: &[eos_adapter_http::auth::RetiredKey],
    ) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(retired).map_err(|e| e.to_string())?;
        replace_private(&self.data_dir.join(RETIRED_FILE), &text)
            .and_then(|()| replace_private(&self.data_dir.join(KEY_FILE), pkcs8))
            .map_err(|e| format!("{e:#}"))
    }

    fn rotated(&self, authority: &Authority) {
        let path = self.data_dir.join(ADMIN_TOKEN_FILE);
        let Some(admin) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| authority.verify(t.trim()).ok())
        else {
            return; // rewritten at the next start
        };
        let token = authority.issue(&admin, jsonwebtoken_now(), ADMIN_TOKEN_TTL_SECS);
        match replace_private(&path, format!("{token}\n").as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "reissued the bootstrap admin token with the new key")
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot reissue the bootstrap admin token")
            }
        }
    }
}

/// Writes `bytes` to `path` whole or not at all: a private file beside it, then a rename.
fn replace_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("new");
    write_private(&temporary, bytes)?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// The authority over the key in `data_dir` (made on first start), accepting the retired keys
/// kept beside it, and keeping its keys there when they are rotated.
pub fn start(data_dir: &Path, issuer: &str) -> anyhow::Result<Authority> {
    let key_path = data_dir.join(KEY_FILE);
    let key = match std::fs::read(&key_path) {
        Ok(key) => key,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Authority::generate_key();
            write_private(&key_path, &key)?;
            tracing::info!(path = %key_path.display(), "made the token signing key");
            key
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", key_path.display())),
    };
    let retired_path = data_dir.join(RETIRED_FILE);
    let retired = match std::fs::read(&retired_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("cannot read {}", retired_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", retired_path.display())),
    };
    Ok(Authority::from_pkcs8(&key, issuer)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?
        .with_retired(retired)
        .with_keeper(std::sync::Arc::new(KeyFiles {
            data_dir: data_dir.to_owned(),
        })))
}

/// The path of the bootstrap admin token in `data_dir`, written anew when it is missing or no
/// longer good (expired, of another key, or its user removed or demoted).
pub async fn bootstrap_token(
    data_dir: &Path,
    authority: &Authority,
    control: &ControlPlane,
) -> anyhow::Result<PathBuf> {
    let token_path = data_dir.join(ADMIN_TOKEN_FILE);
    let user = control
        .bootstrap_admin(BOOTSTRAP_EMAIL)
        .await
        .map_err(|e| anyhow::anyhow!("cannot keep the bootstrap admin user: {e}"))?;
    let still_good = std::fs::read_to_string(&token_path)
        .ok()
        .and_then(|t| authority.verify(t.trim()).ok())
        .is_some_and(|p| p.subject == user.id && p.roles == [user.role]);
    if !still_good {
        let admin = Principal {
            subject: user.id.clone(),
            tenant: TenantId::platform(),
            roles: vec![user.role],
        };
        let now = jsonwebtoken_now();
        let token = authority.issue(&admin, now, ADMIN_TOKEN_TTL_SECS);
        write_private(&token_path, format!("{token}\n").as_bytes())?;
        tracing::warn!(path = %token_path.display(), "wrote the bootstrap admin token (a platform admin's, valid a year): edgectl uses it with --token-file, keep it secret");
    }
    Ok(token_path)
}

fn jsonwebtoken_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `[oidc]` provider, wired into the HTTP adapter's authority.
pub struct Oidc(pub eos_adapter_oidc::Verifier);

#[async_trait::async_trait]
impl eos_adapter_http::auth::ExternalIdentity for Oidc {
    fn issuer(&self) -> &str {
        &self.0.config().issuer
    }

    fn login(&self) -> eos_adapter_http::identity::AuthProvider {
        let c = self.0.config();
        eos_adapter_http::identity::AuthProvider {
            kind: "oidc".into(),
            issuer: c.issuer.clone(),
            client_id: Some(c.client_id.clone()),
            scopes: c.scopes.clone(),
            resource: c.resource.clone(),
        }
    }

    async fn verify(&self, token: &str) -> Result<Principal, String> {
        self.0.verify(token).await.map_err(|e| e.0)
    }
}

/// The CO's certificate authority (in `<data_dir>/ca`), wired into the enrolment endpoint.
pub struct Ca(pub eos_adapter_pki::Authority);

impl eos_adapter_http::enrolment::CertificateAuthority for Ca {
    fn issue(
        &self,
        csr_pem: &str,
        tenant: &str,
        site: &str,
        host: Option<&str>,
        names: &[String],
    ) -> Result<(String, String), String> {
        let identity = eos_adapter_pki::Identity {
            tenant: tenant.to_owned(),
            site: site.to_owned(),
            node: host.map(str::to_owned),
        };
        let issued = self
            .0
            .issue(
                csr_pem,
                &identity,
                names,
                eos_adapter_pki::DEVICE_LIFETIME_DAYS,
            )
            .map_err(|e| e.to_string())?;
        let expires = issued
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok((issued.certificate_pem, expires))
    }

    fn renew(
        &self,
        certificate_pem: &str,
        csr_pem: &str,
        proof: &[u8],
        names: &[String],
    ) -> Result<eos_adapter_http::enrolment::Renewal, String> {
        let renewed = self
            .0
            .renew(
                certificate_pem,
                csr_pem,
                proof,
                names,
                eos_adapter_pki::DEVICE_LIFETIME_DAYS,
            )
            .map_err(|e| e.to_string())?;
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let previous = eos_adapter_pki::issued_at(&renewed.previous_der)
            .ok_or("the certificate has no readable validity")?;
        Ok(eos_adapter_http::enrolment::Renewal {
            tenant: renewed.identity.tenant,
            site: renewed.identity.site,
            host: renewed.identity.node,
            certificate_pem: renewed.issued.certificate_pem,
            expires_at: rfc3339(renewed.issued.not_after),
            previous_issued_at: rfc3339(previous),
        })
    }

    fn check_request(&self, csr_pem: &str) -> Result<(), String> {
        eos_adapter_pki::check_request(csr_pem).map_err(|e| e.to_string())
    }

    fn ca_pem(&self) -> String {
        self.0.certificate_pem().to_owned()
    }

    fn holder(
        &self,
        certificate_pem: &str,
        message: &[u8],
        proof: &[u8],
    ) -> Result<(String, String, Option<String>), String> {
        let who = self
            .0
            .holder(certificate_pem, message, proof)
            .map_err(|e| e.to_string())?;
        Ok((who.tenant, who.site, who.node))
    }

    fn fingerprint(&self) -> String {
        eos_adapter_pki::ca_fingerprint(self.0.certificate_pem())
            .expect("the CA's own certificate reads")
    }
}
