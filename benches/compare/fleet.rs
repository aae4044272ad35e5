//! The fleet rows (issue 22): a port reached by name through a NATS broker
//! (`--device fleet://a/p`) against the same port reached with
//! `--device rfc2217://` and against direct TCP to its host. Two serialhub
//! processes: the *device host* `a` serves a simulated device with `--fleet
//! URL --fleet-host a` and also an `rfc2217:` and a `tcp:` endpoint; the
//! *client host* `b` serves `fleet://a/p` and/or `rfc2217://` to a's
//! endpoint, each on a `tcp:` endpoint the benchmark's client uses. The
//! broker is Debian's `nats-server`, started fresh for each measurement.
//! Here: the round trip, bulk and the 9600 baud flood; `fleetls` has the
//! `fleet ls` latency and the recovery after a broker restart. The
//! measuring code is the plain scenarios' (`throughput`, `measure::flood`).

use std::time::Duration;

use serialhub::device::{Sim, SimMode};

use crate::fleethost::{Host, Port};
use crate::nats::{self, Nats};
use crate::report::{Chart, Section};
use crate::throughput::{self, Quantiles};
use crate::tlsconn::Conn;

/// How long a `fleet://` or `rfc2217://` device may take to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How the benchmark's client reaches the device.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// TCP to the device host's own endpoint.
    Direct,
    /// TCP to the client host, whose device is `rfc2217://` to a's endpoint.
    Rfc2217,
    /// TCP to the client host, whose device is `fleet://a/p`.
    Fleet,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Direct => "direct TCP to a",
            Access::Rfc2217 => "rfc2217:// via b",
            Access::Fleet => "fleet:// via b",
        }
    }

    /// The client host's port name for it.
    fn port(self) -> &'static str {
        match self {
            Access::Direct => "p",
            Access::Rfc2217 => "rfc2217",
            Access::Fleet => "fleet",
        }
    }
}

/// The device host and (for the remote kinds of access) the client host.
/// Dropped in reverse: b, a, then the broker.
pub struct Pair {
    pub b: Option<Host>,
    pub a: Host,
    pub nats: Nats,
}

impl Pair {
    /// A fresh broker, `a` serving `device`, and `b` with one port per
    /// remote kind of access in `access`, each device open.
    pub async fn start(
        device: &str,
        baud: u32,
        unpaced: bool,
        access: &[Access],
    ) -> Result<Pair, String> {
        let nats = Nats::start().await?;
        let a = device_host(&nats, device, baud, unpaced).await?;
        let mut pair = Pair { b: None, a, nats };
        let remote: Vec<Access> = access
            .iter()
            .copied()
            .filter(|&x| x != Access::Direct)
            .collect();
        if !remote.is_empty() {
            pair.b = Some(client_host(&pair.nats, &pair.a, &remote, baud, unpaced).await?);
        }
        Ok(pair)
    }

    /// Where the client connects for `access`.
    pub fn addr(&self, access: Access) -> Result<std::net::SocketAddr, String> {
        match (access, &self.b) {
            (Access::Direct, _) => self.a.endpoint("p", "tcp:"),
            (_, Some(b)) => b.endpoint(access.port(), "tcp:"),
            (_, None) => Err("no client host".into()),
        }
    }
}

/// `serialhub serve` in the fleet as `a`, its port `p` on `device`.
pub async fn device_host(
    nats: &Nats,
    device: &str,
    baud: u32,
    unpaced: bool,
) -> Result<Host, String> {
    let listen = ["rfc2217:127.0.0.1:0", "tcp:127.0.0.1:0"];
    let port = Port::new("p", device, baud, &listen).unpaced(unpaced);
    let a = Host::start(Some((&nats.url(), "a")), "5s", &[port]).await?;
    // Its sessions are answered once it has joined.
    a.wait_joined(OPEN_TIMEOUT).await?;
    Ok(a)
}

/// `serialhub serve` in the fleet as `b`, with a port for each of `access`
/// (`fleet://a/p`, `rfc2217://` to a's endpoint); returns once each device
/// is open.
pub async fn client_host(
    nats: &Nats,
    a: &Host,
    access: &[Access],
    baud: u32,
    unpaced: bool,
) -> Result<Host, String> {
    let rfc2217 = format!("rfc2217://{}", a.endpoint("p", "rfc2217:")?);
    let ports: Vec<Port> = access
        .iter()
        .map(|&x| {
            let device = if x == Access::Fleet {
                "fleet://a/p"
            } else {
                &rfc2217
            };
            Port::new(x.port(), device, baud, &["tcp:127.0.0.1:0"]).unpaced(unpaced)
        })
        .collect();
    let b = Host::start(Some((&nats.url(), "b")), "5s", &ports).await?;
    for &x in access {
        b.wait_open(x.port(), OPEN_TIMEOUT).await?;
    }
    Ok(b)
}

/// The session's credit window, as src/fleet sizes it: half a second of
/// line time within 4 KiB..256 KiB (`session::window_for`), and at least
/// two frames of `min(16 KiB, max_payload / 4)` (`stream::open`,
/// `listen`). The benchmark cannot call the crate's private code.
pub fn window(bytes_per_sec: f64, max_payload: usize) -> usize {
    let max_frame = (16 * 1024).min(max_payload / 4);
    ((bytes_per_sec as usize) / 2)
        .clamp(4 * 1024, 256 * 1024)
        .max(2 * max_frame)
}

const ORDER: [Access; 3] = [Access::Direct, Access::Rfc2217, Access::Fleet];

pub async fn latency(samples: usize, runs: usize) -> Section {
    let runs = runs.max(1);
    let mut s = Section::new(
        "Fleet: one-byte round trip through an echo device",
        &[
            "access",
            "p50",
            "p99",
            "p99.9",
            "max",
            "samples per run",
            "p50 / p99 in each run",
        ],
    );
    s.notes.push(format!(
        "Two serialhub processes: the device host `a` (`--fleet URL --fleet-host a`) serves an unpaced echo simulator at 115200 baud on a `tcp:` and an `rfc2217:` endpoint; the client host `b` serves two ports on `tcp:` endpoints, one with `--device fleet://a/p` (through {}), one with `--device rfc2217://` to a's endpoint; both run unpaced with a lossless reader, as the round-trip scenario above. One client sends one byte and waits for its echo, {samples} times after 100 unmeasured ones, through each kind of access in turn; every run starts a fresh broker and fresh processes. a's echo goes to each of its clients (b's two devices and the direct client), alike for every row. Each figure is the median of {runs} run(s).",
        nats::version()
    ));
    let mut results: Vec<Result<Vec<Quantiles>, String>> =
        ORDER.iter().map(|_| Ok(vec![])).collect();
    for _ in 0..runs {
        let echo = match Sim::spawn_unpaced(SimMode::Echo) {
            Ok(e) => e,
            Err(e) => return failed(s, &e.to_string()),
        };
        let device = echo.path().display().to_string();
        let pair = match Pair::start(&device, 115_200, true, &ORDER).await {
            Ok(p) => p,
            Err(why) => return failed(s, &why),
        };
        for (&access, result) in ORDER.iter().zip(&mut results) {
            let Ok(done) = result else { continue };
            match rtt(&pair, access, samples).await {
                Ok(q) => done.push(q),
                Err(why) => *result = Err(why),
            }
        }
    }
    let mut bars = Vec::new();
    for (&access, result) in ORDER.iter().zip(&results) {
        match result {
            Ok(done) => {
                let [p50, p99, p999, max] = throughput::median_quantiles(done);
                let each: Vec<String> = done
                    .iter()
                    .map(|q| format!("{:.0} / {:.0}", q[0], q[1]))
                    .collect();
                s.row(vec![
                    access.name().into(),
                    format!("{p50:.0} µs"),
                    format!("{p99:.0} µs"),
                    format!("{p999:.0} µs"),
                    format!("{max:.0} µs"),
                    samples.to_string(),
                    each.join(" · "),
                ]);
                bars.push((access.name().to_owned(), p50));
            }
            Err(why) => s.skipped(access.name(), why),
        }
    }
    s.notes.push(match (&results[1], &results[2]) {
        (Ok(r), Ok(f)) => {
            let over = throughput::median_quantiles(f)[0] - throughput::median_quantiles(r)[0];
            let each: Vec<String> = r
                .iter()
                .zip(f)
                .map(|(r, f)| format!("{:.0} µs", f[0] - r[0]))
                .collect();
            format!(
                "Goal: fleet:// p50 at most 0.5 ms over rfc2217:// p50. Medians: {over:.0} µs over ({}); in each run: {}.",
                if over <= 500.0 { "met" } else { "not met" },
                each.join(", ")
            )
        }
        _ => "Goal (fleet:// p50 at most 0.5 ms over rfc2217://): not measured, a run failed.".into(),
    });
    s.chart = Some(Chart {
        file: "fleet-latency.svg".into(),
        caption:
            "One-byte round trip, direct, rfc2217:// and fleet://, p50 in µs (lower is better)"
                .into(),
        bars,
    });
    s
}

fn failed(mut s: Section, why: &str) -> Section {
    s.skipped("fleet", why);
    s
}

async fn rtt(pair: &Pair, access: Access, samples: usize) -> Result<Quantiles, String> {
    let mut c = Conn::connect(pair.addr(access)?, None, true).await?;
    let rtt = throughput::round_trips_over(&mut c, samples).await?;
    Ok(throughput::quantiles(rtt))
}
