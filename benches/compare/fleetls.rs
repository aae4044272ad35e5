//! The fleet rows about the broker: how long `serialhub fleet ls --json`
//! takes with many hosts' ports registered, and how soon a stream through
//! `fleet://` flows again after the broker is killed with SIGKILL and
//! started again, with nothing lost or duplicated.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serialhub::pattern::{Checker, Generator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fleet::{Access, Pair};
use crate::fleethost::{Host, Port};
use crate::nats::{self, Nats};
use crate::proxy;
use crate::report::{Chart, Section, format_value};

/// `serialhub fleet ls --json --fleet URL`: how long it took, and how many
/// ports it listed.
async fn ls_once(url: &str) -> Result<(Duration, usize), String> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let out = Command::new(proxy::serialhub_bin())
            .args(["fleet", "ls", "--json", "--fleet", &url])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("fleet ls --json: {e}"))?;
        Ok((took, v.as_array().map_or(0, Vec::len)))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// `hosts` serialhub processes with `per` ports each, all in one fleet.
async fn start_hosts(nats: &Nats, hosts: usize, per: usize) -> Result<Vec<Host>, String> {
    let mut started = Vec::new();
    for h in 0..hosts {
        let url = nats.url();
        started.push(tokio::spawn(async move {
            // In-process simulators: cheap, and no two ports share one.
            let ports: Vec<Port> = (0..per)
                .map(|i| {
                    let device = if i % 2 == 0 {
                        "sim:sink"
                    } else {
                        "sim:loopback"
                    };
                    Port::new(&format!("q{i}"), device, 115_200, &["tcp:127.0.0.1:0"])
                })
                .collect();
            Host::start(Some((&url, &format!("h{h}"))), "5s", &ports).await
        }));
    }
    let mut out = Vec::new();
    for s in started {
        out.push(s.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

pub async fn ls(layouts: &[(usize, usize)], runs: usize) -> Section {
    let mut s = Section::new(
        "Fleet: `fleet ls --json` latency",
        &[
            "hosts",
            "ports",
            "median",
            "max",
            "runs",
            "ports listed in each run",
        ],
    );
    s.notes.push(format!(
        "`serialhub fleet ls --json --fleet URL` run as a user runs it (a new process: it connects to the broker, reads the registry bucket and prints every port), timed from its start to its exit, {runs} times in a row once every port is listed, against {} with the ports of H serialhub processes (16 in-process simulated devices each, `sim:sink` and `sim:loopback`, 5 s heartbeats) registered. No goal is set for it in issue 22.",
        nats::version()
    ));
    let mut bars = Vec::new();
    for &(hosts, per) in layouts {
        let want = hosts * per;
        match ls_layout(hosts, per, runs).await {
            Ok(done) => {
                let mut t: Vec<f64> = done.iter().map(|d| d.0.as_secs_f64() * 1e3).collect();
                t.sort_by(f64::total_cmp);
                let listed: Vec<String> = done.iter().map(|d| d.1.to_string()).collect();
                let all = done.iter().all(|d| d.1 == want);
                s.row(vec![
                    hosts.to_string(),
                    want.to_string(),
                    format!("{} ms", format_value(t[t.len() / 2])),
                    format!("{} ms", format_value(t[t.len() - 1])),
                    done.len().to_string(),
                    if all {
                        format!("all {want}")
                    } else {
                        listed.join(" · ")
                    },
                ]);
                bars.push((format!("{want} ports"), t[t.len() / 2]));
            }
            Err(why) => s.skipped(&hosts.to_string(), &why),
        }
    }
    s.chart = Some(Chart {
        file: "fleet-ls.svg".into(),
        caption: "`fleet ls --json`, median ms from start to exit (lower is better)".into(),
        bars,
    });
    s
}

async fn ls_layout(
    hosts: usize,
    per: usize,
    runs: usize,
) -> Result<Vec<(Duration, usize)>, String> {
    let nats = Nats::start().await?;
    let _hosts = start_hosts(&nats, hosts, per).await?;
    let want = hosts * per;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = ls_once(&nats.url()).await.map(|r| r.1);
        if listed == Ok(want) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "fleet ls listed {listed:?} of {want} ports after 60 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut done = Vec::new();
    for _ in 0..runs.max(1) {
        done.push(ls_once(&nats.url()).await?);
    }
    Ok(done)
}

/// Bytes the recovery row's client keeps written and not yet echoed: a
/// third of a second at 115200 baud, so the line never idles for want of
/// them.
const LEAD: u64 = 4096;

/// What the client of the recovery row saw.
#[derive(Default)]
struct Seen {
    /// When each read returned, in order.
    reads: Vec<Instant>,
    checker: Checker,
}

/// One recovery run's figures.
struct Recovery {
    /// From the broker accepting again to the first byte at the client.
    back: Duration,
    /// The longest silence at the client.
    silence: Duration,
    bytes: u64,
    errors: u64,
    /// Bytes written and never echoed, or echoed twice (more than written).
    missing: i64,
    first_error: Option<String>,
}

pub async fn recovery(pause: Duration, runs: usize) -> Section {
    let mut s = Section::new(
        "Fleet: recovery after a broker restart",
        &[
            "run",
            "broker back to bytes flowing",
            "longest silence at the client",
            "bytes echoed",
            "pattern errors",
            "lost or duplicated",
        ],
    );
    s.notes.push(format!(
        "The device host `a` serves `sim:loopback` at 115200 baud, the client host `b` serves it as `fleet://a/p`; one client of b writes the counter pattern, keeping 4 KiB written ahead of its echo, and reads the echo. After 2 s of flow, {} is killed with SIGKILL and started again on the same port with the same store after {} s; \"broker back to bytes flowing\" is the time from the restarted broker accepting a client (its `INFO` line) to the next byte reaching the client, through the broker and back. 1 s later the client stops writing and waits for the echo of everything it wrote: every byte must come back once, in order (the counter pattern from its first byte). Every run starts a fresh broker and fresh processes.",
        nats::version(),
        format_value(pause.as_secs_f64())
    ));
    let mut backs = Vec::new();
    for run in 1..=runs.max(1) {
        match recovery_once(pause).await {
            Ok(r) => {
                let ok = r.errors == 0 && r.missing == 0;
                s.row(vec![
                    run.to_string(),
                    format!("{:.0} ms", r.back.as_secs_f64() * 1e3),
                    format!("{} s", format_value(r.silence.as_secs_f64())),
                    r.bytes.to_string(),
                    r.errors.to_string(),
                    if ok {
                        "none".into()
                    } else {
                        format!("{} bytes; {:?}", r.missing, r.first_error)
                    },
                ]);
                backs.push((r.back.as_secs_f64(), ok));
            }
            Err(why) => s.skipped(&run.to_string(), &why),
        }
    }
    let mut sorted: Vec<f64> = backs.iter().map(|b| b.0).collect();
    sorted.sort_by(f64::total_cmp);
    s.notes.push(match sorted.get(sorted.len() / 2) {
        Some(&median) => format!(
            "Goal: bytes flow end to end within 2 s of the broker's return, nothing lost or duplicated. Median {:.0} ms, worst {:.0} ms ({}); lost or duplicated: {}.",
            median * 1e3,
            sorted[sorted.len() - 1] * 1e3,
            if sorted[sorted.len() - 1] <= 2.0 { "met in every run" } else if median <= 2.0 { "met in the median, not in every run" } else { "not met" },
            if backs.iter().all(|b| b.1) { "nothing, in every run" } else { "in some run (see the table)" }
        ),
        None => "Goal (streaming again within 2 s of the broker's return): not measured, every run failed.".into(),
    });
    let bars = sorted
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("run {}", i + 1), b * 1e3))
        .collect();
    s.chart = Some(Chart {
        file: "fleet-recovery.svg".into(),
        caption:
            "From the broker's return to bytes flowing again through fleet://, ms (lower is better)"
                .into(),
        bars,
    });
    s
}

async fn recovery_once(pause: Duration) -> Result<Recovery, String> {
    let mut pair = Pair::start("sim:loopback", 115_200, false, &[Access::Fleet]).await?;
    let stream = TcpStream::connect(pair.addr(Access::Fleet)?)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = stream.into_split();
    let seen = Arc::new(Mutex::new(Seen {
        checker: Checker::from_start(),
        ..Seen::default()
    }));
    let echoed = Arc::new(AtomicU64::new(0));
    let reader = {
        let (seen, echoed) = (seen.clone(), echoed.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n @ 1..) = rd.read(&mut buf).await {
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                s.reads.push(Instant::now());
                s.checker.feed(&buf[..n]);
                echoed.store(s.checker.bytes, Relaxed);
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, echoed) = (stop.clone(), echoed.clone());
        tokio::spawn(async move {
            let mut g = Generator::new();
            let mut buf = [0u8; 512];
            let mut written = 0u64;
            while !stop.load(Relaxed) {
                // At most LEAD bytes not yet echoed: the socket buffers
                // would otherwise take megabytes, which the line then
                // takes minutes to echo.
                if written - echoed.load(Relaxed) >= LEAD {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                g.fill(&mut buf);
                if wr.write_all(&buf).await.is_err() {
                    break;
                }
                written += buf.len() as u64;
            }
            (written, wr)
        })
    };
    let bytes = || seen.lock().map_or(0, |s| s.checker.bytes);
    wait_for(Duration::from_secs(20), || bytes() > 0).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.nats.kill9();
    tokio::time::sleep(pause).await;
    let back_at = pair.nats.restart().await?;
    let after = |s: &Seen| s.reads.iter().find(|&&t| t > back_at).copied();
    let got = || seen.lock().ok().and_then(|s| after(&s));
    wait_for(Duration::from_secs(30), || got().is_some())
        .await
        .map_err(|_| "no byte reached the client within 30 s of the broker's return".to_owned())?;
    let first = got().ok_or("no byte after the broker's return")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Relaxed);
    let (written, _wr) = writer.await.map_err(|e| e.to_string())?;
    // Everything written comes back.
    let _ = wait_for(Duration::from_secs(30), || bytes() >= written).await;
    // A duplicate would show once it arrives: a moment more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    reader.abort();
    let s = seen.lock().map_err(|e| e.to_string())?;
    let silence = s
        .reads
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    Ok(Recovery {
        back: first - back_at,
        silence,
        bytes: s.checker.bytes,
        errors: s.checker.errors,
        missing: written as i64 - s.checker.bytes as i64,
        first_error: s.checker.first_error.clone(),
    })
}

async fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
