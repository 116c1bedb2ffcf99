//! The device's side of its certificate: what an LO or EN holds in its TLS folder (key,
//! certificate, CA), enrolling with a claim token, renewing before expiry, and the loop that
//! keeps the certificate fresh. The key is made here and never sent.

use crate::{BACKDATE, Identity, PkiError, ca_fingerprint, invalid, read, write, write_private};
use eos_domain::service::split_claim_token;
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// What an LO or EN holds to speak mTLS: its key (never leaves the device), its certificate
/// and the CA's, as PEM files in its TLS folder.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub key_pem: String,
    pub certificate_pem: String,
    pub ca_pem: String,
}

/// The files of [`Credentials`] in a TLS folder.
pub const KEY_FILE: &str = "key.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const CA_FILE: &str = "ca.pem";

impl Credentials {
    /// The credentials in `dir`, when it holds all three files.
    pub fn load(dir: &Path) -> Result<Option<Self>, PkiError> {
        let [key, cert, ca] = [KEY_FILE, CERT_FILE, CA_FILE].map(|f| dir.join(f));
        if !(key.exists() && cert.exists() && ca.exists()) {
            return Ok(None);
        }
        Ok(Some(Self {
            key_pem: read(&key)?,
            certificate_pem: read(&cert)?,
            ca_pem: read(&ca)?,
        }))
    }

    /// A new key, kept in `dir` (mode 0600) before anything is sent, and a signing request
    /// for it naming `names` (the addresses this tier serves on, for an LO).
    pub fn request(dir: &Path, names: &[String]) -> Result<String, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| invalid("key", e))?;
        write_private(&dir.join(KEY_FILE), key.serialize_pem().as_bytes())?;
        let params = CertificateParams::new(names.to_vec()).map_err(|e| invalid("names", e))?;
        let csr = params
            .serialize_request(&key)
            .map_err(|e| invalid("signing request", e))?;
        csr.pem().map_err(|e| invalid("signing request", e))
    }

    /// Keeps the certificate and CA the CO sent for the key `request` made.
    pub fn store(dir: &Path, certificate_pem: &str, ca_pem: &str) -> Result<Self, PkiError> {
        write(&dir.join(CERT_FILE), certificate_pem.as_bytes())?;
        write(&dir.join(CA_FILE), ca_pem.as_bytes())?;
        Self::load(dir)?.ok_or_else(|| invalid(dir.display().to_string(), "no key"))
    }

    /// Who the certificate names, and until when it is valid.
    pub fn identity(&self) -> Result<(Identity, OffsetDateTime), PkiError> {
        let pem = x509_parser::pem::parse_x509_pem(self.certificate_pem.as_bytes())
            .map_err(|e| invalid("certificate", e))?
            .1;
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
            .map_err(|e| invalid("certificate", e))?;
        let identity = Identity::of_certificate(&pem.contents)
            .ok_or_else(|| invalid("certificate", "names no EOS identity"))?;
        Ok((identity, cert.validity().not_after.to_datetime()))
    }
}

impl Credentials {
    /// Whether less than a third of the certificate's lifetime is left (or `within` of it, when
    /// given: a test's way to renew now).
    pub fn needs_renewal(&self, within: Option<Duration>) -> Result<bool, PkiError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.certificate_pem.as_bytes())
            .map_err(|e| invalid("certificate", e))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
            .map_err(|e| invalid("certificate", e))?;
        let not_after = cert.validity().not_after.to_datetime();
        let issued = cert.validity().not_before.to_datetime() + BACKDATE;
        let margin = within.unwrap_or((not_after - issued) / 3);
        Ok(OffsetDateTime::now_utc() + margin >= not_after)
    }
}

/// Renews the credentials in `dir` at the CO whose HTTP API is `enrol_url`: a new key is made
/// here, its request is signed with the current key as proof, and the new certificate and key
/// replace the old once the CO has answered. Links opened afterwards use them; open ones go on.
pub async fn renew(dir: &Path, enrol_url: &str, names: &[String]) -> Result<Credentials, PkiError> {
    use base64::Engine;
    use rcgen::SigningKey;
    let current = Credentials::load(dir)?
        .ok_or_else(|| invalid(dir.display().to_string(), "not enrolled"))?;
    let current_key = KeyPair::from_pem(&current.key_pem).map_err(|e| invalid("key", e))?;
    let next = dir.join("next");
    let csr = Credentials::request(&next, names)?;
    let proof = current_key
        .sign(csr.as_bytes())
        .map_err(|e| invalid("proof", e))?;
    let body = serde_json::json!({
        "certificate": current.certificate_pem,
        "csr": csr,
        "proof": base64::engine::general_purpose::STANDARD.encode(proof),
        "names": names,
    });
    let (certificate, _) = ask_co(enrol_url, "renewals", &body, Trust::Ca(&current.ca_pem)).await?;
    // The new pair replaces the old: the key first, then its certificate.
    write(&next.join(CERT_FILE), certificate.as_bytes())?;
    for file in [KEY_FILE, CERT_FILE] {
        std::fs::rename(next.join(file), dir.join(file)).map_err(|source| PkiError::Io {
            path: dir.join(file),
            source,
        })?;
    }
    Credentials::load(dir)?.ok_or_else(|| invalid(dir.display().to_string(), "lost on renewal"))
}

/// When the CO last revoked the LO of the site whose EN holds the credentials in `dir` (RFC
/// 3339), asked at the CO whose HTTP API is `enrol_url` with the certificate and a proof of
/// its key: the EN then refuses that LO's certificates issued until then.
pub async fn lo_revoked_at(dir: &Path, enrol_url: &str) -> Result<Option<String>, PkiError> {
    use base64::Engine;
    use rcgen::SigningKey;
    let current = Credentials::load(dir)?
        .ok_or_else(|| invalid(dir.display().to_string(), "not enrolled"))?;
    let key = KeyPair::from_pem(&current.key_pem).map_err(|e| invalid("key", e))?;
    let proof = key
        .sign(current.certificate_pem.as_bytes())
        .map_err(|e| invalid("proof", e))?;
    let body = serde_json::json!({
        "certificate": current.certificate_pem,
        "proof": base64::engine::general_purpose::STANDARD.encode(proof),
    });
    check_enrol_url(enrol_url)?;
    let url = format!(
        "{}/api/v1/revocation-status",
        enrol_url.trim_end_matches('/')
    );
    let failed = |e: &dyn std::fmt::Display| invalid(format!("the revocation status at {url}"), e);
    let response = client_for(enrol_url, Trust::Ca(&current.ca_pem))
        .await?
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| failed(&chain(&e)))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.map_err(|e| failed(&e))?;
    if !status.is_success() {
        return Err(failed(&answer["detail"].as_str().unwrap_or("refused")));
    }
    Ok(answer["lo_revoked_at"].as_str().map(str::to_owned))
}

/// Checks the credentials in `dir` now and every `every`, renews them when
/// [`Credentials::needs_renewal`] says so, and hands each renewed set to `renewed`; until `stop`.
pub async fn keep_renewed(
    dir: PathBuf,
    enrol_url: String,
    names: Vec<String>,
    every: std::time::Duration,
    within: Option<Duration>,
    renewed: impl Fn(Credentials) + Send,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match Credentials::load(&dir).and_then(|c| match c {
            Some(c) => c.needs_renewal(within),
            None => Ok(false),
        }) {
            Ok(false) => {}
            Ok(true) => match renew(&dir, &enrol_url, &names).await {
                Ok(fresh) => {
                    if let Ok((identity, until)) = fresh.identity() {
                        tracing::info!(%identity, %until, "certificate renewed");
                    }
                    renewed(fresh);
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the certificate yet"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot read the certificate"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The credentials in `dir`; when there are none and a claim token is given, enrols at the CO
/// whose HTTP API is `enrol_url` first (the key is made here and never sent). `names` are the
/// addresses an LO serves its ENs on. `None`: not enrolled and no token (plain links).
pub async fn credentials(
    dir: &Path,
    enrol_url: Option<&str>,
    claim_token: Option<&str>,
    names: &[String],
) -> Result<Option<Credentials>, PkiError> {
    if let Some(found) = Credentials::load(dir)? {
        return Ok(Some(found));
    }
    match (enrol_url, claim_token) {
        (_, None) => Ok(None),
        (None, Some(_)) => Err(invalid(
            "claim_token",
            "is set but enrol_url (the CO's HTTP API) is not",
        )),
        (Some(url), Some(token)) => enrol(dir, url, token, names).await.map(Some),
    }
}

/// Enrols with `token` at the CO whose HTTP API is `enrol_url`. The token names the CO's CA by
/// its fingerprint: over `https://` the CO's CA is fetched and checked against it before the
/// token is sent, and whatever the scheme, a CA in the answer that does not match it is
/// refused (and the key made for it deleted): the device enrols with no other CO.
pub async fn enrol(
    dir: &Path,
    enrol_url: &str,
    token: &str,
    names: &[String],
) -> Result<Credentials, PkiError> {
    let (_, fingerprint) = split_claim_token(token);
    let fingerprint = fingerprint.filter(|f| f.len() == 64).ok_or_else(|| {
        invalid(
            "the claim token",
            "carries no CA fingerprint (it ends in `.` and 64 hex digits); make a new one \
             (edgectl site claim)",
        )
    })?;
    check_enrol_url(enrol_url)?;
    let csr = Credentials::request(dir, names)?;
    let body = serde_json::json!({"token": token.trim(), "csr": csr, "names": names});
    let answer = ask_co(
        enrol_url,
        "enrolments",
        &body,
        Trust::Fingerprint(fingerprint),
    )
    .await;
    let checked = answer.and_then(|(certificate, ca)| {
        if ca_fingerprint(&ca)? != fingerprint {
            return Err(invalid(
                format!("the CA of the CO at {enrol_url}"),
                "does not match the claim token's fingerprint: this is not the CO that made \
                 the token",
            ));
        }
        Ok((certificate, ca))
    });
    match checked {
        Ok((certificate, ca)) => Credentials::store(dir, &certificate, &ca),
        Err(e) => {
            let _ = std::fs::remove_file(dir.join(KEY_FILE));
            Err(e)
        }
    }
}

/// An error with its causes (a refused TLS handshake says why only there).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whom a request to the CO trusts beside the platform's roots.
enum Trust<'a> {
    /// The CA whose fingerprint a claim token carries: fetched first, and checked.
    Fingerprint(&'a str),
    /// The CA the device holds since it enrolled.
    Ca(&'a str),
}

/// A client for the CO at `enrol_url` (plain HTTP on loopback needs no trust). Over HTTPS it
/// trusts `trust`'s CA alone, and only a server whose certificate carries the CO's identity
/// (`spiffe://eos/co`): a device's certificate of the same CA naming the CO's host is refused.
/// No redirect is followed (a token is sent nowhere else).
async fn client_for(enrol_url: &str, trust: Trust<'_>) -> Result<reqwest::Client, PkiError> {
    let builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    let scheme = reqwest::Url::parse(enrol_url.trim())
        .map_err(|e| invalid(format!("enrol_url {enrol_url:?}"), e))?
        .scheme()
        .to_owned();
    if scheme != "https" {
        return builder.build().map_err(|e| invalid("HTTP client", e));
    }
    let ca_pem = match trust {
        Trust::Ca(pem) => pem.to_owned(),
        Trust::Fingerprint(fingerprint) => {
            // Nothing secret is sent on this first call: the CA is checked before the token
            // goes anywhere.
            let url = format!("{}/api/v1/ca", enrol_url.trim_end_matches('/'));
            let answer: serde_json::Value = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .tls_danger_accept_invalid_certs(true)
                .build()
                .map_err(|e| invalid("HTTP client", e))?
                .get(&url)
                .send()
                .await
                .map_err(|e| invalid(format!("the CA at {url}"), e))?
                .json()
                .await
                .map_err(|e| invalid(format!("the CA at {url}"), e))?;
            let pem = answer["certificate"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if ca_fingerprint(&pem).ok().as_deref() != Some(fingerprint) {
                return Err(invalid(
                    format!("the CA at {url}"),
                    "does not match the claim token's fingerprint: this is not the CO that \
                     made the token, so the token was not sent",
                ));
            }
            pem
        }
    };
    builder
        .tls_backend_preconfigured(co_tls(&ca_pem)?)
        .build()
        .map_err(|e| invalid("HTTP client", e))
}

/// TLS trusting the CA `ca_pem` alone, for a server that carries the CO's identity.
fn co_tls(ca_pem: &str) -> Result<rustls::ClientConfig, PkiError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| invalid("CA certificate", e))?)
            .map_err(|e| invalid("CA certificate", e))?;
    }
    let webpki =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .map_err(|e| invalid("CA certificate", e))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", e))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(CoVerifier(webpki)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The CA's and the host name's checks, then the CO's identity on the certificate.
#[derive(Debug)]
struct CoVerifier(std::sync::Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for CoVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.0.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if !crate::uris_of(end_entity)
            .iter()
            .any(|u| u == crate::CO_URI)
        {
            return Err(rustls::Error::General(format!(
                "the server's certificate does not name {}: it is not the CO",
                crate::CO_URI
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Refused unless `enrol_url` is `https://`, or plain `http://` to this machine (loopback):
/// a claim token and a certificate request never cross a network in the clear.
pub fn check_enrol_url(enrol_url: &str) -> Result<(), PkiError> {
    let url = reqwest::Url::parse(enrol_url)
        .map_err(|e| invalid(format!("enrol_url {enrol_url:?}"), e))?;
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid(
            format!("enrol_url {enrol_url:?}"),
            "plain HTTP is taken only on loopback; use the CO's https:// address",
        )),
        other => Err(invalid(
            format!("enrol_url {enrol_url:?}"),
            format!("{other}:// is not https://"),
        )),
    }
}

/// Posts `body` to the CO's `/api/v1/<what>` and returns the certificate and CA it answers
/// with, or the CO's reason for refusing.
async fn ask_co(
    enrol_url: &str,
    what: &str,
    body: &serde_json::Value,
    trust: Trust<'_>,
) -> Result<(String, String), PkiError> {
    let url = format!("{}/api/v1/{what}", enrol_url.trim_end_matches('/'));
    let failed = |e: &dyn std::fmt::Display| invalid(format!("{what} at {url}"), e);
    check_enrol_url(enrol_url)?;
    let response = client_for(enrol_url, trust)
        .await?
        .post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| failed(&chain(&e)))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.map_err(|e| failed(&e))?;
    if !status.is_success() {
        let why = answer["detail"].as_str().unwrap_or("no reason given");
        return Err(invalid(format!("{what} at {url} refused ({status})"), why));
    }
    match (answer["certificate"].as_str(), answer["ca"].as_str()) {
        (Some(certificate), Some(ca)) => Ok((certificate.to_owned(), ca.to_owned())),
        _ => Err(failed(&"no certificate in the answer")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn claims_cross_a_network_only_over_https() {
        for ok in [
            "https://co.example:8443",
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:8080",
        ] {
            assert!(super::check_enrol_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://co.example:8080",
            "http://10.0.0.5",
            "ftp://co",
            "co:8080",
        ] {
            assert!(super::check_enrol_url(refused).is_err(), "{refused}");
        }
    }
}
