//! A device that vanishes and comes back (a USB adapter unplugged and
//! replugged): clients stay connected and carry on once it returns.

use std::time::Duration;

use serialhub::device::SimMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Server, eventually, sim};

fn relink(target: &std::path::Path, link: &std::path::Path) {
    let tmp = link.with_extension("new");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

async fn read_until(s: &mut TcpStream, needle: &[u8], timeout: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    while !got.windows(needle.len()).any(|w| w == needle) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "no {:?} before {other:?}; got {} bytes",
                String::from_utf8_lossy(needle),
                got.len()
            ),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_replugged_is_reopened_and_clients_stay() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyHOT");
    let first = sim(SimMode::Source, 115_200);
    relink(first.path(), &link);
    let server = Server::start(&[
        "serve",
        "-d",
        link.to_str().unwrap(),
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0",
    ]);
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
