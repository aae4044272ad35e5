//! Fan-out: every chunk read from the device is offered to the clients it is
//! for (everyone, or the client whose transaction it answers), each through
//! its own bounded queue. A full queue is handled by the client's
//! [`SlowReaderPolicy`], and every byte a client does not get is counted.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use tracing::{info, warn};

use super::client::Slot;
use super::txn::Target;
use super::{Hub, PushError, SlowReaderPolicy};
use crate::traffic::Event;

impl Hub {
    /// Offers one chunk of device data to the clients it is for: the client
    /// whose transaction it answers, or everyone (see [`txn`](super::txn)).
    ///
    /// Returns at once unless a `block` client's queue is full.
    pub async fn publish(&self, data: Bytes) {
        self.stats.device_rx.fetch_add(data.len() as u64, Relaxed);
        let clients = self.record_history(&data);
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
            self.fan_out_to(&clients, piece, target).await;
        }
    }

    pub(super) async fn fan_out(&self, data: Bytes, target: Target) {
        self.fan_out_to(&self.clients(), data, target).await;
    }

    /// [`fan_out`](Self::fan_out) to the clients of a snapshot taken with
    /// the scrollback (see [`history`](super::history)).
    async fn fan_out_to(&self, clients: &[Arc<Slot>], data: Bytes, target: Target) {
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

    pub(super) fn overflow(&self, slot: &Slot, len: usize) {
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

    pub(super) fn count_dropped(&self, slot: &Slot, n: usize) {
        slot.stats.dropped.fetch_add(n as u64, Relaxed);
        self.stats.dropped.fetch_add(n as u64, Relaxed);
    }
}
