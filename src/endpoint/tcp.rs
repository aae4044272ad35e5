//! TCP endpoint: a listener whose sockets are sized for the line rate.
//!
//! The receive buffer is set on the listening socket, before `listen`, so
//! every accepted socket inherits it and the window it advertises from the
//! first segment is small: a flooding client is stopped by TCP flow control
//! after a few hundred bytes instead of after the kernel's default of
//! hundreds of kilobytes. The send buffer is sized likewise, so a stalled
//! reader is detected by its queue in seconds, not after megabytes.

use std::net::SocketAddr;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket};

use super::accept::Accept;

/// Kernel socket buffer sizes for client sockets, in bytes as passed to
/// `setsockopt` (Linux doubles them and applies its minimum).
#[derive(Clone, Copy, Debug)]
pub struct SocketSizing {
    pub recv_buffer: usize,
    pub send_buffer: usize,
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
    #[error("cannot listen on tcp:{addr}: {reason}")]
    Bind {
        addr: SocketAddr,
        reason: std::io::Error,
    },
}

/// Binds a listener on `addr` (`HOST:PORT`) with client sockets sized by
/// `sizing`.
pub async fn bind(addr: &str, sizing: SocketSizing) -> Result<TcpListener, TcpError> {
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
    socket.listen(1024).map_err(bind_err)
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Accept for TcpListener {
    type Source = OwnedReadHalf;
    type Sink = OwnedWriteHalf;

    async fn accept(&self) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, String)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Output is forwarded as soon as it arrives; batching would only add
        // latency on a link this slow.
        let _ = stream.set_nodelay(true);
        let (source, sink) = stream.into_split();
        Ok((source, sink, format!("tcp:{peer}")))
    }
}
