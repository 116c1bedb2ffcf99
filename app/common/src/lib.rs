//! What every EOS binary shares: logging, configuration files and termination signals.

use anyhow::Context;

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
pub fn load_config<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display()))
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
