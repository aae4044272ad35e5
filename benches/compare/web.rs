//! Scenario `web` (issue 23): the web console's terminal WebSocket against a
//! raw TCP client of the same port: keystroke echo while the port streams
//! to 16 other clients, the memory a viewer costs, and the CPU per MB of a
//! 16-viewer fan-out. serialhub alone: no other tool has a web console.
//!
//! The viewers speak the terminal protocol as the page does: they read the
//! `hello`, then acknowledge every binary frame they take (`{"type":"ack",
//! "bytes":K}`, K counting all binary bytes so far), which is what keeps the
//! server sending; one that stopped acking would be a slow reader.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serialhub::device::SimMode;
use serialhub::line::LineSettings;
use serialhub::measure::{cpu_seconds, memory};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::fanout::median_run;
use crate::readers::Readers;
use crate::report::{Chart, Section};
use crate::webclient::{BAUD, TcpProbe, Viewer, Web};

/// A TCP client that writes lines at `share` of the line rate into the echo
/// device, so the port streams them to every client, and reads them back.
fn flood(addr: SocketAddr, share: f64, stop: Arc<AtomicBool>) -> JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut rd, mut wr) = tokio::io::split(s);
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 16384];
            while matches!(rd.read(&mut buf).await, Ok(k) if k > 0) {}
        });
        let rate = LineSettings::with_baud(BAUD).bytes_per_sec() * share;
        // 64-byte lines of letters and digits: never a probe byte.
        let line = b"flood abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQR\r\n";
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate) as u64 / line.len() as u64;
            while sent < due {
                wr.write_all(line).await.map_err(|e| e.to_string())?;
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drain.abort();
        Ok(())
    })
}

/// p50 and p99 of round trips in ms.
fn quantiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.99))
}

struct Echo {
    web: (f64, f64),
    tcp: (f64, f64),
    /// The bytes the 16 readers took, as a share of the line rate.
    min_share: f64,
}

/// Keystroke echo, in turns: the web console's, then the TCP client's, on
/// one sim:echo port that streams at 90% of the line rate to 16 readers.
async fn echo_run(samples: usize) -> Result<Echo, String> {
    let w = Web::start(SimMode::Echo).await?;
    let (web_probe, tcp_probe) = (b'!', b'#');
    let stop = Arc::new(AtomicBool::new(false));
    let readers = Readers::connect(&[w.tcp; 15]).await?;
    let flooder = flood(w.tcp, 0.9, stop.clone());
    let mut viewer = w.viewer(Some(web_probe)).await?;
    let mut tcp = TcpProbe::connect(w.tcp, tcp_probe).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = readers.bytes();
    let t0 = Instant::now();
    let (mut web_ms, mut tcp_ms) = (Vec::new(), Vec::new());
    let timeout = Duration::from_secs(5);
    for _ in 0..samples {
        let sent = Instant::now();
        viewer
            .keys
            .send(vec![web_probe])
            .await
            .map_err(|_| "the viewer's WebSocket closed")?;
        match tokio::time::timeout(timeout, viewer.echoes.recv()).await {
            Ok(Some(at)) => web_ms.push(at.duration_since(sent).as_secs_f64() * 1e3),
            _ => return Err("a keystroke through the web console did not come back".into()),
        }
        let sent = Instant::now();
        tcp.stream
            .write_all(&[tcp_probe])
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(timeout, tcp.echoes.recv()).await {
            Ok(Some(at)) => tcp_ms.push(at.duration_since(sent).as_secs_f64() * 1e3),
            _ => return Err("a keystroke through TCP did not come back".into()),
        }
        // About a typist's pace.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let min = readers
        .bytes()
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .min()
        .unwrap_or(0);
    stop.store(true, Relaxed);
    let _ = flooder.await;
    drop(readers);
    Ok(Echo {
        web: quantiles(web_ms),
        tcp: quantiles(tcp_ms),
        min_share: min as f64 / (LineSettings::with_baud(BAUD).bytes_per_sec() * elapsed),
    })
}

pub async fn echo(samples: usize, runs: usize) -> Section {
    let mut s = Section::new(
        "Web console: keystroke echo while the port streams to 16 clients",
        &["client", "p50", "p99", "readers' share of the line rate"],
    );
    s.notes.push(format!(
        "One `sim:echo` port at {BAUD} baud. A TCP client writes lines into it at 90% of the line rate, so the device streams them to it and 15 more TCP readers; meanwhile a web console viewer (the terminal WebSocket, acking every frame as the page does) and a raw TCP client each type one byte and wait for its echo, in turns, {samples} times each with 20 ms between. Each figure is the median over {runs} runs of a fresh serialhub. The issue's goal: p99 under 50 ms through the web console."
    ));
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        match echo_run(samples).await {
            Ok(e) => all.push(e),
            Err(why) => {
                s.skipped("serialhub", &why);
                return s;
            }
        }
    }
    let med = |f: fn(&Echo) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let share = format!("{:.1}%", med(|e| e.min_share) * 100.0);
    let (w50, w99, t50, t99) = (
        med(|e| e.web.0),
        med(|e| e.web.1),
        med(|e| e.tcp.0),
        med(|e| e.tcp.1),
    );
    s.row(vec![
        "web console (WebSocket)".into(),
        format!("{w50:.1} ms"),
        format!("{w99:.1} ms"),
        share.clone(),
    ]);
    s.row(vec![
        "raw TCP client".into(),
        format!("{t50:.1} ms"),
        format!("{t99:.1} ms"),
        share,
    ]);
    s.chart = Some(Chart {
        file: "web-echo.svg".into(),
        caption: "Keystroke echo p99 with the port streaming to 16 clients, ms (lower is better)"
            .into(),
        bars: vec![("serialhub web".into(), w99), ("serialhub TCP".into(), t99)],
    });
    s
}

struct Mem {
    none_kib: f64,
    with_kib: f64,
    anon_none: f64,
    anon_with: f64,
    /// (with - none) / clients.
    per_kib: f64,
}

/// serialhub's RSS on a streaming port with no client, then with `n`
/// viewers (web) or readers (TCP), each after a few seconds of settling.
async fn mem_run(n: usize, web: bool) -> Result<Mem, String> {
    let w = Web::start(SimMode::Source).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m0 = memory(w.pid()).map_err(|e| e.to_string())?;
    let mut viewers = Vec::new();
    let mut readers = None;
    if web {
        for _ in 0..n {
            viewers.push(w.viewer(None).await?);
        }
    } else {
        readers = Some(Readers::connect(&vec![w.tcp; n]).await?);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m1 = memory(w.pid()).map_err(|e| e.to_string())?;
    drop((viewers, readers));
    let (none_kib, with_kib) = (m0.current_kib as f64, m1.current_kib as f64);
    Ok(Mem {
        none_kib,
        with_kib,
        per_kib: (with_kib - none_kib) / n as f64,
        anon_none: m0.anon_kib as f64,
        anon_with: m1.anon_kib as f64,
    })
}

pub async fn memory_per_viewer(n: usize, runs: usize) -> Section {
    let mut s = Section::new(
        format!("Web console: memory per viewer ({n} viewers)"),
        &[
            "client",
            "RSS with none",
            &format!("RSS with {n}"),
            "per client",
            "per client, anonymous",
        ],
    );
    s.notes.push(format!(
        "A `sim:source` port at {BAUD} baud; serialhub's `VmRSS` after 2 s with no client, then 3 s after {n} clients joined (web viewers get the port's 64 KiB scrollback first). Per client: (with - none) / {n}; anonymous: the same of `RssAnon`. Each row is the run with the median per-client figure of {runs} fresh processes."
    ));
    let mut bars = Vec::new();
    for (label, web) in [("web viewer (WebSocket)", true), ("TCP reader", false)] {
        match median_run(runs, |m: &Mem| m.per_kib, || mem_run(n, web)).await {
            Ok(m) => {
                s.row(vec![
                    label.into(),
                    format!("{:.0} KiB", m.none_kib),
                    format!("{:.0} KiB", m.with_kib),
                    format!("{:.1} KiB", m.per_kib),
                    format!("{:.1} KiB", (m.anon_with - m.anon_none) / n as f64),
                ]);
                bars.push((label.to_owned(), m.per_kib));
            }
            Err(why) => s.skipped(label, &why),
        }
    }
    s.chart = Some(Chart {
        file: "web-memory.svg".into(),
        caption: "serialhub RSS per client, KiB (lower is better)".into(),
        bars,
    });
    s
}

struct Fan {
    cpu_per_mb: f64,
    min_share: f64,
    errors: u64,
}

/// 16 web viewers or 16 TCP readers on a paced source, for `secs`.
async fn fan_run(n: usize, secs: u64, web: bool) -> Result<Fan, String> {
    let w = Web::start(SimMode::Source).await?;
    let mut viewers = Vec::new();
    let mut readers = None;
    if web {
        for _ in 0..n {
            viewers.push(w.viewer(None).await?);
        }
    } else {
        readers = Some(Readers::connect(&vec![w.tcp; n]).await?);
    }
    let bytes = |v: &[Viewer], r: &Option<Readers>| -> Vec<u64> {
        match r {
            Some(r) => r.bytes(),
            None => v.iter().map(|v| v.bytes.load(Relaxed)).collect(),
        }
    };
    // Past the scrollback burst a viewer gets when it joins.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cpu0 = cpu_seconds(w.pid()).map_err(|e| e.to_string())?;
    let before = bytes(&viewers, &readers);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(w.pid()).map_err(|e| e.to_string())? - cpu0;
    let got: Vec<u64> = bytes(&viewers, &readers)
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    let errors = match readers {
        Some(r) => r.finish().await,
        None => viewers.iter().map(|v| v.errors.load(Relaxed)).sum(),
    };
    let mb = got.iter().sum::<u64>() as f64 / 1e6;
    let min = got.iter().copied().min().unwrap_or(0) as f64;
    Ok(Fan {
        cpu_per_mb: if mb > 0.0 { cpu / mb } else { f64::NAN },
        min_share: min / (LineSettings::with_baud(BAUD).bytes_per_sec() * elapsed),
        errors,
    })
}

pub async fn fanout(n: usize, secs: u64, runs: usize) -> Section {
    let mut s = Section::new(
        format!("Web console: {n}-viewer fan-out on a {BAUD} baud source"),
        &[
            "clients",
            "CPU per MB delivered",
            "slowest client, share of line rate",
            "pattern errors",
        ],
    );
    s.notes.push(format!(
        "{n} clients read a `sim:source` port's whole stream for {secs} s: terminal WebSockets (acking every frame) against raw TCP readers. CPU is serialhub's user + system time over the window (`/proc/PID/task/*/schedstat`); each row is the run with the median CPU per MB of {runs}."
    ));
    let mut bars = Vec::new();
    for (label, web) in [
        (format!("{n} web viewers"), true),
        (format!("{n} TCP readers"), false),
    ] {
        match median_run(runs, |f: &Fan| f.cpu_per_mb, || fan_run(n, secs, web)).await {
            Ok(f) => {
                s.row(vec![
                    label.clone(),
                    format!("{:.3} CPU-s/MB", f.cpu_per_mb),
                    format!("{:.1}%", f.min_share * 100.0),
                    f.errors.to_string(),
                ]);
                bars.push((label, f.cpu_per_mb));
            }
            Err(why) => s.skipped(&label, &why),
        }
    }
    s.chart = Some(Chart {
        file: "web-fanout.svg".into(),
        caption: format!("CPU seconds per MB delivered to {n} clients (lower is better)"),
        bars,
    });
    s
}
