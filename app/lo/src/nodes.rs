//! The LO end of the EN link: hello registers the node and its running components, results
//! update actual state; the end of the stream, or silence longer than the grace period, marks
//! the node offline.

use crate::outbox::Report;
use crate::site::{Crashed, Site};
use eos_adapter_grpc::pb::{self, en_message};
use eos_domain::ids::{DeploymentId, DeviceId};
use eos_domain::margo::DeviceCapabilities;
use eos_domain::state::{AppInstance, DeviceWorkloads};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub struct NodeService {
    site: Arc<Site>,
    /// The files packages carry, for the site's ENs.
    relay: Arc<crate::artifacts::Relay>,
    grace: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Whether the link is mutual TLS: an EN then speaks only as the node its certificate names.
    tls: bool,
    /// The site's tenant: an EN whose certificate names another tenant is refused.
    tenant: String,
}

impl NodeService {
    /// Serves ENs until `stop`, when every EN stream is ended (so ENs notice at once and dial
    /// again, rather than talking to a server that is going away).
    pub fn new(
        site: Arc<Site>,
        relay: Arc<crate::artifacts::Relay>,
        grace: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
        tls: bool,
        tenant: &eos_domain::ids::TenantId,
    ) -> Self {
        Self {
            site,
            relay,
            grace,
            stop,
            tls,
            tenant: tenant.to_string(),
        }
    }
}

type Commands = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::LoCommand, Status>> + Send>>;

#[tonic::async_trait]
impl eos_adapter_grpc::NodeLink for NodeService {
    type SessionStream = Commands;
    type ArtifactStream = eos_adapter_grpc::ArtifactStream;

    async fn artifact(
        &self,
        request: Request<pb::ArtifactRequest>,
    ) -> Result<Response<Self::ArtifactStream>, Status> {
        if self.tls {
            let der = eos_adapter_grpc::peer_certificate(&request).ok_or_else(|| {
                Status::unauthenticated("the link needs a certificate naming an EN")
            })?;
            let id = eos_adapter_pki::Identity::of_certificate(&der)
                .filter(|id| id.tenant == self.tenant && id.site == self.site.id.as_str())
                .ok_or_else(|| {
                    Status::permission_denied("only an EN of this site fetches artifacts here")
                })?;
            let host = id.node.as_deref().ok_or_else(|| {
                Status::permission_denied("only an EN of this site fetches artifacts here")
            })?;
            if let Some(at) = self.site.revocations.refuses(host, &der) {
                return Err(Status::permission_denied(format!(
                    "the certificate of EN {}/{host} was revoked at {at}",
                    self.site.id
                )));
            }
        }
        let digest = request.into_inner().digest;
        // Only what the site's desired state names: an EN cannot make the LO fetch, or
        // hand out, anything else of the tenant.
        if !self.site.desired_artifacts().contains(&digest) {
            return Err(Status::not_found(
                "the site's desired state names no such artifact",
            ));
        }
        let path = self
            .relay
            .get(&digest)
            .await
            .map_err(|why| Status::unavailable(format!("artifact {digest}: {why}")))?;
        Ok(Response::new(eos_adapter_grpc::send_artifact(path).await?))
    }

    async fn session(
        &self,
        request: Request<Streaming<pb::EnMessage>>,
    ) -> Result<Response<Commands>, Status> {
        let peer_der = eos_adapter_grpc::peer_certificate(&request);
        let peer = peer_der
            .as_deref()
            .and_then(eos_adapter_pki::Identity::of_certificate);
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty stream"))?;
        let Some(en_message::Body::Hello(hello)) = first.body else {
            return Err(Status::invalid_argument("the first message must be hello"));
        };
        let device = DeviceId::parse(&hello.device_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if device.site() != &self.site.id {
            return Err(Status::permission_denied(format!(
                "device {device} is not of site {}",
                self.site.id
            )));
        }
        if self.tls {
            match &peer {
                Some(id)
                    if id.tenant == self.tenant
                        && id.site == self.site.id.as_str()
                        && id.node.as_deref() == Some(device.host().as_str()) =>
                {
                    if let Some(der) = &peer_der
                        && let Some(at) = self.site.revocations.refuses(device.host().as_str(), der)
                    {
                        return Err(Status::permission_denied(format!(
                            "the certificate of EN {device} was revoked at {at}"
                        )));
                    }
                }
                Some(id) => {
                    tracing::warn!(%device, certificate = %id, "refused an EN speaking for another node");
                    return Err(Status::permission_denied(format!(
                        "the certificate names {id}, not EN {device}"
                    )));
                }
                None => {
                    return Err(Status::unauthenticated(
                        "the link needs a certificate naming the EN",
                    ));
                }
            }
        }
        let caps = DeviceCapabilities::from_json(&hello.capabilities_json)
            .map_err(|p| Status::invalid_argument(format!("capabilities: {p}")))?;
        let (running, crashed) = running_workloads(&hello.running)?;
        let (tx, rx) = mpsc::channel(256);
        self.site
            .node_joined(device.clone(), caps, running, crashed, tx.clone());
        tracing::info!(device_id = %device, "en joined");
        for r in hello.running.iter().filter(|r| r.unreported_crashes > 0) {
            let component = eos_adapter_grpc::spec_from_json(&r.spec_json)
                .map(|s| s.name)
                .unwrap_or_default();
            self.site.send_up(Report::Component {
                kind: eos_domain::service::event_kind::COMPONENT_CRASHED.into(),
                device_id: device.to_string(),
                deployment_id: r.deployment_id.clone(),
                component,
                message: format!(
                    "crashed {} time(s) while its EN could not reach the LO; the last: {}",
                    r.unreported_crashes, r.last_crash
                ),
            });
        }
        let (site, grace, mut stop) = (self.site.clone(), self.grace, self.stop.clone());
        tokio::spawn(async move {
            let why = loop {
                let message = tokio::select! {
                    message = tokio::time::timeout(grace, inbound.message()) => message,
                    _ = eos_app_common::stopped(&mut stop) => {
                        // Ends the EN's stream so it dials again at once. The EN is not offline,
                        // so no report goes up: while the LO is away the CO shows the site
                        // disconnected instead.
                        site.node_left(&device, &tx, false);
                        return;
                    }
                };
                match message {
                    Ok(Ok(Some(message))) => match message.body {
                        Some(en_message::Body::Result(result)) => site.result(&device, result),
                        Some(en_message::Body::Observed(seen)) => site.observed(&device, seen),
                        Some(en_message::Body::Heartbeat(beat)) => site.heartbeat(&device, &beat),
                        Some(en_message::Body::Answer(answer)) => {
                            site.inspections.answered(&device, answer)
                        }
                        Some(en_message::Body::Capabilities(changed)) => {
                            match DeviceCapabilities::from_json(&changed.capabilities_json) {
                                Ok(caps) => site.capabilities_changed(&device, &tx, caps),
                                Err(p) => {
                                    tracing::warn!(device_id = %device, problem = %p, "ignored capabilities the EN sent")
                                }
                            }
                        }
                        _ => {}
                    },
                    Ok(Ok(None)) => break "stream closed".to_owned(),
                    Ok(Err(status)) => break format!("stream failed: {}", status.message()),
                    Err(_) => break format!("silent for {grace:?}"),
                }
            };
            if site.node_left(&device, &tx, true) {
                tracing::info!(device_id = %device, reason = %why, "en offline");
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// What an EN says it runs becomes the LO's actual state for it; components it is restarting
/// after a crash come back separately, with the reason.
fn running_workloads(
    running: &[pb::RunningComponent],
) -> Result<(DeviceWorkloads, Crashed), Status> {
    let mut out = DeviceWorkloads::new();
    let mut crashed = Vec::new();
    for r in running
        .iter()
        .filter(|r| r.state == "installed" || r.state == "failed")
    {
        let id = DeploymentId::parse(&r.deployment_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let spec = eos_adapter_grpc::spec_from_json(&r.spec_json)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if r.state == "failed" {
            crashed.push((id.clone(), spec.name.clone(), r.error.clone()));
        }
        out.entry(id)
            .or_insert_with(|| AppInstance {
                app_id: String::new(),
                components: Vec::new(),
            })
            .components
            .push(spec);
    }
    Ok((out, crashed))
}
