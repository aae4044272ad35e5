//! Scenario 6: the cost of open ports with no traffic.

use std::time::Duration;

use serialhub::measure::{cpu_seconds, memory};

use crate::proxy::{self, Proxy, Setup, TOOLS, Tool};
use crate::report::{Chart, Section};

pub async fn idle(ports: usize, secs: u64) -> Section {
    let mut s = Section::new(
        format!("Idle cost: {ports} ports, no traffic"),
        &[
            "tool",
            "processes",
            "CPU per port",
            "RSS per port",
            "device held open",
        ],
    );
    s.notes.push(format!(
        "{ports} idle ptys, each served on its own TCP port, measured over {secs} s. serialhub and socat run one process per port; ser2net serves all ports from one process."
    ));
    let mut bars = Vec::new();
    let masters: Vec<_> = (0..ports).filter_map(|_| pty()).collect();
    let paths: Vec<String> = masters.iter().map(|m| m.1.clone()).collect();
    for tool in TOOLS {
        if tool == Tool::Ser2net4k {
            continue;
        }
        match measure(tool, &paths, secs).await {
            Ok((procs, cpu_pct, rss_kib)) => {
                let held = if tool == Tool::Serialhub {
                    "yes"
                } else {
                    "no (opened per connection)"
                };
                s.row(vec![
                    tool.name().into(),
                    procs.to_string(),
                    format!("{cpu_pct:.3}% CPU"),
                    format!("{:.0} KiB", rss_kib),
                    held.into(),
                ]);
                bars.push((tool.name().to_owned(), rss_kib));
            }
            Err(why) => s.skipped(tool.name(), &why),
        }
    }
    s.chart = Some(Chart {
        file: "idle.svg".into(),
        caption: format!("RSS per idle port, KiB, with {ports} ports (lower is better)"),
        bars,
    });
    drop(masters);
    s
}

fn pty() -> Option<(nix::pty::PtyMaster, String)> {
    use nix::fcntl::OFlag;
    let m = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).ok()?;
    nix::pty::grantpt(&m).ok()?;
    nix::pty::unlockpt(&m).ok()?;
    let path = nix::pty::ptsname_r(&m).ok()?;
    Some((m, path))
}

async fn measure(tool: Tool, paths: &[String], secs: u64) -> Result<(usize, f64, f64), String> {
    let setup = Setup {
        baud: 9600,
        clients: 1,
        ..Setup::default()
    };
    let procs: Vec<Proxy> = if tool == Tool::Ser2net {
        vec![proxy::start(tool, paths, &setup)?]
    } else {
        paths
            .iter()
            .map(|p| proxy::start(tool, std::slice::from_ref(p), &setup))
            .collect::<Result<_, _>>()?
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = |ps: &[Proxy]| {
        ps.iter()
            .map(|p| cpu_seconds(p.pid()).unwrap_or(0.0))
            .sum::<f64>()
    };
    let cpu0 = cpu(&procs);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let used = cpu(&procs) - cpu0;
    let rss: u64 = procs
        .iter()
        .map(|p| memory(p.pid()).unwrap_or_default().current_kib)
        .sum();
    let n = paths.len() as f64;
    Ok((procs.len(), 100.0 * used / secs as f64 / n, rss as f64 / n))
}
