//! Virtual serial port endpoint: a pseudo-terminal whose slave is linked at
//! a path, for unmodified programs (picocom, minicom, pyserial, anything
//! using termios) to open as if it were the device.
//!
//! One program at a time has the port. This is not enforced: the kernel's
//! exclusive mode (`TIOCEXCL`) stays set after the program closes the slave,
//! so a program closing and at once reopening the port would get `EBUSY`
//! until serialhub noticed; and root ignores it. serialhub watches the
//! master side:
//! while no program has the slave open the master reports a hang-up, and
//! the endpoint is detached from the hub so no data piles up for nobody.
//! When a program opens it, the endpoint attaches as a client; when the
//! program closes it, the endpoint detaches and waits for the next open. (A
//! program that closes and at once reopens the port may be seen as one session
//! or as two: the close can come and go before serialhub looks.) The slave
//! starts in raw mode, so a program that never sets termios still gets
//! bytes unmangled. The link is removed when the endpoint stops, if it still
//! points at this pty; serialhub never replaces a file or a live link that is
//! not its own (see [`crate::link`]).
//!
//! The program's baud rate, stop bits and flow control reach the device
//! under the endpoint's `control=` policy: the master runs in packet mode,
//! which tells of every termios change (see [`super::pty_settings`]). For
//! that the slave has `EXTPROC` set, so its line discipline does no input
//! processing of its own (no line editing or echo, as in raw mode, which
//! is what serial programs use).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::pty::PtyMaster;
use nix::sys::inotify::AddWatchFlags;
use nix::sys::termios;
use tokio::io::AsyncWrite;
use tokio::io::unix::AsyncFd;
use tracing::{Instrument, info, info_span, warn};

use super::EndpointOptions;
use super::accept::Context;
use super::client;
use super::pty_settings::{self as settings, Forwarder, Seen, TIOCPKT_DATA};
use super::slot::Slot;
use super::source::{self, ClientSource};
use crate::hub::{ClientHandle, HubClosed};
use crate::line::LineSettings;
use crate::link::{LinkError, OwnedLink};
use crate::watch::Watch;

/// How often to look for a program opening the port when no inotify watch
/// tells of it: opening is not an event the master can wait for.
const OPEN_POLL: Duration = Duration::from_millis(50);
/// With a watch, the poll is only a fallback (for a lost event): an idle
/// endpoint then wakes once a second, not twenty times.
const OPEN_POLL_WATCHED: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot create pseudo-terminal for pty:{path}: {reason}")]
    Create {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot link pty:{path}: {reason}")]
    Link { path: PathBuf, reason: LinkError },
}

/// One program's session on the master side, shared by the client's reader
/// and writer.
///
/// Each session registers its own duplicate of the master descriptor with
/// the reactor: tokio treats a hang-up as final for a registration, and the
/// master hangs up every time a program closes the port. Once the reactor has
/// seen one, every wait on the registration returns at once, even after a
/// program has reopened the port. So the session ends there (see
/// `SessionFd::hung_up`), and the next program gets a fresh session.
#[derive(Clone, Debug)]
pub(crate) struct Session(Arc<SessionFd>);

#[derive(Debug)]
struct SessionFd {
    fd: AsyncFd<OwnedFd>,
    /// The reactor saw the program hang up, but the port has been reopened
    /// since, so the kernel no longer says so. Waiting for readiness would
    /// return at once forever: end the session instead. Bytes still in the
    /// master stay there for the next session: they may be the last bytes
    /// of the program that closed, or the first of the one that reopened,
    /// and the next session is where the reopening program gets its replies.
    hung_up: AtomicBool,
    /// The program's settings changes.
    forward: Forwarder,
}

/// A pty endpoint: its master and the link to its slave.
#[derive(Debug)]
pub(crate) struct PtyEndpoint {
    master: PtyMaster,
    /// The slave's opens and closes, to tell when a second program opens
    /// the port; `None` if inotify is not available.
    opens: Option<Watch>,
    /// The slave's opens, to wake the wait for the next program.
    appears: Option<Watch>,
    /// Removed when the endpoint is dropped, if it still points at `tty`.
    link: OwnedLink,
    tty: PathBuf,
    /// The slave's line settings, as last seen or set.
    seen: Arc<Seen>,
}

impl PtyEndpoint {
    /// Creates the pty, puts the slave in raw mode with `EXTPROC` and the
    /// device's settings `line`, and the master in packet mode, and links
    /// it at `link` (see [`OwnedLink`] for what may already be there).
    pub(crate) fn create(link: &Path, line: &LineSettings) -> Result<PtyEndpoint, PtyError> {
        let create = |reason: nix::Error| PtyError::Create {
            path: link.to_owned(),
            reason: reason.into(),
        };
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(create)?;
        nix::pty::grantpt(&master).map_err(create)?;
        nix::pty::unlockpt(&master).map_err(create)?;
        let tty = PathBuf::from(nix::pty::ptsname_r(&master).map_err(create)?);
        // Termios lives with the pty, not with an open slave, so setting raw
        // mode once covers every program that opens it later.
        let slave = nix::fcntl::open(
            &tty,
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(create)?;
        let mut t = termios::tcgetattr(&slave).map_err(create)?;
        termios::cfmakeraw(&mut t);
        t.local_flags |= termios::LocalFlags::EXTPROC;
        termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &t).map_err(create)?;
        drop(slave);
        let create_io = |reason| PtyError::Create {
            path: link.to_owned(),
            reason,
        };
        // A program that opens the port reads the device's settings, and
        // changes are told apart from them (not from a pty's 38400 default).
        let seen = Seen::set(&master, line).map_err(create_io)?;
        // After the termios above, whose change must not be reported.
        settings::packet_mode(&master, true).map_err(create_io)?;
        crate::device::set_nonblocking(&master).map_err(create)?;
        // After our own open, which must not count.
        let opens = Watch::new(&tty, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_CLOSE)
            .inspect_err(|e| {
                warn!(port = %link.display(), error = %e,
                    "cannot watch the port for a second program opening it")
            })
            .ok();
        let appears = Watch::new(&tty, AddWatchFlags::IN_OPEN).ok();
        let link = OwnedLink::create(link, &tty).map_err(|reason| PtyError::Link {
            path: link.to_owned(),
            reason,
        })?;
        Ok(PtyEndpoint {
            master,
            opens,
            appears,
            link,
            tty,
            seen: Arc::new(seen),
        })
    }

    pub(crate) fn tty(&self) -> &Path {
        &self.tty
    }

    fn session(&self, options: &EndpointOptions) -> std::io::Result<Session> {
        let fd = nix::unistd::dup(&self.master)?;
        Ok(Session(Arc::new(SessionFd {
            fd: crate::device::register_fd(fd)?,
            hung_up: AtomicBool::new(false),
            forward: Forwarder::new(self.seen.clone(), options.control, options.access),
        })))
    }

    /// Serves one program at a time until shutdown.
    pub(crate) async fn serve(self, options: EndpointOptions, cx: Context) {
        let name = format!("pty:{}", self.link.path().display());
        tokio::select! {
            () = self.sessions(&name, &options, &cx) => {}
            () = watch_opens(self.opens.as_ref(), &self.master, &name) => {}
        }
    }

    async fn sessions(&self, name: &str, options: &EndpointOptions, cx: &Context) {
        let name = name.to_owned();
        let policy = options.slow_reader.unwrap_or(cx.hub.config().slow_reader);
        // While nobody has the port, the slave shows the device's settings.
        let idle = || {
            if let Some(line) = cx.hub.line() {
                settings::sync_idle(&self.master, &self.seen, &line);
            }
        };
        loop {
            tokio::select! {
                () = wait_opened(&self.master, self.appears.as_ref(), idle) => {}
                () = cx.shutdown.cancelled() => return,
            }
            let session = match self.session(options) {
                Ok(s) => s,
                Err(e) => {
                    warn!(port = %name, error = %e, "cannot watch the port; retrying");
                    tokio::time::sleep(OPEN_POLL).await;
                    continue;
                }
            };
            let Ok(place) = cx.clients.clone().acquire_owned().await else {
                return;
            };
            let slot = Slot::new(place, cx.lingering.clone(), true);
            let handle = cx.hub.attach_with(name.clone(), policy);
            let span = info_span!("client", id = handle.id(), peer = %name);
            // No linger: the program has closed the port, nobody is reading.
            let linger = std::time::Duration::ZERO;
            client::run(
                handle,
                session.clone(),
                session,
                options,
                linger,
                slot,
                cx.shutdown.clone(),
            )
            .instrument(span)
            .await;
            // Device data the program did not read is dropped with the
            // session, not handed to the next program that opens the port.
            // (Output only: a program that reopened already may have written.)
            let _ = termios::tcflush(&self.master, termios::FlushArg::TCOFLUSH);
            if cx.shutdown.is_cancelled() {
                return;
            }
            info!(port = %name, "program closed the port; waiting for the next open");
        }
    }
}

/// Warns when the port is open more than once: one program has it and
/// another opens it too, so the two split what the device sends. Nothing
/// can stop that (see the module docs), but it is logged.
///
/// Counts opens minus closes of the slave. A close while the master reports
/// a hang-up sets the count to 0, which keeps it right should the kernel
/// merge or drop events. Two opens so close together that the kernel merges
/// them go unseen. Never returns.
async fn watch_opens(watch: Option<&Watch>, master: &PtyMaster, name: &str) {
    let Some(watch) = watch else {
        return std::future::pending().await;
    };
    let mut open: u32 = 0;
    loop {
        let events = match watch.next().await {
            Ok(events) => events,
            Err(e) => {
                warn!(port = %name, error = %e, "stopped watching the port for a second program");
                return std::future::pending().await;
            }
        };
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                open = u32::from(!poll_now(master).1);
            } else if event.mask.contains(AddWatchFlags::IN_OPEN) {
                open = open.saturating_add(1);
                if open == 2 {
                    warn!(port = %name,
                        "a second program opened the port while another has it; \
                         they split what the device sends");
                }
            } else if event.mask.intersects(AddWatchFlags::IN_CLOSE) {
                open = open.saturating_sub(1);
                if poll_now(master).1 {
                    open = 0;
                }
            }
        }
    }
}

/// Non-blocking readiness of a master: `(readable, hung_up)`.
fn poll_now(fd: &impl AsFd) -> (bool, bool) {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => {
            let r = fds[0].revents().unwrap_or(PollFlags::empty());
            (
                r.contains(PollFlags::POLLIN),
                r.contains(PollFlags::POLLHUP),
            )
        }
        Err(_) => (false, true),
    }
}

/// Returns once a program has the slave open, or has written to it and
/// closed it already (its bytes still wait in the master). `appears`, if
/// there is one, wakes it when the slave is opened; opens seen during the
/// last session only make it look once more. `idle` runs each time it
/// finds nobody there.
async fn wait_opened(master: &PtyMaster, appears: Option<&Watch>, idle: impl Fn()) {
    loop {
        let (readable, hung_up) = poll_now(master);
        if readable || !hung_up {
            return;
        }
        idle();
        match appears {
            Some(w) => tokio::select! {
                r = w.next() => {
                    // A broken watch must not turn this into a busy loop.
                    if r.is_err() {
                        tokio::time::sleep(OPEN_POLL).await;
                    }
                }
                () = tokio::time::sleep(OPEN_POLL_WATCHED) => {}
            },
            None => tokio::time::sleep(OPEN_POLL).await,
        }
    }
}

impl ClientSource for Session {
    async fn readable(&self) -> std::io::Result<()> {
        // A settings change waits until the master is read dry.
        if self.0.forward.draining() {
            return Ok(());
        }
        loop {
            let mut guard = self.0.fd.readable().await?;
            let (readable, hung_up) = poll_now(self.0.fd.get_ref());
            // Hung up now: read what the program left, then end of input.
            if hung_up {
                return Ok(());
            }
            // Hung up before, but reopened since. What waits in the master
            // may be the next program's request: leave it for the next
            // session, or the reply would go to this ending one.
            if guard.ready().is_read_closed() {
                self.0.hung_up.store(true, Relaxed);
                return Ok(());
            }
            if readable {
                return Ok(());
            }
            guard.clear_ready();
        }
    }

    fn queued(&self) -> usize {
        source::queued_bytes(self.0.fd.get_ref())
    }

    /// Reads data, taking the packet-mode status byte off every read and
    /// noting control packets (termios changes) on the way.
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        let forward = &self.0.forward;
        if self.0.hung_up.load(Relaxed) {
            forward.drained();
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match settings::read_packet(self.0.fd.get_ref(), buf) {
                // Not seen in practice (a data packet carries data), and
                // not the end of input.
                Ok(Some((TIOCPKT_DATA, 0))) => {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok(Some((TIOCPKT_DATA, n))) => {
                    forward.data(n);
                    return Ok(n);
                }
                // A control packet has no data; what follows may.
                Ok(Some((status, _))) => forward.status(status),
                Ok(None) => {
                    forward.drained();
                    return Ok(0);
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    forward.drained();
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                // The program closed the slave: end of this session's input.
                Err(nix::errno::Errno::EIO) => {
                    forward.drained();
                    return Ok(0);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn settle(&self, handle: &ClientHandle) -> impl Future<Output = Result<(), HubClosed>> + Send {
        self.0.forward.settle(self.0.fd.get_ref(), handle)
    }
}

impl AsyncWrite for Session {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.fd.poll_write_ready(cx))?;
            // Read before `try_io`, which forgets it on `WouldBlock`.
            let closed = guard.ready().is_write_closed();
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref().as_fd(), buf).map_err(Into::into))
            {
                Ok(r) => return Poll::Ready(r),
                // A hang-up is final for the registration (see `Session`):
                // waiting for room would return at once forever.
                Err(_would_block) if closed => {
                    self.0.hung_up.store(true, Relaxed);
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the program closed the port",
                    )));
                }
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
