//! Identifiers as validated newtypes: an invalid id cannot be constructed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid identifier of some kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: String,
}

fn id_error(kind: &'static str, value: &str, reason: impl Into<String>) -> IdError {
    IdError {
        kind,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map_err(|reason| id_error($kind, &value, reason))?;
                Ok(Self(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

/// Characters of a Margo device-id segment (RFC 3986 unreserved).
pub fn is_device_segment(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
}

/// A Margo application id: `^[a-z0-9-]{1,200}$`.
pub fn check_application_id(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 200 {
        return Err(format!("must be 1 to 200 characters, has {}", s.len()));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("only lowercase letters, digits and '-' are allowed".into());
    }
    Ok(())
}

/// A lowercase DNS-label-like name: letters, digits and dashes, 1 to 63 characters.
pub fn check_label_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("must be 1 to 63 characters, has {}", s.len()));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("only lowercase letters, digits and '-' are allowed".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must not start or end with '-'".into());
    }
    Ok(())
}

/// A UUID in its canonical 8-4-4-4-12 hexadecimal form.
pub fn check_uuid(s: &str) -> Result<(), String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err("not a UUID (8-4-4-4-12 hexadecimal digits)".into())
    }
}

string_id!(
    /// A tenant: the organisation every application, site, device, deployment, event and user
    /// belongs to (`acme`). Everything an operator reads or changes is of one tenant.
    TenantId, "tenant id", check_label_name
);

impl TenantId {
    /// The tenant of a CO's first start, of LOs that name none, and of requests that name none.
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_owned())
    }

    /// The platform tenant: the only one whose principals may be platform admins.
    pub fn platform() -> Self {
        Self::default_tenant()
    }

    /// Whether this is the platform tenant.
    pub fn is_platform(&self) -> bool {
        self.0 == DEFAULT_TENANT
    }
}

/// The id of the tenant every CO has from its first start. It is also the platform tenant:
/// the bootstrap admin belongs to it, and the `platform-admin` role counts only for principals
/// of this tenant (see `auth::Principal::is_platform_admin`).
pub const DEFAULT_TENANT: &str = "default";

string_id!(
    /// A site: one location with one LO (`factory-1`).
    SiteId, "site id", check_label_name
);
string_id!(
    /// A host within a site (`edge-01`).
    HostName, "host name", |s| if is_device_segment(s) && s.len() <= 63 { Ok(()) } else { Err("use 1 to 63 of A-Z a-z 0-9 . _ ~ -".into()) }
);
string_id!(
    /// A Margo application id (`com-example-hello`).
    AppId, "application id", check_application_id
);
string_id!(
    /// An application version as written in `metadata.version` (`1.2.0`).
    AppVersion, "application version", |s| {
        if s.is_empty() || s.len() > 128 {
            Err("must be 1 to 128 characters".into())
        } else if !s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c)) {
            Err("only letters, digits and . _ + - are allowed".into())
        } else {
            Ok(())
        }
    }
);
string_id!(
    /// A deployment: the UUID that is the ApplicationDeployment's top-level `id`.
    DeploymentId, "deployment id", check_uuid
);
string_id!(
    /// A component of a deployment profile (`hello`).
    ComponentName, "component name", check_label_name
);

/// A device: `<site>/<host>`, following Margo's gateway convention for `metadata.deviceId`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId {
    site: SiteId,
    host: HostName,
}

impl DeviceId {
    pub fn new(site: SiteId, host: HostName) -> Self {
        Self { site, host }
    }
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let (site, host) = value
            .split_once('/')
            .ok_or_else(|| id_error("device id", value, "expected <site>/<host>"))?;
        let site = SiteId::parse(site).map_err(|e| id_error("device id", value, e.reason))?;
        let host = HostName::parse(host).map_err(|e| id_error("device id", value, e.reason))?;
        Ok(Self { site, host })
    }
    pub fn site(&self) -> &SiteId {
        &self.site
    }
    pub fn host(&self) -> &HostName {
        &self.host
    }
}

impl TryFrom<String> for DeviceId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}
impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.to_string()
    }
}
impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.site, self.host)
    }
}

/// Where a deployment goes within a site: one pinned host, or any eligible host the LO picks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceTarget {
    Pinned(DeviceId),
    AnyIn(SiteId),
}

impl DeviceTarget {
    /// Parses Margo `metadata.deviceId`: `<site>/<host>` or `<site>/*`.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        match value.strip_suffix("/*") {
            Some(site) => Ok(Self::AnyIn(
                SiteId::parse(site).map_err(|e| id_error("device target", value, e.reason))?,
            )),
            None => Ok(Self::Pinned(DeviceId::parse(value)?)),
        }
    }
    pub fn site(&self) -> &SiteId {
        match self {
            Self::Pinned(d) => d.site(),
            Self::AnyIn(s) => s,
        }
    }
}

impl fmt::Display for DeviceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pinned(d) => write!(f, "{d}"),
            Self::AnyIn(s) => write!(f, "{s}/*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_parse_and_print_round_trip() {
        let d = DeviceId::parse("factory-1/edge-01").unwrap();
        assert_eq!(d.site().as_str(), "factory-1");
        assert_eq!(d.to_string(), "factory-1/edge-01");
        assert!(DeviceId::parse("factory-1").is_err());
        assert!(DeviceId::parse("Factory/x").is_err());
    }

    #[test]
    fn targets_distinguish_pinned_and_any() {
        assert!(matches!(
            DeviceTarget::parse("s1/*").unwrap(),
            DeviceTarget::AnyIn(_)
        ));
        assert!(matches!(
            DeviceTarget::parse("s1/h1").unwrap(),
            DeviceTarget::Pinned(_)
        ));
    }

    #[test]
    fn ids_refuse_bad_characters_with_the_reason() {
        let e = AppId::parse("bad**id").unwrap_err();
        assert!(e.to_string().contains("lowercase"), "{e}");
        assert!(DeploymentId::parse("not-a-uuid").is_err());
        assert!(DeploymentId::parse("a3e2f5dc-912e-494f-8395-52cf3769bc06").is_ok());
        assert!(AppId::parse("a".repeat(201)).is_err());
    }
}

/// A label key as Kubernetes and Margo write them: an optional DNS-subdomain prefix and `/`,
/// then a name of 1 to 63 letters, digits, `-`, `_` and `.`, starting and ending with a letter
/// or digit. Keys under `eos.dev/` are EOS's own and cannot be set by hand.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "{key:?}: the prefix must be a DNS name (example.com/)"
            ));
        }
        if p == "eos.dev" || p.ends_with(".eos.dev") {
            return Err(format!("{key:?}: keys under eos.dev/ are EOS's own"));
        }
    }
    check_label_value(name)
        .and_then(|()| {
            if name.is_empty() {
                Err("is empty".into())
            } else {
                Ok(())
            }
        })
        .map_err(|why| format!("{key:?}: the name {why}"))
}

/// A label value: empty, or 1 to 63 letters, digits, `-`, `_` and `.`, starting and ending
/// with a letter or digit.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if value.len() > 63
        || !value
            .chars()
            .all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        || !value.starts_with(alnum)
        || !value.ends_with(alnum)
    {
        return Err(format!(
            "{value:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// An IANA time zone name (`Europe/Berlin`, `America/Chicago`, `UTC`), as the tz database
/// bundled into EOS knows them.
pub fn check_time_zone(name: &str) -> Result<(), String> {
    jiff::tz::TimeZone::get(name)
        .map(|_| ())
        .map_err(|_| format!("{name:?} is not an IANA time zone name (such as Europe/Berlin)"))
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn label_keys_values_and_time_zones_are_checked() {
        for ok in ["zone", "line.3", "factory.example.com/line", "a_b-c.d"] {
            assert!(check_label_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-zone",
            "zone-",
            "a/",
            "/a",
            "Bad Prefix/x",
            "eos.dev/runtimes",
            "x".repeat(64).as_str(),
        ] {
            assert!(check_label_key(bad).is_err(), "{bad}");
        }
        for ok in ["", "3", "line-3", "A.b_c"] {
            assert!(check_label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "x-", "a b", "x".repeat(64).as_str()] {
            assert!(check_label_value(bad).is_err(), "{bad}");
        }
        assert!(check_time_zone("Europe/Berlin").is_ok());
        assert!(check_time_zone("UTC").is_ok());
        let e = check_time_zone("Mars/Olympus").unwrap_err();
        assert!(e.contains("not an IANA time zone"), "{e}");
    }
}
