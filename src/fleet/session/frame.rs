//! The session's wire format: one frame per NATS message, sans-I/O.
//!
//! Every frame starts with a version byte ([`VERSION`]) and a type byte;
//! integers are big-endian:
//!
//! | type | name  | body                                   |
//! |------|-------|----------------------------------------|
//! | 1    | DATA  | `offset: u64`, then the bytes          |
//! | 2    | ACK   | `received: u64`, `limit: u64`          |
//! | 3    | CLOSE | `at: u64`                              |
//! | 4    | RESET | reason, UTF-8 (at most [`MAX_REASON`]) |
//!
//! Decoding never panics: a short, long, unknown or other-version frame is
//! an error, and the caller drops it (the sender resends what mattered).

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// The protocol version every frame carries; a peer speaking another is
/// refused frame by frame rather than misread.
pub(crate) const VERSION: u8 = 1;
/// The largest DATA payload any peer may send: the design's 16 KiB cap
/// (a smaller broker `max_payload` lowers the negotiated size further).
pub(crate) const MAX_DATA: usize = 16 * 1024;
/// Longest RESET reason kept; longer ones are cut, never refused.
pub(crate) const MAX_REASON: usize = 256;
/// Bytes of a DATA frame before its payload.
pub(crate) const DATA_HEADER: usize = 2 + 8;

const DATA: u8 = 1;
const ACK: u8 = 2;
const CLOSE: u8 = 3;
const RESET: u8 = 4;

/// One frame of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Stream bytes starting at `offset`. An empty one is a probe: the
    /// receiver answers it with an ACK at once.
    Data { offset: u64, bytes: Bytes },
    /// Every byte below `received` arrived in order; the sender may send
    /// bytes below `limit`. A CLOSE counts as one byte past its `at`.
    Ack { received: u64, limit: u64 },
    /// The stream ends after `at` bytes.
    Close { at: u64 },
    /// The session is over; nothing more will be sent or taken.
    Reset { reason: String },
}

/// Why bytes are not a frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("frame version {0} (this serialhub speaks {VERSION})")]
    Version(u8),
    #[error("unknown frame type {0}")]
    Type(u8),
    #[error("frame of type {kind} is {len} bytes long")]
    Length { kind: u8, len: usize },
}

impl Frame {
    /// The frame's bytes, ready to publish.
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_u8(VERSION);
        match self {
            Frame::Data { offset, bytes } => {
                out.put_u8(DATA);
                out.put_u64(*offset);
                out.put_slice(bytes);
            }
            Frame::Ack { received, limit } => {
                out.put_u8(ACK);
                out.put_u64(*received);
                out.put_u64(*limit);
            }
            Frame::Close { at } => {
                out.put_u8(CLOSE);
                out.put_u64(*at);
            }
            Frame::Reset { reason } => {
                out.put_u8(RESET);
                out.put_slice(cut(reason).as_bytes());
            }
        }
        out.freeze()
    }

    fn encoded_len(&self) -> usize {
        2 + match self {
            Frame::Data { bytes, .. } => 8 + bytes.len(),
            Frame::Ack { .. } => 16,
            Frame::Close { .. } => 8,
            Frame::Reset { reason } => cut(reason).len(),
        }
    }

    /// Parses one frame; `frame` is a whole NATS message payload. DATA
    /// bytes share `frame`'s memory.
    pub(crate) fn decode(frame: &Bytes) -> Result<Frame, FrameError> {
        let (&version, rest) = frame.split_first().ok_or(FrameError::Empty)?;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let (&kind, body) = rest.split_first().ok_or(FrameError::Empty)?;
        let bad = || FrameError::Length {
            kind,
            len: frame.len(),
        };
        match kind {
            DATA => {
                let offset = u64_at(body, 0).ok_or_else(bad)?;
                if body.len() - 8 > MAX_DATA {
                    return Err(bad());
                }
                Ok(Frame::Data {
                    offset,
                    bytes: frame.slice(DATA_HEADER..),
                })
            }
            ACK if body.len() == 16 => Ok(Frame::Ack {
                received: u64_at(body, 0).ok_or_else(bad)?,
                limit: u64_at(body, 8).ok_or_else(bad)?,
            }),
            CLOSE if body.len() == 8 => Ok(Frame::Close {
                at: u64_at(body, 0).ok_or_else(bad)?,
            }),
            // The reason ends up in errors, logs and status: no control
            // characters (a terminal escape) from a peer.
            RESET if body.len() <= MAX_REASON => Ok(Frame::Reset {
                reason: String::from_utf8_lossy(body)
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect(),
            }),
            ACK | CLOSE | RESET => Err(bad()),
            other => Err(FrameError::Type(other)),
        }
    }
}

fn u64_at(body: &[u8], at: usize) -> Option<u64> {
    let bytes = body.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// `reason` cut to at most [`MAX_REASON`] bytes, on a character boundary.
fn cut(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(
                |(offset, b)| Frame::Data {
                    offset,
                    bytes: Bytes::from(b)
                }
            ),
            (any::<u64>(), any::<u64>())
                .prop_map(|(received, limit)| Frame::Ack { received, limit }),
            any::<u64>().prop_map(|at| Frame::Close { at }),
            "\\PC{0,80}".prop_map(|reason| Frame::Reset { reason }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(f in frame()) {
            prop_assert_eq!(Frame::decode(&f.encode()), Ok(f));
        }

        #[test]
        fn any_bytes_decode_without_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Frame::decode(&Bytes::from(b));
        }

        #[test]
        fn truncated_frames_are_errors(f in frame(), cut in 0usize..17) {
            let bytes = f.encode();
            let short = bytes.slice(..cut.min(bytes.len()));
            match (&f, Frame::decode(&short)) {
                // DATA and RESET bodies are variable: a shorter one may
                // still be a frame, but never a different kind.
                (Frame::Data { .. }, Ok(Frame::Data { .. })) => {}
                (Frame::Reset { .. }, Ok(Frame::Reset { .. })) => {}
                (_, Ok(other)) => prop_assert!(short.len() == bytes.len(), "{other:?}"),
                (_, Err(_)) => {}
            }
        }
    }

    #[test]
    fn oversized_and_foreign_frames_are_refused() {
        let big = Frame::Data {
            offset: 0,
            bytes: Bytes::from(vec![0; MAX_DATA + 1]),
        };
        assert!(Frame::decode(&big.encode()).is_err());
        assert_eq!(
            Frame::decode(&Bytes::from_static(&[2, 1])),
            Err(FrameError::Version(2))
        );
        assert_eq!(
            Frame::decode(&Bytes::from_static(&[1, 9])),
            Err(FrameError::Type(9))
        );
        assert_eq!(Frame::decode(&Bytes::new()), Err(FrameError::Empty));
    }

    #[test]
    fn a_reset_reason_carries_no_control_characters() {
        let f = Frame::Reset {
            reason: "gone\n\u{1b}[2J".into(),
        };
        assert_eq!(
            Frame::decode(&f.encode()),
            Ok(Frame::Reset {
                reason: "gone??[2J".into()
            })
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let f = Frame::Reset {
            reason: "é".repeat(200),
        };
        let Ok(Frame::Reset { reason }) = Frame::decode(&f.encode()) else {
            panic!("not a reset");
        };
        assert!(reason.len() <= MAX_REASON && reason.chars().all(|c| c == 'é'));
    }
}
