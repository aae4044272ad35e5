//! The exclusive write lock, for request/response exchanges.
//!
//! A client that holds the lock is the only one whose writes go to the
//! device; every other writer waits *before* it reads from its socket, so its
//! data stays in the kernel and nothing is lost. The lock is released when
//! the holder asks, when it disconnects, when it has written nothing for the
//! idle timeout, or when it has held the lock for the maximum hold time.
//! Asking for the lock again while holding it changes nothing: only writes
//! count as activity, and the maximum hold time counts from when it was
//! taken, so a client trickling bytes cannot keep the others off for long.
//!
//! Expiry is checked by whoever asks next (a waiter whose timer ran out, or
//! the holder itself), so no timer task is needed. A holder whose lock
//! expired may not take it again until every client that was waiting at that
//! moment has had its turn: otherwise a client that sends the lock command
//! in a loop would win every race against the waiters it was just made to
//! let through.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use super::ClientId;

/// The holder id of the operator's lock (`serialhub lock`): client ids
/// start at 1, so it is nobody's.
pub(crate) const OPERATOR: ClientId = 0;

/// How the operator's lock shows in status and the log.
pub(crate) const OPERATOR_NAME: &str = "operator (control socket)";

#[derive(Debug)]
struct Holder {
    id: ClientId,
    name: Arc<str>,
    /// Whether the idle and maximum times apply: not to the operator, who
    /// holds the lock until `serialhub unlock`.
    expires: bool,
    /// When it took the lock, for the maximum hold time.
    since: Instant,
    /// Its last write (or when it took the lock), for the idle timeout.
    last_write: Instant,
}

/// A client whose lock expired, and the clients that were waiting then.
#[derive(Debug)]
struct Bar {
    id: ClientId,
    owed: Vec<ClientId>,
}

#[derive(Debug, Default)]
struct State {
    holder: Option<Holder>,
    /// Clients blocked in `enter`, one entry per blocked call.
    waiting: Vec<ClientId>,
    /// Expired holders that must let the listed waiters go first.
    bars: Vec<Bar>,
}

impl State {
    /// A client got through or gave up: it is no longer owed a turn.
    /// Returns whether a bar was lifted.
    fn served(&mut self, id: ClientId) -> bool {
        for bar in &mut self.bars {
            bar.owed.retain(|w| *w != id);
        }
        let before = self.bars.len();
        self.bars.retain(|b| !b.owed.is_empty());
        self.bars.len() != before
    }

    fn barred(&self, id: ClientId) -> bool {
        self.bars.iter().any(|b| b.id == id)
    }
}

#[derive(Debug)]
pub(crate) struct WriteLock {
    state: Mutex<State>,
    /// Woken whenever the lock is released or a bar is lifted.
    released: Notify,
    /// Woken when a client takes the lock, so that [`WriteLock::expire_on_time`]
    /// learns its expiry.
    taken: Notify,
    idle: Duration,
    max: Duration,
    /// Calls that had to wait for another client's lock, for status and
    /// metrics: a high rate says a lock holder is starving the others.
    waits: AtomicU64,
}

/// Removes a blocked call from `waiting` when it returns or is cancelled.
struct Waiting<'a> {
    lock: &'a WriteLock,
    id: ClientId,
    registered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        let mut s = self.lock.state();
        if let Some(i) = s.waiting.iter().position(|w| *w == self.id) {
            s.waiting.swap_remove(i);
        }
        // A cancelled waiter (its client left) is owed nothing any more.
        if s.served(self.id) {
            self.lock.released.notify_waiters();
        }
    }
}

impl WriteLock {
    /// A lock that a holder loses after `idle` without writing, or after
    /// holding it for `max`.
    pub(crate) fn new(idle: Duration, max: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            released: Notify::new(),
            taken: Notify::new(),
            idle,
            max,
            waits: AtomicU64::new(0),
        }
    }

    /// How many calls have had to wait for another client's lock (once per
    /// call, however long it waited).
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When `h` loses the lock; `None` if never, or too far off to represent.
    fn expiry(&self, h: &Holder) -> Option<Instant> {
        if !h.expires {
            return None;
        }
        let idle = h.last_write.checked_add(self.idle);
        let max = h.since.checked_add(self.max);
        match (idle, max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Releases the lock if its holder's time is up, barring the holder
    /// until the clients waiting now have had their turn.
    fn expire(&self, s: &mut State, now: Instant) {
        let Some(cur) = s.holder.as_ref() else { return };
        if self.expiry(cur).is_none_or(|t| now < t) {
            return;
        }
        let held = now.saturating_duration_since(cur.since);
        if cur.since.checked_add(self.max).is_some_and(|t| now >= t) {
            warn!(holder = %cur.name, held = ?held,
                "write lock released: held for the maximum {:?} (--lock-max)", self.max);
        } else {
            info!(holder = %cur.name, "write lock released: idle for {:?}", self.idle);
        }
        let id = cur.id;
        s.holder = None;
        let owed: Vec<ClientId> = s.waiting.iter().copied().filter(|w| *w != id).collect();
        if !owed.is_empty() {
            s.bars.push(Bar { id, owed });
        }
        self.released.notify_waiters();
    }

    /// Releases (and logs) a client's lock when its time is up, not when
    /// somebody next looks, until `stop`. Without it an idle holder's lock
    /// would be released, and logged, only when another client wrote or the
    /// holder left.
    pub(crate) async fn expire_on_time(&self, stop: tokio_util::sync::CancellationToken) {
        loop {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            let next = {
                let mut s = self.state();
                self.expire(&mut s, Instant::now());
                s.holder.as_ref().and_then(|h| self.expiry(h))
            };
            // A write since pushes the expiry later: we wake early, look
            // again and sleep on.
            let until = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = taken => {}
                () = until => {}
            }
        }
    }

    /// `Ok(())` if `id` may write now (taking the lock if `take`), else
    /// `Err` with when to look again (`None`: when woken). A refused caller
    /// is registered as waiting through `waiting`.
    fn try_enter(
        &self,
        id: ClientId,
        take: Option<&Arc<str>>,
        waiting: &mut Waiting<'_>,
    ) -> Result<(), Option<Instant>> {
        let mut s = self.state();
        let now = Instant::now();
        self.expire(&mut s, now);
        let refused = match s.holder.as_ref() {
            Some(cur) if cur.id != id => Some(self.expiry(cur)),
            // The holder asking again changes nothing, its timers included.
            Some(_) => None,
            None if take.is_some() && s.barred(id) => Some(None),
            None => {
                if let Some(name) = take {
                    info!(holder = %name, "write lock taken");
                    self.taken.notify_waiters();
                    s.holder = Some(Holder {
                        id,
                        name: name.clone(),
                        expires: true,
                        since: now,
                        last_write: now,
                    });
                }
                None
            }
        };
        match refused {
            Some(until) => {
                if !waiting.registered {
                    waiting.registered = true;
                    s.waiting.push(id);
                    self.waits.fetch_add(1, Relaxed);
                }
                Err(until)
            }
            None => {
                if s.served(id) {
                    self.released.notify_waiters();
                }
                Ok(())
            }
        }
    }

    async fn enter(&self, id: ClientId, take: Option<&Arc<str>>) {
        // The common case, once per client read: nobody holds the lock and
        // no turns are owed. One look under the mutex, without the waiter
        // registration and the clock reading below (issue 12).
        if take.is_none() {
            let s = self.state();
            if s.holder.is_none() && s.bars.is_empty() {
                return;
            }
        }
        let mut waiting = Waiting {
            lock: self,
            id,
            registered: false,
        };
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.try_enter(id, take, &mut waiting) {
                Ok(()) => return,
                Err(Some(expiry)) => tokio::select! {
                    () = released => {}
                    () = tokio::time::sleep_until(expiry) => {}
                },
                Err(None) => released.await,
            }
        }
    }

    /// Waits until `id` may write: the lock is free or `id` holds it.
    /// Cancel safe.
    pub(crate) async fn wait_turn(&self, id: ClientId) {
        self.enter(id, None).await
    }

    /// Takes the lock for `id`, waiting while another client holds it (or,
    /// if `id`'s own lock just expired, until the clients that were waiting
    /// then have had their turn). Cancel safe.
    pub(crate) async fn acquire(&self, id: ClientId, name: &Arc<str>) {
        self.enter(id, Some(name)).await
    }

    /// Releases the lock if `id` holds it; `why` goes in the log.
    pub(crate) fn release(&self, id: ClientId, why: &str) -> bool {
        let mut s = self.state();
        match s.holder.take_if(|cur| cur.id == id) {
            Some(cur) => {
                info!(holder = %cur.name, "write lock released: {why}");
                self.released.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// The operator takes the lock, with no expiry, until
    /// [`release_any`](Self::release_any): every client's writes wait.
    /// `Ok(false)` if the operator held it already; `Err` with the client
    /// that holds it (the operator never waits for a client).
    pub(crate) fn take_for_operator(&self) -> Result<bool, (ClientId, Arc<str>)> {
        let mut s = self.state();
        let now = Instant::now();
        self.expire(&mut s, now);
        match s.holder.as_ref() {
            Some(cur) if cur.id == OPERATOR => Ok(false),
            Some(cur) => Err((cur.id, cur.name.clone())),
            None => {
                info!(holder = OPERATOR_NAME, "write lock taken");
                s.holder = Some(Holder {
                    id: OPERATOR,
                    name: OPERATOR_NAME.into(),
                    expires: false,
                    since: now,
                    last_write: now,
                });
                Ok(true)
            }
        }
    }

    /// Releases the lock whoever holds it (`serialhub unlock`); returns the
    /// holder it released. Not logged here: the caller, which knows the
    /// port, logs it once.
    pub(crate) fn release_any(&self) -> Option<(ClientId, Arc<str>)> {
        let mut s = self.state();
        self.expire(&mut s, Instant::now());
        let cur = s.holder.take()?;
        self.released.notify_waiters();
        Some((cur.id, cur.name))
    }

    /// Records a write by `id`, restarting its idle timer if it holds the lock.
    pub(crate) fn touch(&self, id: ClientId) {
        let mut s = self.state();
        if let Some(cur) = s.holder.as_mut().filter(|cur| cur.id == id) {
            cur.last_write = Instant::now();
        }
    }

    /// The current holder's name (releasing the lock first if its time is up).
    pub(crate) fn holder(&self) -> Option<Arc<str>> {
        let mut s = self.state();
        self.expire(&mut s, Instant::now());
        s.holder.as_ref().map(|cur| cur.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::pin::{Pin, pin};
    use std::task::Poll;

    use super::*;

    const IDLE: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(60);

    fn lock() -> Arc<WriteLock> {
        Arc::new(WriteLock::new(IDLE, MAX))
    }

    fn name(s: &str) -> Arc<str> {
        s.into()
    }

    #[tokio::test(start_paused = true)]
    async fn others_wait_until_release() {
        let lock = lock();
        lock.acquire(1, &name("a")).await;
        lock.wait_turn(1).await; // the holder itself never waits
        assert_eq!(lock.waits(), 0);
        let l = lock.clone();
        let b = tokio::spawn(async move { l.wait_turn(2).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!b.is_finished());
        assert!(!lock.release(2, "not the holder"));
        assert!(lock.release(1, "asked"));
        b.await.unwrap();
        assert_eq!(lock.holder(), None);
        // One wait, however many times the waiter was woken.
        assert_eq!(lock.waits(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_holder_loses_the_lock() {
        let lock = lock();
        lock.acquire(1, &name("a")).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        lock.touch(1);
        let start = Instant::now();
        lock.acquire(2, &name("b")).await;
        // 5 s after the last write, not after the acquisition.
        assert_eq!(start.elapsed(), IDLE);
        assert_eq!(lock.holder().as_deref(), Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn issue8_repeated_lock_requests_do_not_extend_idle() {
        let lock = lock();
        let start = Instant::now();
        lock.acquire(1, &name("a")).await;
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            lock.acquire(1, &name("a")).await; // holds it: returns at once
        }
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        lock.acquire(2, &name("b")).await;
        // Idle since taking it, whatever it asked for since.
        assert_eq!(start.elapsed(), IDLE);
        assert_eq!(lock.holder().as_deref(), Some("b"));
    }

    /// A holder that writes a byte every 4 s (under the 5 s idle timeout).
    fn trickle(lock: &Arc<WriteLock>, id: ClientId) -> tokio::task::JoinHandle<()> {
        let lock = lock.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(4)).await;
                lock.wait_turn(id).await;
                lock.touch(id);
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn issue8_trickle_writes_hit_lock_max() {
        let lock = lock();
        let start = Instant::now();
        lock.acquire(1, &name("a")).await;
        let writer = trickle(&lock, 1);
        tokio::time::sleep(MAX - Duration::from_secs(1)).await;
        assert_eq!(lock.holder().as_deref(), Some("a"), "lost before lock-max");
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Released at lock-max even though nobody else asked.
        assert_eq!(lock.holder(), None);
        assert!(start.elapsed() > MAX);
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn issue8_waiter_proceeds_after_lock_max() {
        let lock = lock();
        let start = Instant::now();
        lock.acquire(1, &name("a")).await;
        let writer = trickle(&lock, 1);
        lock.wait_turn(2).await;
        assert_eq!(start.elapsed(), MAX);
        // The trickling holder goes on writing, merged with the others.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!writer.is_finished());
        assert_eq!(lock.holder(), None);
        writer.abort();
    }

    /// Polls `f` once.
    async fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
    }

    /// Moves the paused clock on without letting other tasks run, so the
    /// caller is the first to look at the lock afterwards.
    async fn advance_unseen(d: Duration) {
        let _ = poll_once(pin!(tokio::time::advance(d))).await;
    }

    #[tokio::test(start_paused = true)]
    async fn issue8_expired_holder_queues_behind_waiters() {
        let lock = lock();
        lock.acquire(1, &name("a")).await;
        let l = lock.clone();
        let b = tokio::spawn(async move { l.acquire(2, &name("b")).await });
        // The holder writes every 4 s, up to 56 s...
        for _ in 0..14 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            lock.wait_turn(1).await;
            lock.touch(1);
        }
        assert!(!b.is_finished());
        // ...and asks for the lock again at 60 s, before B has looked.
        advance_unseen(Duration::from_secs(4)).await;
        let a = name("a");
        let mut again = pin!(lock.acquire(1, &a));
        assert!(
            poll_once(again.as_mut()).await.is_pending(),
            "expired holder took the lock back ahead of a waiter"
        );
        b.await.unwrap();
        assert_eq!(lock.holder().as_deref(), Some("b"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(poll_once(again.as_mut()).await.is_pending());
        assert!(lock.release(2, "done"));
        again.await;
        assert_eq!(lock.holder().as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn issue8_expired_holder_lets_plain_writers_through_first() {
        let lock = lock();
        lock.acquire(1, &name("a")).await;
        let l = lock.clone();
        let w = tokio::spawn(async move { l.wait_turn(2).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!w.is_finished());
        advance_unseen(IDLE).await;
        let a = name("a");
        let mut again = pin!(lock.acquire(1, &a));
        assert!(
            poll_once(again.as_mut()).await.is_pending(),
            "expired holder took the lock back ahead of a waiting writer"
        );
        w.await.unwrap();
        again.await;
        assert_eq!(lock.holder().as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn issue8_expired_holder_with_no_waiters_takes_it_again() {
        let lock = lock();
        lock.acquire(1, &name("a")).await;
        tokio::time::sleep(IDLE).await;
        assert_eq!(lock.holder(), None);
        let start = Instant::now();
        lock.acquire(1, &name("a")).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(lock.holder().as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn issue8_a_waiter_that_leaves_lifts_the_bar() {
        let lock = lock();
        lock.acquire(1, &name("a")).await;
        let l = lock.clone();
        let w = tokio::spawn(async move { l.acquire(2, &name("b")).await });
        let l = lock.clone();
        let x = tokio::spawn(async move { l.acquire(3, &name("c")).await });
        tokio::time::sleep(IDLE).await;
        // One of the two takes the lock; the holder asks again and is barred.
        let l = lock.clone();
        let again = tokio::spawn(async move { l.acquire(1, &name("a")).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (next, other, next_id) = match lock.holder().as_deref() {
            Some("b") => (w, x, 2),
            Some("c") => (x, w, 3),
            h => panic!("holder {h:?}"),
        };
        next.await.unwrap();
        // The other waiter gives up (its client left): the bar lifts once
        // the holder it waited for is done.
        other.abort();
        let _ = other.await;
        assert!(lock.release(next_id, "done"));
        tokio::time::timeout(Duration::from_secs(600), again)
            .await
            .expect("the bar was not lifted")
            .unwrap();
        assert_eq!(lock.holder().as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn issue10_operator_lock_never_expires_and_holds_writers() {
        let lock = lock();
        assert_eq!(lock.take_for_operator(), Ok(true));
        assert_eq!(lock.take_for_operator(), Ok(false), "taking it again");
        let l = lock.clone();
        let w = tokio::spawn(async move { l.wait_turn(1).await });
        let l = lock.clone();
        let a = tokio::spawn(async move { l.acquire(2, &name("b")).await });
        tokio::time::sleep(MAX * 10).await;
        assert!(!w.is_finished() && !a.is_finished());
        assert_eq!(lock.holder().as_deref(), Some(OPERATOR_NAME));
        assert_eq!(lock.release_any(), Some((OPERATOR, OPERATOR_NAME.into())));
        w.await.unwrap();
        a.await.unwrap();
        assert_eq!(lock.holder().as_deref(), Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn issue10_operator_cannot_take_a_clients_lock_but_can_release_it() {
        let lock = lock();
        assert_eq!(lock.release_any(), None, "not held");
        lock.acquire(7, &name("a")).await;
        assert_eq!(lock.take_for_operator(), Err((7, name("a"))));
        let l = lock.clone();
        let w = tokio::spawn(async move { l.wait_turn(8).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!w.is_finished());
        assert_eq!(lock.release_any(), Some((7, name("a"))));
        w.await.unwrap();
        assert_eq!(lock.holder(), None);
        // The released client's own release finds nothing to release.
        assert!(!lock.release(7, "holder asked"));
    }
}
