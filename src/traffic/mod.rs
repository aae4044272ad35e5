//! The traffic log: a record of every byte through the port, and of what
//! happened around it (clients coming and going, slow readers, the device
//! opening, failing and closing, and the requests that change the line
//! outside the data: settings, DTR, RTS, break and purges).
//!
//! The hot path only ever calls [`TrafficLog::record`], which stamps the
//! event and offers it to a bounded queue with `try_send`; it never waits and
//! never touches the disk. A dedicated thread ([`writer`]) drains the queue in
//! batches, formats records ([`text`] or [`json`]) and appends them to size-
//! rotated files ([`rotate`]). If the queue is full or the disk fails, records
//! are dropped and counted, and a `dropped N records` marker goes into the log
//! at the point of the gap once there is room again. [`reader`] parses both
//! formats back, for `serialhub log`.

pub(crate) mod json;
pub(crate) mod reader;
pub(crate) mod rotate;
pub(crate) mod text;
pub(crate) mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::ids::ClientId;
use crate::modem::Signal;

/// Records in the queue between the data path and the writer thread: about
/// one second of the worst case at 9600 baud (a record per byte), and far
/// more than the writer needs to ride out a slow `write`.
pub(crate) const QUEUE_RECORDS: usize = 1024;
/// Payload bytes in that queue. Caps its memory (1024 full 4 KiB reads would
/// be 4 MiB) at a size the disk clears in well under a second.
pub(crate) const QUEUE_BYTES: usize = 1 << 20;
/// Bookkeeping cost charged per record against [`QUEUE_BYTES`], so that a
/// flood of empty events is bounded too.
const RECORD_OVERHEAD: usize = 64;

/// Default `--log-max-size`.
pub(crate) const DEFAULT_MAX_SIZE: u64 = 16 << 20;
/// Smallest `--log-max-size`: below this nearly every record gets a file.
pub(crate) const MIN_MAX_SIZE: u64 = 4096;
/// Default `--log-keep`.
pub(crate) const DEFAULT_KEEP: usize = 5;

/// Which way the bytes went, seen from the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the device to the clients.
    Rx,
    /// From a client to the device.
    Tx,
}

/// The file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// Hex and printable ASCII side by side; reads well in `less`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// File name extension, without the dot.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Format::Text => "log",
            Format::Json => "jsonl",
        }
    }
}

/// Which of a client's buffers a purge request (RFC 2217 PURGE-DATA) named,
/// seen from the port as [`Direction`] is: `rx` is the device data queued
/// for the client, `tx` the bytes on their way to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Buffers {
    Rx,
    Tx,
    Both,
}

impl Buffers {
    /// The log's word for it: `rx`, `tx` or `both`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Buffers::Rx => "rx",
            Buffers::Tx => "tx",
            Buffers::Both => "both",
        }
    }

    /// Undoes [`name`](Buffers::name).
    pub(crate) fn from_name(s: &str) -> Option<Buffers> {
        [Buffers::Rx, Buffers::Tx, Buffers::Both]
            .into_iter()
            .find(|b| b.name() == s)
    }
}

/// Which client: its hub id (unique for the run) and its name, which says
/// the endpoint and the peer (`tcp:127.0.0.1:40522`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientRef {
    pub(crate) id: ClientId,
    pub(crate) name: Arc<str>,
}

/// A TLS client's certificate, as its connect record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Certified {
    /// `cn:alice`, `dns:monitor.lab` or `sha256:HEX`.
    pub identity: String,
    /// The certificate's SHA-256 fingerprint, lowercase hex.
    pub sha256: String,
}

/// Something worth a line in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Bytes read from the device.
    Rx(Bytes),
    /// Bytes written to the device for `client`.
    Tx(ClientRef, Bytes),
    /// Bytes read from the device during `client`'s transaction, and routed
    /// to it as (part of) its reply.
    Reply(ClientRef, Bytes),
    /// A transaction of `client` started: its request goes out next.
    TxnBegin(ClientRef),
    /// It ended with a reply of `reply` bytes (0 when none was expected).
    TxnEnd {
        client: ClientRef,
        reply: u64,
    },
    /// No complete reply came in time; `partial` bytes of one did.
    TxnTimeout {
        client: ClientRef,
        partial: u64,
    },
    /// A client connected; a TLS client with a certificate is named by it.
    Connect(ClientRef, Option<Certified>),
    Disconnect(ClientRef),
    /// A `drop` client's queue is full: its data is being dropped.
    SlowDrop(ClientRef),
    /// A `drop` client caught up, having missed `dropped` bytes in all.
    SlowResume {
        client: ClientRef,
        dropped: u64,
    },
    /// A slow client was disconnected; `discarded` bytes it never got.
    SlowKick {
        client: ClientRef,
        discarded: u64,
    },
    /// The serial settings in force, e.g. `9600 8N1 flow=none`.
    Settings(String),
    /// A modem output (or the break condition) was set `on` or off at
    /// `client`'s request (`None`: the operator's), recorded where the
    /// device applies it, so it sits in order with the bytes written
    /// before and after it. `refused` says why no wire changed (a device
    /// without modem lines; a client that left before it was applied):
    /// the request is worth a record all the same, since it was made.
    Signal {
        signal: Signal,
        on: bool,
        client: Option<ClientRef>,
        refused: Option<String>,
    },
    /// `client` asked to purge `buffers`; `discarded` bytes of device data
    /// queued for it were dropped. The transmit buffer holds other
    /// clients' bytes too, so it is never purged.
    Purge {
        client: ClientRef,
        buffers: Buffers,
        discarded: u64,
    },
    DeviceOpen(String),
    DeviceLost {
        path: String,
        error: String,
    },
    DeviceClose(String),
    /// `n` records are missing here (queue full or disk error).
    Dropped(u64),
}

impl Event {
    /// The bytes carried, for data records.
    pub(crate) fn data(&self) -> Option<(Direction, &Bytes)> {
        match self {
            Event::Rx(d) | Event::Reply(_, d) => Some((Direction::Rx, d)),
            Event::Tx(_, d) => Some((Direction::Tx, d)),
            _ => None,
        }
    }

    /// The client concerned, if any.
    pub(crate) fn client(&self) -> Option<&ClientRef> {
        match self {
            Event::Tx(c, _)
            | Event::Reply(c, _)
            | Event::TxnBegin(c)
            | Event::TxnEnd { client: c, .. }
            | Event::TxnTimeout { client: c, .. }
            | Event::Connect(c, _)
            | Event::Disconnect(c)
            | Event::SlowDrop(c)
            | Event::SlowResume { client: c, .. }
            | Event::SlowKick { client: c, .. }
            | Event::Signal {
                client: Some(c), ..
            }
            | Event::Purge { client: c, .. } => Some(c),
            _ => None,
        }
    }
}

/// An event with the time it happened, to the microsecond, in UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) ts: OffsetDateTime,
    pub(crate) event: Event,
}

impl Record {
    /// Stamps `event` with the current time, truncated to microseconds (the
    /// log's resolution, so a record read back equals the one written).
    pub(crate) fn now(event: Event) -> Record {
        let now = OffsetDateTime::now_utc();
        let ts = now
            .replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now);
        Record { ts, event }
    }
}

/// Why the traffic log cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("traffic log directory {0} does not exist; create it first (serialhub does not)")]
    NoDir(PathBuf),
    #[error("traffic log path {0} is not a directory")]
    NotDir(PathBuf),
    #[error("cannot write traffic log in {dir}: {reason}")]
    Write {
        dir: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot start the traffic log writer: {0}")]
    Thread(std::io::Error),
}

/// Resolved `--log*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TrafficConfig {
    pub(crate) dir: PathBuf,
    pub(crate) format: Format,
    /// A file is rotated before a record would take it past this size.
    pub(crate) max_size: u64,
    /// Most files kept, the one being written included.
    pub(crate) keep: usize,
}

/// What goes through the queue.
#[derive(Debug)]
enum Msg {
    Record(Record),
    /// Write what is queued and stop.
    Close,
}

/// State shared by every handle and the writer.
#[derive(Debug)]
struct Shared {
    tx: mpsc::Sender<Msg>,
    /// Payload bytes (plus overhead) queued, against [`QUEUE_BYTES`].
    queued_bytes: AtomicUsize,
    /// Records never written, for any reason.
    dropped: AtomicU64,
    /// Records dropped at the queue since the last marker went in.
    unmarked: AtomicU64,
}

impl Shared {
    /// New shared state, and the receiving end of its record queue, which
    /// the writer drains.
    fn queue() -> (Arc<Shared>, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(QUEUE_RECORDS);
        let shared = Arc::new(Shared {
            tx,
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            unmarked: AtomicU64::new(0),
        });
        (shared, rx)
    }
}

/// The data path's handle on the traffic log. Cheap to clone; a no-op when
/// the log is off.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrafficLog {
    shared: Option<Arc<Shared>>,
}

impl TrafficLog {
    /// A handle that records nothing.
    pub(crate) fn disabled() -> TrafficLog {
        TrafficLog::default()
    }

    /// Opens the log in `cfg.dir` and starts its writer thread. Fails if the
    /// directory is missing or a file cannot be created and written there.
    pub(crate) fn open(cfg: &TrafficConfig) -> Result<(TrafficLog, writer::Writer), TrafficError> {
        let rotator = rotate::Rotator::open(cfg)?;
        let (shared, rx) = Shared::queue();
        let writer = writer::Writer::spawn(rotator, cfg.format, rx, shared.clone())?;
        Ok((
            TrafficLog {
                shared: Some(shared),
            },
            writer,
        ))
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Records `event` now, or counts it as dropped if the writer is behind.
    /// Never waits.
    pub(crate) fn record(&self, event: Event) {
        let Some(s) = &self.shared else { return };
        let cost = cost(&event);
        if s.queued_bytes.fetch_add(cost, Relaxed) + cost > QUEUE_BYTES {
            s.queued_bytes.fetch_sub(cost, Relaxed);
            s.drop_one();
            return;
        }
        // Put the marker for earlier drops first, so it sits at the gap.
        let unmarked = s.unmarked.swap(0, Relaxed);
        if unmarked > 0 {
            let marker = Record::now(Event::Dropped(unmarked));
            if s.tx.try_send(Msg::Record(marker)).is_err() {
                s.unmarked.fetch_add(unmarked, Relaxed);
                s.queued_bytes.fetch_sub(cost, Relaxed);
                s.drop_one();
                return;
            }
        }
        if s.tx.try_send(Msg::Record(Record::now(event))).is_err() {
            s.queued_bytes.fetch_sub(cost, Relaxed);
            s.drop_one();
        }
    }

    /// Records that never reached the disk, so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.dropped.load(Relaxed))
    }
}

impl Shared {
    fn drop_one(&self) {
        self.dropped.fetch_add(1, Relaxed);
        self.unmarked.fetch_add(1, Relaxed);
    }

    /// What the writer charges back when it takes `record` off the queue.
    fn release(&self, record: &Record) {
        self.queued_bytes.fetch_sub(cost(&record.event), Relaxed);
    }
}

/// What a queued event is charged against [`QUEUE_BYTES`]. Markers ride free:
/// they replace records that were not queued.
fn cost(event: &Event) -> usize {
    match event {
        Event::Dropped(_) => 0,
        e => RECORD_OVERHEAD + e.data().map_or(0, |(_, d)| d.len()),
    }
}

#[cfg(test)]
mod tests;
