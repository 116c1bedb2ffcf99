//! The CO end of the LO uplink: one gRPC stream per site, carrying hints and questions for ENs
//! down, and fleet and status reports and the answers up.

use eos_adapter_grpc::pb::{self, co_message, lo_message};
use eos_domain::ids::{DeviceId, SiteId, TenantId};
use eos_domain::margo::{DeploymentStatus, DeviceCapabilities};
use eos_domain::service::{
    ComponentLive, ControlPlane, DeviceUsage, LiveQuery, NumberedReport, ServiceError,
    SiteNotifier, SiteReport,
};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// How long the CO waits for an EN's answer to an inspection (the LO gives up sooner).
const INSPECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The open streams, by site; a hint goes to the site's LO when it is connected.
#[derive(Default)]
pub struct SiteSessions {
    senders: Mutex<HashMap<SiteId, mpsc::Sender<Result<pb::CoMessage, Status>>>>,
    /// Inspections sent down and not yet answered, by the site asked and a random request id:
    /// only that site's LO can answer one, and no LO can guess another's id.
    waiting: Mutex<HashMap<(SiteId, u64), tokio::sync::oneshot::Sender<pb::InspectAnswer>>>,
}

impl SiteSessions {
    fn sender(&self, site: &SiteId) -> Option<mpsc::Sender<Result<pb::CoMessage, Status>>> {
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(site)
            .cloned()
    }

    /// Hands an answer from the LO of `site` to the inspection of that site waiting for it
    /// (dropped when none waits: it came too late, or it answers what another site was asked).
    fn answered(&self, site: &SiteId, answer: pb::InspectAnswer) {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(site.clone(), answer.request_id));
        match waiting {
            Some(tx) => {
                let _ = tx.send(answer);
            }
            None => tracing::debug!(
                request_id = answer.request_id,
                "late inspection answer dropped"
            ),
        }
    }
}

#[async_trait::async_trait]
impl SiteNotifier for SiteSessions {
    async fn notify(&self, site: &SiteId, commit: &str) {
        let sender = self.sender(site);
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

    async fn revoked(&self, revocation: &eos_domain::service::Revocation) {
        let site = &revocation.site;
        let Some(tx) = self.sender(site) else {
            return; // checked when the LO connects next
        };
        match &revocation.host {
            None => {
                // The LO itself: its stream ends now with the reason, and its next hello is refused.
                self.senders
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(site);
                let _ = tx
                    .send(Err(Status::permission_denied(format!(
                        "the certificate of the LO of site {site} was revoked at {}",
                        revocation.revoked_at
                    ))))
                    .await;
                tracing::warn!(site_id = %site, "revoked lo cut off");
            }
            Some(host) => {
                let _ = tx
                    .send(Ok(revocations(std::slice::from_ref(revocation))))
                    .await;
                tracing::info!(site_id = %site, %host, "en revocation sent to the lo");
            }
        }
    }

    async fn inspect(&self, query: &LiveQuery) -> Result<Vec<ComponentLive>, String> {
        let site = query.device.site();
        let sender = self
            .sender(site)
            .ok_or_else(|| format!("the LO of site {site} is not connected"))?;
        let request_id = uuid::Uuid::new_v4().as_u64_pair().0;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((site.clone(), request_id), tx);
        let question = pb::CoMessage {
            body: Some(co_message::Body::Inspect(pb::Inspect {
                request_id,
                device_id: query.device.to_string(),
                deployment_id: query.deployment.to_string(),
                component: query.component.clone().unwrap_or_default(),
                lines: query.lines,
            })),
        };
        let forget = || {
            self.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(site.clone(), request_id))
        };
        if sender.send(Ok(question)).await.is_err() {
            forget();
            return Err(format!(
                "the LO of site {site} went away before it was asked"
            ));
        }
        let answer = tokio::time::timeout(INSPECT_TIMEOUT, rx).await;
        forget();
        match answer {
            Ok(Ok(answer)) if answer.error.is_empty() => {
                Ok(answer.components.into_iter().map(component_live).collect())
            }
            Ok(Ok(answer)) => Err(answer.error),
            Ok(Err(_)) => Err(format!(
                "the LO of site {site} went away before it answered"
            )),
            Err(_) => Err(format!(
                "no answer from site {site} within {} s",
                INSPECT_TIMEOUT.as_secs()
            )),
        }
    }
}

/// The message telling an LO of its site's revoked ENs (an LO's own revocation is not sent:
/// the LO is refused instead).
fn revocations(list: &[eos_domain::service::Revocation]) -> pb::CoMessage {
    pb::CoMessage {
        body: Some(co_message::Body::Revocations(pb::Revocations {
            items: list
                .iter()
                .filter_map(|r| {
                    Some(pb::Revoked {
                        host: r.host.clone()?,
                        revoked_at: r.revoked_at.clone(),
                    })
                })
                .collect(),
        })),
    }
}

pub struct UplinkService {
    control: Arc<ControlPlane>,
    sessions: Arc<SiteSessions>,
    /// The files packages carry, served to the LOs of the tenant that added them.
    artifacts: crate::packages::Artifacts,
    /// Whether the link is mutual TLS: an LO then speaks only for the site its certificate names.
    tls: bool,
}

impl UplinkService {
    pub fn new(
        control: Arc<ControlPlane>,
        sessions: Arc<SiteSessions>,
        artifacts: crate::packages::Artifacts,
        tls: bool,
    ) -> Self {
        Self {
            control,
            sessions,
            artifacts,
            tls,
        }
    }

    /// The tenant whose artifacts the caller of `request` may fetch: over mutual TLS, that of
    /// the LO its certificate names (a revoked LO gets none); on a plain link, which trusts
    /// every caller, the one named in the `x-eos-tenant` header, else `default`.
    async fn artifact_tenant<T>(&self, request: &Request<T>) -> Result<TenantId, Status> {
        if !self.tls {
            let named = request
                .metadata()
                .get("x-eos-tenant")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(eos_domain::ids::DEFAULT_TENANT);
            return TenantId::parse(named).map_err(|e| Status::invalid_argument(e.to_string()));
        }
        let der = eos_adapter_grpc::peer_certificate(request)
            .ok_or_else(|| Status::unauthenticated("the link needs a certificate naming an LO"))?;
        let id = eos_adapter_pki::Identity::of_certificate(&der)
            .filter(|id| id.node.is_none())
            .ok_or_else(|| Status::permission_denied("only an LO fetches artifacts from the CO"))?;
        let site = SiteId::parse(&id.site).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let revoked = self
            .control
            .site_revocations(&site)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Some(r) = revoked
            .iter()
            .find(|r| r.host.is_none() && eos_adapter_pki::revoked_by(&der, &r.revoked_at))
        {
            return Err(Status::permission_denied(format!(
                "the certificate of the LO of site {site} was revoked at {}",
                r.revoked_at
            )));
        }
        let tenant =
            TenantId::parse(&id.tenant).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The site must still be the tenant's (a deleted site's certificate reads nothing).
        self.control
            .site(&tenant, site.as_str())
            .await
            .map_err(|_| {
                Status::permission_denied(format!("site {site} is not of tenant {tenant}"))
            })?;
        Ok(tenant)
    }
}

type Outbound = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::CoMessage, Status>> + Send>>;

#[tonic::async_trait]
impl eos_adapter_grpc::Uplink for UplinkService {
    type SessionStream = Outbound;
    type ArtifactStream = eos_adapter_grpc::ArtifactStream;

    async fn artifact(
        &self,
        request: Request<pb::ArtifactRequest>,
    ) -> Result<Response<Self::ArtifactStream>, Status> {
        let tenant = self.artifact_tenant(&request).await?;
        let digest = request.into_inner().digest;
        if !eos_domain::state::is_sha256_digest(&digest) {
            return Err(Status::invalid_argument(
                "not a digest (sha256: and 64 lowercase hex digits)",
            ));
        }
        let path = self.artifacts.of(&tenant).path(&digest).ok_or_else(|| {
            Status::not_found(format!("tenant {tenant} has no artifact {digest}"))
        })?;
        tracing::debug!(%tenant, %digest, "artifact sent to an lo");
        Ok(Response::new(eos_adapter_grpc::send_artifact(path).await?))
    }

    async fn session(
        &self,
        request: Request<Streaming<pb::LoMessage>>,
    ) -> Result<Response<Outbound>, Status> {
        let peer_der = eos_adapter_grpc::peer_certificate(&request);
        let peer = peer_der
            .as_deref()
            .and_then(eos_adapter_pki::Identity::of_certificate);
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
        let claimed_tenant = match hello.tenant.as_str() {
            "" => eos_domain::ids::DEFAULT_TENANT,
            t => t,
        };
        if self.tls {
            match &peer {
                Some(id)
                    if id.node.is_none()
                        && id.site == site.as_str()
                        && id.tenant == claimed_tenant => {}
                Some(id) => {
                    tracing::warn!(%site, certificate = %id, "refused an LO speaking for another site");
                    return Err(Status::permission_denied(format!(
                        "the certificate names {id}, not the LO of site {site} (tenant {claimed_tenant})"
                    )));
                }
                None => {
                    return Err(Status::unauthenticated(
                        "the link needs a certificate naming the site's LO",
                    ));
                }
            }
        }
        if hello.outbox_id.is_empty() {
            return Err(Status::invalid_argument(
                "hello names no outbox_id; upgrade the LO",
            ));
        }
        let tenant = match hello.tenant.as_str() {
            "" => TenantId::default_tenant(),
            t => TenantId::parse(t).map_err(|e| Status::invalid_argument(e.to_string()))?,
        };
        let revoked = self
            .control
            .site_revocations(&site)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Some(der) = &peer_der
            && let Some(r) = revoked
                .iter()
                .find(|r| r.host.is_none() && eos_adapter_pki::revoked_by(der, &r.revoked_at))
        {
            return Err(Status::permission_denied(format!(
                "the certificate of the LO of site {site} was revoked at {}",
                r.revoked_at
            )));
        }
        let applied = self
            .control
            .uplink_opened(&tenant, &site, &hello.outbox_id)
            .await
            .map_err(|e| match e {
                ServiceError::Conflict(m) => Status::permission_denied(m),
                ServiceError::NotFound { .. } => Status::not_found(e.to_string()),
                e => Status::internal(e.to_string()),
            })?;
        let (tx, rx) = mpsc::channel(64);
        self.sessions
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(site.clone(), tx.clone());
        tracing::info!(site_id = %site, outbox_id = %hello.outbox_id, applied, "lo connected");
        let _ = tx.send(Ok(ack(applied))).await;
        let _ = tx.send(Ok(revocations(&revoked))).await;
        // A reader task hands messages to the applier, which takes whatever has arrived (up to
        // BATCH) in one go: one cursor write and one acknowledgement per batch.
        let (reports_tx, mut reports) = mpsc::channel::<pb::LoMessage>(BATCH);
        let (answers, answered_by) = (self.sessions.clone(), site.clone());
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                // Answers to inspections go straight to whoever asked.
                if let Some(lo_message::Body::Answer(answer)) = message.body {
                    answers.answered(&answered_by, answer);
                    continue;
                }
                if reports_tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        let (control, sessions) = (self.control.clone(), self.sessions.clone());
        tokio::spawn(async move {
            let outbox_id = hello.outbox_id;
            let mut usage_stored: Option<std::time::Instant> = None;
            while let Some(first) = reports.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match reports.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                // Heartbeats (seq 0) are contact, not reports.
                let (reports, beats): (Vec<_>, Vec<_>) = batch.into_iter().partition(|m| m.seq > 0);
                if !beats.is_empty()
                    && let Err(e) = control.site_seen(&site, true).await
                {
                    tracing::warn!(site_id = %site, error = %e, "cannot record contact with lo");
                }
                // Resource use is telemetry: the newest is stored, at most every USAGE_EVERY.
                let newest = beats.iter().rev().find_map(|m| match &m.body {
                    Some(lo_message::Body::Heartbeat(beat)) => Some(beat),
                    _ => None,
                });
                if let Some(beat) = newest
                    && usage_stored.is_none_or(|t| t.elapsed() >= USAGE_EVERY)
                {
                    usage_stored = Some(std::time::Instant::now());
                    let usage = node_usage(&site, &beat.usage);
                    if let Err(e) = control.usage_reported(&site, usage).await {
                        tracing::warn!(site_id = %site, error = %e, "cannot store resource use");
                    }
                }
                if reports.is_empty() {
                    continue;
                }
                let batch = reports
                    .into_iter()
                    .map(|m| NumberedReport {
                        seq: m.seq,
                        observed_at: observed_at(&site, &m.observed_at),
                        report: site_report(&site, m.body),
                    })
                    .collect();
                match control.apply_reports(&site, &outbox_id, batch).await {
                    Ok((upto, refused)) => {
                        for (seq, error) in refused {
                            tracing::warn!(site_id = %site, seq, %error, "report from lo refused");
                        }
                        eos_app_common::failpoint("co.reports.before_ack");
                        if tx.send(Ok(ack(upto))).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        // Nothing is acknowledged; the LO sends it all again on its next session.
                        tracing::error!(site_id = %site, error = %e, "cannot store reports; closing the stream");
                        let _ = tx.send(Err(Status::unavailable(e.to_string()))).await;
                        break;
                    }
                }
            }
            // A newer stream of the same site may have replaced this one already; leave it be.
            let current = {
                let mut senders = sessions.senders.lock().unwrap_or_else(|e| e.into_inner());
                let current = senders.get(&site).is_some_and(|s| s.same_channel(&tx));
                if current {
                    senders.remove(&site);
                }
                current
            };
            if current {
                let _ = control.site_seen(&site, false).await;
                tracing::info!(site_id = %site, "lo disconnected");
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// How often the resource use of a site's ENs is stored, at most.
const USAGE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// The resource use in an LO heartbeat; entries that do not read are left out (logged).
fn node_usage(site: &SiteId, usage: &[pb::NodeUsage]) -> Vec<(DeviceId, DeviceUsage)> {
    usage
        .iter()
        .filter_map(|u| match DeviceId::parse(&u.device_id) {
            Ok(device) => Some((
                device,
                DeviceUsage {
                    cpu_load_1m: u.cpu_load_1m,
                    memory_used_bytes: u.memory_used_bytes,
                    memory_total_bytes: u.memory_total_bytes,
                    workloads: u.workloads,
                    // Empty when unreadable: the CO's time stands in.
                    observed_at: observed_at(site, &u.observed_at).unwrap_or_default(),
                },
            )),
            Err(e) => {
                tracing::warn!(site_id = %site, device_id = %u.device_id, error = %e, "unreadable resource use from lo");
                None
            }
        })
        .collect()
}

/// Reports applied per cursor write.
const BATCH: usize = 256;

fn ack(seq: u64) -> pb::CoMessage {
    pb::CoMessage {
        body: Some(co_message::Body::Ack(seq)),
    }
}

/// The LO's time of observation, normalized; an empty or unreadable one (logged) gives way to
/// the CO's time of arrival.
fn observed_at(site: &SiteId, text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(eos_app_common::rfc3339(t.with_timezone(&chrono::Utc))),
        Err(e) => {
            tracing::warn!(site_id = %site, observed_at = text, error = %e, "unreadable report time from lo");
            None
        }
    }
}

/// Reads one message into the report the control plane applies; `None` (logged) when it cannot
/// be read, which the control plane counts as applied so it never blocks the reports behind it.
fn site_report(site: &SiteId, body: Option<lo_message::Body>) -> Option<SiteReport> {
    let report = match body? {
        lo_message::Body::Device(r) => DeviceId::parse(&r.device_id)
            .map_err(|e| e.to_string())
            .and_then(|device| {
                let capabilities = DeviceCapabilities::from_json(&r.capabilities_json)
                    .map_err(|p| format!("capabilities of {device}: {p}"))?;
                Ok(SiteReport::Device {
                    device,
                    capabilities: Box::new(capabilities),
                    online: r.online,
                })
            }),
        lo_message::Body::Status(r) => DeploymentStatus::from_json(&r.status_json)
            .map(SiteReport::Status)
            .map_err(|p| format!("status: {p}")),
        lo_message::Body::Rejected(r) => {
            tracing::warn!(site_id = %site, commit = %r.commit, problems = %r.problems, "lo refused a desired-state commit");
            Ok(SiteReport::Rejected {
                commit: r.commit,
                problems: r.problems,
            })
        }
        lo_message::Body::Skipped(r) => {
            tracing::info!(site_id = %site, from = %r.from_commit, to = %r.to_commit, skipped = ?r.skipped, "lo skipped intermediate desired states; the newest wins");
            Ok(SiteReport::Skipped {
                from_commit: r.from_commit,
                to_commit: r.to_commit,
                skipped: r.skipped,
            })
        }
        lo_message::Body::Component(r) => Ok(SiteReport::Component {
            kind: r.kind,
            device_id: r.device_id,
            deployment_id: r.deployment_id,
            component: r.component,
            message: r.message,
        }),
        lo_message::Body::Hello(_) => Err("a second hello".to_owned()),
        lo_message::Body::Heartbeat(_) => Err("a numbered heartbeat".to_owned()),
        lo_message::Body::Answer(_) => Err("a numbered inspection answer".to_owned()),
    };
    report
        .map_err(|e| tracing::warn!(site_id = %site, error = %e, "unreadable report from lo"))
        .ok()
}

fn component_live(c: pb::ComponentLive) -> ComponentLive {
    ComponentLive {
        component: c.component,
        runtime: c.runtime,
        cpu_percent: c.cpu_percent,
        memory_bytes: c.memory_bytes,
        log: c.log,
        error: (!c.error.is_empty()).then_some(c.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer counts only from the site that was asked: another site's LO, even knowing the
    /// request id, answers nothing.
    #[tokio::test]
    async fn an_answer_from_another_site_answers_nothing() {
        let sessions = Arc::new(SiteSessions::default());
        let (site_a, site_b) = (SiteId::parse("a").unwrap(), SiteId::parse("b").unwrap());
        let (tx, mut rx) = mpsc::channel(4);
        sessions.senders.lock().unwrap().insert(site_a.clone(), tx);
        let asking = {
            let sessions = sessions.clone();
            tokio::spawn(async move {
                let query = LiveQuery {
                    device: eos_domain::ids::DeviceId::parse("a/n1").unwrap(),
                    deployment: eos_domain::ids::DeploymentId::parse(
                        "00000000-0000-4000-8000-000000000000",
                    )
                    .unwrap(),
                    component: None,
                    lines: 0,
                };
                sessions.inspect(&query).await
            })
        };
        let Some(Ok(pb::CoMessage {
            body: Some(co_message::Body::Inspect(question)),
        })) = rx.recv().await
        else {
            panic!("no question sent to site a");
        };
        let answer = |error: &str| pb::InspectAnswer {
            request_id: question.request_id,
            error: error.into(),
            components: Vec::new(),
        };
        sessions.answered(&site_b, answer("forged by site b"));
        sessions.answered(&site_a, answer("from site a"));
        let got = asking.await.unwrap().unwrap_err();
        assert_eq!(got, "from site a");
    }
}
