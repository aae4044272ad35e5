//! `GET /ws/status`: a WebSocket of the status document (`/api/status`'s
//! text), the first at once, then each time it changes.
//!
//! One poller per listener ([`Feed`]) asks the daemon every [`EVERY`] while
//! at least one socket listens, and stops when the last one goes; the
//! sockets share its latest document (a `watch`), and each sends only a
//! document that differs from the last it sent. A ping goes every [`PING`],
//! and a peer silent for [`DEAD`] is closed, so a killed browser frees its
//! connection; a peer that does not read is closed when a send has waited
//! [`DEAD`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::ask;
use crate::control::server::Asked;

/// How often the daemon is asked while someone listens.
const EVERY: Duration = Duration::from_millis(250);
/// How often a ping goes out.
const PING: Duration = Duration::from_secs(15);
/// Silence (no frame from the peer) after which the socket is closed; a
/// send that takes this long closes it too.
const DEAD: Duration = Duration::from_secs(45);
/// Largest message taken from the peer: it has nothing to say.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// The latest status document, `None` until the poller has one.
type Doc = Option<Arc<str>>;

/// The shared poller of one listener.
#[derive(Debug)]
pub(crate) struct Feed {
    daemon: mpsc::Sender<Asked>,
    shutdown: CancellationToken,
    doc: watch::Sender<Doc>,
    /// Whether the poller runs; taken with the receiver count, so that a
    /// new listener never misses a poller that is stopping.
    polling: Mutex<bool>,
}

impl Feed {
    pub(crate) fn new(daemon: mpsc::Sender<Asked>, shutdown: CancellationToken) -> Arc<Feed> {
        Arc::new(Feed {
            daemon,
            shutdown,
            doc: watch::Sender::new(None),
            polling: Mutex::new(false),
        })
    }

    fn polling(&self) -> std::sync::MutexGuard<'_, bool> {
        self.polling.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A listener's view of the documents; starts the poller if it stopped.
    fn subscribe(self: &Arc<Self>) -> watch::Receiver<Doc> {
        let rx = self.doc.subscribe();
        let mut polling = self.polling();
        if !*polling {
            *polling = true;
            // Whatever was kept is stale: the new listener waits for a
            // fresh one.
            self.doc.send_replace(None);
            tokio::spawn(self.clone().poll());
        }
        rx
    }

    /// Asks the daemon every [`EVERY`] while anyone listens.
    async fn poll(self: Arc<Self>) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            {
                let mut polling = self.polling();
                if self.doc.receiver_count() == 0 {
                    *polling = false;
                    return;
                }
            }
            let Ok(ports) = ask::ports(&self.daemon).await else {
                continue;
            };
            let doc = ask::document(&ports);
            self.doc.send_if_modified(|cur| {
                if cur.as_deref() == Some(doc.as_str()) {
                    return false;
                }
                *cur = Some(doc.into());
                true
            });
        }
        *self.polling() = false;
    }
}

/// Serves one `/ws/status` socket until either side ends it, or shutdown.
pub(crate) async fn serve(mut socket: WebSocket, feed: Arc<Feed>) {
    let mut docs = feed.subscribe();
    let mut ping = tokio::time::interval_at(Instant::now() + PING, PING);
    let mut heard = Instant::now();
    let mut last: Doc = None;
    loop {
        let doc = docs.borrow_and_update().clone();
        if doc.is_some() && doc != last {
            let text = doc.as_deref().unwrap_or_default().to_owned();
            let sent = tokio::time::timeout(DEAD, socket.send(Message::Text(text.into()))).await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
            last = doc;
        }
        tokio::select! {
            () = feed.shutdown.cancelled() => break,
            r = docs.changed() => if r.is_err() { break },
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
