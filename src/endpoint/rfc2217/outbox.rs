//! The RFC 2217 client's answer queue: bounded in bytes, so a client that
//! asks without reading meets its slow-reader policy instead of holding
//! the reader (and the write budget it holds) on its socket.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// Bytes of Telnet answers that may wait for a client to read them. An
/// answer is 3 to 10 bytes and a client reads each before it asks again,
/// so a client past this has sent thousands of requests without reading:
/// a slow reader.
const OUTBOX_BYTES: usize = 16 * 1024;

/// Telnet answers waiting for the writer, bounded in bytes. The reader
/// appends without waiting (under `block` it waits for room, holding no
/// budget); the writer takes all that is there at once.
#[derive(Debug)]
pub(super) struct Outbox {
    buf: Mutex<BytesMut>,
    /// Woken when bytes are added.
    pub(super) filled: Notify,
    /// Woken when the writer takes the bytes.
    pub(super) emptied: Notify,
}

/// The answers did not fit.
#[derive(Debug)]
pub(super) struct Full;

impl Outbox {
    pub(super) fn new() -> Self {
        Self {
            buf: Mutex::new(BytesMut::new()),
            filled: Notify::new(),
            emptied: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BytesMut> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn push(&self, bytes: &[u8]) -> Result<(), Full> {
        let mut buf = self.lock();
        if buf.len() + bytes.len() > OUTBOX_BYTES {
            return Err(Full);
        }
        buf.extend_from_slice(bytes);
        drop(buf);
        self.filled.notify_one();
        Ok(())
    }

    /// Everything queued, if anything is.
    pub(super) fn take(&self) -> Option<Bytes> {
        let mut buf = self.lock();
        if buf.is_empty() {
            return None;
        }
        let out = buf.split().freeze();
        drop(buf);
        self.emptied.notify_one();
        Some(out)
    }
}
