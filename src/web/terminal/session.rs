//! One terminal WebSocket, from its `hello` to its close: the task between
//! the browser and the client's [`pipe`](super::pipe).
//!
//! Flow control: the browser acknowledges the binary bytes it has
//! rendered (`ack`, a running total); the task keeps at most `window`
//! bytes sent and not acknowledged. At the window it takes nothing more
//! from the pipe, so the client's hub queue fills and the port's
//! slow-reader policy applies: `drop` loses bytes, which the task reports
//! (`dropped`) before the next bytes it sends; `disconnect` ends the
//! client's output, and the task says why (`closed`) and closes.
//!
//! The loss is read from the hub's count for the client when output is
//! taken, so the `dropped` marker sits where the loss was noticed, which
//! may be after bytes that were still queued when it happened (at most a
//! client queue late).
//! Its count is exact, so the browser's offset is right again once those
//! bytes are in. (Exact placement would need a marker in the hub's byte
//! queue.)
//!
//! Liveness ([`Liveness`]): a ping every 10 s; a browser not heard from
//! (any frame, or a pong) for 30 s is closed, so a killed browser frees
//! its client slot within that. A send that the browser does not take
//! within that silence ends the session too.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::codec::{self, Incoming, MAX_MESSAGE, Told};
use super::pipe::WsEnd;
use crate::hub::{ClientId, Hub};

/// When the server pings the browser, and when it gives up on it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Liveness {
    pub(crate) ping_every: Duration,
    /// Silence after which the browser is taken for gone.
    pub(crate) silence: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            ping_every: Duration::from_secs(10),
            silence: Duration::from_secs(30),
        }
    }
}
/// The largest binary frame sent: a few frames fill a window.
const FRAME: usize = 16 << 10;
/// WebSocket close codes (RFC 6455).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TOO_BIG: u16 = 1009;

/// What the task needs besides the socket and the pipe.
pub(crate) struct Session {
    pub(crate) hello: Told,
    /// Scrollback to send before live data.
    pub(crate) history: Bytes,
    pub(crate) window: u64,
    /// Where to read how much of this client's output the hub dropped.
    pub(crate) hub: Arc<Hub>,
    pub(crate) client: ClientId,
    /// Cancelled when the hub kicks the client.
    pub(crate) kicked: CancellationToken,
    /// Cancelled when the port stops.
    pub(crate) port_stopped: CancellationToken,
    pub(crate) liveness: Liveness,
}

/// Why the session ended, as `closed` says it.
enum End {
    /// Told the browser already, or it left.
    Done,
    Close(u16, String),
}

/// Runs the session until either side ends it; then the pipe is closed,
/// which ends the client at once.
pub(crate) async fn run(mut socket: WebSocket, pipe: WsEnd, session: Session) {
    let end = match drive(&mut socket, &pipe, &session).await {
        Ok(()) => End::Done,
        Err(end) => end,
    };
    pipe.close();
    if let End::Close(code, reason) = end {
        debug!(reason, "terminal closed");
        let told = Told::Closed {
            reason: reason.clone(),
        };
        let _ = timeout(session.liveness.ping_every, async {
            socket.send(Message::Text(told.to_text().into())).await?;
            let frame = CloseFrame {
                code,
                reason: truncate(&reason).into(),
            };
            socket.send(Message::Close(Some(frame))).await
        })
        .await;
    }
}

/// A close frame's reason is at most 123 bytes.
fn truncate(s: &str) -> String {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

async fn send(socket: &mut WebSocket, message: Message, silence: Duration) -> Result<(), End> {
    match timeout(silence, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            debug!(error = %e, "terminal: sending failed");
            Err(End::Done)
        }
        Err(_) => Err(End::Close(
            CLOSE_GOING_AWAY,
            format!("the browser took nothing for {silence:?}"),
        )),
    }
}

async fn drive(socket: &mut WebSocket, pipe: &WsEnd, s: &Session) -> Result<(), End> {
    let silence = s.liveness.silence;
    send(socket, Message::Text(s.hello.to_text().into()), silence).await?;
    let mut history = s.history.clone();
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut dropped = s.hub.client_dropped(s.client).unwrap_or(0);
    let mut heard = Instant::now();
    let ping_every = s.liveness.ping_every;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    // A message from the browser that waits for room in the pipe.
    let mut held: Option<Incoming> = None;
    let mut typed: Option<Bytes> = None;
    loop {
        let room = usize::try_from(s.window.saturating_sub(sent - acked)).unwrap_or(usize::MAX);
        // Scrollback first, then live output, both within the window.
        if room > 0 && !history.is_empty() {
            let chunk = history.split_to(room.min(FRAME).min(history.len()));
            sent += chunk.len() as u64;
            send(socket, Message::Binary(chunk), silence).await?;
            continue;
        }
        let live = room > 0 && history.is_empty();
        tokio::select! {
            () = pipe.ready(live) => {}
            () = pipe.room(held.is_some()), if held.is_some() || typed.is_some() => {
                if let Some(data) = typed.take() {
                    pipe.type_bytes(data);
                }
                if let Some(Incoming::Request { id, action }) = held.take() {
                    pipe.request(id, action);
                }
                continue;
            }
            m = socket.recv(), if held.is_none() && typed.is_none() => {
                heard = Instant::now();
                match m {
                    None => return Err(End::Done),
                    // The upgrade's limit (`max_message_size`) met first.
                    Some(Err(e)) if e.to_string().contains("too long") => return Err(too_big()),
                    Some(Err(e)) => {
                        debug!(error = %e, "terminal: reading failed");
                        return Err(End::Done);
                    }
                    Some(Ok(m)) => match m {
                        Message::Binary(b) if b.len() > MAX_MESSAGE => return Err(too_big()),
                        Message::Text(t) if t.len() > MAX_MESSAGE => return Err(too_big()),
                        Message::Binary(b) => typed = Some(b),
                        Message::Text(t) => match codec::parse(&t) {
                            // A total beyond what was sent acknowledges what was sent.
                            Incoming::Ack(n) => acked = acked.max(n.min(sent)),
                            Incoming::Bad { id, error } => {
                                let answer = Told::Answer { id, result: Err(error) };
                                send(socket, Message::Text(answer.to_text().into()), silence).await?;
                            }
                            request @ Incoming::Request { .. } => held = Some(request),
                        },
                        Message::Close(_) => return Err(End::Done),
                        Message::Ping(_) | Message::Pong(_) => {}
                    },
                }
                continue;
            }
            _ = ping.tick() => {
                if heard.elapsed() >= silence {
                    return Err(End::Close(
                        CLOSE_GOING_AWAY,
                        format!("no answer from the browser for {silence:?}"),
                    ));
                }
                send(socket, Message::Ping(Bytes::new()), silence).await?;
                continue;
            }
            () = s.port_stopped.cancelled() => {
                // The client loop ends too; output sent meanwhile is lost
                // to a browser that is told the port stopped.
                return Err(End::Close(CLOSE_GOING_AWAY, "the port stopped".to_owned()));
            }
        }
        while let Some(answer) = pipe.answer() {
            send(socket, Message::Text(answer.to_text().into()), silence).await?;
        }
        if live {
            let out = pipe.output(room.min(FRAME));
            // Bytes the hub dropped for this client came before these.
            let now = s.hub.client_dropped(s.client).unwrap_or(dropped);
            if now > dropped {
                let told = Told::Dropped {
                    bytes: now - dropped,
                    total: now,
                };
                dropped = now;
                send(socket, Message::Text(told.to_text().into()), silence).await?;
            }
            if !out.is_empty() {
                sent += out.len() as u64;
                send(socket, Message::Binary(out), silence).await?;
            }
        }
        // Ended: what is left goes out first, unless the browser holds
        // its window full (it is being disconnected for that).
        if pipe.output_closed() && (room == 0 || pipe.output_ended()) {
            return Err(End::Close(CLOSE_NORMAL, ended_why(s, room)));
        }
    }
}

fn too_big() -> End {
    End::Close(CLOSE_TOO_BIG, format!("a message over {MAX_MESSAGE} bytes"))
}

/// Why the client's output ended: the port stopped, or the hub kicked it,
/// as a slow reader if the browser had its window full, else the operator.
fn ended_why(s: &Session, room: usize) -> String {
    if s.port_stopped.is_cancelled() {
        "the port stopped".to_owned()
    } else if s.kicked.is_cancelled() && room == 0 {
        "slow reader: the browser did not keep up and the port's slow-reader policy \
         disconnected it"
            .to_owned()
    } else if s.kicked.is_cancelled() {
        "kicked by the operator".to_owned()
    } else {
        "the client ended".to_owned()
    }
}
