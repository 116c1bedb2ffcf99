//! `eos-en`: the edge node agent binary.

use clap::Parser;
use eos_en::{En, EnConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "EOS edge node agent: runs workloads through runtime drivers"
)]
struct Args {
    /// TOML configuration file (see config/en.toml).
    #[arg(long, env = "EOS_EN_CONFIG")]
    config: Option<PathBuf>,
    /// This device, as <site>/<host>.
    #[arg(long, env = "EOS_EN_DEVICE_ID")]
    device_id: Option<String>,
    /// The LO's gRPC endpoint, e.g. http://127.0.0.1:7071.
    #[arg(long, env = "EOS_EN_LO_ENDPOINT")]
    lo_endpoint: Option<String>,
    /// Run record and workload folders (default .eos/en).
    #[arg(long, env = "EOS_EN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the LO (default 5).
    #[arg(long, env = "EOS_EN_HEARTBEAT_SECS")]
    heartbeat_secs: Option<u64>,
    /// Log as JSON lines instead of human-readable text.
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
    let mut config: EnConfig = eos_app_common::load_config(args.config.as_deref())?;
    config.device_id = args.device_id.unwrap_or(config.device_id);
    config.lo_endpoint = args.lo_endpoint.unwrap_or(config.lo_endpoint);
    config.data_dir = args.data_dir.unwrap_or(config.data_dir);
    config.heartbeat_secs = args.heartbeat_secs.unwrap_or(config.heartbeat_secs);
    let en = En::start(config).await?;
    eos_app_common::wait_for_termination().await;
    en.shutdown().await;
    Ok(())
}
