//! Scenario: Modbus transactions through `--writers transaction`, against
//! the physical limit of the bus (issue 9).
//!
//! The slave is `serialhub sim --mode modbus` in its own process on a pty, as
//! a real device would be: serialhub opens the pty as its device. Masters
//! each keep one request outstanding, as a normal Modbus master does, and
//! check every reply: transaction id (Modbus TCP), CRC (RTU), unit, function
//! and the register values the simulator's rule gives. A reply that answers
//! another request is a crossed reply, which is a bug.
//!
//! The limit is what the wire allows one transaction at a time: request and
//! reply line time, the 3.5-character silence after each frame, and the
//! slave's reply delay. A last row runs one master straight on the slave's
//! pty, without serialhub, with precise thread sleeps for the gap: what the
//! simulator and the pty allow, to tell serialhub's cost from theirs.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serialhub::device::sim::modbus::{holding_initial, silence};
use serialhub::measure::cpu_seconds;
use serialhub::proto::modbus::rtu;
use serialhub::proto::modbus::tcp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy;
use crate::report::Section;

const BAUD: u32 = 19_200;
/// The slave's processing time, as in the reference figure.
const REPLY_DELAY: Duration = Duration::from_millis(5);
/// Registers per read-holding-registers request.
const REGS: u16 = 10;
/// RTU request: unit, function, address, quantity, CRC.
const REQUEST_LEN: usize = 8;
/// RTU reply: unit, function, byte count, the registers, CRC.
const REPLY_LEN: usize = 5 + 2 * REGS as usize;
/// A master gives up on a reply after this long (serialhub's own reply
/// timeout is 1 s, after which modbus-tcp answers exception 0x0B).
const REPLY_WAIT: Duration = Duration::from_secs(3);
/// Transactions before the measurement starts (connections, first wake-ups).
const WARM_UP: Duration = Duration::from_millis(500);

/// 8N1: ten bits a character.
fn char_time() -> f64 {
    10.0 / f64::from(BAUD)
}

/// Seconds one transaction takes on the wire, at best.
fn cycle_secs() -> f64 {
    let gap = silence(f64::from(BAUD) / 10.0).as_secs_f64();
    (REQUEST_LEN + REPLY_LEN) as f64 * char_time() + 2.0 * gap + REPLY_DELAY.as_secs_f64()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Modbus TCP masters on a `modbus-tcp:` endpoint.
    ModbusTcp,
    /// Raw RTU frames on a TCP endpoint with the default gap framing.
    RtuGap,
    /// Raw RTU frames on a TCP endpoint with `framing=modbus-rtu`.
    RtuFramed,
    /// One raw RTU master on the slave's pty itself, no serialhub.
    Direct,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::ModbusTcp => "Modbus TCP (`modbus-tcp:`)",
            Kind::RtuGap => "RTU over TCP (`framing=gap`, default)",
            Kind::RtuFramed => "RTU over TCP (`framing=modbus-rtu`)",
            Kind::Direct => "RTU straight on the slave's pty, no serialhub",
        }
    }

    fn listen(self) -> &'static str {
        match self {
            Kind::ModbusTcp => "modbus-tcp:127.0.0.1:0",
            Kind::RtuGap => "tcp:127.0.0.1:0",
            Kind::RtuFramed => "tcp:127.0.0.1:0,framing=modbus-rtu",
            Kind::Direct => "",
        }
    }
}

/// Counts shared by the masters of one run.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    crossed: AtomicU64,
    timeouts: AtomicU64,
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct RunResult {
    txn_per_sec: f64,
    crossed: u64,
    timeouts: u64,
    cpu: Option<f64>,
}

pub async fn txn(secs: u64, runs: usize) -> Section {
    let limit = 1.0 / cycle_secs();
    let mut s = Section::new(
        format!("Modbus transactions at {BAUD} baud against the bus's limit"),
        &[
            "masters",
            "client kind",
            "txn/s",
            "limit txn/s",
            "ratio",
            "crossed",
            "timeouts",
            "CPU s",
        ],
    );
    let ct = char_time() * 1e3;
    let gap = silence(f64::from(BAUD) / 10.0).as_secs_f64() * 1e3;
    s.notes.push(format!(
        "`serialhub serve --writers transaction` at {BAUD} baud on a Modbus RTU slave that runs as its own process on a pty (`serialhub sim --mode modbus --baud {BAUD} --reply-delay 5ms`), one serialhub and one slave started fresh per run. Each master keeps one request outstanding: read holding registers, {REGS} registers ({REQUEST_LEN}-byte RTU request, {REPLY_LEN}-byte reply), units 1 to 3 in turn, and checks every reply (transaction id, CRC, unit, function, the {REGS} values)."
    ));
    s.notes.push(format!(
        "Limit: one transaction at a time on the wire takes ({REQUEST_LEN} + {REPLY_LEN}) characters × {ct:.3} ms (8N1) + 2 × {gap:.3} ms of silence (3.5 characters after each frame) + {} ms reply delay = {:.2} ms, so {limit:.1} txn/s.",
        REPLY_DELAY.as_millis(),
        cycle_secs() * 1e3
    ));
    s.notes.push(format!(
        "txn/s is over {secs} s after a {} ms warm-up; each figure is the median of {runs} runs, with that run's serialhub CPU time over the {secs} s; crossed (a reply with the wrong id, CRC, unit or values) and timeouts (no reply in {} s, or exception 0x0B from `modbus-tcp:`) are summed over all runs. The last row runs one master on the slave's pty without serialhub, with precise thread sleeps for the gap: what the simulator and pty allow.",
        WARM_UP.as_millis(),
        REPLY_WAIT.as_secs()
    ));
    let mut rows: Vec<(usize, Kind)> = Vec::new();
    for masters in [1, 2, 8] {
        for kind in [Kind::ModbusTcp, Kind::RtuFramed, Kind::RtuGap] {
            rows.push((masters, kind));
        }
    }
    rows.push((1, Kind::Direct));
    for (masters, kind) in rows {
        let mut all = Vec::new();
        let mut failed = None;
        for _ in 0..runs.max(1) {
            match run_once(kind, masters, secs).await {
                Ok(r) => all.push(r),
                Err(why) => {
                    failed = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = failed {
            let mut cells = vec![masters.to_string(), kind.label().into()];
            cells.push(format!("not run: {why}"));
            cells.resize(s.headers.len(), String::new());
            s.row(cells);
            continue;
        }
        all.sort_by(|a, b| a.txn_per_sec.total_cmp(&b.txn_per_sec));
        let mid = all[all.len() / 2];
        let crossed: u64 = all.iter().map(|r| r.crossed).sum();
        let timeouts: u64 = all.iter().map(|r| r.timeouts).sum();
        s.row(vec![
            masters.to_string(),
            kind.label().into(),
            format!("{:.1}", mid.txn_per_sec),
            format!("{limit:.1}"),
            format!("{:.2}", mid.txn_per_sec / limit),
            crossed.to_string(),
            timeouts.to_string(),
            mid.cpu.map_or("–".into(), |c| format!("{c:.2}")),
        ]);
    }
    s
}

/// The slave process; killed when dropped.
struct Slave {
    child: Child,
    tty: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Slave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_slave() -> Result<Slave, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tty = dir.path().join("ttySLAVE");
    let child = proxy::spawn_quiet(
        Command::new(proxy::serialhub_bin())
            .args(["sim", "--mode", "modbus", "--baud", &BAUD.to_string()])
            .args(["--reply-delay", "5ms", "--link"])
            .arg(&tty),
    )
    .map_err(|e| format!("cannot start the slave: {e}"))?;
    let slave = Slave {
        child,
        tty,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slave.tty.exists() {
        if Instant::now() > deadline {
            return Err("the slave did not create its link".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(slave)
}

async fn run_once(kind: Kind, masters: usize, secs: u64) -> Result<RunResult, String> {
    let slave = start_slave()?;
    if kind == Kind::Direct {
        let tty = slave.tty.clone();
        let r = tokio::task::spawn_blocking(move || direct(&tty, secs))
            .await
            .map_err(|e| e.to_string())??;
        return Ok(r);
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_serialhub"));
    cmd.arg("serve")
        .arg("-d")
        .arg(&slave.tty)
        .args(["-b", &BAUD.to_string(), "--writers", "transaction"])
        .args(["-l", kind.listen(), "--max-clients", "32"]);
    let (child, addr) = proxy::spawn_and_find(cmd, |l| {
        l.split("listening on ")
            .nth(1)?
            .split_once(':')?
            .1
            .trim()
            .parse()
            .ok()
    })?;
    let server = Server(child);
    let pid = server.0.id();
    let tally = Arc::new(Tally::default());
    let start = tokio::time::Instant::now();
    let stop = start + WARM_UP + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for id in 0..masters {
        let tally = tally.clone();
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(master(kind, stream, id, stop, tally)));
    }
    tokio::time::sleep_until(start + WARM_UP).await;
    let (done0, cpu0) = (tally.done.load(Relaxed), cpu_seconds(pid).ok());
    tokio::time::sleep_until(stop).await;
    let (done1, cpu1) = (tally.done.load(Relaxed), cpu_seconds(pid).ok());
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    drop(server);
    Ok(RunResult {
        txn_per_sec: (done1 - done0) as f64 / secs as f64,
        crossed: tally.crossed.load(Relaxed),
        timeouts: tally.timeouts.load(Relaxed),
        cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
    })
}

/// serialhub; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `k`-th request of master `id`: unit, PDU, and the values it must get.
fn request(id: usize, k: u64) -> (u8, [u8; 5], Vec<u16>) {
    let unit = 1 + ((id as u64 + k) % 3) as u8;
    let addr = ((id as u64 * 1009 + k * 7) % (10_000 - u64::from(REGS))) as u16;
    let [a0, a1] = addr.to_be_bytes();
    let [q0, q1] = REGS.to_be_bytes();
    let values = (addr..addr + REGS)
        .map(|a| holding_initial(unit, a))
        .collect();
    (unit, [0x03, a0, a1, q0, q1], values)
}

/// The PDU a read of `values` must come back with.
fn reply_pdu(values: &[u16]) -> Vec<u8> {
    let mut pdu = vec![0x03, (values.len() * 2) as u8];
    for v in values {
        pdu.extend_from_slice(&v.to_be_bytes());
    }
    pdu
}

/// One master: a request, its reply, checked, and the next, until `stop`.
async fn master(
    kind: Kind,
    mut s: TcpStream,
    id: usize,
    stop: tokio::time::Instant,
    tally: Arc<Tally>,
) -> Result<(), String> {
    let mut k = 0u64;
    while tokio::time::Instant::now() < stop {
        let (unit, pdu, values) = request(id, k);
        let want = reply_pdu(&values);
        let ok = match kind {
            Kind::ModbusTcp => {
                let tid = (k as u16).wrapping_add((id as u16) << 12);
                s.write_all(&tcp::adu(tid, unit, &pdu))
                    .await
                    .map_err(|e| e.to_string())?;
                match tokio::time::timeout(REPLY_WAIT, read_adu(&mut s)).await {
                    Err(_) => None,
                    Ok(Err(e)) => return Err(e),
                    // Exception 0x0B: serialhub's reply timeout.
                    Ok(Ok((_, u, p))) if u == unit && p == [0x83, tcp::GATEWAY_TARGET_FAILED] => {
                        None
                    }
                    Ok(Ok((t, u, p))) => Some(t == tid && u == unit && p == want),
                }
            }
            _ => {
                let mut frame = vec![unit];
                frame.extend_from_slice(&pdu);
                rtu::append_crc(&mut frame);
                s.write_all(&frame).await.map_err(|e| e.to_string())?;
                let mut reply = [0u8; REPLY_LEN];
                match tokio::time::timeout(REPLY_WAIT, s.read_exact(&mut reply)).await {
                    Err(_) => None,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Ok(Ok(_)) => Some(
                        rtu::crc_ok(&reply)
                            && reply[0] == unit
                            && reply[1..REPLY_LEN - 2] == want[..],
                    ),
                }
            }
        };
        match ok {
            Some(true) => {
                tally.done.fetch_add(1, Relaxed);
            }
            Some(false) => {
                tally.crossed.fetch_add(1, Relaxed);
                drain(&mut s).await;
            }
            None => {
                tally.timeouts.fetch_add(1, Relaxed);
                drain(&mut s).await;
            }
        }
        k += 1;
    }
    Ok(())
}

/// Reads one Modbus TCP reply: (transaction id, unit, PDU).
async fn read_adu(s: &mut TcpStream) -> Result<(u16, u8, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(tcp::MAX_ADU);
    let mut chunk = [0u8; tcp::MAX_ADU];
    loop {
        if let Some((h, pdu, _)) = tcp::parse_adu(&buf).map_err(|e| e.to_string())? {
            return Ok((h.transaction, h.unit, pdu.to_vec()));
        }
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("serialhub closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Throws away whatever arrives until 200 ms of quiet, to resynchronise
/// after a bad or missing reply.
async fn drain(s: &mut TcpStream) {
    let mut buf = [0u8; 512];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}

/// One master straight on the slave's pty: write a request, read its reply,
/// leave 3.5 characters of silence (a thread sleep, precise to microseconds),
/// and again.
fn direct(tty: &Path, secs: u64) -> Result<RunResult, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(tty)
        .map_err(|e| format!("{}: {e}", tty.display()))?;
    let gap = silence(f64::from(BAUD) / 10.0);
    let start = Instant::now();
    let (warm, stop) = (start + WARM_UP, start + WARM_UP + Duration::from_secs(secs));
    let (mut done, mut done0, mut crossed, mut timeouts) = (0u64, None, 0u64, 0u64);
    let mut k = 0u64;
    while Instant::now() < stop {
        if done0.is_none() && Instant::now() >= warm {
            done0 = Some(done);
        }
        let (unit, pdu, values) = request(0, k);
        let mut frame = vec![unit];
        frame.extend_from_slice(&pdu);
        rtu::append_crc(&mut frame);
        port.write_all(&frame).map_err(|e| e.to_string())?;
        let mut reply = [0u8; REPLY_LEN];
        match read_full(&mut port, &mut reply) {
            Ok(true) => {
                if rtu::crc_ok(&reply)
                    && reply[0] == unit
                    && reply[1..REPLY_LEN - 2] == reply_pdu(&values)[..]
                {
                    done += 1;
                } else {
                    crossed += 1;
                }
            }
            Ok(false) => timeouts += 1,
            Err(e) => return Err(e),
        }
        std::thread::sleep(gap);
        k += 1;
    }
    Ok(RunResult {
        txn_per_sec: (done - done0.unwrap_or(0)) as f64 / secs as f64,
        crossed,
        timeouts,
        cpu: None,
    })
}

/// Fills `buf` from the pty, or returns false after `REPLY_WAIT` of waiting.
fn read_full(port: &mut std::fs::File, buf: &mut [u8]) -> Result<bool, String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut got = 0;
    let deadline = Instant::now() + REPLY_WAIT;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(port.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.to_string()),
        }
        match port.read(&mut buf[got..]) {
            Ok(0) => return Err("the slave's pty closed".into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(true)
}
