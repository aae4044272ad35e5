//! Fuzzes the Modbus codecs and the simulator's slave with arbitrary input:
//! no panic, every length capped, the RTU framer split-invariant and
//! lossless. Run: `cd fuzz && cargo fuzz run modbus -s none`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serialhub::device::sim::modbus::{Outcome, Slave};
use serialhub::proto::modbus::rtu::{self, FrameLen, MAX_FRAME, RtuEvent, RtuFramer};
use serialhub::proto::modbus::tcp;

fn bytes(e: &RtuEvent) -> &[u8] {
    match e {
        RtuEvent::Frame(b)
        | RtuEvent::BadCrc(b)
        | RtuEvent::Truncated(b)
        | RtuEvent::Oversized(b) => b,
    }
}

/// Feeds `stream` in chunks whose sizes come from `splits`, flushing at the
/// end (when `flush`).
fn frame(stream: &[u8], splits: &[u8], flush: bool) -> Vec<RtuEvent> {
    let mut framer = RtuFramer::new();
    let mut out = Vec::new();
    let mut rest = stream;
    for &s in splits.iter().cycle().take(stream.len()) {
        if rest.is_empty() {
            break;
        }
        let n = usize::from(s).min(rest.len());
        framer.push(&rest[..n], &mut out);
        rest = &rest[n..];
    }
    framer.push(rest, &mut out);
    assert!(framer.buffered() <= MAX_FRAME);
    if flush {
        framer.flush(&mut out);
        assert!(framer.is_empty());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The first bytes steer the run: a function code, whether to flush, and
    // the split sizes; the rest is the stream.
    let Some((&func, data)) = data.split_first() else {
        return;
    };
    let Some((&nsplits, data)) = data.split_first() else {
        return;
    };
    let (splits, stream) = data.split_at(usize::from(nsplits % 16).min(data.len()));
    let flush = func & 1 == 1;

    let whole = frame(stream, &[], flush);
    assert_eq!(
        whole,
        frame(stream, splits, flush),
        "split changed the events"
    );
    let mut all = Vec::new();
    for e in &whole {
        let b = bytes(e);
        assert!(!b.is_empty() && b.len() <= MAX_FRAME);
        if let RtuEvent::Frame(f) = e {
            assert!(rtu::crc_ok(f));
        }
        all.extend_from_slice(b);
    }
    assert!(
        stream.starts_with(&all),
        "events are not the stream, in order"
    );
    if flush {
        assert_eq!(all, stream, "a flush leaves no byte behind");
    }

    for len in [rtu::request_len(stream), rtu::reply_len(func, stream)] {
        match len {
            FrameLen::Complete(n) => assert!((4..=MAX_FRAME).contains(&n)),
            FrameLen::NeedMore(n) => assert!(n > stream.len() && n <= MAX_FRAME),
            FrameLen::Unknown => {}
        }
    }

    // Modbus TCP: a stream of ADUs, parsed one after another.
    let mut rest = stream;
    while let Ok(Some((h, pdu, n))) = tcp::parse_adu(rest) {
        assert!(n <= rest.len() && n <= tcp::MAX_ADU);
        assert_eq!(usize::from(h.length), pdu.len() + 1);
        let rtu = tcp::to_rtu(h.unit, pdu);
        assert!(rtu.len() <= MAX_FRAME);
        assert_eq!(
            tcp::from_rtu(h.transaction, &rtu).as_deref(),
            Ok(&rest[..n])
        );
        rest = &rest[n..];
    }
    if let Ok(adu) = tcp::from_rtu(0, stream) {
        assert!(adu.len() <= tcp::MAX_ADU);
    }

    // The simulator's slave, on the stream as one frame and on each frame.
    let mut slave = Slave::new();
    for f in std::iter::once(stream).chain(whole.iter().map(bytes)) {
        if let Outcome::Reply(r) | Outcome::Exception(r) = slave.handle(f) {
            assert!(rtu::crc_ok(&r) && r.len() <= MAX_FRAME);
        }
    }
});
