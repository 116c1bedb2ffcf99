//! `eos-lo`: the local orchestrator binary, one per site.

use clap::Parser;
use eos_lo::{Lo, LoConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "EOS local orchestrator: reconciles one site from Git and drives its edge nodes"
)]
struct Args {
    /// TOML configuration file (see config/lo.toml).
    #[arg(long, env = "EOS_LO_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "EOS_LO_SITE_ID")]
    site_id: Option<String>,
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
    #[arg(long, env = "EOS_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    eos_app_common::exit_code(run().await)
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    eos_app_common::init_tracing(args.log_json);
    let mut c: LoConfig = eos_app_common::load_config(args.config.as_deref())?;
    c.site_id = args.site_id.unwrap_or(c.site_id);
    c.co_endpoint = args.co_endpoint.unwrap_or(c.co_endpoint);
    c.deployments_repo = args.deployments_repo.unwrap_or(c.deployments_repo);
    c.listen = args.listen.unwrap_or(c.listen);
    c.data_dir = args.data_dir.unwrap_or(c.data_dir);
    c.poll_secs = args.poll_secs.unwrap_or(c.poll_secs);
    c.en_grace_secs = args.en_grace_secs.unwrap_or(c.en_grace_secs);
    let lo = Lo::start(c).await?;
    eos_app_common::wait_for_termination().await;
    lo.shutdown().await;
    Ok(())
}
