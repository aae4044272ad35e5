//! `GET /ws/status`: a WebSocket of the status document (`/api/status`'s
//! text), the first at once, then each time it changes.
//!
//! While the socket is open the daemon is asked at most every [`EVERY`];
//! an unchanged document is not sent again. A ping goes every [`PING`],
//! and a peer silent for [`DEAD`] is closed, so a killed browser frees its
//! connection. A peer that does not read: the send waits, and after
//! [`DEAD`] without a send completing the socket is closed.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use tokio::time::{Instant, MissedTickBehavior};

use super::api;
use super::state::WebState;

/// How often the daemon is asked while someone listens.
const EVERY: Duration = Duration::from_millis(250);
/// How often a ping goes out.
const PING: Duration = Duration::from_secs(15);
/// Silence (no frame from the peer) after which the socket is closed; a
/// send that takes this long closes it too.
const DEAD: Duration = Duration::from_secs(45);
/// Largest message taken from the peer: it has nothing to say.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// Serves one `/ws/status` socket until either side ends it, or shutdown.
pub(crate) async fn serve(mut socket: WebSocket, state: WebState) {
    let mut ask = tokio::time::interval(EVERY);
    ask.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping = tokio::time::interval_at(Instant::now() + PING, PING);
    let mut heard = Instant::now();
    let mut last = String::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = ask.tick() => {
                let Ok(ports) = api::ports(&state.daemon).await else { continue };
                let doc = api::document(&ports);
                if doc != last {
                    let sent = tokio::time::timeout(DEAD, socket.send(Message::Text(doc.clone().into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break;
                    }
                    last = doc;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > DEAD {
                    break;
                }
                let sent = tokio::time::timeout(DEAD, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => heard = Instant::now(),
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
