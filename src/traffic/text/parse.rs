//! Reading the text format back, line by line (see [`super`]).

use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{MAX_DATA, PER_LINE};
use crate::modem::Signal;
use crate::traffic::{Buffers, ClientRef, Event, Record};

pub(crate) fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// Undoes [`escape_token`](super::escape_token) and the text escape; `None` if malformed.
pub(crate) fn unescape(s: &str) -> Option<String> {
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
pub(crate) enum TextError {
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
pub(crate) struct TextParser {
    partial: Option<Partial>,
}

impl TextParser {
    /// Feeds one line (without its newline). Results go to `out`.
    pub(crate) fn feed(&mut self, line: &str, out: &mut Vec<Result<Record, TextError>>) {
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
    pub(crate) fn finish(&mut self, out: &mut Vec<Result<Record, TextError>>) {
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
        "connect" => {
            let c = client(next()?, next()?)?;
            // A TLS client's certificate; logs from before it have none.
            let tls = match next() {
                Ok(more) => {
                    let (identity, sha256) = more
                        .split_once(' ')
                        .ok_or(TextError::Header("missing field"))?;
                    Some(super::super::Certified {
                        identity: token(keyed(identity, "identity=")?)?,
                        sha256: token(keyed(sha256, "sha256=")?)?,
                    })
                }
                Err(_) => None,
            };
            Event::Connect(c, tls)
        }
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
        "signal" => parse_signal(rest)?,
        "purge" => {
            let (buffers, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut f = rest.splitn(3, ' ');
            let mut next = || f.next().ok_or(TextError::Header("missing field"));
            Event::Purge {
                buffers: Buffers::from_name(buffers).ok_or(TextError::Header("bad buffers"))?,
                client: client(next()?, next()?)?,
                discarded: num(keyed(next()?, "discarded=")?)?,
            }
        }
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

/// `SIGNAL on|off #ID CLIENT`, or `operator` for the client, then
/// optionally `refused: TEXT`.
fn parse_signal(rest: &str) -> Result<Event, TextError> {
    let missing = TextError::Header("missing field");
    let (signal, rest) = rest.split_once(' ').ok_or(missing.clone())?;
    let signal = Signal::from_name(signal).ok_or(TextError::Header("bad signal"))?;
    let (on, rest) = rest.split_once(' ').ok_or(missing.clone())?;
    let on = match on {
        "on" => true,
        "off" => false,
        _ => return Err(TextError::Header("bad signal state")),
    };
    let (by, rest) = match rest.split_once(' ').unwrap_or((rest, "")) {
        ("operator", rest) => (None, rest),
        (id, rest) => {
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            (Some(client(id, name)?), rest)
        }
    };
    let refused = match rest {
        "" => None,
        r => Some(text(
            r.strip_prefix("refused: ")
                .ok_or(TextError::Header("unknown field"))?,
        )?),
    };
    Ok(Event::Signal {
        signal,
        on,
        client: by,
        refused,
    })
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
