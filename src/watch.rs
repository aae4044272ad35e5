//! A file-system watch (inotify) that a task can await: how serialhub hears
//! of a device appearing, or a program opening a pty endpoint, without
//! polling.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent};
use tokio::io::unix::AsyncFd;

/// One inotify instance watching one path.
#[derive(Debug)]
pub(crate) struct Watch(AsyncFd<Owned>);

#[derive(Debug)]
struct Owned(Inotify);

impl AsRawFd for Owned {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Watch {
    /// Watches `path` for `events`.
    pub(crate) fn new(path: &Path, events: AddWatchFlags) -> std::io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(path, events)?;
        // SAFETY: `Owned` owns its descriptor, which stays open and the same
        // until the `AsyncFd` drops it.
        let fd = unsafe { AsyncFd::register(Owned(inotify)) }.map_err(|e| e.into_parts().1)?;
        Ok(Watch(fd))
    }

    /// The next events, waiting for some. Cancel safe.
    pub(crate) async fn next(&self) -> std::io::Result<Vec<InotifyEvent>> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|w| Ok(w.get_ref().0.read_events()?)) {
                Ok(events) => return events,
                Err(_would_block) => continue,
            }
        }
    }
}
