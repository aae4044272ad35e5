//! What the two halves of a session end ([`FleetReader`] and
//! [`FleetWriter`](super::stream::FleetWriter)) and its driver task share:
//! the [`Session`] behind a mutex that no one holds across an await, and
//! the wake-ups between them.
//!
//! [`FleetReader`]: super::stream::FleetReader

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use tokio::sync::Notify;

use super::session::{Session, SessionStats};

/// What the two halves and the driver share.
pub(crate) struct Shared {
    core: Mutex<Core>,
    /// Wakes the driver: bytes written, window freed, halves dropped.
    pub(super) wake: Notify,
    /// Wakes the reader: bytes arrived, the stream ended or failed.
    pub(super) readable: Notify,
    /// Wakes those waiting for the driver to end ([`finished`](Core::finished)).
    pub(super) done: Notify,
}

pub(crate) struct Core {
    pub(crate) session: Session,
    /// The writer task waiting for room.
    pub(super) write_waker: Option<Waker>,
    /// When the peer was last heard from (a frame, or a ping).
    pub(crate) heard: Instant,
    /// Both halves are gone: the driver finishes and ends.
    pub(crate) dropped: bool,
    /// Messages from the peer that were not frames.
    pub(crate) malformed: u64,
    /// Frames the NATS client did not take (counted; resent as lost).
    pub(crate) unsent: u64,
    /// The driver ended: the session's last frame (a RESET) is out.
    pub(crate) finished: bool,
}

/// A session end's counters, for status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct FleetStats {
    pub(crate) session: SessionStats,
    pub(crate) malformed: u64,
    pub(crate) unsent: u64,
}

impl Core {
    pub(super) fn stats(&self) -> FleetStats {
        FleetStats {
            session: self.session.stats(),
            malformed: self.malformed,
            unsent: self.unsent,
        }
    }
}

impl Shared {
    pub(crate) fn new(session: Session) -> Arc<Self> {
        Arc::new(Self {
            core: Mutex::new(Core {
                session,
                write_waker: None,
                heard: Instant::now(),
                dropped: false,
                malformed: 0,
                unsent: 0,
                finished: false,
            }),
            wake: Notify::new(),
            readable: Notify::new(),
            done: Notify::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // Nothing panics while holding the lock; a poisoned session is
        // still a consistent one.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the halves what changed (the driver calls it after frames or
    /// timers): the reader if it may read, the writer if it may write.
    pub(crate) fn notify_halves(&self, core: &mut Core) {
        let s = &core.session;
        if s.buffered() > 0 || s.at_end() || s.reset_reason().is_some() {
            self.readable.notify_one();
        }
        if (s.room() > 0 || s.reset_reason().is_some())
            && let Some(w) = core.write_waker.take()
        {
            w.wake();
        }
    }

    /// The driver ended.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.done.notify_waiters();
    }

    /// The peer was heard from (a ping on the host end).
    pub(crate) fn heard(&self) {
        self.lock().heard = Instant::now();
    }
}
