//! Start-up errors and clean shutdown.

use std::time::Duration;

use serialhub::device::SimMode;
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Server, eventually, run_to_exit, sim};

/// Issue #2: a missing device gives a clear error and a non-zero exit, fast.
#[test]
fn issue2_missing_device_fails_fast_with_reason() {
    let (status, err, took) = run_to_exit(
        &[
            "serve",
            "-d",
            "/dev/ttyDOESNOTEXIST9",
            "-l",
            "tcp:127.0.0.1:0",
        ],
        Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(err.contains("/dev/ttyDOESNOTEXIST9"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
}

#[test]
fn bad_settings_give_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["serve", "-d", "sim:echo", "-b", "0"],
            "baud rate 0 is out of range",
        ),
        (
            &["serve", "-d", "sim:echo", "-b", "fast"],
            "invalid value 'fast'",
        ),
        (
            &["serve", "-d", "sim:echo", "-l", "127.0.0.1:7000"],
            "unknown endpoint kind",
        ),
        (
            &["serve", "-d", "sim:echo", "-l", "tcp:127.0.0.1:99999"],
            "port must be a number",
        ),
        (
            &["serve", "-d", "sim:bogus"],
            "expected echo, source, sink, modbus or loopback",
        ),
        (
            &["serve", "-d", "sim:echo", "--client-queue", "lots"],
            "--client-queue",
        ),
    ];
    assert!(!cases.is_empty());
    for (args, want) in cases {
        let (status, err, _) = run_to_exit(args, Duration::from_secs(10));
        assert!(!status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp:{}", taken.local_addr().unwrap());
    let (status, err, _) = run_to_exit(
        &["serve", "-d", "sim:echo", "-l", &addr],
        Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
}

/// SIGTERM: bytes already accepted for the device are written, clients are
/// closed, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue2_sigterm_drains_writes_and_closes_clients() {
    let sink = sim(SimMode::Sink, 9600);
    let mut server = Server::serve(sink.path().to_str().unwrap(), 9600, &[]);
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    // 450 bytes: about half a second at 9600 baud, within the in-flight bound.
    let data = serialhub::pattern::Generator::new().take(450);
    client.write_all(&data).await.unwrap();
    let accepted = eventually(Duration::from_secs(5), || {
        serialhub::measure::unacked(&client).unwrap() == 0
    })
    .await;
    assert!(accepted);
    let status = tokio::task::spawn_blocking(move || {
        let s = server.terminate(Duration::from_secs(10));
        (s, server)
    });
    let mut buf = [0u8; 16];
    let eof = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
    assert!(
        matches!(eof, Ok(Ok(0)) | Ok(Err(_))),
        "client not closed: {eof:?}"
    );
    let (status, server) = status.await.unwrap();
    let status = status.expect("serialhub did not exit after SIGTERM");
    assert!(status.success(), "exit {status}: {}", server.log());
    let stats = sink.stats();
    let all = eventually(Duration::from_secs(2), || {
        stats.rx_bytes.load(Relaxed) == 450
    })
    .await;
    assert!(
        all,
        "device got {} of 450 bytes",
        stats.rx_bytes.load(Relaxed)
    );
    // The sink syncs on the first newline, so record 0 is not counted.
    assert_eq!(stats.records.load(Relaxed), 49);
    assert_eq!(stats.errors.load(Relaxed), 0);
}

/// `serialhub sim` makes a device other programs (here, serialhub) can open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_command_links_a_usable_device() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttySIM");
    let mut sim = crate::common::command()
        .args([
            "sim",
            "--mode",
            "echo",
            "--baud",
            "19200",
            "--link",
            link.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || link.exists()).await,
        "no link"
    );
    let server = Server::serve(link.to_str().unwrap(), 19200, &[]);
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"ping\n").await.unwrap();
    let mut got = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ping\n");
    drop(server);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sim.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(sim.wait().unwrap().success());
    assert!(
        !link.exists() && link.symlink_metadata().is_err(),
        "link not removed"
    );
}
