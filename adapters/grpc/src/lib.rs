//! The gRPC links between tiers (LO → CO `Uplink`, EN → LO `NodeLink`): the generated code of the
//! one proto schema, and helpers to carry domain types across it.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    //! Code generated from `proto/eos.proto`.
    tonic::include_proto!("eos.v1");
}

pub use pb::node_link_client::NodeLinkClient;
pub use pb::node_link_server::{NodeLink, NodeLinkServer};
pub use pb::uplink_client::UplinkClient;
pub use pb::uplink_server::{Uplink, UplinkServer};

use eos_domain::state::ComponentSpec;

/// Why a message from the other tier could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what} on the gRPC link: {reason}")]
pub struct WireError {
    pub what: &'static str,
    pub reason: String,
}

pub fn spec_to_json(spec: &ComponentSpec) -> String {
    serde_json::to_string(spec).expect("a component spec always serializes")
}

pub fn spec_from_json(text: &str) -> Result<ComponentSpec, WireError> {
    serde_json::from_str(text).map_err(|e| WireError {
        what: "component spec",
        reason: e.to_string(),
    })
}

/// How often an idle link is probed with HTTP/2 pings, and how long a ping may go unanswered
/// before the link counts as dead. A link whose packets vanish (a partition with no reset) would
/// otherwise look alive for as long as the kernel keeps the connection.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Dials the tier above (`http://host:port`) with keepalive pings and a connect timeout.
pub async fn dial(endpoint: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .connect()
        .await
}

/// A server builder that pings its clients the same way, so it notices a vanished tier below.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true)
}

/// Binds a loopback or public address and serves until `shutdown` completes.
pub async fn serve<F>(
    router: tonic::transport::server::Router,
    listener: tokio::net::TcpListener,
    shutdown: F,
) -> Result<(), tonic::transport::Error>
where
    F: std::future::Future<Output = ()> + Send,
{
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
