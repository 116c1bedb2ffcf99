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
    #[arg(long, env = "EOS_EN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "EOS_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    eos_app_common::init_tracing(args.log_json);
    let mut config: EnConfig = eos_app_common::load_config(args.config.as_deref())?;
    config.device_id = args.device_id.unwrap_or(config.device_id);
    config.lo_endpoint = args.lo_endpoint.unwrap_or(config.lo_endpoint);
    config.data_dir = args.data_dir.unwrap_or(config.data_dir);
    let en = En::start(config).await?;
    eos_app_common::wait_for_termination().await;
    en.shutdown().await;
    Ok(())
}
