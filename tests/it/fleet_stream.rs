//! Issue 22: remote ports by name. Hosts join a real `nats-server`; one
//! serves another's port as its device (`--device fleet://HOST/PORT`), and
//! `fleet connect` talks to one from a pipe. The bytes keep serialhub's
//! promises across the broker: the counter pattern both ways with no error
//! (also with a 4 KiB `max_payload`), a flood held to its in-flight bound,
//! nothing lost or duplicated when the broker is killed and restarted
//! mid-stream, a host that dies puts the device in `reconnecting` with its
//! clients kept, and line settings travel to the remote port.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serialhub::device::SimMode;
use serialhub::measure::flood;
use serialhub::pattern::{Checker, Generator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::nats::NatsServer;
use crate::common::{Server, command, eventually, finish, python, sim, status};

/// Every host's one port.
const PORT: &str = "p";

/// `serialhub serve --fleet URL --fleet-host HOST --name p -d DEVICE -b BAUD
/// -l tcp:127.0.0.1:0 EXTRA...`, with a 1 s heartbeat so that a dead host
/// is gone from the registry within 3 s.
fn host(nats: &NatsServer, name: &str, device: &str, baud: u32, extra: &[&str]) -> Server {
    let (url, baud) = (nats.url(), baud.to_string());
    let mut args = vec![
        "serve",
        "--fleet",
        &url,
        "--fleet-host",
        name,
        "--fleet-heartbeat",
        "1s",
        "--name",
        PORT,
        "-d",
        device,
        "-b",
        &baud,
        "-l",
        "tcp:127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn device_state(s: &Server) -> String {
    status(&s.control)[0]["device_state"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `s`'s port's device is in `state`.
async fn wait_state(s: &Server, state: &str, within: Duration) {
    let reached = eventually(within, || device_state(s) == state).await;
    assert!(
        reached,
        "the device never got {state}: {:#}\n{}",
        status(&s.control)[0],
        s.log()
    );
}

/// `serialhub fleet ls --json`: the names listed (`HOST/PORT`).
fn listed(nats: &NatsServer) -> Vec<String> {
    let out = command()
        .args(["fleet", "ls", "--json", "--fleet", &nats.url()])
        .stderr(Stdio::null())
        .output()
        .expect("run fleet ls");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// Writes `n` bytes of the counter pattern to `client` and reads back what
/// the device echoes; `during` runs once a third of it came back. Returns
/// the checker of the echo.
async fn echo_pattern(client: TcpStream, n: usize, during: impl AsyncFnOnce()) -> Checker {
    let (mut rd, mut wr) = client.into_split();
    let data = Generator::new().take(n);
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(512) {
            wr.write_all(chunk).await.unwrap();
        }
        wr
    });
    let mut checker = Checker::from_start();
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut during = Some(during);
    while checker.bytes < n as u64 {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = tokio::time::timeout(left, rd.read(&mut buf)).await;
        let Ok(Ok(got @ 1..)) = got else {
            panic!("echo stopped after {} of {n} bytes: {got:?}", checker.bytes);
        };
        checker.feed(&buf[..got]);
        if checker.bytes >= n as u64 / 3
            && let Some(f) = during.take()
        {
            f().await;
        }
    }
    let _wr = writer.await.unwrap();
    checker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_a_fleet_device_carries_the_counter_pattern_both_ways() {
    // A 4 KiB max_payload: the session's frames stay well under it.
    let nats = NatsServer::start_config("max_payload: 4096\n");
    let a = host(&nats, "a", "sim:loopback", 115_200, &[]);
    let b = host(&nats, "b", "fleet://a/p", 115_200, &[]);
    wait_state(&b, "open", Duration::from_secs(30)).await;
    assert_eq!(status(&b.control)[0]["device"], "fleet://a/p");
    let client = TcpStream::connect(b.addr()).await.unwrap();
    // 40 KB is 3.5 s at 115200 baud, each way.
    let n = 40_000;
    let c = echo_pattern(client, n, async || {
        // The session is a client of a's port, named for the machine it
        // came from.
        let clients = &status(&a.control)[0]["clients"];
        let peer = clients[0]["peer"].as_str().unwrap_or_default();
        assert!(peer.starts_with("fleet:"), "{clients:#}");
    })
    .await;
    assert_eq!(c.errors, 0, "{:?}", c.first_error);
    assert_eq!(c.bytes, n as u64);
    let (sa, sb) = (status(&a.control), status(&b.control));
    for (who, s) in [("a", &sa[0]), ("b", &sb[0])] {
        assert_eq!(
            (&s["dropped"], &s["kicked"]),
            (&0.into(), &0.into()),
            "{who}: {s:#}"
        );
    }
}

/// Issue 2's flood at 9600 baud, through the broker: a flooding client of
/// `fleet://` is held back as a local one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_a_flood_through_fleet_stays_within_its_in_flight_bound() {
    let nats = NatsServer::start();
    let sink = sim(SimMode::Sink, 9600);
    let a = host(&nats, "a", sink.path().to_str().unwrap(), 9600, &[]);
    let b = host(&nats, "b", "fleet://a/p", 9600, &[]);
    wait_state(&b, "open", Duration::from_secs(30)).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(2048).unwrap();
    let mut stream = socket.connect(b.addr()).await.unwrap();
    let stats = sink.stats().clone();
    let device_rx = || stats.rx_bytes.load(Relaxed);
    let r = flood(&mut stream, device_rx, Duration::from_secs(6))
        .await
        .unwrap();
    let arrived = eventually(Duration::from_secs(60), || {
        stats.rx_bytes.load(Relaxed) == r.written
    })
    .await;
    assert!(
        arrived,
        "device got {} of {} bytes",
        stats.rx_bytes.load(Relaxed),
        r.written
    );
    assert_eq!(
        stats.errors.load(Relaxed),
        0,
        "{:?}",
        stats.first_error.lock().unwrap()
    );
    let rate = r.line_bytes as f64 / r.secs;
    eprintln!(
        "fleet flood: {rate:.0} B/s on the line, at most {} bytes in flight",
        r.max_inflight
    );
    // The issue's bound: the --max-inflight (1 s) of line time plus the
    // session's credit window (4 KiB at 9600 baud, its least).
    let bound = 960 + 4096;
    assert!(
        r.max_inflight <= bound,
        "in flight peaked at {} bytes (bound {bound})",
        r.max_inflight
    );
    assert!(rate > 0.85 * 960.0, "line rate {rate:.0} B/s");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_the_broker_killed_and_restarted_mid_stream_loses_and_duplicates_nothing() {
    let mut nats = NatsServer::start();
    let _a = host(&nats, "a", "sim:loopback", 115_200, &[]);
    let b = host(&nats, "b", "fleet://a/p", 115_200, &[]);
    wait_state(&b, "open", Duration::from_secs(30)).await;
    let client = TcpStream::connect(b.addr()).await.unwrap();
    let n = 60_000;
    let c = echo_pattern(client, n, async || {
        nats.kill9();
        // The broker stays away for a while on purpose: frames sent
        // meanwhile are lost and must be resent.
        tokio::time::sleep(Duration::from_secs(2)).await;
        nats.restart();
    })
    .await;
    assert_eq!(c.errors, 0, "{:?}\n{}", c.first_error, b.log());
    assert_eq!(c.bytes, n as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_a_dead_host_puts_the_fleet_device_in_reconnecting_and_its_return_reopens_it() {
    let nats = NatsServer::start();
    let mut a = host(&nats, "a", "sim:echo", 9600, &[]);
    let b = host(&nats, "b", "fleet://a/p", 9600, &[]);
    wait_state(&b, "open", Duration::from_secs(30)).await;
    let mut c = std::net::TcpStream::connect(b.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"before\n").unwrap();
    let mut got = [0u8; 7];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"before\n");

    a.kill();
    // The session ends once the host has answered no ping for 45 s: a
    // host cut off from the broker for 30 s keeps its sessions.
    wait_state(&b, "reconnecting", Duration::from_secs(90)).await;
    assert_eq!(
        status(&b.control)[0]["clients"].as_array().map(Vec::len),
        Some(1),
        "the client stays"
    );
    // The same host name is free again once the dead one's heartbeats
    // are 3 beats old, when it is no longer listed.
    assert!(
        eventually(Duration::from_secs(30), || !listed(&nats)
            .contains(&"a/p".to_owned()))
        .await
    );
    let _a = host(&nats, "a", "sim:echo", 9600, &[]);
    wait_state(&b, "open", Duration::from_secs(30)).await;
    c.write_all(b"again\n").unwrap();
    let mut got = [0u8; 6];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"again\n");
}

const SET_BAUD: &str = r#"
import sys, serial
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=19200, timeout=5)
s.write(b"loop\n")
assert s.read(5) == b"loop\n", "no echo"
print("OK", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_line_settings_travel_to_the_remote_port() {
    let nats = NatsServer::start();
    let a = host(&nats, "a", "sim:loopback", 9600, &[]);
    let b = host(
        &nats,
        "b",
        "fleet://a/p",
        9600,
        &["-l", "rfc2217:127.0.0.1:0"],
    );
    wait_state(&b, "open", Duration::from_secs(30)).await;
    let addr = b.rfc2217[0].to_string();
    let (ok, out) = finish(python(SET_BAUD, &[&addr]), Duration::from_secs(60));
    assert!(ok && out.contains("OK"), "{out}\n{}", b.log());
    let line = |s: &Server| status(&s.control)[0]["line"].clone();
    assert_eq!(line(&b), "19200 8N1");
    assert!(
        eventually(Duration::from_secs(10), || line(&a) == "19200 8N1").await,
        "a's line: {}",
        line(&a)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_fleet_connect_in_a_pipe_sends_a_command_and_prints_the_reply() {
    let nats = NatsServer::start();
    let a = host(&nats, "a", "sim:echo", 9600, &["--max-clients", "1"]);
    assert!(
        eventually(Duration::from_secs(30), || listed(&nats)
            .contains(&"a/p".to_owned()))
        .await,
        "a/p never listed:\n{}",
        a.log()
    );
    let mut child = command()
        .args(["fleet", "connect", "a/p", "--fleet", &nats.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fleet connect");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"reboot now\n")
        .unwrap();
    let (ok, out) = finish(child, Duration::from_secs(30));
    assert!(ok, "{out}");
    assert!(out.starts_with("reboot now\n"), "{out:?}");
    let refused = |port: &str| {
        let out = command()
            .args(["fleet", "connect", port, "--fleet", &nats.url()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // An unknown port is an error that says so.
    let err = refused("a/nope");
    assert!(err.contains("no port \"nope\""), "{err}");
    // A session takes a --max-clients place like any client: with the
    // only one taken, it is refused and counted.
    let _local = std::net::TcpStream::connect(a.addr()).unwrap();
    a.wait_status("one client", |p| {
        p["clients"].as_array().map(Vec::len) == Some(1)
            && p["clients"][0]["peer"]
                .as_str()
                .is_some_and(|c| c.starts_with("tcp:"))
    });
    let err = refused("a/p");
    assert!(err.contains("--max-clients 1"), "{err}");
    assert_eq!(status(&a.control)[0]["refusals"]["max_clients"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_fleet_connect_at_a_terminal_is_raw_and_quits_at_tilde_dot() {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let nats = NatsServer::start();
    let a = host(&nats, "a", "sim:echo", 9600, &[]);
    assert!(
        eventually(Duration::from_secs(30), || listed(&nats)
            .contains(&"a/p".to_owned()))
        .await,
        "a/p never listed:\n{}",
        a.log()
    );
    // The terminal: a pty whose other side the test types into and reads.
    let term = crate::common::PtyDevice::new();
    let tty = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&term.path)
            .unwrap()
    };
    let mut child = command()
        .args(["fleet", "connect", "a/p", "--fleet", &nats.url()])
        .stdin(tty())
        .stdout(tty())
        .stderr(tty())
        .spawn()
        .expect("spawn fleet connect");
    let seen = |what: &[u8]| term.received().windows(what.len()).any(|w| w == what);
    assert!(
        eventually(Duration::from_secs(20), || seen(
            b"~. at the start of a line quits"
        ))
        .await,
        "{:?}",
        String::from_utf8_lossy(&term.received())
    );
    assert!(
        !tcgetattr(tty())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON),
        "the terminal is not in raw mode"
    );
    // Raw mode: no local echo, so this comes back from the device.
    term.send(b"hello~.\r");
    assert!(
        eventually(Duration::from_secs(20), || seen(b"hello~.\r")).await,
        "{:?}",
        String::from_utf8_lossy(&term.received())
    );
    term.send(b"~.");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "~. did not quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(
        tcgetattr(tty())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON),
        "the terminal's mode was not restored"
    );
    // The host was told: its client goes now, not after 120 s of silence.
    a.wait_status("the session's client gone", |p| {
        p["clients"].as_array().is_some_and(Vec::is_empty)
    });
}

/// A `fleet://` device whose remote port floods unpaced opens and streams.
/// The fleet bench saw such opens fail with "did not answer in 3s": data
/// ahead of the RFC 2217 answers at connect filled the 64 KiB held for the
/// device and the answers were never read. Now data past it is discarded
/// (and logged) until the port is open, and an unpaced port's session has
/// the largest window. (This test did not reproduce the bench's failure
/// without the fix, in debug or release builds; it guards the path.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_a_fleet_device_on_a_flooding_unpaced_remote_port_opens_and_streams() {
    let nats = NatsServer::start();
    let source = serialhub::device::Sim::spawn_unpaced(SimMode::Source).unwrap();
    let unpaced = ["--no-pacing", "--slow-reader", "block"];
    let _a = host(
        &nats,
        "a",
        source.path().to_str().unwrap(),
        115_200,
        &unpaced,
    );
    let b = host(&nats, "b", "fleet://a/p", 115_200, &unpaced);
    wait_state(&b, "open", Duration::from_secs(30)).await;
    let mut client = TcpStream::connect(b.addr()).await.unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < 4 << 20 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            other => panic!(
                "the stream stopped after {got} bytes: {other:?}\n{}",
                b.log()
            ),
        }
    }
    assert!(got >= 4 << 20, "only {got} bytes in 60 s\n{}", b.log());
}
