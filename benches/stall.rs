//! Stalled-reader benchmark: a paced source device, several readers, and one
//! client that connects and never reads. Reports what each good reader gets
//! (share of line rate, pattern errors) under each slow-reader policy.
//!
//! `cargo bench --bench stall -- [--baud 115200] [--seconds 15] [--readers 3]`

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::pattern::Checker;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

struct Server(Child, SocketAddr);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(device: &str, baud: u32, policy: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_serialhub"))
        .args([
            "serve",
            "-d",
            device,
            "-b",
            &baud.to_string(),
            "-l",
            "tcp:127.0.0.1:0",
            "--slow-reader",
            policy,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serialhub");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split("listening on tcp:").nth(1)?.trim().parse().ok())
        .expect("serialhub did not listen");
    std::thread::spawn(move || lines.for_each(drop));
    Server(child, addr)
}

/// Reads the pattern for `secs`; also says whether the stream ended.
async fn read_for(mut s: TcpStream, secs: u64) -> (Checker, bool) {
    let mut c = Checker::new();
    let mut buf = vec![0u8; 16384];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            return (c, true);
        }
        c.feed(&buf[..n]);
    }
    (c, false)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (mut baud, mut secs, mut readers) = (115_200u32, 15u64, 3usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--baud" => baud = it.next().and_then(|v| v.parse().ok()).expect("--baud N"),
            "--seconds" => secs = it.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--readers" => readers = it.next().and_then(|v| v.parse().ok()).expect("--readers N"),
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    let line = LineSettings::with_baud(baud);
    println!("## {readers} readers and 1 stalled client on a {baud} baud source, {secs} s");
    println!();
    println!(
        "| policy | worst good reader, share of line rate | best good reader | good readers' pattern errors | stalled client |"
    );
    println!("|---|---|---|---|---|");
    for policy in ["disconnect", "drop", "block"] {
        let source = Sim::spawn(SimMode::Source, &line).expect("sim");
        let server = serve(source.path().to_str().unwrap(), baud, policy);
        let stalled = TcpSocket::new_v4().unwrap();
        stalled.set_recv_buffer_size(4096).unwrap();
        let stalled = stalled.connect(server.1).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..readers {
            let s = TcpStream::connect(server.1).await.unwrap();
            tasks.push(tokio::spawn(read_for(s, secs)));
        }
        let mut shares = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (c, _) = t.await.unwrap();
            shares.push(c.bytes as f64 / (line.bytes_per_sec() * secs as f64));
            errors += c.errors;
        }
        let (after, ended) = read_for(stalled, 2).await;
        let fate = format!(
            "{}; {} pattern errors in what it then read",
            if ended {
                "disconnected"
            } else {
                "still connected"
            },
            after.errors
        );
        let (lo, hi) = shares
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        println!(
            "| {policy} | {:.1}% | {:.1}% | {errors} | {fate} |",
            lo * 100.0,
            hi * 100.0
        );
    }
}
