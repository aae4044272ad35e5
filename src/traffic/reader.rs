//! Reading logs back: both formats, whole files or a live file as it grows.
//!
//! The format is told line by line (a JSON record starts with `{`), so a
//! directory that holds files of both formats reads as one log. A line or
//! record that cannot be parsed is reported as a [`BadLine`] and skipped; it
//! never stops the reader. Bytes after the last newline are held back until
//! the line is complete, which is what following a live file needs.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::Record;
use super::text::{TextError, TextParser};

/// Bytes read from a file per `read` call, and so the most parsed at once.
const READ_BUF: usize = 64 * 1024;
/// A line longer than this is not one serialhub wrote, and is skipped
/// without being buffered. The longest it writes is a JSON data record: two
/// hex digits per byte of at most [`super::text::MAX_DATA`], plus fields.
pub(crate) const MAX_LINE: usize = 2 * super::text::MAX_DATA + 64 * 1024;

/// A line or record that was skipped.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {why}", path.display())]
pub(crate) struct BadLine {
    pub(crate) path: PathBuf,
    pub(crate) line: u64,
    pub(crate) why: String,
}

pub(crate) type Item = Result<Record, BadLine>;

/// The files named by `paths`, in order: a directory stands for its log
/// files, oldest first.
pub(crate) fn expand(paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(super::rotate::log_files(p)?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Parses lines of either format.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    text: TextParser,
    scratch: Vec<Result<Record, TextError>>,
}

impl Parser {
    /// Feeds one line without its newline; `line_no` and `path` label errors.
    pub(crate) fn feed(&mut self, line: &str, path: &Path, line_no: u64, out: &mut Vec<Item>) {
        let bad = |why: String| BadLine {
            path: path.to_owned(),
            line: line_no,
            why,
        };
        if line.starts_with('{') {
            self.text.finish(&mut self.scratch);
            self.drain_scratch(&bad, out);
            out.push(super::json::parse(line).map_err(|e| bad(e.to_string())));
            return;
        }
        self.text.feed(line, &mut self.scratch);
        self.drain_scratch(&bad, out);
    }

    /// Ends input: a record still waiting for bytes is reported.
    pub(crate) fn finish(&mut self, path: &Path, line_no: u64, out: &mut Vec<Item>) {
        self.text.finish(&mut self.scratch);
        let bad = |why: String| BadLine {
            path: path.to_owned(),
            line: line_no,
            why,
        };
        self.drain_scratch(&bad, out);
    }

    fn drain_scratch(&mut self, bad: &impl Fn(String) -> BadLine, out: &mut Vec<Item>) {
        out.extend(
            self.scratch
                .drain(..)
                .map(|r| r.map_err(|e| bad(e.to_string()))),
        );
    }
}

/// One log file, read as far as it has been written, a buffer at a time:
/// memory stays bounded whatever the file holds.
#[derive(Debug)]
pub(crate) struct FileReader {
    path: PathBuf,
    file: File,
    parser: Parser,
    buf: Vec<u8>,
    /// Bytes of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    skipping_long_line: bool,
    line_no: u64,
}

impl FileReader {
    pub(crate) fn open(path: &Path) -> io::Result<FileReader> {
        Ok(FileReader {
            path: path.to_owned(),
            file: File::open(path)?,
            parser: Parser::default(),
            buf: vec![0u8; READ_BUF],
            partial: Vec::new(),
            skipping_long_line: false,
            line_no: 0,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and parses the next buffer's worth (at most 64 KiB) of what has
    /// been written; returns how many bytes that was, 0 at the end so far.
    /// Call it again until it returns 0, handling `out` in between.
    pub(crate) fn read_available(&mut self, out: &mut Vec<Item>) -> io::Result<usize> {
        let mut buf = std::mem::take(&mut self.buf);
        let read = self.parse_next(&mut buf, out);
        self.buf = buf;
        read
    }

    fn parse_next(&mut self, buf: &mut [u8], out: &mut Vec<Item>) -> io::Result<usize> {
        let n = loop {
            match self.file.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = (&rest[..i], &rest[i + 1..]);
            rest = tail;
            self.line_no += 1;
            if std::mem::take(&mut self.skipping_long_line) {
                continue;
            }
            if self.partial.len() + line.len() > MAX_LINE {
                self.partial.clear();
                self.long_line(self.line_no, out);
                continue;
            }
            let text = if self.partial.is_empty() {
                String::from_utf8_lossy(line)
            } else {
                self.partial.extend_from_slice(line);
                String::from_utf8_lossy(&self.partial)
            };
            self.parser.feed(&text, &self.path, self.line_no, out);
            self.partial.clear();
        }
        if !self.skipping_long_line {
            if self.partial.len() + rest.len() > MAX_LINE {
                self.partial.clear();
                self.long_line(self.line_no + 1, out);
                self.skipping_long_line = true;
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
        Ok(n)
    }

    fn long_line(&self, line: u64, out: &mut Vec<Item>) {
        out.push(Err(BadLine {
            path: self.path.clone(),
            line,
            why: format!("line longer than {MAX_LINE} bytes; skipped"),
        }));
    }

    /// Ends the file: a final line without a newline is parsed, and a record
    /// cut short is reported.
    pub(crate) fn finish(&mut self, out: &mut Vec<Item>) {
        if !self.partial.is_empty() && !self.skipping_long_line {
            self.line_no += 1;
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.parser.feed(&line, &self.path, self.line_no, out);
        }
        self.partial.clear();
        self.parser.finish(&self.path, self.line_no, out);
    }

    /// Reads a whole file into memory; for small files (tests).
    #[cfg(test)]
    pub(crate) fn read_all(path: &Path) -> io::Result<Vec<Item>> {
        let mut r = FileReader::open(path)?;
        let mut out = Vec::new();
        while r.read_available(&mut out)? > 0 {}
        r.finish(&mut out);
        Ok(out)
    }
}
