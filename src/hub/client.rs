//! A client's membership in the hub: its [`Slot`] (queue, policy, counters,
//! cancel tokens), and the [`ClientHandle`] an endpoint holds to read device
//! data, submit writes, take the write lock, run transactions and ask for
//! settings. Dropping the handle detaches the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use super::txn::{self, Turn, TxnStats};
use super::{
    ByteQueue, ClientId, ClientStats, ControlPolicy, DeviceOp, DirectSink, Hub, HubClosed,
    LineAnswer, Outcome, ReplyRule, Signal, SignalAnswer, SlowReaderPolicy, TxnConfig, WriteChunk,
    settings,
};
use crate::line::LineSettings;
use crate::traffic::{Buffers, ClientRef, Event};

/// One attached client as the hub holds it: what fan-out, status and the
/// arbiter read, shared with the client's [`ClientHandle`].
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) id: ClientId,
    pub(super) name: Arc<str>,
    pub(super) queue: ByteQueue,
    pub(super) policy: SlowReaderPolicy,
    pub(super) kicked: CancellationToken,
    /// Cancelled when the client leaves: kicked, its connection failed, or
    /// detached. Its settings and modem-line requests still queued for the
    /// device are then dropped (its data still goes out).
    pub(super) departed: CancellationToken,
    /// Set while a `drop` client is losing data, so the loss is logged once per
    /// episode rather than once per chunk.
    pub(super) dropping: AtomicBool,
    pub(super) stats: ClientStats,
    pub(super) connected: time::OffsetDateTime,
    /// Gets all device output, whoever's transaction it answers (a monitor).
    pub(super) see_all: AtomicBool,
    /// Gets only replies to its own requests, never unsolicited output (a
    /// Modbus TCP client, which could not tell one from the other).
    pub(super) replies_only: AtomicBool,
    /// Places for the client's queued requests ([`txn::PIPELINE`](super::txn::PIPELINE)).
    pub(super) pipeline: Arc<Semaphore>,
    pub(super) txn: TxnStats,
    /// Who its TLS client certificate names; `None` for a plain client.
    pub(super) identity: Option<crate::tls::Identity>,
}

impl Slot {
    pub(super) fn client_ref(&self) -> ClientRef {
        ClientRef {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

/// A client's membership in the hub. Dropping it detaches the client.
#[derive(Debug)]
pub struct ClientHandle {
    pub(super) hub: Arc<Hub>,
    pub(super) slot: Arc<Slot>,
}

impl ClientHandle {
    pub(crate) fn id(&self) -> ClientId {
        self.slot.id
    }

    pub(crate) fn stats(&self) -> &ClientStats {
        &self.slot.stats
    }

    /// The next device chunk for this client; `None` once it was kicked or
    /// detached. Cancel safe.
    pub async fn next_output(&self) -> Option<Bytes> {
        self.slot.queue.pop().await
    }

    /// The client has written the chunk [`next_output`](Self::next_output)
    /// gave it last.
    pub(crate) fn output_written(&self) {
        self.slot.queue.written();
    }

    /// Device data for this client is written straight to `sink` while its
    /// queue is empty and its writer idle, without waking the writer (see
    /// [`queue`](super::queue)). The writer must write to the same socket
    /// and call [`output_written`](Self::output_written) after each chunk.
    pub(crate) fn write_through_to(&self, sink: Arc<dyn DirectSink>) {
        self.slot.queue.write_through_to(sink);
    }

    /// Discards the device data queued for this client and not yet sent
    /// (the client asked for it: RFC 2217 PURGE-DATA). Returns how much.
    pub(crate) fn purge_output(&self) -> usize {
        self.slot.queue.clear()
    }

    /// Records the client's purge request (RFC 2217 PURGE-DATA) in the
    /// traffic log, with the `discarded` bytes of its queue it cost.
    pub(crate) fn record_purge(&self, buffers: Buffers, discarded: usize) {
        self.hub.traffic().record(Event::Purge {
            client: self.slot.client_ref(),
            buffers,
            discarded: discarded as u64,
        });
    }

    /// Stops fan-out to this client, which takes no more device data (its
    /// connection failed). Its writes still go to the device.
    pub(crate) fn close_output(&self) {
        self.slot.queue.close();
        self.slot.departed.cancel();
    }

    /// Counts a reply to this client that could not be passed on.
    pub(crate) fn count_bad_reply(&self) {
        self.slot.stats.bad_replies.fetch_add(1, Relaxed);
        self.hub.stats.bad_replies.fetch_add(1, Relaxed);
    }

    /// Counts client bytes the kernel discarded before they could be read.
    pub(crate) fn count_lost(&self, n: usize) {
        self.slot.stats.lost.fetch_add(n as u64, Relaxed);
        self.hub.stats.lost.fetch_add(n as u64, Relaxed);
    }

    /// Transaction timing, when requests are arbitrated.
    pub(crate) fn txn_config(&self) -> Option<&TxnConfig> {
        self.hub.config.txn.as_ref()
    }

    /// Makes this client see all device output, whoever's transaction it
    /// answers (`see=all`).
    pub(crate) fn see_all(&self, on: bool) {
        self.slot.see_all.store(on, Relaxed);
    }

    /// Makes this client get only replies to its own requests, never
    /// unsolicited output nor other clients' replies.
    pub(crate) fn replies_only(&self) {
        self.slot.replies_only.store(true, Relaxed);
        self.slot.see_all.store(false, Relaxed);
    }

    /// Queues a request for the arbiter (transaction mode), waiting for a
    /// place in the client's pipeline: backpressure. `done`, if given, is
    /// told how the transaction ended. Cancel safe.
    pub(crate) async fn request(
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
    pub(crate) async fn txn_lock(&self, ack: Option<Bytes>) -> Result<(), HubClosed> {
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
    pub(crate) async fn txn_unlock(&self) -> Result<(), HubClosed> {
        let turns = self.hub.turns.as_ref().ok_or(HubClosed)?;
        turns
            .send(Turn::Unlock {
                client: self.slot.id,
            })
            .await
            .map_err(|_| HubClosed)
    }

    /// Transactions this client ran, and those that timed out.
    pub(crate) fn transactions(&self) -> (u64, u64) {
        (
            self.slot.txn.transactions.load(Relaxed),
            self.slot.txn.timeouts.load(Relaxed),
        )
    }

    /// Asks for new line settings in the client's name (see
    /// [`Hub::change_line`]); the caller applies the settings policy first.
    pub(crate) async fn change_line(
        &self,
        line: LineSettings,
    ) -> Result<oneshot::Receiver<LineAnswer>, HubClosed> {
        let departed = Some(self.slot.departed.clone());
        self.hub
            .change_line_for(line, Some(self.slot.client_ref()), departed)
            .await
    }

    /// Asks for a modem output (or break) in the client's name.
    pub(crate) async fn change_signal(
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
    pub(crate) fn claim_settings(&self, policy: ControlPolicy) -> Result<(), settings::Denied> {
        self.hub
            .settings
            .claim(self.slot.id, &self.slot.name, policy)
    }

    /// Whether this client could change the settings under `policy`,
    /// without claiming them.
    pub(crate) fn may_change_settings(&self, policy: ControlPolicy) -> bool {
        self.hub.settings.permits(self.slot.id, policy)
    }

    /// The client's input ended: it can ask for nothing more, so it owns
    /// the settings no longer (issue 19: the owner's linger blocked the
    /// next client's open for a second). What it asked for before is
    /// already queued, in order with its bytes.
    pub(crate) fn release_settings(&self) {
        self.hub.settings.release(self.slot.id);
    }

    /// The port's hub, for what every client may read (settings in force,
    /// modem lines).
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Cancelled when the hub disconnects this client.
    pub(crate) fn kicked(&self) -> &CancellationToken {
        &self.slot.kicked
    }

    /// This client's slow-reader policy.
    pub(crate) fn policy(&self) -> SlowReaderPolicy {
        self.slot.policy
    }

    /// `len` bytes of output meant for this client (protocol answers) did
    /// not fit in its bounded output: its slow-reader policy applies, as
    /// to device data (`drop` counts them, `disconnect` kicks the client).
    pub(crate) fn output_overflow(&self, len: usize) {
        self.hub.overflow(&self.slot, len);
    }

    /// Waits for write budget for up to `write_chunk` bytes. Call it once the
    /// client has data ready, read at most `permit.num_permits()` bytes, then
    /// [`submit`](Self::submit). Cancel safe.
    pub(crate) async fn reserve(&self) -> Result<OwnedSemaphorePermit, HubClosed> {
        self.reserve_exact(self.hub.budget.chunk()).await
    }

    /// Waits for write budget for `n` bytes (at most the whole budget), after
    /// waiting for the write lock to be free or ours. Cancel safe.
    pub(crate) async fn reserve_exact(&self, n: usize) -> Result<OwnedSemaphorePermit, HubClosed> {
        self.hub.lock.wait_turn(self.slot.id).await;
        self.hub.budget.acquire(n).await.map_err(|_| HubClosed)
    }

    /// Takes the exclusive write lock, waiting while another client holds it.
    pub(crate) async fn lock(&self) {
        self.hub.lock.acquire(self.slot.id, &self.slot.name).await
    }

    /// Releases the write lock if this client holds it; `why` is logged.
    pub(crate) fn unlock(&self, why: &str) -> bool {
        self.hub.lock.release(self.slot.id, why)
    }

    /// Sends `data` with budget split from `held` when it covers it (the
    /// budget taken before reading), else with budget taken now.
    pub(crate) async fn submit_from(
        &self,
        data: Bytes,
        held: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), HubClosed> {
        let permit = match held.as_mut().and_then(|p| p.split(data.len())) {
            Some(p) => p,
            None => self.reserve_exact(data.len()).await?,
        };
        self.submit(data, permit).await
    }

    /// Sends `data` to the device. The permit must come from
    /// [`reserve`](Self::reserve) and cover `data`; its surplus is returned.
    pub(crate) async fn submit(
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
