//! Issue #4: local sharing through virtual serial ports (pty), unix sockets,
//! read-only endpoints, line framing and the exclusive write lock.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use crate::common::{PtyDevice, Server, device_got, finish, python, read_until};

/// Opens a pty endpoint with plain pyserial, writes a greeting, and waits for
/// one line from the device.
const PYSERIAL_CLIENT: &str = r#"
import serial, sys
port = serial.Serial(sys.argv[1], 115200, timeout=10)
port.write(sys.argv[2].encode() + b"\n")
line = port.readline()
print(line.decode().strip())
sys.exit(0 if line == b"device-says-hi\n" else 1)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue4_two_pyserial_programs_and_a_tcp_client_share_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
    let device = PtyDevice::new();
    let server = Server::serve(
        &device.path,
        115200,
        &[
            "-l",
            &format!("pty:{}", a.display()),
            "-l",
            &format!("pty:{}", b.display()),
        ],
    );
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let pa = python(PYSERIAL_CLIENT, &[a.to_str().unwrap(), "from-A"]);
    let pb = python(PYSERIAL_CLIENT, &[b.to_str().unwrap(), "from-B"]);
    tcp.write_all(b"from-tcp\n").await.unwrap();
    for who in [&b"from-A\n"[..], b"from-B\n", b"from-tcp\n"] {
        assert!(
            device_got(&device, who, Duration::from_secs(15)).await,
            "device missed {:?}:\n{}",
            String::from_utf8_lossy(who),
            server.log()
        );
    }
    device.send(b"device-says-hi\n");
    assert_eq!(
        read_until(&mut tcp, b"device-says-hi\n", Duration::from_secs(10)).await,
        b"device-says-hi\n"
    );
    for p in [pa, pb] {
        let (ok, out) = tokio::task::spawn_blocking(|| finish(p, Duration::from_secs(15)))
            .await
            .unwrap();
        assert!(ok, "pyserial client failed: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue4_pty_endpoint_survives_close_and_reopen_and_link_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyR");
    let device = PtyDevice::new();
    let mut server = Server::serve(
        &device.path,
        115200,
        &["-l", &format!("pty:{}", link.display())],
    );
    let script = r#"
import serial, sys
for i in range(3):
    with serial.Serial(sys.argv[1], 115200, timeout=5) as port:
        port.write(b"open-%d\n" % i)
        port.flush()
"#;
    let (ok, out) = tokio::task::spawn_blocking({
        let p = python(script, &[link.to_str().unwrap()]);
        move || finish(p, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    for i in 0..3 {
        let want = format!("open-{i}\n");
        assert!(
            device_got(&device, want.as_bytes(), Duration::from_secs(10)).await,
            "missed {want:?}:\n{}",
            server.log()
        );
    }
    assert!(link.symlink_metadata().is_ok());
    assert!(
        server
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(link.symlink_metadata().is_err(), "link left behind");
}

/// Sends `count` lines `TAG%03d\n` in pieces that ignore line boundaries.
async fn blast_lines(addr: std::net::SocketAddr, tag: char, count: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let text: String = (0..count).map(|i| format!("{tag}{i:03}\n")).collect();
    for piece in text.as_bytes().chunks(7) {
        s.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue4_line_framing_keeps_lines_whole_at_9600() {
    let device = PtyDevice::new();
    let server = Server::listen(&device.path, 9600, &["tcp:127.0.0.1:0,framing=line"], &[]);
    let (a, b) = tokio::join!(
        blast_lines(server.addr(), 'A', 500),
        blast_lines(server.addr(), 'B', 500)
    );
    let total = 2 * 500 * 5;
    // 5000 bytes at 960 B/s: about 5 s.
    let done =
        crate::common::eventually(Duration::from_secs(30), || device.received().len() >= total)
            .await;
    let got = device.received();
    assert!(done, "device got {} of {total} bytes", got.len());
    let text = String::from_utf8(got).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000, "lines were split or merged");
    for tag in ['A', 'B'] {
        let mine: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(tag))
            .collect();
        let want: Vec<String> = (0..500).map(|i| format!("{tag}{i:03}")).collect();
        assert_eq!(
            mine, want,
            "client {tag}'s lines are not whole and in order"
        );
    }
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue4_exclusive_lock_holds_other_writers_until_release() {
    let device = PtyDevice::new();
    let server = Server::listen(&device.path, 115_200, &["tcp:127.0.0.1:0,lock=inband"], &[]);
    let mut a = TcpStream::connect(server.addr()).await.unwrap();
    let mut b = TcpStream::connect(server.addr()).await.unwrap();
    a.write_all(b"\x10LA-request-1\n").await.unwrap();
    assert!(device_got(&device, b"A-request-1\n", Duration::from_secs(5)).await);
    b.write_all(b"B-1\nB-2\n").await.unwrap();
    // B's write is counted as waiting for A's lock; it must not be out.
    server.wait_status("B's write did not wait for the lock", |p| {
        p["lock_waits"].as_u64() >= Some(1)
    });
    assert!(
        !device_got(&device, b"B-1", Duration::ZERO).await,
        "B wrote while A held the lock"
    );
    a.write_all(b"A-request-2\n\x10U").await.unwrap();
    assert!(
        device_got(&device, b"B-1\nB-2\n", Duration::from_secs(5)).await,
        "B not released:\n{}",
        server.log()
    );
    assert_eq!(device.received(), b"A-request-1\nA-request-2\nB-1\nB-2\n");
    assert!(server.log().contains("write lock taken"));
    assert!(server.log().contains("write lock released: holder asked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_lock_is_released_on_disconnect_and_when_idle() {
    let device = PtyDevice::new();
    let server = Server::listen(
        &device.path,
        115_200,
        &["tcp:127.0.0.1:0,lock=inband"],
        &["--lock-idle", "3s"],
    );
    let mut a = TcpStream::connect(server.addr()).await.unwrap();
    let mut b = TcpStream::connect(server.addr()).await.unwrap();
    a.write_all(b"\x10La\n").await.unwrap();
    assert!(device_got(&device, b"a\n", Duration::from_secs(5)).await);
    drop(a);
    b.write_all(b"b\n").await.unwrap();
    assert!(
        device_got(&device, b"b\n", Duration::from_secs(5)).await,
        "{}",
        server.log()
    );
    assert!(
        server.wait_log(
            "released: holder closed its sending side",
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
    // B takes the lock and goes quiet: C gets through after the idle timeout.
    b.write_all(b"\x10L").await.unwrap();
    // The lock is B's before C writes (status says so; no sleep).
    assert!(
        crate::common::eventually(Duration::from_secs(5), || {
            !crate::common::status(&server.control)[0]["write_lock"].is_null()
        })
        .await,
        "{}",
        server.log()
    );
    let waits = crate::common::status(&server.control)[0]["lock_waits"]
        .as_u64()
        .expect("lock_waits in status");
    let mut c = TcpStream::connect(server.addr()).await.unwrap();
    c.write_all(b"c\n").await.unwrap();
    // C's write is counted as waiting for B's lock; it must not be out.
    server.wait_status("C's write did not wait for the lock", |p| {
        p["lock_waits"].as_u64() > Some(waits)
    });
    assert!(
        !device_got(&device, b"c\n", Duration::ZERO).await,
        "C wrote while B held the lock"
    );
    assert!(
        device_got(&device, b"c\n", Duration::from_secs(10)).await,
        "{}",
        server.log()
    );
    assert!(server.log().contains("released: idle"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue4_read_only_endpoint_cannot_write() {
    let device = PtyDevice::new();
    let server = Server::listen(
        &device.path,
        115_200,
        &["tcp:127.0.0.1:0,access=ro", "tcp:127.0.0.1:0"],
        &[],
    );
    let mut ro = TcpStream::connect(server.addr()).await.unwrap();
    let mut rw = TcpStream::connect(server.addrs[1]).await.unwrap();
    let ro_peer = format!("tcp:{}", ro.local_addr().unwrap());
    ro.write_all(b"must-not-arrive\n").await.unwrap();
    rw.write_all(b"rw-marker\n").await.unwrap();
    assert!(device_got(&device, b"rw-marker\n", Duration::from_secs(5)).await);
    // Once the hub has counted the read-only client's write as discarded,
    // none of it may have reached the device.
    server.wait_status("the read-only write was not counted", |p| {
        p["clients"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["peer"] == ro_peer.as_str() && c["discarded"] == 16)
    });
    assert_eq!(device.received(), b"rw-marker\n");
    assert!(server.wait_log("read-only client wrote", Duration::from_secs(5)));
    // It still reads what the device sends.
    device.send(b"for-everyone\n");
    assert_eq!(
        read_until(&mut ro, b"for-everyone\n", Duration::from_secs(10)).await,
        b"for-everyone\n"
    );
    drop(ro);
    assert!(
        server.wait_log("discarded=16", Duration::from_secs(5)),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue4_unix_endpoint_has_mode_and_carries_both_ways() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hub.sock");
    let device = PtyDevice::new();
    let mut server = Server::serve(
        &device.path,
        115200,
        &["-l", &format!("unix:{},mode=0600", sock.display())],
    );
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut u = UnixStream::connect(&sock).await.unwrap();
    u.write_all(b"over-unix\n").await.unwrap();
    assert!(device_got(&device, b"over-unix\n", Duration::from_secs(5)).await);
    device.send(b"back\n");
    assert_eq!(
        read_until(&mut u, b"back\n", Duration::from_secs(10)).await,
        b"back\n"
    );
    assert!(
        server
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(!sock.exists(), "socket file left behind");
}

/// Issue 8: a lock holder that keeps writing a byte now and then (never idle
/// for `--lock-idle`) loses the lock after `--lock-max`, and the client
/// waiting behind it gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_trickling_lock_holder_loses_the_lock_after_lock_max() {
    let device = PtyDevice::new();
    let server = Server::listen(
        &device.path,
        115_200,
        &["tcp:127.0.0.1:0,lock=inband"],
        &["--lock-idle", "5s", "--lock-max", "2s"],
    );
    let mut a = TcpStream::connect(server.addr()).await.unwrap();
    let mut b = TcpStream::connect(server.addr()).await.unwrap();
    a.write_all(b"\x10La-has-it\n").await.unwrap();
    assert!(device_got(&device, b"a-has-it\n", Duration::from_secs(10)).await);
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Asking again must not count as activity either.
            if a.write_all(b".\x10L").await.is_err() {
                return;
            }
        }
    });
    b.write_all(b"b-waited\n").await.unwrap();
    // Held back while A holds the lock: counted as waiting for it, and not
    // out...
    server.wait_status("B's write did not wait for the lock", |p| {
        p["lock_waits"].as_u64() >= Some(1)
    });
    assert!(
        !device_got(&device, b"b-waited\n", Duration::ZERO).await,
        "B wrote while A held the lock:\n{}",
        server.log()
    );
    // ...and through once A has held it for --lock-max, though A never idled.
    assert!(
        device_got(&device, b"b-waited\n", Duration::from_secs(20)).await,
        "B never got through:\n{}",
        server.log()
    );
    assert!(!trickle.is_finished(), "A's connection ended");
    trickle.abort();
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("write lock released: held for the maximum"))
        .unwrap_or_else(|| panic!("no lock-max release logged:\n{log}"));
    assert!(line.contains("holder=tcp:127.0.0.1:"), "{line}");
    assert!(!log.contains("released: idle"), "{log}");
}
