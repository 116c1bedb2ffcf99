//! The fleet's certificates. The CO runs a certificate authority ([`Authority`]): an ECDSA P-256
//! key and a self-signed CA certificate kept in its data directory, which signs the CO's own gRPC
//! server certificate and the certificates LOs and ENs ask for. An LO or EN makes its key where it
//! runs and sends only a signing request ([`Credentials::request`]); the CA decides what the
//! certificate says from the claim token it was enrolled with, never from the request. A
//! certificate names its holder in a URI subject alternative name ([`Identity`]):
//! `spiffe://eos/<tenant>/site/<site>` for an LO, `spiffe://eos/<tenant>/site/<site>/node/<host>`
//! for an EN.
//!
//! [`enrol`] is the device's side of enrolment: make the key, send the request with the claim
//! token to the CO (`POST /api/v1/enrolments`), keep what comes back.
//!
//! Lifetimes: the CA lives ten years; a device certificate [`DEVICE_LIFETIME_DAYS`] (30) and is
//! renewed when a third of it is left, so a site cut off from the CO for seven days and more
//! still holds valid certificates.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

mod device;

pub use device::{
    CA_FILE, CERT_FILE, Credentials, KEY_FILE, check_enrol_url, credentials, enrol, keep_renewed,
    lo_revoked_at, renew,
};

/// How long a device's certificate is valid.
pub const DEVICE_LIFETIME_DAYS: i64 = 30;
/// How long the CA is valid.
pub const CA_LIFETIME_DAYS: i64 = 3650;
/// The URI scheme and trust domain of identities.
const PREFIX: &str = "spiffe://eos/";

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

pub(crate) fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> PkiError {
    PkiError::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// How far before its issue a certificate's validity starts (clocks differ a little).
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

/// When a certificate (DER) was issued, as its validity says.
pub fn issued_at(der: &[u8]) -> Option<OffsetDateTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_before.to_datetime() + BACKDATE)
}

/// Whether a revocation at `revoked_at` (RFC 3339) covers a certificate (DER): one issued no
/// later than that.
/// An unreadable time counts as revoked.
pub fn revoked_by(der: &[u8], revoked_at: &str) -> bool {
    let at = OffsetDateTime::parse(revoked_at, &time::format_description::well_known::Rfc3339);
    match (issued_at(der), at) {
        (Some(issued), Ok(at)) => issued <= at,
        _ => true,
    }
}

/// Who a certificate names: an LO (`node` none) or an EN of a tenant's site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: String,
    pub site: String,
    pub node: Option<String>,
}

impl Identity {
    /// The URI subject alternative name that carries the identity.
    pub fn uri(&self) -> String {
        let site = format!("{PREFIX}{}/site/{}", self.tenant, self.site);
        match &self.node {
            None => site,
            Some(node) => format!("{site}/node/{node}"),
        }
    }

    /// The identity a URI names, if it is one of EOS's.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let parts: Vec<&str> = uri.strip_prefix(PREFIX)?.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        match parts.as_slice() {
            [tenant, "site", site] => Some(Self {
                tenant: (*tenant).to_owned(),
                site: (*site).to_owned(),
                node: None,
            }),
            [tenant, "site", site, "node", node] => Some(Self {
                tenant: (*tenant).to_owned(),
                site: (*site).to_owned(),
                node: Some((*node).to_owned()),
            }),
            _ => None,
        }
    }

    /// The identity a peer's certificate (DER) names, when it names exactly one.
    pub fn of_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let names = cert.subject_alternative_name().ok()??;
        let mut found = names.value.general_names.iter().filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(uri) => Self::from_uri(uri),
            _ => None,
        });
        let one = found.next()?;
        found.next().is_none().then_some(one)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            None => write!(f, "the LO of site {} (tenant {})", self.site, self.tenant),
            Some(node) => write!(f, "EN {}/{node} (tenant {})", self.site, self.tenant),
        }
    }
}

/// What a renewal proved: who the current certificate names, and that certificate (DER), for
/// the caller's revocation check.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub identity: Identity,
    pub previous_der: Vec<u8>,
    pub issued: Issued,
}

/// A certificate as issued: PEM, with its serial number and end of validity.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate_pem: String,
    /// Hex, lowercase.
    pub serial: String,
    pub not_after: OffsetDateTime,
}

/// The CO's certificate authority.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
}

/// The CA key's file in the data directory (PKCS#8 PEM, mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The CA certificate's file in the data directory.
pub const CA_CERT_FILE: &str = "ca.pem";

impl Authority {
    /// The CA in `dir`, made on first use.
    pub fn open_or_create(dir: &Path) -> Result<Self, PkiError> {
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        if key_path.exists() && cert_path.exists() {
            let key_pem = read(&key_path)?;
            let certificate_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| invalid(key_path.display().to_string(), e))?;
            let issuer = Issuer::from_ca_cert_pem(&certificate_pem, key)
                .map_err(|e| invalid(cert_path.display().to_string(), e))?;
            return Ok(Self {
                issuer,
                certificate_pem,
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })?;
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| invalid("CA key", e))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "EOS fleet CA");
        name.push(DnType::OrganizationName, "EOS");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(CA_LIFETIME_DAYS);
        let certificate = params
            .self_signed(&key)
            .map_err(|e| invalid("CA certificate", e))?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write(&cert_path, certificate.pem().as_bytes())?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            certificate_pem: certificate.pem(),
        })
    }

    /// The CA certificate (PEM): what every tier trusts.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A certificate for the holder of the key that signed `csr_pem` (its signature is checked),
    /// naming `identity`, and as a server also `names` (DNS names or IP addresses), valid
    /// `days` from now.
    pub fn issue(
        &self,
        csr_pem: &str,
        identity: &Identity,
        names: &[String],
        days: i64,
    ) -> Result<Issued, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| invalid("the certificate signing request", e))?;
        // An EN only dials out: its certificate is a client's alone. An LO serves its ENs too.
        let usage = match identity.node {
            Some(_) => Usage::Client,
            None => Usage::ServerAndClient,
        };
        let params = leaf(identity.uri(), Some(identity), names, days, usage)?;
        let serial = params.serial_number.clone().expect("leaf sets a serial");
        let certificate = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| invalid("signing", e))?;
        Ok(Issued {
            certificate_pem: certificate.pem(),
            serial: hex(serial.as_ref()),
            not_after: params.not_after,
        })
    }

    /// The next certificate for a device that holds `certificate_pem` (of this CA, unexpired)
    /// and its key: `proof` is `csr_pem` signed with that key (ECDSA P-256, SHA-256). The new
    /// certificate names the same identity, for the new key the request carries.
    pub fn renew(
        &self,
        certificate_pem: &str,
        csr_pem: &str,
        proof: &[u8],
        names: &[String],
        days: i64,
    ) -> Result<Renewed, PkiError> {
        let identity = self.holder(certificate_pem, csr_pem.as_bytes(), proof)?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes())
            .map_err(|e| invalid("certificate", e))?;
        // A renewal names what the certificate named, never more.
        let named = server_names(&pem.contents);
        if let Some(extra) = names.iter().find(|n| !named.contains(n)) {
            return Err(invalid(
                "names",
                format!(
                    "a renewal cannot add {extra:?} (the certificate names {}); enrol again \
                     with a new claim for other names",
                    if named.is_empty() {
                        "none".to_owned()
                    } else {
                        named.join(", ")
                    }
                ),
            ));
        }
        let issued = self.issue(csr_pem, &identity, names, days)?;
        Ok(Renewed {
            identity,
            previous_der: pem.contents.clone(),
            issued,
        })
    }

    /// Who holds `certificate_pem`: refused unless this CA issued it, it is unexpired, and
    /// `proof` is `message` signed with its key.
    pub fn holder(
        &self,
        certificate_pem: &str,
        message: &[u8],
        proof: &[u8],
    ) -> Result<Identity, PkiError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes())
            .map_err(|e| invalid("certificate", e))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
            .map_err(|e| invalid("certificate", e))?;
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(self.certificate_pem.as_bytes())
            .map_err(|e| invalid("CA", e))?;
        let (_, ca) =
            x509_parser::parse_x509_certificate(&ca_pem.contents).map_err(|e| invalid("CA", e))?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|_| invalid("certificate", "not issued by this CO's CA"))?;
        if !cert.validity().is_valid() {
            return Err(invalid(
                "certificate",
                "expired; enrol again with a new claim token",
            ));
        }
        let identity = Identity::of_certificate(&pem.contents)
            .ok_or_else(|| invalid("certificate", "names no EOS identity"))?;
        let key = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            cert.public_key().subject_public_key.data.to_vec(),
        );
        key.verify(message, proof)
            .map_err(|_| invalid("proof", "not signed with the certificate's key"))?;
        Ok(identity)
    }

    /// A server certificate and its new key (PEM) for the CO's own gRPC listener, naming
    /// `names`.
    pub fn server_certificate(
        &self,
        names: &[String],
        days: i64,
    ) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| invalid("key", e))?;
        let mut params = leaf("EOS CO".into(), None, names, days, Usage::Server)?;
        params.subject_alt_names.push(SanType::URI(
            CO_URI
                .try_into()
                .map_err(|e| invalid("identity", format!("{e:?}")))?,
        ));
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| invalid("signing", e))?;
        Ok((certificate.pem(), key.serialize_pem()))
    }
}

/// What an end entity's certificate is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Usage {
    Server,
    Client,
    ServerAndClient,
}

/// The identity the CO's server certificates carry: an LO dials no other.
pub const CO_URI: &str = "spiffe://eos/co";

/// Every URI name of the certificate `der` (none when it does not read).
pub(crate) fn uris_of(der: &[u8]) -> Vec<String> {
    alt_names(der, |n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
        _ => None,
    })
}

/// The subject alternative names of the certificate `der` that `pick` keeps (none when it
/// does not read).
fn alt_names(
    der: &[u8],
    pick: impl Fn(&x509_parser::extensions::GeneralName<'_>) -> Option<String>,
) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    names.value.general_names.iter().filter_map(pick).collect()
}

/// The identity (SPIFFE URI) of the tier the holder of `certificate_pem` dials: its own
/// site's LO for an EN, the CO for an LO; none for a certificate of no EOS identity.
pub fn tier_above(certificate_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).ok()?;
    let mine = Identity::of_certificate(&pem.contents)?;
    Some(match mine.node {
        Some(_) => Identity { node: None, ..mine }.uri(),
        None => CO_URI.to_owned(),
    })
}

/// The fingerprint of the CA certificate `ca_pem`: the SHA-256 of its DER, 64 hex digits.
/// A claim token carries it, so a device enrols only with the CO whose CA it names.
pub fn ca_fingerprint(ca_pem: &str) -> Result<String, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| invalid("CA certificate", e))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &pem.contents);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Refused unless `csr_pem` is a PKCS#10 request whose signature verifies (checked before a
/// claim token is spent on it).
pub fn check_request(csr_pem: &str) -> Result<(), PkiError> {
    CertificateSigningRequestParams::from_pem(csr_pem)
        .map(|_| ())
        .map_err(|e| invalid("the certificate signing request", e))
}

/// The DNS names and addresses a certificate (DER) names besides its EOS identity.
fn server_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    alt_names(der, |n| match n {
        GeneralName::DNSName(d) => Some(d.to_string()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes)
                .ok()
                .map(|b| IpAddr::from(b).to_string()),
            16 => <[u8; 16]>::try_from(*bytes)
                .ok()
                .map(|b| IpAddr::from(b).to_string()),
            _ => None,
        },
        _ => None,
    })
}

/// The parameters of a certificate for an end entity.
fn leaf(
    common_name: String,
    identity: Option<&Identity>,
    names: &[String],
    days: i64,
    usage: Usage,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    if let Some(identity) = identity {
        let uri = identity
            .uri()
            .try_into()
            .map_err(|e| invalid("identity", format!("{e:?}")))?;
        params.subject_alt_names.push(SanType::URI(uri));
    }
    for name in names {
        params.subject_alt_names.push(match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.as_str()
                    .try_into()
                    .map_err(|e| invalid(format!("the name {name:?}"), format!("{e:?}")))?,
            ),
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    let mut serial = [0u8; 16];
    getrandom(&mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(days);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Random bytes from the system's source.
fn getrandom(out: &mut [u8]) {
    aws_lc_rs::rand::fill(out).expect("the system's random source works");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| PkiError::Io {
            path: path.into(),
            source,
        })
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| PkiError::Io {
            path: path.into(),
            source,
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| PkiError::Io {
            path: path.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_gets_a_certificate_naming_what_its_claim_said() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Authority::open_or_create(&tmp.path().join("ca")).unwrap();
        let device = tmp.path().join("en");
        // The request asks for a name of its own; the CA names the claim's identity.
        let csr = Credentials::request(&device, &["evil.example".into()]).unwrap();
        let identity = Identity {
            tenant: "acme".into(),
            site: "site-1".into(),
            node: Some("node-1".into()),
        };
        let issued = ca
            .issue(&csr, &identity, &[], DEVICE_LIFETIME_DAYS)
            .unwrap();
        let creds =
            Credentials::store(&device, &issued.certificate_pem, ca.certificate_pem()).unwrap();
        let (named, not_after) = creds.identity().unwrap();
        assert_eq!(named, identity);
        assert!(not_after > OffsetDateTime::now_utc() + Duration::days(29));
        assert!(!issued.certificate_pem.contains("evil"));
        // The same CA again, from its files.
        let again = Authority::open_or_create(&tmp.path().join("ca")).unwrap();
        assert_eq!(again.certificate_pem(), ca.certificate_pem());
    }

    #[test]
    fn a_renewal_needs_the_current_key_and_a_certificate_of_this_ca() {
        use rcgen::SigningKey;
        let tmp = tempfile::tempdir().unwrap();
        let ca = Authority::open_or_create(&tmp.path().join("ca")).unwrap();
        let other = Authority::open_or_create(&tmp.path().join("other")).unwrap();
        let identity = Identity {
            tenant: "acme".into(),
            site: "site-1".into(),
            node: Some("n1".into()),
        };
        let device = tmp.path().join("en");
        let csr = Credentials::request(&device, &[]).unwrap();
        let issued = ca.issue(&csr, &identity, &[], 30).unwrap();
        let creds =
            Credentials::store(&device, &issued.certificate_pem, ca.certificate_pem()).unwrap();
        assert!(!creds.needs_renewal(None).unwrap());
        assert!(creds.needs_renewal(Some(Duration::days(40))).unwrap());
        let key = KeyPair::from_pem(&creds.key_pem).unwrap();
        let next = Credentials::request(&tmp.path().join("next"), &[]).unwrap();
        let proof = key.sign(next.as_bytes()).unwrap();
        let renewed = ca
            .renew(&creds.certificate_pem, &next, &proof, &[], 30)
            .unwrap();
        assert_eq!(renewed.identity, identity);
        // Another key's proof, or the certificate shown to another CA, is refused.
        let stranger = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let forged = stranger.sign(next.as_bytes()).unwrap();
        assert!(
            ca.renew(&creds.certificate_pem, &next, &forged, &[], 30)
                .is_err()
        );
        assert!(
            other
                .renew(&creds.certificate_pem, &next, &proof, &[], 30)
                .is_err()
        );
    }

    #[test]
    fn an_en_certificate_is_a_client_s_and_a_renewal_adds_no_names() {
        use rcgen::SigningKey;
        let tmp = tempfile::tempdir().unwrap();
        let ca = Authority::open_or_create(&tmp.path().join("ca")).unwrap();
        let usages = |pem: &str| {
            let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der.contents).unwrap();
            let eku = cert.extended_key_usage().unwrap().unwrap().value.clone();
            (eku.server_auth, eku.client_auth)
        };
        let en = Identity {
            tenant: "acme".into(),
            site: "site-1".into(),
            node: Some("n1".into()),
        };
        let csr = Credentials::request(&tmp.path().join("en"), &[]).unwrap();
        let issued = ca.issue(&csr, &en, &[], 30).unwrap();
        assert_eq!(
            usages(&issued.certificate_pem),
            (false, true),
            "client only"
        );
        let lo = Identity { node: None, ..en };
        let dir = tmp.path().join("lo");
        let csr = Credentials::request(&dir, &[]).unwrap();
        let issued = ca
            .issue(&csr, &lo, &["lo.site-1".into(), "10.0.0.7".into()], 30)
            .unwrap();
        assert_eq!(usages(&issued.certificate_pem), (true, true));
        let creds =
            Credentials::store(&dir, &issued.certificate_pem, ca.certificate_pem()).unwrap();
        let key = KeyPair::from_pem(&creds.key_pem).unwrap();
        let next = Credentials::request(&tmp.path().join("next"), &[]).unwrap();
        let proof = key.sign(next.as_bytes()).unwrap();
        let same = ["10.0.0.7".to_owned(), "lo.site-1".to_owned()];
        assert!(
            ca.renew(&creds.certificate_pem, &next, &proof, &same, 30)
                .is_ok()
        );
        let more = ["lo.site-1".to_owned(), "co.example".to_owned()];
        let refused = ca
            .renew(&creds.certificate_pem, &next, &proof, &more, 30)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("cannot add \"co.example\""), "{refused}");
        assert!(
            check_request(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            )
            .is_err()
        );
        assert!(check_request(&next).is_ok());
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Authority::open_or_create(tmp.path()).unwrap();
        let csr = Credentials::request(&tmp.path().join("lo"), &[]).unwrap();
        let lines: Vec<&str> = csr.lines().collect();
        let mut body: Vec<u8> = lines[1].bytes().collect();
        body[40] = if body[40] == b'A' { b'B' } else { b'A' };
        let tampered = csr.replace(lines[1], std::str::from_utf8(&body).unwrap());
        let identity = Identity {
            tenant: "acme".into(),
            site: "s".into(),
            node: None,
        };
        assert!(ca.issue(&tampered, &identity, &[], 1).is_err());
    }

    #[test]
    fn identities_read_back_from_their_uris() {
        for node in [None, Some("n".to_owned())] {
            let id = Identity {
                tenant: "acme".into(),
                site: "site-1".into(),
                node,
            };
            assert_eq!(Identity::from_uri(&id.uri()), Some(id));
        }
        assert_eq!(Identity::from_uri("spiffe://other/acme/site/x"), None);
        assert_eq!(Identity::from_uri("spiffe://eos/acme/site/a/b"), None);
        assert_eq!(Identity::from_uri("spiffe://eos/site/a"), None);
    }
}
