//! `eos-lo` as a real process: configuration file with environment overrides, JSON logs, keeps
//! running while its CO is unreachable, and exits cleanly on SIGTERM.

use eos_test_process::{Daemon, Stream, json_logs};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn reads_its_config_file_takes_env_overrides_logs_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lo.toml");
    // The CO endpoint points at a port nobody listens on: the LO must start and wait anyway.
    std::fs::write(
        &config,
        format!(
            "site_id = \"from-file\"\nco_endpoint = \"http://127.0.0.1:9\"\n\
             deployments_repo = {:?}\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\npoll_secs = 1\n",
            dir.path().join("missing.git").display().to_string(),
            dir.path().join("lo").display().to_string(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eos-lo"));
    cmd.arg("--config")
        .arg(&config)
        .arg("--log-json")
        .env("EOS_LO_SITE_ID", "from-env")
        .env_remove("RUST_LOG");
    let lo = Daemon::spawn(cmd);
    let started = lo.wait_for_line(LIMIT, |l| l.contains("local orchestrator started"));
    let started: serde_json::Value = serde_json::from_str(&started).unwrap();
    assert_eq!(started["fields"]["site_id"], "from-env", "{started}");
    // Unreachable CO and repository are reported, not fatal.
    lo.wait_for_line(LIMIT, |l| l.contains("co link down"));
    lo.wait_for_line(LIMIT, |l| l.contains("cannot fetch desired state"));

    let lines = lo.terminate_cleanly(LIMIT);
    assert!(
        lines.iter().all(|(stream, _)| *stream == Stream::Stderr),
        "the LO writes nothing but logs"
    );
    json_logs(&lines);
}
