//! Reads: every client gets the device's whole stream.

use std::time::Duration;

use serialhub::device::SimMode;
use serialhub::pattern::Checker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Server, sim};

/// Reads from `stream` for `secs`, checking the pattern as it goes.
pub async fn read_pattern(mut stream: TcpStream, secs: f64) -> Checker {
    let mut c = Checker::new();
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        c.feed(&buf[..n]);
    }
    c
}

/// Issue #2: three readers on a 115200-baud source all get the identical,
/// complete stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue2_three_readers_get_identical_stream() {
    let source = sim(SimMode::Source, 115_200);
    let server = Server::serve(source.path().to_str().unwrap(), 115200, &[]);
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // Readers stop at the same device position: read 3 s each, concurrently.
    let readers: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(read_pattern(s, 3.0)))
        .collect();
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await.unwrap());
    }
    for c in &results {
        assert_eq!(c.errors, 0, "gap or corruption: {:?}", c.first_error);
        // 11520 B/s for 3 s is 3840 records; allow for start-up and jitter.
        assert!(c.records > 3000, "only {} records", c.records);
    }
    // Contiguous streams that end at nearly the same record are identical
    // over their overlap; the ends differ only by timing at the edges.
    let ends: Vec<u32> = results.iter().map(|c| c.next_record().unwrap()).collect();
    let spread = ends.iter().max().unwrap() - ends.iter().min().unwrap();
    assert!(spread < 200, "readers diverged: {ends:?}");
}

/// The simulated echo device answers over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue2_sim_echo_answers_over_tcp() {
    let server = Server::start(&["serve", "-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]);
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"hello serialhub\r\n").await.unwrap();
    let mut got = vec![0u8; 17];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello serialhub\r\n");
}

/// Issue 12: device output is written to an idle client's socket by the
/// fan-out itself. Readers that reset or close mid-stream, while those
/// writes go on, leave the other readers' streams whole, and are gone from
/// `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_readers_leaving_mid_stream_leave_the_others_whole() {
    let source = sim(SimMode::Source, 115_200);
    let server = Server::serve(source.path().to_str().unwrap(), 115200, &[]);
    let mut staying = Vec::new();
    let mut leaving = Vec::new();
    for i in 0..6 {
        let s = TcpStream::connect(server.addr()).await.unwrap();
        if i % 2 == 0 {
            staying.push(s);
        } else {
            leaving.push(s);
        }
    }
    let readers: Vec<_> = staying
        .into_iter()
        .map(|s| tokio::spawn(read_pattern(s, 4.0)))
        .collect();
    // Let the stream flow to every client, then leave in the middle of it:
    // two with a reset (SO_LINGER 0), one with a FIN after reading a little.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut buf = [0u8; 512];
    for (i, mut s) in leaving.into_iter().enumerate() {
        let _ = s.read(&mut buf).await;
        if i == 0 {
            s.shutdown().await.unwrap();
            drop(s);
        } else {
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s);
        }
    }
    // While the others still read, the three that left are gone.
    let control = server.control.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let port = &crate::common::status(&control)[0];
            let n = port["clients"].as_array().map_or(0, Vec::len);
            if n == 3 || std::time::Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert_eq!(
        listed, 3,
        "the readers that left are still listed, or others went"
    );
    for r in readers {
        let c = r.await.unwrap();
        assert_eq!(c.errors, 0, "gap or corruption: {:?}", c.first_error);
        assert!(c.records > 4000, "only {} records", c.records);
    }
}
