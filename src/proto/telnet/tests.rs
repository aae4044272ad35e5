//! Tests of the Telnet framing and session: literal byte-level exchanges,
//! malformed and truncated input, and property tests that split streams
//! anywhere.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

pub(super) fn parse(input: &[u8]) -> Vec<Token> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    p.feed(input, &mut out);
    p.finish(&mut out);
    out
}

fn data(b: &[u8]) -> Token {
    Token::Data(Bytes::copy_from_slice(b))
}

/// Runs a session over `chunks`, returning merged events and all replies.
fn session(mut telnet: Telnet, chunks: &[&[u8]]) -> (Vec<Event>, BytesMut) {
    let mut events = Vec::new();
    let mut replies = BytesMut::new();
    for c in chunks {
        telnet.feed(c, &mut events, &mut replies);
        assert!(telnet.buffered() <= MAX_SUBNEG);
    }
    telnet.finish(&mut events);
    (normalise(events), replies)
}

/// Merges adjacent data events, the only thing read boundaries change.
fn normalise(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (Some(Event::Data(prev)), Event::Data(more)) => {
                *prev = [&prev[..], &more[..]].concat().into();
            }
            (_, e) => out.push(e),
        }
    }
    out
}

#[test]
fn plain_data_and_doubled_iac() {
    assert_eq!(parse(b"abc"), vec![data(b"abc")]);
    assert_eq!(parse(b"a\xff\xffb"), vec![data(b"a\xffb")]);
    assert_eq!(parse(b"\xff\xff\xff\xff"), vec![data(b"\xff\xff")]);
    // CR NUL and CR LF pass through unchanged (BINARY is assumed).
    assert_eq!(parse(b"\r\0\r\n"), vec![data(b"\r\0\r\n")]);
}

#[test]
fn commands_and_negotiation() {
    assert_eq!(
        parse(b"a\xff\xf1b\xff\xf3\xff\xfb\x2c\xff\xfe\x01c"),
        vec![
            data(b"a"),
            Token::Command(IacCommand::Nop),
            data(b"b"),
            Token::Command(IacCommand::Break),
            Token::Negotiate(Verb::Will, 44),
            Token::Negotiate(Verb::Dont, 1),
            data(b"c"),
        ]
    );
    assert_eq!(
        parse(b"\xff\xef\xff\x00"),
        vec![
            Token::Command(IacCommand::Other(0xef)),
            Token::Command(IacCommand::Other(0)),
        ]
    );
    for b in 241..=249u8 {
        assert_eq!(IacCommand::from_byte(b).byte(), b);
    }
}

#[test]
fn subnegotiation_undoubles_iac() {
    assert_eq!(
        parse(b"\xff\xfa\x2c\x01\x00\xff\xff\x00\xff\xff\xff\xf0x"),
        vec![
            Token::Subnegotiation {
                option: 44,
                payload: Bytes::from_static(b"\x01\x00\xff\x00\xff"),
            },
            data(b"x"),
        ]
    );
    // Option 255, escaped.
    assert_eq!(
        parse(b"\xff\xfa\xff\xff\x07\xff\xf0"),
        vec![Token::Subnegotiation {
            option: 255,
            payload: Bytes::from_static(b"\x07"),
        }]
    );
}

#[test]
fn malformed_input_is_reported_and_skipped() {
    let m = |m| Token::Malformed(m);
    assert_eq!(
        parse(b"\xff\xf0a"),
        vec![m(Malformed::StraySubnegotiationEnd), data(b"a")]
    );
    assert_eq!(
        parse(b"\xff\xfa\xff\xf0a"),
        vec![m(Malformed::EmptySubnegotiation), data(b"a")]
    );
    // A subnegotiation cut by another command: dropped, command kept.
    assert_eq!(
        parse(b"\xff\xfa\x2c\x01\x02\xff\xfd\x00a"),
        vec![
            m(Malformed::UnterminatedSubnegotiation { option: 44 }),
            Token::Negotiate(Verb::Do, 0),
            data(b"a"),
        ]
    );
    assert_eq!(
        parse(b"\xff\xfa\xff\xfb\x03"),
        vec![
            m(Malformed::EmptySubnegotiation),
            Token::Negotiate(Verb::Will, 3)
        ]
    );
}

#[test]
fn oversized_subnegotiation_is_skipped_to_its_end() {
    let mut input = b"\xff\xfa\x05".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_SUBNEG + 1000));
    input.extend_from_slice(b"\xff\xff\xff\xf0after");
    let mut p = Parser::new();
    let mut out = Vec::new();
    for chunk in input.chunks(7) {
        p.feed(chunk, &mut out);
        assert!(p.buffered() <= MAX_SUBNEG);
    }
    p.finish(&mut out);
    let (first, rest) = out.split_first().expect("events");
    assert_eq!(
        first,
        &Token::Malformed(Malformed::OversizedSubnegotiation { option: 5 })
    );
    let tail: Vec<u8> = (rest.iter())
        .flat_map(|t| match t {
            Token::Data(d) => d.to_vec(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tail, b"after");
    // Exactly at the cap is still fine.
    let mut input = b"\xff\xfa\x05".to_vec();
    input.extend(std::iter::repeat_n(b'y', MAX_SUBNEG));
    input.extend_from_slice(b"\xff\xf0");
    match &parse(&input)[..] {
        [Token::Subnegotiation { option: 5, payload }] => assert_eq!(payload.len(), MAX_SUBNEG),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn truncated_sequences_at_end_of_input() {
    for tail in [
        &b"\xff"[..],
        b"\xff\xfb",
        b"\xff\xfa",
        b"\xff\xfa\x2c",
        b"\xff\xfa\x2c\x01\x00",
        b"\xff\xfa\x2c\x01\xff",
    ] {
        let input = [b"ok".as_slice(), tail].concat();
        assert_eq!(
            parse(&input),
            vec![data(b"ok"), Token::Malformed(Malformed::Truncated)],
            "tail {tail:?}"
        );
    }
    // After finish the parser starts afresh.
    let mut p = Parser::new();
    let mut out = Vec::new();
    p.feed(b"\xff\xfa\x2c\x01", &mut out);
    p.finish(&mut out);
    p.feed(b"z", &mut out);
    assert_eq!(
        out,
        vec![Token::Malformed(Malformed::Truncated), data(b"z")]
    );
    assert!(p.is_idle());
}

#[test]
fn escape_doubles_iac_only() {
    let mut out = BytesMut::new();
    escape_into(b"a\xffb\xff\xff", &mut out);
    assert_eq!(&out[..], b"a\xff\xffb\xff\xff\xff\xff");
    let mut big = BytesMut::new();
    let bulk = vec![0x55u8; 100_000];
    escape_into(&bulk, &mut big);
    assert_eq!(&big[..], &bulk[..]);
    let mut sb = BytesMut::new();
    encode_subnegotiation(255, b"\xff", &mut sb);
    assert_eq!(&sb[..], b"\xff\xfa\xff\xff\xff\xff\xff\xf0");
    let mut cmd = BytesMut::new();
    encode_command(IacCommand::AreYouThere, &mut cmd);
    encode_negotiation(Verb::Dont, 7, &mut cmd);
    assert_eq!(&cmd[..], b"\xff\xf6\xff\xfe\x07");
}

#[test]
fn session_decodes_com_port_and_reports_other_subnegotiations() {
    let input =
        b"\xff\xfa\x2c\x01\x00\x00\x4b\x00\xff\xf0\xff\xfa\x18\x01\xff\xf0\xff\xfa\x2c\xff\xf0";
    let (events, _) = session(Telnet::server(), &[input]);
    assert_eq!(
        events,
        vec![
            Event::ComPort(rfc2217::Message::to_server(rfc2217::Command::SetBaudrate(
                19200
            ))),
            Event::Subnegotiation {
                option: 24,
                payload: Bytes::from_static(b"\x01"),
            },
            Event::Malformed(Malformed::EmptyComPort),
        ]
    );
}

#[derive(Debug, Clone)]
enum Item {
    /// Data, escaped on the wire.
    Data(Vec<u8>),
    /// IAC and any byte (a command, a stray SE, a verb or SB that the
    /// following items complete or break).
    Iac(u8),
    /// IAC verb option.
    Negotiate(u8, u8),
    /// A well-formed subnegotiation (possibly oversized).
    Subneg(u8, Vec<u8>),
    /// Any bytes at all.
    Raw(Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Item::Data),
        1 => any::<u8>().prop_map(Item::Iac),
        2 => (251u8..=254, any::<u8>()).prop_map(|(v, o)| Item::Negotiate(v, o)),
        2 => (prop_oneof![Just(44u8), any::<u8>()], prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(o, p)| Item::Subneg(o, p)),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Item::Raw),
    ]
}

fn wire(items: &[Item]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for it in items {
        match it {
            Item::Data(d) => escape_into(d, &mut out),
            Item::Iac(b) => out.extend_from_slice(&[IAC, *b]),
            Item::Negotiate(v, o) => out.extend_from_slice(&[IAC, *v, *o]),
            Item::Subneg(o, p) => encode_subnegotiation(*o, p, &mut out),
            Item::Raw(r) => out.extend_from_slice(r),
        }
    }
    out.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any stream, cut at random points, gives the same events and answers.
    #[test]
    fn split_anywhere_same_events(
        items in prop::collection::vec(item(), 0..30),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        server in any::<bool>(),
    ) {
        let stream = wire(&items);
        let role = || if server { Telnet::server() } else { Telnet::client() };
        let whole = session(role(), &[&stream]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for p in points {
            chunks.push(&stream[from..p]);
            from = p;
        }
        chunks.push(&stream[from..]);
        prop_assert_eq!(&whole, &session(role(), &chunks));
        // Byte by byte too.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(&whole, &session(role(), &bytes));
    }

    /// Every single cut point of a short stream.
    #[test]
    fn split_at_every_point(items in prop::collection::vec(item(), 0..6)) {
        let stream = wire(&items);
        let whole = session(Telnet::server(), &[&stream]);
        for i in 0..=stream.len() {
            let (a, b) = stream.split_at(i);
            prop_assert_eq!(&whole, &session(Telnet::server(), &[a, b]), "cut at {}", i);
        }
    }

    /// Well-formed items parse to exactly what they encode.
    #[test]
    fn well_formed_items_parse_back(
        items in prop::collection::vec(item(), 0..20).prop_map(|v| v.into_iter()
            .filter(|i| !matches!(i, Item::Raw(_) | Item::Iac(_))).collect::<Vec<_>>()),
    ) {
        let mut want = Vec::new();
        let mut pending = Vec::new();
        for it in &items {
            let token = match it {
                Item::Data(d) => { pending.extend_from_slice(d); continue; }
                Item::Negotiate(v, o) => Token::Negotiate(Verb::from_byte(*v).unwrap(), *o),
                Item::Subneg(o, p) if p.len() > MAX_SUBNEG => {
                    Token::Malformed(Malformed::OversizedSubnegotiation { option: *o })
                }
                Item::Subneg(o, p) => Token::Subnegotiation {
                    option: *o,
                    payload: Bytes::copy_from_slice(p),
                },
                Item::Raw(_) | Item::Iac(_) => unreachable!(),
            };
            if !pending.is_empty() {
                want.push(data(&std::mem::take(&mut pending)));
            }
            want.push(token);
        }
        if !pending.is_empty() {
            want.push(data(&pending));
        }
        prop_assert_eq!(parse(&wire(&items)), want);
    }
}
