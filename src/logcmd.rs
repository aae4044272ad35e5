//! `serialhub log`: print a traffic log, filtered; follow a live one across
//! rotations; or extract the raw bytes of one direction.
//!
//! Records are read with [`crate::traffic::reader`], kept or skipped by a
//! [`Filter`], and printed in the text format (coloured when stdout is a
//! terminal), as JSON lines, or as raw bytes. Files are streamed a buffer at
//! a time, so memory stays bounded whatever they hold. Lines that cannot be
//! parsed are skipped: the first few of each file are reported on stderr,
//! and the rest counted in one line per file. Following polls the directory,
//! because that works on every file system; it holds the files it has seen
//! open so rotation cannot take them away, and says so on stderr when
//! rotation may have deleted files before it could read them.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::cli::LogArgs;
use crate::traffic::reader::{self, FileReader, Item};
use crate::traffic::rotate::{is_log_name, log_files};
use crate::traffic::text::{self, Palette};
use crate::traffic::{Direction, Event, Record, json};

/// How often `--follow` looks for new records and new files. A follower
/// misses files only if rotation runs through `--log-keep` of them between
/// two looks (it holds the files it has seen open), so while files come
/// quickly (within `BUSY_FOR` of the last new one) it looks every `POLL_BUSY`.
const POLL: Duration = Duration::from_millis(100);
const POLL_BUSY: Duration = Duration::from_millis(10);
const BUSY_FOR: Duration = Duration::from_secs(2);
/// Damaged lines reported one by one per file; the rest are counted, and
/// each file's count is reported when it is done.
const SHOW_DAMAGED: u64 = 5;
/// Files `--follow` holds open ahead of the one it is reading.
const MAX_AHEAD: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("no traffic log files in {0}")]
    NoFiles(String),
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: io::Error },
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

/// Which records to print.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Data directions to keep; empty keeps every record, events included.
    pub(crate) directions: Vec<Direction>,
    /// `#ID`, or text the client's name contains.
    pub(crate) client: Option<String>,
    pub(crate) since: Option<OffsetDateTime>,
    pub(crate) until: Option<OffsetDateTime>,
}

impl Filter {
    pub(crate) fn from_args(a: &LogArgs) -> Filter {
        let directions = match (a.raw, a.rx, a.tx) {
            (Some(d), _, _) => vec![d.into()],
            (None, true, false) => vec![Direction::Rx],
            (None, false, true) => vec![Direction::Tx],
            (None, true, true) => vec![Direction::Rx, Direction::Tx],
            (None, false, false) => vec![],
        };
        Filter {
            directions,
            client: a.client.clone(),
            since: a.since,
            until: a.until,
        }
    }

    pub(crate) fn accepts(&self, r: &Record) -> bool {
        if self.since.is_some_and(|t| r.ts < t) || self.until.is_some_and(|t| r.ts >= t) {
            return false;
        }
        if !self.directions.is_empty()
            && !r
                .event
                .data()
                .is_some_and(|(d, _)| self.directions.contains(&d))
        {
            return false;
        }
        match &self.client {
            None => true,
            Some(want) => r
                .event
                .client()
                .is_some_and(|c| match want.strip_prefix('#') {
                    Some(id) => id.parse() == Ok(c.id),
                    None => c.name.contains(want.as_str()),
                }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Text(Palette),
    Json,
    Raw,
}

struct Printer<W: Write> {
    out: W,
    mode: Mode,
    filter: Filter,
    /// Damaged lines in the file being read.
    damaged: u64,
    buf: String,
}

impl<W: Write> Printer<W> {
    fn new(out: W, mode: Mode, filter: Filter) -> Self {
        Printer {
            out,
            mode,
            filter,
            damaged: 0,
            buf: String::new(),
        }
    }

    fn print(&mut self, items: &mut Vec<Item>) -> io::Result<()> {
        for item in items.drain(..) {
            let r = match item {
                Ok(r) => r,
                Err(e) => {
                    self.damaged += 1;
                    if self.damaged <= SHOW_DAMAGED {
                        eprintln!("serialhub: warning: skipped {e}");
                    }
                    continue;
                }
            };
            if let (Mode::Raw, Event::Dropped(n)) = (self.mode, &r.event) {
                let mut at = String::new();
                text::format_ts(r.ts, &mut at);
                eprintln!(
                    "serialhub: warning: {n} records are missing at {at}; the raw bytes have a gap there"
                );
            }
            if !self.filter.accepts(&r) {
                continue;
            }
            self.buf.clear();
            match self.mode {
                Mode::Text(p) => text::encode(&r, &mut self.buf, &p),
                Mode::Json => json::encode(&r, &mut self.buf),
                Mode::Raw => {
                    if let Some((_, d)) = r.event.data() {
                        self.out.write_all(d)?;
                    }
                    continue;
                }
            }
            self.out.write_all(self.buf.as_bytes())?;
        }
        Ok(())
    }

    /// A file is done: one line sums up its damage.
    fn end_file(&mut self, path: &Path) {
        let n = std::mem::take(&mut self.damaged);
        if n > SHOW_DAMAGED {
            eprintln!(
                "serialhub: warning: skipped {} damaged lines in {} (the first {SHOW_DAMAGED} are shown above)",
                thousands(n),
                path.display()
            );
        } else if n > 0 {
            eprintln!(
                "serialhub: warning: skipped {n} damaged lines in {}",
                path.display()
            );
        }
    }

    /// Prints the rest of a file that is complete, a buffer at a time.
    fn drain(&mut self, r: &mut FileReader, items: &mut Vec<Item>) -> Result<(), LogError> {
        loop {
            let n = r.read_available(items).map_err(|reason| LogError::Read {
                path: r.path().to_owned(),
                reason,
            })?;
            self.print(items).map_err(LogError::Output)?;
            if n == 0 {
                break;
            }
        }
        r.finish(items);
        self.print(items).map_err(LogError::Output)?;
        self.end_file(r.path());
        Ok(())
    }
}

/// `4162847` as `4,162,847`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Says that log files were deleted (by rotation) before they were read.
fn warn_missed(missed: &[PathBuf]) {
    let names = match missed {
        [] => return,
        [one] => one.display().to_string(),
        [first, .., last] => format!(
            "{} files, {} to {}",
            missed.len(),
            first.display(),
            last.display()
        ),
    };
    eprintln!("serialhub: warning: missed {names}: deleted by rotation before they could be read");
}

/// Runs `serialhub log`.
pub(crate) fn run(a: &LogArgs) -> Result<(), LogError> {
    let stdout = io::stdout();
    let colour = anstream::AutoStream::choice(&stdout) != anstream::ColorChoice::Never;
    let mode = match (a.raw, a.json) {
        (Some(_), _) => Mode::Raw,
        (None, true) => Mode::Json,
        (None, false) if colour => Mode::Text(Palette::colour()),
        (None, false) => Mode::Text(Palette::plain()),
    };
    let mut p = Printer::new(BufWriter::new(stdout.lock()), mode, Filter::from_args(a));
    let result = print_files(a, &mut p).and_then(|()| p.out.flush().map_err(LogError::Output));
    match result {
        // `serialhub log ... | head` is not an error.
        Err(LogError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Writes the traffic log in `dir` to `out` as `serialhub log DIR` prints
/// it without colour, keeping the records `filter` accepts: the web
/// console's `/api/ports/NAME/log`. Streamed a buffer at a time, as `log`.
pub(crate) fn write_dir<W: Write>(dir: &Path, filter: Filter, out: W) -> Result<(), LogError> {
    let mut p = Printer::new(out, Mode::Text(Palette::plain()), filter);
    let files = reader::expand(&[dir.to_owned()]).map_err(|reason| LogError::Read {
        path: dir.to_owned(),
        reason,
    })?;
    let mut items = Vec::new();
    for path in files {
        let mut f = Pending {
            path,
            from_dir: true,
            reader: None,
        };
        if !f.open()? {
            continue;
        }
        if let Some(r) = f.reader.as_mut() {
            p.drain(r, &mut items)?;
        }
    }
    p.out.flush().map_err(LogError::Output)
}

/// A file to read: named on the command line, or found in a directory (and
/// so liable to be deleted by rotation before it is read).
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    from_dir: bool,
    reader: Option<FileReader>,
}

impl Pending {
    /// Opens the file if it is not open yet. `Ok(false)`: it was found in a
    /// directory and has been deleted since.
    fn open(&mut self) -> Result<bool, LogError> {
        if self.reader.is_some() {
            return Ok(true);
        }
        match FileReader::open(&self.path) {
            Ok(r) => {
                self.reader = Some(r);
                Ok(true)
            }
            Err(e) if self.from_dir && e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(reason) => Err(LogError::Read {
                path: self.path.clone(),
                reason,
            }),
        }
    }
}

fn print_files<W: Write>(a: &LogArgs, p: &mut Printer<W>) -> Result<(), LogError> {
    let mut files = Vec::new();
    for f in &a.files {
        let found = reader::expand(std::slice::from_ref(f)).map_err(|reason| LogError::Read {
            path: f.clone(),
            reason,
        })?;
        if found.is_empty() && f.is_dir() && !a.follow {
            return Err(LogError::NoFiles(f.display().to_string()));
        }
        let from_dir = f.is_dir();
        files.extend(found.into_iter().map(|path| Pending {
            path,
            from_dir,
            reader: None,
        }));
    }
    let mut items = Vec::new();
    if !a.follow {
        for mut f in files {
            if !f.open()? {
                warn_missed(&[f.path]);
                continue;
            }
            if let Some(r) = f.reader.as_mut() {
                p.drain(r, &mut items)?;
            }
        }
        return Ok(());
    }
    // Where the files that come next will appear.
    let dir = match (a.files.last(), files.last()) {
        (Some(d), _) if d.is_dir() => Some(d.clone()),
        (_, Some(f)) => f
            .path
            .file_name()
            .and_then(|n| n.to_str())
            // A file not named by serialhub has no successor to look for.
            .filter(|n| is_log_name(n))
            .map(|_| match f.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => PathBuf::from("."),
            }),
        _ => None,
    };
    let newest = files
        .last()
        .and_then(|f| f.path.file_name()?.to_str())
        .filter(|n| is_log_name(n))
        .map(str::to_owned);
    let mut f = Follow {
        dir,
        queue: files.into(),
        newest,
        newest_open: false,
        last_new: None,
    };
    f.open_ahead();
    f.run(p, &mut items)
}

/// `--follow`: the files still to read, the first of which is being read,
/// and where more will appear.
struct Follow {
    dir: Option<PathBuf>,
    /// Oldest first. The first [`MAX_AHEAD`] are held open, so that rotation
    /// cannot take their records away before they are read (an open file
    /// stays readable after it is deleted).
    queue: VecDeque<Pending>,
    /// Name of the newest log file seen in `dir`.
    newest: Option<String>,
    /// That file has been opened: if it is gone from `dir` at the next look,
    /// files started since may have come and gone unseen (rotation deletes
    /// the oldest first, so they went after it).
    newest_open: bool,
    /// When a new file was last found.
    last_new: Option<Instant>,
}

impl Follow {
    /// Prints records as they are appended, moving on to the next file once
    /// one has been started. Runs until interrupted.
    fn run<W: Write>(&mut self, p: &mut Printer<W>, items: &mut Vec<Item>) -> Result<(), LogError> {
        loop {
            if let Some(r) = self.queue.front_mut().and_then(|f| f.reader.as_mut()) {
                let got = r.read_available(items).map_err(|reason| LogError::Read {
                    path: r.path().to_owned(),
                    reason,
                })?;
                p.print(items).map_err(LogError::Output)?;
                if got > 0 {
                    continue;
                }
            }
            self.scan();
            if self.queue.len() > 1 {
                // The writer finishes a file before it starts the next one,
                // so what is left of this one is all there will be.
                if let Some(mut r) = self.queue.pop_front().and_then(|f| f.reader) {
                    p.drain(&mut r, items)?;
                }
                self.open_ahead();
                continue;
            }
            p.out.flush().map_err(LogError::Output)?;
            let busy = self.last_new.is_some_and(|t| t.elapsed() < BUSY_FOR);
            std::thread::sleep(if busy { POLL_BUSY } else { POLL });
        }
    }

    /// Queues the files started since the last look.
    fn scan(&mut self) {
        let Some(dir) = &self.dir else { return };
        let Ok(files) = log_files(dir) else { return };
        let name = |f: &PathBuf| f.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        let newest = self.newest.clone();
        let newer: Vec<PathBuf> = files
            .iter()
            .filter(|f| newest.is_none() || name(f) > newest)
            .cloned()
            .collect();
        let Some(first_new) = newer.first() else {
            return;
        };
        if let Some(n) = &newest
            && self.newest_open
            && !files.iter().any(|f| name(f).as_ref() == Some(n))
        {
            eprintln!(
                "serialhub: warning: the log rotated past {n} between two looks; files started in between and before {} may have been deleted by rotation before they could be read",
                first_new.display()
            );
        }
        self.newest = newer.last().and_then(name);
        self.newest_open = false;
        self.last_new = Some(Instant::now());
        self.queue.extend(newer.into_iter().map(|path| Pending {
            path,
            from_dir: true,
            reader: None,
        }));
        self.open_ahead();
    }

    /// Opens the first [`MAX_AHEAD`] queued files; drops (and reports) those
    /// deleted before they could be.
    fn open_ahead(&mut self) {
        let mut missed = Vec::new();
        let mut i = 0;
        while i < self.queue.len().min(MAX_AHEAD) {
            match self.queue[i].open() {
                Ok(true) => {
                    let f = &self.queue[i];
                    if f.path.file_name().and_then(|n| n.to_str()) == self.newest.as_deref() {
                        self.newest_open = true;
                    }
                    i += 1;
                }
                Ok(false) => {
                    missed.extend(self.queue.remove(i).map(|f| f.path));
                }
                Err(e) => {
                    // Not a file rotation deleted: say why, and go on.
                    if let Some(f) = self.queue.remove(i) {
                        eprintln!("serialhub: warning: skipped {}: {e}", f.path.display());
                    }
                }
            }
        }
        warn_missed(&missed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::ClientRef;
    use bytes::Bytes;
    use std::sync::Arc;
    use time::macros::datetime;

    fn rec(secs: i64, event: Event) -> Record {
        Record {
            ts: datetime!(2025-01-02 03:00:00 UTC) + time::Duration::seconds(secs),
            event,
        }
    }

    fn records() -> Vec<Record> {
        let a = ClientRef {
            id: 1,
            name: Arc::from("tcp:127.0.0.1:5000"),
        };
        let b = ClientRef {
            id: 2,
            name: Arc::from("tcp:10.0.0.9:6000"),
        };
        vec![
            rec(0, Event::Connect(a.clone(), None)),
            rec(1, Event::Tx(a.clone(), Bytes::from_static(b"A1"))),
            rec(2, Event::Rx(Bytes::from_static(b"R2"))),
            rec(3, Event::Tx(b.clone(), Bytes::from_static(b"B3"))),
            rec(4, Event::Rx(Bytes::from_static(b"R4"))),
            rec(5, Event::Disconnect(b)),
        ]
    }

    fn kept(f: &Filter) -> Vec<i64> {
        let t0 = datetime!(2025-01-02 03:00:00 UTC);
        records()
            .iter()
            .filter(|r| f.accepts(r))
            .map(|r| (r.ts - t0).whole_seconds())
            .collect()
    }

    #[test]
    fn filters_by_direction_client_and_time() {
        assert_eq!(kept(&Filter::default()), vec![0, 1, 2, 3, 4, 5]);
        let dirs = |d: Vec<Direction>| Filter {
            directions: d,
            ..Filter::default()
        };
        assert_eq!(kept(&dirs(vec![Direction::Rx])), vec![2, 4]);
        assert_eq!(kept(&dirs(vec![Direction::Tx])), vec![1, 3]);
        let client = |c: &str| Filter {
            client: Some(c.into()),
            ..Filter::default()
        };
        assert_eq!(kept(&client("10.0.0.9")), vec![3, 5]);
        assert_eq!(kept(&client("#1")), vec![0, 1]);
        assert_eq!(kept(&client("#12")), Vec::<i64>::new());
        let window = Filter {
            since: Some(datetime!(2025-01-02 03:00:01 UTC)),
            until: Some(datetime!(2025-01-02 03:00:04 UTC)),
            ..Filter::default()
        };
        assert_eq!(kept(&window), vec![1, 2, 3]);
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(4_162_847), "4,162,847");
    }

    #[test]
    fn raw_output_is_the_bytes_alone() {
        let filter = Filter {
            directions: vec![Direction::Tx],
            ..Filter::default()
        };
        let mut p = Printer::new(Vec::new(), Mode::Raw, filter);
        let mut items: Vec<Item> = records().into_iter().map(Ok).collect();
        p.print(&mut items).unwrap();
        assert_eq!(p.out, b"A1B3");
    }
}
