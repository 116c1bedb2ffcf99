//! `eos-en` as a real process: configuration file with flag overrides, JSON logs, keeps running
//! while its LO is unreachable, and exits cleanly on SIGTERM.

use eos_test_process::{Daemon, json_logs};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn reads_its_config_file_takes_flag_overrides_logs_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("en.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"site-9/from-file\"\nlo_endpoint = \"http://127.0.0.1:9\"\n\
             data_dir = {:?}\nheartbeat_secs = 1\n",
            dir.path().join("en").display().to_string(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eos-en"));
    cmd.arg("--config")
        .arg(&config)
        .args(["--device-id", "site-9/from-flag", "--log-json"])
        .env_remove("RUST_LOG");
    let en = Daemon::spawn(cmd);
    let started = en.wait_for_line(LIMIT, |l| l.contains("edge node agent started"));
    let started: serde_json::Value = serde_json::from_str(&started).unwrap();
    assert_eq!(started["fields"]["device_id"], "site-9/from-flag");
    assert!(
        dir.path().join("en/state").exists(),
        "run record not in the file's data dir"
    );
    en.wait_for_line(LIMIT, |l| l.contains("lo link down"));

    let lines = en.terminate_cleanly(LIMIT);
    json_logs(&lines);
}

#[test]
fn an_invalid_device_id_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eos-en"));
    cmd.args(["--device-id", "no-slash-here", "--data-dir"])
        .arg(dir.path());
    let mut en = Daemon::spawn(cmd);
    assert!(!en.wait(LIMIT).success());
    let all: String = en.lines().into_iter().map(|(_, l)| l + "\n").collect();
    assert!(all.contains("no-slash-here"), "{all}");
}
