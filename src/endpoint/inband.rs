//! In-band lock commands, for endpoints with `lock=inband` (off by default).
//!
//! The byte DLE (0x10) becomes an escape in what the client sends:
//!
//! | client sends | meaning |
//! |---|---|
//! | `DLE L` (0x10 0x4C) | take the exclusive write lock (waits while another client holds it) |
//! | `DLE U` (0x10 0x55) | release the lock |
//! | `DLE DLE` | one literal 0x10 byte for the device |
//!
//! Any other byte after DLE is not a command: both bytes go to the device
//! unchanged, and the client's log notes it once. Sequences may be split
//! across reads.

use bytes::{BufMut, Bytes, BytesMut};

pub(crate) const DLE: u8 = 0x10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Data(Bytes),
    Lock,
    Unlock,
}

#[derive(Debug, Default)]
pub struct InbandParser {
    after_dle: bool,
    /// Unknown escapes seen so far.
    pub(crate) unknown: u64,
    /// Escapes that changed the data: `DLE DLE` made one byte, or a command
    /// was taken out.
    interpreted: u64,
    /// The client sent a byte no text protocol would (a control character
    /// other than CR, LF, tab and DLE, or DEL): its traffic looks binary.
    binary: bool,
    /// The suspicion last handed out by [`news`](Self::news), so that the
    /// client's log says each once.
    told: Option<Suspicion>,
}

/// Why a client's use of the in-band escape deserves a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspicion {
    /// DLE followed by a byte that is no command.
    UnknownEscape,
    /// Binary traffic in which DLE sequences were interpreted: its data was
    /// altered, or a byte pair in it took or released the lock.
    BinaryAltered,
}

impl Suspicion {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Suspicion::UnknownEscape => {
                "lock=inband: client sent DLE (0x10) followed by a byte that is no command; \
                 both went to the device"
            }
            Suspicion::BinaryAltered => {
                "lock=inband on a client whose traffic looks binary: DLE sequences in it were \
                 interpreted (DLE DLE became one 0x10 byte, DLE L or DLE U took or released the \
                 lock), so its data was altered. Turn lock=inband off for binary clients"
            }
        }
    }
}

impl InbandParser {
    /// Splits `input` into data and commands, in order.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut data = BytesMut::with_capacity(input.len());
        for &b in input {
            if !self.after_dle {
                if b == DLE {
                    self.after_dle = true;
                } else {
                    self.binary |= (b < 0x20 && !matches!(b, b'\r' | b'\n' | b'\t')) || b == 0x7F;
                    data.put_u8(b);
                }
                continue;
            }
            self.after_dle = false;
            let command = match b {
                b'L' => Piece::Lock,
                b'U' => Piece::Unlock,
                DLE => {
                    self.interpreted += 1;
                    data.put_u8(DLE);
                    continue;
                }
                other => {
                    self.unknown += 1;
                    data.put_slice(&[DLE, other]);
                    continue;
                }
            };
            self.interpreted += 1;
            if !data.is_empty() {
                out.push(Piece::Data(data.split().freeze()));
            }
            out.push(command);
        }
        if !data.is_empty() {
            out.push(Piece::Data(data.freeze()));
        }
        out
    }

    /// What, if anything, the client's escapes so far give reason to warn
    /// about (once per client: the caller keeps track).
    pub(crate) fn suspicion(&self) -> Option<Suspicion> {
        if self.binary && self.interpreted > 0 {
            Some(Suspicion::BinaryAltered)
        } else if self.unknown > 0 {
            Some(Suspicion::UnknownEscape)
        } else {
            None
        }
    }

    /// [`suspicion`](Self::suspicion), if it changed since it was last
    /// asked here: what the caller warns of, once per client and kind.
    pub(crate) fn news(&mut self) -> Option<Suspicion> {
        let now = self.suspicion()?;
        (self.told.replace(now) != Some(now)).then_some(now)
    }

    /// A DLE left dangling at end of input is sent as data.
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
        std::mem::take(&mut self.after_dle).then(|| Bytes::from_static(&[DLE]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &[u8]) -> Piece {
        Piece::Data(Bytes::copy_from_slice(s))
    }

    #[test]
    fn commands_split_data_in_order() {
        let mut p = InbandParser::default();
        assert_eq!(
            p.feed(b"a\x10Lreq\n\x10Ub"),
            vec![d(b"a"), Piece::Lock, d(b"req\n"), Piece::Unlock, d(b"b")]
        );
    }

    #[test]
    fn escape_split_across_reads_and_literal_dle() {
        let mut p = InbandParser::default();
        assert_eq!(p.feed(b"x\x10"), vec![d(b"x")]);
        assert_eq!(p.feed(b"L"), vec![Piece::Lock]);
        assert_eq!(p.feed(b"\x10\x10y"), vec![d(b"\x10y")]);
        assert_eq!(p.feed(b"\x10"), vec![]);
        assert_eq!(p.finish(), Some(Bytes::from_static(b"\x10")));
    }

    #[test]
    fn binary_traffic_with_interpreted_escapes_is_suspicious() {
        let mut p = InbandParser::default();
        p.feed(b"\x10LAT\r\n\x10U");
        assert_eq!(
            p.suspicion(),
            None,
            "text with commands is what lock=inband is for"
        );
        // A Modbus frame holding 10 10: one byte is lost.
        let mut p = InbandParser::default();
        assert_eq!(
            p.feed(&[0x01, 0x06, 0x10, 0x10, 0x00, 0x01]),
            vec![d(&[0x01, 0x06, 0x10, 0x00, 0x01])]
        );
        assert_eq!(p.suspicion(), Some(Suspicion::BinaryAltered));
        // Binary data with no DLE in it is left alone, and not suspected.
        let mut p = InbandParser::default();
        p.feed(&[0x01, 0x03, 0x00, 0x00]);
        assert_eq!(p.suspicion(), None);
    }

    #[test]
    fn unknown_escape_passes_through_and_is_counted() {
        let mut p = InbandParser::default();
        assert_eq!(p.feed(b"\x10Z"), vec![d(b"\x10Z")]);
        assert_eq!(p.unknown, 1);
    }

    #[test]
    fn each_suspicion_is_news_once() {
        let mut p = InbandParser::default();
        assert_eq!(p.news(), None);
        p.feed(b"\x10Z");
        assert_eq!(p.news(), Some(Suspicion::UnknownEscape));
        p.feed(b"\x10Y");
        assert_eq!(p.news(), None, "the same suspicion again");
        p.feed(&[0x01, 0x10, 0x10]);
        assert_eq!(p.news(), Some(Suspicion::BinaryAltered));
        p.feed(&[0x10, 0x10]);
        assert_eq!(p.news(), None);
    }
}
