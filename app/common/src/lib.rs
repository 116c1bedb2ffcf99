//! What every EOS binary shares: logging, configuration files, termination signals and a
//! private data folder.

mod clock;
mod failpoint;

pub use clock::{Clock, SimClock, SystemClock, rfc3339, system_clock};
pub use failpoint::{FAILPOINT_VAR, FAILPOINTS, failpoint};

use anyhow::Context;

/// Makes `dir` (and its parents) when missing and leaves it to its owner alone (mode 0700):
/// keys, records and packages inside are then out of other users' reach, whatever modes the
/// files themselves get.
pub fn private_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (0700)", dir.display()))
}

/// Logs through tracing: human-readable by default, JSON lines on request; `RUST_LOG` filters.
pub fn init_tracing(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init()
    } else {
        builder.init()
    }
}

/// Reads a TOML configuration file, or the defaults when none is given.
pub fn load_config<T: serde::de::DeserializeOwned>(
    path: Option<&std::path::Path>,
) -> anyhow::Result<T> {
    load_config_with(path, &toml::Table::new())
}

/// Reads a TOML configuration file (or the defaults), then lays `overrides` over it: every field
/// `overrides` serializes (a binary's flags and environment variables, `None` ones left out)
/// replaces the file's key of the same name. Unknown keys, in the file or among the overrides,
/// are refused by the configuration type.
pub fn load_config_with<T: serde::de::DeserializeOwned>(
    path: Option<&std::path::Path>,
    overrides: &impl serde::Serialize,
) -> anyhow::Result<T> {
    let overrides =
        toml::Table::try_from(overrides).context("cannot read the command-line settings")?;
    let Some(path) = path else {
        return toml::Value::Table(overrides)
            .try_into()
            .context("invalid configuration on the command line");
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let invalid = || format!("invalid configuration in {}", path.display());
    if overrides.is_empty() {
        // Straight from the text, so errors point at the line.
        return toml::from_str(&text).with_context(invalid);
    }
    let mut table: toml::Table = toml::from_str(&text).with_context(invalid)?;
    table.extend(overrides);
    toml::Value::Table(table).try_into().with_context(invalid)
}

/// How long each task of a stopping daemon may take to finish before it is aborted.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Tells a daemon's tasks to stop, gives each [`SHUTDOWN_GRACE`] to finish, and aborts the
/// ones that overrun (a long-lived stream a server would otherwise wait on forever).
pub async fn stop_tasks(
    stop: &tokio::sync::watch::Sender<bool>,
    tasks: impl IntoIterator<Item = tokio::task::JoinHandle<()>>,
) {
    let _ = stop.send(true);
    for mut task in tasks {
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// A running daemon (CO, LO or EN) that can be stopped cleanly.
pub trait Daemon {
    fn shutdown(self) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs `daemon` until SIGTERM or Ctrl-C, then shuts it down.
pub async fn serve_until_terminated(daemon: impl Daemon) {
    wait_for_termination().await;
    daemon.shutdown().await;
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn wait_for_termination() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handlers install");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
}

/// Completes once `stop` holds `true` (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Turns a binary's result into its exit code, printing a failure as one readable chain
/// (`error: invalid configuration in co.toml: unknown field ...`) rather than a debug dump.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The first wait before reconnecting a dropped link; it doubles on every failure up to
/// [`RECONNECT_MAX`] and starts over once a session has stayed up for [`RECONNECT_STABLE`].
pub const RECONNECT_MIN: std::time::Duration = std::time::Duration::from_millis(200);
pub const RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(10);
pub const RECONNECT_STABLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Keeps a link up until `stop`: runs `session` again whenever it ends, waiting with
/// exponential backoff between attempts. `link` names the link in logs (`"co link"`).
pub async fn reconnect<F, Fut>(
    link: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut backoff = RECONNECT_MIN;
    loop {
        let started = std::time::Instant::now();
        tokio::select! {
            outcome = session() => match outcome {
                Ok(()) => tracing::info!("{link} closed; reconnecting"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "{link} down; retrying in {backoff:?}"),
            },
            _ = stopped(&mut stop) => return,
        }
        if started.elapsed() >= RECONNECT_STABLE {
            backoff = RECONNECT_MIN;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Config {
        name: String,
        port: u16,
        dir: String,
    }

    impl Default for Config {
        fn default() -> Self {
            Self {
                name: "default".into(),
                port: 1,
                dir: "d".into(),
            }
        }
    }

    #[derive(serde::Serialize)]
    struct Flags {
        name: Option<String>,
        port: Option<u16>,
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = std::env::temp_dir().join(format!("eos-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "name = \"file\"\nport = 2\n").unwrap();
        let flags = Flags {
            name: None,
            port: Some(3),
        };
        let c: Config = load_config_with(Some(&file), &flags).unwrap();
        assert_eq!((c.name.as_str(), c.port, c.dir.as_str()), ("file", 3, "d"));
        let c: Config = load_config_with(None, &flags).unwrap();
        assert_eq!((c.name.as_str(), c.port), ("default", 3));
        let c: Config = load_config(None).unwrap();
        assert_eq!(c, Config::default());

        std::fs::write(&file, "nmae = \"typo\"\n").unwrap();
        let e = load_config_with::<Config>(Some(&file), &flags).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("c.toml") && text.contains("nmae"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
