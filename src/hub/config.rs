//! The hub's settings: the sizes that bound its memory and latency, the
//! slow-reader policy, and the write-lock and transaction timing it runs
//! with. Plain data; the hub reads it, nothing here acts.

use std::time::Duration;

use super::TxnConfig;

/// What to do with a client whose output queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
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
    /// follow the rate; unpaced, they are fixed bytes (see [`budget`](super::budget)).
    pub paced: bool,
    /// A write-lock holder that writes nothing for this long loses the lock.
    pub lock_idle: Duration,
    /// A write-lock holder loses the lock after holding it this long, so a
    /// client that keeps trickling bytes cannot keep the others off forever.
    pub lock_max: Duration,
    /// `Some` under `--writers transaction`: requests are arbitrated one at
    /// a time and replies routed (see [`txn`](super::txn)); `None` merges writes.
    pub txn: Option<TxnConfig>,
    /// A client's settings outlive it (`keep-settings`); otherwise the port
    /// returns to its configured ones when the last client that changed
    /// them leaves (see [`restore`](super::restore)).
    pub keep_settings: bool,
    /// Device bytes kept for viewers that join (`--scrollback`; 0: none).
    pub scrollback: usize,
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
            scrollback: super::history::DEFAULT_SCROLLBACK,
        }
    }
}

/// Chunks in the write channel. Every chunk holds at least one budget permit,
/// so the budget is the real bound; this only caps bookkeeping.
pub(super) const WRITE_CHANNEL_CHUNKS: usize = 64;
