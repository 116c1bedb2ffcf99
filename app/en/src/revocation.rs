//! Whether the site's LO was revoked: an enrolled EN asks the CO every
//! `revocation_check_secs` (with its certificate and a proof of its key), and once the CO says
//! the LO was revoked, the EN ends its session with it and refuses, when it dials, every LO
//! certificate issued until then. Its workloads run on; it takes commands again from an LO
//! that enrolled anew.

use crate::link::Agent;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long the check at start waits for the CO.
const AT_START_WITHIN: Duration = Duration::from_secs(5);

/// One question to the CO, within [`AT_START_WITHIN`].
pub async fn check_once(agent: &Agent, tls_dir: &std::path::Path, enrol_url: &str) {
    match tokio::time::timeout(
        AT_START_WITHIN,
        eos_adapter_pki::lo_revoked_at(tls_dir, enrol_url),
    )
    .await
    {
        Ok(Ok(Some(at))) => agent.lo_revoked(at),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::info!(error = %e, "cannot ask the CO about the LO's revocation yet"),
        Err(_) => tracing::info!("the CO did not say in time whether the LO was revoked"),
    }
}

pub async fn watch(
    agent: Arc<Agent>,
    tls_dir: PathBuf,
    enrol_url: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match eos_adapter_pki::lo_revoked_at(&tls_dir, &enrol_url).await {
            Ok(Some(at)) => agent.lo_revoked(at),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "cannot ask the CO about the LO's revocation"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
