//! Registering owned file descriptors with tokio's reactor.

use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Marker for types that own their file descriptor for their whole life, so
/// registering them with the reactor is sound.
pub(crate) trait OwnsFd: AsRawFd {}
impl OwnsFd for serial2::SerialPort {}
impl OwnsFd for nix::pty::PtyMaster {}
impl OwnsFd for std::os::fd::OwnedFd {}

/// Registers `inner` for readable and writable readiness.
pub(crate) fn register<T: OwnsFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    register_for(inner, Interest::READABLE | Interest::WRITABLE).map_err(|(_, e)| e)
}

/// Registers `inner` for `interest` only, so the reactor is not woken by
/// the other kind of readiness. On failure, `inner` comes back with the
/// error.
pub(crate) fn register_for<T: OwnsFd>(
    inner: T,
    interest: Interest,
) -> Result<AsyncFd<T>, (T, std::io::Error)> {
    // SAFETY: `OwnsFd` types own their descriptor: it stays open and the same
    // until the value is dropped, which happens only with the `AsyncFd`.
    unsafe { AsyncFd::register_with_interest(inner, interest) }.map_err(|e| e.into_parts())
}
