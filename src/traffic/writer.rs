//! The writer: a dedicated thread that drains the traffic queue to disk.
//!
//! File I/O blocks, and a slow or full disk must never hold up a runtime
//! worker (there may be only two), so the writer is an OS thread that takes
//! records off the queue with `blocking_recv_many`, formats a batch, and
//! hands it to the [`Rotator`] in one `write`. Records a failed write lost are
//! counted, and a `dropped N records` marker is written ahead of the next
//! batch that reaches the disk. Every problem (a full queue, a failed write
//! or rotation, an old file that cannot be deleted) goes through one
//! [`Throttle`]: at most one warning per `WARN_EVERY`, carrying the number of
//! records lost since the last one, so a vanished directory or a full disk
//! costs one log line per 10 s, not one per record.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::rotate::{Rotator, WriteFailure};
use super::text::Palette;
use super::{Event, Format, Msg, Record, Shared, TrafficError};

/// Records formatted into one `write` call. Enough to amortise the syscall;
/// small enough that a batch of full 4 KiB reads (about 20 KB of text each)
/// stays near 1 MB of buffer.
const BATCH_RECORDS: usize = 64;
/// Least time between two warnings about lost records.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Owner's handle on the writer thread: closes the log cleanly.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    done: oneshot::Receiver<()>,
    path: std::path::PathBuf,
}

impl Writer {
    pub(super) fn spawn(
        rotator: Rotator,
        format: Format,
        rx: mpsc::Receiver<Msg>,
        shared: Arc<Shared>,
    ) -> Result<Writer, TrafficError> {
        let path = rotator.path().map(|p| p.to_owned()).unwrap_or_default();
        let (done_tx, done) = oneshot::channel();
        let tx = shared.tx.clone();
        let task = Task {
            rotator,
            format,
            rx,
            shared,
            lost: 0,
            throttle: Throttle::default(),
        };
        std::thread::Builder::new()
            .name("traffic-log".into())
            .spawn(move || {
                task.run();
                let _ = done_tx.send(());
            })
            .map_err(TrafficError::Thread)?;
        Ok(Writer { tx, done, path })
    }

    /// The first file written.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes everything queued so far and stops the thread, waiting at most
    /// `timeout`. Records offered after this are counted as dropped.
    pub(crate) async fn finish(self, timeout: Duration) -> bool {
        let closing = async {
            let _ = self.tx.send(Msg::Close).await;
            let _ = self.done.await;
        };
        tokio::time::timeout(timeout, closing).await.is_ok()
    }
}

struct Task {
    rotator: Rotator,
    format: Format,
    rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    /// Records lost to disk errors and not yet marked in the log.
    lost: u64,
    throttle: Throttle,
}

impl Task {
    fn run(mut self) {
        let mut msgs = Vec::with_capacity(BATCH_RECORDS);
        let mut records = Vec::with_capacity(BATCH_RECORDS);
        let mut closing = false;
        while !closing {
            if self.rx.blocking_recv_many(&mut msgs, BATCH_RECORDS) == 0 {
                break;
            }
            for m in msgs.drain(..) {
                match m {
                    Msg::Record(r) => {
                        self.shared.release(&r);
                        records.push(r);
                    }
                    Msg::Close => closing = true,
                }
            }
            if closing {
                // Take what is left; later senders see a closed queue.
                self.rx.close();
                while let Ok(m) = self.rx.try_recv() {
                    if let Msg::Record(r) = m {
                        self.shared.release(&r);
                        records.push(r);
                    }
                }
                let unmarked = self.shared.unmarked.swap(0, Relaxed);
                if unmarked > 0 {
                    records.push(Record::now(Event::Dropped(unmarked)));
                }
            }
            for chunk in records.chunks(BATCH_RECORDS) {
                self.write(chunk);
            }
            records.clear();
        }
        self.report_unwarned();
    }

    fn write(&mut self, records: &[Record]) {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(records.len() + 1);
        let marker = (self.lost > 0).then(|| Record::now(Event::Dropped(self.lost)));
        let all: Vec<&Record> = marker.iter().chain(records).collect();
        for r in &all {
            match self.format {
                Format::Text => super::text::encode(r, &mut text, &Palette::plain()),
                Format::Json => super::json::encode(r, &mut text),
            }
            ends.push(text.len());
        }
        for r in records {
            if let Event::Dropped(n) = r.event {
                self.note_loss(n, "traffic log queue was full (disk too slow?)");
            }
        }
        let result = self.rotator.write(text.as_bytes(), &ends);
        // A lost record is the news; other problems of the same batch are
        // counted in its warning (the throttle holds them back).
        let problem = self.rotator.take_problem();
        if result.is_ok()
            && let Some((n, problem)) = &problem
        {
            self.note(0, *n, problem);
        }
        match result {
            Ok(()) => {
                self.lost = 0;
                if let Some(unreported) = self.throttle.recovered() {
                    info!(
                        file = ?self.rotator.path(),
                        dropped_since_last_warning = unreported,
                        dropped_total = self.shared.dropped.load(Relaxed),
                        "traffic log is being written again"
                    );
                }
            }
            Err(WriteFailure {
                error,
                first_unwritten,
            }) => {
                self.lost = 0;
                let mut new = 0;
                for r in &all[first_unwritten..] {
                    match r.event {
                        // Already counted; only the mark is to be redone.
                        Event::Dropped(n) => self.lost += n,
                        _ => new += 1,
                    }
                }
                self.lost += new;
                self.shared.dropped.fetch_add(new, Relaxed);
                self.throttle.failing = true;
                self.note(new, 1, &format!("cannot write traffic log: {error}"));
                if let Some((n, problem)) = &problem {
                    self.note(0, *n, problem);
                }
            }
        }
    }

    fn note_loss(&mut self, n: u64, why: &str) {
        self.note(n, 1, why);
    }

    /// Reports `problems` problems that lost `lost` records, through the
    /// throttle.
    fn note(&mut self, lost: u64, problems: u64, why: &str) {
        let Some(w) = self.throttle.note(lost, problems, Instant::now()) else {
            return;
        };
        warn!(
            dir = %self.rotator.dir().display(),
            dropped_since_last_warning = w.lost,
            dropped_total = self.shared.dropped.load(Relaxed),
            problems_not_shown = w.unshown,
            "{why}; traffic records may be lost (at most one such warning per {}s)",
            WARN_EVERY.as_secs()
        );
    }

    /// At close: records lost since the last warning are worth one more.
    fn report_unwarned(&mut self) {
        if self.throttle.lost > 0 {
            let lost = std::mem::take(&mut self.throttle.lost);
            warn!(
                dir = %self.rotator.dir().display(),
                dropped_since_last_warning = lost,
                dropped_total = self.shared.dropped.load(Relaxed),
                "traffic log closed with records lost since the last warning"
            );
        }
    }
}

/// The one rate limit on the writer's warnings.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    /// Records lost since the last warning.
    lost: u64,
    /// Problems since the last warning that it did not name.
    unshown: u64,
    /// The last write failed.
    failing: bool,
    /// A warning went out since the last recovery message: the next
    /// recovery is worth one (so a flapping disk logs neither more often).
    warned: bool,
}

/// What a warning that is due reports.
#[derive(Debug, PartialEq, Eq)]
struct Due {
    /// Records lost since the previous warning, these included.
    lost: u64,
    /// Problems folded into this warning without being named.
    unshown: u64,
}

impl Throttle {
    /// Counts `problems` that lost `lost` records; says whether to warn now.
    fn note(&mut self, lost: u64, problems: u64, now: Instant) -> Option<Due> {
        self.lost += lost;
        self.unshown += problems;
        if problems == 0 && lost == 0 {
            return None;
        }
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        self.warned = true;
        Some(Due {
            lost: std::mem::take(&mut self.lost),
            // The one named in the message is not "not shown".
            unshown: std::mem::take(&mut self.unshown).saturating_sub(1),
        })
    }

    /// A write succeeded. If writes were failing and that was warned of,
    /// returns the records lost since the warning, for a recovery message.
    fn recovered(&mut self) -> Option<u64> {
        if !std::mem::take(&mut self.failing) || !std::mem::take(&mut self.warned) {
            return None;
        }
        self.unshown = 0;
        Some(std::mem::take(&mut self.lost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_warns_once_per_period_with_the_count_since() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(
            t.note(3, 1, t0),
            Some(Due {
                lost: 3,
                unshown: 0
            })
        );
        // A flood of failures within the period: silent, but counted.
        for i in 0..1000 {
            assert_eq!(t.note(1, 1, t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.note(0, 2, t0 + s(9)), None);
        assert_eq!(
            t.note(1, 1, t0 + s(10)),
            Some(Due {
                lost: 1001,
                unshown: 1002
            })
        );
        assert_eq!(t.note(0, 0, t0 + s(30)), None, "nothing to say");
        t.failing = true;
        assert_eq!(t.note(5, 1, t0 + s(11)), None);
        // Recovery after a warning is reported, with the loss since.
        assert_eq!(t.recovered(), Some(5));
        assert_eq!(t.recovered(), None);
        // A disk that flaps within the period: no warning, so no recovery
        // message either; the loss waits for the next warning.
        t.failing = true;
        assert_eq!(t.note(2, 1, t0 + s(12)), None);
        assert_eq!(t.recovered(), None);
        assert_eq!(
            t.note(1, 1, t0 + s(21)),
            Some(Due {
                lost: 3,
                unshown: 1
            })
        );
    }
}
