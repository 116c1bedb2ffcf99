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
        }
    }
}
