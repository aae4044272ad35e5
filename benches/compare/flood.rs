//! Scenario 1: one client floods a paced device.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::measure::{cpu_seconds, flood_via, memory};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use crate::proxy::{self, Setup, TOOLS, Tool};
use crate::report::{Chart, Section, format_value};
use crate::tlsconn::{Conn, Tls};

/// One tool's flood: the table's cells, the in-flight line time (for the
/// chart) and the CPU over the flood (to pick the median run).
pub struct Flood {
    pub cells: Vec<String>,
    pub inflight_s: f64,
    pub cpu: f64,
}

/// `runs` floods for serialhub (whose CPU while pacing is a goal of its
/// own), one for each peer.
pub async fn run(baud: u32, secs: u64, drain: u64, runs: usize) -> Section {
    let line = LineSettings::with_baud(baud);
    let rate = line.bytes_per_sec();
    let mut s = Section::new(
        format!("Flood into a paced {baud} baud device ({rate:.0} B/s)"),
        &[
            "tool",
            "line utilisation",
            "max in flight",
            "max in flight (line time)",
            "mean in flight",
            "pattern errors",
            &format!("undelivered {drain} s after"),
            "peak RSS",
            "CPU during the flood",
            "CPU in each run",
        ],
    );
    s.notes.push(format!(
        "One client writes the counter pattern as fast as it can for {secs} s. \"In flight\" is what has left the client's socket (written minus `SIOCOUTQ`) but has not reached the device, sampled after every write. CPU is the tool's user + system time during the flood (`/proc/PID/task/*/schedstat`). serialhub's rows are the run with the median CPU of {runs}, every run with a fresh process; the last column lists each run's CPU. The peers, which pace nothing, run once."
    ));
    let mut bars = Vec::new();
    // serialhub once more with its traffic log on: the log must not cost
    // line rate or loosen the bound.
    let tools = [&TOOLS[..1], &[Tool::SerialhubLog], &TOOLS[1..]].concat();
    for tool in tools {
        let n = if tool.name().starts_with("serialhub") {
            runs.max(1)
        } else {
            1
        };
        let mut done = Vec::new();
        let mut failed = None;
        for _ in 0..n {
            match one(tool, &line, secs, drain, None).await {
                Ok(f) => done.push(f),
                Err(why) => {
                    failed = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = failed {
            s.skipped(tool.name(), &why);
            continue;
        }
        let each = done
            .iter()
            .map(|f| format!("{:.3}", f.cpu))
            .collect::<Vec<_>>()
            .join(" · ");
        done.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
        let mut median = done.swap_remove(done.len() / 2);
        median.cells.push(if n > 1 {
            format!("{each} s")
        } else {
            "one run".to_owned()
        });
        bars.push((tool.name().to_owned(), median.inflight_s));
        s.row(median.cells);
    }
    s.chart = Some(Chart {
        file: format!("flood-{baud}.svg"),
        caption: format!(
            "Bytes held in flight under flood, {baud} baud (seconds of line time, lower is better)"
        ),
        bars,
    });
    s
}

/// One flood through `tool`, over TLS if `tls` is given.
pub async fn one(
    tool: proxy::Tool,
    line: &LineSettings,
    secs: u64,
    drain: u64,
    tls: Option<&Tls>,
) -> Result<Flood, String> {
    let sink = Sim::spawn(SimMode::Sink, line).map_err(|e| e.to_string())?;
    let setup = Setup {
        baud: line.baud,
        clients: 1,
        tls: tls.map(Tls::files),
        ..Setup::default()
    };
    let p = proxy::start(tool, &[sink.path().display().to_string()], &setup)?;
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    // The same small client send buffer for every tool: it only shortens the
    // final drain; what is measured has already left the client.
    socket
        .set_send_buffer_size(2048)
        .map_err(|e| e.to_string())?;
    let tcp = socket.connect(p.addr()).await.map_err(|e| e.to_string())?;
    let mut stream = Conn::over(tcp, tls).await?;
    // Over TLS, as little held in rustls as in that send buffer.
    stream.limit_buffer(2048);
    let stats = sink.stats().clone();
    let rx = || stats.rx_bytes.load(Relaxed);
    let rx0 = rx();
    let cpu0 = cpu_seconds(p.pid()).unwrap_or(0.0);
    let r = flood_via(
        &mut stream,
        Conn::left_client,
        rx,
        Duration::from_secs(secs),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mem = memory(p.pid()).unwrap_or_default();
    let cpu = cpu_seconds(p.pid()).unwrap_or(0.0) - cpu0;
    let deadline = Instant::now() + Duration::from_secs(drain);
    // What rustls still holds goes out as the socket drains.
    let _ = tokio::time::timeout(Duration::from_secs(drain), stream.flush()).await;
    while rx() - rx0 < r.written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rate = line.bytes_per_sec();
    let inflight_s = r.max_inflight as f64 / rate;
    Ok(Flood {
        cells: vec![
            tool.name().to_owned(),
            format!("{:.1}%", 100.0 * r.line_bytes as f64 / (rate * r.secs)),
            format!("{} B", r.max_inflight),
            format!("{} s", format_value(inflight_s)),
            format!("{:.0} B", r.mean_inflight),
            stats.errors.load(Relaxed).to_string(),
            format!("{} B", r.written.saturating_sub(rx() - rx0)),
            format!("{:.1} MiB", mem.peak_kib as f64 / 1024.0),
            format!("{cpu:.3} s"),
        ],
        inflight_s,
        cpu,
    })
}
