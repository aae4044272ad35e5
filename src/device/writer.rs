//! The device writer: drains the hub's write queue onto the wire at line rate.
//!
//! This is the far end of serialhub's backpressure. Each chunk carries write
//! budget from the hub; the writer returns it byte by byte as bytes enter the
//! tty, and never lets the tty's own buffer run more than a short *lead* ahead
//! of the wire. Two mechanisms bound that lead:
//!
//! - a [`TokenBucket`] at the line rate, which models the UART for drivers
//!   that cannot report their output queue (a pty reports 0 whatever it holds);
//! - the driver's output-queue count (`TIOCOUTQ`) where it has one, which also
//!   catches a line slowed by flow control.
//!
//! The writer's state (the partly written chunk) lives in the struct, so its
//! futures can be cancelled at any await and resumed on a reopened device
//! without losing or repeating a byte.

use std::time::{Duration, Instant};

use bytes::Buf;

use super::Tty;
use crate::hub::{Hub, WriteChunk, WriteQueue};
use crate::line::LineSettings;
use crate::pace::TokenBucket;
use crate::traffic::{ClientRef, Event};

/// How far the writer may run ahead of the modelled line: 20 ms of line time,
/// at least `MIN_LEAD` bytes. Enough to keep the line busy across timer
/// jitter; small next to the one second the whole path is allowed.
const LEAD: Duration = Duration::from_millis(20);
const MIN_LEAD: usize = 16;

#[derive(Debug)]
pub struct DeviceWriter {
    queue: WriteQueue,
    pending: Option<WriteChunk>,
    pacer: TokenBucket,
    lead: usize,
    char_time: Duration,
}

impl DeviceWriter {
    /// A writer pacing at `line`'s rate, or, with `pacing` off, relying on
    /// the driver alone (its output-queue count and blocking writes).
    pub fn new(queue: WriteQueue, line: &LineSettings, pacing: bool) -> Self {
        let lead = line.bytes_in(LEAD).max(MIN_LEAD);
        let pacer = if pacing {
            TokenBucket::new(line.bytes_per_sec(), lead, Instant::now())
        } else {
            TokenBucket::unlimited()
        };
        Self {
            queue,
            pending: None,
            pacer,
            lead,
            char_time: Duration::from_secs_f64(1.0 / line.bytes_per_sec()),
        }
    }

    /// Writes queued chunks until the device fails. Cancel safe.
    pub async fn run(&mut self, tty: &Tty, hub: &Hub) -> std::io::Error {
        loop {
            if self.pending.is_none() {
                match self.queue.recv().await {
                    Some(c) => self.pending = Some(c),
                    // The hub owns the sender, so this only happens if the
                    // hub is gone; park rather than spin.
                    None => std::future::pending::<()>().await,
                }
            }
            if let Err(e) = self.step(tty, hub).await {
                return e;
            }
        }
    }

    /// Writes everything already queued, then returns. Cancel safe.
    pub async fn drain(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<()> {
        loop {
            if self.pending.is_none() {
                match self.queue.try_recv() {
                    Ok(c) => self.pending = Some(c),
                    Err(_) => return Ok(()),
                }
            }
            self.step(tty, hub).await?;
        }
    }

    /// Writes part of the pending chunk, paced, then waits while the driver's
    /// output queue is over the lead.
    async fn step(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<()> {
        let Some(chunk) = self.pending.as_mut() else {
            return Ok(());
        };
        let granted = self.pacer.take(chunk.data.len(), self.lead / 2).await;
        let written = match tty.write(&chunk.data[..granted]).await {
            Ok(n) => n,
            Err(e) => {
                self.pacer.refund(granted);
                return Err(e);
            }
        };
        self.pacer.refund(granted - written);
        if written > 0 {
            let client = ClientRef {
                id: chunk.client,
                name: chunk.client_name.clone(),
            };
            let bytes = chunk.data.slice(..written);
            hub.traffic().record(Event::Tx(client, bytes));
        }
        chunk.data.advance(written);
        chunk.release(written);
        super::count_tx(hub, written);
        if chunk.data.is_empty() {
            self.pending = None;
        }
        loop {
            let queued = tty.output_queue()?;
            if queued <= self.lead {
                return Ok(());
            }
            let over = u32::try_from(queued - self.lead).unwrap_or(u32::MAX);
            tokio::time::sleep(self.char_time.saturating_mul(over)).await;
        }
    }
}
