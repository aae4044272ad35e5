//! A client's output queue: device bytes waiting to be written to one client.
//!
//! The queue is bounded in bytes, not chunks, because its purpose is to bound
//! memory and latency. There is one producer (the hub's fan-out) and one
//! consumer (the client's writer). What happens when a push does not fit is
//! the producer's decision, made by the slow-reader policy in `hub`, so the
//! queue offers both a failing `try_push` and a waiting `push`.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The chunk does not fit in the remaining capacity.
    Full,
    /// The client has gone; nobody will read the chunk.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
}

/// Bounded single-producer, single-consumer byte queue.
#[derive(Debug)]
pub struct ByteQueue {
    capacity: usize,
    state: Mutex<State>,
    /// Wakes the consumer when data arrives or the queue closes.
    readable: Notify,
    /// Wakes a producer waiting in `push` when space frees or the queue closes.
    writable: Notify,
}

impl ByteQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            writable: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent
        // (every mutation is a single push/pop plus counter), so recover.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes queued now.
    pub fn len(&self) -> usize {
        self.lock().bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `chunk` if it fits. An empty queue takes any chunk, so a chunk
    /// larger than the capacity can never wedge a waiting producer.
    pub fn try_push(&self, chunk: Bytes) -> Result<(), PushError> {
        let mut s = self.lock();
        if s.closed {
            return Err(PushError::Closed);
        }
        if s.bytes > 0 && s.bytes + chunk.len() > self.capacity {
            return Err(PushError::Full);
        }
        s.bytes += chunk.len();
        s.chunks.push_back(chunk);
        drop(s);
        self.readable.notify_one();
        Ok(())
    }

    /// Queues `chunk`, waiting for space. Fails only if the queue closes.
    ///
    /// Cancel safe: if the future is dropped, the chunk was not queued.
    pub async fn push(&self, chunk: Bytes) -> Result<(), PushError> {
        loop {
            let space = self.writable.notified();
            match self.try_push(chunk.clone()) {
                Err(PushError::Full) => space.await,
                other => return other,
            }
        }
    }

    /// Takes the next chunk, waiting for one. Returns `None` once the queue is
    /// closed; closing discards what was queued.
    ///
    /// Cancel safe: a chunk is removed only when the future completes.
    pub async fn pop(&self) -> Option<Bytes> {
        loop {
            let more = self.readable.notified();
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                if let Some(chunk) = s.chunks.pop_front() {
                    s.bytes -= chunk.len();
                    drop(s);
                    self.writable.notify_one();
                    return Some(chunk);
                }
            }
            more.await;
        }
    }

    /// Discards what the queue holds, leaving it open. Returns the number of
    /// bytes discarded.
    pub fn clear(&self) -> usize {
        let mut s = self.lock();
        let discarded = s.bytes;
        s.chunks.clear();
        s.bytes = 0;
        drop(s);
        self.writable.notify_one();
        discarded
    }

    /// Closes the queue and discards what it holds; wakes both sides.
    /// Returns the number of bytes discarded.
    pub fn close(&self) -> usize {
        let mut s = self.lock();
        s.closed = true;
        let discarded = s.bytes;
        s.chunks.clear();
        s.bytes = 0;
        drop(s);
        self.readable.notify_one();
        self.writable.notify_one();
        discarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn b(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[tokio::test]
    async fn fifo_within_capacity() {
        let q = ByteQueue::new(10);
        q.try_push(Bytes::from_static(b"abc")).unwrap();
        q.try_push(Bytes::from_static(b"defg")).unwrap();
        assert_eq!(q.len(), 7);
        assert_eq!(q.try_push(b(4)), Err(PushError::Full));
        assert_eq!(q.pop().await.unwrap(), "abc");
        assert_eq!(q.pop().await.unwrap(), "defg");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn empty_queue_takes_oversized_chunk() {
        let q = ByteQueue::new(4);
        q.try_push(b(100)).unwrap();
        assert_eq!(q.try_push(b(1)), Err(PushError::Full));
    }

    #[tokio::test]
    async fn push_waits_for_space() {
        let q = Arc::new(ByteQueue::new(4));
        q.try_push(b(4)).unwrap();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(b(3)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!pusher.is_finished());
        assert_eq!(q.pop().await.unwrap().len(), 4);
        pusher.await.unwrap().unwrap();
        assert_eq!(q.len(), 3);
    }

    #[tokio::test]
    async fn close_wakes_both_sides_and_discards() {
        let q = Arc::new(ByteQueue::new(4));
        q.try_push(b(4)).unwrap();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(b(3)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(q.close(), 4);
        assert_eq!(pusher.await.unwrap(), Err(PushError::Closed));
        assert_eq!(q.pop().await, None);
        assert_eq!(q.try_push(b(1)), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn clear_discards_but_stays_open() {
        let q = ByteQueue::new(8);
        q.try_push(b(5)).unwrap();
        assert_eq!(q.clear(), 5);
        assert!(q.is_empty());
        q.try_push(Bytes::from_static(b"ok")).unwrap();
        assert_eq!(q.pop().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn pop_waits_for_data() {
        let q = Arc::new(ByteQueue::new(8));
        let q2 = q.clone();
        let popper = tokio::spawn(async move { q2.pop().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.try_push(Bytes::from_static(b"hi")).unwrap();
        assert_eq!(popper.await.unwrap().unwrap(), "hi");
    }
}
