//! Test launcher: runs one EOS tier (`co`, `lo` or `en`) from a TOML configuration file, through
//! the same library entry points the real binaries use after reading their flags, and prints its
//! addresses on stdout (`co http=ADDR grpc=ADDR`, `lo listen=ADDR`, `en started`). The crash
//! tests of this package start it as a real process so they can kill it with SIGKILL.

use eos_app_common::{exit_code, init_tracing, load_config, serve_until_terminated};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    exit_code(run().await)
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tier, config] = args.as_slice() else {
        anyhow::bail!("usage: eos-node co|lo|en CONFIG.toml");
    };
    init_tracing(true);
    let config = Some(PathBuf::from(config));
    match tier.as_str() {
        "co" => {
            let co = eos_co::Co::start(load_config(config.as_deref())?).await?;
            println!("co http={} grpc={}", co.http_addr, co.grpc_addr);
            serve_until_terminated(co).await;
        }
        "lo" => {
            let lo = eos_lo::Lo::start(load_config(config.as_deref())?).await?;
            println!("lo listen={}", lo.listen_addr);
            serve_until_terminated(lo).await;
        }
        "en" => {
            let en = eos_en::En::start(load_config(config.as_deref())?).await?;
            println!("en started");
            serve_until_terminated(en).await;
        }
        other => anyhow::bail!("unknown tier {other:?}; expected co, lo or en"),
    }
    Ok(())
}
