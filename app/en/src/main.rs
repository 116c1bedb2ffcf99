//! `eos-en`: the edge node agent binary.

use clap::Parser;
use eos_en::{En, EnConfig};
use std::path::PathBuf;

/// Flags (and their environment variables) override the keys of the same name in the file.
#[derive(Parser, serde::Serialize)]
#[command(
    version,
    about = "EOS edge node agent: runs workloads through runtime drivers"
)]
struct Args {
    /// TOML configuration file (see config/en.toml).
    #[arg(long, env = "EOS_EN_CONFIG")]
    #[serde(skip)]
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
    /// The container engine's Unix socket (default /var/run/docker.sock); without an engine
    /// there, the EN runs without the oci runtime.
    #[arg(long, env = "EOS_EN_CONTAINER_SOCKET")]
    container_socket: Option<String>,
    /// Seconds between looks at every component; crashed ones are restarted (default 2).
    #[arg(long, env = "EOS_EN_HEALTH_CHECK_SECS")]
    health_check_secs: Option<u64>,
    /// A claim token to enrol with (`edgectl site claim`), used once when the EN has no
    /// certificate yet; then every link of the EN is mutual TLS.
    #[arg(long, env = "EOS_EN_CLAIM_TOKEN", hide_env_values = true)]
    claim_token: Option<String>,
    /// The CO's HTTP API to enrol at (`http://co:8080`).
    #[arg(long, env = "EOS_EN_ENROL_URL")]
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
    let config: EnConfig = eos_app_common::load_config_with(args.config.as_deref(), &args)?;
    eos_app_common::serve_until_terminated(En::start(config).await?).await;
    Ok(())
}
