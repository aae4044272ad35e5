//! The text format: one header line per record, then, for data, hex and
//! printable ASCII side by side, 16 bytes a line, like `hexdump -C`.
//!
//! ```text
//! 2025-01-02T03:04:05.123456Z tx 13 #3 tcp:127.0.0.1:40522
//!   0000  68 65 6c 6c 6f 2d 74 6f  6b 65 6e 0d 0a              |hello-token..|
//! 2025-01-02T03:04:05.135012Z rx 5
//!   0000  68 65 6c 6c 6f                                       |hello|
//! 2025-01-02T03:04:05.200017Z signal dtr off #3 tcp:127.0.0.1:40522
//! 2025-01-02T03:04:06.000001Z disconnect #3 tcp:127.0.0.1:40522
//! 2025-01-02T03:04:07.000000Z connect #4 tcp:10.0.0.5:40600 identity=cn:alice sha256=9f86d0...
//! ```
//!
//! A header line is the timestamp, the kind, then fields separated by single
//! spaces. Names and paths are written as one token each, with a space,
//! backslash or control character escaped as `\xNN`; a trailing free-text
//! field (`settings`, the error of `device-lost`, the reason after `refused:`
//! of a `signal`) runs to the end of the line.
//! Data lines start with two spaces; lines starting with `#` are comments.
//! The kinds and their fields are listed in docs/traffic-log.md.
//!
//! This file writes the format; [`parse`] reads it back.

mod parse;

use std::borrow::Cow;
use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use time::OffsetDateTime;

pub(crate) use self::parse::{TextError, TextParser, parse_ts};
use super::{ClientRef, Event, Record};

/// First line of every text file.
pub(crate) const FILE_HEADER: &str = "# serialhub traffic log, text format v1\n";

/// Most bytes in one data record that the reader accepts. The largest
/// serialhub writes is a `tx` chunk of one tty write, at most half the
/// device writer's 20 ms lead: 20 KB at the highest baud rate (a device read,
/// `rx`, is at most 4 KiB). A header claiming more is damage, and a reader
/// must not collect data lines for it without bound.
pub(crate) const MAX_DATA: usize = 128 << 10;

/// Bytes per data line.
pub(super) const PER_LINE: usize = 16;

const TS_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// RFC 3339, UTC, exactly six fractional digits.
pub(crate) fn format_ts(ts: OffsetDateTime, out: &mut String) {
    let utc = ts.to_offset(time::UtcOffset::UTC);
    match utc.format(TS_FORMAT) {
        Ok(s) => out.push_str(&s),
        // Only years outside 0..=9999 fail; say so rather than panic.
        Err(_) => out.push_str("0000-00-00T00:00:00.000000Z"),
    }
}

/// Styles for terminal output; all plain when writing files.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Palette {
    ts: Style,
    rx: Style,
    tx: Style,
    event: Style,
    alarm: Style,
    dim: Style,
}

impl Palette {
    pub(crate) fn plain() -> Palette {
        let s = Style::new();
        Palette {
            ts: s,
            rx: s,
            tx: s,
            event: s,
            alarm: s,
            dim: s,
        }
    }

    pub(crate) fn colour() -> Palette {
        let fg = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
        Palette {
            ts: Style::new().dimmed(),
            rx: fg(AnsiColor::Green).bold(),
            tx: fg(AnsiColor::Cyan).bold(),
            event: fg(AnsiColor::Yellow),
            alarm: fg(AnsiColor::Red).bold(),
            dim: Style::new().dimmed(),
        }
    }
}

/// Appends `rec` in the text format, ending with a newline.
pub(crate) fn encode(rec: &Record, out: &mut String, p: &Palette) {
    let _ = write!(out, "{}", p.ts);
    format_ts(rec.ts, out);
    let _ = write!(out, "{:#} ", p.ts);
    let kind = kind(&rec.event);
    let style = match &rec.event {
        Event::Rx(_) | Event::Reply(..) => p.rx,
        Event::Tx(..) => p.tx,
        Event::Dropped(_)
        | Event::DeviceLost { .. }
        | Event::SlowKick { .. }
        | Event::TxnTimeout { .. }
        | Event::SlowDrop(_)
        | Event::Signal {
            refused: Some(_), ..
        } => p.alarm,
        _ => p.event,
    };
    let _ = write!(out, "{style}{kind}{style:#}");
    let client = |out: &mut String, c: &ClientRef| {
        let _ = write!(out, " #{} {}", c.id, escape_token(&c.name));
    };
    match &rec.event {
        Event::Rx(d) => {
            let _ = write!(out, " {}", d.len());
        }
        Event::Tx(c, d) | Event::Reply(c, d) => {
            let _ = write!(out, " {}", d.len());
            client(out, c);
        }
        Event::TxnBegin(c) => client(out, c),
        Event::TxnEnd { client: c, reply } => {
            client(out, c);
            let _ = write!(out, " reply={reply}");
        }
        Event::TxnTimeout { client: c, partial } => {
            client(out, c);
            let _ = write!(out, " partial={partial}");
        }
        Event::Connect(c, tls) => {
            client(out, c);
            if let Some(t) = tls {
                let _ = write!(
                    out,
                    " identity={} sha256={}",
                    escape_token(&t.identity),
                    escape_token(&t.sha256)
                );
            }
        }
        Event::Disconnect(c) | Event::SlowDrop(c) => client(out, c),
        Event::SlowResume { client: c, dropped } => {
            client(out, c);
            let _ = write!(out, " dropped={dropped}");
        }
        Event::SlowKick {
            client: c,
            discarded,
        } => {
            client(out, c);
            let _ = write!(out, " discarded={discarded}");
        }
        Event::Settings(s) => {
            let _ = write!(out, " {}", escape_text(s));
        }
        Event::Signal {
            signal,
            on,
            client: by,
            refused,
        } => {
            let _ = write!(out, " {} {}", signal.name(), if *on { "on" } else { "off" });
            match by {
                Some(c) => client(out, c),
                None => out.push_str(" operator"),
            }
            if let Some(why) = refused {
                let _ = write!(out, " refused: {}", escape_text(why));
            }
        }
        Event::Purge {
            client: c,
            buffers,
            discarded,
        } => {
            let _ = write!(out, " {}", buffers.name());
            client(out, c);
            let _ = write!(out, " discarded={discarded}");
        }
        Event::DeviceOpen(path) | Event::DeviceClose(path) => {
            let _ = write!(out, " {}", escape_token(path));
        }
        Event::DeviceLost { path, error } => {
            let _ = write!(out, " {} {}", escape_token(path), escape_text(error));
        }
        Event::Dropped(n) => {
            let _ = write!(out, " {n} records");
        }
    }
    out.push('\n');
    if let Some((_, data)) = rec.event.data() {
        hexdump(data, out, p);
    }
}

/// The kind word that follows the timestamp.
pub(crate) fn kind(e: &Event) -> &'static str {
    match e {
        Event::Rx(_) | Event::Reply(..) => "rx",
        Event::TxnBegin(_) => "txn-begin",
        Event::TxnEnd { .. } => "txn-end",
        Event::TxnTimeout { .. } => "txn-timeout",
        Event::Tx(..) => "tx",
        Event::Connect(..) => "connect",
        Event::Disconnect(_) => "disconnect",
        Event::SlowDrop(_) => "slow-drop",
        Event::SlowResume { .. } => "slow-resume",
        Event::SlowKick { .. } => "slow-kick",
        Event::Settings(_) => "settings",
        Event::Signal { .. } => "signal",
        Event::Purge { .. } => "purge",
        Event::DeviceOpen(_) => "device-open",
        Event::DeviceLost { .. } => "device-lost",
        Event::DeviceClose(_) => "device-close",
        Event::Dropped(_) => "dropped",
    }
}

fn hexdump(data: &[u8], out: &mut String, p: &Palette) {
    for (i, line) in data.chunks(PER_LINE).enumerate() {
        let _ = write!(out, "  {}{:04x}{:#}  ", p.dim, i * PER_LINE, p.dim);
        for j in 0..PER_LINE {
            match line.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
            if j == PER_LINE / 2 - 1 {
                out.push(' ');
            }
        }
        out.push(' ');
        out.push('|');
        out.extend(line.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
}

/// A name or path as one space-free token.
pub(crate) fn escape_token(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == ' ' || c == '\\' || c.is_control())
}

/// Free text to the end of the line.
fn escape_text(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\\' || c.is_control())
}

fn escape(s: &str, special: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&special) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if special(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
