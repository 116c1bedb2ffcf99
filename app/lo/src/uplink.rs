//! The LO end of the CO uplink: hello, device and status reports up, hints down. Reports queue
//! while the CO is away (in memory for now; the durable outbox comes with the resilience work).

use crate::site::Site;
use eos_adapter_grpc::UplinkClient;
use eos_adapter_grpc::pb::{self, co_message, lo_message};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

pub async fn run(
    site: Arc<Site>,
    endpoint: String,
    mut outbox: mpsc::UnboundedReceiver<lo_message::Body>,
    hints: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            outcome = session(&site, &endpoint, &mut outbox, &hints) => {
                if let Err(e) = outcome {
                    tracing::warn!(site_id = %site.id, error = %e, "co link down; retrying in {backoff:?}");
                }
            }
            _ = eos_app_common::stopped(&mut stop) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = eos_app_common::stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
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
