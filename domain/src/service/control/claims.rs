//! Claim tokens: an operator asks for one per LO or EN to enrol (single-use, short-lived,
//! scoped to a site and a role, and for an EN to its host name); the device presents it once
//! with its certificate signing request. Only the token's SHA-256 is stored. Revocations cut an
//! enrolled LO or EN off.

use super::super::records::*;
use super::super::{ServiceError, not_found};
use super::ControlPlane;
use crate::ids::{SiteId, TenantId};
use crate::problem::Problems;
use sha2::{Digest, Sha256};

/// How long a claim token lives unless asked otherwise: an hour.
pub const DEFAULT_CLAIM_TTL_SECS: u64 = 3600;
/// The longest a claim token may live: a day.
pub const MAX_CLAIM_TTL_SECS: u64 = 24 * 3600;
/// What every claim token starts with, so one is recognised in a config file.
pub const TOKEN_PREFIX: &str = "eosclaim_";

/// A claim token as the CO hands it out, `eosclaim_<secret>.<CA fingerprint>`: the secret the
/// CO knows it by, and the fingerprint of the CA that devices must find (none in a bare
/// secret).
pub fn split_claim_token(token: &str) -> (&str, Option<&str>) {
    match token.trim().rsplit_once('.') {
        Some((secret, fingerprint)) => (secret, Some(fingerprint)),
        None => (token.trim(), None),
    }
}

/// A claim token to make.
#[derive(Debug, Clone, Default)]
pub struct ClaimRequest {
    /// `lo` or `en`.
    pub role: String,
    /// The EN's host name (required for `en`, refused for `lo`).
    pub host: Option<String>,
    pub ttl_secs: Option<u64>,
}

/// Why a claim token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefused {
    #[error("the claim token is not one this CO issued")]
    Unknown,
    #[error("the claim token was used already (at {0}); a token enrols one device once")]
    Used(String),
    #[error("the claim token expired at {0}")]
    Expired(String),
}

/// The stored hash of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

impl ControlPlane {
    /// Makes a claim token for `site` of `tenant`; returns it (shown once) with its record.
    pub async fn create_claim(
        &self,
        tenant: &TenantId,
        site: &str,
        req: ClaimRequest,
    ) -> Result<(String, ClaimRecord), ServiceError> {
        // A claim for a site of another tenant is refused as not found; one for a site nobody
        // has yet makes the site the claimant's at once (before its LO ever connects), so no
        // other tenant can claim it meanwhile.
        let site = SiteId::parse(site).map_err(|_| not_found("site", site))?;
        if let Some(known) = self.store.get_site(&site).await?
            && &known.tenant != tenant
        {
            return Err(not_found("site", &site));
        }
        let mut problems = Problems::default();
        let role = ClaimRole::parse(&req.role);
        if role.is_none() {
            problems.push("role", format!("{:?} is neither lo nor en", req.role));
        }
        match (role, &req.host) {
            (Some(ClaimRole::En), None) => problems.push("host", "an EN's claim names its host"),
            (Some(ClaimRole::Lo), Some(_)) => {
                problems.push("host", "an LO's claim names no host (it is the site's)")
            }
            (_, Some(host)) if !crate::ids::is_device_segment(host) => problems.push(
                "host",
                format!("{host:?} is not a host name (A-Z a-z 0-9 . _ ~ -)"),
            ),
            _ => {}
        }
        let ttl = req.ttl_secs.unwrap_or(DEFAULT_CLAIM_TTL_SECS);
        if ttl == 0 || ttl > MAX_CLAIM_TTL_SECS {
            problems.push(
                "ttl_secs",
                format!("{ttl} is not between 1 and {MAX_CLAIM_TTL_SECS}"),
            );
        }
        let Some(role) = role.filter(|_| problems.is_empty()) else {
            return Err(ServiceError::Invalid {
                what: "claim".into(),
                problems,
            });
        };
        if self.store.get_site(&site).await?.is_none() {
            self.tenant(tenant).await?;
            self.store
                .set_site_contact(tenant, &site, false, None)
                .await?;
            // Two tenants claiming the same new site at once: the site went to one of them.
            if self.store.get_site(&site).await?.map(|s| s.tenant) != Some(tenant.clone()) {
                return Err(not_found("site", &site));
            }
        }
        let token = format!(
            "{TOKEN_PREFIX}{}{}",
            self.clock.new_uuid().replace('-', ""),
            self.clock.new_uuid().replace('-', "")
        );
        let now = self.clock.now();
        let record = ClaimRecord {
            token_hash: token_hash(&token),
            tenant: tenant.clone(),
            site,
            role,
            host: req.host,
            expires_at: later(&now, ttl)?,
            created_at: now,
            used_at: None,
        };
        self.store.insert_claim(&record).await?;
        Ok((token, record))
    }

    /// Uses a claim token: its record, when it is known, unused and unexpired; it cannot be
    /// used again.
    pub async fn redeem_claim(
        &self,
        token: &str,
    ) -> Result<Result<ClaimRecord, ClaimRefused>, ServiceError> {
        let hash = token_hash(token);
        let Some(record) = self.store.get_claim(&hash).await? else {
            return Ok(Err(ClaimRefused::Unknown));
        };
        if let Some(at) = &record.used_at {
            return Ok(Err(ClaimRefused::Used(at.clone())));
        }
        let now = self.clock.now();
        if is_past(&record.expires_at, &now) {
            return Ok(Err(ClaimRefused::Expired(record.expires_at.clone())));
        }
        if !self.store.use_claim(&hash, &now).await? {
            return Ok(Err(ClaimRefused::Used(now)));
        }
        Ok(Ok(ClaimRecord {
            used_at: Some(now),
            ..record
        }))
    }
}

impl ControlPlane {
    /// Revokes the certificates of the LO of `site` (`host` none) or of its EN `host` issued
    /// until now, and tells the site's link at once.
    pub async fn revoke(
        &self,
        tenant: &TenantId,
        site: &str,
        host: Option<String>,
    ) -> Result<Revocation, ServiceError> {
        let site = self.site(tenant, site).await?.id;
        if let Some(h) = &host
            && !crate::ids::is_device_segment(h)
        {
            let mut problems = Problems::default();
            problems.push("host", format!("{h:?} is not a host name"));
            return Err(ServiceError::Invalid {
                what: "revocation".into(),
                problems,
            });
        }
        let revocation = Revocation {
            tenant: tenant.clone(),
            site,
            host,
            revoked_at: self.clock.now(),
        };
        self.store.put_revocation(&revocation).await?;
        self.notifier.revoked(&revocation).await;
        Ok(revocation)
    }

    /// Every revocation of a site, for its link.
    pub async fn site_revocations(&self, site: &SiteId) -> Result<Vec<Revocation>, ServiceError> {
        Ok(self.store.site_revocations(site).await?)
    }
}

/// Whether a revocation at `revoked_at` covers a certificate issued at `issued_at` (both RFC
/// 3339): one issued no later than the revocation. Unreadable times count as covered.
pub fn revocation_covers(revoked_at: &str, issued_at: &str) -> bool {
    match (
        revoked_at.parse::<jiff::Timestamp>(),
        issued_at.parse::<jiff::Timestamp>(),
    ) {
        (Ok(revoked), Ok(issued)) => issued <= revoked,
        _ => true,
    }
}

fn later(now: &str, secs: u64) -> Result<String, ServiceError> {
    let t: jiff::Timestamp = now
        .parse()
        .map_err(|e| ServiceError::Backend(format!("the clock's time {now:?}: {e}")))?;
    let later = t
        .checked_add(jiff::SignedDuration::from_secs(secs as i64))
        .map_err(|e| ServiceError::Backend(e.to_string()))?;
    Ok(later.to_string())
}

fn is_past(at: &str, now: &str) -> bool {
    match (
        at.parse::<jiff::Timestamp>(),
        now.parse::<jiff::Timestamp>(),
    ) {
        (Ok(at), Ok(now)) => at <= now,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_compare_as_instants() {
        let expires = later("2026-12-07T10:00:00Z", 3600).unwrap();
        assert!(!is_past(&expires, "2026-12-07T10:59:59Z"));
        assert!(is_past(&expires, "2026-12-07T11:00:00Z"));
        assert!(is_past("garbage", "2026-12-07T11:00:00Z"));
    }

    #[test]
    fn only_the_hash_of_a_token_is_kept() {
        assert_eq!(token_hash(" abc \n"), token_hash("abc"));
        assert_eq!(token_hash("abc").len(), 64);
    }
}
