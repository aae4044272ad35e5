//! Modbus RTU: the CRC, frame lengths from function codes, and a framer that
//! splits a client's byte stream into requests.
//!
//! On a real RTU line a frame ends at 3.5 character times of silence. A
//! client on a socket has no silences we can trust (TCP merges and splits
//! writes), so [`RtuFramer`] frames requests by their content instead: the
//! function code says how long the request is ([`request_len`]). Only a
//! request with a function code we do not know is framed by silence: the
//! caller calls [`RtuFramer::flush`] when the client has been quiet.
//!
//! Every length is capped at [`MAX_FRAME`]: a length field that claims more
//! makes the frame's length [`FrameLen::Unknown`], so it is framed by silence
//! and, if it really is that long, comes out as [`RtuEvent::Oversized`].

use super::EXCEPTION_BIT;

/// Longest RTU frame (Modbus: 256 bytes).
pub(crate) const MAX_FRAME: usize = 256;
/// Shortest RTU frame: unit, function code, CRC.
pub(crate) const MIN_FRAME: usize = 4;

const CRC_TABLE: [u16; 256] = crc_table();

const fn crc_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Modbus CRC-16 (poly 0xA001, init 0xFFFF). On the wire: low byte first.
pub(crate) fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF, |crc, &b| {
        (crc >> 8) ^ CRC_TABLE[usize::from((crc ^ u16::from(b)) & 0xFF)]
    })
}

/// Appends the CRC to an RTU frame body (unit + PDU).
pub fn append_crc(frame: &mut Vec<u8>) {
    let crc = crc16(frame);
    frame.extend_from_slice(&crc.to_le_bytes());
}

/// Whether a whole RTU frame (unit, PDU, CRC) has a correct CRC (false if
/// shorter than 4 bytes).
pub fn crc_ok(frame: &[u8]) -> bool {
    if frame.len() < MIN_FRAME {
        return false;
    }
    let (body, crc) = frame.split_at(frame.len() - 2);
    crc16(body).to_le_bytes() == crc
}

/// An RTU exception reply: `unit`, `func | 0x80`, `code`, CRC.
pub(crate) fn exception(unit: u8, func: u8, code: u8) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5);
    frame.extend_from_slice(&[unit, func | EXCEPTION_BIT, code]);
    append_crc(&mut frame);
    frame
}

/// What a prefix of a byte stream says about the frame it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameLen {
    /// The frame is this many bytes long (CRC included); never more than
    /// [`MAX_FRAME`].
    Complete(usize),
    /// At least this many bytes are needed to know more.
    NeedMore(usize),
    /// Its length cannot be known from its content (unknown function code,
    /// or a length field claiming more than [`MAX_FRAME`]): frame it by
    /// silence.
    Unknown,
}

/// `fixed + buf[at]`, or the bytes needed to read `buf[at]`.
fn counted(buf: &[u8], at: usize, fixed: usize) -> FrameLen {
    match buf.get(at) {
        Some(&n) => capped(fixed + usize::from(n)),
        None => FrameLen::NeedMore(at + 1),
    }
}

fn capped(len: usize) -> FrameLen {
    if len <= MAX_FRAME {
        FrameLen::Complete(len)
    } else {
        FrameLen::Unknown
    }
}

/// Length of the RTU *request* starting at buf[0] (unit id, function code,
/// ...), from the function code:
/// 01-06: 8; 07, 0B, 0C, 11: 4; 08: 8; 0F, 10: 9 + byte count at [6];
/// 14, 15: 5 + byte count at [2]; 16: 10; 17: 13 + byte count at [10];
/// 18: 6; 2B/0E (MEI read device id): 7; others: Unknown.
pub(crate) fn request_len(buf: &[u8]) -> FrameLen {
    let Some(&func) = buf.get(1) else {
        return FrameLen::NeedMore(2);
    };
    match func {
        0x01..=0x06 | 0x08 => FrameLen::Complete(8),
        0x07 | 0x0B | 0x0C | 0x11 => FrameLen::Complete(4),
        0x0F | 0x10 => counted(buf, 6, 9),
        // Unit, function, byte count, sub-requests, CRC: 5 + byte count
        // (as pymodbus computes it).
        0x14 | 0x15 => counted(buf, 2, 5),
        0x16 => FrameLen::Complete(10),
        0x17 => counted(buf, 10, 13),
        0x18 => FrameLen::Complete(6),
        0x2B => match buf.get(2) {
            None => FrameLen::NeedMore(3),
            Some(0x0E) => FrameLen::Complete(7),
            Some(_) => FrameLen::Unknown,
        },
        _ => FrameLen::Unknown,
    }
}

/// Length of the RTU *reply* starting at buf[0], to a request with function
/// code `func`:
/// exception (buf[1] == func | 0x80): 5; 01-04, 0C, 11, 14, 15, 17: 5 + byte
/// count at [2]; 05, 06, 0F, 10: 8; 07: 5; 08: 8; 0B: 8; 16: 10; 18: 6 +
/// 2-byte count at [2..4] (big endian); a reply whose function code is
/// neither func nor func|0x80: Unknown; others Unknown.
pub(crate) fn reply_len(func: u8, buf: &[u8]) -> FrameLen {
    let Some(&got) = buf.get(1) else {
        return FrameLen::NeedMore(2);
    };
    if func & EXCEPTION_BIT != 0 {
        // Not a request's function code: nothing can be said of its reply.
        return FrameLen::Unknown;
    }
    if got == func | EXCEPTION_BIT {
        return FrameLen::Complete(5);
    }
    if got != func {
        return FrameLen::Unknown;
    }
    match func {
        0x01..=0x04 | 0x0C | 0x11 | 0x14 | 0x15 | 0x17 => counted(buf, 2, 5),
        0x05 | 0x06 | 0x0F | 0x10 | 0x08 | 0x0B => FrameLen::Complete(8),
        0x07 => FrameLen::Complete(5),
        0x16 => FrameLen::Complete(10),
        0x18 => match buf.get(2..4) {
            Some(&[hi, lo]) => capped(6 + usize::from(u16::from_be_bytes([hi, lo]))),
            _ => FrameLen::NeedMore(4),
        },
        _ => FrameLen::Unknown,
    }
}

/// What [`RtuFramer`] found in a client's stream. Every byte pushed comes out
/// in exactly one event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RtuEvent {
    /// A whole request with a correct CRC (unit, PDU, CRC).
    Frame(Vec<u8>),
    /// A whole request (by its length, or up to a silence) whose CRC is wrong.
    BadCrc(Vec<u8>),
    /// The bytes of a request cut short by a silence ([`RtuFramer::flush`]).
    Truncated(Vec<u8>),
    /// [`MAX_FRAME`] bytes without a frame end; framing restarts after them.
    Oversized(Vec<u8>),
}

/// Splits a client's byte stream into RTU requests by their parsed length.
///
/// Requests come out as soon as their last byte arrives; one whose length is
/// [`FrameLen::Unknown`] is held until [`flush`](Self::flush), which the
/// caller calls after an inter-frame silence. At most [`MAX_FRAME`] bytes are
/// buffered. Feeding the same stream in any split yields the same events.
#[derive(Debug, Default)]
pub(crate) struct RtuFramer {
    buf: Vec<u8>,
}

impl RtuFramer {
    pub(crate) fn new() -> Self {
        RtuFramer {
            buf: Vec::with_capacity(MAX_FRAME),
        }
    }

    /// Takes `data` and appends the events it completes to `out`.
    pub(crate) fn push(&mut self, mut data: &[u8], out: &mut Vec<RtuEvent>) {
        while !data.is_empty() {
            if self.buf.len() == MAX_FRAME {
                // Only a frame of unknown length gets here (known lengths
                // are capped): one more byte and it cannot be a frame.
                out.push(RtuEvent::Oversized(std::mem::take(&mut self.buf)));
                self.buf.reserve(MAX_FRAME);
            }
            let take = data.len().min(MAX_FRAME - self.buf.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.drain(out);
        }
    }

    /// Ends the frame in progress, as a silence on the line does: a frame of
    /// unknown length comes out whole (checked by its CRC), a partial one as
    /// [`RtuEvent::Truncated`].
    pub(crate) fn flush(&mut self, out: &mut Vec<RtuEvent>) {
        if self.buf.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.buf);
        self.buf.reserve(MAX_FRAME);
        out.push(match request_len(&bytes) {
            FrameLen::Unknown if bytes.len() >= MIN_FRAME => checked(bytes),
            _ => RtuEvent::Truncated(bytes),
        });
    }

    /// No bytes wait for the rest of their frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes waiting for the rest of their frame.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Emits every complete frame at the front of the buffer.
    fn drain(&mut self, out: &mut Vec<RtuEvent>) {
        while let FrameLen::Complete(n) = request_len(&self.buf) {
            if self.buf.len() < n {
                return;
            }
            let rest = self.buf.split_off(n);
            let frame = std::mem::replace(&mut self.buf, rest);
            out.push(checked(frame));
        }
    }
}

fn checked(frame: Vec<u8>) -> RtuEvent {
    if crc_ok(&frame) {
        RtuEvent::Frame(frame)
    } else {
        RtuEvent::BadCrc(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut f = body.to_vec();
        append_crc(&mut f);
        f
    }

    #[test]
    fn crc_known_vectors() {
        // Read 10 holding registers from unit 1: the Modbus spec's example.
        assert_eq!(
            framed(&[1, 3, 0, 0, 0, 0x0A]),
            [1, 3, 0, 0, 0, 0x0A, 0xC5, 0xCD]
        );
        // Vectors checked against pymodbus 3.x (`FramerRTU.compute_CRC`).
        assert_eq!(crc16(&[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03]), 0x8776);
        assert_eq!(crc16(&[0x01, 0x06, 0x00, 0x01, 0x00, 0x03]), 0x0B98);
        assert_eq!(crc16(b"123456789"), 0x4B37);
        assert_eq!(crc16(&[]), 0xFFFF);
    }

    #[test]
    fn crc_ok_checks_the_last_two_bytes() {
        let f = framed(&[1, 3, 0, 0, 0, 0x0A]);
        assert!(crc_ok(&f));
        for i in 0..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x01;
            assert!(!crc_ok(&bad), "flip in byte {i} not caught");
        }
        assert!(!crc_ok(&f[..3]));
        assert!(!crc_ok(&[]));
        // The shortest frame: unit, function, CRC.
        assert!(crc_ok(&framed(&[1, 7])));
    }

    #[test]
    fn exception_frames() {
        assert_eq!(exception(1, 3, 2), framed(&[1, 0x83, 2]));
        assert!(crc_ok(&exception(7, 0x10, 0x0B)));
    }

    #[test]
    fn request_len_of_every_function_code() {
        use FrameLen::*;
        assert_eq!(request_len(&[]), NeedMore(2));
        assert_eq!(request_len(&[1]), NeedMore(2));
        for f in [1, 2, 3, 4, 5, 6, 8] {
            assert_eq!(request_len(&[1, f]), Complete(8), "function {f:#04x}");
        }
        for f in [7, 0x0B, 0x0C, 0x11] {
            assert_eq!(request_len(&[1, f]), Complete(4), "function {f:#04x}");
        }
        for f in [0x0F, 0x10] {
            assert_eq!(request_len(&[1, f, 0, 0, 0, 2]), NeedMore(7));
            assert_eq!(request_len(&[1, f, 0, 0, 0, 2, 4]), Complete(13));
            assert_eq!(request_len(&[1, f, 0, 0, 0, 0x7B, 0xF6]), Complete(255));
        }
        for f in [0x14, 0x15] {
            assert_eq!(request_len(&[1, f]), NeedMore(3));
            assert_eq!(request_len(&[1, f, 7]), Complete(12));
            assert_eq!(request_len(&[1, f, 0xF5]), Complete(250));
        }
        assert_eq!(request_len(&[1, 0x16]), Complete(10));
        assert_eq!(
            request_len(&[1, 0x17, 0, 0, 0, 1, 0, 0, 0, 1]),
            NeedMore(11)
        );
        assert_eq!(
            request_len(&[1, 0x17, 0, 0, 0, 1, 0, 0, 0, 1, 2]),
            Complete(15)
        );
        assert_eq!(request_len(&[1, 0x18]), Complete(6));
        assert_eq!(request_len(&[1, 0x2B]), NeedMore(3));
        assert_eq!(request_len(&[1, 0x2B, 0x0E]), Complete(7));
        assert_eq!(request_len(&[1, 0x2B, 0x0D]), Unknown);
        for f in [
            0, 9, 0x0A, 0x0D, 0x0E, 0x12, 0x13, 0x19, 0x41, 0x64, 0x83, 0xFF,
        ] {
            assert_eq!(request_len(&[1, f]), Unknown, "function {f:#04x}");
        }
    }

    #[test]
    fn request_len_never_claims_more_than_max_frame() {
        // 9 + 255 and 13 + 255 are over 256: such a frame is framed by
        // silence and is oversized if it really is that long.
        assert_eq!(
            request_len(&[1, 0x10, 0, 0, 0, 0x7B, 0xF8]),
            FrameLen::Unknown
        );
        assert_eq!(request_len(&[1, 0x0F, 0, 0, 0, 0, 0xFF]), FrameLen::Unknown);
        assert_eq!(request_len(&[1, 0x14, 0xFC]), FrameLen::Unknown);
        assert_eq!(request_len(&[1, 0x14, 0xFB]), FrameLen::Complete(256));
        let mut b = [0u8; 11];
        b[1] = 0x17;
        b[10] = 0xFF;
        assert_eq!(request_len(&b), FrameLen::Unknown);
    }

    #[test]
    fn reply_len_of_every_function_code() {
        use FrameLen::*;
        assert_eq!(reply_len(3, &[1]), NeedMore(2));
        for f in [1, 2, 3, 4, 0x0C, 0x11, 0x14, 0x15, 0x17] {
            assert_eq!(reply_len(f, &[1, f]), NeedMore(3), "function {f:#04x}");
            assert_eq!(reply_len(f, &[1, f, 20]), Complete(25), "function {f:#04x}");
            assert_eq!(
                reply_len(f, &[1, f, 251]),
                Complete(256),
                "function {f:#04x}"
            );
            assert_eq!(reply_len(f, &[1, f, 252]), Unknown, "function {f:#04x}");
        }
        for f in [5, 6, 0x0F, 0x10, 8, 0x0B] {
            assert_eq!(reply_len(f, &[1, f]), Complete(8), "function {f:#04x}");
        }
        assert_eq!(reply_len(7, &[1, 7]), Complete(5));
        assert_eq!(reply_len(0x16, &[1, 0x16]), Complete(10));
        assert_eq!(reply_len(0x18, &[1, 0x18, 0]), NeedMore(4));
        assert_eq!(reply_len(0x18, &[1, 0x18, 0, 6]), Complete(12));
        assert_eq!(reply_len(0x18, &[1, 0x18, 0, 250]), Complete(256));
        assert_eq!(reply_len(0x18, &[1, 0x18, 1, 0]), Unknown);
        assert_eq!(reply_len(0x18, &[1, 0x18, 0xFF, 0xFF]), Unknown);
        assert_eq!(reply_len(0x2B, &[1, 0x2B, 0x0E]), Unknown);
        assert_eq!(reply_len(0x41, &[1, 0x41]), Unknown);
    }

    #[test]
    fn reply_len_of_exceptions_and_strangers() {
        use FrameLen::*;
        for f in [1, 3, 5, 0x10, 0x2B, 0x41] {
            assert_eq!(
                reply_len(f, &[1, f | 0x80]),
                Complete(5),
                "function {f:#04x}"
            );
        }
        // Another function's reply, or another function's exception.
        assert_eq!(reply_len(3, &[1, 4, 2]), Unknown);
        assert_eq!(reply_len(3, &[1, 0x84, 2]), Unknown);
        // A "request" function code with the exception bit has no reply length.
        assert_eq!(reply_len(0x83, &[1, 0x83, 2]), Unknown);
    }

    fn run(stream: &[u8], splits: &[usize], flush: bool) -> Vec<RtuEvent> {
        let mut framer = RtuFramer::new();
        let mut out = Vec::new();
        let mut at = 0;
        for &s in splits {
            let end = (at + s).min(stream.len());
            framer.push(&stream[at..end], &mut out);
            at = end;
        }
        framer.push(&stream[at..], &mut out);
        if flush {
            framer.flush(&mut out);
        }
        out
    }

    #[test]
    fn framer_splits_back_to_back_requests() {
        let a = framed(&[1, 3, 0, 0, 0, 0x0A]);
        let b = framed(&[2, 0x10, 0, 1, 0, 2, 4, 0, 1, 0, 2]);
        let c = framed(&[3, 0x11]);
        let stream = [a.clone(), b.clone(), c.clone()].concat();
        let want = vec![RtuEvent::Frame(a), RtuEvent::Frame(b), RtuEvent::Frame(c)];
        assert_eq!(run(&stream, &[], false), want);
        assert_eq!(run(&stream, &[1; 40], false), want);
    }

    #[test]
    fn framer_reports_bad_crc_and_moves_on() {
        let mut a = framed(&[1, 3, 0, 0, 0, 0x0A]);
        a[7] ^= 0xFF;
        let b = framed(&[1, 6, 0, 1, 0, 3]);
        let stream = [a.clone(), b.clone()].concat();
        assert_eq!(
            run(&stream, &[3, 3, 3], false),
            vec![RtuEvent::BadCrc(a), RtuEvent::Frame(b)]
        );
    }

    #[test]
    fn framer_holds_unknown_functions_until_flush() {
        let a = framed(&[1, 0x41, 9, 9, 9]);
        let mut framer = RtuFramer::new();
        let mut out = Vec::new();
        framer.push(&a, &mut out);
        assert!(out.is_empty());
        assert!(!framer.is_empty());
        framer.flush(&mut out);
        assert_eq!(out, vec![RtuEvent::Frame(a.clone())]);
        assert!(framer.is_empty());
        // Without a good CRC it is reported, not returned as a request.
        let mut bad = a;
        bad[2] = 0;
        out.clear();
        framer.push(&bad, &mut out);
        framer.flush(&mut out);
        assert_eq!(out, vec![RtuEvent::BadCrc(bad)]);
    }

    #[test]
    fn framer_flush_truncates_partial_frames() {
        let a = framed(&[1, 3, 0, 0, 0, 0x0A]);
        let mut framer = RtuFramer::new();
        let mut out = Vec::new();
        framer.push(&a[..5], &mut out);
        framer.flush(&mut out);
        assert_eq!(out, vec![RtuEvent::Truncated(a[..5].to_vec())]);
        out.clear();
        framer.push(&[1, 0x41, 2], &mut out);
        framer.flush(&mut out);
        assert_eq!(out, vec![RtuEvent::Truncated(vec![1, 0x41, 2])]);
        out.clear();
        framer.flush(&mut out);
        assert!(out.is_empty(), "flushing nothing yields nothing");
        // After a silence, framing starts afresh.
        framer.push(&a, &mut out);
        assert_eq!(out, vec![RtuEvent::Frame(a)]);
    }

    #[test]
    fn framer_caps_its_buffer() {
        let stream: Vec<u8> = [1u8, 0x41]
            .into_iter()
            .chain(std::iter::repeat_n(0xAA, 600))
            .collect();
        let mut framer = RtuFramer::new();
        let mut out = Vec::new();
        framer.push(&stream, &mut out);
        assert!(framer.buffered() <= MAX_FRAME);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], RtuEvent::Oversized(b) if b.len() == MAX_FRAME));
        // What follows the oversized bytes is framed again from its content:
        // 0xAA 0xAA is an unknown function, so it too fills the buffer.
        assert!(matches!(&out[1], RtuEvent::Oversized(b) if b.len() == MAX_FRAME));
        assert_eq!(framer.buffered(), 602 - 2 * MAX_FRAME);
        // Exactly MAX_FRAME bytes of unknown length is still a frame.
        let mut max = vec![1u8, 0x41];
        max.resize(MAX_FRAME - 2, 0x55);
        append_crc(&mut max);
        let mut framer = RtuFramer::new();
        out.clear();
        framer.push(&max, &mut out);
        framer.flush(&mut out);
        assert_eq!(out, vec![RtuEvent::Frame(max)]);
    }

    fn event_bytes(e: &RtuEvent) -> &[u8] {
        match e {
            RtuEvent::Frame(b)
            | RtuEvent::BadCrc(b)
            | RtuEvent::Truncated(b)
            | RtuEvent::Oversized(b) => b,
        }
    }

    /// Streams that look like Modbus: real requests, some corrupted, some
    /// cut, with noise between them.
    fn modbus_stream() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            (
                any::<u8>(),
                1u8..=0x2B,
                prop::collection::vec(any::<u8>(), 0..20)
            )
                .prop_map(|(unit, f, rest)| {
                    let mut body = vec![unit, f];
                    body.extend(rest);
                    let mut f = body;
                    append_crc(&mut f);
                    f
                }),
            (any::<u8>(), 0u16..10, 1u16..10).prop_map(|(unit, a, q)| {
                let mut f = vec![unit, 3];
                f.extend(a.to_be_bytes());
                f.extend(q.to_be_bytes());
                append_crc(&mut f);
                f
            }),
            prop::collection::vec(any::<u8>(), 0..300),
        ];
        prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any input, split anywhere: no panic, the same events, every byte
        /// in exactly one event, nothing over MAX_FRAME.
        #[test]
        fn framer_split_anywhere(
            stream in prop_oneof![modbus_stream(), prop::collection::vec(any::<u8>(), 0..1200)],
            splits in prop::collection::vec(0usize..300, 0..20),
            flush in any::<bool>(),
        ) {
            let whole = run(&stream, &[], flush);
            let split = run(&stream, &splits, flush);
            prop_assert_eq!(&whole, &split);
            let ones = run(&stream, &vec![1; stream.len()], flush);
            prop_assert_eq!(&whole, &ones);
            let mut framer = RtuFramer::new();
            let mut out = Vec::new();
            framer.push(&stream, &mut out);
            prop_assert!(framer.buffered() <= MAX_FRAME);
            let mut bytes: Vec<u8> = out.iter().flat_map(|e| event_bytes(e).to_vec()).collect();
            bytes.extend_from_slice(&framer.buf);
            prop_assert_eq!(&bytes, &stream);
            for e in &whole {
                prop_assert!(event_bytes(e).len() <= MAX_FRAME);
                prop_assert!(!event_bytes(e).is_empty());
                if let RtuEvent::Frame(f) = e {
                    prop_assert!(crc_ok(f));
                }
            }
        }

        #[test]
        fn lengths_are_capped(buf in prop::collection::vec(any::<u8>(), 0..300), func in any::<u8>()) {
            for len in [request_len(&buf), reply_len(func, &buf)] {
                match len {
                    FrameLen::Complete(n) => prop_assert!((MIN_FRAME..=MAX_FRAME).contains(&n)),
                    FrameLen::NeedMore(n) => {
                        prop_assert!(n > buf.len());
                        prop_assert!(n <= MAX_FRAME);
                    }
                    FrameLen::Unknown => {}
                }
            }
        }

        /// A prefix's verdict never contradicts the whole buffer's: once the
        /// length is known, more bytes do not change it.
        #[test]
        fn lengths_are_stable(buf in prop::collection::vec(any::<u8>(), 0..20), cut in 0usize..20) {
            let cut = cut.min(buf.len());
            for (a, b) in [(request_len(&buf[..cut]), request_len(&buf)), (reply_len(3, &buf[..cut]), reply_len(3, &buf))] {
                if let FrameLen::Complete(_) | FrameLen::Unknown = a {
                    prop_assert_eq!(a, b);
                }
            }
        }
    }
}
