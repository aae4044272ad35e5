//! Pseudo-terminals the benchmark drives itself: idle's silent ports, and
//! the ports scenario's many paced sources, all fed by one thread.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::pty::PtyMaster;
use nix::sys::termios;
use serialhub::pattern::byte_at;

/// One pty pair. Both ends close when it is dropped.
pub struct Pty {
    master: PtyMaster,
    /// The slave tty, the device path the tools open.
    pub path: String,
    /// Held open, in raw mode, so the line settings hold and written bytes
    /// stay queued while no tool has the device open (ser2net and socat open
    /// it per connection).
    _slave: OwnedFd,
}

impl Pty {
    pub fn open() -> Result<Pty, String> {
        let e = |e: nix::Error| e.to_string();
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(e)?;
        nix::pty::grantpt(&master).map_err(e)?;
        nix::pty::unlockpt(&master).map_err(e)?;
        let path = nix::pty::ptsname_r(&master).map_err(e)?;
        let slave = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(e)?;
        let mut t = termios::tcgetattr(&slave).map_err(e)?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &t).map_err(e)?;
        // The feeder must never block on one port's full buffer.
        serialhub::device::set_nonblocking(&master).map_err(e)?;
        Ok(Pty {
            master,
            path,
            _slave: slave,
        })
    }
}

/// How often the feeder writes: the simulator's pacing step (`sim:source`
/// writes 10 ms of line time at a time), so a tool sees the same chunks as
/// in the fan-out scenario.
const STEP: Duration = Duration::from_millis(10);
/// The most written to one port per step, so a port whose buffer filled
/// does not hold up the others when it drains.
const MAX_WRITE: usize = 4096;

/// One thread writing the counter pattern into every pty at `rate` bytes per
/// second each: one wake-up per step for all ports, so the feeder costs
/// little even at 64 ports. A write the pty cannot take now is retried at
/// the next step, so each port's stream stays whole. Stops when dropped.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    pub fn start(ptys: Arc<Vec<Pty>>, rate: f64) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut sent = vec![0u64; ptys.len()];
            let mut buf = vec![0u8; MAX_WRITE];
            let mut next = start;
            while !halt.load(Relaxed) {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                for (pty, sent) in ptys.iter().zip(&mut sent) {
                    let n = (due.saturating_sub(*sent) as usize).min(MAX_WRITE);
                    if n == 0 {
                        continue;
                    }
                    for (i, b) in buf[..n].iter_mut().enumerate() {
                        *b = byte_at(*sent + i as u64);
                    }
                    // EAGAIN (the tool is not reading) leaves the bytes due.
                    if let Ok(k) = nix::unistd::write(pty.master.as_fd(), &buf[..n]) {
                        *sent += k as u64;
                    }
                }
                next += STEP;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Feeder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
