//! Writes: a flooding client is held to line rate with bounded in-flight
//! bytes and no loss; several writers merge with each one's bytes in order.

use std::time::Duration;

use serialhub::device::SimMode;
use serialhub::measure::flood;
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{PtyDevice, Server, eventually, sim};

/// Issue #2: flood a paced 9600-baud device. The full 15 s figures live in the
/// flood benchmark; this checks the same properties over a shorter run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue2_flood_at_9600_is_bounded_and_lossless() {
    let sink = sim(SimMode::Sink, 9600);
    let server = Server::serve(sink.path().to_str().unwrap(), 9600, &[]);
    // A small send buffer only shortens the drain at the end (the kernel
    // would otherwise autotune it to megabytes); the bound under test is on
    // what has left the client.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(2048).unwrap();
    let mut stream = socket.connect(server.addr()).await.unwrap();
    let stats = sink.stats().clone();

    let device_rx = || stats.rx_bytes.load(Relaxed);
    let r = flood(&mut stream, device_rx, Duration::from_secs(5))
        .await
        .unwrap();
    let (written, max_inflight) = (r.written, r.max_inflight);
    let rate = r.line_bytes as f64 / r.secs;

    // Everything written reaches the device, intact and in order.
    let arrived = eventually(Duration::from_secs(30), || {
        stats.rx_bytes.load(Relaxed) == written
    })
    .await;
    assert!(
        arrived,
        "device got {} of {written} bytes",
        stats.rx_bytes.load(Relaxed)
    );
    assert_eq!(
        stats.errors.load(Relaxed),
        0,
        "{:?}",
        stats.first_error.lock().unwrap()
    );
    // The sink syncs on the first newline, so record 0 is not counted.
    assert_eq!(stats.records.load(Relaxed), written / 9 - 1);
    eprintln!("flood: {rate:.0} B/s on the line, at most {max_inflight} bytes in flight");

    // The line ran near full rate (960 B/s), and what sat between the
    // client's socket and the wire stayed near 1 s of line time (the issue
    // allows 2 s; the benchmark reports the exact figure).
    assert!(rate > 0.85 * 960.0, "line rate {rate:.0} B/s");
    assert!(
        max_inflight <= 1920,
        "in flight peaked at {max_inflight} bytes"
    );
    drop(server);
}

/// Two writers at once: each one's bytes reach the device complete and in
/// order (they use disjoint alphabets so the device stream can be split).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_writers_keep_their_own_order() {
    let device = PtyDevice::new();
    let server = Server::serve(&device.path, 115200, &[]);
    let payload = |base: u8| -> Vec<u8> {
        (0..20_000u32)
            .map(|i| base + (i % 16) as u8 + if i % 97 == 0 { 16 } else { 0 })
            .collect()
    };
    let (a, b) = (payload(b'a'), payload(b'A'));
    let send = |data: Vec<u8>| {
        let addr = server.addr();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for piece in data.chunks(37) {
                s.write_all(piece).await.unwrap();
            }
            s.flush().await.unwrap();
            // Keep the connection until the device has had everything.
            tokio::time::sleep(Duration::from_secs(6)).await;
        })
    };
    let (ta, tb) = (send(a.clone()), send(b.clone()));
    let done = eventually(Duration::from_secs(20), || {
        device.received().len() >= a.len() + b.len()
    })
    .await;
    let got = device.received();
    assert!(
        done,
        "device got {} of {} bytes",
        got.len(),
        a.len() + b.len()
    );
    let only = |lo: u8| {
        got.iter()
            .copied()
            .filter(|c| (lo..lo + 32).contains(c))
            .collect::<Vec<u8>>()
    };
    assert!(only(b'a') == a, "client a's bytes were reordered or lost");
    assert!(only(b'A') == b, "client b's bytes were reordered or lost");
    ta.abort();
    tb.abort();
}
