//! Scenario 1: one client floods a paced device.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::measure::{cpu_seconds, flood, memory};
use tokio::net::TcpSocket;

use crate::proxy::{self, Setup, TOOLS, Tool};
use crate::report::{Chart, Section, format_value};

pub async fn run(baud: u32, secs: u64, drain: u64) -> Section {
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
            "CPU",
        ],
    );
    s.notes.push(format!(
        "One client writes the counter pattern as fast as it can for {secs} s. \"In flight\" is what has left the client's socket (written minus `SIOCOUTQ`) but has not reached the device, sampled after every write."
    ));
    let mut bars = Vec::new();
    // serialhub once more with its traffic log on: the log must not cost
    // line rate or loosen the bound.
    let tools = [&TOOLS[..1], &[Tool::SerialhubLog], &TOOLS[1..]].concat();
    for tool in tools {
        match one(tool, &line, secs, drain).await {
            Ok((cells, inflight_s)) => {
                s.row(cells);
                bars.push((tool.name().to_owned(), inflight_s));
            }
            Err(why) => s.skipped(tool.name(), &why),
        }
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

async fn one(
    tool: proxy::Tool,
    line: &LineSettings,
    secs: u64,
    drain: u64,
) -> Result<(Vec<String>, f64), String> {
    let sink = Sim::spawn(SimMode::Sink, line).map_err(|e| e.to_string())?;
    let setup = Setup {
        baud: line.baud,
        clients: 1,
        ..Setup::default()
    };
    let p = proxy::start(tool, &[sink.path().display().to_string()], &setup)?;
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    // The same small client send buffer for every tool: it only shortens the
    // final drain; what is measured has already left the client.
    socket
        .set_send_buffer_size(2048)
        .map_err(|e| e.to_string())?;
    let mut stream = socket.connect(p.addr()).await.map_err(|e| e.to_string())?;
    let stats = sink.stats().clone();
    let rx = || stats.rx_bytes.load(Relaxed);
    let rx0 = rx();
    let r = flood(&mut stream, rx, Duration::from_secs(secs))
        .await
        .map_err(|e| e.to_string())?;
    let mem = memory(p.pid()).unwrap_or_default();
    let cpu = cpu_seconds(p.pid()).unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(drain);
    while rx() - rx0 < r.written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rate = line.bytes_per_sec();
    let inflight_s = r.max_inflight as f64 / rate;
    Ok((
        vec![
            tool.name().to_owned(),
            format!("{:.1}%", 100.0 * r.line_bytes as f64 / (rate * r.secs)),
            format!("{} B", r.max_inflight),
            format!("{} s", format_value(inflight_s)),
            format!("{:.0} B", r.mean_inflight),
            stats.errors.load(Relaxed).to_string(),
            format!("{} B", r.written.saturating_sub(rx() - rx0)),
            format!("{:.1} MiB", mem.peak_kib as f64 / 1024.0),
            format!("{cpu:.2} s"),
        ],
        inflight_s,
    ))
}
