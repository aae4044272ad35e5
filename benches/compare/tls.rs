//! The TLS rows (issue 21): the one-byte round trip, bulk both ways and the
//! 9600 baud flood through `tcp:...,tls`, beside socat's `OPENSSL-LISTEN`
//! and ser2net's `ssl` accepter with the same certificate, and serialhub's
//! plain TCP in the same run for the ratios; then the rate of full
//! handshakes. The measuring code is the plain scenarios', over a
//! connection that makes the TLS handshake first ([`Conn`]).

use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::measure::cpu_seconds;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::flood;
use crate::proxy::{self, Setup, Tool};
use crate::report::{Chart, Section, format_value};
use crate::throughput::{self, Quantiles};
use crate::tlsconn::{Conn, Tls};

/// Each row: a tool, over TLS or not. serialhub's plain TCP row is there
/// for the ratio the goals are stated in.
const ROWS: [(Tool, bool); 5] = [
    (Tool::Serialhub, false),
    (Tool::Serialhub, true),
    (Tool::Socat, true),
    (Tool::Ser2net, true),
    (Tool::Ser2net4k, true),
];

fn transport(secure: bool) -> &'static str {
    if secure { "TLS 1.3" } else { "TCP" }
}

fn label(tool: Tool, secure: bool) -> String {
    format!("{} {}", tool.name(), if secure { "TLS" } else { "TCP" })
}

fn tls_of(tls: &Tls, secure: bool) -> Option<&Tls> {
    secure.then_some(tls)
}

/// The small records of the flood's extra row.
const SMALL_RECORD: usize = 256;

const HOW: &str = "Every tool serves the same certificate (an ECDSA P-256 key, made by rcgen for `localhost` under a CA made alongside): serialhub `--listen tcp:127.0.0.1:0,tls --tls-cert --tls-key`, socat `OPENSSL-LISTEN:0,cert=...,key=...,verify=0` bridging to `FILE:<pty>,rawer`, ser2net `accepter: ssl(key=...,cert=...),tcp,127.0.0.1,PORT`; the client is rustls (ring provider) in the benchmark, which negotiates TLS 1.3 with each.";

pub async fn latency(tls: &Tls, samples: usize, runs: usize) -> Section {
    let runs = runs.max(1);
    let mut s = Section::new(
        "TLS: one-byte round trip through an echo device",
        &[
            "tool",
            "transport",
            "p50",
            "p99",
            "p99.9",
            "max",
            "samples per run",
            "p50 / p99 in each run",
        ],
    );
    s.notes.push(format!(
        "As the one-byte round trip above, through TLS: one client sends one byte and waits for its echo, {samples} times after 100 unmeasured ones (the handshake is not timed), through an unpaced echo simulator, with a fresh tool each run. Each figure is the median of {runs} run(s), taken in turns. {HOW}"
    ));
    let tools: Vec<(Tool, Option<&Tls>)> =
        ROWS.iter().map(|&(t, sec)| (t, tls_of(tls, sec))).collect();
    let results = throughput::in_turns(&tools, samples, runs).await;
    let mut bars = Vec::new();
    for (&(tool, secure), result) in ROWS.iter().zip(&results) {
        match result {
            Ok(done) => {
                let [p50, p99, p999, max] = throughput::median_quantiles(done);
                let each: Vec<String> = done
                    .iter()
                    .map(|q| format!("{:.0} / {:.0}", q[0], q[1]))
                    .collect();
                s.row(vec![
                    tool.name().into(),
                    transport(secure).into(),
                    format!("{p50:.0} µs"),
                    format!("{p99:.0} µs"),
                    format!("{p999:.0} µs"),
                    format!("{max:.0} µs"),
                    samples.to_string(),
                    each.join(" · "),
                ]);
                bars.push((label(tool, secure), p50));
            }
            Err(why) => skipped(&mut s, tool, secure, why),
        }
    }
    s.notes.push(latency_goal(&results));
    s.chart = Some(Chart {
        file: "tls-latency.svg".into(),
        caption: "One-byte round trip through TLS, p50 in µs, median of the runs (lower is better)"
            .into(),
        bars,
    });
    s
}

/// Issue 21's goal: serialhub's TLS p50 within 1.2 times its plain p50.
fn latency_goal(results: &[Result<Vec<Quantiles>, String>]) -> String {
    let (Ok(plain), Ok(secure)) = (&results[0], &results[1]) else {
        return "Goal (serialhub TLS p50 within 1.2x its plain TCP p50): not measured, a run failed."
            .into();
    };
    let ratio = |a: &Quantiles, b: &Quantiles| b[0] / a[0];
    let each: Vec<String> = plain
        .iter()
        .zip(secure)
        .map(|(a, b)| format!("{:.2}", ratio(a, b)))
        .collect();
    let m = throughput::median_quantiles(secure)[0] / throughput::median_quantiles(plain)[0];
    format!(
        "Goal: serialhub's TLS p50 within 1.2x its plain TCP p50. Medians: {m:.2}x ({}); in each run: {}.",
        if m <= 1.2 { "met" } else { "not met" },
        each.join(", ")
    )
}

pub async fn bulk(tls: &Tls, secs: u64, runs: usize) -> Section {
    let mut s = Section::new(
        "TLS: bulk throughput through an unpaced pty",
        &[
            "tool",
            "transport",
            "device to client",
            "client to device",
            "pattern errors",
        ],
    );
    s.notes.push(format!(
        "As the bulk scenario above, through TLS: the simulator reads or writes the pty as fast as it can; one client for {secs} s in each direction; each figure is the median of {runs} runs (pattern errors are summed over all). serialhub runs with `--no-pacing --slow-reader block`. {HOW}"
    ));
    let mut bars = Vec::new();
    let mut rates = Vec::new();
    for (tool, secure) in ROWS {
        let t = tls_of(tls, secure);
        let down = throughput::median(runs, || throughput::device_to_client(tool, secs, t)).await;
        let up = throughput::median(runs, || throughput::client_to_device(tool, secs, t)).await;
        match (down, up) {
            (Ok((d, e1)), Ok((u, e2))) => {
                s.row(vec![
                    tool.name().into(),
                    transport(secure).into(),
                    format!("{d:.1} MB/s"),
                    format!("{u:.1} MB/s"),
                    (e1 + e2).to_string(),
                ]);
                bars.push((format!("{} ↓", label(tool, secure)), d));
                bars.push((format!("{} ↑", label(tool, secure)), u));
                rates.push(Some((d, u)));
            }
            (Err(why), _) | (_, Err(why)) => {
                skipped(&mut s, tool, secure, &why);
                rates.push(None);
            }
        }
    }
    s.notes.push(match (rates[1], rates[2]) {
        (Some((d, u)), Some((sd, su))) => {
            let (rd, ru) = (d / sd, u / su);
            let met = |r: f64| if r >= 1.0 { "met" } else { "not met" };
            format!(
                "Goal: serialhub's TLS bulk at least 1.0x socat's OPENSSL. Device to client {rd:.2}x ({}), client to device {ru:.2}x ({}).",
                met(rd),
                met(ru)
            )
        }
        _ => "Goal (serialhub's TLS bulk at least 1.0x socat's OPENSSL): not measured, a run failed."
            .into(),
    });
    s.chart = Some(Chart {
        file: "tls-bulk.svg".into(),
        caption:
            "Bulk throughput through TLS, MB/s (↓ device to client, ↑ client to device; higher is better)"
                .into(),
        bars,
    });
    s
}

pub async fn flood(tls: &Tls, baud: u32, secs: u64, drain: u64, runs: usize) -> Section {
    let line = LineSettings::with_baud(baud);
    let rate = line.bytes_per_sec();
    let mut s = Section::new(
        format!("TLS: flood into a paced {baud} baud device ({rate:.0} B/s)"),
        &[
            "tool",
            "transport",
            "line utilisation",
            "max in flight",
            "max in flight (line time)",
            "mean in flight",
            "pattern errors",
            &format!("undelivered {drain} s after"),
            "peak RSS",
            "CPU during the flood",
            "max in flight in each run",
        ],
    );
    s.notes.push(format!(
        "As the flood scenario above, through TLS: one client writes the counter pattern as fast as it can for {secs} s, from a 2 KiB socket send buffer (and rustls holding at most 2 KiB). \"In flight\" is what has left the client's socket but has not reached the device, sampled after every write; over TLS, the records' bytes sent minus `SIOCOUTQ`, less TLS 1.3's 22 bytes per record in proportion, so in data bytes within a few bytes. serialhub's rows are the run with the median max in flight of {runs}, each with a fresh process; the peers, which pace nothing, run once. {HOW}"
    ));
    let mut bars = Vec::new();
    let mut inflight = Vec::new();
    // serialhub again, with a client that sends small records: TLS cannot
    // hand on a record's bytes before the whole record has arrived, so in
    // flight is plain text's plus about one of the client's records.
    let small = tls.with_records(SMALL_RECORD);
    let rows = ROWS
        .iter()
        .map(|&(tool, secure)| (tool, tls_of(tls, secure)))
        .chain([(Tool::Serialhub, Some(&small))]);
    for (tool, tls) in rows {
        let n = if tool == Tool::Serialhub {
            runs.max(1)
        } else {
            1
        };
        let mut done = Vec::new();
        let mut failed = None;
        for _ in 0..n {
            match flood::one(tool, &line, secs, drain, tls).await {
                Ok(f) => done.push(f),
                Err(why) => {
                    failed = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = failed {
            skipped(&mut s, tool, tls.is_some(), &why);
            inflight.push(None);
            continue;
        }
        let each: Vec<String> = done
            .iter()
            .map(|f| format!("{} s", format_value(f.inflight_s)))
            .collect();
        done.sort_by(|a, b| a.inflight_s.total_cmp(&b.inflight_s));
        let mut median = done.swap_remove(done.len() / 2);
        let records = match tls.and_then(|t| t.record) {
            Some(r) => format!(", {r} B records"),
            None => String::new(),
        };
        median
            .cells
            .insert(1, format!("{}{records}", transport(tls.is_some())));
        median.cells.push(if n > 1 {
            each.join(" · ")
        } else {
            "one run".into()
        });
        bars.push((
            format!("{}{records}", label(tool, tls.is_some())),
            median.inflight_s,
        ));
        inflight.push(Some(median.inflight_s));
        s.row(median.cells);
    }
    let record_s = |bytes: usize| (bytes + 22) as f64 / rate;
    s.notes.push(match (inflight[0], inflight[1], inflight[ROWS.len()]) {
        (Some(plain), Some(secure), Some(small)) => format!(
            "Goal: in flight through TLS the same as plain TCP (about 1.1 s of line time), taken as within 10% of it: {} s against {} s ({}). TLS cannot hand on any byte of a record before the whole record has arrived, so in flight can never be below one of the client's records: the benchmark's client sends records of up to 2 KiB ({} s of line time here); real clients send up to 16 KiB (17 s). Plain text's figure plus one record is {} s, and serialhub holds {} s. With {SMALL_RECORD}-byte records ({} s each) it holds {} s against plain text's {} s plus one record, {} s ({}).",
            format_value(secure),
            format_value(plain),
            if secure <= plain * 1.1 { "met" } else { "not met" },
            format_value(record_s(2048)),
            format_value(plain + record_s(2048)),
            format_value(secure),
            format_value(record_s(SMALL_RECORD)),
            format_value(small),
            format_value(plain),
            format_value(plain + record_s(SMALL_RECORD)),
            if small <= (plain + record_s(SMALL_RECORD)) * 1.1 {
                "within 10% of it"
            } else {
                "more than 10% over it"
            },
        ),
        _ => "Goal (in flight through TLS the same as plain TCP): not measured, a run failed."
            .into(),
    });
    s.chart = Some(Chart {
        file: format!("tls-flood-{baud}.svg"),
        caption: format!(
            "Bytes held in flight under flood through TLS, {baud} baud (seconds of line time, lower is better)"
        ),
        bars,
    });
    s
}

/// One tool's handshakes in one run.
struct Rate {
    done: u64,
    failed: u64,
    secs: f64,
    /// The server's CPU over the run, its forked children's included.
    cpu: f64,
}

pub async fn handshakes(tls: &Tls, secs: u64, runs: usize) -> Section {
    let runs = runs.max(1);
    let mut s = Section::new(
        "TLS: full handshakes per second",
        &[
            "tool",
            "handshakes per second",
            "server CPU per handshake",
            "handshakes per server CPU second",
            "failed",
            "handshakes per second in each run",
        ],
    );
    s.notes.push(format!(
        "One client connects, makes a full TLS 1.3 handshake (rustls, session resumption off, so no tickets or session ids are used), sends one byte and waits for its echo (so the server has finished the handshake), and resets the connection (so no tool lingers on it), then does it again, for {secs} s; each figure is the median of {runs} run(s), taken in turns, each with a fresh tool on an unpaced echo simulator. \"Per server CPU second\" is the handshake rate on one core of the server: handshakes over the server's user + system time (its threads' `schedstat`, plus its reaped children's `cutime + cstime`). socat runs with `fork`: a child per connection, which opens the device; ser2net also opens the device per connection; serialhub holds it open. The client shares the machine's 2 cores with the server. {HOW}"
    ));
    let tools = [Tool::Serialhub, Tool::Socat, Tool::Ser2net];
    let mut results: Vec<Result<Vec<Rate>, String>> =
        tools.iter().map(|_| Ok(Vec::new())).collect();
    for _ in 0..runs {
        for (&tool, result) in tools.iter().zip(&mut results) {
            let Ok(done) = result else { continue };
            match rate(tool, tls, secs).await {
                Ok(r) => done.push(r),
                Err(why) => *result = Err(why),
            }
        }
    }
    let mut bars = Vec::new();
    for (&tool, result) in tools.iter().zip(&results) {
        match result {
            Ok(done) => {
                let per_s = |r: &Rate| r.done as f64 / r.secs;
                let per_cpu = |r: &Rate| r.done as f64 / r.cpu.max(1e-9);
                let med = |f: &dyn Fn(&Rate) -> f64| {
                    let mut v: Vec<f64> = done.iter().map(f).collect();
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let (rate, on_core) = (med(&per_s), med(&per_cpu));
                let each: Vec<String> = done.iter().map(|r| format!("{:.0}", per_s(r))).collect();
                s.row(vec![
                    tool.name().into(),
                    format!("{rate:.0}"),
                    format!("{:.0} µs", 1e6 / on_core),
                    format!("{on_core:.0}"),
                    done.iter().map(|r| r.failed).sum::<u64>().to_string(),
                    each.join(" · "),
                ]);
                bars.push((tool.name().to_owned(), on_core));
            }
            Err(why) => s.skipped(tool.name(), why),
        }
    }
    s.chart = Some(Chart {
        file: "tls-handshakes.svg".into(),
        caption: "Full TLS 1.3 handshakes per second of the server's CPU (higher is better)".into(),
        bars,
    });
    s
}

async fn rate(tool: Tool, tls: &Tls, secs: u64) -> Result<Rate, String> {
    let echo = Sim::spawn_unpaced(SimMode::Echo).map_err(|e| e.to_string())?;
    let setup = Setup {
        baud: 115_200,
        // A tool may not have closed the last connection when the next
        // one comes.
        clients: 16,
        tls: Some(tls.files()),
        socat_fork: true,
        ..Setup::default()
    };
    let p = proxy::start(tool, &[echo.path().display().to_string()], &setup)?;
    // One unmeasured, which also shows the tool answers at all.
    one_handshake(p.addr(), tls).await?;
    let cpu0 = cpu_with_children(p.pid());
    let start = Instant::now();
    let (mut done, mut failed) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(secs) {
        match one_handshake(p.addr(), tls).await {
            Ok(()) => done += 1,
            Err(_) => failed += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // socat reaps its last children on SIGCHLD; give it the time to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = cpu_with_children(p.pid()) - cpu0;
    if done == 0 {
        return Err(format!("no handshake succeeded in {secs:.0} s"));
    }
    Ok(Rate {
        done,
        failed,
        secs,
        cpu,
    })
}

/// Connect, make the handshake, send a byte and wait for its echo (so the
/// server has finished its side of the handshake), then reset the
/// connection: no tool lingers on a closed connection (serialhub gives a
/// closing client 1 s, socat 0.5 s), so none holds a slot or a child.
async fn one_handshake(addr: std::net::SocketAddr, tls: &Tls) -> Result<(), String> {
    let mut c = Conn::connect(addr, Some(tls), true).await?;
    c.reset_on_close().map_err(|e| e.to_string())?;
    c.write_all(b"h").await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut b)).await {
        Ok(Ok(_)) if b == *b"h" => Ok(()),
        Ok(Ok(_)) => Err("a wrong echo".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no echo in 2 s".into()),
    }
}

/// A process's CPU seconds, its threads' and its reaped children's.
fn cpu_with_children(pid: u32) -> f64 {
    let own = cpu_seconds(pid).unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields 16 and 17 (cutime, cstime), counted after the command's ")".
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    own + ticks as f64 / hz
}

fn skipped(s: &mut Section, tool: Tool, secure: bool, why: &str) {
    let mut cells = vec![
        tool.name().to_owned(),
        transport(secure).to_owned(),
        format!("not run: {why}"),
    ];
    cells.resize(s.headers.len(), String::new());
    s.row(cells);
}
