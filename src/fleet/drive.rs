//! The task that runs one session end against the broker: it publishes
//! what the [`Session`](super::session::Session) has to send, feeds it the
//! peer's frames, fires its timers, resends at once when the connection to
//! the broker comes back, and keeps the session alive or ends it.
//!
//! Liveness: the client end pings the host when it has heard nothing for a
//! heartbeat. "Unknown session" ends the session at once (the host
//! restarted); "no responders" ends it once it has lasted
//! [`Timing::gone_after`], which is longer than the 30 s a host may spend
//! without the broker; a timeout (the broker is away) never ends it. The
//! host end ends a session it has not heard from for [`Timing::silence`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use async_nats::{Client, RequestErrorKind, Subject, Subscriber};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::session::frame::{Frame, MAX_DATA};
use super::shared::Shared;
use super::wire::{self, PingReply, PingRequest};

/// How often the driver looks at the broker connection and the liveness
/// clocks: well under the resend timeout, so a reconnect resends quickly.
const TICK: Duration = Duration::from_millis(100);
/// A publish that the client cannot queue in this long is given up (the
/// frame is lost like any other; the session resends).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames taken from the subscription in one turn before sending again,
/// so ACKs keep flowing under a flood.
const BATCH: usize = 64;

/// Liveness timings of a session end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The client pings after hearing nothing for this long.
    pub(crate) heartbeat: Duration,
    /// A ping's answer is awaited this long; no answer means the broker
    /// is away, which ends nothing.
    pub(crate) ping_timeout: Duration,
    /// "No responders" for this long means the host is gone.
    pub(crate) gone_after: Duration,
    /// The host ends a session it has not heard from for this long.
    pub(crate) silence: Duration,
    /// Once both halves are dropped, bytes still unacknowledged are given
    /// this long to arrive.
    pub(crate) linger: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(2),
            gone_after: Duration::from_secs(45),
            silence: Duration::from_secs(120),
            linger: Duration::from_secs(5),
        }
    }
}

/// Where a session end sends.
pub(crate) struct Link {
    pub(crate) client: Client,
    /// The peer's frame subject.
    pub(crate) out_subject: String,
    /// The client end's ping subject and session id; the host end does not
    /// ping.
    pub(crate) ping: Option<(String, String)>,
}

/// The DATA size for this client's broker: a quarter of its
/// `max_payload`, at most [`MAX_DATA`].
pub(crate) fn max_frame(client: &Client) -> usize {
    (client.max_payload() / 4).clamp(1, MAX_DATA)
}

enum Ping {
    Alive,
    Unknown(String),
    NoResponders,
    Away,
}

type PingFuture = Pin<Box<dyn Future<Output = Ping> + Send>>;

fn ping(client: &Client, subject: &str, session: &str, timeout: Duration) -> PingFuture {
    let client = client.clone();
    let subject = subject.to_owned();
    let body = serde_json::to_vec(&PingRequest {
        session: session.to_owned(),
    })
    .unwrap_or_default();
    Box::pin(async move {
        let asked = async_nats::Request::new()
            .payload(body.into())
            .timeout(Some(timeout));
        match client.send_request(subject, asked).await {
            Ok(m) => match serde_json::from_slice::<PingReply>(&m.payload) {
                Ok(r) if r.ok => Ping::Alive,
                Ok(r) => Ping::Unknown(wire::peer_text(&r.error.unwrap_or_default())),
                Err(_) => Ping::Away,
            },
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Ping::NoResponders,
            Err(_) => Ping::Away,
        }
    })
}

/// Runs a session end until it is over: reset by either end, silent too
/// long, or both halves dropped and everything sent.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut frames_in: Subscriber,
    link: Link,
    timing: Timing,
    shutdown: CancellationToken,
) {
    let out = Subject::from(link.out_subject.as_str());
    let stats = link.client.statistics();
    let mut connects = stats.connects.load(Relaxed);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pinging: Option<PingFuture> = None;
    let mut last_ping = Instant::now();
    let mut no_responders: Option<Instant> = None;
    let mut dropped_at: Option<Instant> = None;
    let mut to_send: Vec<Frame> = Vec::new();
    loop {
        let now = Instant::now();
        let (deadline, over) = {
            let mut c = shared.lock();
            if c.dropped {
                let since = *dropped_at.get_or_insert(now);
                if c.session.sent_all() || now - since >= timing.linger {
                    c.session.reset("the peer closed the session");
                }
            }
            while let Some(f) = c.session.poll_transmit(now) {
                to_send.push(f);
            }
            shared.notify_halves(&mut c);
            (c.session.next_timeout(), c.session.reset_reason().is_some())
        };
        for f in to_send.drain(..) {
            let sent = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                link.client.publish(out.clone(), f.encode()),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                shared.lock().unsent += 1;
            }
        }
        if over {
            // The RESET is out of the client's buffer before anyone (a
            // process about to exit) hears that this end is finished.
            let _ = tokio::time::timeout(PUBLISH_TIMEOUT, link.client.flush()).await;
            break;
        }
        let sleep = deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = shared.wake.notified() => {}
            msg = frames_in.next() => match msg {
                Some(m) => {
                    take_frame(&shared, &m.payload);
                    for _ in 0..BATCH {
                        match frames_in.next().now_or_never() {
                            Some(Some(m)) => take_frame(&shared, &m.payload),
                            _ => break,
                        }
                    }
                }
                None => shared.lock().session.reset("the broker connection was closed"),
            },
            _ = tokio::time::sleep_until(sleep.unwrap_or_else(tokio::time::Instant::now)),
                if sleep.is_some() => {}
            outcome = async {
                match pinging.as_mut() {
                    Some(p) => p.await,
                    None => std::future::pending().await,
                }
            }, if pinging.is_some() => {
                pinging = None;
                match outcome {
                    Ping::Alive => {
                        no_responders = None;
                        shared.heard();
                    }
                    Ping::Unknown(why) => shared
                        .lock()
                        .session
                        .reset(&format!("the host no longer holds the session ({why})")),
                    Ping::NoResponders => {
                        let since = *no_responders.get_or_insert_with(Instant::now);
                        if since.elapsed() >= timing.gone_after {
                            shared.lock().session.reset(&format!(
                                "the host is gone (no responders for {} s)",
                                timing.gone_after.as_secs()
                            ));
                        }
                    }
                    Ping::Away => {}
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let seen = stats.connects.load(Relaxed);
                let mut c = shared.lock();
                if seen != connects {
                    connects = seen;
                    debug!("broker connection back; resending what was in flight");
                    c.session.on_reconnect(now);
                }
                let quiet = now - c.heard;
                match &link.ping {
                    Some((subject, sid)) => {
                        // While the host is missing, ask more often, so
                        // its return or absence is seen promptly.
                        let every = if no_responders.is_some() {
                            timing.heartbeat.min(Duration::from_secs(1))
                        } else {
                            timing.heartbeat
                        };
                        if pinging.is_none() && quiet >= every && now - last_ping >= every {
                            last_ping = now;
                            pinging = Some(ping(&link.client, subject, sid, timing.ping_timeout));
                        }
                    }
                    None if quiet >= timing.silence => c.session.reset(&format!(
                        "no word from the client for {} s",
                        timing.silence.as_secs()
                    )),
                    None => {}
                }
            }
            _ = shutdown.cancelled() => shared.lock().session.reset("the host is shutting down"),
        }
    }
    shared.finish();
    let _ = frames_in.unsubscribe().await;
}

/// One message from the peer: a frame, or junk that is counted.
fn take_frame(shared: &Shared, payload: &Bytes) {
    let mut c = shared.lock();
    match Frame::decode(payload) {
        Ok(f) => {
            c.heard = Instant::now();
            c.session.handle(f, Instant::now());
        }
        Err(e) => {
            c.malformed += 1;
            debug!(error = %e, "dropped a malformed fleet frame");
        }
    }
}
