//! The writer: a dedicated thread that drains the traffic queue to disk.
//!
//! File I/O blocks, and a slow or full disk must never hold up a runtime
//! worker (there may be only two), so the writer is an OS thread that takes
//! records off the queue with `blocking_recv_many`, formats a batch, and
//! hands it to the [`Rotator`] in one `write`. Records a failed write lost are
//! counted, and a `dropped N records` marker is written ahead of the next
//! batch that reaches the disk. Problems are logged at most once per
//! `WARN_EVERY`, with the number of records lost since the last warning.

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
pub struct Writer {
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
            failing: false,
            warned: None,
            unwarned: 0,
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
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes everything queued so far and stops the thread, waiting at most
    /// `timeout`. Records offered after this are counted as dropped.
    pub async fn finish(self, timeout: Duration) -> bool {
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
    /// The last write failed; the next success is worth a log line.
    failing: bool,
    warned: Option<Instant>,
    /// Records lost since the last warning.
    unwarned: u64,
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
        match self.rotator.write(text.as_bytes(), &ends) {
            Ok(()) => {
                self.lost = 0;
                if self.failing {
                    self.failing = false;
                    info!(file = ?self.rotator.path(), "traffic log is being written again");
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
                self.failing = true;
                self.note_loss(new, &format!("cannot write traffic log: {error}"));
            }
        }
    }

    /// Logs a loss, at most once per `WARN_EVERY`.
    fn note_loss(&mut self, n: u64, why: &str) {
        self.unwarned += n;
        if self.warned.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        self.warned = Some(Instant::now());
        warn!(
            dir = %self.rotator.dir().display(),
            dropped_since_last_warning = self.unwarned,
            dropped_total = self.shared.dropped.load(Relaxed),
            "{why}; traffic records dropped"
        );
        self.unwarned = 0;
    }
}
