//! A reserve of file descriptors, so clients can never starve the device.
//!
//! Every client costs a descriptor. When the process reaches its limit
//! (`ulimit -n`), a device that went away must still be reopened, and the
//! accept loops must not take every descriptor that frees up. The reserve
//! holds a few descriptors (on `/dev/null`) that only the device uses: it
//! closes them just before it opens the tty, and takes them back after.
//! The accept loops accept only while the reserve is full; when they cannot
//! top it up, the process is at its limit, and they refuse clients instead
//! (see [`FdReserve::shed`]).

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Mutex;

/// Descriptors held back for the device. It needs one to reopen; the rest
/// cover accepts that complete on other threads while the reserve is open.
pub(crate) const RESERVE: usize = 8;

#[derive(Debug)]
pub(crate) struct FdReserve {
    spare: Mutex<Vec<File>>,
    want: usize,
}

impl FdReserve {
    /// A reserve of `want` descriptors, filled as far as the limit allows.
    pub(crate) fn new(want: usize) -> FdReserve {
        let r = FdReserve {
            spare: Mutex::new(Vec::with_capacity(want)),
            want,
        };
        r.refill();
        r
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<File>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tops the reserve up. `false` if the process is at its descriptor
    /// limit and the reserve is short.
    pub(crate) fn refill(&self) -> bool {
        fill(&mut self.spare(), self.want)
    }

    /// Runs `open` with the reserve's descriptors free for it, then takes
    /// them back as far as it can.
    pub(crate) fn with_reserve<T>(&self, open: impl FnOnce() -> T) -> T {
        let mut spare = self.spare();
        spare.clear();
        let r = open();
        fill(&mut spare, self.want);
        r
    }

    /// Accepts and closes connections waiting on `listener`, using a reserve
    /// descriptor for each, so that clients the process has no descriptor
    /// for are told (their connection closes) instead of waiting unseen in
    /// the backlog. Returns how many were refused.
    pub(crate) fn shed(&self, listener: BorrowedFd<'_>) -> u64 {
        let mut refused = 0;
        // Bounded, so a flood of connections cannot hold the reserve.
        for _ in 0..64 {
            let accepted = self.with_reserve(|| {
                // SAFETY: accept4 on a valid listening socket, with no
                // address buffers; the result is closed at once below.
                let fd = unsafe {
                    libc::accept4(
                        listener.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    )
                };
                if fd >= 0 {
                    // SAFETY: fd was just returned by accept4 and is ours.
                    unsafe { libc::close(fd) };
                }
                fd >= 0
            });
            if !accepted {
                break;
            }
            refused += 1;
        }
        refused
    }
}

fn fill(spare: &mut Vec<File>, want: usize) -> bool {
    while spare.len() < want {
        match File::open("/dev/null") {
            Ok(f) => spare.push(f),
            Err(_) => return false,
        }
    }
    true
}

/// Whether an accept error means the process or system is out of
/// descriptors (or the memory for one), rather than a failed connection.
pub(crate) fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_frees_descriptors_for_the_opener() {
        let r = FdReserve::new(4);
        assert!(r.refill());
        assert_eq!(r.spare().len(), 4);
        let opened = r.with_reserve(|| {
            assert!(r.spare.try_lock().is_err(), "held while opening");
            File::open("/dev/null").is_ok()
        });
        assert!(opened);
        assert_eq!(r.spare().len(), 4);
    }
}
