//! The control socket's server: reads a request, hands it to the daemon task,
//! writes its answer.
//!
//! Connections are served at once, each in its own task, at most
//! [`MAX_CONNECTIONS`] of them; past that, the oldest connection that has not
//! yet sent its request is closed to admit the new one ([`super::admit`]).
//! So no number of idle or slow peers delays a well-behaved `status`. Each
//! has [`REQUEST_TIMEOUT`] to send its line. A request that is too long, or
//! has bytes after its line, gets an error answer; unread input is drained
//! before the close, since closing a socket with unread input resets it and
//! the client would lose the answer.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::admit::{Admission, Ticket};
use super::{MAX_REQUEST, Request, Response};
use crate::endpoint::unix::{UnixEndpoint, UnixError};

/// A request on its way to the daemon task, with where to send the answer.
pub(crate) type Asked = (Request, oneshot::Sender<Response>);

/// Requests waiting for the daemon task. Control clients are people and
/// scripts, one at a time; a few in flight is plenty.
pub(crate) const QUEUE: usize = 8;

/// Connections served at once. Control clients are people, scripts and
/// monitoring, a few at a time; 64 leaves room for a burst of them, while
/// bounding the descriptors and tasks a flood of local peers can cost (the
/// oldest idle ones are closed to admit new ones).
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request line after connecting.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take its answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After answering, input the client sent past its request is read and
/// discarded until it closes, for at most this long and [`DRAIN_MAX`]
/// bytes: closing a socket with unread input resets the connection, and the
/// client would lose its answer. An honest client closes at once.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Input drained at most; more than a confused client sends (the 10 MB
/// line of issue 18 is drained), little to read.
const DRAIN_MAX: usize = 16 * 1024 * 1024;

/// The bound control socket; removes its file when dropped.
#[derive(Debug)]
pub(crate) struct ControlSocket(UnixEndpoint);

impl ControlSocket {
    /// Binds `path` with `mode`; a stale socket is replaced, a live one (or
    /// any other file) is an error.
    pub(crate) fn bind(path: &Path, mode: u32) -> Result<ControlSocket, UnixError> {
        UnixEndpoint::bind(path, mode).map(ControlSocket)
    }

    /// Serves requests until `shutdown`, sending each to `daemon`.
    pub(crate) async fn serve(self, daemon: mpsc::Sender<Asked>, shutdown: CancellationToken) {
        let mut admission = Admission::new("control socket", MAX_CONNECTIONS, b"\n");
        while let Some((stream, ticket)) = admission
            .next(|| self.0.accept_stream(), UnixStream::as_fd, &shutdown)
            .await
        {
            let (daemon, shutdown) = (daemon.clone(), shutdown.clone());
            tokio::spawn(async move {
                // Dropping `answer` midway is harmless: the daemon's answer
                // to a dropped request goes nowhere.
                tokio::select! {
                    r = answer(stream, &daemon, &ticket) => {
                        if let Err(e) = r {
                            debug!(error = %e, "control client");
                        }
                    }
                    () = ticket.shed() => debug!("control client closed: idle, and others waiting"),
                    () = shutdown.cancelled() => {}
                }
            });
        }
    }
}

/// What a client sent.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    /// One line (or what came before the client closed).
    Line(Vec<u8>),
    TooLong,
    /// A line and more.
    Trailing,
}

/// Reads one request line, at most [`MAX_REQUEST`] bytes with its newline.
async fn read_request(read: &mut OwnedReadHalf) -> std::io::Result<Got> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = read.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Got::Line(line));
        }
        let got = &chunk[..n];
        let end = got.iter().position(|&b| b == b'\n').map(|i| i + 1);
        line.extend_from_slice(&got[..end.unwrap_or(n)]);
        if line.len() > MAX_REQUEST {
            return Ok(Got::TooLong);
        }
        if let Some(end) = end {
            // More after the line, in this read or already waiting.
            let more = end < n || matches!(read.try_read(&mut chunk), Ok(m) if m > 0);
            return Ok(if more { Got::Trailing } else { Got::Line(line) });
        }
    }
}

async fn answer(
    stream: UnixStream,
    daemon: &mpsc::Sender<Asked>,
    ticket: &Ticket,
) -> std::io::Result<()> {
    let (mut read, mut write) = stream.into_split();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut read)).await {
        Err(_) => Response::error(format!("no request within {REQUEST_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Got::TooLong)) => Response::error(format!("request longer than {MAX_REQUEST} bytes")),
        Ok(Ok(Got::Trailing)) => {
            Response::error("bytes after the request line: one request per connection")
        }
        Ok(Ok(Got::Line(line))) => match serde_json::from_slice::<Request>(&line) {
            Err(e) => Response::error(format!("bad request: {e}")),
            Ok(request) => {
                if !ticket.busy() {
                    return Ok(()); // shed meanwhile: not acted on
                }
                let response = ask(daemon, request).await;
                ticket.idle();
                response
            }
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    out.push(b'\n');
    let sent = async {
        write.write_all(&out).await?;
        write.shutdown().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, sent)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain(&mut read)).await;
    Ok(())
}

/// The daemon task's answer to `request`.
async fn ask(daemon: &mpsc::Sender<Asked>, request: Request) -> Response {
    let (tx, rx) = oneshot::channel();
    match daemon.send((request, tx)).await {
        Ok(()) => rx
            .await
            .unwrap_or_else(|_| Response::error("the daemon is shutting down")),
        Err(_) => Response::error("the daemon is shutting down"),
    }
}

/// Reads and discards input until the client closes, or [`DRAIN_MAX`].
async fn drain(read: &mut OwnedReadHalf) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut left = DRAIN_MAX;
    while left > 0 {
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_request` on what a client sends in one write, then closes.
    async fn got(sent: &[u8]) -> Got {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(sent).await.unwrap();
        drop(b);
        let (mut read, _write) = a.into_split();
        read_request(&mut read).await.unwrap()
    }

    #[tokio::test]
    async fn a_request_is_one_line_within_the_limit() {
        let line = b"{\"cmd\":\"status\"}\n";
        assert_eq!(got(line).await, Got::Line(line.to_vec()));
        // A client that closes without a newline still asked.
        assert_eq!(got(b"{}").await, Got::Line(b"{}".to_vec()));
        let mut exact = vec![b' '; MAX_REQUEST - 1];
        exact.push(b'\n');
        assert_eq!(got(&exact).await, Got::Line(exact.clone()));
        exact.insert(0, b' ');
        assert_eq!(got(&exact).await, Got::TooLong);
        assert_eq!(got(&vec![b'a'; MAX_REQUEST + 1]).await, Got::TooLong);
        assert_eq!(got(b"{}\n{}\n").await, Got::Trailing);
    }
}
