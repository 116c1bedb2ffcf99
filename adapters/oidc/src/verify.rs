//! The CO's verifier of an external provider's access tokens: discovery on first use, the JWKS
//! cached and fetched again for a key id it has not seen or when older than `jwks_cache_secs`;
//! asymmetric algorithms only; issuer, audience and expiry checked. Fetches are one at a time and
//! at least a second apart, and a key id the provider did not publish is not asked about again
//! for ten seconds, so a flood of made-up key ids cannot make the CO hammer the provider.

use crate::claims::{self, ClaimMapping};
use crate::http::Http;
use eos_domain::auth::Principal;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::IssuerUrl;
use openidconnect::core::CoreProviderMetadata;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// How far a token's times may be off the CO's clock.
const LEEWAY_SECS: u64 = 30;
/// The least time between two fetches of the key set.
const FETCH_GAP: Duration = Duration::from_secs(1);
/// How long a key id found missing is not asked about again.
const MISSING_TTL: Duration = Duration::from_secs(10);
/// The most missing key ids remembered.
const MISSING_MAX: usize = 256;
/// The algorithms a provider's token may be signed with. Never `none` or HMAC: a verifier
/// holding only public keys must not be tricked into using one as a shared secret.
const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The CO's `[oidc]` settings: the provider whose tokens it accepts beside its own.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (`iss`); discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The audience (`aud`) tokens must be for.
    pub audience: String,
    /// The public client people log in with (`edgectl login`).
    pub client_id: String,
    /// The resource indicator to ask tokens for (RFC 8707), when the provider wants one.
    pub resource: Option<String>,
    /// The scopes `edgectl login` asks for.
    pub scopes: Vec<String>,
    /// The client whose roles count, `resource_access.<client>.roles` (default: `client_id`).
    pub roles_client: Option<String>,
    /// The claim that names the tenant.
    pub tenant_claim: String,
    /// Groups under this prefix name the tenant when the claim is absent.
    pub tenant_group_prefix: String,
    /// How long a fetched key set is used before it is fetched again (a key the provider
    /// withdrew is refused after at most this long).
    pub jwks_cache_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: "eos".into(),
            client_id: "edgectl".into(),
            resource: None,
            scopes: vec!["openid".into(), "profile".into(), "offline_access".into()],
            roles_client: None,
            tenant_claim: "tenant".into(),
            tenant_group_prefix: "/tenants/".into(),
            jwks_cache_secs: 300,
        }
    }
}

impl OidcConfig {
    pub fn mapping(&self) -> ClaimMapping {
        ClaimMapping {
            roles_client: self
                .roles_client
                .clone()
                .unwrap_or_else(|| self.client_id.clone()),
            tenant_claim: self.tenant_claim.clone(),
            tenant_group_prefix: self.tenant_group_prefix.clone(),
        }
    }
}

/// Why a token was refused, or why the provider could not be asked (said in the 401).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// The keys of the provider, as last fetched.
#[derive(Default)]
struct Keys {
    jwks_uri: Option<String>,
    by_kid: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    fetched: Option<Instant>,
}

/// Verifies the provider's access tokens.
pub struct Verifier {
    config: OidcConfig,
    mapping: ClaimMapping,
    http: Http,
    keys: RwLock<Keys>,
    /// Held while fetching, so concurrent requests with a new key id fetch once; it keeps the
    /// key ids found missing lately.
    fetching: Mutex<HashMap<String, Instant>>,
}

impl Verifier {
    /// A verifier for `config`'s provider. Nothing is fetched until the first token.
    pub fn new(config: OidcConfig) -> Result<Self, Rejected> {
        IssuerUrl::new(config.issuer.clone())
            .map_err(|e| Rejected(format!("oidc.issuer {:?}: {e}", config.issuer)))?;
        Ok(Self {
            mapping: config.mapping(),
            config,
            http: Http::new(),
            keys: RwLock::default(),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Fetches discovery (the first time) and the key set now; for a check at start.
    pub async fn refresh(&self) -> Result<usize, Rejected> {
        let _missing = self.fetching.lock().await;
        self.fetch().await
    }

    /// The principal a token of the provider names.
    pub async fn verify(&self, token: &str) -> Result<Principal, Rejected> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Rejected(format!("the token cannot be read: {e}")))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(Rejected(format!(
                "the token's algorithm is not allowed ({:?}; the provider's tokens must be signed \
                 with a public-key algorithm)",
                header.alg
            )));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let (key, key_alg) = match self.key(&kid).await {
            Some(k) => k,
            None => {
                self.fetch_for_unknown_kid(&kid).await?;
                self.key(&kid).await.ok_or_else(|| {
                    Rejected(format!(
                        "the token is signed with key {kid:?}, which {} does not publish",
                        self.config.issuer
                    ))
                })?
            }
        };
        if key_alg.is_some_and(|a| a != header.alg) {
            return Err(Rejected(format!(
                "the token's algorithm ({:?}) is not its key's",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| Rejected(describe(&e, &self.config)))?;
        claims::principal(&data.claims, &self.mapping).map_err(Rejected)
    }

    /// The key for `kid` (or the only key, when the token names none), unless the set is stale.
    async fn key(&self, kid: &str) -> Option<(DecodingKey, Option<Algorithm>)> {
        let keys = self.keys.read().await;
        let fresh = keys
            .fetched
            .is_some_and(|t| t.elapsed() < Duration::from_secs(self.config.jwks_cache_secs));
        if !fresh {
            return None;
        }
        if kid.is_empty() && keys.by_kid.len() == 1 {
            return keys.by_kid.values().next().cloned();
        }
        keys.by_kid.get(kid).cloned()
    }

    /// Fetches the key set for `kid` unless another request just did, or `kid` was found
    /// missing lately; waits for the gap between fetches.
    async fn fetch_for_unknown_kid(&self, kid: &str) -> Result<(), Rejected> {
        let mut missing = self.fetching.lock().await;
        if self.key(kid).await.is_some() {
            return Ok(());
        }
        if missing.get(kid).is_some_and(|t| t.elapsed() < MISSING_TTL) {
            return Ok(());
        }
        let last = self.keys.read().await.fetched;
        if let Some(wait) = last.and_then(|t| FETCH_GAP.checked_sub(t.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        self.fetch().await?;
        if self.key(kid).await.is_none() {
            if missing.len() >= MISSING_MAX {
                missing.retain(|_, t| t.elapsed() < MISSING_TTL);
            }
            if missing.len() < MISSING_MAX {
                missing.insert(kid.to_owned(), Instant::now());
            }
        }
        Ok(())
    }

    /// Discovery (once) and the key set; the caller holds `fetching`.
    async fn fetch(&self) -> Result<usize, Rejected> {
        let known = self.keys.read().await.jwks_uri.clone();
        let jwks_uri = match known {
            Some(uri) => uri,
            None => {
                let issuer = IssuerUrl::new(self.config.issuer.clone())
                    .map_err(|e| Rejected(format!("oidc.issuer: {e}")))?;
                let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| {
                        Rejected(format!(
                            "the identity provider {} cannot be discovered: {}",
                            self.config.issuer,
                            chain(&e)
                        ))
                    })?;
                metadata.jwks_uri().url().to_string()
            }
        };
        let set: JwkSet = self
            .http
            .0
            .get(&jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Rejected(format!("the provider's keys ({jwks_uri}): {e}")))?
            .json()
            .await
            .map_err(|e| {
                Rejected(format!(
                    "the provider's keys ({jwks_uri}) are not a JWKS: {e}"
                ))
            })?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) || matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            ) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                tracing::warn!(kid = ?jwk.common.key_id, "a provider key EOS cannot use");
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            by_kid.insert(jwk.common.key_id.clone().unwrap_or_default(), (key, alg));
        }
        let count = by_kid.len();
        *self.keys.write().await = Keys {
            jwks_uri: Some(jwks_uri),
            by_kid,
            fetched: Some(Instant::now()),
        };
        tracing::debug!(issuer = %self.config.issuer, keys = count, "identity provider keys fetched");
        Ok(count)
    }
}

/// An error with its causes.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A person-readable reason for a refused token.
fn describe(e: &jsonwebtoken::errors::Error, config: &OidcConfig) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::InvalidIssuer => format!("the token is not of {} (issuer)", config.issuer),
        ErrorKind::InvalidAudience => {
            format!("the token is not for {} (audience)", config.audience)
        }
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not allowed for its key".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token lacks the {c} claim"),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        _ => format!("the token cannot be read: {e}"),
    }
}
