//! Transaction arbitration (`--writers transaction`): one request at a
//! time on the wire, and its reply to the client that asked.
//!
//! Clients do not write to the device directly. Each client's endpoint cuts
//! what it sends into requests (by silence, line or Modbus RTU framing) and
//! queues them here; the [`Arbiter`], one task per port, takes them in the
//! order they came and runs one *transaction* at a time:
//!
//! 1. wait until the bus has been silent for the inter-frame gap;
//! 2. route the device's output to the requesting client alone (and to the
//!    clients that asked to see everything), then write the request;
//! 3. wait for the reply to end, by its [`ReplyRule`], by silence after its
//!    first byte where the rule cannot tell, or by the reply timeout;
//! 4. route the device's output to everyone again (unsolicited data).
//!
//! The exclusive write lock is the same mechanism: a `Lock` turn waits in
//! the queue like a request, and then the holder's turn is one long
//! transaction. Its requests go out at once, every reply is routed to it,
//! and everybody else's requests wait until it releases the lock, stops
//! writing for the idle time, reaches the lock's maximum hold time, or
//! disconnects.
//!
//! The operator's lock (`serialhub lock`) closes the gate in front of the
//! arbiter: the transaction on the wire finishes, and no other starts (nor
//! any lock turn) until `serialhub unlock`; the requests that come meanwhile
//! wait in their clients' pipelines. `unlock` also ends a client's lock turn.
//!
//! Every queue is bounded: a client has at most [`PIPELINE`] requests queued
//! (then its endpoint stops reading it: backpressure), and a client waits
//! for its lock turn before it sends more.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::reply::{ReplyDetector, ReplyRule};
use super::{ClientId, Hub};
use crate::timer::PreciseTimer;
use crate::traffic::{ClientRef, Event};

/// Requests one client may have queued. One would do for a strict
/// request/response master; a few let a pipelining Modbus TCP client keep
/// the bus busy, while bounding what one client can make others wait for.
pub const PIPELINE: usize = 4;
/// Turns in the arbiter's channel. Every sender also holds a pipeline
/// permit or waits for its lock, so this only caps bookkeeping.
const TURN_CHANNEL: usize = 64;

/// What happens to device output that arrives outside any transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unsolicited {
    /// Every client gets it.
    #[default]
    All,
    /// Nobody gets it (clients that see all still do); it is counted.
    Drop,
    /// The client whose transaction ran last gets it (and those that see all).
    Last,
}

/// Timing of transactions, resolved from the line rate and the flags.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnConfig {
    /// No reply after this long (from the request's last byte on the wire)
    /// ends the transaction as a timeout.
    pub reply_timeout: Duration,
    /// Silence after a reply's first byte that ends it, where its rule cannot
    /// tell its length.
    pub reply_gap: Duration,
    /// Silence left on the bus between two frames (3.5 characters for RTU).
    pub frame_gap: Duration,
    /// Line time of one character, to know when a request has left the wire.
    pub char_time: Duration,
    pub unsolicited: Unsolicited,
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The reply came, and this many bytes of it were routed to the client.
    Replied(usize),
    /// No complete reply within the timeout; `partial` bytes of one came.
    TimedOut { partial: usize },
    /// No reply was expected (a broadcast), or the request went out during
    /// the client's lock turn, whose replies all go to it.
    Sent,
}

/// One client's request, waiting for its turn.
#[derive(Debug)]
pub struct Request {
    pub client: ClientId,
    pub name: Arc<str>,
    pub data: Bytes,
    pub rule: ReplyRule,
    /// Told how the transaction ended, if the client wants to know.
    pub done: Option<oneshot::Sender<Outcome>>,
    /// The client's pipeline place, freed when the transaction ends.
    pub(super) _place: OwnedSemaphorePermit,
}

/// What clients send the arbiter.
#[derive(Debug)]
pub enum Turn {
    Request(Request),
    /// Take the write lock; `granted` fires when the holder's turn starts.
    Lock {
        client: ClientId,
        name: Arc<str>,
        granted: oneshot::Sender<()>,
        /// Bytes to queue to the holder when its turn starts, ahead of any
        /// reply: the in-band acknowledgement.
        ack: Option<Bytes>,
    },
    Unlock {
        client: ClientId,
    },
}

/// The device output's destination, as the hub's fan-out asks it.
#[derive(Debug, Default)]
pub(super) struct Routing {
    current: Option<Route>,
    /// The client of the last transaction, for `unsolicited=last`.
    last: Option<ClientId>,
    /// When the device last sent anything, for the inter-frame silence.
    last_rx: Option<Instant>,
}

#[derive(Debug)]
struct Route {
    client: ClientId,
    detector: ReplyDetector,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
}

/// Who gets a piece of device output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    All,
    /// This client, and clients that see all.
    Client(ClientId),
    /// Clients that see all only; the others' share is counted as dropped.
    Watchers,
    /// A request this client sent, shown to the clients that see all (but
    /// not back to it), as a bus monitor sees it.
    Request(ClientId),
}

impl Routing {
    pub(super) fn begin(&mut self, client: ClientId, detector: ReplyDetector) {
        self.current = Some(Route {
            client,
            detector,
            first_rx: None,
            last_rx: None,
        });
        self.last = Some(client);
    }

    /// Ends the running transaction; returns the bytes routed to it.
    pub(super) fn end(&mut self) -> usize {
        self.current.take().map_or(0, |r| r.detector.taken())
    }

    /// The running transaction's reply: (complete, bytes so far, when the
    /// last of them came, whether silence ends it).
    pub(super) fn progress(&self) -> (bool, usize, Option<Instant>, bool) {
        match &self.current {
            Some(r) => (
                r.detector.is_complete(),
                r.detector.taken(),
                r.last_rx,
                r.detector.ends_by_silence(),
            ),
            None => (true, 0, None, false),
        }
    }

    pub(super) fn last_rx(&self) -> Option<Instant> {
        self.last_rx
    }

    /// Splits device output into the part that answers the running
    /// transaction (for its client) and the unsolicited rest.
    pub(super) fn split(&mut self, data: &[u8], unsolicited: Unsolicited) -> [(Target, usize); 2] {
        let now = Instant::now();
        self.last_rx = Some(now);
        let mut reply = (Target::Client(0), 0);
        if let Some(r) = self.current.as_mut()
            && !r.detector.is_complete()
        {
            let n = r.detector.feed(data);
            if n > 0 {
                r.first_rx.get_or_insert(now);
                r.last_rx = Some(now);
            }
            reply = (Target::Client(r.client), n);
        }
        let rest = match (unsolicited, self.last) {
            (Unsolicited::All, _) => Target::All,
            (Unsolicited::Last, Some(c)) => Target::Client(c),
            (Unsolicited::Drop | Unsolicited::Last, _) => Target::Watchers,
        };
        [reply, (rest, data.len() - reply.1)]
    }
}

/// Who holds the write lock in transaction mode: a client during its lock
/// turn, or the operator. Shared by the arbiter and the control socket,
/// which must never wait for each other.
#[derive(Debug, Default)]
pub(super) struct TxnLock {
    held: Mutex<Held>,
    /// Woken when the lock is released or taken by the operator.
    changed: Notify,
}

#[derive(Debug, Default, PartialEq)]
enum Held {
    #[default]
    Free,
    Client(ClientId, Arc<str>),
    Operator,
}

/// A client's lock turn in [`TxnLock`]; ends it (if the operator has not
/// already) when dropped.
pub(super) struct ClientTurn<'a> {
    lock: &'a TxnLock,
    id: ClientId,
}

impl Drop for ClientTurn<'_> {
    fn drop(&mut self) {
        let mut held = self.lock.held();
        if matches!(&*held, Held::Client(id, _) if *id == self.id) {
            *held = Held::Free;
            self.lock.changed.notify_waiters();
        }
    }
}

impl TxnLock {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The holder's name, for status.
    pub(super) fn holder(&self) -> Option<Arc<str>> {
        match &*self.held() {
            Held::Free => None,
            Held::Client(_, name) => Some(name.clone()),
            Held::Operator => Some(super::lock::OPERATOR_NAME.into()),
        }
    }

    fn is_held_by(&self, client: ClientId) -> bool {
        matches!(&*self.held(), Held::Client(id, _) if *id == client)
    }

    /// See [`WriteLock::take_for_operator`](super::WriteLock::take_for_operator).
    pub(super) fn take_for_operator(&self) -> Result<bool, (ClientId, Arc<str>)> {
        let mut held = self.held();
        match &*held {
            Held::Operator => Ok(false),
            Held::Client(id, name) => Err((*id, name.clone())),
            Held::Free => {
                info!(holder = super::lock::OPERATOR_NAME, "write lock taken");
                *held = Held::Operator;
                self.changed.notify_waiters();
                Ok(true)
            }
        }
    }

    /// Releases the lock whoever holds it; a client's lock turn ends. Not
    /// logged here, nor by the lock turn: the caller, which knows the port,
    /// logs it once.
    pub(super) fn release_any(&self) -> Option<(ClientId, Arc<str>)> {
        let mut held = self.held();
        let was = match std::mem::take(&mut *held) {
            Held::Free => return None,
            Held::Client(id, name) => (id, name),
            Held::Operator => (super::lock::OPERATOR, super::lock::OPERATOR_NAME.into()),
        };
        self.changed.notify_waiters();
        Some(was)
    }

    /// Releases the lock if the operator holds it.
    pub(super) fn release_operator(&self, why: &str) {
        let mut held = self.held();
        if *held == Held::Operator {
            *held = Held::Free;
            info!(
                holder = super::lock::OPERATOR_NAME,
                "write lock released: {why}"
            );
            self.changed.notify_waiters();
        }
    }

    /// Waits while the operator holds the lock (until `stop`: what clients
    /// handed over is still delivered at shutdown), counting the wait; then,
    /// for a lock turn, makes `turn` the holder at once, so the operator
    /// cannot slip in between. Cancel safe.
    async fn gate<'a>(
        &'a self,
        turn: Option<(ClientId, &Arc<str>)>,
        waits: &std::sync::atomic::AtomicU64,
        stop: &CancellationToken,
    ) -> Option<ClientTurn<'a>> {
        let mut counted = false;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut held = self.held();
                if *held != Held::Operator || stop.is_cancelled() {
                    return turn.map(|(id, name)| {
                        *held = Held::Client(id, name.clone());
                        ClientTurn { lock: self, id }
                    });
                }
            }
            if !counted {
                counted = true;
                waits.fetch_add(1, Relaxed);
            }
            tokio::select! {
                () = changed => {}
                () = stop.cancelled() => {}
            }
        }
    }
}

/// The arbiter's receiving end, taken once by the port that runs it.
#[derive(Debug)]
pub struct Arbiter {
    turns: mpsc::Receiver<Turn>,
    config: TxnConfig,
    /// Turns that came while another client held the lock, in order.
    deferred: VecDeque<Turn>,
    /// Until when the bus is busy with the last request we wrote.
    wire_busy_until: Option<Instant>,
    /// Made by `run`, in the runtime that drives it.
    timer: Option<PreciseTimer>,
}

pub(super) fn channel(config: TxnConfig) -> (mpsc::Sender<Turn>, Arbiter) {
    let (tx, turns) = mpsc::channel(TURN_CHANNEL);
    let arbiter = Arbiter {
        turns,
        config,
        deferred: VecDeque::new(),
        wire_busy_until: None,
        timer: None,
    };
    (tx, arbiter)
}

impl Arbiter {
    /// Runs transactions until `stop`, then the ones already queued.
    pub async fn run(mut self, hub: Arc<Hub>, stop: CancellationToken) {
        // The inter-frame silence is a few character times: tokio's
        // millisecond timer would round it up by as much again.
        let timer = PreciseTimer::new();
        self.timer = Some(timer);
        loop {
            let turn = match self.deferred.pop_front() {
                Some(t) => t,
                None => tokio::select! {
                    t = self.turns.recv() => match t {
                        Some(t) => t,
                        None => return,
                    },
                    () = stop.cancelled() => break,
                },
            };
            self.take(&hub, turn, &stop).await;
        }
        // Stopping: what clients handed over is still theirs to deliver.
        while let Some(t) = self
            .deferred
            .pop_front()
            .or_else(|| self.turns.try_recv().ok())
        {
            self.take(&hub, t, &stop).await;
        }
    }

    async fn take(&mut self, hub: &Hub, turn: Turn, stop: &CancellationToken) {
        match turn {
            Turn::Request(r) => {
                hub.txn_lock.gate(None, &hub.stats.lock_waits, stop).await;
                self.transact(hub, r).await
            }
            Turn::Lock {
                client,
                name,
                granted,
                ack,
            } => {
                let turn = Some((client, &name));
                let _turn = hub.txn_lock.gate(turn, &hub.stats.lock_waits, stop).await;
                self.lock_turn(hub, client, name.clone(), granted, ack, stop)
                    .await
            }
            // Not the holder (any more): nothing to release.
            Turn::Unlock { .. } => {}
        }
    }

    /// Waits until the bus has been silent for the inter-frame gap. A device
    /// that never falls silent delays a request by at most the reply timeout.
    async fn wait_silence(&self, hub: &Hub) {
        let give_up = Instant::now() + self.config.reply_timeout;
        loop {
            let last = [self.wire_busy_until, hub.routing().last_rx()]
                .into_iter()
                .flatten()
                .max();
            let Some(quiet_at) = last.map(|t| t + self.config.frame_gap) else {
                return;
            };
            let now = Instant::now();
            if now >= quiet_at || now >= give_up {
                return;
            }
            match &self.timer {
                Some(t) => t.sleep_until(quiet_at.min(give_up)).await,
                None => tokio::time::sleep_until(quiet_at.min(give_up)).await,
            }
        }
    }

    /// Writes `data` for `client`, and notes when it will have left the wire.
    async fn write(&mut self, hub: &Hub, r: &Request) {
        hub.write_for(r.client, &r.name, r.data.clone()).await;
        let line_time = self
            .config
            .char_time
            .saturating_mul(u32::try_from(r.data.len()).unwrap_or(u32::MAX));
        self.wire_busy_until = Some(Instant::now() + line_time);
    }

    async fn transact(&mut self, hub: &Hub, r: Request) {
        self.wait_silence(hub).await;
        hub.routing().begin(r.client, ReplyDetector::new(r.rule));
        let who = ClientRef {
            id: r.client,
            name: r.name.clone(),
        };
        hub.traffic().record(Event::TxnBegin(who.clone()));
        debug!(client = %r.name, len = r.data.len(), "transaction begins");
        self.write(hub, &r).await;
        let on_wire = self.wire_busy_until.unwrap_or_else(Instant::now);
        let outcome = if r.rule == ReplyRule::None {
            tokio::time::sleep_until(on_wire).await;
            Outcome::Sent
        } else {
            self.await_reply(hub, on_wire + self.config.reply_timeout)
                .await
        };
        let routed = hub.routing().end();
        hub.traffic().record(match outcome {
            Outcome::TimedOut { partial } => Event::TxnTimeout {
                client: who,
                partial: partial as u64,
            },
            Outcome::Replied(_) | Outcome::Sent => Event::TxnEnd {
                client: who,
                reply: routed as u64,
            },
        });
        hub.note_outcome(r.client, &r.name, outcome, routed);
        debug!(client = %r.name, ?outcome, routed, "transaction ends");
        if let Some(done) = r.done {
            let _ = done.send(outcome);
        }
    }

    /// Waits for the running transaction's reply to end.
    async fn await_reply(&self, hub: &Hub, deadline: Instant) -> Outcome {
        loop {
            let activity = hub.rx_activity.notified();
            tokio::pin!(activity);
            activity.as_mut().enable();
            let (complete, taken, last_rx, gap_ends) = hub.routing().progress();
            if complete {
                return Outcome::Replied(taken);
            }
            let now = Instant::now();
            let gap_end = last_rx
                .filter(|_| gap_ends)
                .map(|t| t + self.config.reply_gap);
            if let Some(t) = gap_end
                && now >= t
            {
                return Outcome::Replied(taken);
            }
            if now >= deadline {
                return Outcome::TimedOut { partial: taken };
            }
            let wake = gap_end.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                () = activity => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The holder's turn: its requests go out as they come, every reply is
    /// routed to it, and everybody else waits.
    async fn lock_turn(
        &mut self,
        hub: &Hub,
        holder: ClientId,
        name: Arc<str>,
        granted: oneshot::Sender<()>,
        ack: Option<Bytes>,
        stop: &CancellationToken,
    ) {
        if !hub.is_attached(holder) {
            return;
        }
        self.wait_silence(hub).await;
        hub.routing()
            .begin(holder, ReplyDetector::new(ReplyRule::Gap));
        let who = ClientRef {
            id: holder,
            name: name.clone(),
        };
        hub.traffic().record(Event::TxnBegin(who.clone()));
        let since = Instant::now();
        let mut last_write = since;
        let (idle, max) = (hub.config.lock_idle, hub.config.lock_max);
        hub.lock_granted(holder, &name, ack);
        let _ = granted.send(());
        let why = loop {
            let detached = hub.detached.notified();
            tokio::pin!(detached);
            detached.as_mut().enable();
            let released = hub.txn_lock.changed.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !hub.is_attached(holder) {
                break Some("holder disconnected".to_owned());
            }
            if !hub.txn_lock.is_held_by(holder) {
                // `serialhub unlock`, which logged it.
                break None;
            }
            tokio::select! {
                t = self.turns.recv() => match t {
                    Some(Turn::Request(r)) if r.client == holder => {
                        self.write(hub, &r).await;
                        last_write = Instant::now();
                        if let Some(done) = r.done {
                            let _ = done.send(Outcome::Sent);
                        }
                    }
                    // Asking again while holding changes nothing, not even
                    // the idle timer.
                    Some(Turn::Lock { client, granted, ack, .. }) if client == holder => {
                        hub.lock_granted(holder, &name, ack);
                        let _ = granted.send(());
                    }
                    Some(Turn::Unlock { client }) if client == holder => {
                        break Some("holder asked".to_owned());
                    }
                    Some(Turn::Unlock { .. }) => {}
                    Some(other) => {
                        hub.stats.lock_waits.fetch_add(1, Relaxed);
                        self.deferred.push_back(other);
                    }
                    None => break Some("shutting down".to_owned()),
                },
                () = tokio::time::sleep_until(last_write + idle) => {
                    break Some(format!("idle for {idle:?}"));
                }
                () = tokio::time::sleep_until(since + max) => {
                    break Some(format!("held for the maximum {max:?} (--lock-max)"));
                }
                () = &mut detached => {}
                () = &mut released => {}
                () = stop.cancelled(), if self.turns.is_empty() => {
                    break Some("shutting down".to_owned());
                }
            }
        };
        let routed = hub.routing().end();
        hub.traffic().record(Event::TxnEnd {
            client: who,
            reply: routed as u64,
        });
        if let Some(why) = why {
            info!(holder = %name, held = ?since.elapsed(), "write lock released: {why}");
        }
    }
}

/// Counts a client's transactions, and logs timeouts once per run of them.
#[derive(Debug, Default)]
pub struct TxnStats {
    pub transactions: std::sync::atomic::AtomicU64,
    pub timeouts: std::sync::atomic::AtomicU64,
    /// Timeouts in a row, so a dead slave is logged once, not per request.
    pub(super) timeouts_in_a_row: std::sync::atomic::AtomicU64,
}

impl TxnStats {
    pub(super) fn note(&self, name: &str, outcome: Outcome) {
        self.transactions.fetch_add(1, Relaxed);
        match outcome {
            Outcome::TimedOut { partial } => {
                self.timeouts.fetch_add(1, Relaxed);
                if self.timeouts_in_a_row.fetch_add(1, Relaxed) == 0 {
                    warn!(client = %name, partial,
                        "no reply within the reply timeout; further timeouts in a row are counted");
                }
            }
            Outcome::Replied(_) | Outcome::Sent => {
                let missed = self.timeouts_in_a_row.swap(0, Relaxed);
                if missed > 0 {
                    info!(client = %name, timeouts = missed, "replies again after timeouts");
                }
            }
        }
    }
}
