//! The terminal WebSocket's text messages, sans-I/O: what the browser asks
//! ([`parse`]) and what the server tells it ([`Told`]).
//!
//! Binary frames are terminal bytes both ways and need no codec. A text
//! frame is one JSON object with a `type`. Input that is bad but
//! recoverable (not JSON, an unknown type, a value out of range) comes out
//! as [`Incoming::Bad`], to be answered `ok:false` with the request's id if
//! it had one: it never closes the socket. The frame's size is bounded by
//! the WebSocket layer ([`MAX_MESSAGE`]).

use serde_json::{Map, Value, json};

use crate::line::{FlowControl, LineSettings, Parity};

/// The largest frame either way; a larger one from the browser closes the
/// socket (1009).
pub(crate) const MAX_MESSAGE: usize = 64 << 10;
/// The longest break a browser may ask for: a break is the line held low,
/// and this client's input waits meanwhile.
pub(crate) const MAX_BREAK_MS: u64 = 5000;

/// A change of some of the line settings; `None` keeps the one in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LineFields {
    pub(crate) baud: Option<u32>,
    pub(crate) data_bits: Option<u8>,
    pub(crate) parity: Option<Parity>,
    pub(crate) stop_bits: Option<u8>,
    pub(crate) flow_control: Option<FlowControl>,
}

impl LineFields {
    /// `in_force` with these fields changed.
    pub(crate) fn apply(&self, in_force: LineSettings) -> LineSettings {
        let mut l = in_force;
        l.baud = self.baud.unwrap_or(l.baud);
        l.data_bits = self.data_bits.unwrap_or(l.data_bits);
        l.parity = self.parity.unwrap_or(l.parity);
        l.stop_bits = self.stop_bits.unwrap_or(l.stop_bits);
        l.flow_control = self.flow_control.unwrap_or(l.flow_control);
        l
    }
}

/// A request the browser expects an answer to, in order with its typing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Set(LineFields),
    Dtr(bool),
    Rts(bool),
    Break(u64),
    Lock,
    Unlock,
}

/// One text message from the browser.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Incoming {
    /// The browser has rendered this many binary bytes in all.
    Ack(u64),
    Request {
        id: Value,
        action: Action,
    },
    /// Not understood: answered `ok:false` with `id` (null if none).
    Bad {
        id: Value,
        error: String,
    },
}

/// Reads one text message.
pub(crate) fn parse(text: &str) -> Incoming {
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return bad(Value::Null, "a message is a JSON object with a \"type\""),
        Err(e) => return bad(Value::Null, format!("not JSON: {e}")),
    };
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
    let action = match kind {
        "ack" => {
            return match object.get("bytes").and_then(Value::as_u64) {
                Some(n) => Incoming::Ack(n),
                None => bad(id, "ack needs \"bytes\", a count"),
            };
        }
        "set" => line_fields(&object).map(Action::Set),
        "signal" => signal(&object),
        "break" => match object.get("ms").map(Value::as_u64) {
            None => Ok(Action::Break(250)),
            Some(Some(ms)) if (1..=MAX_BREAK_MS).contains(&ms) => Ok(Action::Break(ms)),
            Some(_) => Err(format!("\"ms\" is 1 to {MAX_BREAK_MS}")),
        },
        "lock" => Ok(Action::Lock),
        "unlock" => Ok(Action::Unlock),
        "" => Err("a message needs a \"type\"".to_owned()),
        other => Err(format!("unknown message type {other:?}")),
    };
    match action {
        Ok(action) => Incoming::Request { id, action },
        Err(e) => bad(id, e),
    }
}

fn bad(id: Value, error: impl Into<String>) -> Incoming {
    Incoming::Bad {
        id,
        error: error.into(),
    }
}

fn signal(o: &Map<String, Value>) -> Result<Action, String> {
    match (o.get("dtr"), o.get("rts")) {
        (Some(v), None) => v.as_bool().map(Action::Dtr),
        (None, Some(v)) => v.as_bool().map(Action::Rts),
        _ => None,
    }
    .ok_or_else(|| "signal needs one of \"dtr\" or \"rts\", true or false".to_owned())
}

/// A number, or a number spelled as a string ("1", as status writes stop
/// bits).
fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn line_fields(o: &Map<String, Value>) -> Result<LineFields, String> {
    let mut f = LineFields::default();
    let field = |name: &str| o.get(name).filter(|v| !v.is_null());
    if let Some(v) = field("baud") {
        let baud = number(v).and_then(|n| u32::try_from(n).ok());
        f.baud = Some(baud.ok_or("\"baud\" is a number")?);
    }
    if let Some(v) = field("data_bits") {
        let bits = number(v).and_then(|n| u8::try_from(n).ok());
        f.data_bits = Some(bits.ok_or("\"data_bits\" is 5, 6, 7 or 8")?);
    }
    if let Some(v) = field("stop_bits") {
        let bits = number(v).and_then(|n| u8::try_from(n).ok());
        f.stop_bits = Some(bits.ok_or("\"stop_bits\" is 1 or 2")?);
    }
    if let Some(v) = field("parity") {
        f.parity = Some(match v.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("none" | "n") => Parity::None,
            Some("odd" | "o") => Parity::Odd,
            Some("even" | "e") => Parity::Even,
            _ => return Err("\"parity\" is \"none\", \"odd\" or \"even\"".to_owned()),
        });
    }
    if let Some(v) = field("flow_control") {
        f.flow_control = Some(match v.as_str() {
            Some("none") => FlowControl::None,
            Some("rtscts") => FlowControl::Rtscts,
            Some("xonxoff") => FlowControl::Xonxoff,
            _ => {
                return Err("\"flow_control\" is \"none\", \"rtscts\" or \"xonxoff\"".to_owned());
            }
        });
    }
    if f == LineFields::default() {
        return Err("set names no setting (baud, data_bits, parity, stop_bits)".to_owned());
    }
    Ok(f)
}

/// What the server tells the browser in text frames.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Told {
    Hello {
        port: String,
        client: u64,
        peer: String,
        role: &'static str,
        from: u64,
        history: u64,
        window: u64,
        gap: u64,
    },
    Dropped {
        bytes: u64,
        total: u64,
    },
    Answer {
        id: Value,
        result: Result<(), String>,
    },
    Closed {
        reason: String,
    },
}

impl Told {
    /// The message's JSON text.
    pub(crate) fn to_text(&self) -> String {
        let v = match self {
            Told::Hello {
                port,
                client,
                peer,
                role,
                from,
                history,
                window,
                gap,
            } => json!({"type": "hello", "port": port, "client": client, "peer": peer,
                "role": role, "from": from, "history": history, "window": window, "gap": gap}),
            Told::Dropped { bytes, total } => {
                json!({"type": "dropped", "bytes": bytes, "total": total})
            }
            Told::Answer { id, result: Ok(()) } => json!({"type": "answer", "id": id, "ok": true}),
            Told::Answer { id, result: Err(e) } => {
                json!({"type": "answer", "id": id, "ok": false, "error": e})
            }
            Told::Closed { reason } => json!({"type": "closed", "reason": reason}),
        };
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(text: &str) -> (Value, Action) {
        match parse(text) {
            Incoming::Request { id, action } => (id, action),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn error(text: &str) -> (Value, String) {
        match parse(text) {
            Incoming::Bad { id, error } => (id, error),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn reads_every_request_of_the_protocol() {
        assert_eq!(parse(r#"{"type":"ack","bytes":4096}"#), Incoming::Ack(4096));
        let (id, a) = request(
            r#"{"type":"set","id":1,"baud":115200,"data_bits":7,"parity":"even","stop_bits":"2"}"#,
        );
        assert_eq!(id, json!(1));
        let Action::Set(f) = a else { panic!() };
        let l = f.apply(LineSettings::default());
        assert_eq!(l.to_string(), "115200 7E2");
        let (_, a) = request(r#"{"type":"set","id":"x","baud":"19200"}"#);
        assert_eq!(
            a,
            Action::Set(LineFields {
                baud: Some(19200),
                ..LineFields::default()
            })
        );
        assert_eq!(
            request(r#"{"type":"signal","id":2,"dtr":true}"#).1,
            Action::Dtr(true)
        );
        assert_eq!(
            request(r#"{"type":"signal","id":2,"rts":false}"#).1,
            Action::Rts(false)
        );
        assert_eq!(
            request(r#"{"type":"break","id":3,"ms":250}"#).1,
            Action::Break(250)
        );
        assert_eq!(request(r#"{"type":"lock","id":4}"#).1, Action::Lock);
        assert_eq!(request(r#"{"type":"unlock","id":5}"#).1, Action::Unlock);
    }

    #[test]
    fn bad_messages_are_answered_with_their_id_or_null() {
        assert_eq!(error("nonsense").0, Value::Null);
        assert_eq!(error("[1]").0, Value::Null);
        assert_eq!(error(r#"{"id":7}"#).0, json!(7));
        let (id, e) = error(r#"{"type":"fly","id":8}"#);
        assert_eq!((id, e.contains("fly")), (json!(8), true));
        assert!(
            error(r#"{"type":"set","id":9}"#)
                .1
                .contains("names no setting")
        );
        assert!(
            error(r#"{"type":"set","id":9,"parity":"mark"}"#)
                .1
                .contains("parity")
        );
        assert!(
            error(r#"{"type":"set","id":9,"baud":-1}"#)
                .1
                .contains("baud")
        );
        assert!(
            error(r#"{"type":"break","id":9,"ms":999999}"#)
                .1
                .contains("ms")
        );
        assert!(
            error(r#"{"type":"signal","id":9,"dtr":1}"#)
                .1
                .contains("dtr")
        );
        assert!(error(r#"{"type":"ack"}"#).1.contains("bytes"));
    }

    #[test]
    fn tells_as_the_protocol_spells_it() {
        let hello = Told::Hello {
            port: "lab1".into(),
            client: 17,
            peer: "web:127.0.0.1:40522".into(),
            role: "rw",
            from: 10,
            history: 5,
            window: 65536,
            gap: 0,
        };
        let v: Value = serde_json::from_str(&hello.to_text()).unwrap();
        assert_eq!(v["type"], "hello");
        assert_eq!(v["peer"], "web:127.0.0.1:40522");
        assert_eq!(v["window"], 65536);
        let a = Told::Answer {
            id: Value::Null,
            result: Err("no".into()),
        };
        assert_eq!(
            serde_json::from_str::<Value>(&a.to_text()).unwrap(),
            json!({"type":"answer","id":null,"ok":false,"error":"no"})
        );
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_panicking(s in ".{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_object_is_read_without_panicking(
            kind in prop::sample::select(vec!["ack", "set", "signal", "break", "lock", "x"]),
            key in prop::sample::select(vec!["bytes", "baud", "data_bits", "parity", "stop_bits", "dtr", "rts", "ms", "id"]),
            value in prop::sample::select(vec!["1", "-1", "\"2\"", "true", "null", "1e99", "\"none\"", "[]"]),
        ) {
            let _ = parse(&format!(r#"{{"type":"{kind}","{key}":{value}}}"#));
        }
    }
}
