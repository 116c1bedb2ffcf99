//! The central orchestrator: wires the SQL store, the deployments Git repository, the REST API and
//! the LO uplink (gRPC) around the domain's control plane.

mod config;
mod identity;
mod packages;
mod uplink;

pub use config::CoConfig;

use anyhow::Context;
use eos_adapter_git::{DeploymentsWriter, PackageFetcher};
use eos_adapter_sql::SqlStore;
use eos_app_common::Clock;
use eos_domain::service::{Ambient, ControlPlane};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The daemon's clock and random UUIDs for the domain.
struct DaemonAmbient(Arc<dyn Clock>);

impl Ambient for DaemonAmbient {
    fn now(&self) -> String {
        self.0.now_rfc3339()
    }
    fn new_uuid(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
    fn failpoint(&self, name: &str) {
        eos_app_common::failpoint(name)
    }
}

/// A running CO; dropping it does not stop it, `shutdown` does.
pub struct Co {
    pub http_addr: SocketAddr,
    /// Where the API is served over TLS too (`https_listen`).
    pub https_addr: Option<SocketAddr>,
    pub grpc_addr: SocketAddr,
    pub control: Arc<ControlPlane>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Rung by the control plane after each change; closed at shutdown to end event streams.
    bell: Arc<eos_adapter_http::Bell>,
    /// Signs and verifies the API's bearer tokens.
    pub authority: Arc<eos_adapter_http::auth::Authority>,
    /// Where the bootstrap admin token is (a platform admin's).
    pub admin_token_file: std::path::PathBuf,
}

impl Co {
    pub async fn start(config: CoConfig) -> anyhow::Result<Self> {
        Self::start_with_clock(config, eos_app_common::system_clock()).await
    }

    /// Starts with `clock` for every timestamp the CO makes (a simulated clock in tests).
    pub async fn start_with_clock(config: CoConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        eos_app_common::private_data_dir(&config.data_dir)?;
        let database_url = config
            .database_url
            .clone()
            .unwrap_or_else(|| SqlStore::sqlite_url(&config.data_dir.join("co.db")));
        let store = SqlStore::connect(&database_url)
            .await
            .with_context(|| format!("cannot open the database at {database_url}"))?;
        let remote = config.deployments_repo();
        let git = DeploymentsWriter::open(&remote, &config.data_dir.join("deployments-work"))
            .await
            .context("cannot open the deployments repository")?;
        let sessions = Arc::new(uplink::SiteSessions::default());
        let packages = packages::Packages {
            files: PackageFetcher::new(config.data_dir.join("packages")).refusing(&config.data_dir),
            registries: eos_adapter_registry::OciPackages::new(
                config.data_dir.join("packages"),
                config.registries.clone(),
                config.insecure_registries.clone(),
            ),
            artifacts: packages::Artifacts::new(config.data_dir.join("artifacts")),
        };
        let artifacts = packages.artifacts.clone();
        let authority = identity::start(&config.data_dir, &config.token_issuer)?;
        let authority = match &config.oidc {
            None => authority,
            Some(oidc) => {
                let verifier = eos_adapter_oidc::Verifier::new(oidc.clone())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                // The provider may come up after the CO: its tokens are refused until it answers.
                match verifier.refresh().await {
                    Ok(keys) => {
                        tracing::info!(issuer = %oidc.issuer, keys, "identity provider found")
                    }
                    Err(e) => tracing::warn!(error = %e, "identity provider not reachable yet"),
                }
                authority.with_external(Arc::new(identity::Oidc(verifier)))
            }
        };
        let ca = eos_adapter_pki::Authority::open_or_create(&config.data_dir.join("ca"))
            .context("cannot open the certificate authority")?;
        let grpc_tls = match config.grpc_tls {
            false => None,
            true => {
                let (certificate_pem, key_pem) = ca
                    .server_certificate(&config.grpc_tls_names, 365)
                    .context("cannot make the gRPC server's certificate")?;
                Some(eos_adapter_grpc::Tls {
                    certificate_pem,
                    key_pem,
                    ca_pem: ca.certificate_pem().to_owned(),
                    peer: None,
                    peer_check: None,
                })
            }
        };
        // The HTTPS listener's certificate: the operator's, or one of the CO's CA.
        let https_pem = match (
            &config.https_listen,
            &config.https_certificate,
            &config.https_key,
        ) {
            (None, _, _) => None,
            (Some(_), Some(cert), Some(key)) => Some((
                std::fs::read_to_string(cert)
                    .with_context(|| format!("cannot read {}", cert.display()))?,
                std::fs::read_to_string(key)
                    .with_context(|| format!("cannot read {}", key.display()))?,
            )),
            (Some(_), None, None) => Some(
                ca.server_certificate(&config.https_names, 365)
                    .context("cannot make the HTTPS listener's certificate")?,
            ),
            _ => anyhow::bail!("https_certificate and https_key go together: give both or neither"),
        };
        let authority = authority.with_ca(Arc::new(identity::Ca(ca)));
        let authority = Arc::new(authority);
        let bell = Arc::new(eos_adapter_http::Bell::default());
        let retention_clock = clock.clone();
        let control = Arc::new(
            ControlPlane::new(
                Arc::new(store),
                Arc::new(git),
                sessions.clone(),
                Arc::new(packages),
                Arc::new(DaemonAmbient(clock.clone())),
            )
            .with_bell(bell.clone())
            .with_source_hosts(config.source_hosts.clone())
            .with_artifacts(Arc::new(eos_adapter_registry::RegistryInspector::new(
                config.data_dir.join("artifact-inspection"),
                config.registries.clone(),
                config.insecure_registries.clone(),
            ))),
        );
        let admin_token_file =
            identity::bootstrap_token(&config.data_dir, &authority, &control).await?;

        let http = tokio::net::TcpListener::bind(&config.http_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_listen))?;
        let grpc = tokio::net::TcpListener::bind(&config.grpc_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.grpc_listen))?;
        let (http_addr, grpc_addr) = (http.local_addr()?, grpc.local_addr()?);
        let (stop, stopped) = watch::channel(false);
        let app = eos_adapter_http::router(control.clone(), bell.clone(), authority.clone())
            .layer(tower_http::trace::TraceLayer::new_for_http());
        let https = match &config.https_listen {
            None => None,
            Some(address) => {
                let (certificate_pem, key_pem) = https_pem.expect("made when https_listen is set");
                let tls = eos_adapter_http::tls::server_config(&certificate_pem, &key_pem)
                    .map_err(|e| anyhow::anyhow!("cannot serve HTTPS: {e}"))?;
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address}"))?;
                Some((listener, tls))
            }
        };
        let https_addr = match &https {
            Some((listener, _)) => Some(listener.local_addr()?),
            None => None,
        };
        let https_task = https.map(|(listener, tls)| {
            let (app, mut stop) = (app.clone(), stopped.clone());
            tokio::spawn(eos_adapter_http::tls::serve_https(
                listener,
                app,
                tls,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ))
        });
        let mut http_stop = stopped.clone();
        let http_task = tokio::spawn(async move {
            let serve = axum::serve(http, app).with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        let service = eos_adapter_grpc::UplinkServer::new(uplink::UplinkService::new(
            control.clone(),
            sessions,
            artifacts,
            grpc_tls.is_some(),
        ));
        let server_tls = grpc_tls
            .as_ref()
            .map(eos_adapter_grpc::ServerTls::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("cannot set up TLS on the gRPC listener: {e}"))?;
        let router = eos_adapter_grpc::server().add_service(service);
        let mut grpc_stop = stopped.clone();
        let grpc_task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            };
            let served = match server_tls {
                Some(tls) => eos_adapter_grpc::serve_tls(router, grpc, tls, shutdown).await,
                None => eos_adapter_grpc::serve(router, grpc, shutdown).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "grpc server failed");
            }
        });
        // The event log keeps `event_retention_days`: pruned now and every hour.
        let retention_days = config.event_retention_days;
        let (prune_control, prune_clock, mut prune_stop) =
            (control.clone(), retention_clock.clone(), stopped.clone());
        let prune_task = tokio::spawn(async move {
            if retention_days == 0 {
                return;
            }
            loop {
                let cutoff = eos_app_common::rfc3339(
                    prune_clock.now() - chrono::Duration::days(retention_days as i64),
                );
                match prune_control.prune_events(&cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, before = %cutoff, "event log pruned"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the event log"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                    _ = prune_stop.wait_for(|s| *s) => return,
                }
            }
        });
        // Make good what a crash may have left between the database and the repository.
        let resync_control = control.clone();
        let resync_task = tokio::spawn(async move {
            match resync_control.resync_sites().await {
                Ok(failed) => {
                    for (site, error) in failed {
                        tracing::error!(site_id = %site, %error, "cannot publish the site's desired state");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list sites to publish"),
            }
        });
        tracing::info!(%http_addr, ?https_addr, %grpc_addr, deployments_repo = %remote, "central orchestrator started");
        Ok(Self {
            http_addr,
            https_addr,
            grpc_addr,
            control,
            stop,
            tasks: [http_task, grpc_task, resync_task, prune_task]
                .into_iter()
                .chain(https_task)
                .collect(),
            bell,
            authority,
            admin_token_file,
        })
    }

    /// The bootstrap admin token (a platform admin's), as its file holds it.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(&self.admin_token_file)
            .with_context(|| format!("cannot read {}", self.admin_token_file.display()))?;
        Ok(text.trim().to_owned())
    }

    /// Stops accepting work and waits for the servers to finish.
    pub async fn shutdown(self) {
        self.bell.close();
        eos_app_common::stop_tasks(&self.stop, self.tasks).await
    }
}

impl eos_app_common::Daemon for Co {
    async fn shutdown(self) {
        Co::shutdown(self).await
    }
}
