//! The JSON lines format: one object per record, `ts` and `kind` first, the
//! bytes of data records as lowercase hex in `hex`.
//!
//! ```text
//! {"ts":"2025-01-02T03:04:05.123456Z","kind":"tx","len":6,"id":3,"client":"tcp:127.0.0.1:40522","hex":"68656c6c6f0a"}
//! {"ts":"2025-01-02T03:04:05.135012Z","kind":"rx","len":6,"hex":"68656c6c6f0a"}
//! {"ts":"2025-01-02T03:04:05.200000Z","kind":"signal","signal":"dtr","on":false,"id":3,"client":"tcp:127.0.0.1:40522"}
//! {"ts":"2025-01-02T03:04:05.300000Z","kind":"purge","buffers":"rx","id":3,"client":"tcp:127.0.0.1:40522","discarded":0}
//! {"ts":"2025-01-02T03:04:06.000001Z","kind":"dropped","records":12}
//! {"ts":"2025-01-02T03:04:07.000000Z","kind":"connect","id":4,"client":"tcp:10.0.0.5:40600","identity":"cn:alice","sha256":"9f86d0..."}
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Buffers, ClientRef, Event, Record};
use crate::modem::Signal;

/// The wire shape of one line. Field names are the documented ones.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    ts: String,
    #[serde(flatten)]
    body: Body<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Body<'a> {
    Rx {
        len: usize,
        /// The client a reply was routed to (transaction mode).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<Cow<'a>>,
        hex: String,
    },
    Tx {
        len: usize,
        id: u64,
        client: Cow<'a>,
        hex: String,
    },
    Connect {
        id: u64,
        client: Cow<'a>,
        /// A TLS client's certificate identity and fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Cow<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<Cow<'a>>,
    },
    Disconnect {
        id: u64,
        client: Cow<'a>,
    },
    SlowDrop {
        id: u64,
        client: Cow<'a>,
    },
    TxnBegin {
        id: u64,
        client: Cow<'a>,
    },
    TxnEnd {
        id: u64,
        client: Cow<'a>,
        reply: u64,
    },
    TxnTimeout {
        id: u64,
        client: Cow<'a>,
        partial: u64,
    },
    SlowResume {
        id: u64,
        client: Cow<'a>,
        dropped: u64,
    },
    SlowKick {
        id: u64,
        client: Cow<'a>,
        discarded: u64,
    },
    Settings {
        line: Cow<'a>,
    },
    Signal {
        signal: Signal,
        on: bool,
        /// The client that asked; none for the operator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<Cow<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<Cow<'a>>,
    },
    Purge {
        buffers: Buffers,
        id: u64,
        client: Cow<'a>,
        discarded: u64,
    },
    DeviceOpen {
        path: Cow<'a>,
    },
    DeviceLost {
        path: Cow<'a>,
        error: Cow<'a>,
    },
    DeviceClose {
        path: Cow<'a>,
    },
    Dropped {
        records: u64,
    },
}

type Cow<'a> = std::borrow::Cow<'a, str>;

fn c(c: &ClientRef) -> (u64, Cow<'_>) {
    (c.id, Cow::Borrowed(&c.name))
}

/// Appends `rec` as one JSON line, ending with a newline.
pub(crate) fn encode(rec: &Record, out: &mut String) {
    let mut ts = String::with_capacity(27);
    super::text::format_ts(rec.ts, &mut ts);
    let body = match &rec.event {
        Event::Rx(d) => Body::Rx {
            len: d.len(),
            id: None,
            client: None,
            hex: hex(d),
        },
        Event::Reply(cl, d) => {
            let (id, client) = c(cl);
            Body::Rx {
                len: d.len(),
                id: Some(id),
                client: Some(client),
                hex: hex(d),
            }
        }
        Event::TxnBegin(cl) => {
            let (id, client) = c(cl);
            Body::TxnBegin { id, client }
        }
        Event::TxnEnd { client: cl, reply } => {
            let (id, client) = c(cl);
            Body::TxnEnd {
                id,
                client,
                reply: *reply,
            }
        }
        Event::TxnTimeout {
            client: cl,
            partial,
        } => {
            let (id, client) = c(cl);
            Body::TxnTimeout {
                id,
                client,
                partial: *partial,
            }
        }
        Event::Tx(cl, d) => {
            let (id, client) = c(cl);
            Body::Tx {
                len: d.len(),
                id,
                client,
                hex: hex(d),
            }
        }
        Event::Connect(cl, tls) => {
            let (id, client) = c(cl);
            Body::Connect {
                id,
                client,
                identity: tls.as_ref().map(|t| Cow::from(t.identity.as_str())),
                sha256: tls.as_ref().map(|t| Cow::from(t.sha256.as_str())),
            }
        }
        Event::Disconnect(cl) => {
            let (id, client) = c(cl);
            Body::Disconnect { id, client }
        }
        Event::SlowDrop(cl) => {
            let (id, client) = c(cl);
            Body::SlowDrop { id, client }
        }
        Event::SlowResume {
            client: cl,
            dropped,
        } => {
            let (id, client) = c(cl);
            Body::SlowResume {
                id,
                client,
                dropped: *dropped,
            }
        }
        Event::SlowKick {
            client: cl,
            discarded,
        } => {
            let (id, client) = c(cl);
            Body::SlowKick {
                id,
                client,
                discarded: *discarded,
            }
        }
        Event::Settings(s) => Body::Settings {
            line: Cow::Borrowed(s),
        },
        Event::Signal {
            signal,
            on,
            client: by,
            refused,
        } => Body::Signal {
            signal: *signal,
            on: *on,
            id: by.as_ref().map(|c| c.id),
            client: by.as_ref().map(|c| Cow::Borrowed(&*c.name)),
            refused: refused.as_deref().map(Cow::Borrowed),
        },
        Event::Purge {
            client: cl,
            buffers,
            discarded,
        } => {
            let (id, client) = c(cl);
            Body::Purge {
                buffers: *buffers,
                id,
                client,
                discarded: *discarded,
            }
        }
        Event::DeviceOpen(p) => Body::DeviceOpen {
            path: Cow::Borrowed(p),
        },
        Event::DeviceLost { path, error } => Body::DeviceLost {
            path: Cow::Borrowed(path),
            error: Cow::Borrowed(error),
        },
        Event::DeviceClose(p) => Body::DeviceClose {
            path: Cow::Borrowed(p),
        },
        Event::Dropped(n) => Body::Dropped { records: *n },
    };
    match serde_json::to_string(&Line { ts, body }) {
        Ok(s) => out.push_str(&s),
        // Serialising plain strings and numbers cannot fail; keep the line
        // well-formed anyway.
        Err(_) => out.push_str("{}"),
    }
    out.push('\n');
}

/// Why a JSON line could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonError {
    #[error("bad JSON record: {0}")]
    Syntax(serde_json::Error),
    #[error("bad timestamp {0:?}")]
    Timestamp(String),
    #[error("bad hex data")]
    Hex,
    #[error("a client needs both `id` and `client`")]
    Client,
    #[error("len {len} does not match {got} bytes of hex")]
    Length { len: usize, got: usize },
}

/// Parses one line.
pub(crate) fn parse(line: &str) -> Result<Record, JsonError> {
    let l: Line<'_> = serde_json::from_str(line).map_err(JsonError::Syntax)?;
    let ts = super::text::parse_ts(&l.ts).ok_or_else(|| JsonError::Timestamp(l.ts.clone()))?;
    let cl = |id, name: Cow<'_>| ClientRef {
        id,
        name: Arc::from(&*name),
    };
    let data = |len: usize, h: &str| -> Result<Bytes, JsonError> {
        let d = unhex(h).ok_or(JsonError::Hex)?;
        if d.len() != len {
            return Err(JsonError::Length { len, got: d.len() });
        }
        Ok(Bytes::from(d))
    };
    let event = match l.body {
        Body::Rx {
            len,
            id: Some(id),
            client: Some(client),
            hex,
        } => Event::Reply(cl(id, client), data(len, &hex)?),
        Body::Rx { len, hex, .. } => Event::Rx(data(len, &hex)?),
        Body::TxnBegin { id, client } => Event::TxnBegin(cl(id, client)),
        Body::TxnEnd { id, client, reply } => Event::TxnEnd {
            client: cl(id, client),
            reply,
        },
        Body::TxnTimeout {
            id,
            client,
            partial,
        } => Event::TxnTimeout {
            client: cl(id, client),
            partial,
        },
        Body::Tx {
            len,
            id,
            client,
            hex,
        } => Event::Tx(cl(id, client), data(len, &hex)?),
        Body::Connect {
            id,
            client,
            identity,
            sha256,
        } => Event::Connect(
            cl(id, client),
            identity.map(|i| super::Certified {
                identity: i.into_owned(),
                sha256: sha256.map(Cow::into_owned).unwrap_or_default(),
            }),
        ),
        Body::Disconnect { id, client } => Event::Disconnect(cl(id, client)),
        Body::SlowDrop { id, client } => Event::SlowDrop(cl(id, client)),
        Body::SlowResume {
            id,
            client,
            dropped,
        } => Event::SlowResume {
            client: cl(id, client),
            dropped,
        },
        Body::SlowKick {
            id,
            client,
            discarded,
        } => Event::SlowKick {
            client: cl(id, client),
            discarded,
        },
        Body::Settings { line } => Event::Settings(line.into_owned()),
        Body::Signal {
            signal,
            on,
            id,
            client,
            refused,
        } => Event::Signal {
            signal,
            on,
            client: match (id, client) {
                (Some(id), Some(client)) => Some(cl(id, client)),
                (None, None) => None,
                _ => return Err(JsonError::Client),
            },
            refused: refused.map(Cow::into_owned),
        },
        Body::Purge {
            buffers,
            id,
            client,
            discarded,
        } => Event::Purge {
            client: cl(id, client),
            buffers,
            discarded,
        },
        Body::DeviceOpen { path } => Event::DeviceOpen(path.into_owned()),
        Body::DeviceLost { path, error } => Event::DeviceLost {
            path: path.into_owned(),
            error: error.into_owned(),
        },
        Body::DeviceClose { path } => Event::DeviceClose(path.into_owned()),
        Body::Dropped { records } => Event::Dropped(records),
    };
    Ok(Record { ts, event })
}

fn hex(d: &[u8]) -> String {
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}
