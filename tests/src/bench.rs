//! What the benchmarks share: their sizes from the environment, and a CO alone on loopback.

use eos_co::{Co, CoConfig};
use std::path::Path;

/// The number in the environment variable `var`, or `default` when unset or not a number.
pub fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A CO with its data in `dir`, on free loopback ports, on `database_url` (its SQLite file when
/// `None`).
pub async fn start_co(dir: &Path, database_url: Option<String>) -> anyhow::Result<Co> {
    Co::start(CoConfig {
        data_dir: dir.join("co"),
        http_listen: "127.0.0.1:0".into(),
        grpc_listen: "127.0.0.1:0".into(),
        database_url,
        ..CoConfig::default()
    })
    .await
}
