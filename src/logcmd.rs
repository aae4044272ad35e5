//! `serialhub log`: print a traffic log, filtered; follow a live one across
//! rotations; or extract the raw bytes of one direction.
//!
//! Records are read with [`crate::traffic::reader`], kept or skipped by a
//! [`Filter`], and printed in the text format (coloured when stdout is a
//! terminal), as JSON lines, or as raw bytes. Lines that cannot be parsed are
//! reported on stderr and skipped. Following polls the file, because that
//! works on every file system and a log is never written faster than a human
//! reads it.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use crate::cli::LogArgs;
use crate::traffic::reader::{self, FileReader, Item};
use crate::traffic::rotate::{is_log_name, log_files};
use crate::traffic::text::{self, Palette};
use crate::traffic::{Direction, Event, Record, json};

/// How often `--follow` looks for new records and new files.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("no traffic log files in {0}")]
    NoFiles(String),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

/// Which records to print.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Data directions to keep; empty keeps every record, events included.
    pub directions: Vec<Direction>,
    /// `#ID`, or text the client's name contains.
    pub client: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl Filter {
    pub fn from_args(a: &LogArgs) -> Filter {
        let directions = match (a.raw, a.rx, a.tx) {
            (Some(d), _, _) => vec![d],
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

    pub fn accepts(&self, r: &Record) -> bool {
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
    skipped: u64,
    buf: String,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, items: &mut Vec<Item>) -> io::Result<()> {
        for item in items.drain(..) {
            let r = match item {
                Ok(r) => r,
                Err(e) => {
                    self.skipped += 1;
                    eprintln!("serialhub: warning: skipped {e}");
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
}

/// Runs `serialhub log`.
pub fn run(a: &LogArgs) -> Result<(), LogError> {
    let stdout = io::stdout();
    let colour = anstream::AutoStream::choice(&stdout) != anstream::ColorChoice::Never;
    let mode = match (a.raw, a.json) {
        (Some(_), _) => Mode::Raw,
        (None, true) => Mode::Json,
        (None, false) if colour => Mode::Text(Palette::colour()),
        (None, false) => Mode::Text(Palette::plain()),
    };
    let mut p = Printer {
        out: BufWriter::new(stdout.lock()),
        mode,
        filter: Filter::from_args(a),
        skipped: 0,
        buf: String::new(),
    };
    let result = print_files(a, &mut p).and_then(|()| p.out.flush().map_err(LogError::Output));
    if p.skipped > 0 {
        eprintln!("serialhub: {} damaged lines or records skipped", p.skipped);
    }
    match result {
        // `serialhub log ... | head` is not an error.
        Err(LogError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn print_files<W: Write>(a: &LogArgs, p: &mut Printer<W>) -> Result<(), LogError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| LogError::Read { path, source }
    };
    let mut files = Vec::new();
    for f in &a.files {
        let found = reader::expand(std::slice::from_ref(f)).map_err(read_err(f))?;
        if found.is_empty() && f.is_dir() && !a.follow {
            return Err(LogError::NoFiles(f.display().to_string()));
        }
        files.extend(found);
    }
    let mut items = Vec::new();
    let Some((last, rest)) = files.split_last() else {
        // Only with --follow of an empty directory: wait for the first file.
        return follow(None, &a.files[a.files.len() - 1], p);
    };
    for f in rest {
        items = FileReader::read_all(f).map_err(read_err(f))?;
        p.print(&mut items).map_err(LogError::Output)?;
    }
    let mut r = FileReader::open(last).map_err(read_err(last))?;
    r.read_available(&mut items).map_err(read_err(last))?;
    if !a.follow {
        r.finish(&mut items);
        return p.print(&mut items).map_err(LogError::Output);
    }
    p.print(&mut items).map_err(LogError::Output)?;
    let dir = match a.files.last() {
        Some(d) if d.is_dir() => d.clone(),
        _ => last.parent().map(Path::to_owned).unwrap_or_default(),
    };
    follow(Some(r), &dir, p)
}

/// Prints records as they are appended to `current`, moving on to the next
/// log file in `dir` once one appears. Runs until interrupted.
fn follow<W: Write>(
    mut current: Option<FileReader>,
    dir: &Path,
    p: &mut Printer<W>,
) -> Result<(), LogError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut items = Vec::new();
    loop {
        let mut got = 0;
        if let Some(r) = current.as_mut() {
            got = r
                .read_available(&mut items)
                .map_err(|source| LogError::Read {
                    path: r.path().to_owned(),
                    source,
                })?;
            p.print(&mut items).map_err(LogError::Output)?;
        }
        if got > 0 {
            continue;
        }
        if let Some(next) = newer_file(current.as_ref().map(FileReader::path), dir) {
            if let Some(mut r) = current.take() {
                // The writer finishes a file before it starts the next one,
                // so what is read now is the rest of it.
                let _ = r.read_available(&mut items);
                r.finish(&mut items);
                p.print(&mut items).map_err(LogError::Output)?;
            }
            current = Some(FileReader::open(&next).map_err(|source| LogError::Read {
                path: next.clone(),
                source,
            })?);
            continue;
        }
        p.out.flush().map_err(LogError::Output)?;
        std::thread::sleep(POLL);
    }
}

/// The oldest log file in `dir` started after `current`.
fn newer_file(current: Option<&Path>, dir: &Path) -> Option<PathBuf> {
    let name = match current {
        Some(c) => {
            let n = c.file_name()?.to_str()?;
            // A file not named by serialhub has no successor to look for.
            if !is_log_name(n) {
                return None;
            }
            Some(n.to_owned())
        }
        None => None,
    };
    log_files(dir).ok()?.into_iter().find(|f| {
        name.as_deref()
            .is_none_or(|n| f.file_name().and_then(|x| x.to_str()) > Some(n))
    })
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
            rec(0, Event::Connect(a.clone())),
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
    fn raw_output_is_the_bytes_alone() {
        let mut p = Printer {
            out: Vec::new(),
            mode: Mode::Raw,
            filter: Filter {
                directions: vec![Direction::Tx],
                ..Filter::default()
            },
            skipped: 0,
            buf: String::new(),
        };
        let mut items: Vec<Item> = records().into_iter().map(Ok).collect();
        p.print(&mut items).unwrap();
        assert_eq!(p.out, b"A1B3");
    }
}
