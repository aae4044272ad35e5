//! Admission for the control socket and the metrics listener: a bounded
//! number of connections, served at once, where a new connection is never
//! kept waiting by idle ones.
//!
//! Each accepted connection takes a [`Ticket`] from the [`Gate`]. A ticket is
//! *idle* until its connection has sent a whole request, then *busy* while
//! it is answered. When every ticket is taken, the gate sheds the oldest
//! idle one (cancels it: its task closes the connection) to admit the new
//! connection; so a thousand peers that connect and say nothing cost a
//! bounded number of descriptors, and a well-behaved client that connects
//! after them is served at once. Busy connections are never shed; they end
//! by their own deadlines, and while all are busy a new one waits for the
//! first to end (in the kernel's backlog, costing nothing).
//!
//! A connection whose whole request is already waiting when it is accepted
//! (every honest client's, which writes it at once) is admitted busy, never
//! idle ([`request_waiting`]): under a flood of new connections it could
//! otherwise be shed before its task had read it.
//!
//! Shedding is logged once per episode, with a count, by [`Episode`]; an
//! episode ends after a quiet second without shedding.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::episode::{self, Episode};

/// Bytes peeked at in a new connection for its request's end: a control
/// request or a scraper's request head is far shorter.
const PEEK: usize = 4096;
/// Pause after a failed accept (out of descriptors, most likely), so that
/// some close before the next try.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listener's way in: accepts, logs failed accepts once per episode, and
/// admits each connection through the [`Gate`].
#[derive(Debug)]
pub(crate) struct Admission {
    gate: Arc<Gate>,
    failing: Episode,
    /// The end of a request, to see whether a new one has sent it whole.
    end: &'static [u8],
}

impl Admission {
    /// For `name` (in log lines), at most `limit` connections, requests
    /// ending with `end`.
    pub(crate) fn new(name: &'static str, limit: usize, end: &'static [u8]) -> Self {
        Self {
            gate: Gate::new(name, limit),
            failing: Episode::new(name, "retrying", "accepting again after failed accepts")
                .quiet(episode::QUIET),
            end,
        }
    }

    /// The next connection `accept` gives, with its ticket; `None` at
    /// shutdown. `fd` is the connection's socket.
    pub(crate) async fn next<T, A>(
        &mut self,
        mut accept: impl FnMut() -> A,
        fd: for<'a> fn(&'a T) -> BorrowedFd<'a>,
        shutdown: &CancellationToken,
    ) -> Option<(T, Ticket)>
    where
        A: Future<Output = std::io::Result<T>>,
    {
        let conn = loop {
            let accepted = tokio::select! {
                r = accept() => r,
                () = shutdown.cancelled() => return None,
            };
            match accepted {
                Ok(conn) => break conn,
                Err(e) => {
                    self.failing.hit(1, format_args!("accept failed: {e}"));
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        () = shutdown.cancelled() => return None,
                    }
                }
            }
        };
        self.failing.over();
        let sent = request_waiting(fd(&conn), self.end);
        tokio::select! {
            t = self.gate.admit(sent) => Some((conn, t)),
            () = shutdown.cancelled() => None,
        }
    }
}

/// Whether the bytes waiting on the socket `fd` include `end` (a request's
/// end), looking at the first [`PEEK`] without taking them.
pub(crate) fn request_waiting(fd: BorrowedFd<'_>, end: &[u8]) -> bool {
    let mut buf = [0u8; PEEK];
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`; MSG_PEEK
    // leaves them queued for the reader, MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return false; // nothing yet (EAGAIN), or an error its task will see
    };
    buf[..n.min(PEEK)].windows(end.len()).any(|w| w == end)
}

/// The connections of one listener.
#[derive(Debug)]
pub(crate) struct Gate {
    limit: usize,
    state: Mutex<State>,
    /// Told when a ticket is dropped, to wake an admission waiting for one.
    freed: Notify,
}

#[derive(Debug)]
struct State {
    /// Tickets alive.
    open: usize,
    /// Of those, shed and not yet dropped: they will free their place soon,
    /// so one admission sheds one connection, not one per wake-up.
    shedding: usize,
    /// Ticket numbers rise, so the lowest idle one is the oldest.
    next: u64,
    /// Idle tickets, by age, with the token that sheds each.
    idle: BTreeMap<u64, CancellationToken>,
    episode: Episode,
}

impl Gate {
    /// A gate for at most `limit` connections (at least one) of the
    /// listener `name` (for the log).
    pub(crate) fn new(name: &'static str, limit: usize) -> Arc<Gate> {
        Arc::new(Gate {
            limit: limit.max(1),
            state: Mutex::new(State {
                open: 0,
                shedding: 0,
                next: 0,
                idle: BTreeMap::new(),
                episode: Episode::new(
                    name,
                    "closing the oldest idle ones to admit new ones",
                    "no longer closing idle connections",
                )
                .quiet(episode::QUIET),
            }),
            freed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection, shedding the oldest idle one if every
    /// place is taken; `busy` if its request is already in. Waits only while
    /// a shed connection closes, or while all are busy. Cancel-safe:
    /// dropped, it has taken nothing (a connection it shed is shed either
    /// way, and frees its place for the next).
    pub(crate) async fn admit(self: &Arc<Self>, busy: bool) -> Ticket {
        let mut shed = false;
        loop {
            let freed = self.freed.notified();
            {
                let mut s = self.state();
                if s.open < self.limit {
                    if !shed {
                        s.episode.over();
                    }
                    s.open += 1;
                    let id = s.next;
                    s.next += 1;
                    let token = CancellationToken::new();
                    if !busy {
                        s.idle.insert(id, token.clone());
                    }
                    return Ticket {
                        gate: self.clone(),
                        id,
                        shed: token,
                    };
                }
                if s.open - s.shedding >= self.limit
                    && let Some((_, oldest)) = s.idle.pop_first()
                {
                    oldest.cancel();
                    s.shedding += 1;
                    shed = true;
                    let detail = format_args!("{} connections open", self.limit);
                    s.episode.hit(1, detail);
                }
            }
            freed.await;
        }
    }

    /// Connections open now (tickets alive).
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.state().open
    }
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    id: u64,
    shed: CancellationToken,
}

impl Ticket {
    /// Completes when the gate sheds this connection; its task should then
    /// close it. Cancel-safe.
    pub(crate) fn shed(&self) -> WaitForCancellationFuture<'_> {
        self.shed.cancelled()
    }

    /// The connection has sent its request: it may no longer be shed.
    /// `false` if it already was, and should close without acting on it.
    pub(crate) fn busy(&self) -> bool {
        self.gate.state().idle.remove(&self.id);
        !self.shed.is_cancelled()
    }

    /// The connection's request is answered; what is left (writing the
    /// answer, the peer closing) may be shed again, as the oldest it is.
    pub(crate) fn idle(&self) {
        // Checked under the lock the gate sheds under: a ticket shed twice
        // would be counted as shedding for good.
        let mut s = self.gate.state();
        if !self.shed.is_cancelled() {
            s.idle.insert(self.id, self.shed.clone());
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        {
            let mut s = self.gate.state();
            s.idle.remove(&self.id);
            s.open -= 1;
            if self.shed.is_cancelled() {
                s.shedding -= 1;
            }
        }
        self.gate.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `f` completes at once.
    async fn ready<F: std::future::Future>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_full_gate_sheds_the_oldest_idle_connection() {
        let gate = Gate::new("test", 3);
        let a = gate.admit(false).await;
        let b = gate.admit(false).await;
        let c = gate.admit(false).await;
        assert_eq!(gate.open(), 3);
        // `a` is busy: not shed. `b` is the oldest idle one.
        assert!(a.busy());
        let admit = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit(false).await }
        });
        assert!(ready(b.shed()).await.is_some());
        assert!(ready(c.shed()).await.is_none());
        assert!(!b.busy(), "a shed ticket cannot become busy");
        // The new one waits for the shed one to close, no longer.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!admit.is_finished());
        drop(b);
        let d = admit.await.unwrap();
        assert_eq!(gate.open(), 3);
        // Shed once, not once per wake-up.
        assert!(ready(c.shed()).await.is_none());
        drop((a, c, d));
        assert_eq!(gate.open(), 0);
    }

    #[tokio::test]
    async fn a_connection_admitted_busy_is_not_shed() {
        let gate = Gate::new("test", 2);
        let a = gate.admit(true).await;
        let b = gate.admit(false).await;
        let admit = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit(false).await }
        });
        assert!(ready(b.shed()).await.is_some());
        assert!(ready(a.shed()).await.is_none());
        drop(b);
        let _c = admit.await.unwrap();
    }

    #[tokio::test]
    async fn a_waiting_request_is_seen_without_being_taken() {
        use std::os::fd::AsFd;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        assert!(!request_waiting(a.as_fd(), b"\n"));
        b.write_all(b"{\"cmd\"").await.unwrap();
        assert!(!request_waiting(a.as_fd(), b"\n"));
        b.write_all(b":\"status\"}\n").await.unwrap();
        assert!(request_waiting(a.as_fd(), b"\n"));
        let mut got = [0u8; 17];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"{\"cmd\":\"status\"}\n");
    }

    #[tokio::test]
    async fn when_all_are_busy_a_new_connection_waits_for_one_to_end() {
        let gate = Gate::new("test", 2);
        let a = gate.admit(false).await;
        let b = gate.admit(false).await;
        assert!(a.busy() && b.busy());
        assert!(ready(gate.admit(false)).await.is_none());
        assert!(ready(a.shed()).await.is_none());
        // Answered, `b` may be shed again.
        b.idle();
        let admit = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit(false).await }
        });
        assert!(ready(b.shed()).await.is_some());
        drop(b);
        let _c = admit.await.unwrap();
        assert!(ready(a.shed()).await.is_none());
    }
}
