//! Tests of the RFC 2217 commands: every command both ways, literal wire
//! bytes, wrong lengths, unknown codes and values.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::rfc2217::*;
use super::{Event, Telnet};

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    out.to_vec()
}

/// What a session makes of `wire`: the one COM-PORT message it holds.
fn decode_wire(wire: &[u8]) -> Message {
    let mut t = Telnet::client();
    let (mut events, mut replies) = (Vec::new(), BytesMut::new());
    t.feed(wire, &mut events, &mut replies);
    t.finish(&mut events);
    match &events[..] {
        [Event::ComPort(m)] => m.clone(),
        other => panic!("expected one COM-PORT message, got {other:?}"),
    }
}

fn every_command() -> Vec<Command> {
    let mut all = vec![
        Command::Signature(Bytes::new()),
        Command::Signature(Bytes::from_static(b"serialhub 0.1.0 /dev/ttyUSB0 \xff")),
        Command::SetBaudrate(0),
        Command::SetBaudrate(115_200),
        Command::SetBaudrate(0xFFFF_FFFF),
        Command::NotifyLinestate(None),
        Command::NotifyLinestate(Some(LineState(LineState::BREAK_DETECT))),
        Command::NotifyModemstate(None),
        Command::NotifyModemstate(Some(ModemState(ModemState::CTS | ModemState::DELTA_CTS))),
        Command::FlowControlSuspend,
        Command::FlowControlResume,
        Command::SetLinestateMask(LineState(0)),
        Command::SetModemstateMask(ModemState(255)),
    ];
    for b in 0..=9 {
        all.push(Command::SetDatasize(b.into()));
        all.push(Command::SetParity(b.into()));
        all.push(Command::SetStopsize(b.into()));
        all.push(Command::PurgeData(b.into()));
    }
    for b in 0..=21 {
        all.push(Command::SetControl(b.into()));
    }
    all
}

#[test]
fn every_command_round_trips_both_ways() {
    for command in every_command() {
        for msg in [
            Message::to_server(command.clone()),
            Message::to_client(command.clone()),
        ] {
            let wire = encode(&msg);
            let code = if msg.direction == Direction::ToClient {
                command.code() + SERVER_OFFSET
            } else {
                command.code()
            };
            assert_eq!(&wire[..4], &[0xff, 0xfa, COM_PORT_OPTION, code]);
            assert_eq!(&wire[wire.len() - 2..], &[0xff, 0xf0]);
            assert_eq!(decode_wire(&wire), msg, "wire {wire:x?}");
        }
    }
}

#[test]
fn literal_wire_bytes() {
    let cases: [(&[u8], Message); 9] = [
        (
            b"\xff\xfa\x2c\x01\x00\x00\x25\x80\xff\xf0",
            Message::to_server(Command::SetBaudrate(9600)),
        ),
        (
            b"\xff\xfa\x2c\x65\x00\x01\xc2\x00\xff\xf0",
            Message::to_client(Command::SetBaudrate(115_200)),
        ),
        // 0x0000FF00: the 0xFF value byte is doubled.
        (
            b"\xff\xfa\x2c\x01\x00\x00\xff\xff\x00\xff\xf0",
            Message::to_server(Command::SetBaudrate(0xff00)),
        ),
        (
            b"\xff\xfa\x2c\x03\x03\xff\xf0",
            Message::to_server(Command::SetParity(Parity::Even)),
        ),
        (
            b"\xff\xfa\x2c\x68\x03\xff\xf0",
            Message::to_client(Command::SetStopsize(StopSize::OnePointFive)),
        ),
        (
            b"\xff\xfa\x2c\x69\x08\xff\xf0",
            Message::to_client(Command::SetControl(Control::DtrOn)),
        ),
        (
            b"\xff\xfa\x2c\x0c\x03\xff\xf0",
            Message::to_server(Command::PurgeData(Purge::Both)),
        ),
        // pyserial's modem-state poll carries no value.
        (
            b"\xff\xfa\x2c\x07\xff\xf0",
            Message::to_server(Command::NotifyModemstate(None)),
        ),
        (
            b"\xff\xfa\x2c\x6b\x30\xff\xf0",
            Message::to_client(Command::NotifyModemstate(Some(ModemState(0x30)))),
        ),
    ];
    for (wire, msg) in cases {
        assert_eq!(encode(&msg), wire, "{msg:?}");
        assert_eq!(decode_wire(wire), msg);
    }
}

#[test]
fn wrong_lengths_are_malformed() {
    for (payload, code) in [
        (&b"\x01\x00\x25\x80"[..], 1u8),
        (b"\x01\x00\x00\x25\x80\x00", 1),
        (b"\x65", 1),
        (b"\x02", 2),
        (b"\x03\x01\x02", 3),
        (b"\x04", 4),
        (b"\x05", 5),
        (b"\x06\x01\x02", 6),
        (b"\x08\x00", 8),
        (b"\x6d\x00", 9),
        (b"\x0a", 10),
        (b"\x0b\x01\x01", 11),
        (b"\x0c", 12),
    ] {
        let msg = Message::decode(payload).expect("non-empty");
        assert_eq!(
            msg.command,
            Command::Malformed {
                code,
                value: Bytes::copy_from_slice(&payload[1..]),
            },
            "payload {payload:x?}"
        );
        // It re-encodes to what came.
        let wire = encode(&msg);
        assert_eq!(&wire[3..wire.len() - 2], payload);
    }
    assert_eq!(Message::decode(b""), None);
}

#[test]
fn unknown_codes_and_values() {
    for (code, dir) in [
        (13u8, Direction::ToServer),
        (99, Direction::ToServer),
        (113, Direction::ToClient),
        (255, Direction::ToClient),
    ] {
        let msg = Message::decode(&[code, 1, 2]).expect("non-empty");
        assert_eq!(msg.direction, dir);
        assert_eq!(
            msg.command,
            Command::Unknown {
                code,
                value: Bytes::from_static(&[1, 2]),
            }
        );
        assert_eq!(decode_wire(&encode(&msg)), msg);
    }
    assert_eq!(Parity::from(9), Parity::Unknown(9));
    assert_eq!(DataSize::from(4), DataSize::Unknown(4));
    assert_eq!(StopSize::from(4), StopSize::Unknown(4));
    assert_eq!(Control::from(20), Control::Unknown(20));
    assert_eq!(Purge::from(0), Purge::Unknown(0));
    assert_eq!(Control::from(19), Control::FlowDsr);
    assert_eq!(Control::from(13), Control::RequestFlowInbound);
    assert_eq!(DataSize::from(0), DataSize::Request);
    for b in 0..=255u8 {
        assert_eq!(u8::from(Parity::from(b)), b);
        assert_eq!(u8::from(DataSize::from(b)), b);
        assert_eq!(u8::from(StopSize::from(b)), b);
        assert_eq!(u8::from(Control::from(b)), b);
        assert_eq!(u8::from(Purge::from(b)), b);
    }
}

#[test]
fn state_bits() {
    let m = ModemState(ModemState::CTS | ModemState::DSR);
    assert!(m.contains(ModemState::CTS) && !m.contains(ModemState::CD));
    let l = LineState(LineState::DATA_READY);
    assert!(l.contains(LineState::DATA_READY) && !l.contains(LineState::TIMEOUT_ERROR));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any payload decodes, and re-encodes to the same payload.
    #[test]
    fn any_payload_round_trips(payload in prop::collection::vec(any::<u8>(), 1..12)) {
        let msg = Message::decode(&payload).expect("non-empty");
        let wire = encode(&msg);
        prop_assert_eq!(decode_wire(&wire), msg);
        let mut escaped = BytesMut::new();
        super::escape_into(&payload, &mut escaped);
        prop_assert_eq!(&wire[3..wire.len() - 2], &escaped[..]);
    }
}
