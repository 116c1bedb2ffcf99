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
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub certificate_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    /// The identity (SPIFFE URI) the server this tier dials must carry; none takes any
    /// certificate of the CA (a server's own configuration does not use it).
    pub peer: Option<String>,
    /// A further check of the dialled server's certificate (DER): why it is refused (an EN
    /// refuses its LO's certificates issued before the LO was revoked).
    pub peer_check: Option<PeerCheck>,
}

/// Why a dialled server's certificate (DER) is refused, or `None`.
pub type PeerCheckFn = dyn Fn(&[u8]) -> Option<String> + Send + Sync;

/// A check of a dialled server's certificate (DER): `Some(reason)` refuses it.
#[derive(Clone)]
pub struct PeerCheck(pub std::sync::Arc<PeerCheckFn>);

impl std::fmt::Debug for PeerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerCheck")
    }
}

/// Dials the tier above (`http://host:port`) with keepalive pings and a connect timeout; over
/// mutual TLS with `tls`. The server's certificate must be of the CA, name the host dialled,
/// and carry the identity `tls.peer` names (the dialler's tier above: an EN's LO is the LO of
/// its own site, an LO's CO is the CO), so another site's LO or a device posing as the CO is
/// refused in the handshake, whatever names its certificate carries.
pub async fn dial(
    endpoint: &str,
    tls: Option<&Tls>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let target = tonic::transport::Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    match tls {
        None => target.connect().await,
        Some(tls) => {
            let config = match client_config(tls) {
                Ok(config) => config,
                // A configuration that cannot be made fails the dial as tonic's own would.
                Err(why) => {
                    tracing::error!(error = %why, "cannot set up TLS to the tier above");
                    return target
                        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                            let why = why.clone();
                            async move {
                                Err::<hyper_util::rt::TokioIo<tokio::net::TcpStream>, _>(
                                    std::io::Error::other(why),
                                )
                            }
                        }))
                        .await;
                }
            };
            let connector = tokio_rustls::TlsConnector::from(config);
            target
                .connect_with_connector(tower::service_fn(move |uri: http::Uri| {
                    let connector = connector.clone();
                    async move {
                        let host = uri
                            .host()
                            .unwrap_or("localhost")
                            .trim_matches(['[', ']'])
                            .to_owned();
                        let port = uri.port_u16().unwrap_or(443);
                        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                        tcp.set_nodelay(true)?;
                        let name = rustls_pki_types::ServerName::try_from(host)
                            .map_err(std::io::Error::other)?;
                        let stream = connector.connect(name, tcp).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
        }
    }
}

/// The roots of trust in `ca_pem`: the CA every tier trusts.
fn roots_of(ca_pem: &str) -> Result<tokio_rustls::rustls::RootCertStore, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| format!("the CA certificate: {e}"))?)
            .map_err(|e| format!("the CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// The client side of mutual TLS with `tls`, checking the server's identity (`tls.peer`, a
/// SPIFFE URI) and `tls.peer_check` beside the CA and the host name.
fn client_config(tls: &Tls) -> Result<std::sync::Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = roots_of(&tls.ca_pem)?;
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("server verification: {e}"))?;
    let verifier = std::sync::Arc::new(PeerVerifier {
        inner: webpki,
        expected: tls.peer.clone(),
        check: tls.peer_check.clone(),
    });
    let chain = CertificateDer::pem_slice_iter(tls.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| format!("the key: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("the certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(std::sync::Arc::new(config))
}

/// Every URI name of the certificate `der`.
fn uris_of(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    names
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

/// The CA's and the host name's checks (webpki), then the identity the server must carry.
#[derive(Debug)]
struct PeerVerifier {
    inner: std::sync::Arc<tokio_rustls::rustls::client::WebPkiServerVerifier>,
    expected: Option<String>,
    check: Option<PeerCheck>,
}

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if let Some(expected) = &self.expected
            && !uris_of(end_entity).contains(expected)
        {
            return Err(tokio_rustls::rustls::Error::General(format!(
                "the server's certificate does not name {expected}"
            )));
        }
        if let Some(why) = self.check.as_ref().and_then(|c| (c.0)(end_entity.as_ref())) {
            return Err(tokio_rustls::rustls::Error::General(why));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server builder that pings its clients the same way, so it notices a vanished tier below.
/// For mutual TLS, serve it with [`serve_tls`].
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true)
}

/// A server's mutual TLS whose certificate can be replaced while it serves (a renewal): new
/// connections get the new one, open ones go on. Clients must show a certificate of the CA.
#[derive(Clone)]
pub struct ServerTls {
    config: std::sync::Arc<std::sync::RwLock<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>>,
}

impl ServerTls {
    pub fn new(tls: &Tls) -> Result<Self, String> {
        Ok(Self {
            config: std::sync::Arc::new(std::sync::RwLock::new(server_config(tls)?)),
        })
    }

    /// Serves with `tls` from the next connection on.
    pub fn replace(&self, tls: &Tls) -> Result<(), String> {
        let config = server_config(tls)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }
}

fn server_config(tls: &Tls) -> Result<std::sync::Arc<tokio_rustls::rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = roots_of(&tls.ca_pem)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("client verification: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(tls.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| format!("the key: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(std::sync::Arc::new(config))
}

/// Like [`serve`], speaking mutual TLS with `tls` (whose certificate may be replaced while it
/// serves). Handshakes run beside each other; one that fails is logged and dropped.
pub async fn serve_tls<F>(
    router: tonic::transport::server::Router,
    listener: tokio::net::TcpListener,
    tls: ServerTls,
    shutdown: F,
) -> Result<(), tonic::transport::Error>
where
    F: std::future::Future<Output = ()> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let accepting = tokio::spawn(async move {
        loop {
            // The server drops its end of the channel when it stops taking connections (at
            // shutdown, before open ones drain): the listener goes then, freeing the address.
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, tx) = (tls.acceptor(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "refused a TLS client"),
                    Err(_) => tracing::info!(%peer, "a TLS handshake took too long"),
                }
            });
        }
    });
    let served = router
        .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(rx), shutdown)
        .await;
    // The listener goes with the accepting task: wait until it is gone, so the address is free
    // for a restart the moment this returns.
    accepting.abort();
    let _ = accepting.await;
    served
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

/// The pieces a file is sent in over an `Artifact` call.
pub const ARTIFACT_CHUNK: usize = 256 * 1024;

/// The stream answering an `Artifact` call: the file at `path`, a piece at a time, its size
/// on the first piece.
pub type ArtifactStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::ArtifactChunk, tonic::Status>> + Send>,
>;

/// Sends the file at `path` as an [`ArtifactStream`].
pub async fn send_artifact(path: std::path::PathBuf) -> Result<ArtifactStream, tonic::Status> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| tonic::Status::internal(format!("cannot read the artifact: {e}")))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| tonic::Status::internal(format!("cannot read the artifact: {e}")))?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let mut data = vec![0u8; ARTIFACT_CHUNK];
            let n = match file.read(&mut data).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx
                        .send(Err(tonic::Status::internal(format!(
                            "reading the artifact failed: {e}"
                        ))))
                        .await;
                    return;
                }
            };
            if n == 0 && !first {
                return;
            }
            data.truncate(n);
            let chunk = pb::ArtifactChunk {
                data,
                size: if first { size } else { 0 },
            };
            first = false;
            if tx.send(Ok(chunk)).await.is_err() || n == 0 {
                return;
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Receives the answer to an `Artifact` call, handing each piece to `write`; refuses a file
/// announced or grown over `limit` bytes.
pub async fn receive_artifact(
    mut stream: tonic::Streaming<pb::ArtifactChunk>,
    limit: u64,
    mut write: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut received = 0u64;
    while let Some(chunk) = stream.message().await.map_err(|s| s.message().to_owned())? {
        if chunk.size > limit {
            return Err(format!(
                "the artifact has {} bytes; at most {limit} are taken",
                chunk.size
            ));
        }
        received += chunk.data.len() as u64;
        if received > limit {
            return Err(format!("the artifact is over {limit} bytes"));
        }
        write(&chunk.data)?;
    }
    Ok(())
}
