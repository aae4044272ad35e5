//! The terminal WebSocket (`/ws/ports/{name}`): a browser as one of a
//! port's clients, counted in status as `web:ADDRESS`, under the port's
//! `--max-clients`, slow-reader policy, write arbitration and `control=`
//! policy like a TCP or RFC 2217 client.
//!
//! - `codec`: the JSON text messages, sans-I/O;
//! - `pipe`: the client's two halves as the port's raw client loop sees
//!   them, and the WebSocket task's end; requests run in order with the
//!   typing (`settle`);
//! - `session`: the WebSocket task: hello, scrollback, window and acks,
//!   ping, close reasons;
//! - this file: the entry point [`serve`], and the [`Attach`] channel to
//!   the daemon task, which owns the ports and admits the client
//!   ([`AttachRequest::attach`]).
//!
//! The protocol: binary frames are terminal bytes both ways; text frames
//! are JSON objects with a `type`. The server says `hello` first (with the
//! `history` bytes of scrollback that follow, from device offset `from`),
//! then device bytes, `dropped`, `answer` and `closed`; the browser sends
//! `ack` (binary bytes rendered in all), `set`, `signal`, `break`, `lock`
//! and `unlock`, each answered once by its `id`.

pub(crate) mod codec;
mod pipe;
mod session;

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::access::Role;
use crate::endpoint::accept::Protocol;
use crate::endpoint::external::Admission;
use crate::endpoint::{EndpointKind, EndpointOptions};
use crate::hub::ControlPolicy;
use crate::line::LineSettings;
use crate::port::Port;
pub(crate) use codec::MAX_MESSAGE;
use codec::Told;
use session::{Liveness, Session};

/// A browser's request for a port's terminal, as the HTTP server knows it.
#[derive(Clone, Debug)]
pub(crate) struct TerminalRequest {
    pub port: String,
    /// The browser's address: status shows `web:{peer}`.
    pub peer: SocketAddr,
    /// After authentication.
    pub role: Role,
    /// The login or certificate identity, for logs.
    pub user: Option<String>,
    /// `?since=OFFSET`: resume after the bytes already shown.
    pub since: Option<u64>,
}

/// Requests to attach waiting for the daemon task, which takes each at
/// once; the HTTP listener bounds how many connections wait here.
const ATTACHING: usize = 16;
/// The least window, and the most: at least 64 KiB, or about a second of
/// the line if more, up to 1 MiB of a tab's memory.
const MIN_WINDOW: u64 = 64 << 10;
const MAX_WINDOW: u64 = 1 << 20;

/// The way to the daemon task, which admits browsers to its ports.
#[derive(Clone, Debug)]
pub(crate) struct Attach(mpsc::Sender<AttachRequest>, Liveness);

impl Attach {
    /// Sessions ping and give up on silent browsers as `liveness` says
    /// (tests: shorter than the default).
    #[cfg(test)]
    pub(crate) fn with_liveness(self, liveness: Liveness) -> Self {
        Self(self.0, liveness)
    }
}

/// The daemon task's end of [`Attach`].
pub(crate) type AttachRx = mpsc::Receiver<AttachRequest>;

/// A new channel: the HTTP server holds the [`Attach`], the daemon task
/// the receiver.
pub(crate) fn channel() -> (Attach, AttachRx) {
    let (tx, rx) = mpsc::channel(ATTACHING);
    (Attach(tx, Liveness::default()), rx)
}

/// One browser waiting to become a port's client.
#[derive(Debug)]
pub(crate) struct AttachRequest {
    request: TerminalRequest,
    liveness: Liveness,
    answer: oneshot::Sender<Result<Attached, String>>,
}

/// A browser admitted: its pipe end and what its session needs.
pub(crate) struct Attached {
    ws: pipe::WsEnd,
    session: Session,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attached")
    }
}

impl AttachRequest {
    /// The port asked for.
    pub(crate) fn port(&self) -> &str {
        &self.request.port
    }

    /// Answers that the browser cannot be served, and why.
    pub(crate) fn refuse(self, why: String) {
        let _ = self.answer.send(Err(why));
    }

    /// Admits the browser to `port` as a raw client whose settings
    /// requests run under `control`, or says why not.
    pub(crate) fn attach(self, port: &Port, control: ControlPolicy) {
        let r = &self.request;
        let peer = format!("web:{}", r.peer);
        let read_only = r.role == Role::Ro;
        let (source, sink, ws) = pipe::pipe(read_only, control);
        let admission = Admission {
            peer: &peer,
            protocol: Protocol::Raw,
            role: r.role,
            options: EndpointOptions {
                control,
                ..EndpointOptions::default()
            },
            history: Some(r.since),
        };
        let joined = match port.admit_as(source, sink, admission) {
            Ok(j) => j,
            Err(why) => {
                info!(port = port.name(), %peer, error = %why, "web terminal refused");
                return self.refuse(why);
            }
        };
        info!(port = port.name(), %peer, client = joined.id, user = r.user.as_deref(),
            role = ?r.role, "web terminal attached");
        let snapshot = joined
            .snapshot
            .unwrap_or_else(|| crate::hub::history::Snapshot {
                from: joined.hub.device_offset(),
                data: bytes::Bytes::new(),
                gap: 0,
            });
        let window = window(&joined.hub.line().unwrap_or_default());
        let hello = Told::Hello {
            port: port.name().to_owned(),
            client: joined.id,
            peer,
            role: if read_only { "ro" } else { "rw" },
            from: snapshot.from,
            history: snapshot.data.len() as u64,
            window,
            gap: snapshot.gap,
        };
        let session = Session {
            hello,
            history: snapshot.data,
            window,
            hub: joined.hub,
            client: joined.id,
            kicked: joined.kicked,
            port_stopped: joined.port_stopped,
            liveness: self.liveness,
        };
        // A browser that left meanwhile drops its pipe end: the client
        // sees its end of input and detaches.
        let _ = self.answer.send(Ok(Attached { ws, session }));
    }
}

/// The `control=` a port's web clients run under: that of its first
/// endpoint that takes settings requests (rfc2217, pty), else the default
/// (`first`).
pub(crate) fn control_of(listen: &[crate::endpoint::EndpointSpec]) -> ControlPolicy {
    listen
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                EndpointKind::Rfc2217 { .. } | EndpointKind::Pty { .. }
            )
        })
        .map(|e| e.options.control)
        .unwrap_or_default()
}

/// The bytes a browser may have sent and not acknowledged.
fn window(line: &LineSettings) -> u64 {
    let second = line.bytes_per_sec() as u64;
    second.clamp(MIN_WINDOW, MAX_WINDOW)
}

/// Serves one terminal WebSocket (an upgraded `/ws/ports/{name}`): asks
/// the daemon to admit the browser as a client of the port, then runs its
/// session until either side ends it. A browser that cannot be served is
/// told why (`closed`) and closed.
///
/// Upgrade with `max_message_size(MAX_MESSAGE)` (and the same
/// `max_frame_size`): a larger message then closes the socket with 1009.
pub(crate) async fn serve(mut socket: WebSocket, attach: Attach, req: TerminalRequest) {
    let (answer, told) = oneshot::channel();
    let port = req.port.clone();
    let asked = attach.0.send(AttachRequest {
        request: req,
        liveness: attach.1,
        answer,
    });
    let gone = || "serialhub is shutting down".to_owned();
    let attached = match asked.await {
        Ok(()) => told.await.unwrap_or_else(|_| Err(gone())),
        Err(_) => Err(gone()),
    };
    match attached {
        Ok(a) => session::run(socket, a.ws, a.session).await,
        Err(reason) => {
            debug!(port, reason, "web terminal not attached");
            let told = Told::Closed {
                reason: reason.clone(),
            };
            let frame = CloseFrame {
                code: 1008,
                reason: "not attached".into(),
            };
            // A browser that reads nothing does not hold the task.
            let _ = tokio::time::timeout(attach.1.silence, async {
                socket.send(Message::Text(told.to_text().into())).await?;
                socket.send(Message::Close(Some(frame))).await
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests;
