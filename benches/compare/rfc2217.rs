//! Scenario: the RFC 2217 endpoint (issue 11) against ser2net's
//! `telnet(rfc2217)` accepter, by the methods of the raw-TCP scenarios
//! (round trip, bulk, flood), with the raw-TCP rows measured again in the
//! same run so the cost of Telnet is a ratio within one run.
//!
//! The client speaks the Telnet bytes itself through serialhub's sans-I/O
//! codec ([`Telnet::client`]): it offers WILL COM-PORT-OPTION and BINARY,
//! answers the server's DO/WILL, sends baud rate, data size, parity and stop
//! size in one batch and waits for all four answers, then sets flow control
//! and waits for that answer, as pyserial's `rfc2217://` does at open; an
//! answer other than what it asked fails the run, as it fails pyserial's
//! open. It stops short of pyserial's DTR, RTS and purge requests: ser2net
//! never answers DTR on a pty (see the pyserial column). Data goes out with
//! IAC doubled and comes in with IAC undoubled.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::measure::flood;
use serialhub::pattern::{Checker, Generator};
use serialhub::proto::telnet::rfc2217::{self, Command, Control, DataSize, Message, StopSize};
use serialhub::proto::telnet::{Event, Telnet, escape_into};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::proxy::{self, Proxy, Setup, Tool};
use crate::report::{Chart, Section, format_value};

/// The tools with an RFC 2217 server (socat has none).
const TOOLS: [Tool; 3] = [Tool::Serialhub, Tool::Ser2net, Tool::Ser2net4k];
/// How long the server has to answer a settings request (pyserial: 3 s).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// A client connection: raw TCP, or Telnet with the COM-PORT-OPTION.
pub struct Client {
    pub stream: TcpStream,
    /// `None` for raw TCP.
    telnet: Option<Telnet>,
    /// Decoded data not yet returned by `read`.
    data: BytesMut,
    raw: Vec<u8>,
    events: Vec<Event>,
    replies: BytesMut,
    /// Server answers to COM-PORT requests, in arrival order.
    answers: Vec<Command>,
}

impl Client {
    pub fn raw(stream: TcpStream) -> Client {
        Client {
            stream,
            telnet: None,
            data: BytesMut::new(),
            raw: vec![0; 65536],
            events: Vec::new(),
            replies: BytesMut::new(),
            answers: Vec::new(),
        }
    }

    /// Opens the COM-PORT-OPTION on `stream` and sets `baud` 8N1, no flow
    /// control, checking every answer, as pyserial's open does.
    pub async fn rfc2217(stream: TcpStream, baud: u32) -> Result<Client, String> {
        let mut c = Client::raw(stream);
        let mut telnet = Telnet::client();
        let mut out = BytesMut::new();
        telnet.start(&mut out);
        c.telnet = Some(telnet);
        let line = [
            Command::SetBaudrate(baud),
            Command::SetDatasize(DataSize::Eight),
            Command::SetParity(rfc2217::Parity::None),
            Command::SetStopsize(StopSize::One),
        ];
        for cmd in &line {
            Message::to_server(cmd.clone()).encode(&mut out);
        }
        c.stream.write_all(&out).await.map_err(|e| e.to_string())?;
        c.await_answers(&line).await?;
        let flow = [Command::SetControl(Control::FlowNone)];
        let mut out = BytesMut::new();
        Message::to_server(flow[0].clone()).encode(&mut out);
        c.stream.write_all(&out).await.map_err(|e| e.to_string())?;
        c.await_answers(&flow).await?;
        Ok(c)
    }

    /// Waits for the server to answer each of `asked` with the same value
    /// and to agree to the COM-PORT-OPTION.
    async fn await_answers(&mut self, asked: &[Command]) -> Result<(), String> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let agreed = self.telnet.as_ref().is_some_and(|t| t.com_port_enabled());
            let missing: Vec<&Command> = asked
                .iter()
                .filter(|a| !self.answers.iter().any(|b| b.code() == a.code()))
                .collect();
            if agreed && missing.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.fill()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err("the server closed during negotiation".into()),
                Ok(Err(e)) => return Err(format!("negotiation: {e}")),
                Err(_) => {
                    return Err(format!(
                        "no answer in {ANSWER_TIMEOUT:?} to {missing:?} (COM-PORT-OPTION agreed: {agreed})"
                    ));
                }
            }
        }
        for a in asked {
            if let Some(b) = self.answers.iter().rev().find(|b| b.code() == a.code())
                && b != a
            {
                return Err(format!("asked {a:?}, the server answered {b:?}"));
            }
        }
        self.answers.clear();
        Ok(())
    }

    /// One read from the socket, decoded. `Ok(false)` at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let n = self.stream.read(&mut self.raw).await?;
        if n == 0 {
            return Ok(false);
        }
        let Some(telnet) = self.telnet.as_mut() else {
            self.data.extend_from_slice(&self.raw[..n]);
            return Ok(true);
        };
        telnet.feed(&self.raw[..n], &mut self.events, &mut self.replies);
        for e in self.events.drain(..) {
            match e {
                Event::Data(d) => self.data.extend_from_slice(&d),
                Event::ComPort(m) if m.direction == rfc2217::Direction::ToClient => {
                    self.answers.push(m.command)
                }
                _ => {}
            }
        }
        if !self.replies.is_empty() {
            let r = self.replies.split();
            self.stream.write_all(&r).await?;
        }
        Ok(true)
    }

    /// Reads the port's data; `Ok(0)` at end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.telnet.is_none() && self.data.is_empty() {
            return self.stream.read(buf).await;
        }
        while self.data.is_empty() {
            if !self.fill().await? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data.split_to(n));
        Ok(n)
    }

    /// Writes the port's data, IAC doubled for Telnet.
    pub async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.telnet.is_none() {
            return self.stream.write_all(data).await;
        }
        let mut out = BytesMut::with_capacity(data.len() + 8);
        escape_into(data, &mut out);
        self.stream.write_all(&out).await
    }
}

/// Raw TCP or RFC 2217, for one row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Tcp,
    Rfc2217,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Tcp => "raw TCP",
            Access::Rfc2217 => "RFC 2217",
        }
    }
}

const ACCESS: [Access; 2] = [Access::Tcp, Access::Rfc2217];

fn setup(tool: Tool, access: Access, baud: u32, unpaced: bool) -> Setup {
    Setup {
        baud,
        clients: 1,
        // As in the bulk and latency scenarios: a pty has no line rate.
        serialhub_args: if unpaced && tool == Tool::Serialhub {
            ["--no-pacing", "--slow-reader", "block"]
                .map(String::from)
                .to_vec()
        } else {
            vec![]
        },
        rfc2217: access == Access::Rfc2217,
        ..Setup::default()
    }
}

async fn open(p: &Proxy, access: Access, baud: u32) -> Result<Client, String> {
    let stream = TcpStream::connect(p.addr())
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    match access {
        Access::Tcp => Ok(Client::raw(stream)),
        Access::Rfc2217 => Client::rfc2217(stream, baud).await,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Whether pyserial 3.x opens `rfc2217://ADDR` (its full open: line
/// settings, flow control, DTR, RTS, purge) and echoes 256 byte values.
fn pyserial_opens(addr: std::net::SocketAddr) -> String {
    let script = format!(
        "import serial,sys\n\
         s=serial.serial_for_url('rfc2217://{addr}',baudrate=115200,timeout=3)\n\
         d=bytes(range(256)); s.write(d); r=s.read(256)\n\
         sys.exit(0 if r==d else 3)\n"
    );
    let out = std::process::Command::new("timeout")
        .args(["20", "python3", "-c", &script])
        .output();
    match out {
        Ok(o) if o.status.success() => "yes".into(),
        Ok(o) if o.status.code() == Some(3) => "opens, echo differs".into(),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().last().unwrap_or("failed").trim();
            if last.contains("No module named") {
                "pyserial not installed".into()
            } else {
                format!("no: {}", last.trim_start_matches("serial.serialutil."))
            }
        }
        Err(e) => format!("not run: {e}"),
    }
}

pub async fn latency(samples: usize, runs: usize) -> Section {
    let mut s = Section::new(
        "RFC 2217: one-byte round trip through an echo device",
        &[
            "tool",
            "access",
            "p50",
            "p99",
            "p99.9",
            "max",
            "samples per run",
            "pyserial opens",
        ],
    );
    s.notes.push(format!(
        "As the one-byte round trip above, in one run for both kinds of access: one client sends one byte and waits for its echo, {samples} times after 100 unmeasured ones, through an unpaced echo simulator at 115200 baud; each figure is the median of {runs} runs, each with a fresh tool. The RFC 2217 client first negotiates as pyserial does (line settings, then flow control, each answer checked). \"pyserial opens\" is whether pyserial's own `rfc2217://` client (which also sets DTR and RTS and purges) opens the same port and echoes all 256 byte values."
    ));
    let mut bars = Vec::new();
    for tool in TOOLS {
        for access in ACCESS {
            let mut q = [vec![], vec![], vec![], vec![]];
            let mut fail = None;
            for _ in 0..runs.max(1) {
                match round_trips(tool, access, samples).await {
                    Ok(mut rtt) => {
                        rtt.sort();
                        let at =
                            |p: f64| rtt[((rtt.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
                        for (v, p) in q.iter_mut().zip([0.5, 0.99, 0.999, 1.0]) {
                            v.push(at(p));
                        }
                    }
                    Err(why) => {
                        fail = Some(why);
                        break;
                    }
                }
            }
            let label = format!("{} {}", tool.name(), access.name());
            if let Some(why) = fail {
                s.skipped(&label, &why);
                continue;
            }
            let py = if access == Access::Rfc2217 {
                pyserial_row(tool).await
            } else {
                "–".into()
            };
            let [p50, p99, p999, max] = q.map(median);
            s.row(vec![
                tool.name().into(),
                access.name().into(),
                format!("{p50:.0} µs"),
                format!("{p99:.0} µs"),
                format!("{p999:.0} µs"),
                format!("{max:.0} µs"),
                samples.to_string(),
                py,
            ]);
            bars.push((label, p99));
        }
    }
    s.chart = Some(Chart {
        file: "rfc2217-latency.svg".into(),
        caption: "One-byte round trip, raw TCP and RFC 2217, p99 in µs (lower is better)".into(),
        bars,
    });
    s
}

async fn pyserial_row(tool: Tool) -> String {
    let Ok(echo) = Sim::spawn_unpaced(SimMode::Echo) else {
        return "not run: no echo device".into();
    };
    match proxy::start(
        tool,
        &[echo.path().display().to_string()],
        &setup(tool, Access::Rfc2217, 115_200, true),
    ) {
        Ok(p) => {
            let addr = p.addr();
            tokio::task::spawn_blocking(move || pyserial_opens(addr))
                .await
                .unwrap_or_else(|e| format!("not run: {e}"))
        }
        Err(why) => format!("not run: {why}"),
    }
}

async fn round_trips(tool: Tool, access: Access, samples: usize) -> Result<Vec<Duration>, String> {
    let echo = Sim::spawn_unpaced(SimMode::Echo).map_err(|e| e.to_string())?;
    let p = proxy::start(
        tool,
        &[echo.path().display().to_string()],
        &setup(tool, access, 115_200, true),
    )?;
    let mut c = open(&p, access, 115_200).await?;
    let mut rtt = Vec::with_capacity(samples);
    let mut b = [0u8; 1];
    for i in 0..samples + 100 {
        let t = Instant::now();
        c.write_all(&[b'a' + (i % 26) as u8])
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(2), c.read(&mut b)).await {
            Ok(Ok(1)) => {}
            _ => return Err(format!("no echo after {i} samples")),
        }
        if i >= 100 {
            rtt.push(t.elapsed());
        }
    }
    Ok(rtt)
}

pub async fn bulk(secs: u64, runs: usize) -> Section {
    let mut s = Section::new(
        "RFC 2217: bulk throughput through an unpaced pty",
        &[
            "tool",
            "access",
            "device to client",
            "client to device",
            "pattern errors",
        ],
    );
    s.notes.push(format!(
        "As the bulk scenario above, in one run for both kinds of access: the simulator reads or writes the pty as fast as it can; one client for {secs} s in each direction; each figure is the median of {runs} runs (pattern errors are summed over all). serialhub runs with `--no-pacing --slow-reader block`. The counter pattern has no 0xFF byte, so Telnet adds no bytes to the data; the client still runs every byte through the Telnet codec."
    ));
    let mut bars = Vec::new();
    for tool in TOOLS {
        for access in ACCESS {
            let label = format!("{} {}", tool.name(), access.name());
            let (mut down, mut up, mut errors) = (vec![], vec![], 0);
            let mut fail = None;
            for _ in 0..runs.max(1) {
                let r = async {
                    let d = device_to_client(tool, access, secs).await?;
                    let u = client_to_device(tool, access, secs).await?;
                    Ok::<_, String>((d, u))
                }
                .await;
                match r {
                    Ok(((d, e1), (u, e2))) => {
                        down.push(d);
                        up.push(u);
                        errors += e1 + e2;
                    }
                    Err(why) => {
                        fail = Some(why);
                        break;
                    }
                }
            }
            if let Some(why) = fail {
                s.skipped(&label, &why);
                continue;
            }
            let (d, u) = (median(down), median(up));
            s.row(vec![
                tool.name().into(),
                access.name().into(),
                format!("{d:.1} MB/s"),
                format!("{u:.1} MB/s"),
                errors.to_string(),
            ]);
            bars.push((format!("{label} ↓"), d));
            bars.push((format!("{label} ↑"), u));
        }
    }
    s.chart = Some(Chart {
        file: "rfc2217-bulk.svg".into(),
        caption: "Bulk throughput, raw TCP and RFC 2217, MB/s (↓ device to client, ↑ client to device; higher is better)".into(),
        bars,
    });
    s
}

async fn device_to_client(tool: Tool, access: Access, secs: u64) -> Result<(f64, u64), String> {
    let source = Sim::spawn_unpaced(SimMode::Source).map_err(|e| e.to_string())?;
    let p = proxy::start(
        tool,
        &[source.path().display().to_string()],
        &setup(tool, access, 115_200, true),
    )?;
    let mut c = open(&p, access, 115_200).await?;
    let mut checker = Checker::new();
    let mut buf = vec![0u8; 65536];
    // Skip the start-up burst the pty buffered before anyone read it.
    let warm = Instant::now() + Duration::from_millis(300);
    let mut start = None;
    let deadline = warm + Duration::from_secs(secs);
    let mut bytes = 0u64;
    while Instant::now() < deadline {
        let n = match tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        checker.feed(&buf[..n]);
        if Instant::now() >= warm {
            start.get_or_insert_with(Instant::now);
            bytes += n as u64;
        }
    }
    let elapsed = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0);
    Ok((bytes as f64 / elapsed / 1e6, checker.errors))
}

async fn client_to_device(tool: Tool, access: Access, secs: u64) -> Result<(f64, u64), String> {
    let sink = Sim::spawn_unpaced(SimMode::Sink).map_err(|e| e.to_string())?;
    let p = proxy::start(
        tool,
        &[sink.path().display().to_string()],
        &setup(tool, access, 115_200, true),
    )?;
    let mut c = open(&p, access, 115_200).await?;
    let stats = sink.stats().clone();
    let mut g = Generator::new();
    let mut buf = vec![0u8; 65536];
    let start = Instant::now();
    let rx0 = stats.rx_bytes.load(Relaxed);
    while start.elapsed() < Duration::from_secs(secs) {
        g.fill(&mut buf);
        if tokio::time::timeout(Duration::from_secs(2), c.write_all(&buf))
            .await
            .is_err()
        {
            break;
        }
    }
    let rate = (stats.rx_bytes.load(Relaxed) - rx0) as f64 / start.elapsed().as_secs_f64();
    Ok((rate / 1e6, stats.errors.load(Relaxed)))
}

/// One flood run's figures.
struct Flood {
    utilisation: f64,
    max_inflight: u64,
    mean_inflight: f64,
    errors: u64,
    undelivered: u64,
}

pub async fn flood_section(baud: u32, secs: u64, drain: u64, runs: usize) -> Section {
    let line = LineSettings::with_baud(baud);
    let rate = line.bytes_per_sec();
    let mut s = Section::new(
        format!("RFC 2217: flood into a paced {baud} baud device ({rate:.0} B/s)"),
        &[
            "tool",
            "access",
            "line utilisation",
            "max in flight",
            "max in flight (line time)",
            "mean in flight",
            "pattern errors",
            &format!("undelivered {drain} s after"),
        ],
    );
    s.notes.push(format!(
        "As the flood scenario above, in one run for both kinds of access: after negotiating, one client writes the counter pattern as fast as it can for {secs} s; \"in flight\" is what has left the client's socket (written minus `SIOCOUTQ`) but has not reached the device, sampled after every write. Each row is the run with the median max in flight of {runs} (pattern errors are summed over all). The pattern has no 0xFF byte, so bytes on the socket are bytes for the device."
    ));
    let mut bars = Vec::new();
    for tool in TOOLS {
        for access in ACCESS {
            let label = format!("{} {}", tool.name(), access.name());
            let mut all = Vec::new();
            let mut fail = None;
            for _ in 0..runs.max(1) {
                match flood_once(tool, access, &line, secs, drain).await {
                    Ok(f) => all.push(f),
                    Err(why) => {
                        fail = Some(why);
                        break;
                    }
                }
            }
            if let Some(why) = fail {
                s.skipped(&label, &why);
                continue;
            }
            let errors: u64 = all.iter().map(|f| f.errors).sum();
            all.sort_by_key(|f| f.max_inflight);
            let f = &all[all.len() / 2];
            let inflight_s = f.max_inflight as f64 / rate;
            s.row(vec![
                tool.name().into(),
                access.name().into(),
                format!("{:.1}%", 100.0 * f.utilisation),
                format!("{} B", f.max_inflight),
                format!("{} s", format_value(inflight_s)),
                format!("{:.0} B", f.mean_inflight),
                errors.to_string(),
                format!("{} B", f.undelivered),
            ]);
            bars.push((label, inflight_s));
        }
    }
    s.chart = Some(Chart {
        file: format!("rfc2217-flood-{baud}.svg"),
        caption: format!(
            "Bytes held in flight under flood, {baud} baud, raw TCP and RFC 2217 (seconds of line time, lower is better)"
        ),
        bars,
    });
    s
}

async fn flood_once(
    tool: Tool,
    access: Access,
    line: &LineSettings,
    secs: u64,
    drain: u64,
) -> Result<Flood, String> {
    let sink = Sim::spawn(SimMode::Sink, line).map_err(|e| e.to_string())?;
    let p = proxy::start(
        tool,
        &[sink.path().display().to_string()],
        &setup(tool, access, line.baud, false),
    )?;
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    // The flood scenario's small client send buffer, for every tool.
    socket
        .set_send_buffer_size(2048)
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(p.addr()).await.map_err(|e| e.to_string())?;
    let mut c = match access {
        Access::Tcp => Client::raw(stream),
        Access::Rfc2217 => Client::rfc2217(stream, line.baud).await?,
    };
    let stats = sink.stats().clone();
    let rx = || stats.rx_bytes.load(Relaxed);
    let rx0 = rx();
    // Telnet data without 0xFF is the bytes themselves, so the raw flood
    // measures the RFC 2217 endpoint too.
    let r = flood(&mut c.stream, rx, Duration::from_secs(secs))
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
    })
}
