//! `eos-lo`: the local orchestrator binary, one per site.

use clap::Parser;
use eos_lo::{Lo, LoConfig};
use std::path::PathBuf;

/// Flags (and their environment variables) override the keys of the same name in the file.
#[derive(Parser, serde::Serialize)]
#[command(
    version,
    about = "EOS local orchestrator: reconciles one site from Git and drives its edge nodes"
)]
struct Args {
    /// TOML configuration file (see config/lo.toml).
    #[arg(long, env = "EOS_LO_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    #[arg(long, env = "EOS_LO_SITE_ID")]
    site_id: Option<String>,
    /// The tenant the site belongs to (default: default).
    #[arg(long, env = "EOS_LO_TENANT")]
    tenant: Option<String>,
    #[arg(long, env = "EOS_LO_CO_ENDPOINT")]
    co_endpoint: Option<String>,
    #[arg(long, env = "EOS_LO_DEPLOYMENTS_REPO")]
    deployments_repo: Option<String>,
    #[arg(long, env = "EOS_LO_LISTEN")]
    listen: Option<String>,
    #[arg(long, env = "EOS_LO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "EOS_LO_POLL_SECS")]
    poll_secs: Option<u64>,
    /// Seconds of silence after which an EN counts as offline (default 15).
    #[arg(long, env = "EOS_LO_EN_GRACE_SECS")]
    en_grace_secs: Option<u64>,
    /// A claim token to enrol with (`edgectl site claim`), used once when the LO has no
    /// certificate yet; then every link of the LO is mutual TLS.
    #[arg(long, env = "EOS_LO_CLAIM_TOKEN", hide_env_values = true)]
    claim_token: Option<String>,
    /// The CO's HTTP API to enrol at (`http://co:8080`).
    #[arg(long, env = "EOS_LO_ENROL_URL")]
    enrol_url: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "EOS_LOG_JSON")]
    #[serde(skip)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    eos_app_common::exit_code(run().await)
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    eos_app_common::init_tracing(args.log_json);
    let config: LoConfig = eos_app_common::load_config_with(args.config.as_deref(), &args)?;
    eos_app_common::serve_until_terminated(Lo::start(config).await?).await;
    Ok(())
}
