//! LO configuration: a TOML file, then `EOS_LO_*` environment variables, then flags.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoConfig {
    /// The site this LO runs.
    pub site_id: String,
    /// The tenant the site belongs to: the CO creates a new site in it and refuses the LO of
    /// a site that another tenant has.
    pub tenant: String,
    /// The CO's gRPC endpoint.
    pub co_endpoint: String,
    /// The deployments Git repository (URL or path), fetched only.
    pub deployments_repo: String,
    /// Where ENs dial in.
    pub listen: String,
    pub data_dir: PathBuf,
    /// How often to fetch when no hint arrives.
    pub poll_secs: u64,
    /// An EN silent for this long (no heartbeat, no result) counts as offline: its stream is
    /// dropped and its components may move to other ENs. ENs heartbeat every 5 s by default.
    pub en_grace_secs: u64,
    /// Where the LO keeps its key and certificates (default: `tls` in the data directory). With
    /// them, both its links are mutual TLS: to the CO, and from ENs, which must then hold a
    /// certificate naming one of this site's nodes.
    pub tls_dir: Option<PathBuf>,
    /// A claim token for enrolling (`edgectl site claim`); used once, when the LO has no
    /// certificate yet.
    pub claim_token: Option<String>,
    /// The CO's HTTP API, where the claim token is taken (`http://co:8080`) and where the
    /// certificate is renewed.
    pub enrol_url: Option<String>,
    /// How often the certificate is looked at; it is renewed when a third of its lifetime is
    /// left (ten of 30 days), or `renew_within_secs` when set.
    pub renew_check_secs: u64,
    pub renew_within_secs: Option<u64>,
    /// The DNS names and addresses ENs reach this LO at (its certificate's names).
    pub tls_names: Vec<String>,
}

impl Default for LoConfig {
    fn default() -> Self {
        Self {
            site_id: "site-1".into(),
            tenant: eos_domain::ids::DEFAULT_TENANT.into(),
            co_endpoint: "http://127.0.0.1:7070".into(),
            deployments_repo: ".eos/co/deployments.git".into(),
            listen: "127.0.0.1:7071".into(),
            data_dir: PathBuf::from(".eos/lo"),
            poll_secs: 30,
            en_grace_secs: 15,
            tls_dir: None,
            claim_token: None,
            enrol_url: None,
            renew_check_secs: 3600,
            renew_within_secs: None,
            tls_names: vec!["127.0.0.1".into(), "localhost".into()],
        }
    }
}

impl LoConfig {
    pub fn tls_dir(&self) -> PathBuf {
        self.tls_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls"))
    }
}
