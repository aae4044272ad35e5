//! The arbiter: one task per port that runs one transaction at a time,
//! in the order requests and lock turns came.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{Outcome, Request, TURN_CHANNEL, Turn, TxnConfig};
use crate::hub::reply::{ReplyDetector, ReplyRule};
use crate::hub::{ClientId, Hub};
use crate::timer::PreciseTimer;
use crate::traffic::{ClientRef, Event};

/// The arbiter's receiving end, taken once by the port that runs it.
#[derive(Debug)]
pub(crate) struct Arbiter {
    turns: mpsc::Receiver<Turn>,
    config: TxnConfig,
    /// Turns that came while another client held the lock, in order.
    deferred: VecDeque<Turn>,
    /// Until when the bus is busy with the last request we wrote.
    wire_busy_until: Option<Instant>,
    /// Made by `run`, in the runtime that drives it.
    timer: Option<PreciseTimer>,
}

pub(crate) fn channel(config: TxnConfig) -> (mpsc::Sender<Turn>, Arbiter) {
    let (tx, turns) = mpsc::channel(TURN_CHANNEL);
    let arbiter = Arbiter {
        turns,
        config,
        deferred: VecDeque::new(),
        wire_busy_until: None,
        timer: None,
    };
    (tx, arbiter)
}

impl Arbiter {
    /// Runs transactions until `stop`, then the ones already queued.
    pub(crate) async fn run(mut self, hub: Arc<Hub>, stop: CancellationToken) {
        // The inter-frame silence is a few character times: tokio's
        // millisecond timer would round it up by as much again.
        let timer = PreciseTimer::new();
        self.timer = Some(timer);
        loop {
            let turn = match self.deferred.pop_front() {
                Some(t) => t,
                None => tokio::select! {
                    t = self.turns.recv() => match t {
                        Some(t) => t,
                        None => return,
                    },
                    () = stop.cancelled() => break,
                },
            };
            self.take(&hub, turn, &stop).await;
        }
        // Stopping: what clients handed over is still theirs to deliver.
        while let Some(t) = self
            .deferred
            .pop_front()
            .or_else(|| self.turns.try_recv().ok())
        {
            self.take(&hub, t, &stop).await;
        }
    }

    async fn take(&mut self, hub: &Hub, turn: Turn, stop: &CancellationToken) {
        match turn {
            Turn::Request(r) => {
                hub.txn_lock.gate(None, &hub.stats.lock_waits, stop).await;
                self.transact(hub, r).await
            }
            Turn::Lock {
                client,
                name,
                granted,
                ack,
            } => {
                let turn = Some((client, &name));
                let _turn = hub.txn_lock.gate(turn, &hub.stats.lock_waits, stop).await;
                self.lock_turn(hub, client, name.clone(), granted, ack, stop)
                    .await
            }
            // Not the holder (any more): nothing to release.
            Turn::Unlock { .. } => {}
        }
    }

    /// Waits until the bus has been silent for the inter-frame gap. A device
    /// that never falls silent delays a request by at most the reply timeout.
    async fn wait_silence(&self, hub: &Hub) {
        let give_up = Instant::now() + self.config.reply_timeout;
        loop {
            let last = [self.wire_busy_until, hub.routing().last_rx()]
                .into_iter()
                .flatten()
                .max();
            let Some(quiet_at) = last.map(|t| t + self.config.frame_gap) else {
                return;
            };
            let now = Instant::now();
            if now >= quiet_at || now >= give_up {
                return;
            }
            match &self.timer {
                Some(t) => t.sleep_until(quiet_at.min(give_up)).await,
                None => tokio::time::sleep_until(quiet_at.min(give_up)).await,
            }
        }
    }

    /// Writes `data` for `client`, and notes when it will have left the wire.
    async fn write(&mut self, hub: &Hub, r: &Request) {
        hub.write_for(r.client, &r.name, r.data.clone()).await;
        let line_time = self
            .config
            .char_time
            .saturating_mul(u32::try_from(r.data.len()).unwrap_or(u32::MAX));
        self.wire_busy_until = Some(Instant::now() + line_time);
    }

    async fn transact(&mut self, hub: &Hub, r: Request) {
        self.wait_silence(hub).await;
        hub.routing().begin(r.client, ReplyDetector::new(r.rule));
        let who = ClientRef {
            id: r.client,
            name: r.name.clone(),
        };
        hub.traffic().record(Event::TxnBegin(who.clone()));
        debug!(client = %r.name, len = r.data.len(), "transaction begins");
        self.write(hub, &r).await;
        let on_wire = self.wire_busy_until.unwrap_or_else(Instant::now);
        let outcome = if r.rule == ReplyRule::None {
            tokio::time::sleep_until(on_wire).await;
            Outcome::Sent
        } else {
            self.await_reply(hub, on_wire + self.config.reply_timeout)
                .await
        };
        let routed = hub.routing().end();
        hub.traffic().record(match outcome {
            Outcome::TimedOut { partial } => Event::TxnTimeout {
                client: who,
                partial: partial as u64,
            },
            Outcome::Replied(_) | Outcome::Sent => Event::TxnEnd {
                client: who,
                reply: routed as u64,
            },
        });
        hub.note_outcome(r.client, &r.name, outcome, routed);
        debug!(client = %r.name, ?outcome, routed, "transaction ends");
        if let Some(done) = r.done {
            let _ = done.send(outcome);
        }
    }

    /// Waits for the running transaction's reply to end.
    async fn await_reply(&self, hub: &Hub, deadline: Instant) -> Outcome {
        loop {
            let activity = hub.rx_activity.notified();
            tokio::pin!(activity);
            activity.as_mut().enable();
            let (complete, taken, last_rx, gap_ends) = hub.routing().progress();
            if complete {
                return Outcome::Replied(taken);
            }
            let now = Instant::now();
            let gap_end = last_rx
                .filter(|_| gap_ends)
                .map(|t| t + self.config.reply_gap);
            if let Some(t) = gap_end
                && now >= t
            {
                return Outcome::Replied(taken);
            }
            if now >= deadline {
                return Outcome::TimedOut { partial: taken };
            }
            let wake = gap_end.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                () = activity => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The holder's turn: its requests go out as they come, every reply is
    /// routed to it, and everybody else waits.
    async fn lock_turn(
        &mut self,
        hub: &Hub,
        holder: ClientId,
        name: Arc<str>,
        granted: oneshot::Sender<()>,
        ack: Option<Bytes>,
        stop: &CancellationToken,
    ) {
        if !hub.is_attached(holder) {
            return;
        }
        self.wait_silence(hub).await;
        hub.routing()
            .begin(holder, ReplyDetector::new(ReplyRule::Gap));
        let who = ClientRef {
            id: holder,
            name: name.clone(),
        };
        hub.traffic().record(Event::TxnBegin(who.clone()));
        let since = Instant::now();
        let mut last_write = since;
        let (idle, max) = (hub.config.lock_idle, hub.config.lock_max);
        hub.lock_granted(holder, &name, ack);
        let _ = granted.send(());
        let why = loop {
            let detached = hub.detached.notified();
            tokio::pin!(detached);
            detached.as_mut().enable();
            let released = hub.txn_lock.changed.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !hub.is_attached(holder) {
                break Some("holder disconnected".to_owned());
            }
            if !hub.txn_lock.is_held_by(holder) {
                // `serialhub unlock`, which logged it.
                break None;
            }
            tokio::select! {
                t = self.turns.recv() => match t {
                    Some(Turn::Request(r)) if r.client == holder => {
                        self.write(hub, &r).await;
                        last_write = Instant::now();
                        if let Some(done) = r.done {
                            let _ = done.send(Outcome::Sent);
                        }
                    }
                    // Asking again while holding changes nothing, not even
                    // the idle timer.
                    Some(Turn::Lock { client, granted, ack, .. }) if client == holder => {
                        hub.lock_granted(holder, &name, ack);
                        let _ = granted.send(());
                    }
                    Some(Turn::Unlock { client }) if client == holder => {
                        break Some("holder asked".to_owned());
                    }
                    Some(Turn::Unlock { .. }) => {}
                    Some(other) => {
                        hub.stats.lock_waits.fetch_add(1, Relaxed);
                        self.deferred.push_back(other);
                    }
                    None => break Some("shutting down".to_owned()),
                },
                () = tokio::time::sleep_until(last_write + idle) => {
                    break Some(format!("idle for {idle:?}"));
                }
                () = tokio::time::sleep_until(since + max) => {
                    break Some(format!("held for the maximum {max:?} (--lock-max)"));
                }
                () = &mut detached => {}
                () = &mut released => {}
                () = stop.cancelled(), if self.turns.is_empty() => {
                    break Some("shutting down".to_owned());
                }
            }
        };
        let routed = hub.routing().end();
        hub.traffic().record(Event::TxnEnd {
            client: who,
            reply: routed as u64,
        });
        if let Some(why) = why {
            info!(holder = %name, held = ?since.elapsed(), "write lock released: {why}");
        }
    }
}
