//! A device that vanishes and comes back (a USB adapter unplugged and
//! replugged): clients stay connected and carry on once it returns.

use std::time::Duration;

use serialhub::device::SimMode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{Server, eventually, read_until, sim};

fn relink(target: &std::path::Path, link: &std::path::Path) {
    let tmp = link.with_extension("new");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_replugged_is_reopened_and_clients_stay() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyHOT");
    let first = sim(SimMode::Source, 115_200);
    relink(first.path(), &link);
    let server = Server::serve(link.to_str().unwrap(), 115200, &[]);
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    read_until(&mut client, b"\n", Duration::from_secs(5)).await;

    drop(first); // unplugged
    assert!(
        server.wait_log("device lost", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    // While the device is away, a write waits in the queue instead of failing.
    client.write_all(b"sent-while-unplugged\n").await.unwrap();

    let second = sim(SimMode::Echo, 115_200);
    relink(second.path(), &link);
    assert!(
        server.wait_log("device reopened", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    // The write queued during the outage reaches the new device (it echoes).
    read_until(
        &mut client,
        b"sent-while-unplugged\n",
        Duration::from_secs(5),
    )
    .await;
    client.write_all(b"after-replug\n").await.unwrap();
    read_until(&mut client, b"after-replug\n", Duration::from_secs(5)).await;
    let stats = second.stats();
    assert!(
        eventually(Duration::from_secs(2), || stats
            .rx_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            == 34)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_a_device_absent_at_start_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyLATE");
    let sock = dir.path().join("control.sock");
    let server = crate::common::Server::start(&[
        "--control",
        sock.to_str().unwrap(),
        "serve",
        "--wait-for-device",
        "-d",
        link.to_str().unwrap(),
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0",
    ]);
    let state = || {
        let out = crate::common::command()
            .arg("--control")
            .arg(&sock)
            .args(["status", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["device_state"]["state"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(state(), "waiting");
    // A client connects and writes before the device exists: its bytes wait.
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    client
        .write_all(b"written-before-the-device\n")
        .await
        .unwrap();
    // The hub has taken them before the device appears.
    server.wait_status("the client's bytes were not taken", |p| {
        p["clients"][0]["bytes_in"] == 26
    });
    assert_eq!(state(), "waiting");

    let device = sim(SimMode::Echo, 115_200);
    relink(device.path(), &link);
    let appeared = std::time::Instant::now();
    read_until(
        &mut client,
        b"written-before-the-device\n",
        Duration::from_secs(10),
    )
    .await;
    eprintln!("served {:?} after the device appeared", appeared.elapsed());
    assert_eq!(state(), "open");
    assert!(server.log().contains("device appeared"), "{}", server.log());
}

#[test]
fn issue10_without_wait_for_device_a_missing_device_fails_fast() {
    let (status, err, took) = crate::common::run_to_exit(
        &[
            "serve",
            "-d",
            "/dev/does-not-exist",
            "-l",
            "tcp:127.0.0.1:0",
        ],
        Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(err.contains("/dev/does-not-exist"), "{err}");
    assert!(took < Duration::from_secs(5));
}
