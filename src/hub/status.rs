//! A snapshot of a hub for `serialhub status` and the control socket: the
//! device's state, the counters, and every client. The JSON field names are
//! the documented, stable schema.

use std::sync::atomic::Ordering::Relaxed;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ClientId, Hub};

/// Where the device is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub(crate) enum DeviceState {
    /// Not open yet.
    Opening,
    /// Absent at start-up; serialhub opens it when it appears.
    Waiting,
    /// Open and serving, on this tty.
    Open { tty: String },
    /// Lost (unplugged, I/O error); serialhub reopens it when it returns.
    /// Clients stay, and their writes wait.
    Reconnecting { error: String },
    /// Closed at shutdown.
    Closed,
}

/// One client, as status shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClientStatus {
    pub(crate) id: ClientId,
    /// Endpoint kind and peer: `tcp:127.0.0.1:40522`, `pty:/tmp/ttyA`.
    pub(crate) peer: String,
    /// RFC 3339, UTC.
    pub(crate) connected_since: String,
    /// Bytes it sent to the device.
    pub(crate) bytes_in: u64,
    /// Device bytes queued for it.
    pub(crate) bytes_out: u64,
    /// Bytes waiting in its output queue now.
    pub(crate) queued: usize,
    /// Device bytes it did not get (slow reader).
    pub(crate) dropped: u64,
    /// Its bytes not sent to the device (read-only, bad CRC).
    pub(crate) discarded: u64,
    pub(crate) transactions: u64,
    pub(crate) timeouts: u64,
    /// Its bytes the kernel acknowledged but discarded when its connection
    /// was reset before serialhub could read them.
    #[serde(default)]
    pub(crate) reset_lost: u64,
    /// Replies to it that could not be passed on (a Modbus reply failing its
    /// CRC, answered with exception 0x0B instead).
    #[serde(default)]
    pub(crate) bad_replies: u64,
    /// Who its TLS client certificate names (`cn:alice`); null for a
    /// plain-text client.
    #[serde(default)]
    pub(crate) identity: Option<String>,
}

/// A hub's part of a port's status. It deserializes too, so that readers
/// of the control protocol (the metrics exporter) get it typed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct HubStatus {
    pub(crate) device_state: DeviceState,
    /// RFC 3339, UTC: when the device entered its state.
    pub(crate) device_since: String,
    pub(crate) bytes_from_device: u64,
    pub(crate) bytes_to_device: u64,
    pub(crate) dropped: u64,
    pub(crate) kicked: u64,
    pub(crate) refused: u64,
    pub(crate) transactions: u64,
    pub(crate) timeouts: u64,
    /// Times the device came back after being lost.
    #[serde(default)]
    pub(crate) reopens: u64,
    /// Writes and requests that had to wait for another client's write lock.
    #[serde(default)]
    pub(crate) lock_waits: u64,
    /// Traffic-log records dropped because the log's writer was behind.
    #[serde(default)]
    pub(crate) traffic_log_dropped: u64,
    /// Settings and modem-line requests dropped unapplied because the
    /// client that asked had left.
    #[serde(default)]
    pub(crate) requests_dropped: u64,
    /// Client bytes lost to connection resets, over all clients (see
    /// [`ClientStatus::reset_lost`]).
    #[serde(default)]
    pub(crate) reset_lost: u64,
    /// Device bytes that answered no request and went to no client but
    /// those with `see=all` (`--unsolicited drop`, or `last` before any
    /// request).
    #[serde(default)]
    pub(crate) unsolicited_dropped: u64,
    /// Replies that could not be passed on, over all clients (see
    /// [`ClientStatus::bad_replies`]).
    #[serde(default)]
    pub(crate) bad_replies: u64,
    /// Reply bytes whose client had gone before they came.
    #[serde(default)]
    pub(crate) replies_discarded: u64,
    /// The client whose line settings or modem lines are in force, while a
    /// client's are (`#3 tcp:...`); `null` at the configured ones.
    #[serde(default)]
    pub(crate) settings_changed_by: Option<String>,
    /// The write lock's holder, if any.
    pub(crate) write_lock: Option<String>,
    pub(crate) clients: Vec<ClientStatus>,
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let mut s = String::new();
    crate::traffic::text::format_ts(t, &mut s);
    s
}

impl Hub {
    /// Records a change of the device's state. An open after the device was
    /// lost counts as a reopen.
    pub(crate) fn set_device_state(&self, state: DeviceState) {
        let mut device = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let was = &device.0;
        if matches!(state, DeviceState::Open { .. })
            && !matches!(was, DeviceState::Open { .. } | DeviceState::Opening)
        {
            self.stats.reopens.fetch_add(1, Relaxed);
        }
        *device = (state, OffsetDateTime::now_utc());
    }

    pub(crate) fn status(&self) -> HubStatus {
        let (device, since) = self
            .device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let clients = self
            .clients()
            .iter()
            .map(|s| ClientStatus {
                id: s.id,
                peer: s.name.to_string(),
                connected_since: rfc3339(s.connected),
                bytes_in: s.stats.from_client.load(Relaxed),
                bytes_out: s.stats.to_client.load(Relaxed),
                queued: s.queue.len(),
                dropped: s.stats.dropped.load(Relaxed),
                discarded: s.stats.discarded.load(Relaxed),
                transactions: s.txn.transactions.load(Relaxed),
                timeouts: s.txn.timeouts.load(Relaxed),
                reset_lost: s.stats.lost.load(Relaxed),
                bad_replies: s.stats.bad_replies.load(Relaxed),
                identity: s.identity.as_ref().map(ToString::to_string),
            })
            .collect();
        let s = self.stats.snapshot();
        HubStatus {
            device_state: device,
            device_since: rfc3339(since),
            bytes_from_device: s.device_rx,
            bytes_to_device: s.device_tx,
            dropped: s.dropped,
            kicked: s.kicked,
            refused: s.refused,
            transactions: s.transactions,
            timeouts: s.timeouts,
            reopens: s.reopens,
            lock_waits: s.lock_waits.saturating_add(self.lock.waits()),
            traffic_log_dropped: self.traffic.dropped(),
            requests_dropped: s.orphans_dropped,
            reset_lost: s.lost,
            unsolicited_dropped: s.unsolicited_dropped,
            bad_replies: s.bad_replies,
            replies_discarded: s.replies_discarded,
            settings_changed_by: self.changers.latest(),
            write_lock: self.write_lock_holder().map(|h| h.to_string()),
            clients,
        }
    }

    /// Device bytes the client `id` did not get (slow reader, kick), while
    /// it is attached.
    pub(crate) fn client_dropped(&self, id: ClientId) -> Option<u64> {
        self.slot(id).map(|s| s.stats.dropped.load(Relaxed))
    }

    /// Disconnects client `id` (an operator's kick); `false` if there is no
    /// such client.
    pub(crate) fn kick(&self, id: ClientId) -> bool {
        let Some(slot) = self.slot(id) else {
            return false;
        };
        // What its queue held is device data it will not get: dropped, as
        // for a slow reader, and named so in both its lines.
        let discarded = slot.queue.close();
        self.count_dropped(&slot, discarded);
        self.stats.kicked.fetch_add(1, Relaxed);
        slot.kicked.cancel();
        slot.departed.cancel();
        tracing::warn!(client = %slot.name, dropped = slot.stats.dropped.load(Relaxed),
            "client kicked by the operator");
        true
    }
}
