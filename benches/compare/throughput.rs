//! Scenarios 2 and 3: bulk throughput and one-byte round-trip latency through
//! an unpaced pty, so the tool itself is the bottleneck.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serialhub::device::sim::SimStats;
use serialhub::device::{Sim, SimMode};
use serialhub::pattern::{Checker, Generator};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proxy::{self, Setup, TOOLS, Tool};
use crate::report::{Chart, Section};
use crate::tlsconn::{Conn, Tls};

/// How `tool` runs here: over TLS with `tls`'s certificate if given.
pub fn setup(tool: Tool, tls: Option<&Tls>) -> Setup {
    Setup {
        baud: 115_200,
        clients: 1,
        // serialhub paces writes at the line rate by design, and disconnects
        // a reader slower than the device; a pty has no line rate and one
        // client can't keep up with an unpaced one, so run it as a user
        // would for a bulk transfer: no pacing, and a lossless reader.
        serialhub_args: if tool == Tool::Serialhub {
            ["--no-pacing", "--slow-reader", "block"]
                .map(String::from)
                .to_vec()
        } else {
            vec![]
        },
        tls: tls.map(Tls::files),
        ..Setup::default()
    }
}

/// The median of `runs` results of `f`, by value.
pub async fn median<F, Fut>(runs: usize, mut f: F) -> Result<(f64, u64), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(f64, u64), String>>,
{
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        all.push(f().await?);
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let errors = all.iter().map(|r| r.1).sum();
    Ok((all[all.len() / 2].0, errors))
}

pub async fn bulk(secs: u64, runs: usize) -> Section {
    let mut s = Section::new(
        "Bulk throughput through an unpaced pty",
        &[
            "tool",
            "device to client",
            "client to device",
            "pattern errors",
        ],
    );
    s.notes.push(format!(
        "The simulator reads or writes the pty as fast as it can; one client for {secs} s in each direction; each figure is the median of {runs} runs (pattern errors are summed over all). serialhub runs with `--no-pacing --slow-reader block`."
    ));
    let mut bars = Vec::new();
    for tool in TOOLS {
        let down = median(runs, || device_to_client(tool, secs, None)).await;
        let up = median(runs, || client_to_device(tool, secs, None)).await;
        match (down, up) {
            (Ok((d, e1)), Ok((u, e2))) => {
                s.row(vec![
                    tool.name().into(),
                    format!("{d:.1} MB/s"),
                    format!("{u:.1} MB/s"),
                    (e1 + e2).to_string(),
                ]);
                bars.push((format!("{} ↓", tool.name()), d));
                bars.push((format!("{} ↑", tool.name()), u));
            }
            (Err(why), _) | (_, Err(why)) => s.skipped(tool.name(), &why),
        }
    }
    s.chart = Some(Chart {
        file: "bulk.svg".into(),
        caption: "Bulk throughput, MB/s (↓ device to client, ↑ client to device; higher is better)"
            .into(),
        bars,
    });
    s
}

pub async fn device_to_client(
    tool: Tool,
    secs: u64,
    tls: Option<&Tls>,
) -> Result<(f64, u64), String> {
    let source = Sim::spawn_unpaced(SimMode::Source).map_err(|e| e.to_string())?;
    let p = proxy::start(
        tool,
        &[source.path().display().to_string()],
        &setup(tool, tls),
    )?;
    let mut stream = Conn::connect(p.addr(), tls, false).await?;
    read_rate(&mut stream, secs).await
}

/// Reads the counter pattern from `stream` for `secs` after 300 ms of
/// warm-up: MB/s and pattern errors.
pub async fn read_rate(
    stream: &mut (impl AsyncRead + Unpin),
    secs: u64,
) -> Result<(f64, u64), String> {
    let mut c = Checker::new();
    let mut buf = vec![0u8; 65536];
    // Skip the start-up burst the pty buffered before anyone read it.
    let warm = Instant::now() + Duration::from_millis(300);
    let mut start = None;
    let deadline = Instant::now() + Duration::from_secs(secs) + Duration::from_millis(300);
    let mut bytes = 0u64;
    while Instant::now() < deadline {
        let n = match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        c.feed(&buf[..n]);
        if Instant::now() >= warm {
            start.get_or_insert_with(Instant::now);
            bytes += n as u64;
        }
    }
    let elapsed = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0);
    Ok((bytes as f64 / elapsed / 1e6, c.errors))
}

pub async fn client_to_device(
    tool: Tool,
    secs: u64,
    tls: Option<&Tls>,
) -> Result<(f64, u64), String> {
    let sink = Sim::spawn_unpaced(SimMode::Sink).map_err(|e| e.to_string())?;
    let p = proxy::start(
        tool,
        &[sink.path().display().to_string()],
        &setup(tool, tls),
    )?;
    let mut stream = Conn::connect(p.addr(), tls, false).await?;
    Ok(write_rate(&mut stream, sink.stats(), secs).await)
}

/// Writes the counter pattern into `stream` for `secs` (or until a write
/// is held for 2 s): MB/s that reached the device `stats` counts, and its
/// pattern errors.
pub async fn write_rate(
    stream: &mut (impl AsyncWrite + Unpin),
    stats: &SimStats,
    secs: u64,
) -> (f64, u64) {
    let mut g = Generator::new();
    let mut buf = vec![0u8; 65536];
    let start = Instant::now();
    let rx0 = stats.rx_bytes.load(Relaxed);
    while start.elapsed() < Duration::from_secs(secs) {
        g.fill(&mut buf);
        let write = stream.write_all(&buf);
        if tokio::time::timeout(Duration::from_secs(2), write)
            .await
            .is_err()
        {
            break;
        }
    }
    let rate = (stats.rx_bytes.load(Relaxed) - rx0) as f64 / start.elapsed().as_secs_f64();
    (rate / 1e6, stats.errors.load(Relaxed))
}

/// One run's round trips, in µs: p50, p99, p99.9, max.
pub type Quantiles = [f64; 4];

pub async fn latency(samples: usize, runs: usize) -> Section {
    let runs = runs.max(1);
    let mut headers = vec!["tool", "p50", "p99", "p99.9", "max", "samples per run"];
    if runs > 1 {
        headers.push("p50 / p99 in each run");
    }
    let mut s = Section::new("One-byte round trip through an echo device", &headers);
    s.notes.push(format!(
        "One client sends one byte and waits for its echo, {samples} times after 100 unmeasured ones, through an unpaced echo simulator, with a fresh tool each run. {}",
        if runs > 1 {
            format!("Each figure is the median of {runs} runs; the runs take turns (run 1 of every tool, then run 2, ...), so a change in the machine's load hits every tool alike. The last column lists each run's p50 / p99 in µs, in run order.")
        } else {
            "One run.".to_owned()
        }
    ));
    // Per tool, each run's quantiles, or why it failed.
    let results: Vec<(Tool, Result<Vec<Quantiles>, String>)> = TOOLS
        .iter()
        .copied()
        .zip(in_turns(&TOOLS.map(|t| (t, None)), samples, runs).await)
        .collect();
    let mut bars = Vec::new();
    for (tool, result) in &results {
        match result {
            Ok(done) => {
                let [p50, p99, p999, max] = median_quantiles(done);
                let mut cells = vec![
                    tool.name().into(),
                    format!("{p50:.0} µs"),
                    format!("{p99:.0} µs"),
                    format!("{p999:.0} µs"),
                    format!("{max:.0} µs"),
                    samples.to_string(),
                ];
                if runs > 1 {
                    let each: Vec<String> = done
                        .iter()
                        .map(|q| format!("{:.0} / {:.0}", q[0], q[1]))
                        .collect();
                    cells.push(each.join(" · "));
                }
                s.row(cells);
                bars.push((tool.name().to_owned(), p99));
            }
            Err(why) => s.skipped(tool.name(), why),
        }
    }
    if runs > 1 {
        s.notes.push(goal_note(&results));
    }
    s.chart = Some(Chart {
        file: "latency.svg".into(),
        caption: "One-byte round trip, p99 in µs, median of the runs (lower is better)".into(),
        bars,
    });
    s
}

/// The round trips of each of `tools` (over TLS where given), `runs` times
/// in turns (run 1 of every tool, then run 2, ...): each one's quantiles in
/// each run, or why it failed.
pub async fn in_turns(
    tools: &[(Tool, Option<&Tls>)],
    samples: usize,
    runs: usize,
) -> Vec<Result<Vec<Quantiles>, String>> {
    let mut results: Vec<Result<Vec<Quantiles>, String>> =
        tools.iter().map(|_| Ok(Vec::new())).collect();
    for _ in 0..runs.max(1) {
        for (&(tool, tls), result) in tools.iter().zip(&mut results) {
            let Ok(done) = result else { continue };
            match round_trips(tool, samples, tls).await {
                Ok(rtt) => done.push(quantiles(rtt)),
                Err(why) => *result = Err(why),
            }
        }
    }
    results
}

/// One run's round trips' quantiles, in µs.
pub fn quantiles(mut rtt: Vec<Duration>) -> Quantiles {
    rtt.sort();
    let at = |p: f64| {
        rtt.get(((rtt.len().max(1) - 1) as f64 * p) as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    [0.5, 0.99, 0.999, 1.0].map(at)
}

/// Each quantile's median over the runs.
pub fn median_quantiles(runs: &[Quantiles]) -> Quantiles {
    std::array::from_fn(|i| {
        let mut v: Vec<f64> = runs.iter().map(|q| q[i]).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    })
}

/// Issue 12's goal, read off the runs: in which runs serialhub's p50 and p99
/// were both at or below socat's and ser2net-4k's.
fn goal_note(results: &[(Tool, Result<Vec<Quantiles>, String>)]) -> String {
    let runs_of = |t: Tool| {
        results
            .iter()
            .find(|r| r.0 == t)
            .and_then(|r| r.1.as_ref().ok())
    };
    let (Some(ours), Some(socat), Some(s2n)) = (
        runs_of(Tool::Serialhub),
        runs_of(Tool::Socat),
        runs_of(Tool::Ser2net4k),
    ) else {
        return "serialhub against socat and ser2net-4k per run: not all three ran.".into();
    };
    let met: Vec<String> = (0..ours.len().min(socat.len()).min(s2n.len()))
        .filter(|&i| (0..2).all(|q| ours[i][q] <= socat[i][q] && ours[i][q] <= s2n[i][q]))
        .map(|i| (i + 1).to_string())
        .collect();
    format!(
        "serialhub's p50 and p99 were both at or below socat's and ser2net-4k's in {} of {} runs{}.",
        met.len(),
        ours.len(),
        if met.is_empty() {
            String::new()
        } else {
            format!(" (run {})", met.join(", "))
        }
    )
}

async fn round_trips(
    tool: Tool,
    samples: usize,
    tls: Option<&Tls>,
) -> Result<Vec<Duration>, String> {
    let echo = Sim::spawn_unpaced(SimMode::Echo).map_err(|e| e.to_string())?;
    let p = proxy::start(
        tool,
        &[echo.path().display().to_string()],
        &setup(tool, tls),
    )?;
    let mut stream = Conn::connect(p.addr(), tls, true).await?;
    round_trips_over(&mut stream, samples).await
}

/// `samples` one-byte round trips through `stream` to an echo device, after
/// 100 unmeasured ones.
pub async fn round_trips_over(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    samples: usize,
) -> Result<Vec<Duration>, String> {
    let mut rtt = Vec::with_capacity(samples);
    let mut b = [0u8; 1];
    for i in 0..samples + 100 {
        let t = Instant::now();
        stream
            .write_all(&[b'a' + (i % 26) as u8])
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut b)).await {
            Ok(Ok(_)) => {}
            _ => return Err(format!("no echo after {i} samples")),
        }
        if i >= 100 {
            rtt.push(t.elapsed());
        }
    }
    Ok(rtt)
}
