//! A pty program's line settings, forwarded to the device.
//!
//! The master is in packet mode (`TIOCPKT`) and the slave has `EXTPROC` set,
//! so the kernel tells the master whenever the program changes the slave's
//! termios: the next read returns a one-byte control packet with
//! `TIOCPKT_IOCTL`. Every other read starts with a zero status byte, which
//! [`read_packet`] strips (the data itself is read in place, no copy).
//!
//! On such a packet serialhub reads the slave's termios (through the master)
//! and turns what changed since it last looked into a line-settings change
//! for the device, under the endpoint's `control=` policy, as an RFC 2217
//! client's request would be. The program never waits: its `tcsetattr` has
//! returned long before.
//!
//! Order with the data: the kernel reports the packet *before* data the
//! program wrote earlier but serialhub has not read yet. So the change waits
//! until the master has been read dry (or [`DRAIN_BOUND`] bytes have been
//! read since, more than a pty buffers): every byte written before the
//! change goes to the device before it. Bytes the program writes right
//! after the change may be read in the same sweep and go at the old rate.
//!
//! What a pty carries: the baud rate, stop bits and flow control. The kernel
//! forces 8 data bits and no parity on every pty, so those never change here
//! and the device keeps its own (glibc's `tcsetattr` reports `EINVAL` to a
//! program that asks for parity or 6 or 7 data bits; the rest of the call
//! still applies). A pty has no modem lines: `TIOCMSET` and friends fail in
//! the program itself. B0 (hang up) is not a baud rate and is ignored.
//!
//! Only fields that changed are forwarded, not the whole termios: after a
//! program merely set raw mode, nothing is sent, whatever speed the slave
//! happened to show. While no program has the port, the endpoint keeps the
//! slave's termios at the device's settings ([`sync_idle`]), so a program
//! that opens it reads the real port's settings, and one that asks for what
//! the slave already shows (pyserial then skips `tcsetattr`) gets it.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use tracing::{debug, info, warn};

use super::Access;
use crate::hub::{ClientHandle, ControlPolicy, HubClosed};
use crate::line::{FlowControl, LineSettings};

nix::ioctl_read_bad!(tcgets2, libc::TCGETS2, libc::termios2);
nix::ioctl_write_ptr_bad!(tcsets2, libc::TCSETS2, libc::termios2);
nix::ioctl_write_ptr_bad!(tiocpkt, libc::TIOCPKT, libc::c_int);

/// Packet-mode status bits (`<asm-generic/ioctls.h>`; not in `libc`).
pub(super) const TIOCPKT_DATA: u8 = 0;
const TIOCPKT_IOCTL: u8 = 0x40;

/// A change is applied at the latest after this many bytes were read since
/// its packet, should the master never run dry (a program that floods).
/// Everything written before the change has been read by then: a Linux pty
/// buffers under 12 KiB from slave to master (4 KiB line discipline, 8 KiB
/// flip buffers).
pub(super) const DRAIN_BOUND: usize = 32 * 1024;

/// Turns packet mode on or off on a master. Turning it on clears any status
/// not yet read.
pub(super) fn packet_mode(master: &impl AsRawFd, on: bool) -> io::Result<()> {
    let on = libc::c_int::from(on);
    // SAFETY: TIOCPKT reads one c_int through the pointer.
    unsafe { tiocpkt(master.as_raw_fd(), &on) }?;
    Ok(())
}

/// The slave's termios, read through the master (on Linux, termios ioctls
/// on a pty master act on its slave).
pub(super) fn get(master: &impl AsRawFd) -> io::Result<libc::termios2> {
    // SAFETY: termios2 is plain data; TCGETS2 fills it.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    unsafe { tcgets2(master.as_raw_fd(), &mut t) }?;
    Ok(t)
}

/// Sets the slave's termios through the master. The raw ioctl, not
/// `tcsetattr`: glibc's wrapper fails with `EINVAL` when the kernel drops
/// parity on a pty, though it applied the rest.
pub(super) fn set(master: &impl AsRawFd, t: &libc::termios2) -> io::Result<()> {
    // SAFETY: TCSETS2 reads one termios2 through the pointer.
    unsafe { tcsets2(master.as_raw_fd(), t) }?;
    Ok(())
}

/// Reads one packet into `buf`: `Some((status, n))`, with `n` data bytes
/// in `buf` when `status` is [`TIOCPKT_DATA`], none otherwise; `None` at
/// end of file. The status byte goes to its own buffer, so data lands in
/// place. `buf` must not be empty (the kernel would return a bare status).
pub(super) fn read_packet(master: &impl AsFd, buf: &mut [u8]) -> nix::Result<Option<(u8, usize)>> {
    let mut status = [0u8; 1];
    let iov = [
        libc::iovec {
            iov_base: status.as_mut_ptr().cast(),
            iov_len: 1,
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ];
    // SAFETY: both iovecs point at live, writable buffers of their length.
    // (nix's `readv` needs its `uio` feature, which nothing else uses.)
    let n = unsafe { libc::readv(master.as_fd().as_raw_fd(), iov.as_ptr(), 2) };
    let n = usize::try_from(n).map_err(|_| nix::errno::Errno::last())?;
    Ok((n > 0).then(|| (status[0], n - 1)))
}

/// The line settings a pty can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PtyLine {
    baud: u32,
    stop_bits: u8,
    flow_control: FlowControl,
}

impl PtyLine {
    pub(super) fn of(line: &LineSettings) -> PtyLine {
        PtyLine {
            baud: line.baud,
            stop_bits: line.stop_bits,
            flow_control: line.flow_control,
        }
    }

    /// What `t` says; the speed B0 (hang up) keeps `before`'s baud.
    pub(super) fn from_termios(t: &libc::termios2, before: &PtyLine) -> PtyLine {
        let flow_control = if t.c_cflag & libc::CRTSCTS != 0 {
            FlowControl::Rtscts
        } else if t.c_iflag & (libc::IXON | libc::IXOFF) != 0 {
            FlowControl::Xonxoff
        } else {
            FlowControl::None
        };
        PtyLine {
            baud: match t.c_ospeed {
                0 => before.baud,
                b => b,
            },
            stop_bits: if t.c_cflag & libc::CSTOPB != 0 { 2 } else { 1 },
            flow_control,
        }
    }

    /// Writes these settings into `t`, leaving its other flags alone.
    fn to_termios(self, t: &mut libc::termios2) {
        t.c_cflag &= !(libc::CBAUD | libc::CIBAUD);
        t.c_cflag |= libc::BOTHER | (libc::BOTHER << libc::IBSHIFT);
        (t.c_ispeed, t.c_ospeed) = (self.baud, self.baud);
        match self.stop_bits {
            2 => t.c_cflag |= libc::CSTOPB,
            _ => t.c_cflag &= !libc::CSTOPB,
        }
        t.c_cflag &= !libc::CRTSCTS;
        t.c_iflag &= !(libc::IXON | libc::IXOFF);
        match self.flow_control {
            FlowControl::None => {}
            FlowControl::Rtscts => t.c_cflag |= libc::CRTSCTS,
            FlowControl::Xonxoff => t.c_iflag |= libc::IXON | libc::IXOFF,
        }
    }

    /// `line` with the fields that differ between `self` and `before`
    /// taken from `self`: only what the program changed.
    pub(super) fn changed(&self, before: &PtyLine, mut line: LineSettings) -> LineSettings {
        if self.baud != before.baud {
            line.baud = self.baud;
        }
        if self.stop_bits != before.stop_bits {
            line.stop_bits = self.stop_bits;
        }
        if self.flow_control != before.flow_control {
            line.flow_control = self.flow_control;
        }
        line
    }
}

/// Puts `EXTPROC` back if the program cleared it (a program that builds
/// its termios from zero does), or later changes would go unreported.
/// Setting it reports one more change, which [`Forwarder`] finds empty.
fn keep_extproc(master: &impl AsRawFd, t: &libc::termios2) -> io::Result<()> {
    if t.c_lflag & libc::EXTPROC != 0 {
        return Ok(());
    }
    let mut t = *t;
    t.c_lflag |= libc::EXTPROC;
    set(master, &t)
}

/// The slave's line settings as serialhub last saw or set them, shared by
/// the endpoint and its sessions: termios lives with the pty, across
/// programs.
#[derive(Debug)]
pub(super) struct Seen(Mutex<PtyLine>);

impl Seen {
    /// Shows `line` on the slave (before packet mode is on).
    pub(super) fn set(master: &impl AsRawFd, line: &LineSettings) -> io::Result<Seen> {
        let want = PtyLine::of(line);
        let mut t = get(master)?;
        want.to_termios(&mut t);
        set(master, &t)?;
        Ok(Seen(Mutex::new(PtyLine::from_termios(
            &get(master)?,
            &want,
        ))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PtyLine> {
        // Every update is one assignment: a poisoned value is still whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// While no program has the port: shows the device's settings `line` on
/// the slave, if it shows others. Packet mode is off meanwhile, so this
/// change of serialhub's own is not reported back as a program's.
pub(super) fn sync_idle(master: &impl AsRawFd, seen: &Seen, line: &LineSettings) {
    let want = PtyLine::of(line);
    let mut seen = seen.lock();
    if *seen == want {
        return;
    }
    let result = (|| {
        let mut t = get(master)?;
        want.to_termios(&mut t);
        t.c_lflag |= libc::EXTPROC;
        packet_mode(master, false)?;
        let set = set(master, &t);
        packet_mode(master, true)?;
        set?;
        get(master)
    })();
    match result {
        Ok(t) => *seen = PtyLine::from_termios(&t, &want),
        Err(e) => debug!(error = %e, "cannot show the device's settings on the pty"),
    }
}

/// Warnings given once per program.
#[derive(Debug, Default)]
struct Warned {
    denied: AtomicBool,
    refused: AtomicBool,
    limits: AtomicBool,
}

fn first(flag: &AtomicBool) -> bool {
    !flag.swap(true, Relaxed)
}

/// One program's settings changes: noticed by the reader (see
/// [`ClientSource`](super::client::ClientSource)), applied once the bytes
/// before them are in.
#[derive(Debug)]
pub(super) struct Forwarder {
    seen: Arc<Seen>,
    policy: ControlPolicy,
    access: Access,
    /// A change was reported and is not applied yet.
    pending: AtomicBool,
    /// Since the report, a read found the master empty (or the port
    /// closed): every byte written before the change is in.
    drained: AtomicBool,
    /// Data bytes read since the report.
    since: AtomicUsize,
    warned: Warned,
}

impl Forwarder {
    pub(super) fn new(seen: Arc<Seen>, policy: ControlPolicy, access: Access) -> Forwarder {
        Forwarder {
            seen,
            policy,
            access,
            pending: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            since: AtomicUsize::new(0),
            warned: Warned::default(),
        }
    }

    /// A control packet with `status` was read.
    pub(super) fn status(&self, status: u8) {
        if status & TIOCPKT_IOCTL != 0 {
            self.since.store(0, Relaxed);
            self.drained.store(false, Relaxed);
            self.pending.store(true, Relaxed);
        } else if status != TIOCPKT_DATA {
            debug!(status, "pty packet status ignored");
        }
    }

    /// `n` data bytes were read.
    pub(super) fn data(&self, n: usize) {
        if self.pending.load(Relaxed) {
            self.since.fetch_add(n, Relaxed);
        }
    }

    /// A read found nothing more (or the port closed).
    pub(super) fn drained(&self) {
        self.drained.store(true, Relaxed);
    }

    /// A change waits for the master to be read dry: read on without
    /// waiting for readiness.
    pub(super) fn draining(&self) -> bool {
        self.pending.load(Relaxed) && !self.drained.load(Relaxed)
    }

    /// Applies a reported change once the bytes before it are in; does
    /// nothing otherwise.
    pub(super) async fn settle(
        &self,
        master: &impl AsRawFd,
        handle: &ClientHandle,
    ) -> Result<(), HubClosed> {
        let due = self.drained.load(Relaxed) || self.since.load(Relaxed) >= DRAIN_BOUND;
        if !self.pending.load(Relaxed) || !due {
            return Ok(());
        }
        self.pending.store(false, Relaxed);
        let t = match get(master) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "cannot read the program's termios; its settings change is lost");
                return Ok(());
            }
        };
        if let Err(e) = keep_extproc(master, &t) {
            warn!(error = %e, "cannot keep EXTPROC on the pty; later settings changes go unseen");
        }
        let (now, before) = {
            let mut seen = self.seen.lock();
            let now = PtyLine::from_termios(&t, &seen);
            (now, std::mem::replace(&mut *seen, now))
        };
        // Once per program: what it sets that never gets here.
        if first(&self.warned.limits) {
            info!(
                "the program's baud rate, stop bits and flow control reach the device; \
                 a pty carries no parity, no data size other than 8 and no modem lines, \
                 so the program's requests for those fail in the program (EINVAL, ENOTTY)"
            );
        }
        if now == before {
            // Raw mode, echo, timeouts: nothing the device has.
            return Ok(());
        }
        let in_force = handle.hub().line().unwrap_or_default();
        let new = now.changed(&before, in_force);
        if new == in_force {
            return Ok(());
        }
        if let Err(e) = new.validate() {
            self.refused(format!("{new}: {e}"), &in_force);
            return Ok(());
        }
        if let Some(why) = self.denied(handle) {
            if first(&self.warned.denied) {
                warn!(asked = %new, in_force = %in_force,
                    "settings change not applied: {why}; the program's termios now differs \
                     from the device's");
            } else {
                debug!(asked = %new, "settings change not applied: {why}");
            }
            return Ok(());
        }
        let told = handle.change_line(new).await?;
        let answer = told.await.map_err(|_| HubClosed)?;
        if let Some(why) = answer.refused {
            self.refused(format!("the device refused {new}: {why}"), &answer.in_force);
        }
        Ok(())
    }

    fn denied(&self, handle: &ClientHandle) -> Option<String> {
        match self.access {
            Access::ReadOnly => Some("the endpoint is read-only".to_owned()),
            Access::ReadWrite => handle
                .claim_settings(self.policy)
                .err()
                .map(|d| d.to_string()),
        }
    }

    fn refused(&self, why: String, in_force: &LineSettings) {
        if first(&self.warned.refused) {
            warn!(%in_force, "settings change refused: {why}; the program's termios now differs \
                from the device's");
        } else {
            debug!(%in_force, "settings change refused: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn termios() -> libc::termios2 {
        // SAFETY: termios2 is plain data.
        unsafe { std::mem::zeroed() }
    }

    #[test]
    fn termios_round_trips_what_a_pty_carries() {
        let before = PtyLine::of(&LineSettings::default());
        for line in [
            PtyLine {
                baud: 19200,
                stop_bits: 2,
                flow_control: FlowControl::Rtscts,
            },
            PtyLine {
                baud: 250_000,
                stop_bits: 1,
                flow_control: FlowControl::Xonxoff,
            },
            PtyLine {
                baud: 50,
                stop_bits: 1,
                flow_control: FlowControl::None,
            },
        ] {
            let mut t = termios();
            t.c_lflag = libc::EXTPROC;
            line.to_termios(&mut t);
            assert_eq!(PtyLine::from_termios(&t, &before), line);
            assert_eq!(t.c_lflag, libc::EXTPROC, "other flags are left alone");
        }
    }

    #[test]
    fn b0_keeps_the_baud_and_ixon_alone_is_software_flow_control() {
        let before = PtyLine::of(&LineSettings::with_baud(4800));
        let mut t = termios();
        t.c_iflag = libc::IXON;
        let now = PtyLine::from_termios(&t, &before);
        assert_eq!(now.baud, 4800);
        assert_eq!(now.flow_control, FlowControl::Xonxoff);
        t.c_cflag = libc::CRTSCTS;
        assert_eq!(
            PtyLine::from_termios(&t, &before).flow_control,
            FlowControl::Rtscts,
            "hardware flow control wins"
        );
    }

    #[test]
    fn only_changed_fields_reach_the_device() {
        let in_force = LineSettings {
            data_bits: 7,
            parity: crate::line::Parity::Even,
            flow_control: FlowControl::Rtscts,
            ..LineSettings::with_baud(9600)
        };
        // The slave showed something stale; the program changed the baud.
        let before = PtyLine {
            baud: 38400,
            stop_bits: 1,
            flow_control: FlowControl::None,
        };
        let now = PtyLine {
            baud: 19200,
            ..before
        };
        let new = now.changed(&before, in_force);
        assert_eq!(
            new,
            LineSettings {
                baud: 19200,
                ..in_force
            },
            "parity, data bits and flow control stay the device's"
        );
        assert_eq!(before.changed(&before, in_force), in_force);
    }

    /// What the kernel does, on a real pty: packet mode reports a termios
    /// change, strips nothing from data, and reads the slave's termios
    /// through the master.
    #[test]
    fn a_real_pty_reports_termios_changes_in_packet_mode() {
        use nix::fcntl::OFlag;
        use nix::sys::termios;
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).unwrap();
        nix::pty::grantpt(&master).unwrap();
        nix::pty::unlockpt(&master).unwrap();
        let path = nix::pty::ptsname_r(&master).unwrap();
        let slave = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let mut t = termios::tcgetattr(&slave).unwrap();
        termios::cfmakeraw(&mut t);
        t.local_flags |= termios::LocalFlags::EXTPROC;
        termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &t).unwrap();
        packet_mode(&master, true).unwrap();

        nix::unistd::write(&slave, b"before").unwrap();
        termios::cfsetspeed(&mut t, termios::BaudRate::B19200).unwrap();
        termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &t).unwrap();
        let mut buf = [0u8; 64];
        // The change is reported first, then the data, whole.
        assert_eq!(
            read_packet(&master, &mut buf).unwrap(),
            Some((TIOCPKT_IOCTL, 0))
        );
        let (status, n) = read_packet(&master, &mut buf).unwrap().unwrap();
        assert_eq!((status, &buf[..n]), (TIOCPKT_DATA, &b"before"[..]));
        let before = PtyLine::of(&LineSettings::default());
        assert_eq!(
            PtyLine::from_termios(&get(&master).unwrap(), &before).baud,
            19200
        );
    }
}
