//! Modbus TCP: the MBAP header, and the conversions between a TCP request or
//! reply and the RTU frame that carries it on the serial line.
//!
//! An ADU is the 7-byte MBAP header (transaction id, protocol id 0, length of
//! what follows, unit id) and a PDU of at most 253 bytes, so the length field
//! is 2 to 254. The RTU frame for the same request is unit, PDU, CRC.

use super::EXCEPTION_BIT;
use super::rtu::{self, MAX_FRAME, MIN_FRAME};
pub use super::{GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED};

/// MBAP header length, unit id included.
pub(crate) const HEADER: usize = 7;
/// Largest value of the length field: unit id plus a 253-byte PDU.
pub(crate) const MAX_LENGTH: u16 = 254;
/// Smallest value of the length field: unit id and function code.
pub(crate) const MIN_LENGTH: u16 = 2;
/// Longest ADU: the 6 bytes before the length field counts, plus its most.
pub const MAX_ADU: usize = 6 + MAX_LENGTH as usize;

/// A Modbus TCP (MBAP) header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mbap {
    /// Chosen by the client; echoed in the reply so it can match them.
    pub transaction: u16,
    /// Always 0 for Modbus.
    pub(crate) protocol: u16,
    /// Bytes that follow the length field: the unit id and the PDU.
    pub(crate) length: u16,
    pub unit: u8,
}

/// A header no Modbus TCP peer sends: the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbapError {
    #[error("Modbus TCP header has protocol id {0}, not 0")]
    Protocol(u16),
    #[error("Modbus TCP header has length {0}, outside 2 to 254")]
    Length(u16),
}

/// An RTU reply that cannot be passed on to a TCP client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadReply {
    #[error("RTU reply of {0} bytes is shorter than 4")]
    TooShort(usize),
    #[error("RTU reply of {0} bytes is longer than 256")]
    TooLong(usize),
    #[error("RTU reply of {0} bytes fails its CRC")]
    Crc(usize),
}

/// One parsed ADU: its header, its PDU, and the bytes it took.
pub(crate) type Adu<'a> = (Mbap, &'a [u8], usize);

/// Parses one ADU from the front of `buf`: `Ok(None)` means more bytes are
/// needed; `Ok(Some((header, pdu, consumed)))` a whole ADU, `consumed` bytes
/// long; `Err` a bad header, reported as soon as its field has arrived.
pub fn parse_adu(buf: &[u8]) -> Result<Option<Adu<'_>>, MbapError> {
    let field = |at: usize| {
        buf.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    if let Some(protocol) = field(2)
        && protocol != 0
    {
        return Err(MbapError::Protocol(protocol));
    }
    let Some(length) = field(4) else {
        return Ok(None);
    };
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Err(MbapError::Length(length));
    }
    let (Some(transaction), Some(&unit)) = (field(0), buf.get(6)) else {
        return Ok(None);
    };
    let consumed = 6 + usize::from(length);
    let Some(pdu) = buf.get(HEADER..consumed) else {
        return Ok(None);
    };
    let header = Mbap {
        transaction,
        protocol: 0,
        length,
        unit,
    };
    Ok(Some((header, pdu, consumed)))
}

/// The ADU for `pdu` from `unit`, with transaction id `transaction`. A PDU
/// longer than 253 bytes is cut to 253, as the length field cannot say more.
pub fn adu(transaction: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let pdu = &pdu[..pdu.len().min(usize::from(MAX_LENGTH) - 1)];
    let length = u16::try_from(pdu.len() + 1).unwrap_or(MAX_LENGTH);
    let mut out = Vec::with_capacity(HEADER + pdu.len());
    out.extend_from_slice(&transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&length.to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

/// RTU frame (unit, pdu, CRC) for a TCP request.
pub(crate) fn to_rtu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(pdu.len() + 3);
    frame.push(unit);
    frame.extend_from_slice(pdu);
    rtu::append_crc(&mut frame);
    frame
}

/// TCP ADU for an RTU reply (CRC checked and stripped); Err if the CRC is
/// wrong or the frame too short or too long.
pub(crate) fn from_rtu(transaction: u16, rtu: &[u8]) -> Result<Vec<u8>, BadReply> {
    if rtu.len() < MIN_FRAME {
        return Err(BadReply::TooShort(rtu.len()));
    }
    if rtu.len() > MAX_FRAME {
        return Err(BadReply::TooLong(rtu.len()));
    }
    if !rtu::crc_ok(rtu) {
        return Err(BadReply::Crc(rtu.len()));
    }
    Ok(adu(transaction, rtu[0], &rtu[1..rtu.len() - 2]))
}

/// TCP ADU carrying exception `code` (e.g. [`GATEWAY_TARGET_FAILED`]) for
/// function `func`.
pub(crate) fn exception(transaction: u16, unit: u8, func: u8, code: u8) -> Vec<u8> {
    adu(transaction, unit, &[func | EXCEPTION_BIT, code])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_request() {
        // Transaction 0x0001, read 10 holding registers at 0 from unit 0x11.
        let adu = [0, 1, 0, 0, 0, 6, 0x11, 3, 0, 0, 0, 0x0A, 0xEE];
        let (h, pdu, n) = parse_adu(&adu).unwrap().unwrap();
        assert_eq!(
            h,
            Mbap {
                transaction: 1,
                protocol: 0,
                length: 6,
                unit: 0x11
            }
        );
        assert_eq!(pdu, [3, 0, 0, 0, 0x0A]);
        assert_eq!(n, 12, "the byte after the ADU is not consumed");
        for cut in 0..12 {
            assert_eq!(parse_adu(&adu[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_bad_headers() {
        let e = parse_adu(&[0, 1, 0, 1]).unwrap_err();
        assert_eq!(e, MbapError::Protocol(1));
        assert!(e.to_string().contains("protocol id 1"), "{e}");
        for len in [0u16, 1, 255, 0xFFFF] {
            let [hi, lo] = len.to_be_bytes();
            let e = parse_adu(&[0, 1, 0, 0, hi, lo]).unwrap_err();
            assert_eq!(e, MbapError::Length(len));
            assert!(e.to_string().contains(&format!("length {len}")), "{e}");
        }
        // The largest and smallest lengths are fine.
        let mut big = vec![0, 1, 0, 0, 0, 254, 1];
        big.resize(260, 3);
        assert_eq!(parse_adu(&big).unwrap().unwrap().2, 260);
        assert_eq!(
            parse_adu(&[0, 1, 0, 0, 0, 2, 1, 7]).unwrap().unwrap().1,
            [7]
        );
    }

    #[test]
    fn converts_requests_and_replies() {
        assert_eq!(
            to_rtu(1, &[3, 0, 0, 0, 0x0A]),
            [1, 3, 0, 0, 0, 0x0A, 0xC5, 0xCD]
        );
        let mut reply = vec![1, 3, 4, 0, 1, 0, 2];
        rtu::append_crc(&mut reply);
        assert_eq!(
            from_rtu(0xBEEF, &reply).unwrap(),
            [0xBE, 0xEF, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2]
        );
        let last = reply.len() - 1;
        reply[last] ^= 1;
        assert_eq!(from_rtu(1, &reply), Err(BadReply::Crc(9)));
        assert_eq!(from_rtu(1, &[1, 3, 0]), Err(BadReply::TooShort(3)));
        assert_eq!(from_rtu(1, &[0; 257]), Err(BadReply::TooLong(257)));
        // A round trip: TCP request -> RTU -> back.
        let tcp = adu(9, 4, &[6, 0, 1, 0, 3]);
        let (h, pdu, _) = parse_adu(&tcp).unwrap().unwrap();
        assert_eq!(from_rtu(h.transaction, &to_rtu(h.unit, pdu)).unwrap(), tcp);
    }

    #[test]
    fn exceptions() {
        assert_eq!(
            exception(0x0102, 5, 3, GATEWAY_TARGET_FAILED),
            [1, 2, 0, 0, 0, 3, 5, 0x83, 0x0B]
        );
        assert_eq!(
            exception(0, 1, 0x10, GATEWAY_PATH_UNAVAILABLE)[7..],
            [0x90, 0x0A]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_adu_any_input(buf in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(Some((h, pdu, n))) = parse_adu(&buf) {
                prop_assert!(n <= buf.len());
                prop_assert!(n <= MAX_ADU);
                prop_assert_eq!(n, HEADER + pdu.len());
                prop_assert_eq!(usize::from(h.length), pdu.len() + 1);
                // Any prefix says "need more", never something else.
                for cut in 0..n {
                    prop_assert_eq!(parse_adu(&buf[..cut]), Ok(None));
                }
            }
        }

        #[test]
        fn from_rtu_any_input(buf in prop::collection::vec(any::<u8>(), 0..300), t in any::<u16>()) {
            if let Ok(adu) = from_rtu(t, &buf) {
                let (h, pdu, n) = parse_adu(&adu).unwrap().unwrap();
                prop_assert_eq!(n, adu.len());
                prop_assert_eq!(h.transaction, t);
                prop_assert_eq!(to_rtu(h.unit, pdu), buf);
            }
        }
    }
}
