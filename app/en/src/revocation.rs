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
