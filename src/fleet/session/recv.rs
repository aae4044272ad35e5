//! The receiving half of a session: in-order acceptance, the bounded
//! buffer the reader takes from, and when to acknowledge. Sans-I/O.
//!
//! Only DATA at exactly the expected offset is taken (a duplicate prefix is
//! trimmed); anything else is dropped and acknowledged at once, so the
//! sender goes back to the gap without waiting for its timeout. The buffer
//! never holds more than the window: the credit (`limit`) this side grants
//! is what the reader consumed plus the window. ACKs go out at once after a
//! gap, a duplicate, a probe or a quarter window consumed, and
//! [`ACK_DELAY`] after any other change, so one ACK covers many frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame::Frame;

/// How long a routine acknowledgement waits to cover more frames.
pub(crate) const ACK_DELAY: Duration = Duration::from_millis(20);

/// Counters of the receiving half.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct RecvStats {
    /// DATA frames (or parts of them) that had already arrived.
    pub(crate) duplicates: u64,
    /// DATA frames past the expected offset: something before was lost.
    pub(crate) gaps: u64,
    /// Bytes past the credit this side granted, dropped (a peer that
    /// ignores the credit; the sender resends them once credited).
    pub(crate) over_credit: u64,
}

#[derive(Debug)]
pub(crate) struct Receiver {
    /// Offset of the next byte expected: every byte below arrived.
    expected: u64,
    /// Arrived, not yet read: the bytes just below `expected`.
    buffer: VecDeque<u8>,
    window: usize,
    /// The stream ends after this many bytes.
    close_at: Option<u64>,
    /// Consumed bytes when the last ACK went out.
    acked_consumed: u64,
    ack_now: bool,
    ack_at: Option<Instant>,
    stats: RecvStats,
}

impl Receiver {
    pub(crate) fn new(window: usize) -> Self {
        Self {
            expected: 0,
            buffer: VecDeque::new(),
            window: window.max(1),
            close_at: None,
            acked_consumed: 0,
            ack_now: false,
            ack_at: None,
            stats: RecvStats::default(),
        }
    }

    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// A new window; it never shrinks below what is already granted.
    pub(crate) fn set_window(&mut self, window: usize) {
        self.window = window.max(self.window).max(1);
    }

    fn consumed(&self) -> u64 {
        self.expected - self.buffer.len() as u64
    }

    /// The credit granted to the peer.
    fn limit(&self) -> u64 {
        self.consumed() + self.window as u64
    }

    fn ack_soon(&mut self, now: Instant) {
        self.ack_at.get_or_insert(now + ACK_DELAY);
    }

    /// A DATA frame from the peer.
    pub(crate) fn on_data(&mut self, offset: u64, bytes: &[u8], now: Instant) {
        let end = offset.saturating_add(bytes.len() as u64);
        if offset > self.expected {
            self.stats.gaps += 1;
            self.ack_now = true;
            return;
        }
        if bytes.is_empty() || end <= self.expected {
            if !bytes.is_empty() {
                self.stats.duplicates += 1;
            }
            self.ack_now = true;
            return;
        }
        if self.close_at.is_some_and(|at| end > at) {
            // Past the announced end: a broken peer. Nothing to take.
            return;
        }
        let skip = usize::try_from(self.expected - offset).unwrap_or(usize::MAX);
        if skip > 0 {
            self.stats.duplicates += 1;
            self.ack_now = true;
        }
        let fresh = &bytes[skip..];
        let room = usize::try_from(self.limit() - self.expected).unwrap_or(usize::MAX);
        let take = fresh.len().min(room);
        if take < fresh.len() {
            self.stats.over_credit += (fresh.len() - take) as u64;
            self.ack_now = true;
        }
        self.buffer.extend(&fresh[..take]);
        self.expected += take as u64;
        self.ack_soon(now);
    }

    /// A CLOSE from the peer.
    pub(crate) fn on_close(&mut self, at: u64) {
        if at >= self.expected && self.close_at.is_none() {
            self.close_at = Some(at);
        }
        // Acknowledged at once, received or repeated, so the peer stops
        // resending it.
        self.ack_now = true;
    }

    /// Reads what arrived into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8], now: Instant) -> usize {
        let n = buf.len().min(self.buffer.len());
        let (a, b) = self.buffer.as_slices();
        let first = n.min(a.len());
        buf[..first].copy_from_slice(&a[..first]);
        buf[first..n].copy_from_slice(&b[..n - first]);
        self.buffer.drain(..n);
        if n > 0 {
            if self.consumed() - self.acked_consumed >= (self.window / 4) as u64 {
                self.ack_now = true;
            } else {
                self.ack_soon(now);
            }
        }
        n
    }

    /// Bytes waiting for the reader.
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The stream ended and the reader took every byte.
    pub(crate) fn at_end(&self) -> bool {
        self.buffer.is_empty() && self.close_at == Some(self.expected)
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        if self.ack_now { None } else { self.ack_at }
    }

    /// The ACK due now, if one is.
    pub(crate) fn poll_ack(&mut self, now: Instant) -> Option<Frame> {
        if !(self.ack_now || self.ack_at.is_some_and(|t| t <= now)) {
            return None;
        }
        self.ack_now = false;
        self.ack_at = None;
        self.acked_consumed = self.consumed();
        let closed = self.close_at == Some(self.expected);
        Some(Frame::Ack {
            received: self.expected + u64::from(closed),
            limit: self.limit() + u64::from(closed),
        })
    }

    /// Whether an ACK is owed at once (for the driver's wake-up).
    pub(crate) fn ack_pending(&self) -> bool {
        self.ack_now
    }

    pub(crate) fn stats(&self) -> RecvStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(r: &mut Receiver, now: Instant) -> (u64, u64) {
        match r.poll_ack(now) {
            Some(Frame::Ack { received, limit }) => (received, limit),
            other => panic!("no ack: {other:?}"),
        }
    }

    #[test]
    fn takes_in_order_trims_duplicates_and_acks_gaps_at_once() {
        let t = Instant::now();
        let mut r = Receiver::new(8);
        r.on_data(0, b"abc", t);
        assert_eq!(r.poll_ack(t), None, "routine acks wait");
        assert_eq!(ack(&mut r, t + ACK_DELAY), (3, 8));
        r.on_data(5, b"xy", t);
        assert_eq!(ack(&mut r, t), (3, 8));
        r.on_data(1, b"bcde", t);
        assert_eq!(ack(&mut r, t), (5, 8));
        let mut buf = [0; 10];
        assert_eq!(r.read(&mut buf, t), 5);
        assert_eq!(&buf[..5], b"abcde");
        assert_eq!(r.stats().gaps, 1);
        assert_eq!(r.stats().duplicates, 1);
    }

    #[test]
    fn never_holds_more_than_the_window() {
        let t = Instant::now();
        let mut r = Receiver::new(4);
        r.on_data(0, b"abcdef", t);
        assert_eq!(r.buffered(), 4);
        assert_eq!(r.stats().over_credit, 2);
        assert_eq!(ack(&mut r, t), (4, 4));
        let mut buf = [0; 1];
        assert_eq!(r.read(&mut buf, t), 1);
        assert_eq!(ack(&mut r, t), (4, 5), "a quarter window read: ack at once");
    }

    #[test]
    fn close_is_acked_as_one_more_byte_and_ends_the_reader() {
        let t = Instant::now();
        let mut r = Receiver::new(4);
        r.on_close(2);
        assert_eq!(ack(&mut r, t), (0, 4));
        r.on_data(0, b"ab", t);
        assert!(!r.at_end());
        assert_eq!(ack(&mut r, t + ACK_DELAY), (3, 5));
        let mut buf = [0; 4];
        assert_eq!(r.read(&mut buf, t), 2);
        assert!(r.at_end());
    }
}
