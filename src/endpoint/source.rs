//! The receiving side of a client connection, whatever its endpoint: a
//! [`ClientSource`] read without blocking (so write budget is taken only
//! once data is ready), why a client's input ended, and the helpers every
//! client loop shares (raw, requests, RFC 2217, Modbus TCP): taking in what
//! the kernel holds at a kick or shutdown, counting what a reset lost, and
//! discarding a read-only client's writes.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;

use tracing::warn;

use crate::hub::{ClientHandle, HubClosed};

/// The receiving half of a client connection, read without blocking so that
/// budget is taken only once data is ready.
pub(crate) trait ClientSource {
    /// Waits until a read may succeed. Cancel safe.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads without waiting; `WouldBlock` if readiness was spurious,
    /// `Ok(0)` at end of input.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// [`try_read`](Self::try_read) into `buf`'s spare capacity, up to
    /// `max` bytes, appending to it. Sources that can read into
    /// uninitialised memory do, so a large read buffer costs no zeroing
    /// when a client sends one byte (issue 12: 64 KiB zeroed per read on
    /// an unpaced device).
    fn try_read_vec(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let start = buf.len();
        buf.resize(start + max, 0);
        let read = self.try_read(&mut buf[start..]);
        buf.truncate(start + *read.as_ref().unwrap_or(&0));
        read
    }
    /// Bytes the kernel holds for reading now (`FIONREAD`).
    fn queued(&self) -> usize;
    /// Reads what the kernel holds now, whatever the reactor has seen of
    /// it: [`try_read`](Self::try_read) answers `WouldBlock` without
    /// reading while the reactor has not yet taken in the readiness of
    /// bytes that `queued` already counts.
    fn read_held(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
    /// Acts on what the source reported besides data (a pty program's
    /// termios change), once the bytes read before it were submitted.
    /// Called after every read and at end of input; most sources report
    /// nothing.
    fn settle(&self, handle: &ClientHandle) -> impl Future<Output = Result<(), HubClosed>> + Send {
        let _ = handle;
        std::future::ready(Ok(()))
    }
}

/// Bytes waiting to be read on `fd` (`FIONREAD`), 0 if unknown.
pub(crate) fn queued_bytes(fd: &impl AsRawFd) -> usize {
    nix::ioctl_read_bad!(fionread, libc::FIONREAD, libc::c_int);
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer.
    match unsafe { fionread(fd.as_raw_fd(), &mut n) } {
        Ok(_) => usize::try_from(n).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Runs `read` (of at most `len` bytes) through the socket's `try_io`. A short read has
/// drained the socket (epoll): like tokio's own `poll_read`, it forgets
/// the readiness then, so the next read waits for new data instead of
/// costing a read that fails with EAGAIN on the way to the device.
/// `try_io` forgets only the readiness seen before this read, so data
/// arriving meanwhile still wakes us.
fn forget_if_short(
    len: usize,
    try_io: impl FnOnce(&mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize>,
    mut read: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut short = 0;
    match try_io(&mut || {
        let n = read()?;
        if n > 0 && n < len {
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(short),
        other => other,
    }
}

macro_rules! stream_source {
    ($t:ty) => {
        impl ClientSource for $t {
            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::readable(self)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                let len = buf.len();
                let try_io = |f: &mut dyn FnMut() -> io::Result<usize>| {
                    self.as_ref().try_io(tokio::io::Interest::READABLE, f)
                };
                forget_if_short(len, try_io, || <$t>::try_read(self, buf))
            }
            fn try_read_vec(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
                use bytes::BufMut;
                buf.reserve(max);
                let try_io = |f: &mut dyn FnMut() -> io::Result<usize>| {
                    self.as_ref().try_io(tokio::io::Interest::READABLE, f)
                };
                forget_if_short(max, try_io, || {
                    <$t>::try_read_buf(self, &mut (&mut *buf).limit(max))
                })
            }
            fn queued(&self) -> usize {
                queued_bytes(self.as_ref())
            }
            fn read_held(&self, buf: &mut [u8]) -> io::Result<usize> {
                use std::os::fd::AsFd;
                nix::unistd::read(self.as_ref().as_fd(), buf).map_err(io::Error::from)
            }
        }
    };
}
stream_source!(tokio::net::tcp::OwnedReadHalf);
stream_source!(tokio::net::unix::OwnedReadHalf);

/// Why a client's input ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The client closed its sending side.
    Closed,
    /// The slow-reader policy disconnected it.
    Kicked,
    Shutdown,
    Hub,
    Error(io::Error),
}

/// [`ClientSource::settle`], with no write budget held: a settings change
/// waits on the device queue, where other clients' bytes go first.
pub(crate) async fn settle(handle: &ClientHandle, source: &impl ClientSource) -> Result<(), End> {
    source.settle(handle).await.map_err(|_| End::Hub)
}

/// Reads what the kernel already holds from the client (`FIONREAD`), at
/// shutdown or a kick. Socket buffers are sized for the line rate, so this
/// is small.
pub(crate) fn read_queued(source: &impl ClientSource) -> Vec<u8> {
    let mut held = vec![0u8; source.queued()];
    let mut got = 0;
    while got < held.len() {
        match source.read_held(&mut held[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    held.truncate(got);
    held
}

/// A read from the client failed, typically on a reset. The kernel returns
/// queued data before the error, so normally nothing is pending; if some is,
/// the kernel discarded it and serialhub can only count and report it.
pub(crate) fn read_failed(
    handle: &ClientHandle,
    source: &impl ClientSource,
    e: io::Error,
) -> io::Error {
    let pending = source.queued();
    if pending > 0 {
        handle.count_lost(pending);
        warn!(error = %e, lost = pending,
            "client connection failed with unread bytes; the kernel discarded them");
    }
    e
}

/// A read-only client's write: counted as discarded, and warned of once.
pub(crate) fn discard(handle: &ClientHandle, n: usize, warned: &mut bool) {
    handle.stats().discarded.fetch_add(n as u64, Relaxed);
    if !std::mem::replace(warned, true) {
        warn!("read-only client wrote to the device; its writes are discarded and counted");
    }
}
