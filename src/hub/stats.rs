//! The hub's counters: per client and for the whole hub. Atomics, so the
//! data path bumps them without a lock and status, metrics and the periodic
//! stats line read them while it runs.

use std::sync::atomic::AtomicU64;

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
    /// mode); the merge mode's waits are counted by [`WriteLock::waits`](super::WriteLock::waits).
    pub lock_waits: AtomicU64,
}
