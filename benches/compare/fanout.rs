//! Scenarios 4 and 5: many readers on one paced source, and one stalled
//! reader among many.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::measure::{cpu_seconds, memory};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::proxy::{self, Setup, TOOLS, Tool};
use crate::readers::Readers;
use crate::report::{Chart, Section};

const BAUD: u32 = 115_200;

pub async fn fanout(counts: &[usize], secs: u64, runs: usize) -> Section {
    let mut s = Section::new(
        format!("Fan-out: readers on a paced {BAUD} baud source"),
        &[
            "tool",
            "readers",
            "CPU per MB delivered",
            "slowest reader, share of line rate",
            "pattern errors",
            "peak RSS",
        ],
    );
    s.notes.push(format!(
        "Every reader reads the whole stream for {secs} s; each row is the run with the median CPU per MB of {runs} runs. CPU is user + system time over the window, from `/proc/PID/task/*/schedstat` (to the nanosecond). socat serves one client, so it only has the 1-reader row."
    ));
    let mut bars = Vec::new();
    let biggest = counts.iter().copied().max().unwrap_or(1);
    for tool in TOOLS {
        for &n in counts {
            if tool == Tool::Socat && n > 1 {
                continue;
            }
            match median_run(runs, |r: &Fanned| r.cpu_per_mb, || readers(tool, n, secs)).await {
                Ok(r) => {
                    s.row(vec![
                        tool.name().into(),
                        n.to_string(),
                        format!("{:.3} CPU-s/MB", r.cpu_per_mb),
                        format!("{:.1}%", r.min_share * 100.0),
                        r.errors.to_string(),
                        format!("{:.1} MiB", r.rss_mib),
                    ]);
                    if n == biggest {
                        bars.push((tool.name().to_owned(), r.cpu_per_mb));
                    }
                }
                Err(why) => s.skipped(&format!("{} ({n} readers)", tool.name()), &why),
            }
        }
    }
    s.chart = Some(Chart {
        file: "fanout.svg".into(),
        caption: format!("CPU seconds per MB delivered with {biggest} readers (lower is better)"),
        bars,
    });
    s
}

/// Of `runs` results of `f`, the one with the median `key`.
pub async fn median_run<T, F, Fut>(runs: usize, key: fn(&T) -> f64, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        all.push(f().await?);
    }
    all.sort_by(|a, b| key(a).total_cmp(&key(b)));
    Ok(all.swap_remove(all.len() / 2))
}

struct Fanned {
    cpu_per_mb: f64,
    min_share: f64,
    errors: u64,
    rss_mib: f64,
}

async fn readers(tool: Tool, n: usize, secs: u64) -> Result<Fanned, String> {
    let line = LineSettings::with_baud(BAUD);
    let source = Sim::spawn(SimMode::Source, &line).map_err(|e| e.to_string())?;
    let setup = Setup {
        baud: BAUD,
        clients: n,
        ..Setup::default()
    };
    let p = proxy::start(tool, &[source.path().display().to_string()], &setup)?;
    let readers = Readers::connect(&vec![p.addr(); n]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = cpu_seconds(p.pid()).unwrap_or(0.0);
    let before = readers.bytes();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(p.pid()).unwrap_or(0.0) - cpu0;
    let got: Vec<u64> = readers
        .bytes()
        .iter()
        .zip(&before)
        .map(|(c, b)| c - b)
        .collect();
    let errors = readers.finish().await;
    let total_mb = got.iter().sum::<u64>() as f64 / 1e6;
    let min = got.iter().copied().min().unwrap_or(0) as f64;
    Ok(Fanned {
        cpu_per_mb: if total_mb > 0.0 {
            cpu / total_mb
        } else {
            f64::NAN
        },
        min_share: min / (line.bytes_per_sec() * elapsed),
        errors,
        rss_mib: memory(p.pid()).unwrap_or_default().peak_kib as f64 / 1024.0,
    })
}

/// A pty the benchmark itself writes the counter pattern into, paced at the
/// line rate, so a record's latency can be measured from the moment it was
/// due on the wire.
struct TimedSource {
    path: String,
    rate: f64,
    start: Instant,
    stop: Arc<AtomicBool>,
}

impl TimedSource {
    fn new(rate: f64) -> Result<(TimedSource, nix::pty::PtyMaster), String> {
        use nix::fcntl::OFlag;
        let m =
            nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(|e| e.to_string())?;
        nix::pty::grantpt(&m).map_err(|e| e.to_string())?;
        nix::pty::unlockpt(&m).map_err(|e| e.to_string())?;
        let path = nix::pty::ptsname_r(&m).map_err(|e| e.to_string())?;
        let src = TimedSource {
            path,
            rate,
            start: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        Ok((src, m))
    }

    /// Starts writing records; record k is due at `due(k)`.
    fn run(&mut self, master: nix::pty::PtyMaster) {
        self.start = Instant::now();
        let (start, rate, stop) = (self.start, self.rate, self.stop.clone());
        std::thread::spawn(move || {
            let mut file = std::fs::File::from(std::os::fd::OwnedFd::from(master));
            let mut sent = 0u64;
            while !stop.load(Relaxed) {
                let due = (start.elapsed().as_secs_f64() * rate / 9.0) as u64;
                let mut chunk = String::new();
                while sent < due {
                    chunk += &format!("{:08x}\n", sent as u32);
                    sent += 1;
                }
                if !chunk.is_empty() && file.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }

    fn due(&self, record: u64) -> Instant {
        self.start + Duration::from_secs_f64((record + 1) as f64 * 9.0 / self.rate)
    }
}

pub async fn stall(good: usize, secs: u64) -> Section {
    let mut s = Section::new(
        format!("One stalled reader among {good} on a {BAUD} baud source"),
        &[
            "tool",
            "good readers' p50 latency",
            "p99 latency",
            "slowest good reader, share of line rate",
            "stalled client",
        ],
    );
    s.notes.push(format!(
        "{good} readers read for {secs} s while one more client (4 KiB receive buffer) never reads. Latency runs from the moment a record was due on the wire to its arrival at a reader. serialhub uses its default policy, `disconnect`."
    ));
    let mut bars = Vec::new();
    for tool in TOOLS {
        if tool == Tool::Socat {
            s.skipped(tool.name(), "serves one client");
            continue;
        }
        match stalled(tool, good, secs).await {
            Ok((cells, p99)) => {
                s.row(cells);
                bars.push((tool.name().to_owned(), p99));
            }
            Err(why) => s.skipped(tool.name(), &why),
        }
    }
    s.chart = Some(Chart {
        file: "stall.svg".into(),
        caption: "Good readers' p99 latency with one stalled reader, ms (lower is better)".into(),
        bars,
    });
    s
}

async fn stalled(tool: Tool, good: usize, secs: u64) -> Result<(Vec<String>, f64), String> {
    let rate = LineSettings::with_baud(BAUD).bytes_per_sec();
    let (mut src, master) = TimedSource::new(rate)?;
    let setup = Setup {
        baud: BAUD,
        clients: good + 1,
        ..Setup::default()
    };
    let p = proxy::start(tool, std::slice::from_ref(&src.path), &setup)?;
    let stalled = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    stalled
        .set_recv_buffer_size(4096)
        .map_err(|e| e.to_string())?;
    let mut stalled = stalled.connect(p.addr()).await.map_err(|e| e.to_string())?;
    let mut streams = Vec::new();
    for _ in 0..good {
        streams.push(
            TcpStream::connect(p.addr())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    src.run(master);
    let src = Arc::new(src);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let src = src.clone();
            tokio::spawn(async move {
                let (mut lat, mut line, mut buf) = (Vec::new(), Vec::new(), vec![0u8; 8192]);
                while Instant::now() < deadline {
                    let k = match tokio::time::timeout(
                        Duration::from_millis(200),
                        stream.read(&mut buf),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(k)) => k,
                        Err(_) => continue,
                    };
                    let now = Instant::now();
                    for &b in &buf[..k] {
                        if b != b'\n' {
                            line.push(b);
                            continue;
                        }
                        if let Some(r) = std::str::from_utf8(&line)
                            .ok()
                            .and_then(|t| u64::from_str_radix(t, 16).ok())
                        {
                            lat.push(now.saturating_duration_since(src.due(r)).as_secs_f64() * 1e3);
                        }
                        line.clear();
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut min_records = usize::MAX;
    for t in tasks {
        let lat = t.await.map_err(|e| e.to_string())?;
        min_records = min_records.min(lat.len());
        all.extend(lat);
    }
    src.stop.store(true, Relaxed);
    if all.is_empty() {
        return Err("no reader received anything".into());
    }
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
    let mut probe = vec![0u8; 65536];
    let closed = async {
        loop {
            match stalled.read(&mut probe).await {
                Ok(0) | Err(_) => return "disconnected",
                Ok(_) => {}
            }
        }
    };
    // A disconnected client first reads what was buffered for it, then EOF.
    let fate = tokio::time::timeout(Duration::from_secs(3), closed)
        .await
        .unwrap_or("still connected");
    let share = min_records as f64 * 9.0 / (rate * secs as f64);
    Ok((
        vec![
            tool.name().into(),
            format!("{:.1} ms", q(0.5)),
            format!("{:.1} ms", q(0.99)),
            format!("{:.1}%", share * 100.0),
            fate.into(),
        ],
        q(0.99),
    ))
}
