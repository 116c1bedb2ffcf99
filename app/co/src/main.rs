//! `eos-co`: the central orchestrator binary.

use clap::Parser;
use eos_co::{Co, CoConfig};
use std::path::PathBuf;

/// Flags (and their environment variables) override the keys of the same name in the file.
#[derive(Parser, serde::Serialize)]
#[command(
    version,
    about = "EOS central orchestrator: REST API, app store, fleet and deployments"
)]
struct Args {
    /// TOML configuration file (see config/co.toml).
    #[arg(long, env = "EOS_CO_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Data directory (database, deployments repository, packages).
    #[arg(long, env = "EOS_CO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "EOS_CO_HTTP_LISTEN")]
    http_listen: Option<String>,
    #[arg(long, env = "EOS_CO_GRPC_LISTEN")]
    grpc_listen: Option<String>,
    /// Also serve the REST API over TLS here (`0.0.0.0:8443`): devices on other machines
    /// enrol over it, trusting the CA their claim token names.
    #[arg(long, env = "EOS_CO_HTTPS_LISTEN")]
    https_listen: Option<String>,
    #[arg(long, env = "EOS_CO_DEPLOYMENTS_REPO")]
    deployments_repo: Option<String>,
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Days the event log keeps an event (0: forever).
    #[arg(long, env = "EOS_CO_EVENT_RETENTION_DAYS")]
    event_retention_days: Option<u64>,
    /// Whether LOs must speak mutual TLS on the gRPC link (default true; `--grpc-tls false` for
    /// plain gRPC): they enrol with claim tokens (`edgectl site claim`) and speak only for the
    /// site their certificate names.
    #[arg(long, env = "EOS_CO_GRPC_TLS", num_args = 0..=1, default_missing_value = "true")]
    grpc_tls: Option<bool>,
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
    let config: CoConfig = eos_app_common::load_config_with(args.config.as_deref(), &args)?;
    let co = Co::start(config).await?;
    println!(
        "EOS CO: REST API at http://{}/api/v1 (gRPC for LOs at {})",
        co.http_addr, co.grpc_addr
    );
    if let Some(https) = co.https_addr {
        println!("EOS CO: REST API over TLS at https://{https}/api/v1");
    }
    eos_app_common::serve_until_terminated(co).await;
    Ok(())
}
