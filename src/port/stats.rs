//! A port's stats line: every hub counter and the port's refusals, logged
//! every `--stats-every` when any changed, and once when the port stops.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::endpoint::refusal::{RefusalCounts, Refusals};
use crate::hub::{Hub, StatsSnapshot};

/// What a stats line shows: every hub counter, the traffic log's dropped
/// records, and lock waits in either write mode (as status counts them). A
/// new line is logged when any of it changed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Counts {
    hub: StatsSnapshot,
    traffic_dropped: u64,
    lock_waits: u64,
    refusals: Refusals,
}

fn counts(hub: &Hub, refusals: &RefusalCounts) -> Counts {
    let s = hub.stats.snapshot();
    Counts {
        hub: s,
        refusals: refusals.snapshot(),
        traffic_dropped: hub.traffic().dropped(),
        lock_waits: s.lock_waits.saturating_add(hub.write_lock().waits()),
    }
}

fn log_counts(hub: &Hub, c: Counts, what: &str) {
    let s = &c.hub;
    info!(
        device_rx = s.device_rx,
        device_tx = s.device_tx,
        clients = s.connected,
        dropped = s.dropped,
        kicked = s.kicked,
        refused = s.refused,
        refused_network = c.refusals.network,
        refused_handshake = c.refusals.handshake,
        refused_identity = c.refusals.identity,
        refused_revoked = c.refusals.revoked,
        reset_lost = s.lost,
        traffic_dropped = c.traffic_dropped,
        transactions = s.transactions,
        reply_timeouts = s.timeouts,
        unsolicited_dropped = s.unsolicited_dropped,
        bad_replies = s.bad_replies,
        replies_discarded = s.replies_discarded,
        requests_dropped = s.orphans_dropped,
        reopens = s.reopens,
        lock_waits = c.lock_waits,
        write_lock = hub.write_lock_holder().as_deref().unwrap_or("-"),
        "{what}"
    );
}

/// Logs the port's counters every `every`, when they have changed, so drops
/// and kicks are visible without waiting for shutdown.
pub(super) async fn report(
    hub: Arc<Hub>,
    refusals: Arc<RefusalCounts>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut last = None;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = counts(&hub, &refusals);
        if last != Some(now) {
            log_counts(&hub, now, "stats");
            last = Some(now);
        }
    }
}

/// Logs the port's counters now, as `what`.
pub(super) fn log(hub: &Hub, refusals: &RefusalCounts, what: &str) {
    log_counts(hub, counts(hub, refusals), what);
}
