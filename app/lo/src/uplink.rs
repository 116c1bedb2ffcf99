//! The LO end of the CO uplink: hello, device and status reports up, hints down. Reports queue
//! while the CO is away (in memory for now; the durable outbox comes with the resilience work).

use crate::site::Site;
use eos_adapter_grpc::UplinkClient;
use eos_adapter_grpc::pb::{self, co_message, lo_message};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

pub async fn run(
    site: Arc<Site>,
    endpoint: String,
    outbox: mpsc::UnboundedReceiver<lo_message::Body>,
    hints: Arc<Notify>,
    stop: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("lo", site_id = %site.id);
    // One session at a time holds the outbox; what it did not send stays queued for the next.
    let outbox = Arc::new(tokio::sync::Mutex::new(outbox));
    let sessions = eos_app_common::reconnect("co link", stop, || {
        let (site, endpoint, outbox, hints) = (
            site.clone(),
            endpoint.clone(),
            outbox.clone(),
            hints.clone(),
        );
        async move { session(&site, &endpoint, &mut *outbox.lock().await, &hints).await }
    });
    sessions.instrument(span).await
}

async fn session(
    site: &Site,
    endpoint: &str,
    outbox: &mut mpsc::UnboundedReceiver<lo_message::Body>,
    hints: &Notify,
) -> anyhow::Result<()> {
    let mut client = UplinkClient::connect(endpoint.to_owned()).await?;
    let (tx, rx) = mpsc::channel::<pb::LoMessage>(256);
    let mut seq = 0u64;
    let mut message = |body| {
        seq += 1;
        pb::LoMessage {
            seq,
            body: Some(body),
        }
    };
    tx.send(message(lo_message::Body::Hello(pb::LoHello {
        site_id: site.id.to_string(),
        version: env!("CARGO_PKG_VERSION").into(),
    })))
    .await?;
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    tracing::info!(site_id = %site.id, co = endpoint, "connected to co");
    for report in site.node_reports() {
        tx.send(message(report)).await?;
    }
    site.resend_all();
    hints.notify_one();
    loop {
        tokio::select! {
            body = outbox.recv() => match body {
                Some(body) => tx.send(message(body)).await?,
                None => return Ok(()),
            },
            incoming = inbound.message() => match incoming? {
                Some(pb::CoMessage { body: Some(co_message::Body::Hint(h)) }) => {
                    tracing::debug!(site_id = %site.id, commit = %h.commit, "hint from co");
                    hints.notify_one();
                }
                Some(_) => {}
                None => anyhow::bail!("co closed the stream"),
            },
        }
    }
}
