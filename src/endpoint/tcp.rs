//! TCP endpoint: a listener whose sockets are sized for the line rate.
//!
//! The receive buffer is set on the listening socket, before `listen`, so
//! every accepted socket inherits it and the window it advertises from the
//! first segment is small: a flooding client is stopped by TCP flow control
//! after a few hundred bytes instead of after the kernel's default of
//! hundreds of kilobytes. The send buffer is sized likewise, so a stalled
//! reader is detected by its queue in seconds, not after megabytes.
//!
//! The accept loop takes a connection permit before `accept`, bounding the
//! number of clients.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use crate::hub::Hub;

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

/// Accepts clients on `listener` until `shutdown`, running each on `tracker`.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    max_clients: usize,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(max_clients));
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = shutdown.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        // Output is forwarded as soon as it arrives; batching would only add
        // latency on a link this slow.
        let _ = stream.set_nodelay(true);
        let name = format!("tcp:{peer}");
        let handle = hub.attach(name.clone());
        let (source, sink) = stream.into_split();
        let span = info_span!("client", id = handle.id(), peer = %name);
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                super::client::run(handle, source, sink, shutdown).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}
