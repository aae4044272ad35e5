//! Scenario 6: the cost of open ports with no traffic.
//!
//! Every tool serves the same idle ptys, each on its own TCP port, and is
//! measured over a window in which nothing happens: CPU time and context
//! switches (a wake-up of any thread) from `/proc`, then resident memory.
//! serialhub runs twice: one process per port, and one process serving every
//! port from a generated config file. A tool that serves all ports from one
//! process is also run with one port, so its marginal cost per port, the
//! memory that one more port adds, is told apart from the fixed cost of the
//! process.

use std::time::Duration;

use serialhub::measure::{Memory, context_switches, cpu_seconds, memory};

use crate::daemon::Daemon;
use crate::proxy::{self, Proxy, Setup, TOOLS, Tool};
use crate::pty::Pty;
use crate::report::{Chart, Section};

pub async fn idle(ports: usize, secs: u64) -> Section {
    let mut s = Section::new(
        format!("Idle cost: {ports} ports, no traffic"),
        &[
            "tool",
            "processes",
            "CPU over the window",
            "wake-ups per port per s",
            "RSS per port (total / ports)",
            "marginal RSS per port",
            "device held open",
        ],
    );
    s.notes.push(format!(
        "{ports} idle ptys, each served on its own TCP port, measured over {secs} s after 1 s of settling. \
         \"serialhub\" and socat run one process per port; \"serialhub, one process\" serves all ports from one \
         `serve --config` file (one `[[port]]` each); ser2net serves all ports from one process. \
         CPU is user + system time of all the tool's processes over the window (`/proc/PID/task/*/schedstat`, to the nanosecond). \
         Wake-ups are context switches of all their threads over the window (`/proc/PID/task/*/status`). \
         RSS is `VmRSS` at the end of the window. The marginal RSS per port of a one-process tool is \
         (RSS with {ports} ports - RSS with 1 port) / {}, from a run with one port measured the same way; \
         the anonymous figure does the same with `RssAnon` (heap and stacks, without the executable's and \
         libraries' pages, which vary by a few hundred KiB between runs). \
         For one process per port, a port costs a whole process.",
        ports.saturating_sub(1)
    ));
    let mut bars = Vec::new();
    let masters: Vec<Pty> = (0..ports).filter_map(|_| Pty::open().ok()).collect();
    let paths: Vec<String> = masters.iter().map(|m| m.path.clone()).collect();
    let n = paths.len();
    let mut rows = Vec::new();
    for tool in TOOLS {
        if tool == Tool::Ser2net4k {
            continue;
        }
        rows.push((tool.name(), measure(tool, &paths, secs).await));
        if tool == Tool::Serialhub {
            rows.push(("serialhub, one process", one_process(&paths, secs).await));
        }
    }
    for (name, result) in rows {
        match result {
            Ok(m) => {
                let held = if name.starts_with("serialhub") {
                    "yes"
                } else {
                    "no (opened per connection)"
                };
                let per_port = m.rss_kib as f64 / n as f64;
                let more = |all: u64, one: u64| (all as f64 - one as f64) / (n - 1) as f64;
                let marginal = match m.one_port {
                    Some(one) if n > 1 => format!(
                        "{:.1} KiB (anonymous: {:.1} KiB)",
                        more(m.rss_kib, one.rss_kib),
                        more(m.anon_kib, one.anon_kib)
                    ),
                    Some(_) => "n/a (one port)".into(),
                    None => format!("{per_port:.0} KiB (a process)"),
                };
                s.row(vec![
                    name.into(),
                    m.processes.to_string(),
                    format!("{:.2} s", m.cpu_s),
                    format!("{:.3}", m.wakeups as f64 / secs as f64 / n as f64),
                    format!("{per_port:.0} KiB"),
                    marginal,
                    held.into(),
                ]);
                bars.push((name.to_owned(), per_port));
            }
            Err(why) => s.skipped(name, &why),
        }
    }
    s.chart = Some(Chart {
        file: "idle.svg".into(),
        caption: format!(
            "RSS per idle port (total / ports), KiB, with {ports} ports (lower is better)"
        ),
        bars,
    });
    drop(masters);
    s
}

/// What one tool cost over the window, summed over its processes.
struct Cost {
    processes: usize,
    cpu_s: f64,
    wakeups: u64,
    rss_kib: u64,
    /// The anonymous part of `rss_kib` (see [`Memory::anon_kib`]).
    anon_kib: u64,
    /// The same tool serving one port, when it serves all from one process.
    one_port: Option<Box<Cost>>,
}

/// Lets `pids` settle for a second, then measures them over `secs`.
async fn window(pids: &[u32], secs: u64) -> Cost {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = || {
        pids.iter()
            .map(|&p| cpu_seconds(p).unwrap_or(0.0))
            .sum::<f64>()
    };
    let switches = || {
        pids.iter()
            .map(|&p| context_switches(p).unwrap_or(0))
            .sum::<u64>()
    };
    let (cpu0, sw0) = (cpu(), switches());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Cost {
        processes: pids.len(),
        cpu_s: cpu() - cpu0,
        wakeups: switches().saturating_sub(sw0),
        rss_kib: pids.iter().map(|&p| mem(p).current_kib).sum(),
        anon_kib: pids.iter().map(|&p| mem(p).anon_kib).sum(),
        one_port: None,
    }
}

fn mem(pid: u32) -> Memory {
    memory(pid).unwrap_or_default()
}

async fn measure(tool: Tool, paths: &[String], secs: u64) -> Result<Cost, String> {
    let setup = Setup {
        baud: 9600,
        clients: 1,
        ..Setup::default()
    };
    if tool == Tool::Ser2net {
        let one = proxy::start(tool, &paths[..1], &setup)?;
        let one_port = window(&[one.pid()], secs).await;
        drop(one);
        let all = proxy::start(tool, paths, &setup)?;
        let mut cost = window(&[all.pid()], secs).await;
        cost.one_port = Some(Box::new(one_port));
        return Ok(cost);
    }
    let procs: Vec<Proxy> = paths
        .iter()
        .map(|p| proxy::start(tool, std::slice::from_ref(p), &setup))
        .collect::<Result<_, _>>()?;
    let pids: Vec<u32> = procs.iter().map(Proxy::pid).collect();
    Ok(window(&pids, secs).await)
}

/// serialhub serving every path from one process, and, for the marginal
/// cost, the first path alone.
async fn one_process(paths: &[String], secs: u64) -> Result<Cost, String> {
    let one = Daemon::start(&paths[..1], 9600).await?;
    let one_port = window(&[one.pid()], secs).await;
    drop(one);
    let all = Daemon::start(paths, 9600).await?;
    let mut cost = window(&[all.pid()], secs).await;
    cost.one_port = Some(Box::new(one_port));
    Ok(cost)
}
