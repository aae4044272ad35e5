//! Side-by-side comparison of serialhub with socat and ser2net, on the same
//! simulated devices, in one run. Run it through `bench/compare`.
//!
//! `cargo bench --bench compare -- [--quick] [--only flood,bulk,latency,fanout,stall,idle,ports,txn,reload,rfc2217,tls,fleet,web] [--tools serialhub,socat,ser2net,ser2net-4k]`
//!
//! `--tools` runs only the tools named (the others are reported skipped);
//! `SERIALHUB_BIN=PATH` runs another serialhub build (in the scenarios that
//! start it through `proxy` or `daemon`: flood, bulk, latency, fanout, stall,
//! idle, ports, tls), so two builds can be compared in turns on a shared
//! machine.
//!
//! Quick mode (under 2 minutes) prints the tables. Full mode (about 40
//! minutes) also writes `bench/RESULTS.md` and one SVG chart per scenario
//! under `bench/plots/`; with `--only`, it replaces only the sections of the
//! scenarios run (adding them if new) and redraws only their charts.

mod daemon;
mod fanout;
mod fleet;
mod fleetbulk;
mod fleethost;
mod fleetls;
mod flood;
mod idle;
mod nats;
mod ports;
mod proxy;
mod pty;
mod readers;
mod reload;
mod report;
mod rfc2217;
mod throughput;
mod tls;
mod tlsconn;
mod txn;
mod web;
mod webclient;

use std::time::Instant;

use report::Section;

struct Plan {
    quick: bool,
    only: Option<Vec<String>>,
}

impl Plan {
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    }
}

fn parse_args() -> Plan {
    let mut plan = Plan {
        quick: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => plan.quick = true,
            "--only" => plan.only = it.next().map(|v| v.split(',').map(String::from).collect()),
            "--tools" => {
                let tools = it.next().map(|v| v.split(',').map(String::from).collect());
                let _ = proxy::SELECTED.set(tools.unwrap_or_default());
            }
            "--bench" => {}
            other => {
                eprintln!(
                    "unknown flag {other}; usage: bench/compare [--quick] [--only flood,bulk,latency,fanout,stall,idle,ports,txn,reload,rfc2217,tls,fleet,web] [--tools serialhub,socat,ser2net,ser2net-4k]"
                );
                std::process::exit(2);
            }
        }
    }
    plan
}

fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let version = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            })
            .and_then(|t| {
                t.lines()
                    .find(|l| l.contains("version"))
                    .map(|l| l.trim().to_owned())
            })
            .unwrap_or_else(|| "not installed".into())
    };
    format!(
        "{cpus} CPUs (`nproc`), Linux {}; serialhub {}; {}; {}",
        kernel.trim(),
        env!("CARGO_PKG_VERSION"),
        version("socat", "-V"),
        version("ser2net", "-v")
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plan = parse_args();
    let q = plan.quick;
    let started = Instant::now();
    let mut sections: Vec<Section> = Vec::new();
    let mut lap = Instant::now();
    let mut run = |s: Section| {
        print!("{}", s.markdown(None));
        eprintln!("({} took {:.0} s)", s.title, lap.elapsed().as_secs_f64());
        lap = Instant::now();
        sections.push(s);
    };
    if plan.wants("flood") {
        let (secs, drain, runs) = if q { (2, 1, 1) } else { (15, 10, 3) };
        run(flood::run(9600, secs, drain, runs).await);
        run(flood::run(115_200, secs, drain, runs).await);
    }
    if plan.wants("bulk") {
        run(throughput::bulk(if q { 1 } else { 5 }, if q { 1 } else { 3 }).await);
    }
    if plan.wants("latency") {
        run(throughput::latency(if q { 2000 } else { 10_000 }, if q { 1 } else { 3 }).await);
    }
    if plan.wants("fanout") {
        let counts: &[usize] = if q {
            &[1, 16, 128]
        } else {
            &[1, 16, 256, 1024]
        };
        run(fanout::fanout(counts, if q { 1 } else { 5 }, if q { 1 } else { 3 }).await);
    }
    if plan.wants("stall") {
        run(fanout::stall(if q { 8 } else { 15 }, if q { 3 } else { 10 }).await);
    }
    if plan.wants("idle") {
        run(idle::idle(if q { 8 } else { 64 }, if q { 1 } else { 10 }).await);
    }
    if plan.wants("ports") {
        let counts: &[usize] = if q { &[8] } else { &[16, 64] };
        run(ports::ports(counts, if q { 2 } else { 5 }, if q { 1 } else { 3 }).await);
    }
    if plan.wants("txn") {
        run(txn::txn(if q { 2 } else { 10 }, if q { 1 } else { 3 }).await);
    }
    if plan.wants("reload") {
        let (before, rounds, runs) = if q { (2, 1, 1) } else { (5, 2, 3) };
        run(reload::reload(16, before, rounds, runs).await);
    }
    if plan.wants("rfc2217") {
        let runs = if q { 1 } else { 3 };
        run(rfc2217::latency(if q { 1000 } else { 5000 }, runs).await);
        run(rfc2217::bulk(if q { 1 } else { 5 }, runs).await);
        let (secs, drain) = if q { (2, 1) } else { (10, 5) };
        run(rfc2217::flood_section(9600, secs, drain, runs).await);
    }
    // `tls` runs every TLS section; `tls-flood` only the flood.
    let (all_tls, tls_flood) = (plan.wants("tls"), plan.wants("tls-flood"));
    if all_tls || tls_flood {
        match tlsconn::Tls::new() {
            Ok(t) => {
                let runs = if q { 1 } else { 3 };
                if all_tls {
                    run(tls::latency(&t, if q { 2000 } else { 10_000 }, runs).await);
                    run(tls::bulk(&t, if q { 1 } else { 5 }, runs).await);
                }
                let (secs, drain) = if q { (2, 1) } else { (15, 10) };
                run(tls::flood(&t, 9600, secs, drain, runs).await);
                if all_tls {
                    run(tls::handshakes(&t, if q { 2 } else { 10 }, runs).await);
                }
            }
            Err(e) => eprintln!("tls: cannot make the certificates: {e}"),
        }
    }
    if plan.wants("fleet") {
        let runs = if q { 1 } else { 3 };
        run(fleet::latency(if q { 1000 } else { 5000 }, runs).await);
        run(fleetbulk::bulk(if q { 2 } else { 10 }, if q { 1 } else { 5 }, runs).await);
        let (secs, drain) = if q { (2, 3) } else { (10, 10) };
        run(fleetbulk::flood_section(9600, secs, drain, runs).await);
        run(fleetls::ls(&[(1, 16), (16, 16)], if q { 5 } else { 20 }).await);
        run(fleetls::recovery(std::time::Duration::from_secs(2), runs).await);
    }
    if plan.wants("web") {
        let runs = if q { 1 } else { 5 };
        run(web::echo(if q { 100 } else { 500 }, runs).await);
        run(web::memory_per_viewer(if q { 16 } else { 64 }, runs).await);
        run(web::fanout(16, if q { 2 } else { 10 }, runs).await);
    }
    eprintln!("comparison took {:.0} s", started.elapsed().as_secs_f64());
    // A complete full run replaces bench/RESULTS.md's tables; a full run of
    // some scenarios replaces only their sections (and redraws their
    // charts), keeping the others' tables.
    match (&plan.only, q) {
        (None, false) => write_results(&sections),
        (Some(only), false) => {
            draw_charts(&sections);
            merge_results(&sections, &only.join(","));
        }
        (_, true) => {}
    }
}

/// Replaces the sections run in bench/RESULTS.md (or adds them after the
/// others, before the analysis), each noting when and how it was measured.
fn merge_results(sections: &[Section], only: &str) {
    let path = "bench/RESULTS.md";
    let old = match std::fs::read_to_string(path) {
        Ok(old) => old,
        Err(e) => {
            eprintln!("cannot read {path} ({e}); run the full bench/compare to write it");
            return;
        }
    };
    let (tables, analysis) = old.split_at(old.find(ANALYSIS_MARKER).unwrap_or(old.len()));
    let stamp = format!(
        "Measured on {} by `bench/compare --only {only}` (full mode), on {}; the sections above it may come from another run.",
        today(),
        machine()
    );
    let new: Vec<String> = sections
        .iter()
        .map(|s| {
            let mut s = s.clone();
            // A paragraph of its own.
            s.notes.insert(0, stamp.clone() + "\n");
            s.markdown(Some("plots"))
        })
        .collect();
    match std::fs::write(path, report::merge_sections(tables, &new) + analysis) {
        Ok(()) => eprintln!("updated {} section(s) of {path}", new.len()),
        Err(e) => eprintln!("cannot write {path}: {e}"),
    }
}

fn draw_charts(sections: &[Section]) {
    let plots = std::path::Path::new("bench/plots");
    for c in sections.iter().filter_map(|s| s.chart.as_ref()) {
        match report::bar_chart(&plots.join(&c.file), c) {
            Ok(()) => eprintln!("drew {}", plots.join(&c.file).display()),
            Err(e) => eprintln!("chart {}: {e}", c.file),
        }
    }
}

/// Where the generated tables end in `bench/RESULTS.md`.
const ANALYSIS_MARKER: &str = "<!-- analysis: kept when the tables are regenerated -->";

fn write_results(sections: &[Section]) {
    let plots = "bench/plots";
    if let Err(e) = std::fs::create_dir_all(plots) {
        eprintln!("cannot create {plots}: {e}");
        return;
    }
    let mut md = String::from("# Benchmark results\n\n");
    md += &format!(
        "Measured on {} by `bench/compare` (full mode), on {}.\n\n",
        today(),
        machine()
    );
    md += "Every tool runs on the same simulated devices (serialhub's pty simulator, or a pty the benchmark drives itself), started fresh for each measurement. Timings on a shared 2-core machine are noisy: compare tools within one run rather than across runs.\n\n";
    for s in sections {
        md += &s.markdown(Some("plots"));
        if let Some(c) = &s.chart
            && let Err(e) = report::bar_chart(&std::path::Path::new(plots).join(&c.file), c)
        {
            eprintln!("chart {}: {e}", c.file);
        }
    }
    // A hand-written analysis below the marker survives a new run.
    if let Ok(old) = std::fs::read_to_string("bench/RESULTS.md")
        && let Some(i) = old.find(ANALYSIS_MARKER)
    {
        md += &old[i..];
    }
    match std::fs::write("bench/RESULTS.md", md) {
        Ok(()) => eprintln!("wrote bench/RESULTS.md and {plots}/"),
        Err(e) => eprintln!("cannot write bench/RESULTS.md: {e}"),
    }
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
