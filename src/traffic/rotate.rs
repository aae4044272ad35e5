//! Log files on disk: naming, size-based rotation and pruning.
//!
//! Files are named `traffic-YYYYMMDDTHHMMSS.ffffffZ.log` (`.jsonl` for JSON)
//! after the time they were started, and are never renamed, so sorting the
//! names sorts them by age, a shell glob lists them in order, and a reader
//! following the newest file is never pulled from under. A new name is always
//! later than every existing one, even if the clock steps back.
//!
//! A record is never split across files. Before appending a record that would
//! take the file past `max_size`, the file is closed and a new one started, so
//! a file exceeds the limit only when a single record is larger than the limit
//! (it then holds that record alone). Before a file is started the oldest
//! files are deleted until `keep - 1` remain, so there are never more than
//! `keep`, not even for a moment.
//!
//! A record is also written whole or not at all: when a write fails part-way
//! (a full disk, a file size limit), the file is cut back to the end of the
//! last whole record, so a reader never meets half a record. A file that has
//! hit a size limit (`EFBIG`), or was deleted while open, is left for a new
//! one. Problems that lose no record (an old file that cannot be deleted) are
//! handed to the writer, which reports everything through one throttle.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{Format, TrafficConfig, TrafficError};
use time::OffsetDateTime;

/// Start-up refuses a file system with less free space than this: the log
/// would fail at once and only produce errors.
const MIN_FREE: u64 = 64 * 1024;

const PREFIX: &str = "traffic-";

const NAME_TS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
);

/// Whether `name` is one of the files this module writes.
pub(crate) fn is_log_name(name: &str) -> bool {
    name_ts(name).is_some()
}

/// The start time encoded in a log file name.
fn name_ts(name: &str) -> Option<OffsetDateTime> {
    let stem = name.strip_prefix(PREFIX)?;
    let stem = stem
        .strip_suffix(".log")
        .or_else(|| stem.strip_suffix(".jsonl"))?;
    time::PrimitiveDateTime::parse(stem, NAME_TS)
        .ok()
        .map(|t| t.assume_utc())
}

/// The log files in `dir`, oldest first.
pub(crate) fn log_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_log_name(n))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// A file size limit (`ulimit -f`, systemd's `LimitFSIZE=`) kills a process
/// that writes past it with SIGXFSZ, unless the signal is ignored; then the
/// write fails with `EFBIG`, which the log handles like a full file. A log
/// that cannot grow is no reason to stop serving the port.
fn ignore_file_size_signal() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installs no handler, only the "ignore" disposition, which is
    // async-signal-safe by definition; the process never relies on SIGXFSZ.
    let _ = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) };
}

#[derive(Debug)]
struct Current {
    file: File,
    path: PathBuf,
    size: u64,
}

/// Appends batches of records to the current file, rotating and pruning.
#[derive(Debug)]
pub(crate) struct Rotator {
    dir: PathBuf,
    format: Format,
    max_size: u64,
    keep: usize,
    /// `None` after a rotation failed; the next write tries again.
    current: Option<Current>,
    /// Start time of the newest file, so the next name sorts after it.
    last: OffsetDateTime,
    /// The latest problem that lost no record, for the writer to report.
    problem: Option<String>,
    /// Problems since the writer last asked.
    problems: u64,
}

/// A batch that was not (entirely) written.
#[derive(Debug)]
pub(crate) struct WriteFailure {
    pub(crate) error: io::Error,
    /// Index of the first record not known to be written; it and every
    /// record after it are lost.
    pub(crate) first_unwritten: usize,
}

/// What [`Rotator::open`] checks before it writes anything, so that
/// `check-config` finds what `serve` would refuse: `dir` exists, is a
/// directory we may write in, and has room.
pub(crate) fn check_dir(dir: &Path) -> Result<(), TrafficError> {
    let write_err = |reason| TrafficError::Write {
        dir: dir.to_owned(),
        reason,
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(TrafficError::NoDir(dir.to_owned()));
        }
        Err(reason) => return Err(write_err(reason)),
        Ok(m) if !m.is_dir() => return Err(TrafficError::NotDir(dir.to_owned())),
        Ok(_) => {}
    }
    use nix::unistd::{AccessFlags, access};
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| write_err(e.into()))?;
    if let Ok(s) = nix::sys::statvfs::statvfs(dir) {
        // The field types are narrower on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let free = u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size()));
        if free < MIN_FREE {
            return Err(write_err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("only {free} bytes free"),
            )));
        }
    }
    Ok(())
}

impl Rotator {
    /// Checks `cfg.dir` and starts a new file there.
    pub(crate) fn open(cfg: &TrafficConfig) -> Result<Rotator, TrafficError> {
        let dir = cfg.dir.clone();
        check_dir(&dir)?;
        let write_err = |reason| TrafficError::Write {
            dir: cfg.dir.clone(),
            reason,
        };
        ignore_file_size_signal();
        let newest = log_files(&dir)
            .map_err(write_err)?
            .last()
            .and_then(|p| name_ts(&p.file_name()?.to_string_lossy()));
        let mut r = Rotator {
            dir,
            format: cfg.format,
            max_size: cfg.max_size,
            keep: cfg.keep.max(1),
            current: None,
            last: newest.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            problem: None,
            problems: 0,
        };
        r.rotate().map_err(write_err)?;
        if let Some(c) = &r.current {
            // Make a full disk show now, not at the first record.
            c.file.sync_data().map_err(write_err)?;
        }
        Ok(r)
    }

    /// The file being written.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn header(&self) -> &'static str {
        match self.format {
            Format::Text => super::text::FILE_HEADER,
            Format::Json => "",
        }
    }

    /// Appends the records in `buf`; record `i` ends at `ends[i]`. Each
    /// record is written whole or not at all: a write that fails part-way
    /// (a full disk, a file size limit) is cut back to the last whole record.
    pub(crate) fn write(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), WriteFailure> {
        self.check_linked();
        let header = self.header().len() as u64;
        let mut run_first = 0; // index of the first record not yet written
        let mut run_start = 0; // its byte offset
        let mut rec_start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let pending = (rec_start - run_start) as u64;
            let len = (end - rec_start) as u64;
            let full = self.current.as_ref().is_none_or(|c| {
                let before = c.size + pending;
                before > header && before + len > self.max_size
            });
            if full {
                self.append(buf, run_start, &ends[run_first..i])
                    .map_err(|(written, error)| WriteFailure {
                        error,
                        first_unwritten: run_first + written,
                    })?;
                self.rotate().map_err(|error| WriteFailure {
                    error,
                    first_unwritten: i,
                })?;
                run_start = rec_start;
                run_first = i;
            }
            rec_start = end;
        }
        self.append(buf, run_start, &ends[run_first..])
            .map_err(|(written, error)| WriteFailure {
                error,
                first_unwritten: run_first + written,
            })
    }

    /// The latest problem that lost no record (an old file that could not be
    /// deleted, say) since the last call, and how many there were.
    pub(crate) fn take_problem(&mut self) -> Option<(u64, String)> {
        let n = std::mem::take(&mut self.problems);
        self.problem.take().map(|p| (n, p))
    }

    fn note_problem(&mut self, problem: String) {
        self.problems += 1;
        self.problem = Some(problem);
    }

    /// A file deleted while open takes every record written to it along, so
    /// once the current file has no name left, the next record starts a new
    /// one (which fails, and is reported, if its directory is gone too).
    fn check_linked(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let Some(c) = &self.current else { return };
        if c.file.metadata().is_ok_and(|m| m.nlink() == 0) {
            let problem = format!("{} was deleted while being written", c.path.display());
            self.current = None;
            self.note_problem(problem);
        }
    }

    /// Appends the records that start at `buf[start]` and end at `ends`.
    /// On failure, returns how many of them were written whole, having cut
    /// the file back to the end of the last of those.
    fn append(
        &mut self,
        buf: &[u8],
        start: usize,
        ends: &[usize],
    ) -> Result<(), (usize, io::Error)> {
        let Some(&end) = ends.last() else {
            return Ok(());
        };
        let Some(c) = self.current.as_mut() else {
            return Err((0, io::Error::other("no log file open")));
        };
        let bytes = &buf[start..end];
        let mut done = 0;
        let error = loop {
            if done == bytes.len() {
                c.size += bytes.len() as u64;
                return Ok(());
            }
            match c.file.write(&bytes[done..]) {
                Ok(0) => break io::Error::from(io::ErrorKind::WriteZero),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break e,
            }
        };
        let whole = ends.iter().take_while(|&&e| e - start <= done).count();
        let keep = c.size + whole.checked_sub(1).map_or(0, |w| ends[w] - start) as u64;
        let cut = c.file.set_len(keep);
        let path = c.path.clone();
        match cut {
            Ok(()) => c.size = keep,
            Err(e) => {
                // The file ends inside a record; write no more to it.
                self.current = None;
                self.note_problem(format!(
                    "cannot cut {} back to its last whole record after a failed write: {e}",
                    path.display()
                ));
            }
        }
        if error.kind() == io::ErrorKind::FileTooLarge {
            // This file cannot grow; the next record starts a new one.
            self.current = None;
        }
        let error = io::Error::new(
            error.kind(),
            format!("cannot append to {}: {error}", path.display()),
        );
        Err((whole, error))
    }

    /// Starts a new file, then prunes old ones.
    fn rotate(&mut self) -> io::Result<()> {
        self.current = None;
        let now = OffsetDateTime::now_utc();
        let mut ts = now
            .replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now);
        if ts <= self.last {
            ts = self.last + time::Duration::microseconds(1);
        }
        let stamp = ts
            .format(NAME_TS)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let path = self
            .dir
            .join(format!("{PREFIX}{stamp}.{}", self.format.extension()));
        self.prune(self.keep - 1);
        let context = |e: io::Error| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
        };
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(context)?;
        let header = self.header();
        if let Err(e) = file.write_all(header.as_bytes()) {
            // Leave no empty file behind: on a full disk every retry would
            // otherwise add one, and prune a file of real records for it.
            let _ = std::fs::remove_file(&path);
            return Err(context(e));
        }
        self.last = ts;
        self.current = Some(Current {
            file,
            path,
            size: header.len() as u64,
        });
        Ok(())
    }

    /// Deletes the oldest files until at most `n` remain. A failure here
    /// loses no record; it is noted for the writer's throttled warning.
    fn prune(&mut self, n: usize) {
        let files = match log_files(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                let problem = format!(
                    "cannot list traffic log files in {}: {e}",
                    self.dir.display()
                );
                self.note_problem(problem);
                return;
            }
        };
        let excess = files.len().saturating_sub(n);
        for old in &files[..excess] {
            match std::fs::remove_file(old) {
                Ok(()) => {}
                // Someone else deleted it first: what we wanted.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let problem = format!("cannot delete old traffic log {}: {e}", old.display());
                    self.note_problem(problem);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max_size: u64, keep: usize) -> TrafficConfig {
        TrafficConfig {
            dir: dir.to_owned(),
            format: Format::Text,
            max_size,
            keep,
        }
    }

    /// Writes `n` records of `len` bytes each, one batch per record.
    fn write_n(r: &mut Rotator, n: usize, len: usize) {
        for i in 0..n {
            let mut rec = vec![b'a' + (i % 26) as u8; len - 1];
            rec.push(b'\n');
            r.write(&rec, &[len]).unwrap();
        }
    }

    #[test]
    fn names_sort_by_time_and_parse_back() {
        let t = time::macros::datetime!(2025-01-02 03:04:05.123456 UTC);
        let name = format!("traffic-{}.log", t.format(NAME_TS).unwrap());
        assert_eq!(name, "traffic-20250102T030405.123456Z.log");
        assert_eq!(name_ts(&name), Some(t));
        assert!(is_log_name("traffic-20250102T030405.123456Z.jsonl"));
        assert!(!is_log_name("traffic-2025.log"));
        assert!(!is_log_name("notes.txt"));
    }

    #[test]
    fn missing_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        let e = Rotator::open(&cfg(&gone, 4096, 2)).unwrap_err();
        assert!(matches!(e, TrafficError::NoDir(_)), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn files_stay_under_the_limit_and_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(&cfg(dir.path(), 1000, 3)).unwrap();
        write_n(&mut r, 200, 100);
        let files = log_files(dir.path()).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        let header = super::super::text::FILE_HEADER.len() as u64;
        for f in &files {
            let size = std::fs::metadata(f).unwrap().len();
            assert!(size <= 1000, "{} is {size} bytes", f.display());
            // Full files hold as many whole records as fit.
            assert_eq!((size - header) % 100, 0);
        }
        // The newest file is the one being written.
        assert_eq!(files.last().map(|p| p.as_path()), r.path());
    }

    #[test]
    fn a_record_larger_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(&cfg(dir.path(), 500, 10)).unwrap();
        write_n(&mut r, 2, 100);
        write_n(&mut r, 1, 2000);
        write_n(&mut r, 1, 100);
        let sizes: Vec<u64> = log_files(dir.path())
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .collect();
        let h = super::super::text::FILE_HEADER.len() as u64;
        assert_eq!(sizes, vec![h + 200, h + 2000, h + 100]);
    }

    #[test]
    fn a_batch_splits_at_record_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let h = super::super::text::FILE_HEADER.len() as u64;
        let mut r = Rotator::open(&cfg(dir.path(), h + 250, 10)).unwrap();
        let buf = vec![b'x'; 1000];
        let ends: Vec<usize> = (1..=10).map(|i| i * 100).collect();
        r.write(&buf, &ends).unwrap();
        let sizes: Vec<u64> = log_files(dir.path())
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len() - h)
            .collect();
        assert_eq!(sizes, vec![200, 200, 200, 200, 200]);
    }

    #[test]
    fn restart_continues_after_existing_files_and_prunes_them() {
        let dir = tempfile::tempdir().unwrap();
        // A file from the future (a clock that stepped back since).
        let future = dir.path().join("traffic-29990101T000000.000000Z.log");
        std::fs::write(&future, "old\n").unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), "keep me").unwrap();
        let r = Rotator::open(&cfg(dir.path(), 4096, 1)).unwrap();
        let files = log_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files.last().map(|p| p.as_path()), r.path());
        assert!(!future.exists());
        assert!(dir.path().join("unrelated.txt").exists());
    }

    #[test]
    fn a_deleted_file_is_replaced_by_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(&cfg(dir.path(), 1 << 20, 3)).unwrap();
        let first = r.path().unwrap().to_owned();
        r.write(b"one\n", &[4]).unwrap();
        std::fs::remove_file(&first).unwrap();
        r.write(b"two\n", &[4]).unwrap();
        let files = log_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_ne!(files[0], first);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.ends_with("two\n"), "{text:?}");
        let (n, problem) = r.take_problem().expect("the deletion is reported");
        assert_eq!(n, 1);
        assert!(problem.contains("deleted while being written"), "{problem}");
        assert_eq!(r.take_problem(), None);
    }

    #[test]
    fn a_lost_directory_is_a_problem_for_the_writer_not_a_log_line() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let mut r = Rotator::open(&cfg(&sub, 4096, 3)).unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        for _ in 0..10 {
            let f = r.write(b"lost\n", &[5]).unwrap_err();
            assert_eq!(f.first_unwritten, 0);
            assert!(f.error.to_string().contains("cannot create"), "{}", f.error);
        }
        // Listing for the prune failed each time a new file was tried.
        let (n, problem) = r.take_problem().unwrap();
        assert!(n >= 9, "{n}");
        assert!(problem.contains("cannot list"), "{problem}");
    }

    #[test]
    fn failed_rotation_loses_the_batch_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let mut r = Rotator::open(&cfg(&sub, 4096, 3)).unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        r.rotate().unwrap_err();
        let f = r.write(b"hello\n", &[6]).unwrap_err();
        assert_eq!(f.first_unwritten, 0);
        std::fs::create_dir(&sub).unwrap();
        r.write(b"hello\n", &[6]).unwrap();
        let files = log_files(&sub).unwrap();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.ends_with("hello\n"), "{text:?}");
    }
}
