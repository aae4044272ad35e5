//! A real tty (UART, USB adapter or pseudo-terminal) in raw mode.
//!
//! `serial2` opens the port and programs termios (raw mode, baud, framing,
//! flow control); the file descriptor is then driven non-blocking through
//! tokio's `AsyncFd`, so one task can read while another writes. The port is
//! opened with `TIOCEXCL` so no other (unprivileged) process can open it and
//! steal bytes behind serialhub's back.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::hub::Signal;
use crate::line::{FlowControl, LineSettings, Parity};
use crate::modem::{LineErrors, ModemInputs};

nix::ioctl_read_bad!(tiocoutq, libc::TIOCOUTQ, libc::c_int);
nix::ioctl_none_bad!(tiocexcl, libc::TIOCEXCL);
nix::ioctl_write_ptr_bad!(tiocmbis, libc::TIOCMBIS, libc::c_int);
nix::ioctl_write_ptr_bad!(tiocmbic, libc::TIOCMBIC, libc::c_int);
nix::ioctl_read_bad!(tiocmget, libc::TIOCMGET, libc::c_int);
nix::ioctl_none_bad!(tiocsbrk, libc::TIOCSBRK);
nix::ioctl_read_bad!(tiocgicount, libc::TIOCGICOUNT, SerialCounters);

/// `struct serial_icounter_struct` of <linux/serial.h>.
#[repr(C)]
#[derive(Default)]
struct SerialCounters {
    cts: libc::c_int,
    dsr: libc::c_int,
    rng: libc::c_int,
    dcd: libc::c_int,
    rx: libc::c_int,
    tx: libc::c_int,
    frame: libc::c_int,
    overrun: libc::c_int,
    parity: libc::c_int,
    brk: libc::c_int,
    buf_overrun: libc::c_int,
    reserved: [libc::c_int; 9],
}
nix::ioctl_none_bad!(tioccbrk, libc::TIOCCBRK);

/// A tty could not be opened or configured.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("cannot open device {path}: {reason}{}", access_hint(.reason))]
    Open {
        path: PathBuf,
        reason: std::io::Error,
    },
    /// The path opened but is no terminal (`/dev/null`, a plain file):
    /// termios calls fail on it with ENOTTY.
    #[error(
        "device {0} is not a serial port (it is not a terminal); give a tty such as /dev/ttyUSB0"
    )]
    NotASerialPort(PathBuf),
    #[error("cannot configure device {path} for {line}: {reason}")]
    Configure {
        path: PathBuf,
        line: LineSettings,
        reason: std::io::Error,
    },
}

#[derive(Debug)]
pub(crate) struct Tty {
    path: PathBuf,
    /// Registered for reading only: see [`Room`].
    fd: AsyncFd<serial2::SerialPort>,
    room: Room,
    /// The driver counts its output queue: false for a pseudo-terminal,
    /// which reports 0 whatever it holds, so it is not asked (an ioctl per
    /// write step, issue 12).
    reports_queue: bool,
}

impl TtyError {
    /// Whether the device is simply not there (yet): `--wait-for-device`
    /// would wait for it.
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, TtyError::Open { reason, .. } if reason.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What to do about an open that the permissions refused.
fn access_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        "; to use it, join the group that owns it (usually dialout: \
         sudo usermod -aG dialout $USER), then log in again"
    } else {
        ""
    }
}

impl Tty {
    /// Opens `path` in raw mode with `line` settings.
    pub(crate) fn open(path: &Path, line: &LineSettings) -> Result<Tty, TtyError> {
        let not_a_tty = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOTTY);
        let open_err = |reason: std::io::Error| {
            if not_a_tty(&reason) {
                TtyError::NotASerialPort(path.to_owned())
            } else {
                TtyError::Open {
                    path: path.to_owned(),
                    reason,
                }
            }
        };
        let config_err = |reason: std::io::Error| {
            if not_a_tty(&reason) {
                TtyError::NotASerialPort(path.to_owned())
            } else {
                TtyError::Configure {
                    path: path.to_owned(),
                    line: *line,
                    reason,
                }
            }
        };
        let mut port = serial2::SerialPort::open(path, serial2::KeepSettings).map_err(open_err)?;
        // serial2 may open a file that is no terminal without asking termios.
        if !nix::unistd::isatty(&port).unwrap_or(false) {
            return Err(TtyError::NotASerialPort(path.to_owned()));
        }
        let mut settings = port.get_configuration().map_err(config_err)?;
        apply(&mut settings, line).map_err(config_err)?;
        port.set_configuration(&settings).map_err(config_err)?;
        // Best effort: some drivers refuse exclusivity, which is no reason to
        // refuse to serve the port.
        // SAFETY: TIOCEXCL takes no argument; the fd is open.
        let _ = unsafe { tiocexcl(port.as_raw_fd()) };
        let reports_queue = !is_pty(&port);
        // Taken at open (a reopen runs on the descriptor reserve), so a
        // write never fails for want of a descriptor.
        let room = Room::new(port.as_fd().try_clone_to_owned().map_err(open_err)?);
        // serial2 opens with O_NONBLOCK, as AsyncFd requires.
        let fd = super::fd::register_for(port, Interest::READABLE).map_err(|(_, e)| open_err(e))?;
        Ok(Tty {
            path: path.to_owned(),
            fd,
            room,
            reports_queue,
        })
    }

    /// Whether [`output_queue`](Self::output_queue) means anything: false
    /// for a pseudo-terminal.
    pub(crate) fn reports_output_queue(&self) -> bool {
        self.reports_queue
    }

    /// Waits until a read would not block: data, a hang-up or an error.
    /// Cancel safe; the readiness is kept for the next [`read`](Self::read).
    pub(crate) async fn readable(&self) -> std::io::Result<()> {
        // Dropping the guard without clearing it keeps the readiness.
        self.fd.readable().await.map(drop)
    }

    /// Reads what the tty has. `Ok(0)` means the device hung up.
    ///
    /// A short read has emptied the line discipline's buffer (n_tty hands
    /// over all it holds), and data that comes later wakes the reader
    /// again. So, as tokio's streams do, the readiness is forgotten then,
    /// instead of spending a read that fails with EAGAIN per chunk. Only
    /// the readiness seen before this read is forgotten: data that arrived
    /// meanwhile still counts.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            let read = ready.try_io(|p| {
                nix::unistd::read(p.as_fd(), &mut buf[..]).map_err(std::io::Error::from)
            });
            match read {
                Ok(Ok(n)) => {
                    if n > 0 && n < buf.len() {
                        ready.clear_ready();
                    }
                    return Ok(n);
                }
                Ok(Err(e)) => return Err(e),
                // Would block: try_io forgot the readiness; wait again.
                Err(_) => continue,
            }
        }
    }

    /// Writes some of `buf` to the tty's output queue: at once if the
    /// driver has room, else when it has (see [`Room`]).
    pub(crate) async fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match write_now(self.fd.get_ref(), buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.write_when_room(buf).await?
            }
            n => n?,
        };
        if n == buf.len() {
            // The driver took it all: it has room, nothing to watch for.
            self.room.unwatch();
        }
        Ok(n)
    }

    async fn write_when_room(&self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            if let Some(room) = self.room.watch() {
                return room
                    .async_io(Interest::WRITABLE, |fd| write_now(fd, buf))
                    .await;
            }
            // Not registered (the reactor refused): look again shortly.
            tokio::time::sleep(ROOM_POLL).await;
            match write_now(self.fd.get_ref(), buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                n => return n,
            }
        }
    }

    #[cfg(test)]
    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Changes the tty's line settings. The kernel first waits for its
    /// output queue to drain (`TCSADRAIN`), which on a UART with flow
    /// control stopped can take long, so the call runs off the runtime's
    /// threads. A setting the driver does not take fails the change and the
    /// previous settings are put back.
    pub(crate) async fn set_line(
        &self,
        line: &LineSettings,
        before: &LineSettings,
    ) -> Result<(), TtyError> {
        let config_err = |reason| TtyError::Configure {
            path: self.path.clone(),
            line: *line,
            reason,
        };
        let fd = self
            .fd
            .get_ref()
            .as_fd()
            .try_clone_to_owned()
            .map_err(config_err)?;
        let (line, before) = (*line, *before);
        let set = tokio::task::spawn_blocking(move || {
            // The duplicate shares the tty; settings belong to the tty.
            let mut port = serial2::SerialPort::from(fd);
            let set = |port: &mut serial2::SerialPort, line: &LineSettings| {
                let mut s = port.get_configuration()?;
                apply(&mut s, line)?;
                port.set_configuration(&s)
            };
            let result = set(&mut port, &line);
            if result.is_err() {
                let _ = set(&mut port, &before);
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        set.map_err(config_err)
    }

    /// Raises or lowers a modem output, or starts or ends a break (so the
    /// client, not a fixed `tcsendbreak`, decides how long it lasts). A pty
    /// has no modem lines and fails with `ENOTTY`.
    pub(crate) fn set_signal(&self, signal: Signal, on: bool) -> std::io::Result<()> {
        let fd = self.fd.get_ref().as_raw_fd();
        let bits: libc::c_int = match signal {
            Signal::Dtr => libc::TIOCM_DTR,
            Signal::Rts => libc::TIOCM_RTS,
            Signal::Break => {
                // SAFETY: TIOCSBRK and TIOCCBRK take no argument.
                unsafe { if on { tiocsbrk(fd) } else { tioccbrk(fd) } }?;
                return Ok(());
            }
        };
        // SAFETY: TIOCMBIS/TIOCMBIC read one c_int through the pointer.
        unsafe {
            if on {
                tiocmbis(fd, &bits)
            } else {
                tiocmbic(fd, &bits)
            }
        }?;
        Ok(())
    }

    /// The modem status inputs. A pty has none and fails with `ENOTTY`.
    pub(crate) fn modem_inputs(&self) -> std::io::Result<ModemInputs> {
        let mut bits: libc::c_int = 0;
        // SAFETY: TIOCMGET writes one c_int through the pointer.
        unsafe { tiocmget(self.fd.get_ref().as_raw_fd(), &mut bits) }?;
        Ok(ModemInputs {
            cts: bits & libc::TIOCM_CTS != 0,
            dsr: bits & libc::TIOCM_DSR != 0,
            ri: bits & libc::TIOCM_RI != 0,
            cd: bits & libc::TIOCM_CD != 0,
        })
    }

    /// The driver's counts of received breaks and line errors. A pty keeps
    /// none and fails with `ENOTTY`.
    pub(crate) fn line_errors(&self) -> std::io::Result<LineErrors> {
        let mut c = SerialCounters::default();
        // SAFETY: TIOCGICOUNT fills one serial_icounter_struct.
        unsafe { tiocgicount(self.fd.get_ref().as_raw_fd(), &mut c) }?;
        let n = |v: libc::c_int| u32::try_from(v).unwrap_or(0);
        Ok(LineErrors {
            breaks: n(c.brk),
            framing: n(c.frame),
            parity: n(c.parity),
            overrun: n(c.overrun) + n(c.buf_overrun),
        })
    }

    /// Bytes in the driver's output queue not yet sent on the wire. Drivers
    /// that do not track it (pseudo-terminals) report 0, so they are not
    /// asked.
    pub(crate) fn output_queue(&self) -> std::io::Result<usize> {
        if !self.reports_queue {
            return Ok(0);
        }
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one c_int through the pointer we pass.
        unsafe { tiocoutq(self.fd.get_ref().as_raw_fd(), &mut n) }?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// One non-blocking write.
fn write_now(fd: &impl AsFd, buf: &[u8]) -> std::io::Result<usize> {
    loop {
        match nix::unistd::write(fd.as_fd(), buf) {
            Err(nix::errno::Errno::EINTR) => {}
            n => return n.map_err(std::io::Error::from),
        }
    }
}

/// How often a write the driver holds back is retried where its room
/// cannot be watched (the reactor refused the registration).
const ROOM_POLL: Duration = Duration::from_millis(5);

/// The driver's write room, watched only while the driver holds writes
/// back.
///
/// A tty reports room each time its line (or a pty's reader) takes a few
/// bytes. Watched all the time, that wakes the reactor about a hundred
/// times a second on a paced port, whose writer knows from its pacer when
/// to write and needs no telling (issue 12: two thirds of the wake-ups of
/// a 9600-baud flood). So the tty's own registration is for reading only,
/// and a duplicate of its descriptor is registered for writing when a
/// write is refused, until a write is taken whole.
#[derive(Debug)]
struct Room(Mutex<RoomState>);

#[derive(Debug)]
enum RoomState {
    Idle(OwnedFd),
    Watching(Arc<AsyncFd<OwnedFd>>),
    /// Only while the lock is held, between the two.
    Moving,
}

impl Room {
    fn new(dup: OwnedFd) -> Room {
        Room(Mutex::new(RoomState::Idle(dup)))
    }

    /// The registration that says when the driver has room, registering
    /// it if it is not; `None` if the reactor refuses it.
    fn watch(&self) -> Option<Arc<AsyncFd<OwnedFd>>> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, RoomState::Moving) {
            RoomState::Watching(fd) => {
                *state = RoomState::Watching(fd.clone());
                Some(fd)
            }
            RoomState::Idle(dup) => match super::fd::register_for(dup, Interest::WRITABLE) {
                Ok(fd) => {
                    let fd = Arc::new(fd);
                    *state = RoomState::Watching(fd.clone());
                    Some(fd)
                }
                Err((dup, e)) => {
                    tracing::debug!(error = %e, "cannot watch the device's write room; polling");
                    *state = RoomState::Idle(dup);
                    None
                }
            },
            RoomState::Moving => None,
        }
    }

    /// Stops watching, unless a write is still waiting for room.
    fn unwatch(&self) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *state = match std::mem::replace(&mut *state, RoomState::Moving) {
            RoomState::Watching(fd) => match Arc::try_unwrap(fd) {
                Ok(fd) => RoomState::Idle(fd.into_inner()),
                Err(fd) => RoomState::Watching(fd),
            },
            other => other,
        };
    }

    #[cfg(test)]
    fn watching(&self) -> bool {
        matches!(
            *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            RoomState::Watching(_)
        )
    }
}

/// Linux's Unix98 pty slaves (136-143) and BSD-style ones (3), from the
/// kernel's `devices.txt`, for when `/proc/tty/drivers` cannot be read.
const PTY_MAJORS: [u32; 9] = [3, 136, 137, 138, 139, 140, 141, 142, 143];

/// Whether `fd` is a pseudo-terminal, by its device major number and the
/// drivers the kernel lists as `pty:*` in `/proc/tty/drivers`. Once per open.
fn is_pty(fd: &impl AsFd) -> bool {
    let Ok(st) = nix::sys::stat::fstat(fd.as_fd()) else {
        return false;
    };
    let major = libc::major(st.st_rdev);
    match std::fs::read_to_string("/proc/tty/drivers") {
        Ok(drivers) => pty_majors(&drivers).any(|m| m == major),
        Err(_) => PTY_MAJORS.contains(&major),
    }
}

/// The major numbers of the pty drivers in a `/proc/tty/drivers` listing
/// (`NAME DEVICE MAJOR MINORS TYPE` per line).
fn pty_majors(drivers: &str) -> impl Iterator<Item = u32> + '_ {
    drivers.lines().filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [.., major, _minors, kind] if kind.starts_with("pty:") => major.parse().ok(),
            _ => None,
        }
    })
}

fn apply(s: &mut serial2::Settings, line: &LineSettings) -> std::io::Result<()> {
    s.set_raw();
    // Receive enabled, modem-control lines ignored: a port with no carrier
    // detect wired must still work.
    s.as_termios_mut().c_cflag |= libc::CLOCAL | libc::CREAD;
    s.set_baud_rate(line.baud)?;
    s.set_char_size(match line.data_bits {
        5 => serial2::CharSize::Bits5,
        6 => serial2::CharSize::Bits6,
        7 => serial2::CharSize::Bits7,
        _ => serial2::CharSize::Bits8,
    });
    s.set_parity(match line.parity {
        Parity::None => serial2::Parity::None,
        Parity::Odd => serial2::Parity::Odd,
        Parity::Even => serial2::Parity::Even,
    });
    s.set_stop_bits(if line.stop_bits == 2 {
        serial2::StopBits::Two
    } else {
        serial2::StopBits::One
    });
    s.set_flow_control(match line.flow_control {
        FlowControl::None => serial2::FlowControl::None,
        FlowControl::Rtscts => serial2::FlowControl::RtsCts,
        FlowControl::Xonxoff => serial2::FlowControl::XonXoff,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: the driver's write room is watched only while it holds a
    /// write back, and a held-back write goes out, whole and in order,
    /// when room comes.
    #[tokio::test]
    async fn issue12_write_room_is_watched_only_while_writes_are_held_back() {
        use std::time::Instant;
        let pty = nix::pty::openpty(None, None).unwrap();
        let name = nix::unistd::ttyname(&pty.slave).unwrap();
        let tty = Tty::open(&name, &LineSettings::with_baud(9600)).unwrap();
        tty.write_all(b"hello").await.unwrap();
        assert!(!tty.room.watching(), "a write taken whole watches nothing");
        // Fill the pty until it holds a write back.
        let mut sent = b"hello".to_vec();
        let mut i = 0u8;
        loop {
            let chunk: Vec<u8> = (0..512).map(|k| i.wrapping_add(k as u8)).collect();
            match tokio::time::timeout(Duration::from_millis(200), tty.write(&chunk)).await {
                Ok(n) => sent.extend_from_slice(&chunk[..n.unwrap()]),
                Err(_) => break,
            }
            i = i.wrapping_add(1);
            assert!(sent.len() < 1 << 20, "the pty never filled");
        }
        assert!(tty.room.watching(), "a held-back write watches for room");
        // A reader drains the other end; the next write waits for room.
        let master = pty.master;
        let total = sent.len() + 100;
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 4096];
            while got.len() < total && Instant::now() < deadline {
                use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::from(100u16)).unwrap() == 0 {
                    continue;
                }
                match nix::unistd::read(&master, &mut buf) {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("read: {e}"),
                }
            }
            got
        });
        let tail = [b'!'; 100];
        tokio::time::timeout(Duration::from_secs(10), tty.write_all(&tail))
            .await
            .expect("the held-back write went out when room came")
            .unwrap();
        assert!(
            !tty.room.watching(),
            "room watched after a write taken whole"
        );
        sent.extend_from_slice(&tail);
        assert_eq!(reader.join().unwrap(), sent);
    }

    #[test]
    fn pty_majors_come_from_the_driver_list() {
        let drivers = "/dev/tty             /dev/tty        5       0 system:/dev/tty
/dev/ptmx            /dev/ptmx       5       2 system
serial               /dev/ttyS       4      64 serial
pty_slave            /dev/pts      136 0-1048575 pty:slave
pty_master           /dev/ptm      128 0-1048575 pty:master
usbserial            /dev/ttyUSB   188 0-511 serial
";
        assert_eq!(pty_majors(drivers).collect::<Vec<_>>(), [136, 128]);
        assert_eq!(pty_majors("garbage\n\n").count(), 0);
    }

    /// Issue 12: a pty is recognised, so its (always 0) output queue is
    /// not asked for on every write.
    #[tokio::test]
    async fn issue12_a_pty_does_not_report_its_output_queue() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let name = nix::unistd::ttyname(&pty.slave).unwrap();
        let tty = Tty::open(&name, &LineSettings::with_baud(9600)).unwrap();
        assert!(!tty.reports_output_queue());
        tty.write_all(b"hello").await.unwrap();
        assert_eq!(tty.output_queue().unwrap(), 0);
        // A file that is not a pty is taken to report.
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_pty(&f));
    }
}
