//! The hub: where one device's data meets many clients.
//!
//! Reads fan out: every chunk read from the device is offered to every
//! client's bounded [`ByteQueue`], which writes it straight to an idle raw
//! client's socket when it can (see [`queue`]). A client whose queue is full is handled by
//! its [`SlowReaderPolicy`], so one stalled reader never stalls the device or
//! the other clients (unless the policy is `block`, which asks for exactly
//! that).
//!
//! Writes merge: clients submit chunks to one bounded channel that the device
//! writer drains in order, so each client's bytes stay in order and a chunk is
//! never split around another client's bytes. Every submitted chunk carries
//! permits from the *write budget*, a semaphore sized in bytes; the device
//! writer returns them only once the bytes are on the wire. A client must hold
//! permits before it reads from its socket, so the hub takes data from the
//! network no faster than the line sends it, and the budget bounds what is in
//! flight inside serialhub.

pub mod budget;
pub mod lock;
pub mod operator;
pub mod ops;
pub mod queue;
pub mod reply;
pub mod restore;
pub mod settings;
pub mod status;
pub mod txn;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use budget::Sizes;
pub use lock::WriteLock;
pub use ops::{
    DeviceOp, LineAnswer, LineChange, Signal, SignalAnswer, SignalChange, WriteChunk, WriteQueue,
};
pub use queue::{ByteQueue, DirectSink, PushError};
pub use reply::ReplyRule;
pub use settings::Policy as ControlPolicy;
pub use txn::{Arbiter, Outcome, TxnConfig, Unsolicited};

use txn::{Routing, Target, Turn, TxnLock, TxnStats};

use crate::line::LineSettings;
use crate::traffic::{Buffers, ClientRef, Event, TrafficLog};

/// What to do with a client whose output queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowReaderPolicy {
    /// Disconnect the client and log why.
    #[default]
    Disconnect,
    /// Drop data for that client only, counting every byte.
    Drop,
    /// Wait for the client: lossless for everyone, paced by the slowest
    /// reader. Only sensible with hardware flow control.
    Block,
}

/// Sizes that bound the hub's memory and latency.
#[derive(Clone, Debug, PartialEq)]
pub struct HubConfig {
    /// Bytes a client's output queue holds before the slow-reader policy acts.
    pub client_queue: usize,
    pub slow_reader: SlowReaderPolicy,
    /// Bytes accepted from clients and not yet written to the device.
    pub write_budget: usize,
    /// Most bytes taken from one client in one go; smaller than the budget so
    /// that several writers take turns.
    pub write_chunk: usize,
    /// Line time that may be in flight: the budget and client queues are
    /// sized from it again when the line's rate changes.
    pub max_inflight: Duration,
    /// The client queue was set by the user, so it does not follow the rate.
    pub client_queue_fixed: bool,
    /// The device is paced at the line rate, so the sizes are line time and
    /// follow the rate; unpaced, they are fixed bytes (see [`budget`]).
    pub paced: bool,
    /// A write-lock holder that writes nothing for this long loses the lock.
    pub lock_idle: Duration,
    /// A write-lock holder loses the lock after holding it this long, so a
    /// client that keeps trickling bytes cannot keep the others off forever.
    pub lock_max: Duration,
    /// `Some` under `--writers transaction`: requests are arbitrated one at
    /// a time and replies routed (see [`txn`]); `None` merges writes.
    pub txn: Option<TxnConfig>,
    /// A client's settings outlive it (`keep-settings`); otherwise the port
    /// returns to its configured ones when the last client that changed
    /// them leaves (see [`restore`]).
    pub keep_settings: bool,
}

#[cfg(test)]
impl HubConfig {
    /// A paced hub for unit tests: `client_queue` bytes a client, `budget`
    /// bytes of write budget taken half at a time, the lock's defaults.
    pub(crate) fn for_tests(
        slow_reader: SlowReaderPolicy,
        client_queue: usize,
        budget: usize,
    ) -> HubConfig {
        HubConfig {
            client_queue,
            slow_reader,
            write_budget: budget,
            write_chunk: budget / 2,
            max_inflight: Duration::from_secs(1),
            client_queue_fixed: true,
            paced: true,
            lock_idle: Duration::from_secs(60),
            lock_max: Duration::from_secs(600),
            txn: None,
            keep_settings: false,
        }
    }
}

/// Chunks in the write channel. Every chunk holds at least one budget permit,
/// so the budget is the real bound; this only caps bookkeeping.
const WRITE_CHANNEL_CHUNKS: usize = 64;

pub use crate::ids::ClientId;

/// Client ids are unique in the process, over all its ports, so a log line
/// or a `kick` names one client unambiguously.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Counters for one client, readable while it runs.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Device bytes queued for the client.
    pub to_client: AtomicU64,
    /// Client bytes submitted to the device.
    pub from_client: AtomicU64,
    /// Device bytes the client did not get (dropped, or discarded on kick).
    pub dropped: AtomicU64,
    /// Client bytes not sent to the device (a read-only endpoint).
    pub discarded: AtomicU64,
    /// Client bytes the kernel acknowledged but discarded when the
    /// connection was reset before serialhub could read them.
    pub lost: AtomicU64,
    /// Replies that could not be passed on (a Modbus reply failing its CRC).
    pub bad_replies: AtomicU64,
}

/// Counters for the whole hub.
#[derive(Debug, Default)]
pub struct HubStats {
    pub device_rx: AtomicU64,
    pub device_tx: AtomicU64,
    pub dropped: AtomicU64,
    pub kicked: AtomicU64,
    pub connected: AtomicU64,
    /// Connections refused: `--max-clients` reached, or no file descriptor
    /// to spare.
    pub refused: AtomicU64,
    /// Client bytes lost to connection resets (see [`ClientStats::lost`]).
    pub lost: AtomicU64,
    /// Unsolicited device bytes nobody was given (`unsolicited=drop`).
    pub unsolicited_dropped: AtomicU64,
    /// Transactions run, and those that ended without a reply.
    pub transactions: AtomicU64,
    pub timeouts: AtomicU64,
    /// Replies that could not be passed on (see [`ClientStats::bad_replies`]).
    pub bad_replies: AtomicU64,
    /// Reply bytes whose client had gone before they came.
    pub replies_discarded: AtomicU64,
    /// Settings and modem-line requests dropped unapplied because their
    /// client had left (issue 18).
    pub orphans_dropped: AtomicU64,
    /// Times the device came back after being lost (opens after the first).
    pub reopens: AtomicU64,
    /// Requests that waited for another client's lock turn (transaction
    /// mode); the merge mode's waits are counted by [`WriteLock::waits`].
    pub lock_waits: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    id: ClientId,
    name: Arc<str>,
    queue: ByteQueue,
    policy: SlowReaderPolicy,
    kicked: CancellationToken,
    /// Cancelled when the client leaves: kicked, its connection failed, or
    /// detached. Its settings and modem-line requests still queued for the
    /// device are then dropped (its data still goes out).
    departed: CancellationToken,
    /// Set while a `drop` client is losing data, so the loss is logged once per
    /// episode rather than once per chunk.
    dropping: AtomicBool,
    stats: ClientStats,
    connected: time::OffsetDateTime,
    /// Gets all device output, whoever's transaction it answers (a monitor).
    see_all: AtomicBool,
    /// Gets only replies to its own requests, never unsolicited output (a
    /// Modbus TCP client, which could not tell one from the other).
    replies_only: AtomicBool,
    /// Places for the client's queued requests ([`txn::PIPELINE`]).
    pipeline: Arc<Semaphore>,
    txn: TxnStats,
}

impl Slot {
    fn client_ref(&self) -> ClientRef {
        ClientRef {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    /// Copy on write: attach and detach make a new list, so a publish
    /// takes a snapshot with one reference count, not a copy of the list.
    clients: Mutex<Arc<Vec<Arc<Slot>>>>,
    budget: budget::Budget,
    /// The queue size for clients that attach now; it follows the line rate.
    client_queue: AtomicUsize,
    /// The line settings in force, as the device last applied them.
    line: tokio::sync::watch::Sender<Option<LineSettings>>,
    /// Who may change the settings; the modem lines.
    pub settings: settings::SharedSettings,
    /// Whose changes are in force, and the configured line to return to.
    pub changers: restore::Changers,
    writes: mpsc::Sender<DeviceOp>,
    lock: WriteLock,
    pub stats: HubStats,
    traffic: TrafficLog,
    /// Where device output goes: the running transaction's client, or all.
    routing: Mutex<Routing>,
    /// The device's state and since when, for status.
    device: Mutex<(status::DeviceState, time::OffsetDateTime)>,
    /// Woken when device output arrives, for the arbiter's reply timing.
    rx_activity: Notify,
    /// Woken when a client leaves, for the arbiter's lock turn.
    detached: Notify,
    /// Requests and lock turns, to the arbiter (transaction mode only).
    turns: Option<mpsc::Sender<Turn>>,
    /// The arbiter, until the port takes it to run it.
    arbiter: Mutex<Option<Arbiter>>,
    /// The write lock in transaction mode (`lock` is merge mode's).
    txn_lock: TxnLock,
}

/// The hub is gone (shutting down); the client should close.
#[derive(Debug, thiserror::Error)]
#[error("the hub has shut down")]
pub struct HubClosed;

impl Hub {
    pub fn new(config: HubConfig) -> (Arc<Hub>, WriteQueue) {
        Self::with_traffic(config, TrafficLog::disabled())
    }

    /// A hub whose traffic (and clients' comings and goings) goes to `traffic`.
    pub fn with_traffic(config: HubConfig, traffic: TrafficLog) -> (Arc<Hub>, WriteQueue) {
        let (writes, rx) = mpsc::channel(WRITE_CHANNEL_CHUNKS);
        let (turns, arbiter) = match &config.txn {
            Some(t) => {
                let (tx, arbiter) = txn::channel(t.clone());
                (Some(tx), Some(arbiter))
            }
            None => (None, None),
        };
        let hub = Hub {
            budget: budget::Budget::new(config.write_budget, config.write_chunk),
            client_queue: AtomicUsize::new(config.client_queue),
            line: tokio::sync::watch::Sender::new(None),
            settings: settings::SharedSettings::default(),
            changers: restore::Changers::default(),
            lock: WriteLock::new(config.lock_idle, config.lock_max),
            config,
            clients: Mutex::new(Arc::new(Vec::new())),
            writes,
            stats: HubStats::default(),
            traffic,
            routing: Mutex::new(Routing::default()),
            device: Mutex::new((
                status::DeviceState::Opening,
                time::OffsetDateTime::now_utc(),
            )),
            rx_activity: Notify::new(),
            detached: Notify::new(),
            turns,
            arbiter: Mutex::new(arbiter),
            txn_lock: TxnLock::default(),
        };
        (Arc::new(hub), rx)
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The transaction arbiter, for the port to run; `None` when writes are
    /// merged, or once taken.
    pub fn take_arbiter(&self) -> Option<Arbiter> {
        self.arbiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether requests are arbitrated (`--writers transaction`).
    pub fn is_transactional(&self) -> bool {
        self.turns.is_some()
    }

    fn routing(&self) -> std::sync::MutexGuard<'_, Routing> {
        self.routing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_attached(&self, id: ClientId) -> bool {
        self.clients().iter().any(|s| s.id == id)
    }

    fn slot(&self, id: ClientId) -> Option<Arc<Slot>> {
        self.clients().iter().find(|s| s.id == id).cloned()
    }

    /// Writes `data` to the device for a client, holding write budget like
    /// any client's chunk. Used by the arbiter, the only writer in
    /// transaction mode.
    async fn write_for(&self, client: ClientId, name: &Arc<str>, data: Bytes) {
        let Ok(permit) = self.budget.acquire(data.len()).await else {
            return;
        };
        if let Some(slot) = self.slot(client) {
            slot.stats.from_client.fetch_add(data.len() as u64, Relaxed);
        }
        let chunk = WriteChunk {
            client,
            client_name: name.clone(),
            data,
            permit,
        };
        let shown = chunk.data.clone();
        if self.send_op(DeviceOp::Write(chunk)).await.is_ok() {
            self.fan_out(shown, Target::Request(client)).await;
        }
    }

    /// Counts a finished transaction for its client; `routed` reply bytes
    /// are counted as discarded if the client has gone.
    fn note_outcome(&self, client: ClientId, name: &str, outcome: Outcome, routed: usize) {
        self.stats.transactions.fetch_add(1, Relaxed);
        if matches!(outcome, Outcome::TimedOut { .. }) {
            self.stats.timeouts.fetch_add(1, Relaxed);
        }
        match self.slot(client) {
            Some(slot) => slot.txn.note(name, outcome),
            None => {
                self.stats
                    .replies_discarded
                    .fetch_add(routed as u64, Relaxed);
                debug!(client = %name, routed, "reply discarded: its client has gone");
            }
        }
    }

    /// The lock turn of `client` has started: queue its acknowledgement.
    fn lock_granted(&self, client: ClientId, name: &str, ack: Option<Bytes>) {
        info!(holder = %name, "write lock taken");
        if let (Some(ack), Some(slot)) = (ack, self.slot(client)) {
            // An empty queue takes any chunk, and a full one means the
            // client is not reading: its policy applies as to any data.
            if slot.queue.try_push(ack.clone()).is_err() {
                self.overflow(&slot, ack.len());
            }
        }
    }

    /// The traffic log (a no-op handle when logging is off).
    pub fn traffic(&self) -> &TrafficLog {
        &self.traffic
    }

    fn clients_mut(&self) -> std::sync::MutexGuard<'_, Arc<Vec<Arc<Slot>>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clients now; attach and detach do not change a snapshot.
    fn clients(&self) -> Arc<Vec<Arc<Slot>>> {
        self.clients_mut().clone()
    }

    /// Registers a client; it receives device data from now on.
    pub fn attach(self: &Arc<Self>, name: impl Into<Arc<str>>) -> ClientHandle {
        self.attach_with(name, self.config.slow_reader)
    }

    /// Registers a client with its own slow-reader policy.
    pub fn attach_with(
        self: &Arc<Self>,
        name: impl Into<Arc<str>>,
        policy: SlowReaderPolicy,
    ) -> ClientHandle {
        let slot = Arc::new(Slot {
            id: NEXT_CLIENT_ID.fetch_add(1, Relaxed),
            name: name.into(),
            queue: ByteQueue::new(self.client_queue.load(Relaxed)),
            policy,
            kicked: CancellationToken::new(),
            departed: CancellationToken::new(),
            dropping: AtomicBool::new(false),
            stats: ClientStats::default(),
            connected: time::OffsetDateTime::now_utc(),
            see_all: AtomicBool::new(false),
            replies_only: AtomicBool::new(false),
            pipeline: Arc::new(Semaphore::new(txn::PIPELINE)),
            txn: TxnStats::default(),
        });
        Arc::make_mut(&mut self.clients_mut()).push(slot.clone());
        self.stats.connected.fetch_add(1, Relaxed);
        self.traffic.record(Event::Connect(slot.client_ref()));
        ClientHandle {
            hub: self.clone(),
            slot,
        }
    }

    fn detach(&self, id: ClientId) {
        let mut clients = self.clients_mut();
        if let Some(i) = clients.iter().position(|s| s.id == id) {
            let slot = Arc::make_mut(&mut clients).swap_remove(i);
            slot.queue.close();
            slot.departed.cancel();
            self.lock.release(id, "holder disconnected");
            self.settings.release(id);
            self.restore_after(id);
            self.stats.connected.fetch_sub(1, Relaxed);
            self.traffic.record(Event::Disconnect(slot.client_ref()));
            drop(clients);
            self.detached.notify_waiters();
        }
    }

    pub fn client_count(&self) -> usize {
        self.clients().len()
    }

    /// Offers one chunk of device data to the clients it is for: the client
    /// whose transaction it answers, or everyone (see [`txn`]).
    ///
    /// Returns at once unless a `block` client's queue is full.
    pub async fn publish(&self, data: Bytes) {
        self.stats.device_rx.fetch_add(data.len() as u64, Relaxed);
        let unsolicited = self.config.txn.as_ref().map(|t| t.unsolicited);
        let parts = match unsolicited {
            Some(u) => self.routing().split(&data, u),
            None => [(Target::All, data.len()), (Target::All, 0)],
        };
        if unsolicited.is_some() {
            self.rx_activity.notify_waiters();
        }
        let mut at = 0;
        for (i, (target, n)) in parts.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            let piece = data.slice(at..at + n);
            at += n;
            // The first part is the running transaction's reply.
            let replied_to = match target {
                Target::Client(id) if i == 0 => self.slot(id),
                _ => None,
            };
            self.traffic.record(match replied_to {
                Some(slot) => Event::Reply(slot.client_ref(), piece.clone()),
                None => Event::Rx(piece.clone()),
            });
            if target == Target::Watchers {
                self.stats.unsolicited_dropped.fetch_add(n as u64, Relaxed);
            }
            self.fan_out(piece, target).await;
        }
    }

    async fn fan_out(&self, data: Bytes, target: Target) {
        let clients = self.clients();
        for slot in clients.iter() {
            let wanted = match target {
                Target::Client(id) if slot.id == id => true,
                Target::Request(id) if slot.id == id => false,
                _ if slot.replies_only.load(Relaxed) => false,
                Target::All => true,
                Target::Client(_) | Target::Watchers | Target::Request(_) => {
                    slot.see_all.load(Relaxed)
                }
            };
            if !wanted {
                continue;
            }
            let pushed = match slot.policy {
                SlowReaderPolicy::Block => slot.queue.push(data.clone()).await,
                _ => slot.queue.try_push(data.clone()),
            };
            match pushed {
                Ok(()) => {
                    slot.stats.to_client.fetch_add(data.len() as u64, Relaxed);
                    if slot.dropping.swap(false, Relaxed) {
                        self.traffic.record(Event::SlowResume {
                            client: slot.client_ref(),
                            dropped: slot.stats.dropped.load(Relaxed),
                        });
                        info!(client = %slot.name, dropped_total = slot.stats.dropped.load(Relaxed),
                            "client caught up; delivering again");
                    }
                }
                Err(PushError::Closed) => {}
                Err(PushError::Full) => self.overflow(slot, data.len()),
            }
        }
    }

    fn overflow(&self, slot: &Slot, len: usize) {
        match slot.policy {
            SlowReaderPolicy::Drop => {
                self.count_dropped(slot, len);
                if !slot.dropping.swap(true, Relaxed) {
                    self.traffic.record(Event::SlowDrop(slot.client_ref()));
                    warn!(client = %slot.name, queue = slot.queue.capacity(),
                        "client output queue full; dropping data for this client");
                }
            }
            // `block` never reports Full; treat it like disconnect if it did.
            SlowReaderPolicy::Disconnect | SlowReaderPolicy::Block => {
                let discarded = slot.queue.close() + len;
                self.count_dropped(slot, discarded);
                self.stats.kicked.fetch_add(1, Relaxed);
                slot.kicked.cancel();
                slot.departed.cancel();
                self.traffic.record(Event::SlowKick {
                    client: slot.client_ref(),
                    discarded: discarded as u64,
                });
                // `dropped`, the client's own counter, which its
                // "client disconnected" line gives too.
                warn!(client = %slot.name, queue = slot.queue.capacity(),
                    dropped = slot.stats.dropped.load(Relaxed),
                    "disconnecting client: output queue full (slow reader)");
            }
        }
    }

    fn count_dropped(&self, slot: &Slot, n: usize) {
        slot.stats.dropped.fetch_add(n as u64, Relaxed);
        self.stats.dropped.fetch_add(n as u64, Relaxed);
    }

    /// The write lock shared by all clients.
    pub fn write_lock(&self) -> &WriteLock {
        &self.lock
    }

    /// Bytes of write budget currently held by clients and the device writer.
    pub fn writes_in_flight(&self) -> usize {
        self.budget.in_flight()
    }

    /// Asks the device to change its line settings once every byte queued
    /// before is on the wire. The receiver (if asked for) is told the
    /// settings then in force; it is dropped unanswered if the port stops.
    pub async fn change_line(
        &self,
        line: LineSettings,
        by: Option<ClientRef>,
    ) -> Result<oneshot::Receiver<LineAnswer>, HubClosed> {
        self.change_line_for(line, by, None).await
    }

    async fn change_line_for(
        &self,
        line: LineSettings,
        by: Option<ClientRef>,
        departed: Option<CancellationToken>,
    ) -> Result<oneshot::Receiver<LineAnswer>, HubClosed> {
        let (answer, told) = oneshot::channel();
        let answer = Some(answer);
        let change = LineChange {
            line,
            by,
            departed,
            answer,
        };
        self.send_op(DeviceOp::Line(change)).await?;
        Ok(told)
    }

    /// Asks the device to set a modem output (or break) once every byte
    /// queued before is on the wire; see [`change_line`](Self::change_line).
    pub async fn change_signal(
        &self,
        signal: Signal,
        on: bool,
        by: Option<ClientRef>,
        departed: Option<CancellationToken>,
    ) -> Result<oneshot::Receiver<SignalAnswer>, HubClosed> {
        let (answer, told) = oneshot::channel();
        let answer = Some(answer);
        let change = SignalChange {
            signal,
            on,
            by,
            departed,
            answer,
        };
        self.send_op(DeviceOp::Signal(change)).await?;
        Ok(told)
    }

    /// Queues `op` for the device, after everything queued before.
    async fn send_op(&self, op: DeviceOp) -> Result<(), HubClosed> {
        self.writes.send(op).await.map_err(|_| HubClosed)
    }

    /// The line settings in force; `None` before the device first opened.
    pub fn line(&self) -> Option<LineSettings> {
        *self.line.borrow()
    }

    /// Told of every change of the line settings in force.
    pub fn watch_line(&self) -> tokio::sync::watch::Receiver<Option<LineSettings>> {
        self.line.subscribe()
    }

    /// The device now runs with `line`: the write budget and new clients'
    /// queues follow its rate (see [`budget`]) if the device is paced.
    pub fn line_applied(&self, line: LineSettings) {
        let before = self.line.send_replace(Some(line));
        if !self.config.paced || before.is_none_or(|b| b.bytes_per_sec() == line.bytes_per_sec()) {
            return;
        }
        let fixed = self
            .config
            .client_queue_fixed
            .then_some(self.config.client_queue);
        let sizes = Sizes::for_line(&line, self.config.max_inflight, fixed);
        self.budget.resize(sizes.write_budget, sizes.write_chunk);
        self.client_queue.store(sizes.client_queue, Relaxed);
        info!(
            write_budget = sizes.write_budget,
            client_queue = sizes.client_queue,
            "sizes follow the new line rate"
        );
    }
}

/// A client's membership in the hub. Dropping it detaches the client.
#[derive(Debug)]
pub struct ClientHandle {
    hub: Arc<Hub>,
    slot: Arc<Slot>,
}

impl ClientHandle {
    pub fn id(&self) -> ClientId {
        self.slot.id
    }

    pub fn name(&self) -> &str {
        &self.slot.name
    }

    pub fn stats(&self) -> &ClientStats {
        &self.slot.stats
    }

    /// The next device chunk for this client; `None` once it was kicked or
    /// detached. Cancel safe.
    pub async fn next_output(&self) -> Option<Bytes> {
        self.slot.queue.pop().await
    }

    /// The client has written the chunk [`next_output`](Self::next_output)
    /// gave it last.
    pub fn output_written(&self) {
        self.slot.queue.written();
    }

    /// Device data for this client is written straight to `sink` while its
    /// queue is empty and its writer idle, without waking the writer (see
    /// [`queue`]). The writer must write to the same socket and call
    /// [`output_written`](Self::output_written) after each chunk.
    pub fn write_through_to(&self, sink: Arc<dyn DirectSink>) {
        self.slot.queue.write_through_to(sink);
    }

    /// Discards the device data queued for this client and not yet sent
    /// (the client asked for it: RFC 2217 PURGE-DATA). Returns how much.
    pub fn purge_output(&self) -> usize {
        self.slot.queue.clear()
    }

    /// Records the client's purge request (RFC 2217 PURGE-DATA) in the
    /// traffic log, with the `discarded` bytes of its queue it cost.
    pub fn record_purge(&self, buffers: Buffers, discarded: usize) {
        self.hub.traffic().record(Event::Purge {
            client: self.slot.client_ref(),
            buffers,
            discarded: discarded as u64,
        });
    }

    /// Stops fan-out to this client, which takes no more device data (its
    /// connection failed). Its writes still go to the device.
    pub fn close_output(&self) {
        self.slot.queue.close();
        self.slot.departed.cancel();
    }

    /// Counts a reply to this client that could not be passed on.
    pub fn count_bad_reply(&self) {
        self.slot.stats.bad_replies.fetch_add(1, Relaxed);
        self.hub.stats.bad_replies.fetch_add(1, Relaxed);
    }

    /// Counts client bytes the kernel discarded before they could be read.
    pub fn count_lost(&self, n: usize) {
        self.slot.stats.lost.fetch_add(n as u64, Relaxed);
        self.hub.stats.lost.fetch_add(n as u64, Relaxed);
    }

    /// Transaction timing, when requests are arbitrated.
    pub fn txn_config(&self) -> Option<&TxnConfig> {
        self.hub.config.txn.as_ref()
    }

    /// Makes this client see all device output, whoever's transaction it
    /// answers (`see=all`).
    pub fn see_all(&self, on: bool) {
        self.slot.see_all.store(on, Relaxed);
    }

    /// Makes this client get only replies to its own requests, never
    /// unsolicited output nor other clients' replies.
    pub fn replies_only(&self) {
        self.slot.replies_only.store(true, Relaxed);
        self.slot.see_all.store(false, Relaxed);
    }

    /// Queues a request for the arbiter (transaction mode), waiting for a
    /// place in the client's pipeline: backpressure. `done`, if given, is
    /// told how the transaction ended. Cancel safe.
    pub async fn request(
        &self,
        data: Bytes,
        rule: ReplyRule,
        done: Option<tokio::sync::oneshot::Sender<Outcome>>,
    ) -> Result<(), HubClosed> {
        let turns = self.hub.turns.as_ref().ok_or(HubClosed)?;
        let place = self
            .slot
            .pipeline
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HubClosed)?;
        let request = txn::Request {
            client: self.slot.id,
            name: self.slot.name.clone(),
            data,
            rule,
            done,
            _place: place,
        };
        turns
            .send(Turn::Request(request))
            .await
            .map_err(|_| HubClosed)
    }

    /// Takes the write lock in transaction mode: waits for this client's
    /// turn, which starts by queueing `ack` to it.
    pub async fn txn_lock(&self, ack: Option<Bytes>) -> Result<(), HubClosed> {
        let turns = self.hub.turns.as_ref().ok_or(HubClosed)?;
        let (granted, wait) = tokio::sync::oneshot::channel();
        turns
            .send(Turn::Lock {
                client: self.slot.id,
                name: self.slot.name.clone(),
                granted,
                ack,
            })
            .await
            .map_err(|_| HubClosed)?;
        wait.await.map_err(|_| HubClosed)
    }

    /// Releases the write lock in transaction mode, after this client's
    /// requests already queued.
    pub async fn txn_unlock(&self) -> Result<(), HubClosed> {
        let turns = self.hub.turns.as_ref().ok_or(HubClosed)?;
        turns
            .send(Turn::Unlock {
                client: self.slot.id,
            })
            .await
            .map_err(|_| HubClosed)
    }

    /// Transactions this client ran, and those that timed out.
    pub fn transactions(&self) -> (u64, u64) {
        (
            self.slot.txn.transactions.load(Relaxed),
            self.slot.txn.timeouts.load(Relaxed),
        )
    }

    /// Asks for new line settings in the client's name (see
    /// [`Hub::change_line`]); the caller applies the settings policy first.
    pub async fn change_line(
        &self,
        line: LineSettings,
    ) -> Result<oneshot::Receiver<LineAnswer>, HubClosed> {
        let departed = Some(self.slot.departed.clone());
        self.hub
            .change_line_for(line, Some(self.slot.client_ref()), departed)
            .await
    }

    /// Asks for a modem output (or break) in the client's name.
    pub async fn change_signal(
        &self,
        signal: Signal,
        on: bool,
    ) -> Result<oneshot::Receiver<SignalAnswer>, HubClosed> {
        let departed = Some(self.slot.departed.clone());
        self.hub
            .change_signal(signal, on, Some(self.slot.client_ref()), departed)
            .await
    }

    /// Whether this client may change the port's settings under `policy`.
    pub fn claim_settings(&self, policy: ControlPolicy) -> Result<(), settings::Denied> {
        self.hub
            .settings
            .claim(self.slot.id, &self.slot.name, policy)
    }

    /// Whether this client could change the settings under `policy`,
    /// without claiming them.
    pub fn may_change_settings(&self, policy: ControlPolicy) -> bool {
        self.hub.settings.permits(self.slot.id, policy)
    }

    /// The client's input ended: it can ask for nothing more, so it owns
    /// the settings no longer (issue 19: the owner's linger blocked the
    /// next client's open for a second). What it asked for before is
    /// already queued, in order with its bytes.
    pub fn release_settings(&self) {
        self.hub.settings.release(self.slot.id);
    }

    /// The port's hub, for what every client may read (settings in force,
    /// modem lines).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Cancelled when the hub disconnects this client.
    pub fn kicked(&self) -> &CancellationToken {
        &self.slot.kicked
    }

    /// This client's slow-reader policy.
    pub fn policy(&self) -> SlowReaderPolicy {
        self.slot.policy
    }

    /// `len` bytes of output meant for this client (protocol answers) did
    /// not fit in its bounded output: its slow-reader policy applies, as
    /// to device data (`drop` counts them, `disconnect` kicks the client).
    pub fn output_overflow(&self, len: usize) {
        self.hub.overflow(&self.slot, len);
    }

    /// Waits for write budget for up to `write_chunk` bytes. Call it once the
    /// client has data ready, read at most `permit.num_permits()` bytes, then
    /// [`submit`](Self::submit). Cancel safe.
    pub async fn reserve(&self) -> Result<OwnedSemaphorePermit, HubClosed> {
        self.reserve_exact(self.hub.budget.chunk()).await
    }

    /// Waits for write budget for `n` bytes (at most the whole budget), after
    /// waiting for the write lock to be free or ours. Cancel safe.
    pub async fn reserve_exact(&self, n: usize) -> Result<OwnedSemaphorePermit, HubClosed> {
        self.hub.lock.wait_turn(self.slot.id).await;
        self.hub.budget.acquire(n).await.map_err(|_| HubClosed)
    }

    /// Takes the exclusive write lock, waiting while another client holds it.
    pub async fn lock(&self) {
        self.hub.lock.acquire(self.slot.id, &self.slot.name).await
    }

    /// Releases the write lock if this client holds it; `why` is logged.
    pub fn unlock(&self, why: &str) -> bool {
        self.hub.lock.release(self.slot.id, why)
    }

    /// Sends `data` to the device. The permit must come from
    /// [`reserve`](Self::reserve) and cover `data`; its surplus is returned.
    pub async fn submit(
        &self,
        data: Bytes,
        mut permit: OwnedSemaphorePermit,
    ) -> Result<(), HubClosed> {
        let permit = permit.split(data.len()).unwrap_or(permit);
        self.hub.lock.touch(self.slot.id);
        self.slot
            .stats
            .from_client
            .fetch_add(data.len() as u64, Relaxed);
        let chunk = WriteChunk {
            client: self.slot.id,
            client_name: self.slot.name.clone(),
            data,
            permit,
        };
        self.hub.send_op(DeviceOp::Write(chunk)).await
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.hub.detach(self.slot.id);
    }
}

#[cfg(test)]
mod tests;
