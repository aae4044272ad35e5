//! The fleet rows' bulk transfers (at 115200 baud and on an unpaced line,
//! both directions) and the 9600 baud flood's in-flight bound, through
//! `fleet://` against `rfc2217://` (and, for the flood, direct TCP), between
//! the two hosts of [`fleet::Pair`].

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::measure::flood;
use tokio::net::{TcpSocket, TcpStream};

use crate::fleet::{self, Access, Pair};
use crate::report::{Chart, Section, format_value};
use crate::throughput;
use crate::tlsconn::Conn;

const BAUD: u32 = 115_200;
const REMOTE: [Access; 2] = [Access::Rfc2217, Access::Fleet];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `paced_secs` at 115200 baud, `unpaced_secs` on an unpaced line, each
/// direction, each kind of access, `runs` times.
pub async fn bulk(paced_secs: u64, unpaced_secs: u64, runs: usize) -> Section {
    let rate = LineSettings::with_baud(BAUD).bytes_per_sec();
    let mut s = Section::new(
        "Fleet: bulk at 115200 baud and on an unpaced line",
        &[
            "line",
            "access",
            "device to client",
            "client to device",
            "pattern errors",
        ],
    );
    s.notes.push(format!(
        "The device host `a` serves a simulated source (device to client) or sink (client to device) and the client host `b` serves it as `fleet://a/p` or `rfc2217://`; one client of b reads or writes the counter pattern; every measurement starts a fresh broker and fresh processes. At 115200 baud the simulator and both serialhubs pace at the line rate ({rate:.0} B/s): the figure is the share of it delivered, device to client over {paced_secs} s after 0.3 s of warm-up, client to device as the flood scenario's line utilisation over {paced_secs} s of writing as fast as b takes it. Unpaced, the simulator reads or writes its pty as fast as it can and both serialhubs run `pacing = false`, `slow-reader = \"block\"` (as the bulk scenario above), for {unpaced_secs} s. Each figure is the median of {runs} run(s); pattern errors are summed. A share of the line above 100% is the start of the window: the device's buffer taking a burst, which weighs less over a longer run."
    ));
    let mut bars = Vec::new();
    let mut paced_use: Vec<Option<(f64, f64)>> = Vec::new();
    let mut stalled = false;
    for paced in [true, false] {
        let secs = if paced { paced_secs } else { unpaced_secs };
        for access in REMOTE {
            let (mut down, mut up, mut errors) = (vec![], vec![], 0);
            let mut failures = Vec::new();
            for _ in 0..runs.max(1) {
                let r = async {
                    Ok::<_, String>((
                        down_once(access, paced, secs).await?,
                        up_once(access, paced, secs).await?,
                    ))
                }
                .await;
                match r {
                    Ok(((d, e1), (u, e2))) => {
                        down.push(d);
                        up.push(u);
                        errors += e1 + e2;
                    }
                    Err(why) => failures.push(why),
                }
            }
            let line = if paced { "115200 baud" } else { "unpaced" };
            // A failed run is told, and the others still count.
            if let Some(why) = failures.first() {
                s.notes.push(format!(
                    "{line}, {}: {} of {runs} run(s) failed, first: {why}",
                    access.name(),
                    failures.len()
                ));
            }
            if down.is_empty() {
                s.skipped(&format!("{line} {}", access.name()), "every run failed");
                if paced {
                    paced_use.push(None);
                }
                continue;
            }
            let (d, u) = (median(down), median(up));
            stalled |= !paced && d.min(u) < 1e6;
            let cell = |v: f64| {
                if paced {
                    format!("{:.1}% ({v:.0} B/s)", 100.0 * v / rate)
                } else if v < 1e6 {
                    // Less than a MB/s unpaced is a stall, not a rate.
                    format!("stalled ({:.0} KiB/s)", v / 1024.0)
                } else {
                    format!("{:.1} MB/s", v / 1e6)
                }
            };
            s.row(vec![
                line.into(),
                access.name().into(),
                cell(d),
                cell(u),
                errors.to_string(),
            ]);
            if paced {
                paced_use.push(Some((d / rate, u / rate)));
            } else {
                bars.push((format!("{} ↓", access.name()), d / 1e6));
                bars.push((format!("{} ↑", access.name()), u / 1e6));
            }
        }
    }
    s.notes.push(match paced_use.get(1).copied().flatten() {
        Some((d, u)) => {
            let met = |v: f64| if v >= 0.99 { "met" } else { "not met" };
            format!(
                "Goal: fleet:// uses at least 99% of the line at 115200 baud. Device to client {:.1}% ({}), client to device {:.1}% ({}).",
                100.0 * d,
                met(d),
                100.0 * u,
                met(u)
            )
        }
        None => "Goal (fleet:// uses at least 99% of a 115200 baud line): not measured, a run failed."
            .into(),
    });
    if stalled {
        s.notes
            .push("\"Stalled\" is less than 1 MB/s: the transfer stopped early.".into());
    }
    s.chart = Some(Chart {
        file: "fleet-bulk.svg".into(),
        caption: "Bulk on an unpaced line, rfc2217:// and fleet://, MB/s (↓ device to client, ↑ client to device; higher is better)".into(),
        bars,
    });
    s
}

/// Device to client: bytes per second the client got, and pattern errors.
async fn down_once(access: Access, paced: bool, secs: u64) -> Result<(f64, u64), String> {
    let line = LineSettings::with_baud(BAUD);
    let source = if paced {
        Sim::spawn(SimMode::Source, &line)
    } else {
        Sim::spawn_unpaced(SimMode::Source)
    }
    .map_err(|e| e.to_string())?;
    let device = source.path().display().to_string();
    let pair = Pair::start(&device, BAUD, !paced, &[access]).await?;
    let mut c = Conn::connect(pair.addr(access)?, None, false).await?;
    let (mb, errors) = throughput::read_rate(&mut c, secs).await?;
    Ok((mb * 1e6, errors))
}

/// Client to device: bytes per second the device got, and its pattern
/// errors.
async fn up_once(access: Access, paced: bool, secs: u64) -> Result<(f64, u64), String> {
    let line = LineSettings::with_baud(BAUD);
    let sink = if paced {
        Sim::spawn(SimMode::Sink, &line)
    } else {
        Sim::spawn_unpaced(SimMode::Sink)
    }
    .map_err(|e| e.to_string())?;
    let device = sink.path().display().to_string();
    let pair = Pair::start(&device, BAUD, !paced, &[access]).await?;
    let addr = pair.addr(access)?;
    let stats = sink.stats().clone();
    if paced {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let rx = || stats.rx_bytes.load(Relaxed);
        let r = flood(&mut stream, rx, Duration::from_secs(secs))
            .await
            .map_err(|e| e.to_string())?;
        Ok((r.line_bytes as f64 / r.secs, stats.errors.load(Relaxed)))
    } else {
        let mut c = Conn::connect(addr, None, false).await?;
        let (mb, errors) = throughput::write_rate(&mut c, &stats, secs).await;
        Ok((mb * 1e6, errors))
    }
}

/// One flood run's figures.
struct Flood {
    utilisation: f64,
    max_inflight: u64,
    mean_inflight: f64,
    errors: u64,
    undelivered: u64,
    /// The broker's, which sizes the session's frames and so its window.
    max_payload: usize,
}

const ORDER: [Access; 3] = [Access::Direct, Access::Rfc2217, Access::Fleet];

pub async fn flood_section(baud: u32, secs: u64, drain: u64, runs: usize) -> Section {
    let line = LineSettings::with_baud(baud);
    let rate = line.bytes_per_sec();
    let mut s = Section::new(
        format!("Fleet: flood into a paced {baud} baud device ({rate:.0} B/s)"),
        &[
            "access",
            "line utilisation",
            "max in flight",
            "max in flight (line time)",
            "mean in flight",
            "pattern errors",
            &format!("undelivered {drain} s after"),
            "max in flight in each run",
        ],
    );
    s.notes.push(format!(
        "As the flood scenario above, through the fleet: the device host `a` serves a paced {baud} baud sink simulator, the client host `b` serves it as `fleet://a/p` or `rfc2217://` (default settings: `--max-inflight 1s` on both hosts); one client writes the counter pattern as fast as it can for {secs} s from a 2 KiB socket send buffer, into a's own endpoint (direct) or into b's. \"In flight\" is what has left the client's socket (written minus `SIOCOUTQ`) but has not reached the device, sampled after every write; through b it spans b's hub, the session or the RFC 2217 connection, and a's hub. Each row is the run with the median max in flight of {runs}; every run starts a fresh broker and fresh processes."
    ));
    let mut bars = Vec::new();
    let mut fleet_max = None;
    for access in ORDER {
        let mut all = Vec::new();
        let mut fail = None;
        for _ in 0..runs.max(1) {
            match flood_once(access, &line, secs, drain).await {
                Ok(f) => all.push(f),
                Err(why) => {
                    fail = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = fail {
            s.skipped(access.name(), &why);
            continue;
        }
        let each: Vec<String> = all
            .iter()
            .map(|f| format!("{} B", f.max_inflight))
            .collect();
        let errors: u64 = all.iter().map(|f| f.errors).sum();
        all.sort_by_key(|f| f.max_inflight);
        let f = &all[all.len() / 2];
        let inflight_s = f.max_inflight as f64 / rate;
        s.row(vec![
            access.name().into(),
            format!("{:.1}%", 100.0 * f.utilisation),
            format!("{} B", f.max_inflight),
            format!("{} s", format_value(inflight_s)),
            format!("{:.0} B", f.mean_inflight),
            errors.to_string(),
            format!("{} B", f.undelivered),
            each.join(" · "),
        ]);
        bars.push((access.name().to_owned(), inflight_s));
        if access == Access::Fleet {
            fleet_max = Some((f.max_inflight, f.max_payload));
        }
    }
    s.notes.push(match fleet_max {
        Some((max, max_payload)) => {
            let window = fleet::window(rate, max_payload);
            let bound = 1.2 * rate + window as f64;
            format!(
                "Goal: in flight through fleet:// within 1.2 s of line time plus the session's credit window. The window is half a second of line time, at least 4 KiB and two frames of min(16 KiB, max_payload / 4); with the broker's max_payload of {max_payload} B it is {window} B ({} s of line time at {baud} baud), so the bound is {bound:.0} B; measured {max} B ({} s), {:.2}x the bound ({}).",
                format_value(window as f64 / rate),
                format_value(max as f64 / rate),
                max as f64 / bound,
                if max as f64 <= bound { "met" } else { "not met" }
            )
        }
        None => "Goal (in flight through fleet:// within 1.2 s of line time plus the window): not measured, a run failed.".into(),
    });
    s.chart = Some(Chart {
        file: format!("fleet-flood-{baud}.svg"),
        caption: format!(
            "Bytes held in flight under flood, {baud} baud, direct, rfc2217:// and fleet:// (seconds of line time, lower is better)"
        ),
        bars,
    });
    s
}

async fn flood_once(
    access: Access,
    line: &LineSettings,
    secs: u64,
    drain: u64,
) -> Result<Flood, String> {
    let sink = Sim::spawn(SimMode::Sink, line).map_err(|e| e.to_string())?;
    let device = sink.path().display().to_string();
    let pair = Pair::start(&device, line.baud, false, &[access]).await?;
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    // The flood scenario's small client send buffer.
    socket
        .set_send_buffer_size(2048)
        .map_err(|e| e.to_string())?;
    let mut stream = socket
        .connect(pair.addr(access)?)
        .await
        .map_err(|e| e.to_string())?;
    let stats = sink.stats().clone();
    let rx = || stats.rx_bytes.load(Relaxed);
    let rx0 = rx();
    let r = flood(&mut stream, rx, Duration::from_secs(secs))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(drain);
    while rx() - rx0 < r.written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Flood {
        utilisation: r.line_bytes as f64 / (line.bytes_per_sec() * r.secs),
        max_inflight: r.max_inflight,
        mean_inflight: r.mean_inflight,
        errors: stats.errors.load(Relaxed),
        undelivered: r.written.saturating_sub(rx() - rx0),
        max_payload: pair.nats.max_payload,
    })
}
