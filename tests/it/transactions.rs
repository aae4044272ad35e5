//! Issue 9: under `--writers transaction`, unmodified request/response
//! programs share one device, and each gets its own replies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::common::{Server, finish, python};

/// A pyserial program on a pty endpoint: sends numbered requests and checks
/// that each reply is the echo of its own request.
const PTY_REQUESTER: &str = r#"
import serial, sys
port = serial.Serial(sys.argv[1], 115200, timeout=10)
tag, n = sys.argv[2], int(sys.argv[3])
bad = 0
for i in range(n):
    req = f"{tag}-{i:04d}\n".encode()
    port.write(req)
    got = port.read(len(req))
    if got != req:
        bad += 1
        print("asked", req, "got", got)
print("ok", n - bad, "bad", bad)
sys.exit(1 if bad else 0)
"#;

/// Sends numbered requests on a stream and counts replies that are not the
/// echo of their own request.
fn exchange(mut s: impl Read + Write, tag: &str, n: usize) -> Vec<String> {
    let mut crossed = Vec::new();
    for i in 0..n {
        let req = format!("{tag}-{i:04}\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut got = vec![0u8; req.len()];
        s.read_exact(&mut got).unwrap();
        if got != req.as_bytes() {
            crossed.push(format!(
                "asked {req:?}, got {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
    }
    crossed
}

#[test]
fn issue9_clients_on_tcp_unix_and_pty_get_only_their_own_replies() {
    const N: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let (pty, sock) = (dir.path().join("ttyM"), dir.path().join("hub.sock"));
    let server = Server::serve(
        "sim:echo",
        115_200,
        &[
            "--writers",
            "transaction",
            "-l",
            &format!("pty:{}", pty.display()),
            "-l",
            &format!("unix:{}", sock.display()),
            "-l",
            "tcp:127.0.0.1:0,see=all",
        ],
    );
    let (addr, monitor_addr) = (server.addrs[0], server.addrs[1]);
    let mut monitor = TcpStream::connect(monitor_addr).unwrap();
    let py = python(
        PTY_REQUESTER,
        &[pty.to_str().unwrap(), "pty", &N.to_string()],
    );
    let tcp = std::thread::spawn(move || exchange(TcpStream::connect(addr).unwrap(), "tcp", N));
    let unix = std::thread::spawn(move || exchange(UnixStream::connect(sock).unwrap(), "unix", N));
    let crossed: Vec<String> = [tcp, unix]
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let (ok, out) = finish(py, Duration::from_secs(120));
    assert!(ok, "pyserial requester: {out}\n{}", server.log());
    assert!(crossed.is_empty(), "crossed replies: {crossed:?}");

    // The monitor saw every request and its reply, from every client: each
    // line twice, since the device echoes.
    monitor
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.iter().filter(|b| **b == b'\n').count() < 6 * N {
        let n = monitor
            .read(&mut buf)
            .expect("monitor sees every request and reply");
        assert!(n > 0, "monitor closed");
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    for tag in ["pty", "tcp", "unix"] {
        for i in [0, N / 2, N - 1] {
            let line = format!("{tag}-{i:04}\n");
            assert_eq!(seen.matches(&line).count(), 2, "{line:?}");
        }
        assert_eq!(seen.matches(&format!("{tag}-")).count(), 2 * N, "{tag}");
    }
}

#[test]
fn issue9_inband_lock_is_acknowledged_and_routes_replies_to_the_holder() {
    let server = Server::serve(
        "sim:echo",
        115_200,
        &[
            "--writers",
            "transaction",
            "-l",
            "tcp:127.0.0.1:0,lock=inband,framing=line",
        ],
    );
    // addrs[0] is the harness's plain endpoint.
    let addr = server.addrs[1];
    let mut holder = TcpStream::connect(addr).unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    holder.write_all(b"\x10L").unwrap();
    let mut ack = [0u8; 2];
    holder.read_exact(&mut ack).unwrap();
    assert_eq!(&ack, b"\x10L", "the lock is acknowledged in-band");

    // Another client's request waits while the lock is held: the arbiter
    // counts it as waiting, and the holder's requests after it are served
    // while it gets nothing (its reply, had it gone out, would have come
    // before theirs: the device answers in order).
    let mut other = TcpStream::connect(addr).unwrap();
    other.write_all(b"other\n").unwrap();
    server.wait_status("the other client's request did not wait", |p| {
        p["lock_waits"].as_u64() >= Some(1)
    });
    for i in 0..5 {
        let req = format!("mine-{i}\n");
        holder.write_all(req.as_bytes()).unwrap();
        let mut got = vec![0u8; req.len()];
        holder.read_exact(&mut got).unwrap();
        assert_eq!(got, req.as_bytes());
    }
    let mut buf = [0u8; 64];
    other.set_nonblocking(true).unwrap();
    let early = other.read(&mut buf);
    assert!(
        early
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a request went out while another client held the lock: {:?}\n{}",
        early.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()),
        server.log()
    );
    other.set_nonblocking(false).unwrap();
    // ...and goes out, with its reply to it alone, once the lock is released.
    holder.write_all(b"\x10U").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = [0u8; 6];
    other.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"other\n");
    // The holder's next reply is the first thing it gets: another client's
    // reply, had it been sent to it too, would have come before.
    holder.write_all(b"after\n").unwrap();
    let mut got = [0u8; 6];
    holder.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"after\n", "the holder got another client's reply");
}

#[test]
fn issue9_traffic_log_names_the_client_of_each_reply() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().to_str().unwrap();
    let mut server = Server::serve(
        "sim:echo",
        115_200,
        &["--writers", "transaction", "--log", log_dir],
    );
    let addr = server.addr();
    let clients: Vec<_> = ["alpha", "beta"]
        .into_iter()
        .map(|tag| {
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                let port = s.local_addr().unwrap().port();
                (tag, port, exchange(s, tag, 20))
            })
        })
        .collect();
    let ports: Vec<(&str, u16)> = clients
        .into_iter()
        .map(|t| {
            let (tag, port, crossed) = t.join().unwrap();
            assert!(crossed.is_empty(), "{crossed:?}");
            (tag, port)
        })
        .collect();
    server.terminate(Duration::from_secs(10));

    let out = crate::common::command()
        .args(["log", "--json", log_dir])
        .output()
        .unwrap();
    assert!(out.status.success());
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (tag, port) in ports {
        let name = format!("tcp:127.0.0.1:{port}");
        let mine = |kind: &str| {
            records
                .iter()
                .filter(|r| r["kind"] == kind && r["client"] == name.as_str())
                .count()
        };
        assert_eq!(mine("txn-begin"), 20, "{tag}");
        assert_eq!(mine("txn-end"), 20, "{tag}");
        // Each reply is logged with the client it went to, and is its own.
        let replies: Vec<String> = records
            .iter()
            .filter(|r| r["kind"] == "rx" && r["client"] == name.as_str())
            .map(|r| {
                let hex = r["hex"].as_str().unwrap();
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                String::from_utf8(bytes).unwrap()
            })
            .collect();
        let text = replies.concat();
        assert_eq!(
            text.matches(&format!("{tag}-")).count(),
            20,
            "{tag}: {text:?}"
        );
        assert!(!text.contains(if tag == "alpha" { "beta" } else { "alpha" }));
    }
}

/// The local-sharing example of docs/transactions.md: a controller on a line-framed pty
/// endpoint, a terminal on another pty endpoint typing at the same time,
/// and a read-only logger.
const CONTROLLER: &str = r#"
import serial, sys
port = serial.Serial(sys.argv[1], 115200, timeout=5)
n, bad = int(sys.argv[2]), 0
for i in range(n):
    req = f"AT+READ?{i:05d}\r\n".encode()
    port.write(req)
    reply = port.readline()
    if reply != req:
        bad += 1
        if bad < 5:
            print("asked", req, "got", reply)
print("ok", n - bad, "of", n)
sys.exit(1 if bad else 0)
"#;

/// Types `ATI` and Enter, a key every 3 ms, until the stop file exists;
/// reports how many echoed bytes it got back.
const TERMINAL: &str = r#"
import serial, sys, time, os
port = serial.Serial(sys.argv[1], 115200, timeout=0.05)
got = 0
while not os.path.exists(sys.argv[2]):
    for ch in b"ATI\r":
        port.write(bytes([ch]))
        time.sleep(0.003)
    got += len(port.read(64))
print("terminal got", got)
"#;

#[test]
fn issue9_readme_controller_gets_its_own_replies_while_a_terminal_types() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ttyCTL");
    let term = dir.path().join("ttyTERM");
    let log = dir.path().join("ttyLOG");
    let server = Server::serve(
        "sim:echo",
        115_200,
        &[
            "--writers",
            "transaction",
            "-l",
            &format!("pty:{},framing=line", ctl.display()),
            "-l",
            &format!("pty:{}", term.display()),
            "-l",
            &format!("pty:{},access=ro", log.display()),
        ],
    );
    let stop = dir.path().join("stop");
    let terminal = python(TERMINAL, &[term.to_str().unwrap(), stop.to_str().unwrap()]);
    let controller = python(CONTROLLER, &[ctl.to_str().unwrap(), "1000"]);
    let (ok, out) = finish(controller, Duration::from_secs(120));
    std::fs::write(&stop, b"").unwrap();
    let (_, typed) = finish(terminal, Duration::from_secs(20));
    assert!(ok, "controller: {out}\n{}", server.log());
    assert!(out.contains("ok 1000 of 1000"), "{out}");
    // The terminal really contended: it got its own echoes throughout.
    let got: usize = typed
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(got > 100, "terminal: {typed}");
}

#[test]
fn issue9_inband_lock_and_line_framing_warn_about_binary_clients() {
    for writers in ["merge", "transaction"] {
        let server = Server::serve(
            "sim:echo",
            115_200,
            &[
                "--writers",
                writers,
                "--reply-timeout",
                "500ms",
                "-l",
                "tcp:127.0.0.1:0,lock=inband",
                "-l",
                "tcp:127.0.0.1:0,framing=line",
            ],
        );
        // A Modbus request holding 10 10, on a lock=inband endpoint.
        let mut binary = TcpStream::connect(server.addrs[1]).unwrap();
        binary
            .write_all(&[0x01, 0x06, 0x10, 0x10, 0x00, 0x01, 0x49, 0xC0])
            .unwrap();
        assert!(
            server.wait_log("traffic looks binary", Duration::from_secs(10)),
            "{writers}: {}",
            server.log()
        );
        // A request with no line end, on a framing=line endpoint.
        let mut unframed = TcpStream::connect(server.addrs[2]).unwrap();
        unframed.write_all(&[0x01, 0x03, 0x00, 0x00]).unwrap();
        assert!(
            server.wait_log("for its delimiter", Duration::from_secs(10)),
            "{writers}: {}",
            server.log()
        );
        assert_eq!(server.log().matches("looks binary").count(), 1);
    }
}

#[test]
fn issue9_request_options_need_transactions() {
    for listen in [
        "tcp:127.0.0.1:0,framing=gap",
        "tcp:127.0.0.1:0,framing=modbus-rtu",
        "tcp:127.0.0.1:0,see=all",
    ] {
        let (status, err, _) = crate::common::run_to_exit(
            &["serve", "-d", "sim:echo", "-l", listen],
            Duration::from_secs(10),
        );
        assert_eq!(status.code(), Some(2), "{listen}: {err}");
        assert!(
            err.contains("needs --writers transaction"),
            "{listen}: {err}"
        );
    }
}
