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

/// What a tier holds to speak mutual TLS: its certificate and key, and the CA it trusts (PEM).
#[derive(Debug, Clone)]
pub struct Tls {
    pub certificate_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// Dials the tier above (`http://host:port`) with keepalive pings and a connect timeout; over
/// mutual TLS with `tls` (the server's certificate must be of the CA and name the host dialled).
pub async fn dial(
    endpoint: &str,
    tls: Option<&Tls>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let mut target = tonic::transport::Endpoint::from_shared(match tls {
        Some(_) => endpoint.replacen("http://", "https://", 1),
        None => endpoint.to_owned(),
    })?;
    if let Some(tls) = tls {
        let host = target
            .uri()
            .host()
            .unwrap_or("localhost")
            .trim_matches(['[', ']'])
            .to_owned();
        target = target.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem))
                .identity(tonic::transport::Identity::from_pem(
                    &tls.certificate_pem,
                    &tls.key_pem,
                ))
                .domain_name(host),
        )?;
    }
    target
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .connect()
        .await
}

/// A server builder that pings its clients the same way, so it notices a vanished tier below;
/// with `tls`, it speaks TLS and refuses a client without a certificate of the CA.
pub fn server(tls: Option<&Tls>) -> Result<tonic::transport::Server, tonic::transport::Error> {
    let builder = tonic::transport::Server::builder();
    let builder = match tls {
        None => builder,
        Some(tls) => builder.tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(
                    &tls.certificate_pem,
                    &tls.key_pem,
                ))
                .client_ca_root(tonic::transport::Certificate::from_pem(&tls.ca_pem)),
        )?,
    };
    Ok(builder
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true))
}

/// The client's certificate (DER) on a mutual TLS link; none on a plain one.
pub fn peer_certificate<T>(request: &tonic::Request<T>) -> Option<Vec<u8>> {
    let certs = request.peer_certs()?;
    certs.first().map(|c| c.as_ref().to_vec())
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
