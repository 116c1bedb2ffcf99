//! `eos-co` as a real process: configuration file with environment overrides, JSON logs, a clear
//! error for a bad configuration, and a clean exit on SIGTERM.

use eos_test_process::{Daemon, http_get, json_logs};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn reads_its_config_file_takes_env_overrides_logs_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let from_env = dir.path().join("from-env");
    let config = dir.path().join("co.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nhttp_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n",
            from_file.display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eos-co"));
    cmd.arg("--config")
        .arg(&config)
        .env("EOS_CO_DATA_DIR", &from_env)
        .env("EOS_LOG_JSON", "true")
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL");
    let co = Daemon::spawn(cmd);
    let banner = co.wait_for_line(LIMIT, |l| l.starts_with("EOS CO: REST API at http://"));
    let api = banner
        .trim_start_matches("EOS CO: REST API at ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    // The environment wins over the file: the database and repository live in `from-env`.
    assert!(
        from_env.join("co.db").exists(),
        "no database in the env's data dir"
    );
    assert!(from_env.join("deployments.git").is_dir());
    assert!(
        !from_file.exists(),
        "the file's data dir was used despite the override"
    );
    // The REST API answers on the port the file asked for (an ephemeral one).
    let (code, body) = http_get(&format!("{api}/health")).expect("health request");
    assert_eq!(code, 200, "{body}");

    let lines = co.terminate_cleanly(LIMIT);
    for log in json_logs(&lines) {
        assert!(log["fields"]["message"].is_string(), "{log}");
    }
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("co.toml");
    std::fs::write(&config, "http_lisen = \"127.0.0.1:0\"\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eos-co"));
    cmd.arg("--config").arg(&config);
    let mut co = Daemon::spawn(cmd);
    let status = co.wait(LIMIT);
    assert!(!status.success());
    let all: String = co.lines().into_iter().map(|(_, l)| l + "\n").collect();
    assert!(all.contains(&config.display().to_string()), "{all}");
    assert!(all.contains("http_lisen"), "{all}");
}
