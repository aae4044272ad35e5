//! A session: one reliable, flow-controlled byte stream each way over an
//! unreliable, reordering, duplicating message transport (core NATS),
//! sans-I/O. The I/O around it is in [`crate::fleet::stream`].
//!
//! A [`Session`] is a [`send::Sender`] and a [`recv::Receiver`] and the
//! frames between them ([`frame`]). The caller feeds it frames from the peer
//! ([`handle`](Session::handle)), sends what
//! [`poll_transmit`](Session::poll_transmit) gives until it gives nothing,
//! and calls it again at [`next_timeout`](Session::next_timeout) or after
//! any write, read or frame. Time is always passed in.

pub(crate) mod frame;
pub(crate) mod recv;
pub(crate) mod send;

use std::time::Instant;

use frame::Frame;
use recv::{Receiver, RecvStats};
use send::{SendStats, Sender};

/// The smallest credit window: a few frames at any line rate.
pub(crate) const MIN_WINDOW: usize = 4 * 1024;
/// The largest credit window: what one session may hold in flight.
pub(crate) const MAX_WINDOW: usize = 256 * 1024;

/// The credit window for a line carrying `bytes_per_sec`: half a second of
/// line time, at least [`MIN_WINDOW`] and two frames, at most
/// [`MAX_WINDOW`]. An unpaced line (`None`) gets the most.
pub(crate) fn window_for(bytes_per_sec: Option<u64>, max_frame: usize) -> usize {
    let half_second =
        bytes_per_sec.map_or(MAX_WINDOW, |r| usize::try_from(r / 2).unwrap_or(MAX_WINDOW));
    half_second
        .max(MIN_WINDOW)
        .max(2 * max_frame)
        .min(MAX_WINDOW.max(2 * max_frame))
}

/// Counters of both halves of a session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct SessionStats {
    pub(crate) send: SendStats,
    pub(crate) recv: RecvStats,
}

/// Both directions of one session end.
#[derive(Debug)]
pub(crate) struct Session {
    send: Sender,
    recv: Receiver,
    /// A RESET to send: this end gave up.
    reset_out: Option<String>,
    /// The session is over, and why (either end's RESET).
    reset: Option<String>,
}

impl Session {
    /// `window` is what this end takes in before its reader reads;
    /// `peer_window` is the peer's; frames carry at most `max_frame` bytes.
    /// Both windows are kept within [1, [`MAX_WINDOW`]] whatever a peer
    /// asked for, so a session's buffers stay bounded.
    pub(crate) fn new(window: usize, peer_window: usize, max_frame: usize) -> Self {
        let window = window.clamp(1, MAX_WINDOW);
        let peer_window = peer_window.clamp(1, MAX_WINDOW);
        Self {
            send: Sender::new(peer_window, peer_window as u64, max_frame),
            recv: Receiver::new(window),
            reset_out: None,
            reset: None,
        }
    }

    /// A frame from the peer.
    pub(crate) fn handle(&mut self, frame: Frame, now: Instant) {
        if self.reset.is_some() {
            return;
        }
        match frame {
            Frame::Data { offset, bytes } => self.recv.on_data(offset, &bytes, now),
            Frame::Ack { received, limit } => self.send.on_ack(received, limit, now),
            Frame::Close { at } => self.recv.on_close(at),
            Frame::Reset { reason } => self.reset = Some(reason),
        }
    }

    /// The next frame to send now, if any: ACKs before DATA, so credit
    /// flows while data does.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        if let Some(reason) = self.reset_out.take() {
            return Some(Frame::Reset { reason });
        }
        if self.reset.is_some() {
            return None;
        }
        self.recv
            .poll_ack(now)
            .or_else(|| self.send.poll_transmit(now))
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) again if
    /// nothing else happens.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        if self.reset.is_some() {
            return None;
        }
        match (self.send.next_timeout(), self.recv.next_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The broker connection came back: resend what was in flight.
    pub(crate) fn on_reconnect(&mut self, now: Instant) {
        self.send.on_reconnect(now);
    }

    /// Takes what the send buffer has room for; 0 when full or ended.
    pub(crate) fn write(&mut self, buf: &[u8]) -> usize {
        if self.reset.is_some() {
            return 0;
        }
        self.send.write(buf)
    }

    /// Room for the writer.
    pub(crate) fn room(&self) -> usize {
        self.send.room()
    }

    /// Written bytes the peer's reader has not taken yet.
    pub(crate) fn unread(&self) -> usize {
        self.send.unread()
    }

    /// Ends this end's sending direction after what was written.
    pub(crate) fn close(&mut self) {
        self.send.close();
    }

    /// This end's sending direction was closed.
    pub(crate) fn write_closed(&self) -> bool {
        self.send.closed()
    }

    /// Everything written (and the close, if any) reached the peer.
    pub(crate) fn sent_all(&self) -> bool {
        self.send.finished()
    }

    /// Reads what arrived; 0 when nothing is there (see
    /// [`at_end`](Self::at_end)).
    pub(crate) fn read(&mut self, buf: &mut [u8], now: Instant) -> usize {
        self.recv.read(buf, now)
    }

    /// Bytes the reader may take now.
    pub(crate) fn buffered(&self) -> usize {
        self.recv.buffered()
    }

    /// The peer closed its direction and every byte was read.
    pub(crate) fn at_end(&self) -> bool {
        self.recv.at_end()
    }

    /// Gives up the session; the peer is told with a RESET.
    pub(crate) fn reset(&mut self, reason: &str) {
        if self.reset.is_none() {
            self.reset = Some(reason.to_owned());
            self.reset_out = Some(reason.to_owned());
        }
    }

    /// Why the session is over, if it is.
    pub(crate) fn reset_reason(&self) -> Option<&str> {
        self.reset.as_deref()
    }

    /// The credit window this end grants.
    pub(crate) fn window(&self) -> usize {
        self.recv.window()
    }

    /// Sets the credit window before anything arrived (the host learns
    /// it when the open is answered).
    pub(crate) fn set_window(&mut self, window: usize) {
        self.recv.set_window(window.min(MAX_WINDOW));
    }

    pub(crate) fn stats(&self) -> SessionStats {
        SessionStats {
            send: self.send.stats(),
            recv: self.recv.stats(),
        }
    }
}

#[cfg(test)]
mod tests;
