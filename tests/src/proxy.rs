//! A fault-injection TCP proxy to put between two tiers: it forwards bytes both ways until told
//! to cut every connection (and refuse new ones), to swallow bytes without closing anything (a
//! partition that sends no reset), or to delay each chunk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Close every connection and every new one at once: both sides see the link drop.
    Cut,
    /// Keep connections open but forward nothing: both sides see silence.
    Blackhole,
    /// Forward each chunk after this delay.
    Delay(Duration),
}

pub struct FaultProxy {
    /// Where to connect instead of the target.
    pub addr: SocketAddr,
    fault: Arc<watch::Sender<Fault>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let fault = Arc::new(watch::channel(Fault::Pass).0);
        let shared = fault.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let fault = shared.subscribe();
                if *fault.borrow() == Fault::Cut {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (a_read, a_write) = inbound.into_split();
                    let (b_read, b_write) = outbound.into_split();
                    tokio::select! {
                        _ = pump(a_read, b_write, fault.clone()) => {}
                        _ = pump(b_read, a_write, fault) => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            fault,
            accept,
        })
    }

    /// Changes what happens to traffic from now on.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.set(Fault::Cut);
        self.accept.abort();
    }
}

/// Copies one direction until either end closes or the proxy cuts the link.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = fault.changed() => {
                if changed.is_err() || *fault.borrow() == Fault::Cut {
                    return;
                }
                continue;
            }
        };
        let current = *fault.borrow();
        match current {
            Fault::Cut => return,
            Fault::Blackhole => continue,
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Pass => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(limit, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf.to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn pass_blackhole_cut_and_heal() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(
            round_trip(&mut s, Duration::from_secs(5)).await.unwrap(),
            b"ping"
        );

        proxy.set(Fault::Blackhole);
        assert_eq!(
            round_trip(&mut s, Duration::from_millis(300)).await,
            None,
            "silence"
        );

        proxy.set(Fault::Cut);
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the connection is closed: {read:?}"
        );
        let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut refused, Duration::from_secs(5)).await, None);

        proxy.set(Fault::Pass);
        let mut healed = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(
            round_trip(&mut healed, Duration::from_secs(5))
                .await
                .unwrap(),
            b"ping"
        );
    }
}
