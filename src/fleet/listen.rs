//! The host end of the session protocol: answers open requests on
//! `serialhub.host.<HOST>.open` (handing each new session to the caller,
//! which decides whether the port exists) and pings on
//! `serialhub.host.<HOST>.ping`, and runs every accepted session.
//!
//! Opens are served concurrently, at most [`MAX_PENDING`] at a time, so a
//! slow answer never delays the next open; live sessions are bounded by
//! [`MAX_SESSIONS`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, Message};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::address::is_port_name;
use super::drive::{self, Link, Timing};
use super::session::{MAX_WINDOW, Session};
use super::shared::Shared;
use super::stream::{FleetReader, FleetWriter, halves};
use super::wire::{self, Mode, OpenReply, OpenRequest, PingReply, PingRequest, UNKNOWN_SESSION};

/// Open requests being answered at once; more are refused as busy.
pub(crate) const MAX_PENDING: usize = 64;
/// Sessions one host holds at most (ports times clients is far less).
pub(crate) const MAX_SESSIONS: usize = 4096;
/// How long the caller may take to answer an open: under the client's
/// [`OPEN_TIMEOUT`](super::stream::OPEN_TIMEOUT), so its answer arrives.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(4);
/// An answer the client cannot queue in this long is given up: the asker
/// waits at most a few seconds (a ping 2 s), and meanwhile the listener
/// answers nothing else.
const REPLY_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed subscribe (the client is closing), wait before retrying.
const RETRY: Duration = Duration::from_secs(1);

/// A session a client asked for; answer it through `answer`.
pub(crate) struct Accepted {
    /// The port asked for, by name on this host.
    pub(crate) port: String,
    pub(crate) mode: Mode,
    /// `fleet:CLIENTHOST`, for logs and status.
    pub(crate) peer: String,
    pub(crate) reader: FleetReader,
    pub(crate) writer: FleetWriter,
    /// `Ok(window)` accepts, taking in at most `window` bytes from the
    /// client before its reader reads (size it from the port's line rate:
    /// [`window_for`](super::session::window_for)); `Err(message)`
    /// refuses with that message (`no port "x" on lab1`). Dropping it
    /// refuses.
    pub(crate) answer: oneshot::Sender<Result<usize, String>>,
}

type Table = Arc<Mutex<HashMap<String, Arc<Shared>>>>;

fn lock(table: &Table) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Shared>>> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves fleet host `host` until `shutdown`; each new session goes to
/// `sessions`.
pub(crate) async fn listen(
    client: Client,
    host: String,
    sessions: mpsc::Sender<Accepted>,
    shutdown: CancellationToken,
) {
    listen_with(client, host, sessions, shutdown, Timing::default()).await;
}

/// [`listen`] with other liveness timings (tests).
pub(crate) async fn listen_with(
    client: Client,
    host: String,
    sessions: mpsc::Sender<Accepted>,
    shutdown: CancellationToken,
    timing: Timing,
) {
    let table: Table = Arc::default();
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    loop {
        let subs = tokio::select! {
            s = subscribe(&client, &host) => s,
            () = shutdown.cancelled() => return,
        };
        let Some((mut opens, mut pings)) = subs else {
            tokio::select! {
                () = tokio::time::sleep(RETRY) => continue,
                () = shutdown.cancelled() => return,
            }
        };
        loop {
            tokio::select! {
                m = opens.next() => match m {
                    Some(m) => {
                        let Ok(permit) = pending.clone().try_acquire_owned() else {
                            reply(&client, &m, &refuse("too many sessions opening; try again")).await;
                            continue;
                        };
                        let ctx = Ctx {
                            client: client.clone(),
                            host: host.clone(),
                            sessions: sessions.clone(),
                            table: table.clone(),
                            timing,
                            shutdown: shutdown.child_token(),
                        };
                        // The permit bounds opens being answered, not
                        // sessions: `open` gives it back once answered.
                        tokio::spawn(ctx.open(m, permit));
                    }
                    None => break,
                },
                m = pings.next() => match m {
                    Some(m) => answer_ping(&client, &table, &m).await,
                    None => break,
                },
                () = shutdown.cancelled() => return,
            }
        }
    }
}

async fn subscribe(
    client: &Client,
    host: &str,
) -> Option<(async_nats::Subscriber, async_nats::Subscriber)> {
    let opens = client.subscribe(wire::open_subject(host)).await;
    let pings = client.subscribe(wire::ping_subject(host)).await;
    match (opens, pings) {
        (Ok(o), Ok(p)) => Some((o, p)),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, host, "cannot subscribe to the fleet session subjects");
            None
        }
    }
}

fn refuse(error: &str) -> OpenReply {
    OpenReply {
        ok: false,
        window: None,
        max_frame: None,
        error: Some(error.to_owned()),
    }
}

async fn reply(client: &Client, to: &Message, body: &impl Serialize) {
    let Some(subject) = to.reply.clone() else {
        return;
    };
    let Ok(payload) = serde_json::to_vec(body) else {
        return;
    };
    // A full send queue (the broker is away) must not stop the listener,
    // which answers pings inline: an answer that late is useless anyway.
    match tokio::time::timeout(REPLY_TIMEOUT, client.publish(subject, payload.into())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "could not answer a fleet request"),
        Err(_) => debug!("gave up answering a fleet request: the broker is away"),
    }
}

async fn answer_ping(client: &Client, table: &Table, m: &Message) {
    let known = serde_json::from_slice::<PingRequest>(&m.payload)
        .ok()
        .and_then(|p| lock(table).get(&p.session).cloned());
    let body = match known {
        Some(shared) => {
            shared.heard();
            PingReply {
                ok: true,
                error: None,
            }
        }
        None => PingReply {
            ok: false,
            error: Some(UNKNOWN_SESSION.to_owned()),
        },
    };
    reply(client, m, &body).await;
}

/// What one open request needs.
struct Ctx {
    client: Client,
    host: String,
    sessions: mpsc::Sender<Accepted>,
    table: Table,
    timing: Timing,
    shutdown: CancellationToken,
}

impl Ctx {
    /// Answers open request `m`, then runs the session if it was
    /// accepted; `pending` is held only until the answer.
    async fn open(self, m: Message, pending: OwnedSemaphorePermit) {
        let req: OpenRequest = match serde_json::from_slice(&m.payload) {
            Ok(r) => r,
            Err(e) => {
                reply(&self.client, &m, &refuse(&format!("bad open request: {e}"))).await;
                return;
            }
        };
        if !wire::valid_token(&req.session) || !wire::valid_token(&req.client) {
            let why = "bad open request: session and client ids are [A-Za-z0-9_-]{1,64}";
            reply(&self.client, &m, &refuse(why)).await;
            return;
        }
        if !is_port_name(&req.port) {
            // No port has such a name; nor does it go into logs or an
            // answer as it came.
            let why = "bad open request: a port name is [A-Za-z0-9_.-]{1,64}";
            reply(&self.client, &m, &refuse(why)).await;
            return;
        }
        if lock(&self.table).contains_key(&req.session) {
            // A replayed or forged open must not take over a live
            // session's frames.
            reply(
                &self.client,
                &m,
                &refuse("bad open request: session id in use"),
            )
            .await;
            return;
        }
        if lock(&self.table).len() >= MAX_SESSIONS {
            reply(
                &self.client,
                &m,
                &refuse("too many fleet sessions on this host"),
            )
            .await;
            return;
        }
        let frames_in = match self
            .client
            .subscribe(wire::to_host_subject(&self.host, &req.session))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                reply(
                    &self.client,
                    &m,
                    &refuse(&format!("host cannot subscribe: {e}")),
                )
                .await;
                return;
            }
        };
        let max_frame = drive::max_frame(&self.client);
        // The window is set once the caller answers; nothing arrives
        // before the reply.
        let shared = Shared::new(Session::new(max_frame, req.window.max(1), max_frame));
        let (reader, writer) = halves(&shared);
        let (answer, answered) = oneshot::channel();
        let accepted = Accepted {
            port: req.port.clone(),
            mode: req.mode,
            peer: format!("fleet:{}", wire::peer_name(&req.peer)),
            reader,
            writer,
            answer,
        };
        // One deadline for handing the session over and its answer.
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
            self.sessions.send(accepted).await.ok()?;
            answered.await.ok()
        })
        .await;
        let window = match answer {
            Ok(Some(Ok(window))) => window.clamp(2 * max_frame, MAX_WINDOW),
            Ok(Some(Err(error))) => {
                reply(&self.client, &m, &refuse(&error)).await;
                return;
            }
            _ => {
                // The caller may have attached the halves just as the
                // deadline passed: end them, or its client would wait on
                // a session nobody drives.
                abandon(&shared, "the host did not accept the session in time");
                reply(
                    &self.client,
                    &m,
                    &refuse("the host did not accept the session"),
                )
                .await;
                return;
            }
        };
        shared.lock().session.set_window(window);
        let taken = match lock(&self.table).entry(req.session.clone()) {
            Entry::Occupied(_) => true,
            Entry::Vacant(v) => {
                v.insert(shared.clone());
                false
            }
        };
        if taken {
            // The same id opened twice at once: the other one keeps it.
            abandon(&shared, "session id in use");
            reply(
                &self.client,
                &m,
                &refuse("bad open request: session id in use"),
            )
            .await;
            return;
        }
        let ok = OpenReply {
            ok: true,
            window: Some(window),
            max_frame: Some(max_frame),
            error: None,
        };
        reply(&self.client, &m, &ok).await;
        drop(pending);
        debug!(
            port = req.port,
            peer = req.peer,
            session = req.session,
            "fleet session opened"
        );
        let link = Link {
            client: self.client.clone(),
            out_subject: wire::to_client_subject(&req.client, &req.session),
            ping: None,
        };
        drive::run(shared, frames_in, link, self.timing, self.shutdown).await;
        lock(&self.table).remove(&req.session);
        debug!(
            port = req.port,
            session = req.session,
            "fleet session ended"
        );
    }
}

/// Ends a session no driver will run: its halves see it reset.
fn abandon(shared: &Shared, why: &str) {
    let mut c = shared.lock();
    c.session.reset(why);
    shared.notify_halves(&mut c);
    drop(c);
    shared.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker that is away (nothing listens) fills the client's send
    /// queue; an answer then gives up in time instead of stopping the
    /// listener, which answers pings inline.
    #[tokio::test]
    async fn answers_give_up_while_the_broker_is_away() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .client_capacity(4)
            .connect(format!("127.0.0.1:{port}"))
            .await
            .expect("a client that connects in the background");
        let m = Message {
            subject: "serialhub.host.lab1.ping".into(),
            reply: Some("_INBOX.x".into()),
            payload: bytes::Bytes::new(),
            headers: None,
            status: None,
            description: None,
            length: 0,
        };
        let body = refuse("x");
        let mut blocked = 0;
        for _ in 0..100 {
            let t = std::time::Instant::now();
            tokio::time::timeout(REPLY_TIMEOUT * 10, reply(&client, &m, &body))
                .await
                .expect("an answer given or given up in time");
            if t.elapsed() >= REPLY_TIMEOUT / 2 {
                blocked += 1;
                if blocked == 2 {
                    return;
                }
            }
        }
        panic!("the send queue never filled: the test shows nothing");
    }
}
