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

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tracing::{info, warn};

mod arbiter;
mod lock;
mod routing;

pub(crate) use arbiter::Arbiter;
pub(crate) use arbiter::channel;
pub(crate) use lock::TxnLock;
pub(crate) use routing::{Routing, Target};

use super::ClientId;
use super::reply::ReplyRule;

/// Requests one client may have queued. One would do for a strict
/// request/response master; a few let a pipelining Modbus TCP client keep
/// the bus busy, while bounding what one client can make others wait for.
pub(crate) const PIPELINE: usize = 4;
/// Turns in the arbiter's channel. Every sender also holds a pipeline
/// permit or waits for its lock, so this only caps bookkeeping.
const TURN_CHANNEL: usize = 64;

/// What happens to device output that arrives outside any transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Unsolicited {
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
    pub(crate) reply_timeout: Duration,
    /// Silence after a reply's first byte that ends it, where its rule cannot
    /// tell its length.
    pub(crate) reply_gap: Duration,
    /// Silence left on the bus between two frames (3.5 characters for RTU).
    pub(crate) frame_gap: Duration,
    /// Line time of one character, to know when a request has left the wire.
    pub(crate) char_time: Duration,
    pub(crate) unsolicited: Unsolicited,
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
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
pub(crate) struct Request {
    pub(crate) client: ClientId,
    pub(crate) name: Arc<str>,
    pub(crate) data: Bytes,
    pub(crate) rule: ReplyRule,
    /// Told how the transaction ended, if the client wants to know.
    pub(crate) done: Option<oneshot::Sender<Outcome>>,
    /// The client's pipeline place, freed when the transaction ends.
    pub(super) _place: OwnedSemaphorePermit,
}

/// What clients send the arbiter.
#[derive(Debug)]
pub(crate) enum Turn {
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

/// Counts a client's transactions, and logs timeouts once per run of them.
#[derive(Debug, Default)]
pub(crate) struct TxnStats {
    pub(crate) transactions: std::sync::atomic::AtomicU64,
    pub(crate) timeouts: std::sync::atomic::AtomicU64,
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
