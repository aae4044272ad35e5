//! The hub's counters: per client and for the whole hub. Atomics, so the
//! data path bumps them without a lock and status, metrics and the periodic
//! stats line read them while it runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters for one client, readable while it runs.
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    /// Device bytes queued for the client.
    pub(crate) to_client: AtomicU64,
    /// Client bytes submitted to the device.
    pub(crate) from_client: AtomicU64,
    /// Device bytes the client did not get (dropped, or discarded on kick).
    pub(crate) dropped: AtomicU64,
    /// Client bytes not sent to the device (a read-only endpoint).
    pub(crate) discarded: AtomicU64,
    /// Client bytes the kernel acknowledged but discarded when the
    /// connection was reset before serialhub could read them.
    pub(crate) lost: AtomicU64,
    /// Replies that could not be passed on (a Modbus reply failing its CRC).
    pub(crate) bad_replies: AtomicU64,
}

/// Counters for the whole hub.
#[derive(Debug, Default)]
pub(crate) struct HubStats {
    pub(crate) device_rx: AtomicU64,
    pub(crate) device_tx: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) kicked: AtomicU64,
    pub(crate) connected: AtomicU64,
    /// Connections refused: `--max-clients` reached, or no file descriptor
    /// to spare.
    pub(crate) refused: AtomicU64,
    /// Client bytes lost to connection resets (see [`ClientStats::lost`]).
    pub(crate) lost: AtomicU64,
    /// Unsolicited device bytes nobody was given (`unsolicited=drop`).
    pub(crate) unsolicited_dropped: AtomicU64,
    /// Transactions run, and those that ended without a reply.
    pub(crate) transactions: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    /// Replies that could not be passed on (see [`ClientStats::bad_replies`]).
    pub(crate) bad_replies: AtomicU64,
    /// Reply bytes whose client had gone before they came.
    pub(crate) replies_discarded: AtomicU64,
    /// Settings and modem-line requests dropped unapplied because their
    /// client had left (issue 18).
    pub(crate) orphans_dropped: AtomicU64,
    /// Times the device came back after being lost (opens after the first).
    pub(crate) reopens: AtomicU64,
    /// Requests that waited for another client's lock turn (transaction
    /// mode); the merge mode's waits are counted by [`WriteLock::waits`](super::WriteLock::waits).
    pub(crate) lock_waits: AtomicU64,
}

/// The hub's counters at one moment, by name: what status and the periodic
/// stats line read, so no reader depends on the order of a list of numbers.
/// The fields mean what [`HubStats`]'s do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatsSnapshot {
    pub(crate) device_rx: u64,
    pub(crate) device_tx: u64,
    pub(crate) dropped: u64,
    pub(crate) kicked: u64,
    pub(crate) connected: u64,
    pub(crate) refused: u64,
    pub(crate) lost: u64,
    pub(crate) unsolicited_dropped: u64,
    pub(crate) transactions: u64,
    pub(crate) timeouts: u64,
    pub(crate) bad_replies: u64,
    pub(crate) replies_discarded: u64,
    pub(crate) orphans_dropped: u64,
    pub(crate) reopens: u64,
    pub(crate) lock_waits: u64,
}

impl HubStats {
    /// Every counter now. Each is read on its own (relaxed), so the set is
    /// not one atomic instant; each number is exact.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            device_rx: self.device_rx.load(Relaxed),
            device_tx: self.device_tx.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            kicked: self.kicked.load(Relaxed),
            connected: self.connected.load(Relaxed),
            refused: self.refused.load(Relaxed),
            lost: self.lost.load(Relaxed),
            unsolicited_dropped: self.unsolicited_dropped.load(Relaxed),
            transactions: self.transactions.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            bad_replies: self.bad_replies.load(Relaxed),
            replies_discarded: self.replies_discarded.load(Relaxed),
            orphans_dropped: self.orphans_dropped.load(Relaxed),
            reopens: self.reopens.load(Relaxed),
            lock_waits: self.lock_waits.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each counter lands in its own named field (the stats line once read
    /// a `[u64; 10]` back by position).
    #[test]
    fn snapshot_names_every_counter() {
        let s = HubStats::default();
        s.device_rx.store(1, Relaxed);
        s.device_tx.store(2, Relaxed);
        s.dropped.store(3, Relaxed);
        s.kicked.store(4, Relaxed);
        s.connected.store(5, Relaxed);
        s.refused.store(6, Relaxed);
        s.lost.store(7, Relaxed);
        s.unsolicited_dropped.store(8, Relaxed);
        s.transactions.store(9, Relaxed);
        s.timeouts.store(10, Relaxed);
        s.bad_replies.store(11, Relaxed);
        s.replies_discarded.store(12, Relaxed);
        s.orphans_dropped.store(13, Relaxed);
        s.reopens.store(14, Relaxed);
        s.lock_waits.store(15, Relaxed);
        let want = StatsSnapshot {
            device_rx: 1,
            device_tx: 2,
            dropped: 3,
            kicked: 4,
            connected: 5,
            refused: 6,
            lost: 7,
            unsolicited_dropped: 8,
            transactions: 9,
            timeouts: 10,
            bad_replies: 11,
            replies_discarded: 12,
            orphans_dropped: 13,
            reopens: 14,
            lock_waits: 15,
        };
        assert_eq!(s.snapshot(), want);
    }
}
