//! The CO end of the LO uplink: one gRPC stream per site, carrying hints down and fleet and
//! status reports up.

use eos_adapter_grpc::pb::{self, co_message, lo_message};
use eos_domain::ids::{DeviceId, SiteId};
use eos_domain::margo::{DeploymentStatus, DeviceCapabilities};
use eos_domain::service::{ControlPlane, SiteNotifier};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The open streams, by site; a hint goes to the site's LO when it is connected.
#[derive(Default)]
pub struct SiteSessions {
    senders: Mutex<HashMap<SiteId, mpsc::Sender<Result<pb::CoMessage, Status>>>>,
}

#[async_trait::async_trait]
impl SiteNotifier for SiteSessions {
    async fn notify(&self, site: &SiteId, commit: &str) {
        let sender = self
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(site)
            .cloned();
        let hint = pb::CoMessage {
            body: Some(co_message::Body::Hint(pb::Hint {
                commit: commit.to_owned(),
            })),
        };
        match sender {
            Some(tx) if tx.send(Ok(hint)).await.is_ok() => {
                tracing::debug!(site_id = %site, commit, "hinted lo")
            }
            _ => {
                tracing::info!(site_id = %site, "lo not connected; it will find the commit on its next poll")
            }
        }
    }
}

pub struct UplinkService {
    control: Arc<ControlPlane>,
    sessions: Arc<SiteSessions>,
}

impl UplinkService {
    pub fn new(control: Arc<ControlPlane>, sessions: Arc<SiteSessions>) -> Self {
        Self { control, sessions }
    }
}

type Outbound = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::CoMessage, Status>> + Send>>;

#[tonic::async_trait]
impl eos_adapter_grpc::Uplink for UplinkService {
    type SessionStream = Outbound;

    async fn session(
        &self,
        request: Request<Streaming<pb::LoMessage>>,
    ) -> Result<Response<Outbound>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty stream"))?;
        let Some(lo_message::Body::Hello(hello)) = first.body else {
            return Err(Status::invalid_argument("the first message must be hello"));
        };
        let site =
            SiteId::parse(&hello.site_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.control
            .site_seen(&site, true)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let (tx, rx) = mpsc::channel(64);
        self.sessions
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(site.clone(), tx.clone());
        tracing::info!(site_id = %site, "lo connected");
        let (control, sessions) = (self.control.clone(), self.sessions.clone());
        tokio::spawn(async move {
            let _ = tx.send(Ok(ack(first.seq))).await;
            while let Ok(Some(message)) = inbound.message().await {
                if let Err(e) = handle(&control, &site, message.body).await {
                    tracing::warn!(site_id = %site, error = %e, "report from lo refused");
                }
                if tx.send(Ok(ack(message.seq))).await.is_err() {
                    break;
                }
            }
            sessions
                .senders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&site);
            let _ = control.site_seen(&site, false).await;
            tracing::info!(site_id = %site, "lo disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn ack(seq: u64) -> pb::CoMessage {
    pb::CoMessage {
        body: Some(co_message::Body::Ack(seq)),
    }
}

async fn handle(
    control: &ControlPlane,
    site: &SiteId,
    body: Option<lo_message::Body>,
) -> anyhow::Result<()> {
    match body {
        Some(lo_message::Body::Device(report)) => {
            let device = DeviceId::parse(&report.device_id)?;
            anyhow::ensure!(
                device.site() == site,
                "device {device} is not of site {site}"
            );
            let caps = DeviceCapabilities::from_json(&report.capabilities_json)
                .map_err(|p| anyhow::anyhow!("capabilities of {device}: {p}"))?;
            control.device_reported(device, caps, report.online).await?;
        }
        Some(lo_message::Body::Status(report)) => {
            let status = DeploymentStatus::from_json(&report.status_json)
                .map_err(|p| anyhow::anyhow!("status: {p}"))?;
            control.status_reported(site, status).await?;
        }
        Some(lo_message::Body::Rejected(r)) => {
            tracing::warn!(site_id = %site, commit = %r.commit, problems = %r.problems, "lo refused a desired-state commit")
        }
        Some(lo_message::Body::Hello(_)) | None => {}
    }
    Ok(())
}
