//! The write budget, and the sizes the hub derives from the line rate.
//!
//! The budget is a semaphore sized in bytes: a client holds permits for the
//! bytes it has read from its socket until the device writer has put them on
//! the wire, so what is in flight inside serialhub stays within a fixed
//! amount of line time. Because the amount is line *time*, the budget is
//! resized when the line's rate changes at run time (a reload, or a client
//! setting another baud rate): growing adds permits at once; shrinking takes
//! permits back as they are returned, in the semaphore's FIFO order, so a
//! client already waiting for a large grant is served before the budget
//! shrinks under it and never waits for more than the budget holds.
//!
//! An unpaced device (`--no-pacing`: a pty used as a pipe, a USB CDC device
//! whose nominal baud means nothing) has no line time to bound: its sizes
//! are fixed byte counts big enough to keep the pipe full, and do not follow
//! the baud rate when it changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::line::LineSettings;
use crate::pace::Steps;

/// Smallest write budget; below this, per-chunk overheads dominate.
pub(crate) const MIN_BUDGET: usize = 16;
/// Largest write budget, whatever `--max-inflight` allows: the budget is
/// memory (bytes read from clients and not yet written), so it is capped
/// like every other queue. 64 MiB is over half a minute at 20 Mbaud.
pub(crate) const MAX_BUDGET: usize = 64 << 20;
/// Default per-client queue: this much line time...
pub(crate) const CLIENT_QUEUE_TIME: Duration = Duration::from_secs(2);
/// ...but at least this many bytes, so short stalls at low rates are absorbed...
pub(crate) const CLIENT_QUEUE_MIN: usize = 16 * 1024;
/// ...and at most this many, as any queue.
pub(crate) const CLIENT_QUEUE_MAX: usize = 64 << 20;

/// An unpaced device's write budget. Its reader drains it as fast as it
/// can, so what matters is that a client never waits for budget while the
/// device could take more: 256 KiB is four 64 KiB chunks, so the next chunks
/// are read from the socket while one is written. With it, bulk toward a
/// pty runs at 0.99 times socat's rate (bench/RESULTS.md, issue 12); larger
/// sizes were not tried.
pub(crate) const UNPACED_BUDGET: usize = 256 << 10;
/// An unpaced device's write chunk: one client socket read, so a bulk
/// writer moves 64 KiB per wake-up instead of a quarter of a line-time
/// budget (1,440 bytes at 115200).
pub(crate) const UNPACED_CHUNK: usize = 64 << 10;
/// An unpaced device's default client queue: 1 MiB lets a reader fall a few
/// milliseconds behind a device that produces hundreds of MB/s before its
/// slow-reader policy acts.
pub(crate) const UNPACED_CLIENT_QUEUE: usize = 1 << 20;

/// The sizes that follow the line rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Bytes accepted from clients and not yet written to the device.
    pub(crate) write_budget: usize,
    /// Most bytes taken from one client in one go; a quarter of the budget
    /// lets up to four writers take turns.
    pub(crate) write_chunk: usize,
    /// Bytes a client's output queue holds before its slow-reader policy acts.
    pub(crate) client_queue: usize,
}

impl Sizes {
    /// The sizes for a device paced at `line`'s rate (see
    /// [`for_line`](Self::for_line)), or, unpaced, the fixed byte sizes of
    /// [`unpaced`](Self::unpaced).
    pub(crate) fn for_device(
        line: &LineSettings,
        paced: bool,
        max_inflight: Duration,
        client_queue: Option<usize>,
    ) -> Sizes {
        if paced {
            Sizes::for_line(line, max_inflight, client_queue)
        } else {
            Sizes::unpaced(client_queue)
        }
    }

    /// An unpaced device's sizes: bytes, whatever the nominal baud rate;
    /// `client_queue` is the user's, if set.
    pub(crate) fn unpaced(client_queue: Option<usize>) -> Sizes {
        Sizes {
            write_budget: UNPACED_BUDGET,
            write_chunk: UNPACED_CHUNK,
            client_queue: client_queue.unwrap_or(UNPACED_CLIENT_QUEUE),
        }
    }

    /// The budget gets half of `max_inflight` of line time (the sockets'
    /// buffers hold the other half), less the device writer's lead: the
    /// bytes it keeps in the driver have left the budget but not the wire.
    /// The client queue is `client_queue` if the user set one, else
    /// [`CLIENT_QUEUE_TIME`] of line time.
    pub(crate) fn for_line(
        line: &LineSettings,
        max_inflight: Duration,
        client_queue: Option<usize>,
    ) -> Sizes {
        let lead = Steps::for_rate(line.bytes_per_sec()).lead;
        let write_budget = (line.bytes_in(max_inflight) / 2)
            .saturating_sub(lead)
            .clamp(MIN_BUDGET, MAX_BUDGET);
        Sizes {
            write_budget,
            write_chunk: (write_budget / 4).max(1),
            client_queue: client_queue.unwrap_or_else(|| {
                line.bytes_in(CLIENT_QUEUE_TIME)
                    .clamp(CLIENT_QUEUE_MIN, CLIENT_QUEUE_MAX)
            }),
        }
    }
}

/// The hub's write budget; see the module docs.
#[derive(Debug)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    /// The budget's size now; permits may briefly exceed it while it shrinks.
    total: AtomicUsize,
    chunk: AtomicUsize,
}

/// The budget is gone (the hub is shutting down).
#[derive(Debug)]
pub(crate) struct Closed;

impl Budget {
    pub(crate) fn new(total: usize, chunk: usize) -> Budget {
        // The settings are validated far smaller; this only keeps
        // `Semaphore::new` from panicking whatever it is given.
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            permits: Arc::new(Semaphore::new(total)),
            total: AtomicUsize::new(total),
            chunk: AtomicUsize::new(chunk.clamp(1, total)),
        }
    }

    /// The budget's size.
    pub(crate) fn total(&self) -> usize {
        self.total.load(Relaxed)
    }

    /// Most bytes one client takes in one go.
    pub(crate) fn chunk(&self) -> usize {
        self.chunk.load(Relaxed)
    }

    /// Waits for permits for `n` bytes, at most the whole budget. Cancel safe.
    pub(crate) async fn acquire(&self, n: usize) -> Result<OwnedSemaphorePermit, Closed> {
        let n = n.clamp(1, self.total());
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| Closed)
    }

    /// Bytes held by clients and the device writer.
    pub(crate) fn in_flight(&self) -> usize {
        self.total()
            .saturating_sub(self.permits.available_permits())
    }

    /// Makes the budget `total` bytes and the chunk `chunk` bytes. Must be
    /// called on the tokio runtime (a shrink finishes in a task).
    pub(crate) fn resize(&self, total: usize, chunk: usize) {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        let old = self.total.swap(total, Relaxed);
        self.chunk.store(chunk.clamp(1, total), Relaxed);
        if total > old {
            self.permits.add_permits(total - old);
        } else if total < old {
            let owed = old - total;
            let owed = owed - self.permits.forget_permits(owed);
            if owed > 0 {
                // Queued behind every waiter already there: they are served
                // from the old budget first.
                let permits = self.permits.clone();
                tokio::spawn(async move {
                    let owed = u32::try_from(owed).unwrap_or(u32::MAX);
                    if let Ok(p) = permits.acquire_many_owned(owed).await {
                        p.forget();
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_line() {
        // Half a second of line time, less the writer's lead of 68 bytes.
        let slow = Sizes::for_line(&LineSettings::with_baud(9600), Duration::from_secs(1), None);
        assert_eq!(slow.write_budget, 480 - 68);
        assert_eq!(slow.write_chunk, (480 - 68) / 4);
        assert_eq!(slow.client_queue, CLIENT_QUEUE_MIN);
        let fast = Sizes::for_line(
            &LineSettings::with_baud(115_200),
            Duration::from_secs(1),
            Some(5000),
        );
        let lead = Steps::for_rate(11_520.0).lead;
        assert_eq!(fast.write_budget, 5760 - lead);
        assert_eq!(fast.client_queue, 5000);
    }

    #[test]
    fn issue12_unpaced_sizes_are_bytes_not_line_time() {
        let inflight = Duration::from_secs(1);
        for baud in [300, 9600, 115_200, 4_000_000] {
            let line = LineSettings::with_baud(baud);
            let paced = Sizes::for_device(&line, true, inflight, None);
            assert_eq!(paced, Sizes::for_line(&line, inflight, None), "{baud}");
            let unpaced = Sizes::for_device(&line, false, inflight, None);
            assert_eq!(unpaced.write_budget, UNPACED_BUDGET, "{baud}");
            assert_eq!(unpaced.write_chunk, UNPACED_CHUNK, "{baud}");
            assert_eq!(unpaced.client_queue, UNPACED_CLIENT_QUEUE, "{baud}");
        }
        // At 115200 the paced budget is under 5,760 bytes; unpaced it is far more.
        let line = LineSettings::with_baud(115_200);
        assert!(Sizes::for_device(&line, false, inflight, None).write_budget > 40 * 5760);
        // The user's client queue wins either way.
        assert_eq!(
            Sizes::for_device(&line, false, inflight, Some(5000)).client_queue,
            5000
        );
    }

    #[tokio::test]
    async fn growing_adds_permits_at_once() {
        let b = Budget::new(100, 25);
        let held = b.acquire(100).await.unwrap();
        b.resize(300, 75);
        assert_eq!(b.total(), 300);
        assert_eq!(b.chunk(), 75);
        let more = b.acquire(200).await.unwrap();
        assert_eq!(b.in_flight(), 300);
        drop((held, more));
        assert_eq!(b.in_flight(), 0);
    }

    #[tokio::test]
    async fn shrinking_takes_permits_back_as_they_return() {
        let b = Budget::new(300, 75);
        let held = b.acquire(250).await.unwrap();
        b.resize(100, 25);
        // 50 were free and are gone at once; 150 more are owed.
        assert_eq!(b.total(), 100);
        drop(held);
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(b.in_flight(), 0);
        // The whole new budget, and no more, can be taken.
        let all = b.acquire(1000).await.unwrap();
        assert_eq!(all.num_permits(), 100);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), b.acquire(1))
                .await
                .is_err()
        );
    }
}
