//! The sending half of a session: byte offsets, the unacknowledged buffer,
//! the peer's credit, and go-back-N resend. Sans-I/O: time is passed in.
//!
//! The writer may write only below the peer's credit (`limit`: what the
//! peer's reader consumed plus its window), so bytes written and not yet
//! read on the other side never exceed the peer's window, and a writer
//! whose peer does not read is held back. Written bytes stay in the buffer
//! until the peer acknowledges them. While the credit is spent, an empty
//! DATA probes for it at every timeout, so a lost window update never
//! stalls the stream. After an RTO with no
//! progress everything unacknowledged is sent again from the peer's
//! `received` (go-back-N; the receiver drops what is not at its expected
//! offset, so the order is kept), the RTO doubling up to [`MAX_RTO`]. A
//! reconnect to the broker resends at once: frames in flight then are
//! likely lost.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::Frame;

/// The first resend timeout: many round trips through one broker, few
/// enough that a lost frame costs little.
pub(crate) const MIN_RTO: Duration = Duration::from_millis(250);
/// The resend timeout never grows past this, so the stream resumes within
/// it after the broker comes back.
pub(crate) const MAX_RTO: Duration = Duration::from_secs(2);

/// Counters of the sending half.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct SendStats {
    /// Bytes sent again after a timeout or a reconnect.
    pub(crate) resent_bytes: u64,
    /// Timeouts and reconnects that resent from the peer's `received`.
    pub(crate) resends: u64,
}

#[derive(Debug)]
pub(crate) struct Sender {
    /// Offset of `unacked[0]`: every byte below it is acknowledged.
    base: u64,
    /// Written and not yet acknowledged, from `base`.
    unacked: VecDeque<u8>,
    /// The peer's window: its credit is what its reader consumed plus
    /// this.
    window: usize,
    /// The next offset to send (go-back-N moves it back to `base`).
    next: u64,
    /// The highest offset ever sent: no true ACK acknowledges more, so
    /// a forged or broken one cannot drop bytes that never left (which
    /// would stall the stream for good: the peer would wait for them).
    sent: u64,
    /// The peer's credit: bytes below it may be sent.
    limit: u64,
    max_frame: usize,
    /// The writer ended its stream after this many bytes.
    close_at: Option<u64>,
    /// The CLOSE went out since the last go-back.
    close_sent: bool,
    /// The peer took the CLOSE.
    close_acked: bool,
    /// A zero-window probe is due (credit spent, nothing in flight).
    probe: bool,
    rto: Duration,
    /// When to go back, while something is unacknowledged or the credit
    /// is spent.
    deadline: Option<Instant>,
    stats: SendStats,
}

impl Sender {
    /// A sender whose writer may hold `window` bytes, whose peer gave
    /// `limit` bytes of credit, sending at most `max_frame` bytes a frame.
    pub(crate) fn new(window: usize, limit: u64, max_frame: usize) -> Self {
        Self {
            base: 0,
            unacked: VecDeque::new(),
            window: window.max(1),
            next: 0,
            sent: 0,
            limit,
            max_frame: max_frame.max(1),
            close_at: None,
            close_sent: false,
            close_acked: false,
            probe: false,
            rto: MIN_RTO,
            deadline: None,
            stats: SendStats::default(),
        }
    }

    fn end(&self) -> u64 {
        self.base + self.unacked.len() as u64
    }

    /// Takes as much of `buf` as the buffer has room for.
    pub(crate) fn write(&mut self, buf: &[u8]) -> usize {
        if self.close_at.is_some() {
            return 0;
        }
        let n = buf.len().min(self.room());
        self.unacked.extend(&buf[..n]);
        n
    }

    /// Room for the writer: the credit left.
    pub(crate) fn room(&self) -> usize {
        if self.close_at.is_some() {
            return 0;
        }
        let credit = usize::try_from(self.limit.saturating_sub(self.end())).unwrap_or(usize::MAX);
        // A peer granting more than its window (it lies, or is broken)
        // never makes this buffer grow past the window.
        credit.min(self.window.saturating_sub(self.unacked.len()))
    }

    /// Written bytes the peer's reader has not taken yet (as far as its
    /// last ACK tells): in this buffer, on their way, or in the peer's.
    pub(crate) fn unread(&self) -> usize {
        let consumed = self.limit.saturating_sub(self.window as u64);
        usize::try_from(self.end().saturating_sub(consumed)).unwrap_or(usize::MAX)
    }

    /// Ends the stream after what was written.
    pub(crate) fn close(&mut self) {
        if self.close_at.is_none() {
            self.close_at = Some(self.end());
        }
    }

    /// The writer ended the stream.
    pub(crate) fn closed(&self) -> bool {
        self.close_at.is_some()
    }

    /// Everything written, and the close, reached the peer.
    pub(crate) fn finished(&self) -> bool {
        self.unacked.is_empty() && (self.close_at.is_none() || self.close_acked)
    }

    /// The peer's ACK.
    pub(crate) fn on_ack(&mut self, received: u64, limit: u64, now: Instant) {
        self.limit = self.limit.max(limit);
        // A CLOSE counts as the byte after `at`.
        if self.close_at.is_some_and(|at| received > at) {
            self.close_acked = true;
        }
        let received = received.min(self.sent);
        if received > self.base {
            let n = usize::try_from(received - self.base).unwrap_or(usize::MAX);
            self.unacked.drain(..n.min(self.unacked.len()));
            self.base = received;
            self.next = self.next.max(self.base);
            self.rto = MIN_RTO;
            self.deadline = None;
        }
        self.probe = false;
        self.arm(now);
    }

    /// The broker connection came back: what was in flight is likely
    /// lost, so go back now.
    pub(crate) fn on_reconnect(&mut self, now: Instant) {
        self.go_back(now);
    }

    fn go_back(&mut self, now: Instant) {
        let in_flight = self.next - self.base;
        if in_flight > 0 || self.close_sent {
            self.stats.resends += 1;
            self.stats.resent_bytes += in_flight;
        } else if self.blocked() {
            self.probe = true;
        }
        self.next = self.base;
        self.close_sent = false;
        self.deadline = None;
        self.arm(now);
    }

    /// Credit spent: the writer waits for the peer's reader.
    fn blocked(&self) -> bool {
        self.close_at.is_none() && self.end() >= self.limit
    }

    /// Something is owed by the peer: arm the resend timer if it is not.
    fn arm(&mut self, now: Instant) {
        let owed = self.next > self.base || self.close_sent && !self.close_acked;
        if owed || self.blocked() {
            self.deadline.get_or_insert(now + self.rto);
        } else {
            self.deadline = None;
        }
    }

    /// When [`poll_transmit`](Self::poll_transmit) next has something to
    /// do without new input.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The next frame to send, if any.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        if self.deadline.is_some_and(|d| d <= now) {
            self.rto = (self.rto * 2).min(MAX_RTO);
            self.go_back(now);
        }
        let end = self.end().min(self.limit);
        if self.next < end {
            let n = usize::try_from(end - self.next)
                .unwrap_or(usize::MAX)
                .min(self.max_frame);
            let from = usize::try_from(self.next - self.base).unwrap_or(usize::MAX);
            let bytes = copy_out(&self.unacked, from, n);
            let offset = self.next;
            self.next += n as u64;
            self.sent = self.sent.max(self.next);
            self.arm(now);
            return Some(Frame::Data { offset, bytes });
        }
        if self.probe {
            self.probe = false;
            self.arm(now);
            return Some(Frame::Data {
                offset: self.next,
                bytes: Bytes::new(),
            });
        }
        if let Some(at) = self.close_at
            && self.next == at
            && !self.close_sent
            && !self.close_acked
        {
            self.close_sent = true;
            self.arm(now);
            return Some(Frame::Close { at });
        }
        // Written while the credit was spent: the probe timer runs.
        self.arm(now);
        None
    }

    pub(crate) fn stats(&self) -> SendStats {
        self.stats
    }
}

/// `n` bytes of `buf` from `from`, copied slice by slice.
fn copy_out(buf: &VecDeque<u8>, from: usize, n: usize) -> Bytes {
    let (a, b) = buf.as_slices();
    let mut out = Vec::with_capacity(n);
    let end = from + n;
    if from < a.len() {
        out.extend_from_slice(&a[from..end.min(a.len())]);
    }
    if end > a.len() {
        out.extend_from_slice(&b[from.saturating_sub(a.len())..end - a.len()]);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(f: Option<Frame>) -> (u64, usize) {
        match f {
            Some(Frame::Data { offset, bytes }) => (offset, bytes.len()),
            other => panic!("not data: {other:?}"),
        }
    }

    #[test]
    fn sends_within_credit_and_holds_the_writer_at_the_window() {
        let now = Instant::now();
        let mut s = Sender::new(4, 4, 3);
        assert_eq!(s.write(&[1; 12]), 4);
        assert_eq!(s.room(), 0);
        assert_eq!(data(s.poll_transmit(now)), (0, 3));
        assert_eq!(data(s.poll_transmit(now)), (3, 1));
        assert_eq!(s.poll_transmit(now), None);
        // All arrived, nothing read yet: no room, all still unread.
        s.on_ack(4, 4, now);
        assert_eq!((s.room(), s.unread()), (0, 4));
        // The reader took 3.
        s.on_ack(4, 7, now);
        assert_eq!((s.room(), s.unread()), (3, 1));
        assert_eq!(s.write(&[1; 12]), 3);
        assert_eq!(data(s.poll_transmit(now)), (4, 3));
        assert_eq!(s.poll_transmit(now), None);
    }

    #[test]
    fn a_peer_granting_too_much_never_grows_the_buffer_past_the_window() {
        let now = Instant::now();
        let mut s = Sender::new(8, 8, 4);
        s.on_ack(0, u64::MAX, now);
        assert_eq!(s.write(&[0; 100]), 8);
        assert_eq!(s.write(&[0; 100]), 0);
    }

    #[test]
    fn an_ack_past_what_was_sent_drops_nothing_unsent() {
        let now = Instant::now();
        let mut s = Sender::new(100, 100, 10);
        s.write(&[7; 50]);
        assert_eq!(data(s.poll_transmit(now)), (0, 10));
        // Forged: "everything written arrived", though 40 bytes never left.
        s.on_ack(50, 150, now);
        assert_eq!(data(s.poll_transmit(now)), (10, 10));
    }

    #[test]
    fn goes_back_after_the_rto_and_doubles_it() {
        let t0 = Instant::now();
        let mut s = Sender::new(100, 100, 50);
        s.write(&[0; 60]);
        assert_eq!(data(s.poll_transmit(t0)), (0, 50));
        assert_eq!(data(s.poll_transmit(t0)), (50, 10));
        assert_eq!(s.next_timeout(), Some(t0 + MIN_RTO));
        let t1 = t0 + MIN_RTO;
        assert_eq!(data(s.poll_transmit(t1)), (0, 50));
        assert_eq!(s.next_timeout(), Some(t1 + MIN_RTO * 2));
        s.on_ack(50, 150, t1);
        assert_eq!(data(s.poll_transmit(t1)), (50, 10));
        assert_eq!(s.stats().resends, 1);
        assert_eq!(s.stats().resent_bytes, 60);
    }

    #[test]
    fn probes_a_spent_window() {
        let t0 = Instant::now();
        let mut s = Sender::new(10, 0, 5);
        assert_eq!(s.write(&[0; 5]), 0);
        assert_eq!(s.poll_transmit(t0), None);
        let t = s.next_timeout().expect("armed while blocked");
        assert_eq!(data(s.poll_transmit(t)), (0, 0));
    }

    #[test]
    fn close_is_sent_after_the_data_and_resent_until_acked() {
        let t0 = Instant::now();
        let mut s = Sender::new(10, 10, 10);
        s.write(b"abc");
        s.close();
        assert_eq!(s.write(b"d"), 0);
        assert_eq!(data(s.poll_transmit(t0)), (0, 3));
        assert_eq!(s.poll_transmit(t0), Some(Frame::Close { at: 3 }));
        s.on_ack(3, 13, t0);
        assert!(!s.finished());
        let t1 = s.next_timeout().expect("close unacked");
        assert_eq!(s.poll_transmit(t1), Some(Frame::Close { at: 3 }));
        s.on_ack(4, 14, t1);
        assert!(s.finished());
        assert_eq!(s.next_timeout(), None);
    }
}
