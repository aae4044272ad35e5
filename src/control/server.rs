//! The control socket's server: reads a request, hands it to the daemon task,
//! writes its answer.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{MAX_REQUEST, Request, Response};
use crate::endpoint::unix::{UnixEndpoint, UnixError};

/// A request on its way to the daemon task, with where to send the answer.
pub type Asked = (Request, oneshot::Sender<Response>);

/// Requests waiting for the daemon task. Control clients are people and
/// scripts, one at a time; a few in flight is plenty.
pub const QUEUE: usize = 8;

/// The bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket(UnixEndpoint);

impl ControlSocket {
    /// Binds `path` with `mode`; a stale socket is replaced, a live one (or
    /// any other file) is an error.
    pub fn bind(path: &Path, mode: u32) -> Result<ControlSocket, UnixError> {
        UnixEndpoint::bind(path, mode).map(ControlSocket)
    }

    /// Serves requests until `shutdown`, sending each to `daemon`.
    pub async fn serve(self, daemon: mpsc::Sender<Asked>, shutdown: CancellationToken) {
        loop {
            let stream = tokio::select! {
                r = self.0.accept_stream() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "control socket: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => return,
            };
            // One at a time: requests are quick, and this bounds the work a
            // local client can cause.
            if let Err(e) = answer(stream, &daemon).await {
                debug!(error = %e, "control client");
            }
        }
    }
}

async fn answer(stream: UnixStream, daemon: &mpsc::Sender<Asked>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_until(b'\n', &mut line),
    )
    .await;
    let response = match read {
        Err(_) => Response::error("no request within 5s"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if !line.ends_with(b"\n") && line.len() >= MAX_REQUEST => {
            Response::error(format!("request longer than {MAX_REQUEST} bytes"))
        }
        Ok(Ok(_)) => match serde_json::from_slice::<Request>(&line) {
            Err(e) => Response::error(format!("bad request: {e}")),
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                match daemon.send((request, tx)).await {
                    Ok(()) => rx
                        .await
                        .unwrap_or_else(|_| Response::error("the daemon is shutting down")),
                    Err(_) => Response::error("the daemon is shutting down"),
                }
            }
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}
