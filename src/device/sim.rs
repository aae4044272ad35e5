//! The built-in simulated device: a pseudo-terminal with a paced UART behind it.
//!
//! The simulator owns the master side of a pty; its slave side is an ordinary
//! tty that serialhub (or any program) opens as the device. The simulator
//! consumes and produces bytes at the line rate, like a UART: while it is busy,
//! bytes written to the slave wait in the kernel, exactly as they would in a
//! real driver's output queue. Modes:
//!
//! - `echo`: sends back every byte it receives;
//! - `source`: sends the counter pattern of [`crate::pattern`] continuously;
//! - `sink`: receives and checks the counter pattern, counting loss and
//!   reordering in [`SimStats`];
//! - `modbus`: a Modbus RTU slave with units 1 to 3 (see [`modbus`]);
//! - `loopback`: in `serve`, a loopback plug in process with modem lines
//!   and any line settings (see [`super::loopback`]); `serialhub sim`,
//!   which can only offer a pty, serves it as `echo` (a pty has no modem
//!   lines).
//!
//! A simulator is named by a [`SimSpec`]: `echo`, `source`, `sink`, `modbus`
//! or `modbus,reply-delay=DURATION`.

pub mod modbus;

use std::ops::RangeInclusive;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, open};
use nix::pty::PtyMaster;
use nix::sys::stat::Mode;
use nix::sys::termios;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::line::LineSettings;
use crate::pace::TokenBucket;
use crate::pattern::{Checker, Generator};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimMode {
    Echo,
    Source,
    Sink,
    Modbus,
    Loopback,
}

impl std::str::FromStr for SimMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "echo" => SimMode::Echo,
            "source" => SimMode::Source,
            "sink" => SimMode::Sink,
            "modbus" => SimMode::Modbus,
            "loopback" => SimMode::Loopback,
            _ => {
                return Err(format!(
                    "unknown simulator mode {s:?} (expected echo, source, sink, modbus or loopback)"
                ));
            }
        })
    }
}

/// `modbus`: the slave's processing time before it answers, by default.
pub(crate) const DEFAULT_REPLY_DELAY: Duration = Duration::from_millis(5);
/// The range of `reply-delay` (`sim --reply-delay`, `sim:modbus,reply-delay=`).
pub(crate) const REPLY_DELAY: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(10);

/// A simulator and its settings: what `sim:SPEC` and `sim --mode` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimSpec {
    pub mode: SimMode,
    /// `modbus`: how long the slave waits before it answers a request.
    pub reply_delay: Duration,
}

impl From<SimMode> for SimSpec {
    fn from(mode: SimMode) -> Self {
        SimSpec {
            mode,
            reply_delay: DEFAULT_REPLY_DELAY,
        }
    }
}

impl std::str::FromStr for SimSpec {
    type Err = String;
    /// `MODE` or `modbus,reply-delay=DURATION`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',');
        let mode: SimMode = parts.next().unwrap_or_default().parse()?;
        let mut spec = SimSpec::from(mode);
        for opt in parts {
            let Some(value) = opt.strip_prefix("reply-delay=") else {
                return Err(format!(
                    "unknown simulator option {opt:?} (expected reply-delay=DURATION)"
                ));
            };
            if mode != SimMode::Modbus {
                return Err(format!("reply-delay applies only to sim:modbus, not {s:?}"));
            }
            spec.reply_delay = humantime::parse_duration(value)
                .map_err(|e| format!("reply-delay={value}: {e} (try 5ms)"))?;
            if !REPLY_DELAY.contains(&spec.reply_delay) {
                return Err(format!("reply-delay={value} is out of range (0 to 10s)"));
            }
        }
        Ok(spec)
    }
}

impl std::fmt::Display for SimSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", format!("{:?}", self.mode).to_lowercase())?;
        if self.mode == SimMode::Modbus && self.reply_delay != DEFAULT_REPLY_DELAY {
            write!(
                f,
                ",reply-delay={}",
                humantime::format_duration(self.reply_delay)
            )?;
        }
        Ok(())
    }
}

/// Largest burst the simulated UART moves at once: 20 ms of line time. Timers
/// are millisecond-grained, so a smaller burst would lose line rate whenever
/// a wake-up is late.
const BURST: Duration = Duration::from_millis(20);
/// Bytes an echo device holds between receiving and sending back.
const ECHO_CHUNKS: usize = 16;

/// What the simulated device has seen, readable while it runs.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Bytes the device received from the line.
    pub rx_bytes: AtomicU64,
    /// Bytes the device sent on the line.
    pub(crate) tx_bytes: AtomicU64,
    /// `sink`: pattern records received intact and in order.
    pub records: AtomicU64,
    /// `sink`: malformed, lost or reordered records.
    pub errors: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    /// `modbus`: requests answered, with a normal or an exception reply.
    pub modbus_answered: AtomicU64,
    /// `modbus`: requests answered with an exception (also in `answered`).
    pub modbus_exceptions: AtomicU64,
    /// `modbus`: frames that failed their CRC (requests merged or garbled),
    /// or were too short or too long; no reply.
    pub modbus_crc_errors: AtomicU64,
    /// `modbus`: good frames for another unit; no reply.
    pub modbus_ignored: AtomicU64,
}

/// A running simulated device. Dropping it stops the simulation and closes
/// the pty.
#[derive(Debug)]
pub struct Sim {
    path: PathBuf,
    stats: Arc<SimStats>,
    task: JoinHandle<std::io::Result<()>>,
    /// Held open so the pty survives while no client has the slave open.
    _slave: OwnedFd,
}

impl Sim {
    /// Creates the pty and starts the simulation on the current runtime.
    pub fn spawn(mode: SimMode, line: &LineSettings) -> std::io::Result<Sim> {
        Self::spawn_spec(mode.into(), line)
    }

    /// As [`spawn`](Self::spawn), with the simulator's settings.
    pub fn spawn_spec(spec: SimSpec, line: &LineSettings) -> std::io::Result<Sim> {
        Self::start(spec, line.bytes_per_sec())
    }

    /// A simulator that moves bytes as fast as the pty allows, for
    /// throughput and latency benchmarks.
    pub fn spawn_unpaced(mode: SimMode) -> std::io::Result<Sim> {
        Self::start(mode.into(), f64::INFINITY)
    }

    fn start(spec: SimSpec, rate: f64) -> std::io::Result<Sim> {
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
        nix::pty::grantpt(&master)?;
        nix::pty::unlockpt(&master)?;
        let path = PathBuf::from(nix::pty::ptsname_r(&master)?);
        let slave = open(
            &path,
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut t = termios::tcgetattr(&slave)?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &t)?;
        set_nonblocking(&master)?;
        let master = Arc::new(super::fd::register(master)?);
        let stats = Arc::new(SimStats::default());
        let task = tokio::spawn(run(spec, master, rate, stats.clone()));
        Ok(Sim {
            path,
            stats,
            task,
            _slave: slave,
        })
    }

    /// The slave tty to open as the device.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> &Arc<SimStats> {
        &self.stats
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sets `O_NONBLOCK`, as tokio's reactor requires.
pub fn set_nonblocking(fd: &impl AsFd) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

type Master = Arc<AsyncFd<PtyMaster>>;

fn bucket(rate: f64) -> TokenBucket {
    if rate.is_finite() {
        TokenBucket::new(rate, burst(rate), Instant::now())
    } else {
        TokenBucket::unlimited()
    }
}

fn burst(rate: f64) -> usize {
    ((rate * BURST.as_secs_f64()) as usize).max(4)
}

async fn run(
    spec: SimSpec,
    master: Master,
    rate: f64,
    stats: Arc<SimStats>,
) -> std::io::Result<()> {
    match spec.mode {
        SimMode::Modbus => modbus::serve(master, rate, spec.reply_delay, stats).await,
        SimMode::Source => source(master, rate, stats).await,
        SimMode::Sink => {
            let mut checker = Checker::new();
            receive(master, rate, &stats, |data| {
                checker.feed(data);
                stats.records.store(checker.records, Relaxed);
                stats.errors.store(checker.errors, Relaxed);
                if checker.errors > 0 {
                    let mut first = stats.first_error.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert_with(|| checker.first_error.clone().unwrap_or_default());
                }
            })
            .await
        }
        SimMode::Echo | SimMode::Loopback => {
            let (tx, rx) = mpsc::channel(ECHO_CHUNKS);
            // Both halves run in this task, so aborting the simulator stops
            // both and closes the pty.
            let receiving = receive(master.clone(), rate, &stats, |data| {
                // A full echo buffer means our own sender stalled, which
                // cannot happen at equal rates; a loss here is counted.
                if tx.try_send(data.to_vec()).is_err() {
                    stats.errors.fetch_add(1, Relaxed);
                }
            });
            tokio::select! {
                r = receiving => r,
                r = echo_back(master, rate, &stats, rx) => r,
            }
        }
    }
}

/// Consumes bytes from the line at line rate, handing each burst to `handle`.
async fn receive(
    master: Master,
    rate: f64,
    stats: &SimStats,
    mut handle: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut bucket = bucket(rate);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = bucket.take(buf.len(), burst(rate) / 2).await;
        let got = master
            .async_io(Interest::READABLE, |m| {
                nix::unistd::read(m.as_fd(), &mut buf[..n]).map_err(std::io::Error::from)
            })
            .await?;
        bucket.refund(n - got);
        stats.rx_bytes.fetch_add(got as u64, Relaxed);
        handle(&buf[..got]);
    }
}

async fn send(master: &Master, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = master
            .async_io(Interest::WRITABLE, |m| {
                nix::unistd::write(m.as_fd(), data).map_err(std::io::Error::from)
            })
            .await?;
        data = &data[n..];
    }
    Ok(())
}

async fn source(master: Master, rate: f64, stats: Arc<SimStats>) -> std::io::Result<()> {
    let mut bucket = bucket(rate);
    let mut generator = Generator::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = bucket.take(buf.len(), burst(rate) / 2).await;
        generator.fill(&mut buf[..n]);
        send(&master, &buf[..n]).await?;
        stats.tx_bytes.fetch_add(n as u64, Relaxed);
    }
}

async fn echo_back(
    master: Master,
    rate: f64,
    stats: &SimStats,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    let mut bucket = bucket(rate);
    while let Some(data) = rx.recv().await {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = bucket.take(rest.len(), burst(rate) / 2).await;
            send(&master, &rest[..n]).await?;
            stats.tx_bytes.fetch_add(n as u64, Relaxed);
            rest = &rest[n..];
        }
    }
    Ok(())
}
