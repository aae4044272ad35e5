//! Scenario: many ports in one process, all streaming at once (issue 12).
//!
//! N ptys, each fed the counter pattern at the 115200 baud line rate by one
//! feeder thread of the benchmark, each read in full by one TCP client. Every
//! tool serves all of them the way a user would: serialhub and ser2net from
//! one process (serialhub from a generated `serve --config`, one `[[port]]`
//! each), socat from one process per port. What it costs is measured from
//! `/proc` over a window: CPU of all the tool's processes, per port and per
//! MB delivered, and memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serialhub::line::LineSettings;
use serialhub::measure::{cpu_seconds, memory};

use crate::daemon::Daemon;
use crate::fanout::median_run;
use crate::proxy::{self, Proxy, Setup, TOOLS, Tool};
use crate::pty::{Feeder, Pty};
use crate::readers::Readers;
use crate::report::{Chart, Section};

const BAUD: u32 = 115_200;

pub async fn ports(counts: &[usize], secs: u64, runs: usize) -> Section {
    let rate = LineSettings::with_baud(BAUD).bytes_per_sec();
    let mut s = Section::new(
        format!("Many ports in one process, all streaming at {BAUD} baud"),
        &[
            "tool",
            "ports",
            "processes",
            "CPU over the window",
            "CPU per port",
            "CPU per MB delivered",
            "slowest port, share of line rate",
            "pattern errors",
            "peak / final RSS",
        ],
    );
    s.notes.push(format!(
        "Each of N ptys is fed the counter pattern at the line rate ({rate:.0} B/s, 10 ms steps, one feeder thread \
         of the benchmark for all ports) and read in full by one TCP client, over {secs} s after 0.5 s of warm-up; \
         each row is the run with the median CPU per MB of {runs} runs. serialhub serves all ports from one \
         `serve --config` file (one `[[port]]` each, `baud = {BAUD}`, defaults otherwise); ser2net serves all \
         from one process; socat runs one process per port. CPU is user + system time of all the tool's \
         processes over the window (`/proc/PID/task/*/schedstat`, to the nanosecond); CPU per port is that in % of one core, \
         divided by N. RSS is the sum over the processes of `VmHWM` / `VmRSS` at the end."
    ));
    let mut bars = Vec::new();
    let biggest = counts.iter().copied().max().unwrap_or(1);
    for &n in counts {
        for tool in TOOLS {
            match median_run(runs, |r: &Run| r.cpu_per_mb, || one(tool, n, secs, rate)).await {
                Ok(r) => {
                    s.row(vec![
                        tool.name().into(),
                        n.to_string(),
                        r.processes.to_string(),
                        format!("{:.2} s", r.cpu_s),
                        format!("{:.2}%", r.cpu_s / r.elapsed / n as f64 * 100.0),
                        format!("{:.3} CPU-s/MB", r.cpu_per_mb),
                        format!("{:.1}%", r.min_share * 100.0),
                        r.errors.to_string(),
                        format!("{:.1} / {:.1} MiB", r.peak_mib, r.final_mib),
                    ]);
                    if n == biggest {
                        bars.push((tool.name().to_owned(), r.cpu_per_mb));
                    }
                }
                Err(why) => s.skipped(&format!("{} ({n} ports)", tool.name()), &why),
            }
        }
    }
    s.chart = Some(Chart {
        file: "ports.svg".into(),
        caption: format!(
            "CPU seconds per MB delivered, {biggest} ports streaming at once (lower is better)"
        ),
        bars,
    });
    s
}

/// One measurement of one tool.
struct Run {
    processes: usize,
    cpu_s: f64,
    elapsed: f64,
    cpu_per_mb: f64,
    min_share: f64,
    errors: u64,
    peak_mib: f64,
    final_mib: f64,
}

/// The tool's processes, whichever way it runs. Killed when dropped.
enum Served {
    Daemon(Daemon),
    Each(Vec<Proxy>),
}

impl Served {
    async fn start(tool: Tool, paths: &[String]) -> Result<Served, String> {
        if let Some(why) = tool.missing() {
            return Err(why);
        }
        let setup = Setup {
            baud: BAUD,
            clients: 1,
            ..Setup::default()
        };
        Ok(match tool {
            Tool::Serialhub | Tool::SerialhubLog => {
                Served::Daemon(Daemon::start(paths, BAUD).await?)
            }
            Tool::Ser2net | Tool::Ser2net4k => {
                Served::Each(vec![proxy::start(tool, paths, &setup)?])
            }
            Tool::Socat => Served::Each(
                paths
                    .iter()
                    .map(|p| proxy::start(tool, std::slice::from_ref(p), &setup))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Served::Daemon(d) => vec![d.pid()],
            Served::Each(p) => p.iter().map(Proxy::pid).collect(),
        }
    }

    fn addrs(&self) -> Vec<std::net::SocketAddr> {
        match self {
            Served::Daemon(d) => d.addrs.clone(),
            Served::Each(p) => p.iter().flat_map(|p| p.addrs.iter().copied()).collect(),
        }
    }
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p).unwrap_or(0.0)).sum()
}

async fn one(tool: Tool, n: usize, secs: u64, rate: f64) -> Result<Run, String> {
    // Fresh ptys per run: nothing left queued from the previous tool.
    let ptys: Vec<Pty> = (0..n).map(|_| Pty::open()).collect::<Result<_, _>>()?;
    let paths: Vec<String> = ptys.iter().map(|p| p.path.clone()).collect();
    let ptys = Arc::new(ptys);
    let served = Served::start(tool, &paths).await?;
    let readers = Readers::connect(&served.addrs()).await?;
    // ser2net and socat open the device when their client connects.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Declared last, so stopped first, before the tool is killed.
    let _feeder = Feeder::start(ptys, rate);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = served.pids();
    let (cpu0, before, t0) = (cpu(&pids), readers.bytes(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, after, elapsed) = (cpu(&pids), readers.bytes(), t0.elapsed().as_secs_f64());
    let mem: Vec<_> = pids
        .iter()
        .map(|&p| memory(p).unwrap_or_default())
        .collect();
    let errors = readers.finish().await;
    let got: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let mb = got.iter().sum::<u64>() as f64 / 1e6;
    let cpu_s = cpu1 - cpu0;
    Ok(Run {
        processes: pids.len(),
        cpu_s,
        elapsed,
        cpu_per_mb: if mb > 0.0 { cpu_s / mb } else { f64::NAN },
        min_share: got.iter().copied().min().unwrap_or(0) as f64 / (rate * elapsed),
        errors,
        peak_mib: mem.iter().map(|m| m.peak_kib).sum::<u64>() as f64 / 1024.0,
        final_mib: mem.iter().map(|m| m.current_kib).sum::<u64>() as f64 / 1024.0,
    })
}
