//! The text format: one header line per record, then, for data, hex and
//! printable ASCII side by side, 16 bytes a line, like `hexdump -C`.
//!
//! ```text
//! 2025-01-02T03:04:05.123456Z tx 13 #3 tcp:127.0.0.1:40522
//!   0000  68 65 6c 6c 6f 2d 74 6f  6b 65 6e 0d 0a              |hello-token..|
//! 2025-01-02T03:04:05.135012Z rx 5
//!   0000  68 65 6c 6c 6f                                       |hello|
//! 2025-01-02T03:04:06.000001Z disconnect #3 tcp:127.0.0.1:40522
//! ```
//!
//! A header line is the timestamp, the kind, then fields separated by single
//! spaces. Names and paths are written as one token each, with a space,
//! backslash or control character escaped as `\xNN`; a trailing free-text
//! field (`settings`, the error of `device-lost`) runs to the end of the line.
//! Data lines start with two spaces; lines starting with `#` are comments.
//! The kinds and their fields are listed in the README ("Traffic log").

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use anstyle::{AnsiColor, Style};
use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ClientRef, Event, Record};

/// First line of every text file.
pub const FILE_HEADER: &str = "# serialhub traffic log, text format v1\n";

/// Most bytes in one data record that the reader accepts. The largest
/// serialhub writes is a `tx` chunk of one tty write, at most half the
/// device writer's 20 ms lead: 20 KB at the highest baud rate (a device read,
/// `rx`, is at most 4 KiB). A header claiming more is damage, and a reader
/// must not collect data lines for it without bound.
pub const MAX_DATA: usize = 128 << 10;

/// Bytes per data line.
const PER_LINE: usize = 16;

const TS_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// RFC 3339, UTC, exactly six fractional digits.
pub fn format_ts(ts: OffsetDateTime, out: &mut String) {
    let utc = ts.to_offset(time::UtcOffset::UTC);
    match utc.format(TS_FORMAT) {
        Ok(s) => out.push_str(&s),
        // Only years outside 0..=9999 fail; say so rather than panic.
        Err(_) => out.push_str("0000-00-00T00:00:00.000000Z"),
    }
}

pub fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// Styles for terminal output; all plain when writing files.
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    ts: Style,
    rx: Style,
    tx: Style,
    event: Style,
    alarm: Style,
    dim: Style,
}

impl Palette {
    pub fn plain() -> Palette {
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

    pub fn colour() -> Palette {
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
pub fn encode(rec: &Record, out: &mut String, p: &Palette) {
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
        | Event::SlowDrop(_) => p.alarm,
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
        Event::Connect(c) | Event::Disconnect(c) | Event::SlowDrop(c) => client(out, c),
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
pub fn kind(e: &Event) -> &'static str {
    match e {
        Event::Rx(_) | Event::Reply(..) => "rx",
        Event::TxnBegin(_) => "txn-begin",
        Event::TxnEnd { .. } => "txn-end",
        Event::TxnTimeout { .. } => "txn-timeout",
        Event::Tx(..) => "tx",
        Event::Connect(_) => "connect",
        Event::Disconnect(_) => "disconnect",
        Event::SlowDrop(_) => "slow-drop",
        Event::SlowResume { .. } => "slow-resume",
        Event::SlowKick { .. } => "slow-kick",
        Event::Settings(_) => "settings",
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
pub fn escape_token(s: &str) -> Cow<'_, str> {
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

/// Undoes [`escape_token`] and the text escape; `None` if malformed.
pub fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_owned());
    }
    let mut bytes = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'\\' {
            let hex = tail.get(..3)?;
            if hex[0] != b'x' {
                return None;
            }
            let v = u8::from_str_radix(std::str::from_utf8(&hex[1..]).ok()?, 16).ok()?;
            bytes.push(v);
            rest = &tail[3..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Why a text line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("bad header line: {0}")]
    Header(&'static str),
    #[error("bad data line: {0}")]
    Data(&'static str),
    #[error("data line outside a record")]
    Orphan,
    #[error("record cut short: {got} of {want} bytes")]
    Truncated { got: usize, want: usize },
}

/// A data record whose bytes are still being read.
#[derive(Debug)]
struct Partial {
    ts: OffsetDateTime,
    client: Option<ClientRef>,
    /// From the device (`rx`), else to it (`tx`).
    rx: bool,
    want: usize,
    data: Vec<u8>,
}

/// Reads the text format line by line. A data record is complete as soon as
/// its header's byte count has been read, so a live file can be followed.
#[derive(Debug, Default)]
pub struct TextParser {
    partial: Option<Partial>,
}

impl TextParser {
    /// Feeds one line (without its newline). Results go to `out`.
    pub fn feed(&mut self, line: &str, out: &mut Vec<Result<Record, TextError>>) {
        if line.trim().is_empty() || line.starts_with('#') {
            return;
        }
        if line.starts_with(' ') {
            let Some(p) = self.partial.as_mut() else {
                out.push(Err(TextError::Orphan));
                return;
            };
            match parse_data_line(line) {
                Ok(bytes) if p.data.len() + bytes.len() <= p.want => {
                    p.data.extend_from_slice(&bytes);
                }
                Ok(_) => {
                    out.push(Err(TextError::Data("more bytes than the header says")));
                    self.partial = None;
                    return;
                }
                Err(e) => {
                    out.push(Err(e));
                    self.partial = None;
                    return;
                }
            }
            self.emit_if_complete(out);
            return;
        }
        self.finish(out);
        match parse_header(line) {
            Ok(Header::Done(r)) => out.push(Ok(r)),
            Ok(Header::Data(p)) => {
                self.partial = Some(p);
                self.emit_if_complete(out);
            }
            Err(e) => out.push(Err(e)),
        }
    }

    /// Ends input: a record still missing bytes is reported as truncated.
    pub fn finish(&mut self, out: &mut Vec<Result<Record, TextError>>) {
        if let Some(p) = self.partial.take() {
            out.push(Err(TextError::Truncated {
                got: p.data.len(),
                want: p.want,
            }));
        }
    }

    fn emit_if_complete(&mut self, out: &mut Vec<Result<Record, TextError>>) {
        if self
            .partial
            .as_ref()
            .is_some_and(|p| p.data.len() == p.want)
            && let Some(p) = self.partial.take()
        {
            let data = Bytes::from(p.data);
            let event = match (p.client, p.rx) {
                (Some(c), true) => Event::Reply(c, data),
                (Some(c), false) => Event::Tx(c, data),
                (None, _) => Event::Rx(data),
            };
            out.push(Ok(Record { ts: p.ts, event }));
        }
    }
}

enum Header {
    Done(Record),
    Data(Partial),
}

fn parse_header(line: &str) -> Result<Header, TextError> {
    let (ts, rest) = line.split_once(' ').ok_or(TextError::Header("no kind"))?;
    let ts = parse_ts(ts).ok_or(TextError::Header("bad timestamp"))?;
    let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut f = rest.splitn(3, ' ');
    let mut next = || f.next().ok_or(TextError::Header("missing field"));
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| TextError::Header("bad number"))
    };
    let event = match kind {
        "rx" | "tx" => {
            let want =
                usize::try_from(num(next()?)?).map_err(|_| TextError::Header("bad length"))?;
            if want > MAX_DATA {
                return Err(TextError::Header("length larger than any record"));
            }
            // `tx` always names its client; `rx` does when it was a reply.
            let client = match (kind, next()) {
                ("tx", id) => Some(client(id?, next()?)?),
                (_, Ok(id)) => Some(client(id, next()?)?),
                (_, Err(_)) => None,
            };
            return Ok(Header::Data(Partial {
                ts,
                client,
                rx: kind == "rx",
                want,
                data: Vec::with_capacity(want.min(1 << 16)),
            }));
        }
        "connect" => Event::Connect(client(next()?, next()?)?),
        "disconnect" => Event::Disconnect(client(next()?, next()?)?),
        "slow-drop" => Event::SlowDrop(client(next()?, next()?)?),
        "txn-begin" => Event::TxnBegin(client(next()?, next()?)?),
        "txn-end" => Event::TxnEnd {
            client: client(next()?, next()?)?,
            reply: num(keyed(next()?, "reply=")?)?,
        },
        "txn-timeout" => Event::TxnTimeout {
            client: client(next()?, next()?)?,
            partial: num(keyed(next()?, "partial=")?)?,
        },
        "slow-resume" => Event::SlowResume {
            client: client(next()?, next()?)?,
            dropped: num(keyed(next()?, "dropped=")?)?,
        },
        "slow-kick" => Event::SlowKick {
            client: client(next()?, next()?)?,
            discarded: num(keyed(next()?, "discarded=")?)?,
        },
        "settings" => Event::Settings(text(rest)?),
        "device-open" => Event::DeviceOpen(token(rest)?),
        "device-close" => Event::DeviceClose(token(rest)?),
        "device-lost" => {
            let (path, error) = rest.split_once(' ').unwrap_or((rest, ""));
            Event::DeviceLost {
                path: token(path)?,
                error: text(error)?,
            }
        }
        "dropped" => Event::Dropped(num(next()?)?),
        _ => return Err(TextError::Header("unknown kind")),
    };
    Ok(Header::Done(Record { ts, event }))
}

fn client(id: &str, name: &str) -> Result<ClientRef, TextError> {
    let id = id
        .strip_prefix('#')
        .and_then(|n| n.parse().ok())
        .ok_or(TextError::Header("bad client id"))?;
    Ok(ClientRef {
        id,
        name: Arc::from(token(name)?),
    })
}

fn keyed<'a>(field: &'a str, key: &str) -> Result<&'a str, TextError> {
    field
        .strip_prefix(key)
        .ok_or(TextError::Header("missing key"))
}

fn token(s: &str) -> Result<String, TextError> {
    if s.is_empty() || s.contains(' ') {
        return Err(TextError::Header("bad name"));
    }
    unescape(s).ok_or(TextError::Header("bad escape"))
}

fn text(s: &str) -> Result<String, TextError> {
    unescape(s).ok_or(TextError::Header("bad escape"))
}

/// Reads the hex column of a data line: the offset, then up to 16 two-digit
/// hex tokens, then the `|ASCII|` column (ignored).
fn parse_data_line(line: &str) -> Result<Vec<u8>, TextError> {
    let mut tokens = line.split_ascii_whitespace();
    tokens
        .next()
        .filter(|o| o.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(TextError::Data("bad offset"))?;
    let mut bytes = Vec::with_capacity(PER_LINE);
    for t in tokens {
        if t.starts_with('|') {
            break;
        }
        if t.len() != 2 || bytes.len() == PER_LINE {
            return Err(TextError::Data("bad hex"));
        }
        let b = u8::from_str_radix(t, 16).map_err(|_| TextError::Data("bad hex"))?;
        bytes.push(b);
    }
    if bytes.is_empty() {
        return Err(TextError::Data("no bytes"));
    }
    Ok(bytes)
}
