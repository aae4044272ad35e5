//! Scenario: reloading one port while another streams (issue 10).
//!
//! One `serialhub serve --config` process serves port A (a `sim:source` at
//! 115200 baud, read by many TCP clients that check the counter pattern)
//! and port B (a `sim:echo`). While A streams, B is changed in the file and
//! `serialhub reload` is run: baud rates (changed in place), a max-clients
//! change (B restarts), an endpoint added and removed (that endpoint
//! rebinds). A's clients must see no gap in the pattern and keep the line
//! rate. No peer is measured: ser2net can reload its config on SIGHUP, but
//! a changed connection is only updated once its users disconnect, and it
//! cannot change one port's line settings in place while its clients stay.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serialhub::pattern::Checker;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::proxy;
use crate::report::Section;

const BAUD_A: u32 = 115_200;
/// How long `status` may take to show B's new line settings after the
/// reload command returned.
const APPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// B's baud rates, one per baud-rate reload, in turn.
const BAUDS_B: [u32; 4] = [19_200, 38_400, 57_600, 9_600];

/// What one of A's readers saw.
#[derive(Default)]
struct Reader {
    bytes: AtomicU64,
    /// Longest time between two reads, in µs, before and during the reloads.
    gap_before_us: AtomicU64,
    gap_during_us: AtomicU64,
    errors: AtomicU64,
    /// Its connection ended before the end of the run.
    ended: AtomicBool,
}

/// B's settings in one version of the file.
#[derive(Clone)]
struct B {
    baud: u32,
    max_clients: u32,
    /// A second endpoint (a unix socket) besides B's TCP one.
    extra: bool,
    what: &'static str,
}

struct Run {
    reloads: usize,
    failed_reloads: usize,
    /// Reloads after which `status` did not show B's new baud rate within
    /// [`APPLY_TIMEOUT`].
    not_applied: usize,
    /// Longest time from the reload command's return until `status` showed
    /// B's new baud rate.
    shown_after: Duration,
    errors: u64,
    dropped: usize,
    /// Slowest reader's share of the line rate, before and during.
    before: f64,
    during: f64,
    gap_before_ms: f64,
    gap_during_ms: f64,
    latencies: Vec<Duration>,
}

pub async fn reload(clients: usize, before_secs: u64, rounds: usize, runs: usize) -> Section {
    let mut s = Section::new(
        "Reloading one port while another streams",
        &[
            "run",
            "reloads of B",
            "failed / not applied",
            "A: pattern errors",
            "A: clients dropped",
            "A: slowest client, share of line rate, before",
            "during reloads",
            "A: longest read gap, before",
            "during reloads",
            "reload command p50",
            "max",
            "B's new line in status, at most after",
        ],
    );
    s.notes.push(format!(
        "One `serialhub serve --config` process serves port A (`sim:source` at {BAUD_A} baud, {clients} TCP clients, each checking the counter pattern with `pattern::Checker`) and port B (`sim:echo`, one TCP endpoint, no clients). After 1 s of warm-up and {before_secs} s of streaming (\"before\"), B is changed in the file and `serialhub --control SOCK reload` is run, once a second: {rounds} rounds of four baud-rate changes ({}; applied in place) then a max-clients change (B restarts), an endpoint added (a unix socket) and removed again. \"During\" runs from the first reload to 1 s after the last. Share of line rate is bytes read over the window against {:.0} B/s. The read gap is the longest time a client waited between two reads. The reload latency is the wall time of the `serialhub reload` command, a process start included. The command returns once the daemon has taken the new file; a line change then travels on B's device queue, so the last column is the longest wait, after the command returned, until `status --json` showed B's new baud rate (polled every 5 ms); \"not applied\" counts reloads where it did not within {} s. Each run starts a fresh process.",
        BAUDS_B.map(|b| b.to_string()).join(", "),
        serialhub::line::LineSettings::with_baud(BAUD_A).bytes_per_sec(),
        APPLY_TIMEOUT.as_secs()
    ));
    s.notes.push(
        "No peer is measured: ser2net re-reads its configuration on SIGHUP, but it applies a changed connection only once that connection's users have disconnected, so it has no live reload of one port comparable to this."
            .into(),
    );
    let mut all_lat = Vec::new();
    for i in 0..runs.max(1) {
        match one(clients, before_secs, rounds).await {
            Ok(r) => {
                let mut lat = r.latencies.clone();
                all_lat.extend(r.latencies.iter().copied());
                lat.sort();
                let ms = |d: Option<&Duration>| {
                    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
                        .unwrap_or_default()
                };
                s.row(vec![
                    (i + 1).to_string(),
                    r.reloads.to_string(),
                    format!("{} / {}", r.failed_reloads, r.not_applied),
                    r.errors.to_string(),
                    r.dropped.to_string(),
                    format!("{:.1}%", r.before * 100.0),
                    format!("{:.1}%", r.during * 100.0),
                    format!("{:.0} ms", r.gap_before_ms),
                    format!("{:.0} ms", r.gap_during_ms),
                    ms(lat.get(lat.len() / 2)),
                    ms(lat.last()),
                    ms(Some(&r.shown_after)),
                ]);
            }
            Err(why) => s.skipped(&(i + 1).to_string(), &why),
        }
    }
    if !all_lat.is_empty() {
        all_lat.sort();
        s.notes.push(format!(
            "Over all runs: {} reloads, the reload command took {:.1} ms at the median.",
            all_lat.len(),
            all_lat[all_lat.len() / 2].as_secs_f64() * 1e3
        ));
    }
    s
}

fn config(dir: &std::path::Path, clients: usize, b: &B) -> String {
    let mut t = format!(
        "[control]\nsocket = \"{}\"\n\n\
         [[port]]\nname = \"a\"\ndevice = \"sim:source\"\nbaud = {BAUD_A}\n\
         max-clients = {}\nlisten = [\"tcp:127.0.0.1:0\"]\n\n\
         [[port]]\nname = \"b\"\ndevice = \"sim:echo\"\nbaud = {}\nmax-clients = {}\n",
        dir.join("control.sock").display(),
        clients + 4,
        b.baud,
        b.max_clients,
    );
    t += &if b.extra {
        format!(
            "listen = [\"tcp:127.0.0.1:0\", \"unix:{}\"]\n",
            dir.join("b.sock").display()
        )
    } else {
        "listen = [\"tcp:127.0.0.1:0\"]\n".to_owned()
    };
    t
}

/// The versions of B to reload, in order.
fn schedule(rounds: usize) -> Vec<B> {
    let mut v = Vec::new();
    let mut max_clients = 8;
    for _ in 0..rounds.max(1) {
        for baud in BAUDS_B {
            v.push(B {
                baud,
                max_clients,
                extra: false,
                what: "baud",
            });
        }
        max_clients = if max_clients == 8 { 16 } else { 8 };
        let last = BAUDS_B[BAUDS_B.len() - 1];
        v.push(B {
            baud: last,
            max_clients,
            extra: false,
            what: "max-clients",
        });
        v.push(B {
            baud: last,
            max_clients,
            extra: true,
            what: "endpoint added",
        });
        v.push(B {
            baud: last,
            max_clients,
            extra: false,
            what: "endpoint removed",
        });
    }
    v
}

/// `serialhub --control SOCK ARGS`, with its output.
fn control(sock: &std::path::Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(env!("CARGO_BIN_EXE_serialhub"))
        .arg("--control")
        .arg(sock)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

fn status(sock: &std::path::Path) -> Result<serde_json::Value, String> {
    let out = control(sock, &["status", "--json"]).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
}

fn port<'a>(ports: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    ports.as_array()?.iter().find(|p| p["name"] == name)
}

/// The serve process. Killed when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn one(clients: usize, before_secs: u64, rounds: usize) -> Result<Run, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conf = dir.path().join("hub.toml");
    let sock = dir.path().join("control.sock");
    let first = B {
        baud: 9600,
        max_clients: 8,
        extra: false,
        what: "start",
    };
    std::fs::write(&conf, config(dir.path(), clients, &first)).map_err(|e| e.to_string())?;
    let child = proxy::spawn_quiet(
        Command::new(proxy::serialhub_bin())
            .args(["serve", "--config"])
            .arg(&conf),
    )?;
    let mut daemon = Daemon(child);
    // The control socket answers once every endpoint is bound.
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr: std::net::SocketAddr = loop {
        let s = sock.clone();
        let asked = tokio::task::spawn_blocking(move || status(&s))
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(ports) = &asked
            && let Some(a) = port(ports, "a").and_then(|p| p["endpoints"].get(0)?.as_str())
            && let Some(addr) = a.strip_prefix("tcp:").and_then(|a| a.parse().ok())
        {
            break addr;
        }
        if let Ok(Some(st)) = daemon.0.try_wait() {
            return Err(format!("serialhub exited with {st}"));
        }
        if Instant::now() > deadline {
            return Err(format!("serialhub did not answer status: {asked:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let readers: Vec<Arc<Reader>> = (0..clients).map(|_| Arc::default()).collect();
    let during = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for r in &readers {
        let stream: TcpStream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to A: {e}"))?;
        let (r, during, stop) = (r.clone(), during.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = stream;
            let mut checker = Checker::new();
            let mut buf = vec![0u8; 4096];
            let mut last: Option<Instant> = None;
            while !stop.load(Relaxed) {
                match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        r.ended.store(true, Relaxed);
                        break;
                    }
                    Ok(Ok(k)) => {
                        checker.feed(&buf[..k]);
                        r.bytes.fetch_add(k as u64, Relaxed);
                        let now = Instant::now();
                        if let Some(l) = last {
                            let gap = (now - l).as_micros() as u64;
                            let slot = if during.load(Relaxed) {
                                &r.gap_during_us
                            } else {
                                &r.gap_before_us
                            };
                            slot.fetch_max(gap, Relaxed);
                        }
                        last = Some(now);
                    }
                    // Waited 500 ms with nothing: the gap shows at the next read.
                    Err(_) => {}
                }
            }
            r.errors.store(checker.errors, Relaxed);
        }));
    }
    let snapshot = || readers.iter().map(|r| r.bytes.load(Relaxed)).collect();
    let slowest = |a: &Vec<u64>, b: &Vec<u64>, secs: f64| {
        let rate = serialhub::line::LineSettings::with_baud(BAUD_A).bytes_per_sec();
        a.iter()
            .zip(b)
            .map(|(x, y)| (y - x) as f64 / secs / rate)
            .fold(f64::INFINITY, f64::min)
    };

    // Warm-up: connections settle, and the gaps of connecting are not
    // counted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for r in &readers {
        r.gap_before_us.store(0, Relaxed);
    }
    let t0 = Instant::now();
    let s0: Vec<u64> = snapshot();
    tokio::time::sleep(Duration::from_secs(before_secs)).await;
    let s1: Vec<u64> = snapshot();
    let before = slowest(&s0, &s1, t0.elapsed().as_secs_f64());

    during.store(true, Relaxed);
    let t1 = Instant::now();
    let (mut failed, mut not_applied, mut latencies) = (0, 0, Vec::new());
    let mut shown_after = Duration::ZERO;
    let versions = schedule(rounds);
    for b in &versions {
        let next = Instant::now() + Duration::from_secs(1);
        std::fs::write(&conf, config(dir.path(), clients, b)).map_err(|e| e.to_string())?;
        let s = sock.clone();
        let baud = b.baud;
        let (took, ok, shown) = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let out = control(&s, &["reload"]);
            let took = t.elapsed();
            let ok = out.is_ok_and(|o| o.status.success());
            // The command returns once the daemon has taken the new file; a
            // line change then waits on B's device queue, so `status` may
            // show it a little later.
            let done = Instant::now();
            let shown = loop {
                let line = status(&s).ok().and_then(|p| {
                    port(&p, "b").and_then(|b| b["line"].as_str().map(str::to_owned))
                });
                if line.is_some_and(|l| l.starts_with(&format!("{baud} "))) {
                    break Some(done.elapsed());
                }
                if done.elapsed() > APPLY_TIMEOUT {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            (took, ok, shown)
        })
        .await
        .map_err(|e| e.to_string())?;
        latencies.push(took);
        if !ok {
            failed += 1;
            eprintln!("reload ({}) failed", b.what);
        }
        match shown {
            Some(after) => shown_after = shown_after.max(after),
            None => {
                not_applied += 1;
                eprintln!("reload ({}): B's status never showed {baud} baud", b.what);
            }
        }
        tokio::time::sleep_until(next.into()).await;
    }
    let s2: Vec<u64> = snapshot();
    let during_share = slowest(&s1, &s2, t1.elapsed().as_secs_f64());
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    drop(daemon);
    let max_ms = |f: fn(&Reader) -> &AtomicU64| {
        readers
            .iter()
            .map(|r| f(r).load(Relaxed))
            .max()
            .unwrap_or(0) as f64
            / 1e3
    };
    Ok(Run {
        reloads: versions.len(),
        failed_reloads: failed,
        not_applied,
        shown_after,
        errors: readers.iter().map(|r| r.errors.load(Relaxed)).sum(),
        dropped: readers.iter().filter(|r| r.ended.load(Relaxed)).count(),
        before,
        during: during_share,
        gap_before_ms: max_ms(|r| &r.gap_before_us),
        gap_during_ms: max_ms(|r| &r.gap_during_us),
        latencies,
    })
}
