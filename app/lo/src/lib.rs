//! The local orchestrator of one site: fetches the site's desired state from Git (on a hint or
//! on its poll interval), keeps the last good one, places components on ENs, reconciles desired
//! against actual state, drives ENs over gRPC and reports status to the CO.

mod artifacts;
mod config;
mod inspect;
mod nodes;
mod outbox;
mod revocation;
mod site;
mod uplink;
mod watcher;

pub use config::LoConfig;
pub use site::HistoryEntry;

/// What the LO's outbox holds, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxView {
    pub id: String,
    pub last: u64,
    pub pending: usize,
}

use anyhow::Context;
use eos_adapter_git::SiteReader;
use eos_domain::ids::SiteId;
use site::Site;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Lo {
    pub listen_addr: SocketAddr,
    site: Arc<Site>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Lo {
    pub async fn start(config: LoConfig) -> anyhow::Result<Self> {
        Self::start_with_clock(config, eos_app_common::system_clock()).await
    }

    /// Starts with `clock` stamping what the LO observes (a simulated clock in tests).
    pub async fn start_with_clock(
        config: LoConfig,
        clock: Arc<dyn eos_app_common::Clock>,
    ) -> anyhow::Result<Self> {
        let site_id = SiteId::parse(&config.site_id)?;
        let tenant = eos_domain::ids::TenantId::parse(&config.tenant)?;
        eos_app_common::private_data_dir(&config.data_dir)?;
        let records = eos_adapter_localstore::RecordDir::open(config.data_dir.join("state"))?;
        let reader = SiteReader::open(
            &config.deployments_repo,
            &config.data_dir.join("mirror.git"),
            site_id.clone(),
        )
        .await?;
        let outbox = Arc::new(outbox::Outbox::open(
            &config.data_dir.join("outbox"),
            || uuid::Uuid::new_v4().to_string(),
            clock.clone(),
        )?);
        let tls = eos_adapter_pki::credentials(
            &config.tls_dir(),
            config.enrol_url.as_deref(),
            config.claim_token.as_deref(),
            &config.tls_names,
        )
        .await
        .context("cannot enrol the LO")?
        .map(|c| Arc::new(grpc_tls(c)));
        if tls.is_none() {
            tracing::warn!(tls_dir = %config.tls_dir().display(), "no certificate: the link to the CO is plain gRPC, which a CO requiring mutual TLS refuses; enrol with a claim token (--claim-token, --enrol-url)");
        }
        let grace = std::time::Duration::from_secs(config.en_grace_secs.max(1));
        let site = Arc::new(Site::open(site_id, records, outbox, grace, clock)?);
        let settled = site.clone();
        let listener = tokio::net::TcpListener::bind(&config.listen).await?;
        let listen_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let hints = Arc::new(tokio::sync::Notify::new());
        // The current certificate: a renewal replaces it for new EN connections (open ones go
        // on) and for the next uplink dial.
        let server_tls = tls
            .as_deref()
            .map(eos_adapter_grpc::ServerTls::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("cannot set up TLS for ENs: {e}"))?;
        let (tls_tx, tls_rx) = watch::channel(tls.clone());
        let relay = Arc::new(artifacts::Relay::new(
            eos_adapter_localstore::BlobStore::new(config.data_dir.join("artifacts")),
            config.co_endpoint.clone(),
            tenant.clone(),
            tls_rx.clone(),
        ));
        let mut tasks = Vec::new();
        if let (Some(server_tls), Some(url)) = (&server_tls, &config.enrol_url) {
            let server_tls = server_tls.clone();
            tasks.push(tokio::spawn(eos_adapter_pki::keep_renewed(
                config.tls_dir(),
                url.clone(),
                config.tls_names.clone(),
                std::time::Duration::from_secs(config.renew_check_secs.max(1)),
                config
                    .renew_within_secs
                    .map(|s| time::Duration::seconds(s as i64)),
                move |c| {
                    let fresh = grpc_tls(c);
                    if let Err(e) = server_tls.replace(&fresh) {
                        tracing::error!(error = %e, "the renewed certificate cannot serve ENs");
                    }
                    tls_tx.send_replace(Some(Arc::new(fresh)));
                },
                stopped.clone(),
            )));
        }
        let service = eos_adapter_grpc::NodeLinkServer::new(nodes::NodeService::new(
            site.clone(),
            relay.clone(),
            grace,
            stopped.clone(),
            server_tls.is_some(),
            &tenant,
        ));
        let router = eos_adapter_grpc::server().add_service(service);
        let mut server_stop = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move { eos_app_common::stopped(&mut server_stop).await };
            let served = match server_tls {
                Some(tls) => eos_adapter_grpc::serve_tls(router, listener, tls, shutdown).await,
                None => eos_adapter_grpc::serve(router, listener, shutdown).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "en server failed");
            }
        }));
        tasks.extend([
            tokio::spawn(watcher::run(
                site.clone(),
                relay,
                reader,
                hints.clone(),
                std::time::Duration::from_secs(config.poll_secs.max(1)),
                stopped.clone(),
            )),
            tokio::spawn(site::run_reconciler(site.clone(), stopped.clone())),
            // The first pass after the ENs had their time to rejoin.
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                settled.wake.notify_one();
            }),
            tokio::spawn(uplink::run(
                site.clone(),
                tenant,
                config.co_endpoint.clone(),
                tls_rx,
                hints,
                stopped,
            )),
        ]);
        tracing::info!(site_id = %config.site_id, %listen_addr, "local orchestrator started");
        Ok(Self {
            listen_addr,
            site,
            stop,
            tasks,
        })
    }

    /// The desired states this LO accepted, oldest first, each with the commits it skipped.
    pub fn history(&self) -> anyhow::Result<Vec<HistoryEntry>> {
        self.site.history()
    }

    /// What the LO last told the CO about each deployment on each device.
    pub fn statuses(&self) -> Vec<eos_domain::margo::DeploymentStatus> {
        self.site.statuses()
    }

    /// Every EN the LO has heard of since it started, and whether it is online.
    pub fn nodes(&self) -> Vec<(eos_domain::ids::DeviceId, bool)> {
        self.site.nodes()
    }

    /// The outbox towards the CO: its id, the highest sequence number handed out, and how many
    /// reports wait for an acknowledgement.
    pub fn outbox(&self) -> OutboxView {
        let outbox = &self.site.outbox;
        OutboxView {
            id: outbox.id.clone(),
            last: outbox.last(),
            pending: outbox.len(),
        }
    }

    pub async fn shutdown(self) {
        eos_app_common::stop_tasks(&self.stop, self.tasks).await
    }
}

impl eos_app_common::Daemon for Lo {
    async fn shutdown(self) {
        Lo::shutdown(self).await
    }
}

/// The gRPC links' view of enrolled credentials.
fn grpc_tls(c: eos_adapter_pki::Credentials) -> eos_adapter_grpc::Tls {
    eos_adapter_grpc::Tls {
        // The server the LO dials must be the CO.
        peer: eos_adapter_pki::tier_above(&c.certificate_pem),
        peer_check: None,
        certificate_pem: c.certificate_pem,
        key_pem: c.key_pem,
        ca_pem: c.ca_pem,
    }
}
