//! One connected client, whatever endpoint it came through.
//!
//! A client runs two directions at once:
//! - *to the device*: wait until the client has data, take write budget from
//!   the hub, then read at most that much and submit it. Waiting for budget
//!   *before* reading leaves unsent data in the kernel's socket buffer, whose
//!   full window stops the sender: that is the backpressure.
//! - *to the client*: write every chunk the hub queued for it.
//!
//! The client ends when the hub kicks it (slow reader), when serialhub shuts
//! down, on an I/O error, or shortly after the client closes its sending side
//! (it keeps receiving for [`LINGER`], so replies to its last request arrive).

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::hub::ClientHandle;

/// How long a client that has closed its sending side still receives.
pub const LINGER: Duration = Duration::from_secs(1);

/// The receiving half of a client connection, read without blocking so that
/// budget is taken only once data is ready.
pub trait ClientSource {
    /// Waits until a read may succeed. Cancel safe.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads without waiting; `WouldBlock` if readiness was spurious.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl ClientSource for tokio::net::tcp::OwnedReadHalf {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        tokio::net::tcp::OwnedReadHalf::readable(self)
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::net::tcp::OwnedReadHalf::try_read(self, buf)
    }
}

/// Why a client ended.
#[derive(Debug)]
enum End {
    Closed,
    Kicked,
    Shutdown,
    Hub,
    Error(io::Error),
}

/// Runs one client until it ends, then detaches it from the hub.
pub async fn run<S, W>(handle: ClientHandle, source: S, mut sink: W, shutdown: CancellationToken)
where
    S: ClientSource,
    W: AsyncWrite + Unpin,
{
    info!("client connected");
    let kicked = handle.kicked().clone();
    let end = {
        let to_device = to_device(&handle, &source);
        let to_client = to_client(&handle, &mut sink);
        tokio::pin!(to_device, to_client);
        tokio::select! {
            r = &mut to_device => match r {
                // Half-closed: keep delivering for a moment, then close.
                Ok(()) => {
                    let _ = tokio::time::timeout(LINGER, &mut to_client).await;
                    End::Closed
                }
                Err(e) => e,
            },
            e = &mut to_client => e,
            () = kicked.cancelled() => End::Kicked,
            () = shutdown.cancelled() => End::Shutdown,
        }
    };
    let _ = sink.shutdown().await;
    let s = handle.stats();
    let (rx, tx, dropped) = (
        s.to_client.load(Relaxed),
        s.from_client.load(Relaxed),
        s.dropped.load(Relaxed),
    );
    match end {
        End::Error(e) => info!(error = %e, rx, tx, dropped, "client disconnected"),
        other => info!(reason = ?other, rx, tx, dropped, "client disconnected"),
    }
}

/// Moves the client's bytes into the hub. `Ok` on end of input.
async fn to_device(handle: &ClientHandle, source: &impl ClientSource) -> Result<(), End> {
    loop {
        source.readable().await.map_err(End::Error)?;
        let permit = handle.reserve().await.map_err(|_| End::Hub)?;
        let mut buf = vec![0u8; permit.num_permits()];
        match source.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                buf.truncate(n);
                handle
                    .submit(Bytes::from(buf), permit)
                    .await
                    .map_err(|_| End::Hub)?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(End::Error(e)),
        }
    }
}

/// Writes the hub's chunks to the client until it is kicked or fails.
async fn to_client(handle: &ClientHandle, sink: &mut (impl AsyncWrite + Unpin)) -> End {
    while let Some(chunk) = handle.next_output().await {
        if let Err(e) = sink.write_all(&chunk).await {
            return End::Error(e);
        }
    }
    End::Kicked
}
