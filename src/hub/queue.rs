//! A client's output queue: device bytes waiting to be written to one client.
//!
//! The queue is bounded in bytes, not chunks, because its purpose is to bound
//! memory and latency. There is one producer (the hub's fan-out) and one
//! consumer (the client's writer). What happens when a push does not fit is
//! the producer's decision, made by the slow-reader policy in `hub`, so the
//! queue offers both a failing `try_push` and a waiting `push`.
//!
//! A queue may hold a [`DirectSink`], the client's socket. When the queue
//! is empty and the consumer is not in the middle of writing a chunk, a push
//! writes straight to the socket without waiting, and queues only what the
//! socket did not take. The client's writer task is then not woken at all,
//! which saves a task switch per chunk and client (ser2net's one-loop
//! model), while a client that falls behind still gets its bounded queue.
//! Order holds because a direct write happens only when nothing is queued
//! or being written.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The chunk does not fit in the remaining capacity.
    Full,
    /// The client has gone; nobody will read the chunk.
    Closed,
}

/// A client's socket, written without waiting (non-blocking).
pub(crate) trait DirectSink: Send + Sync + Debug {
    /// Writes what the socket takes now; `WouldBlock` if it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
    /// The consumer popped a chunk and has not finished writing it.
    writing: bool,
    direct: Option<Arc<dyn DirectSink>>,
}

impl State {
    /// Writes as much of `chunk` as the direct sink takes now, if nothing
    /// is queued or being written; returns the rest (empty when all went).
    fn write_through(&self, chunk: Bytes) -> Bytes {
        let Some(sink) = self.direct.as_ref() else {
            return chunk;
        };
        if self.writing || !self.chunks.is_empty() || chunk.is_empty() {
            return chunk;
        }
        match sink.try_write(&chunk) {
            Ok(n) => chunk.slice(n.min(chunk.len())..),
            // Would block: the writer waits for room. Any other error: the
            // writer meets it too, and ends the client's output as usual.
            Err(_) => chunk,
        }
    }
}

/// Bounded single-producer, single-consumer byte queue.
#[derive(Debug)]
pub(crate) struct ByteQueue {
    capacity: usize,
    state: Mutex<State>,
    /// Wakes the consumer when data arrives or the queue closes.
    readable: Notify,
    /// Wakes a producer waiting in `push` when space frees or the queue closes.
    writable: Notify,
}

impl ByteQueue {
    pub(crate) fn new(capacity: usize) -> Self {
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

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes queued now.
    pub(crate) fn len(&self) -> usize {
        self.lock().bytes
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `chunk` if it fits. An empty queue takes any chunk, so a chunk
    /// larger than the capacity can never wedge a waiting producer.
    pub(crate) fn try_push(&self, chunk: Bytes) -> Result<(), PushError> {
        let mut s = self.lock();
        if s.closed {
            return Err(PushError::Closed);
        }
        let chunk = s.write_through(chunk);
        if chunk.is_empty() {
            return Ok(());
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
    pub(crate) async fn push(&self, chunk: Bytes) -> Result<(), PushError> {
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
    pub(crate) async fn pop(&self) -> Option<Bytes> {
        loop {
            let more = self.readable.notified();
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                if let Some(chunk) = s.chunks.pop_front() {
                    s.bytes -= chunk.len();
                    s.writing = true;
                    drop(s);
                    self.writable.notify_one();
                    return Some(chunk);
                }
            }
            more.await;
        }
    }

    /// The consumer has written the chunk it popped last: pushes may write
    /// through the direct sink again while the queue is empty.
    pub(crate) fn written(&self) {
        self.lock().writing = false;
    }

    /// Lets pushes write straight to `sink` while the queue is empty and
    /// the consumer idle. The consumer must call [`written`](Self::written)
    /// after writing each chunk it pops, and write to the same sink.
    pub(crate) fn write_through_to(&self, sink: Arc<dyn DirectSink>) {
        let mut s = self.lock();
        if !s.closed {
            s.direct = Some(sink);
        }
    }

    /// Discards what the queue holds, leaving it open. Returns the number of
    /// bytes discarded.
    pub(crate) fn clear(&self) -> usize {
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
    pub(crate) fn close(&self) -> usize {
        let mut s = self.lock();
        s.closed = true;
        // The queue no longer holds the client's socket open.
        s.direct = None;
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

    /// A real socket pair: the queue writes to one end, the test reads the
    /// other.
    #[derive(Debug)]
    struct Socket(std::os::unix::net::UnixStream);

    impl DirectSink for Socket {
        fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            use std::io::Write;
            (&self.0).write(buf)
        }
    }

    fn socket_pair() -> (Arc<Socket>, std::os::unix::net::UnixStream) {
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_nonblocking(true).unwrap();
        (Arc::new(Socket(ours)), peer)
    }

    /// Everything the peer can read now.
    fn drain(peer: &std::os::unix::net::UnixStream) -> Vec<u8> {
        use std::io::Read;
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = (&*peer).read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        all
    }

    /// Fills the socket until it takes no more; returns how much it took.
    fn fill(sock: &Socket) -> usize {
        let mut n = 0;
        while let Ok(k @ 1..) = sock.try_write(&[0u8; 4096]) {
            n += k;
        }
        n
    }

    #[tokio::test]
    async fn an_idle_client_is_written_directly() {
        let (sock, peer) = socket_pair();
        let q = ByteQueue::new(8);
        q.write_through_to(sock);
        q.try_push(Bytes::from_static(b"hello")).unwrap();
        assert!(q.is_empty(), "nothing is queued");
        assert_eq!(drain(&peer), b"hello");
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_is_queued_in_order() {
        let (sock, peer) = socket_pair();
        let q = ByteQueue::new(1 << 20);
        q.write_through_to(sock.clone());
        let filled = fill(&sock);
        q.try_push(Bytes::from_static(b"first")).unwrap();
        q.try_push(Bytes::from_static(b"second")).unwrap();
        assert_eq!(q.len(), 11, "a full socket takes nothing; both wait");
        assert_eq!(drain(&peer).len(), filled);
        // Room again, but the queue is not empty: order comes first.
        q.try_push(Bytes::from_static(b"third")).unwrap();
        assert_eq!(q.len(), 16);
        assert!(drain(&peer).is_empty());
        for want in ["first", "second", "third"] {
            assert_eq!(q.pop().await.unwrap(), want);
            q.written();
        }
        q.try_push(Bytes::from_static(b"fourth")).unwrap();
        assert!(q.is_empty());
        assert_eq!(drain(&peer), b"fourth");
    }

    #[tokio::test]
    async fn no_direct_write_while_the_writer_holds_a_chunk() {
        let (sock, peer) = socket_pair();
        let q = ByteQueue::new(1 << 20);
        q.write_through_to(sock.clone());
        fill(&sock);
        q.try_push(Bytes::from_static(b"held")).unwrap();
        let held = q.pop().await.unwrap();
        drain(&peer);
        // The writer has not written `held` yet: a push must wait behind it.
        q.try_push(Bytes::from_static(b"next")).unwrap();
        assert_eq!(q.len(), 4);
        assert!(drain(&peer).is_empty());
        sock.try_write(&held).unwrap();
        q.written();
        assert_eq!(q.pop().await.unwrap(), "next");
        assert_eq!(drain(&peer), b"held");
    }

    #[tokio::test]
    async fn a_closed_queue_writes_nothing_and_lets_the_socket_go() {
        let (sock, peer) = socket_pair();
        let q = ByteQueue::new(8);
        q.write_through_to(sock.clone());
        assert_eq!(Arc::strong_count(&sock), 2);
        q.close();
        assert_eq!(Arc::strong_count(&sock), 1);
        assert_eq!(q.try_push(b(1)), Err(PushError::Closed));
        assert!(drain(&peer).is_empty());
    }

    #[tokio::test]
    async fn a_partial_write_queues_the_rest() {
        let (sock, peer) = socket_pair();
        let q = ByteQueue::new(1 << 22);
        q.write_through_to(sock.clone());
        let chunk = Bytes::from((0..4_000_000u32).map(|i| i as u8).collect::<Vec<_>>());
        q.try_push(chunk.clone()).unwrap();
        let queued = q.len();
        assert!(
            queued > 0 && queued < chunk.len(),
            "the socket took part: {queued} left"
        );
        let mut got = drain(&peer);
        let direct = got.len();
        assert_eq!(direct + queued, chunk.len());
        let rest = q.pop().await.unwrap();
        got.extend_from_slice(&rest);
        assert_eq!(got, chunk);
    }
}
