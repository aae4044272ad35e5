//! One session end as the endpoint code sees any connection: a
//! [`FleetReader`] ([`ClientSource`]) and a [`FleetWriter`]
//! ([`SocketHalf`]), both used through `&self`, over a [`Session`] that a
//! driver task ([`crate::fleet::drive`]) runs against the broker. The client
//! end is made by [`open`]; the host end by [`crate::fleet::listen`].
//!
//! The session sits behind a mutex that no one holds across an await: the
//! halves only copy bytes in and out of its bounded buffers and wake the
//! driver, which alone talks to NATS.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_nats::{Client, RequestErrorKind};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::drive::{self, Link, Timing};
use super::session::frame::MAX_DATA;
use super::session::{MAX_WINDOW, Session};
pub(crate) use super::shared::FleetStats;
use super::shared::Shared;
use super::wire::{self, Mode, OpenReply, OpenRequest};
use crate::endpoint::sink::SocketHalf;
use crate::endpoint::source::ClientSource;

/// How long an open request waits for the host's answer.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Held by both halves; when both are gone the driver is told.
struct Halves(Arc<Shared>);

impl Drop for Halves {
    fn drop(&mut self) {
        self.0.lock().dropped = true;
        self.0.wake.notify_one();
    }
}

/// The receiving half of a session end.
pub(crate) struct FleetReader(Arc<Halves>);

/// The sending half of a session end, shared by a client's writer task
/// and the hub's fan-out like a socket's.
pub(crate) struct FleetWriter(Arc<Halves>);

impl fmt::Debug for FleetReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetReader")
    }
}

impl fmt::Debug for FleetWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetWriter")
    }
}

/// Both halves over `shared`.
pub(crate) fn halves(shared: &Arc<Shared>) -> (FleetReader, FleetWriter) {
    let h = Arc::new(Halves(shared.clone()));
    (FleetReader(h.clone()), FleetWriter(h))
}

fn reset_error(kind: io::ErrorKind, reason: &str) -> io::Error {
    io::Error::new(kind, format!("fleet session ended: {reason}"))
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "fleet session: write after the sending side was shut down",
    )
}

impl FleetReader {
    fn shared(&self) -> &Shared {
        &self.0.0
    }

    /// The session's counters (resends, duplicates, gaps).
    pub(crate) fn stats(&self) -> FleetStats {
        self.shared().lock().stats()
    }
}

impl ClientSource for FleetReader {
    async fn readable(&self) -> io::Result<()> {
        loop {
            {
                let c = self.shared().lock();
                let s = &c.session;
                if s.buffered() > 0 || s.at_end() || s.reset_reason().is_some() {
                    return Ok(());
                }
            }
            // A notification sent between the check and this wait is kept
            // as a permit (notify_one), so none is lost.
            self.shared().readable.notified().await;
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut c = self.shared().lock();
        let n = c.session.read(buf, Instant::now());
        if n > 0 {
            drop(c);
            // Reading freed window: the driver acknowledges it.
            self.shared().wake.notify_one();
            return Ok(n);
        }
        if c.session.at_end() || buf.is_empty() {
            return Ok(0);
        }
        match c.session.reset_reason() {
            Some(r) => Err(reset_error(io::ErrorKind::ConnectionReset, r)),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn queued(&self) -> usize {
        self.shared().lock().session.buffered()
    }
}

impl FleetWriter {
    fn shared(&self) -> &Shared {
        &self.0.0
    }

    /// Bytes written and not yet taken by the peer's reader: in the
    /// session, on their way, or in the peer's buffer. At most the peer's
    /// window.
    pub(crate) fn unacked(&self) -> usize {
        self.shared().lock().session.unread()
    }

    /// The session's counters (resends, duplicates, gaps).
    pub(crate) fn stats(&self) -> FleetStats {
        self.shared().lock().stats()
    }
}

impl SocketHalf for FleetWriter {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut c = self.shared().lock();
        if let Some(r) = c.session.reset_reason() {
            return Poll::Ready(Err(reset_error(io::ErrorKind::BrokenPipe, r)));
        }
        if c.session.write_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        if c.session.room() > 0 {
            return Poll::Ready(Ok(()));
        }
        c.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut c = self.shared().lock();
        if let Some(r) = c.session.reset_reason() {
            return Err(reset_error(io::ErrorKind::BrokenPipe, r));
        }
        if c.session.write_closed() {
            return Err(closed_error());
        }
        let n = c.session.write(buf);
        drop(c);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.shared().wake.notify_one();
        Ok(n)
    }

    /// Ends the sending direction; the peer's reader sees its end once
    /// every byte written before has arrived.
    fn shutdown_write(&self) -> io::Result<()> {
        self.shared().lock().session.close();
        self.shared().wake.notify_one();
        Ok(())
    }
}

/// Ends a session end and waits until the peer was told: what was written
/// is given [`Timing::linger`] to be acknowledged, then a RESET goes out.
/// A process about to exit (`fleet connect`) calls this, so the host
/// detaches its client at once rather than after its silence timeout.
pub(crate) async fn close(reader: FleetReader, writer: FleetWriter) {
    let shared = reader.0.0.clone();
    drop((reader, writer));
    loop {
        let done = shared.done.notified();
        tokio::pin!(done);
        // Registered before the check, so a finish in between is seen.
        done.as_mut().enable();
        if shared.lock().finished {
            return;
        }
        done.await;
    }
}

/// Why a session could not be opened.
#[derive(Debug, Error)]
pub(crate) enum OpenError {
    #[error("fleet host \"{0}\" is not reachable through the broker (no responders)")]
    NoHost(String),
    #[error("fleet host \"{host}\" refused the session: {error}")]
    Refused { host: String, error: String },
    #[error("fleet host \"{0}\" did not answer the open request in time")]
    Timeout(String),
    #[error("\"{0}\" is not a fleet host name ([A-Za-z0-9_-], 1 to 64 characters)")]
    BadHost(String),
    #[error("opening a session on fleet host \"{host}\": {error}")]
    Broker { host: String, error: String },
}

/// Opens a session on `port` of fleet host `host`, taking in at most
/// `window` bytes before the reader reads.
pub(crate) async fn open(
    client: &Client,
    host: &str,
    port: &str,
    mode: Mode,
    window: usize,
) -> Result<(FleetReader, FleetWriter), OpenError> {
    open_with(client, host, port, mode, window, Timing::default()).await
}

/// [`open`] with other liveness timings (tests).
pub(crate) async fn open_with(
    client: &Client,
    host: &str,
    port: &str,
    mode: Mode,
    window: usize,
    timing: Timing,
) -> Result<(FleetReader, FleetWriter), OpenError> {
    if !wire::valid_token(host) {
        return Err(OpenError::BadHost(host.to_owned()));
    }
    let broker = |e: &dyn fmt::Display| OpenError::Broker {
        host: host.to_owned(),
        error: e.to_string(),
    };
    let cid = wire::client_id();
    let sid = wire::token();
    let max_frame = drive::max_frame(client);
    let window = window.clamp(2 * max_frame, MAX_WINDOW);
    // Subscribed before asking, so the host's first frame finds us.
    let subscriber = client
        .subscribe(wire::to_client_subject(cid, &sid))
        .await
        .map_err(|e| broker(&e))?;
    let request = OpenRequest {
        port: port.to_owned(),
        mode,
        session: sid.clone(),
        client: cid.to_owned(),
        peer: wire::local_host_name(),
        window,
    };
    let payload = serde_json::to_vec(&request).map_err(|e| broker(&e))?;
    let asked = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(OPEN_TIMEOUT));
    let reply = client
        .send_request(wire::open_subject(host), asked)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => OpenError::NoHost(host.to_owned()),
            RequestErrorKind::TimedOut => OpenError::Timeout(host.to_owned()),
            _ => broker(&e),
        })?;
    let reply: OpenReply = serde_json::from_slice(&reply.payload).map_err(|e| broker(&e))?;
    if !reply.ok {
        return Err(OpenError::Refused {
            host: host.to_owned(),
            error: reply
                .error
                .map_or_else(|| "no reason given".to_owned(), |e| wire::peer_text(&e)),
        });
    }
    let max_frame = reply
        .max_frame
        .unwrap_or(max_frame)
        .clamp(1, max_frame.min(MAX_DATA));
    let peer_window = reply.window.unwrap_or(window).max(1);
    let shared = Shared::new(Session::new(window, peer_window, max_frame));
    let (reader, writer) = halves(&shared);
    let link = Link {
        client: client.clone(),
        out_subject: wire::to_host_subject(host, &sid),
        ping: Some((wire::ping_subject(host), sid)),
    };
    tokio::spawn(drive::run(
        shared,
        subscriber,
        link,
        timing,
        CancellationToken::new(),
    ));
    Ok((reader, writer))
}
