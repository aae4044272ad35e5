//! Fuzzes the Telnet / RFC 2217 codec with arbitrary input: no panic, memory
//! bounded by `MAX_SUBNEG`, the same events and answers however the stream
//! is split, COM-PORT messages that re-encode to themselves, and data that
//! survives escaping. Run: `cd fuzz && cargo fuzz run telnet -s none`.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use serialhub::proto::telnet::{Event, MAX_SUBNEG, Telnet, escape_into, rfc2217};

/// Merges adjacent data events: the only difference a split may make.
fn normalise(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    for e in events {
        match (out.last_mut(), e) {
            (Some(Event::Data(prev)), Event::Data(more)) => {
                let mut joined = BytesMut::from(&prev[..]);
                joined.extend_from_slice(&more);
                *prev = joined.freeze();
            }
            (_, e) => out.push(e),
        }
    }
    out
}

/// Runs a whole session over `stream`, fed in chunks whose sizes come from
/// `splits` (cycled), and returns its normalised events and its replies.
fn run(server: bool, stream: &[u8], splits: &[u8]) -> (Vec<Event>, BytesMut) {
    let mut telnet = if server {
        Telnet::server()
    } else {
        Telnet::client()
    };
    let mut events = Vec::new();
    let mut replies = BytesMut::new();
    telnet.start(&mut replies);
    let mut rest = stream;
    for &s in splits.iter().cycle().take(stream.len()) {
        if rest.is_empty() {
            break;
        }
        let n = usize::from(s).min(rest.len());
        telnet.feed(&rest[..n], &mut events, &mut replies);
        assert!(telnet.buffered() <= MAX_SUBNEG, "buffer past its cap");
        rest = &rest[n..];
    }
    telnet.feed(rest, &mut events, &mut replies);
    assert!(telnet.buffered() <= MAX_SUBNEG, "buffer past its cap");
    telnet.finish(&mut events);
    assert_eq!(telnet.buffered(), 0, "finish leaves nothing behind");
    (normalise(events), replies)
}

fuzz_target!(|data: &[u8]| {
    // The first bytes steer the run: the role, the split sizes; the rest is
    // the stream.
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let Some((&nsplits, data)) = data.split_first() else {
        return;
    };
    let (splits, stream) = data.split_at(usize::from(nsplits % 16).min(data.len()));
    let server = flags & 1 == 1;

    let whole = run(server, stream, &[]);
    let bytewise = run(server, stream, &[1]);
    assert_eq!(whole, bytewise, "byte-by-byte feeding changed the events");
    if !splits.is_empty() {
        assert_eq!(
            whole,
            run(server, stream, splits),
            "split changed the events"
        );
    }

    let mut data_len = 0;
    for e in &whole.0 {
        match e {
            Event::Data(d) => {
                assert!(!d.is_empty());
                data_len += d.len();
            }
            Event::Subnegotiation { payload, .. } => assert!(payload.len() <= MAX_SUBNEG),
            Event::ComPort(msg) => {
                // Re-encoded, it parses back to itself.
                let mut wire = BytesMut::new();
                msg.encode(&mut wire);
                let mut again = Telnet::client();
                let (mut ev, mut rep) = (Vec::new(), BytesMut::new());
                again.feed(&wire, &mut ev, &mut rep);
                assert_eq!(ev, vec![Event::ComPort(msg.clone())]);
                if let rfc2217::Command::Signature(text) = &msg.command {
                    assert!(text.len() < MAX_SUBNEG);
                }
            }
            _ => {}
        }
    }
    assert!(data_len <= stream.len());

    // Any bytes, escaped, come back as exactly those bytes of data.
    let mut escaped = BytesMut::new();
    escape_into(stream, &mut escaped);
    let (events, replies) = run(server, &escaped, splits);
    let want: Vec<Event> = if stream.is_empty() {
        vec![]
    } else {
        vec![Event::Data(Bytes::copy_from_slice(stream))]
    };
    assert_eq!(events, want, "escaped data did not come back whole");
    let mut opening = BytesMut::new();
    let mut fresh = if server {
        Telnet::server()
    } else {
        Telnet::client()
    };
    fresh.start(&mut opening);
    assert_eq!(replies, opening, "data alone drew an answer");
});
