//! The exclusive write lock, for request/response exchanges.
//!
//! A client that holds the lock is the only one whose writes go to the
//! device; every other writer waits *before* it reads from its socket, so its
//! data stays in the kernel and nothing is lost. The lock is released when
//! the holder asks, when it has written nothing for the idle timeout, or when
//! it disconnects. Expiry is checked by the waiters themselves, so no timer
//! task is needed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::info;

use super::ClientId;

#[derive(Debug)]
struct Holder {
    id: ClientId,
    name: Arc<str>,
    last_write: Instant,
}

#[derive(Debug)]
pub struct WriteLock {
    holder: Mutex<Option<Holder>>,
    released: Notify,
    idle: Duration,
}

impl WriteLock {
    pub fn new(idle: Duration) -> Self {
        Self {
            holder: Mutex::new(None),
            released: Notify::new(),
            idle,
        }
    }

    /// `Ok(())` if `id` may write now (taking the lock if `take`), else the
    /// instant the current holder's lock expires.
    fn try_enter(&self, id: ClientId, take: Option<&Arc<str>>) -> Result<(), Instant> {
        let mut h = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(cur) = h.as_ref().filter(|cur| cur.id != id) {
            let expiry = cur.last_write + self.idle;
            if now < expiry {
                return Err(expiry);
            }
            info!(holder = %cur.name, "write lock released: idle for {:?}", self.idle);
            *h = None;
            self.released.notify_waiters();
        }
        if let Some(name) = take {
            if h.is_none() {
                info!(holder = %name, "write lock taken");
            }
            *h = Some(Holder {
                id,
                name: name.clone(),
                last_write: now,
            });
        }
        Ok(())
    }

    async fn enter(&self, id: ClientId, take: Option<&Arc<str>>) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.try_enter(id, take) {
                Ok(()) => return,
                Err(expiry) => tokio::select! {
                    () = released => {}
                    () = tokio::time::sleep_until(expiry) => {}
                },
            }
        }
    }

    /// Waits until `id` may write: the lock is free or `id` holds it.
    /// Cancel safe.
    pub async fn wait_turn(&self, id: ClientId) {
        self.enter(id, None).await
    }

    /// Takes the lock for `id`, waiting while another client holds it.
    /// Cancel safe.
    pub async fn acquire(&self, id: ClientId, name: &Arc<str>) {
        self.enter(id, Some(name)).await
    }

    /// Releases the lock if `id` holds it; `why` goes in the log.
    pub fn release(&self, id: ClientId, why: &str) -> bool {
        let mut h = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        match h.take_if(|cur| cur.id == id) {
            Some(cur) => {
                info!(holder = %cur.name, "write lock released: {why}");
                self.released.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// Records a write by `id`, restarting its idle timer if it holds the lock.
    pub fn touch(&self, id: ClientId) {
        let mut h = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cur) = h.as_mut().filter(|cur| cur.id == id) {
            cur.last_write = Instant::now();
        }
    }

    /// The current holder's name.
    pub fn holder(&self) -> Option<Arc<str>> {
        let h = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        h.as_ref().map(|cur| cur.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn others_wait_until_release() {
        let lock = Arc::new(WriteLock::new(Duration::from_secs(60)));
        let a: Arc<str> = "a".into();
        lock.acquire(1, &a).await;
        lock.wait_turn(1).await; // the holder itself never waits
        let l = lock.clone();
        let b = tokio::spawn(async move { l.wait_turn(2).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!b.is_finished());
        assert!(!lock.release(2, "not the holder"));
        assert!(lock.release(1, "asked"));
        b.await.unwrap();
        assert_eq!(lock.holder(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_holder_loses_the_lock() {
        let lock = Arc::new(WriteLock::new(Duration::from_secs(5)));
        lock.acquire(1, &"a".into()).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        lock.touch(1);
        let start = Instant::now();
        lock.acquire(2, &"b".into()).await;
        // 5 s after the last write, not after the acquisition.
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(lock.holder().as_deref(), Some("b"));
    }
}
