//! One reader that never reads, under each slow-reader policy.

use std::time::Duration;

use serialhub::device::SimMode;
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{Server, sim};
use crate::fanout::read_pattern;

/// 115200 baud 8N1.
const LINE_RATE: f64 = 11_520.0;
const RECORD: f64 = 9.0;

struct Outcome {
    server: Server,
    stalled: TcpStream,
    /// Records each good reader got, per second of reading.
    good_rates: Vec<f64>,
    _source: serialhub::device::Sim,
}

/// A stalled client (small receive buffer, never reads) and two good readers
/// that read for `secs`.
async fn scenario(policy: &str, secs: f64) -> Outcome {
    let source = sim(SimMode::Source, 115_200);
    let server = Server::serve(
        source.path().to_str().unwrap(),
        115200,
        &["--slow-reader", policy, "--client-queue", "4KiB"],
    );
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stalled = socket.connect(server.addr()).await.unwrap();
    let good: Vec<_> = connect_two(&server).await;
    let readers: Vec<_> = good
        .into_iter()
        .map(|s| tokio::spawn(read_pattern(s, secs)))
        .collect();
    let mut good_rates = Vec::new();
    for r in readers {
        let c = r.await.unwrap();
        assert_eq!(
            c.errors, 0,
            "{policy}: a good reader saw a gap: {:?}",
            c.first_error
        );
        good_rates.push(c.records as f64 * RECORD / secs);
    }
    Outcome {
        server,
        stalled,
        good_rates,
        _source: source,
    }
}

async fn connect_two(server: &Server) -> Vec<TcpStream> {
    let mut v = Vec::new();
    for _ in 0..2 {
        v.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue2_stalled_reader_is_disconnected_and_others_keep_full_rate() {
    let o = scenario("disconnect", 6.0).await;
    for r in &o.good_rates {
        assert!(*r > 0.8 * LINE_RATE, "good reader got {r:.0} B/s");
    }
    let me = o.stalled.local_addr().unwrap().to_string();
    assert!(
        o.server
            .wait_log("disconnecting client", Duration::from_secs(5)),
        "no disconnect logged:\n{}",
        o.server.log()
    );
    let line = o
        .server
        .log()
        .lines()
        .find(|l| l.contains("disconnecting client"))
        .unwrap()
        .to_owned();
    assert!(line.contains(&me), "log line does not name {me}: {line}");
    assert!(
        line.contains("slow reader"),
        "log line gives no reason: {line}"
    );
    // The stalled client gets what was buffered for it, then end of stream.
    let c = read_pattern(o.stalled, 10.0).await;
    assert_eq!(c.errors, 0, "{:?}", c.first_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue2_stalled_reader_loses_data_under_drop_policy_only() {
    let o = scenario("drop", 6.0).await;
    for r in &o.good_rates {
        assert!(*r > 0.8 * LINE_RATE, "good reader got {r:.0} B/s");
    }
    assert!(
        o.server
            .wait_log("dropping data for this client", Duration::from_secs(5)),
        "{}",
        o.server.log()
    );
    assert!(!o.server.log().contains("disconnecting client"));
    // Still connected; its stream has a gap where data was dropped.
    let c = read_pattern(o.stalled, 2.0).await;
    assert!(c.records > 0, "stalled client was cut off");
    assert!(
        c.errors > 0,
        "expected a gap in the stalled client's stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue2_block_policy_is_lossless_and_paced_by_the_slowest() {
    let o = scenario("block", 8.0).await;
    // Once the stalled client's buffers are full, everyone waits.
    for r in &o.good_rates {
        assert!(
            *r < 0.7 * LINE_RATE,
            "good reader got {r:.0} B/s despite a blocked peer"
        );
    }
    // When the stalled client reads, it gets everything, with no gap.
    let c = read_pattern(o.stalled, 3.0).await;
    assert_eq!(c.errors, 0, "{:?}", c.first_error);
    assert!(c.records > 1000, "only {} records", c.records);
    assert!(!o.server.log().contains("disconnecting client"));
}
