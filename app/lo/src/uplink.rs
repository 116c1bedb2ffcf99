//! The LO end of the CO uplink: hello, then the durable outbox's reports up and hints,
//! acknowledgements and inspections (passed on to ENs, answered up) down. Reports wait in the outbox while the CO is away and are released only
//! when the CO acknowledges them, so a cut link or a restart of either side loses none.

use crate::outbox::Outbox;
use crate::site::Site;
use eos_adapter_grpc::UplinkClient;
use eos_adapter_grpc::pb::{self, co_message, lo_message};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

/// How often the LO tells the CO it is there (the CO's time of last contact).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports sent per wake-up before looking at the CO's answers again.
const CHUNK: usize = 512;

pub async fn run(
    site: Arc<Site>,
    tenant: eos_domain::ids::TenantId,
    endpoint: String,
    tls: watch::Receiver<Option<Arc<eos_adapter_grpc::Tls>>>,
    hints: Arc<Notify>,
    stop: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("lo", site_id = %site.id);
    let sessions = eos_app_common::reconnect("co link", stop, || {
        session(
            site.clone(),
            tenant.clone(),
            endpoint.clone(),
            tls.borrow().clone(),
            hints.clone(),
        )
    });
    sessions.instrument(span).await
}

async fn session(
    site: Arc<Site>,
    tenant: eos_domain::ids::TenantId,
    endpoint: String,
    tls: Option<Arc<eos_adapter_grpc::Tls>>,
    hints: Arc<Notify>,
) -> anyhow::Result<()> {
    let outbox: &Outbox = &site.outbox;
    let mut client = UplinkClient::new(eos_adapter_grpc::dial(&endpoint, tls.as_deref()).await?);
    let (tx, rx) = mpsc::channel::<pb::LoMessage>(CHUNK);
    tx.send(pb::LoMessage {
        seq: 0,
        body: Some(lo_message::Body::Hello(pb::LoHello {
            site_id: site.id.to_string(),
            version: env!("CARGO_PKG_VERSION").into(),
            outbox_id: outbox.id.clone(),
            tenant: tenant.to_string(),
        })),
        observed_at: String::new(),
    })
    .await?;
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    // The CO answers with what it already holds of this outbox: that is released, the rest goes
    // (again) in order.
    match inbound.message().await? {
        Some(pb::CoMessage {
            body: Some(co_message::Body::Ack(seq)),
        }) => outbox.ack(seq),
        other => anyhow::bail!("the co did not answer hello with an acknowledgement: {other:?}"),
    }
    let mut sent = outbox.acked();
    tracing::info!(co = endpoint, pending = outbox.len(), "connected to co");
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    hints.notify_one();
    outbox.ready.notify_one();
    loop {
        tokio::select! {
            _ = outbox.ready.notified() => {
                let entries = outbox.after(sent, CHUNK);
                for entry in &entries {
                    tx.send(entry.payload.to_message(entry.seq)).await?;
                    sent = entry.seq;
                }
                if entries.len() == CHUNK {
                    outbox.ready.notify_one();
                }
            }
            _ = heartbeat.tick() => {
                let beat = pb::LoHeartbeat {
                    pending: outbox.len() as u64,
                    ens_online: site.online_nodes() as u32,
                    usage: site.usage(),
                };
                tx.send(pb::LoMessage { seq: 0, body: Some(lo_message::Body::Heartbeat(beat)), observed_at: String::new() }).await?;
            }
            incoming = inbound.message() => match incoming? {
                Some(pb::CoMessage { body: Some(co_message::Body::Ack(seq)) }) => {
                    eos_app_common::failpoint("lo.uplink.before_ack");
                    outbox.ack(seq);
                    sent = sent.max(seq);
                }
                Some(pb::CoMessage { body: Some(co_message::Body::Hint(h)) }) => {
                    tracing::debug!(commit = %h.commit, "hint from co");
                    hints.notify_one();
                }
                Some(pb::CoMessage { body: Some(co_message::Body::Inspect(question)) }) => {
                    // Answered beside the reports: a slow EN holds up nothing else.
                    let (site, tx) = (site.clone(), tx.clone());
                    tokio::spawn(async move {
                        let answer = site.inspections.ask(&site, question).await;
                        let message = pb::LoMessage { seq: 0, body: Some(lo_message::Body::Answer(answer)), observed_at: String::new() };
                        let _ = tx.send(message).await;
                    });
                }
                Some(pb::CoMessage { body: Some(co_message::Body::Revocations(list)) }) => {
                    site.revocations.apply(&site, list).await;
                }
                Some(_) => {}
                None => anyhow::bail!("co closed the stream"),
            },
        }
    }
}
