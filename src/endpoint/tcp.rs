//! TCP endpoint: a listener whose sockets are sized for the line rate.
//!
//! The receive buffer is set on the listening socket, before `listen`, so
//! every accepted socket inherits it and the window it advertises from the
//! first segment is small: a flooding client is stopped by TCP flow control
//! after a few hundred bytes instead of after the kernel's default of
//! hundreds of kilobytes. The send buffer is sized likewise, so a stalled
//! reader is detected by its queue in seconds, not after megabytes.
//!
//! Every accepted socket gets TCP keepalive (the endpoint's `keepalive`
//! option), so a peer that vanished without a FIN (unplugged, powered off,
//! behind a NAT that forgot it) is found and its client freed in about a
//! minute rather than the kernel's two hours and more.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket};
use tracing::warn;

use super::accept::{Accept, Peer};

/// Kernel socket buffer sizes for client sockets, in bytes as passed to
/// `setsockopt` (Linux doubles them and applies its minimum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketSizing {
    pub(crate) recv_buffer: usize,
    pub(crate) send_buffer: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("cannot resolve {addr}: {reason}")]
    Resolve {
        addr: String,
        reason: std::io::Error,
    },
    #[error("{addr} resolves to no address")]
    NoAddress { addr: String },
    #[error("cannot listen on {kind}:{addr}: {reason}{}", in_use_hint(.reason))]
    Bind {
        /// The endpoint's kind as written: `tcp`, `rfc2217`, `modbus-tcp`.
        kind: &'static str,
        addr: SocketAddr,
        reason: std::io::Error,
    },
}

/// What to do about an address another socket holds.
pub(crate) fn in_use_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        "; another program listens there: stop it, or choose another port"
    } else {
        ""
    }
}

/// Keepalive probes sent, unanswered, before a peer is declared gone.
pub(crate) const KEEPALIVE_PROBES: u32 = 3;

/// The kernel keepalive settings for an idle time: probes start after
/// `idle` without traffic and go every `idle / 3` (at least 1 s), so a
/// vanished peer is dropped about `idle + 3 * interval` after it last sent
/// anything: 60 s with the default 30 s.
pub(crate) fn keepalive_params(idle: Duration) -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(idle)
        .with_interval(keepalive_interval(idle))
        .with_retries(KEEPALIVE_PROBES)
}

fn keepalive_interval(idle: Duration) -> Duration {
    // Whole seconds, as the kernel takes them.
    Duration::from_secs((idle.as_secs() / 3).max(1))
}

/// A TCP listener and what each of its accepted sockets is given.
#[derive(Debug)]
pub(crate) struct TcpEndpoint {
    listener: TcpListener,
    /// Idle time before keepalive probes; `None` (`keepalive=off`) sends none.
    keepalive: Option<Duration>,
}

impl TcpEndpoint {
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl AsFd for TcpEndpoint {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

/// Binds a listener on `addr` (`HOST:PORT`) with client sockets sized by
/// `sizing` and probed after `keepalive` idle (none if `None`). `kind` is
/// the endpoint's kind (`tcp`, `rfc2217`, `modbus-tcp`), for errors.
pub(crate) async fn bind(
    kind: &'static str,
    addr: &str,
    sizing: SocketSizing,
    keepalive: Option<Duration>,
) -> Result<TcpEndpoint, TcpError> {
    let resolved = tokio::net::lookup_host(addr)
        .await
        .map_err(|reason| TcpError::Resolve {
            addr: addr.to_owned(),
            reason,
        })?
        .next()
        .ok_or_else(|| TcpError::NoAddress {
            addr: addr.to_owned(),
        })?;
    let bind_err = |reason| TcpError::Bind {
        kind,
        addr: resolved,
        reason,
    };
    let socket = if resolved.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind_err)?;
    socket.set_reuseaddr(true).map_err(bind_err)?;
    socket
        .set_recv_buffer_size(clamp_u32(sizing.recv_buffer))
        .map_err(bind_err)?;
    socket
        .set_send_buffer_size(clamp_u32(sizing.send_buffer))
        .map_err(bind_err)?;
    socket.bind(resolved).map_err(bind_err)?;
    let listener = socket.listen(1024).map_err(bind_err)?;
    Ok(TcpEndpoint {
        listener,
        keepalive,
    })
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Accept for TcpEndpoint {
    type Source = OwnedReadHalf;
    type Sink = OwnedWriteHalf;

    async fn accept(&self) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, Peer)> {
        let (stream, peer) = self.listener.accept().await?;
        // Output is forwarded as soon as it arrives; batching would only add
        // latency on a link this slow.
        let _ = stream.set_nodelay(true);
        // Set on each accepted socket rather than inherited from the
        // listener, which Linux does but not every system. A failure costs
        // only the early detection, so the client is served anyway.
        if let Some(idle) = self.keepalive
            && let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&keepalive_params(idle))
        {
            warn!(%peer, "cannot enable TCP keepalive: {e}");
        }
        let (source, sink) = stream.into_split();
        Ok((
            source,
            sink,
            Peer {
                name: format!("tcp:{peer}"),
                ip: Some(peer.ip()),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZING: SocketSizing = SocketSizing {
        recv_buffer: 4096,
        send_buffer: 4096,
    };

    /// Accepts one client on an endpoint bound with `keepalive` and returns
    /// the server side's socket options as the kernel reports them.
    async fn accepted_keepalive(keepalive: Option<Duration>) -> (bool, Duration, Duration, u32) {
        let endpoint = bind("tcp", "127.0.0.1:0", SIZING, keepalive).await.unwrap();
        let addr = endpoint.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (source, _sink, peer) = Accept::accept(&endpoint).await.unwrap();
        assert!(peer.name.starts_with("tcp:127.0.0.1:"), "{peer:?}");
        assert_eq!(peer.ip, Some(std::net::Ipv4Addr::LOCALHOST.into()));
        let sock = SockRef::from(source.as_ref());
        (
            sock.keepalive().unwrap(),
            sock.tcp_keepalive_time().unwrap(),
            sock.tcp_keepalive_interval().unwrap(),
            sock.tcp_keepalive_retries().unwrap(),
        )
    }

    #[tokio::test]
    async fn accepted_sockets_get_the_keepalive_settings() {
        let (on, idle, interval, probes) = accepted_keepalive(Some(Duration::from_secs(30))).await;
        assert!(on);
        assert_eq!(idle, Duration::from_secs(30));
        assert_eq!(interval, Duration::from_secs(10));
        assert_eq!(probes, KEEPALIVE_PROBES);
        let (on, idle, interval, _) = accepted_keepalive(Some(Duration::from_secs(2))).await;
        assert!(on);
        assert_eq!(idle, Duration::from_secs(2));
        assert_eq!(interval, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn keepalive_off_leaves_it_off() {
        let (on, ..) = accepted_keepalive(None).await;
        assert!(!on);
    }

    #[test]
    fn probe_interval_is_a_third_of_idle_and_at_least_a_second() {
        assert_eq!(
            keepalive_interval(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            keepalive_interval(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            keepalive_interval(Duration::from_secs(7200)),
            Duration::from_secs(2400)
        );
    }
}
