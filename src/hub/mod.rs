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
//!
//! This file holds the [`Hub`] itself: construction, attach and detach, and
//! the device-bound queue. Beside it: `config` (sizes and policies), `stats`
//! (counters), `client` (a client's slot and [`ClientHandle`]), `fanout`
//! (device data to the clients' queues, slow readers).

pub(crate) mod budget;
mod client;
mod config;
mod fanout;
pub(crate) mod history;
pub(crate) mod lock;
pub(crate) mod operator;
pub(crate) mod ops;
pub(crate) mod queue;
pub(crate) mod reply;
pub(crate) mod restore;
pub(crate) mod settings;
mod stats;
pub(crate) mod status;
pub(crate) mod txn;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub(crate) use budget::Sizes;
pub(crate) use client::ClientHandle;
pub use config::{HubConfig, SlowReaderPolicy};
pub(crate) use lock::WriteLock;
pub(crate) use ops::{
    DeviceOp, LineAnswer, LineChange, Signal, SignalAnswer, SignalChange, WriteChunk, WriteQueue,
};
pub(crate) use queue::{ByteQueue, DirectSink, PushError};
pub(crate) use reply::ReplyRule;
pub(crate) use settings::Policy as ControlPolicy;
pub(crate) use stats::{ClientStats, HubStats, StatsSnapshot};
pub(crate) use txn::{Arbiter, Outcome, TxnConfig, Unsolicited};

use client::Slot;
use config::WRITE_CHANNEL_CHUNKS;
use txn::{Routing, Target, Turn, TxnLock, TxnStats};

use crate::line::LineSettings;
use crate::traffic::{ClientRef, Event, TrafficLog};

pub(crate) use crate::ids::ClientId;

/// Client ids are unique in the process, over all its ports, so a log line
/// or a `kick` names one client unambiguously.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

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
    pub(crate) settings: settings::SharedSettings,
    /// Whose changes are in force, and the configured line to return to.
    pub(crate) changers: restore::Changers,
    writes: mpsc::Sender<DeviceOp>,
    lock: WriteLock,
    pub(crate) stats: HubStats,
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
    /// The scrollback; also the lock under which device data meets the
    /// client list (see [`history`]).
    history: Mutex<history::History>,
    /// The write lock in transaction mode (`lock` is merge mode's).
    txn_lock: TxnLock,
}

/// The hub is gone (shutting down); the client should close.
#[derive(Debug, thiserror::Error)]
#[error("the hub has shut down")]
pub(crate) struct HubClosed;

impl Hub {
    pub fn new(config: HubConfig) -> (Arc<Hub>, WriteQueue) {
        Self::with_traffic(config, TrafficLog::disabled())
    }

    /// A hub whose traffic (and clients' comings and goings) goes to `traffic`.
    pub(crate) fn with_traffic(config: HubConfig, traffic: TrafficLog) -> (Arc<Hub>, WriteQueue) {
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
            history: Mutex::new(history::History::new(config.scrollback)),
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

    pub(crate) fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The transaction arbiter, for the port to run; `None` when writes are
    /// merged, or once taken.
    pub(crate) fn take_arbiter(&self) -> Option<Arbiter> {
        self.arbiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether requests are arbitrated (`--writers transaction`).
    pub(crate) fn is_transactional(&self) -> bool {
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
    pub(crate) fn traffic(&self) -> &TrafficLog {
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
    pub(crate) fn attach_with(
        self: &Arc<Self>,
        name: impl Into<Arc<str>>,
        policy: SlowReaderPolicy,
    ) -> ClientHandle {
        self.attach_identified(name, policy, None)
    }

    /// [`attach_with`](Self::attach_with) for a client that a TLS client
    /// certificate names: its identity shows in status and in the traffic
    /// log's connect record.
    pub fn attach_identified(
        self: &Arc<Self>,
        name: impl Into<Arc<str>>,
        policy: SlowReaderPolicy,
        identity: Option<crate::tls::Identity>,
    ) -> ClientHandle {
        let certified = identity.as_ref().map(|i| crate::traffic::Certified {
            identity: i.to_string(),
            sha256: i.fingerprint(),
        });
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
            identity,
        });
        Arc::make_mut(&mut self.clients_mut()).push(slot.clone());
        self.stats.connected.fetch_add(1, Relaxed);
        self.traffic
            .record(Event::Connect(slot.client_ref(), certified));
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

    #[cfg(test)]
    pub(crate) fn client_count(&self) -> usize {
        self.clients().len()
    }

    /// The write lock shared by all clients.
    pub(crate) fn write_lock(&self) -> &WriteLock {
        &self.lock
    }

    /// Bytes of write budget currently held by clients and the device writer.
    pub(crate) fn writes_in_flight(&self) -> usize {
        self.budget.in_flight()
    }

    /// Asks the device to change its line settings once every byte queued
    /// before is on the wire. The receiver (if asked for) is told the
    /// settings then in force; it is dropped unanswered if the port stops.
    pub(crate) async fn change_line(
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
    pub(crate) async fn change_signal(
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
    pub(crate) fn line(&self) -> Option<LineSettings> {
        *self.line.borrow()
    }

    /// The device now runs with `line`: the write budget and new clients'
    /// queues follow its rate (see [`budget`]) if the device is paced.
    pub(crate) fn line_applied(&self, line: LineSettings) {
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

#[cfg(test)]
mod tests;
