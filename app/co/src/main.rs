//! `eos-co`: the central orchestrator binary.

use clap::Parser;
use eos_co::{Co, CoConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "EOS central orchestrator: REST API, app store, fleet and deployments"
)]
struct Args {
    /// TOML configuration file (see config/co.toml).
    #[arg(long, env = "EOS_CO_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, deployments repository, packages).
    #[arg(long, env = "EOS_CO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "EOS_CO_HTTP_LISTEN")]
    http_listen: Option<String>,
    #[arg(long, env = "EOS_CO_GRPC_LISTEN")]
    grpc_listen: Option<String>,
    #[arg(long, env = "EOS_CO_DEPLOYMENTS_REPO")]
    deployments_repo: Option<String>,
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
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
    eos_co::init_tracing(args.log_json);
    let mut config: CoConfig = eos_co::load_config(args.config.as_deref())?;
    config.data_dir = args.data_dir.unwrap_or(config.data_dir);
    config.http_listen = args.http_listen.unwrap_or(config.http_listen);
    config.grpc_listen = args.grpc_listen.unwrap_or(config.grpc_listen);
    config.deployments_repo = args.deployments_repo.or(config.deployments_repo);
    config.database_url = args.database_url.or(config.database_url);
    let co = Co::start(config).await?;
    println!(
        "EOS CO: REST API at http://{}/api/v1 (gRPC for LOs at {})",
        co.http_addr, co.grpc_addr
    );
    eos_co::wait_for_termination().await;
    co.shutdown().await;
    Ok(())
}
