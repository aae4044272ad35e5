//! Flood benchmark: one client writes as fast as it can into a paced,
//! simulated serial device through a proxy. For serialhub, socat and ser2net
//! in the same run it reports:
//!
//! - bytes held between the client's socket and the wire (max and mean), in
//!   bytes and in seconds of line time;
//! - line utilisation (bytes reaching the device / line rate);
//! - pattern errors at the device (lost, duplicated or reordered bytes);
//! - bytes still undelivered after the drain wait;
//! - the proxy's peak RSS and CPU time.
//!
//! `cargo bench --bench flood -- [--baud 9600] [--seconds 15] [--drain 20]
//! [--tools serialhub,socat,ser2net,ser2net-4k] [--log]
//! [--serialhub-args "ARGS"]`. Peers that are not installed are skipped with
//! a note; `bench/install-peers` installs them. `--log` runs serialhub with
//! its traffic log on (`--log DIR` in a temp dir; the row is labelled
//! `serialhub+log`); `--serialhub-args` passes more flags to `serialhub serve`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::measure::{cpu_seconds, flood, memory};
use tokio::net::TcpSocket;

struct Args {
    baud: u32,
    seconds: u64,
    drain: u64,
    tools: Vec<String>,
    /// Run serialhub with `--log` into a temp dir.
    log: bool,
    /// Extra flags for `serialhub serve`, split on whitespace.
    serialhub_args: Vec<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        baud: 9600,
        seconds: 15,
        drain: 20,
        tools: ["serialhub", "socat", "ser2net", "ser2net-4k"]
            .map(String::from)
            .to_vec(),
        log: false,
        serialhub_args: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` appends `--bench`; ignore it.
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--baud" => a.baud = value().parse().expect("--baud N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--drain" => a.drain = value().parse().expect("--drain N"),
            "--tools" => a.tools = value().split(',').map(String::from).collect(),
            "--log" => a.log = true,
            "--serialhub-args" => {
                a.serialhub_args = value().split_whitespace().map(String::from).collect()
            }
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A running proxy process.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Spawns `cmd` and returns the first address a stderr line yields via `find`.
fn spawn_and_find(mut cmd: Command, find: fn(&str) -> Option<SocketAddr>) -> (Child, SocketAddr) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn proxy");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = find(&line) {
                let _ = tx.send(a);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("proxy did not report its address");
    (child, addr)
}

fn free_port() -> u16 {
    // A benchmark may race for a port; tests never do this.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(tool: &str, device: &str, a: &Args) -> Result<Proxy, String> {
    let baud = a.baud;
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = match tool {
        "serialhub" => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_serialhub"));
            c.args([
                "serve",
                "-d",
                device,
                "-b",
                &baud.to_string(),
                "-l",
                "tcp:127.0.0.1:0",
            ]);
            if a.log {
                let log = dir.path().join("traffic");
                std::fs::create_dir(&log).unwrap();
                c.arg("--log").arg(log);
            }
            c.args(&a.serialhub_args);
            spawn_and_find(c, |l| {
                l.split("listening on tcp:").nth(1)?.trim().parse().ok()
            })
        }
        "socat" => {
            if !installed("socat") {
                return Err("socat is not installed (bench/install-peers)".into());
            }
            let mut c = Command::new("socat");
            c.args([
                "-d",
                "-d",
                "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr",
                &format!("FILE:{device},rawer,b{baud}"),
            ]);
            spawn_and_find(c, |l| {
                l.split("listening on AF=2 ").nth(1)?.trim().parse().ok()
            })
        }
        "ser2net" | "ser2net-4k" => {
            if !installed("ser2net") {
                return Err("ser2net is not installed (bench/install-peers)".into());
            }
            let port = free_port();
            let mut yaml = format!(
                "%YAML 1.1\n---\nconnection: &bench\n  accepter: tcp,127.0.0.1,{port}\n  connector: serialdev,{device},{baud}n81,local\n"
            );
            if tool == "ser2net-4k" {
                yaml += "  options:\n    chardelay: false\n    dev-to-net-bufsize: 4096\n    net-to-dev-bufsize: 4096\n";
            }
            let conf = dir.path().join("ser2net.yaml");
            std::fs::write(&conf, yaml).unwrap();
            let child = Command::new("ser2net")
                .args(["-d", "-u", "-P"])
                .arg(dir.path().join("pid"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
                if Instant::now() > deadline {
                    return Err("ser2net did not listen".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // That probe connection opened and closed the device; let it settle.
            std::thread::sleep(Duration::from_millis(300));
            (child, addr)
        }
        other => return Err(format!("unknown tool {other}")),
    };
    Ok(Proxy {
        child,
        addr,
        _dir: dir,
    })
}

struct Row {
    tool: String,
    util: f64,
    max_inflight: u64,
    mean_inflight: f64,
    errors: u64,
    undelivered: u64,
    peak_rss_kib: u64,
    cpu_s: f64,
}

async fn run_one(tool: &str, a: &Args) -> Result<Row, String> {
    let line = LineSettings::with_baud(a.baud);
    let sink = Sim::spawn(SimMode::Sink, &line).map_err(|e| e.to_string())?;
    let proxy = start(tool, sink.path().to_str().unwrap(), a)?;
    let socket = TcpSocket::new_v4().unwrap();
    // Same small client send buffer for every tool: it only shortens the final
    // drain; what is measured has already left the client.
    socket.set_send_buffer_size(2048).unwrap();
    let mut stream = socket
        .connect(proxy.addr)
        .await
        .map_err(|e| e.to_string())?;
    let stats = sink.stats().clone();
    let rx = || stats.rx_bytes.load(Relaxed);
    let rx0 = rx();
    let r = flood(&mut stream, rx, Duration::from_secs(a.seconds))
        .await
        .map_err(|e| e.to_string())?;
    let pid = proxy.child.id();
    let mem = memory(pid).unwrap_or_default();
    let cpu = cpu_seconds(pid).unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(a.drain);
    while rx() - rx0 < r.written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Row {
        tool: match (tool, a.log) {
            ("serialhub", true) => "serialhub+log".to_owned(),
            _ => tool.to_owned(),
        },
        util: r.line_bytes as f64 / (line.bytes_per_sec() * r.secs),
        max_inflight: r.max_inflight,
        mean_inflight: r.mean_inflight,
        errors: stats.errors.load(Relaxed),
        undelivered: r.written.saturating_sub(rx() - rx0),
        peak_rss_kib: mem.peak_kib,
        cpu_s: cpu,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = parse_args();
    let rate = LineSettings::with_baud(a.baud).bytes_per_sec();
    println!(
        "## Flood into a paced {} baud device ({rate:.0} B/s), {} s per tool",
        a.baud, a.seconds
    );
    println!();
    println!(
        "| tool | line utilisation | max in flight | max in flight (line time) | mean in flight | pattern errors | undelivered after {} s drain | peak RSS | CPU |",
        a.drain
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for tool in &a.tools {
        match run_one(tool, &a).await {
            Ok(r) => println!(
                "| {} | {:.1}% | {} B | {:.2} s | {:.0} B | {} | {} B | {:.1} MiB | {:.2} s |",
                r.tool,
                100.0 * r.util,
                r.max_inflight,
                r.max_inflight as f64 / rate,
                r.mean_inflight,
                r.errors,
                r.undelivered,
                r.peak_rss_kib as f64 / 1024.0,
                r.cpu_s
            ),
            Err(why) => println!("| {tool} | skipped: {why} | | | | | | | |"),
        }
    }
}
