//! Issue 12: a `--no-pacing` port used as a pipe moves large transfers
//! intact in both directions, through the byte-sized buffers it gets.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serialhub::device::{Sim, SimMode};
use serialhub::pattern::{Checker, Generator, RECORD_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Server, eventually};

/// Far more than every buffer on the way (budget, client queue, sockets).
const TRANSFER: usize = 16 << 20;
/// Generous: a loaded 2-core machine moves this in well under a second.
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_unpaced_pty_moves_a_large_transfer_to_the_device_intact() {
    let sink = Sim::spawn_unpaced(SimMode::Sink).unwrap();
    let server = Server::serve(
        sink.path().to_str().unwrap(),
        115_200,
        &["--no-pacing", "--slow-reader", "block"],
    );
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let stats = sink.stats().clone();
    let mut g = Generator::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0;
    while sent < TRANSFER {
        g.fill(&mut buf);
        tokio::time::timeout(DEADLINE, stream.write_all(&buf))
            .await
            .expect("serialhub stopped taking bytes")
            .unwrap();
        sent += buf.len();
    }
    let all = eventually(DEADLINE, || stats.rx_bytes.load(Relaxed) >= sent as u64).await;
    assert!(
        all,
        "the device got {} of {sent} bytes\n{}",
        stats.rx_bytes.load(Relaxed),
        server.log()
    );
    assert_eq!(stats.rx_bytes.load(Relaxed), sent as u64);
    assert_eq!(
        stats.errors.load(Relaxed),
        0,
        "{:?}",
        stats.first_error.lock().unwrap()
    );
    // Every record but a partial last one, in order.
    assert!(stats.records.load(Relaxed) >= (sent / RECORD_LEN - 1) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_unpaced_pty_moves_a_large_transfer_to_the_client_intact() {
    let source = Sim::spawn_unpaced(SimMode::Source).unwrap();
    let server = Server::serve(
        source.path().to_str().unwrap(),
        115_200,
        &["--no-pacing", "--slow-reader", "block"],
    );
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let mut c = Checker::new();
    let mut buf = vec![0u8; 64 << 10];
    while c.bytes < TRANSFER as u64 {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("no bytes from serialhub")
            .unwrap();
        assert!(n > 0, "serialhub closed the connection\n{}", server.log());
        c.feed(&buf[..n]);
    }
    assert_eq!(c.errors, 0, "{:?}", c.first_error);
    // In order and none lost (a lost byte breaks a record): the checker
    // saw every record after the first newline.
    assert!(
        c.records >= (TRANSFER / RECORD_LEN - 2) as u64,
        "{}",
        c.records
    );
}
