//! Issue 20: every drop the hub counts reaches `status --json` and the
//! metrics, provoked for real: unsolicited device output under
//! `--unsolicited drop`, a Modbus reply failing its CRC, and a reply whose
//! client left before it came.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serialhub::proto::modbus::rtu;

use crate::common::{PtyDevice, Server, status};
use crate::metrics::{get, parse, sample};

/// Waits (up to 20 s) until the device has received `want` at the end of
/// what it got.
fn wait_received(device: &PtyDevice, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !device.received().ends_with(want) {
        assert!(
            Instant::now() < deadline,
            "the device did not get {want:02x?}: {:02x?}",
            device.received()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn issue20_drops_reach_status_and_the_metrics() {
    let device = PtyDevice::new();
    let server = Server::serve_with_metrics(
        &device.path,
        19_200,
        &[
            "--writers",
            "transaction",
            "--unsolicited",
            "drop",
            // Long enough that the departed client's reply below comes in time.
            "--reply-timeout",
            "10s",
            "-l",
            "modbus-tcp:127.0.0.1:0",
        ],
    );
    server.wait_status("the device did not open", |p| {
        p["device_state"]["state"] == "open"
    });

    // Output that answers no request: nobody gets it, and it is counted.
    let unprompted = b"unprompted\n";
    device.send(unprompted);
    server.wait_status("unsolicited bytes were not counted", |p| {
        p["unsolicited_dropped"] == unprompted.len()
    });

    // A Modbus TCP request whose reply fails its CRC: the client gets
    // exception 0x0B, and the bad reply is counted for it.
    let mut master = TcpStream::connect(server.modbus[0]).unwrap();
    master
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    master
        .write_all(&[0, 7, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])
        .unwrap();
    let mut request = vec![1, 3, 0, 0, 0, 1];
    rtu::append_crc(&mut request);
    wait_received(&device, &request);
    let mut reply = vec![1, 3, 2, 0, 42];
    rtu::append_crc(&mut reply);
    let at = reply.len() - 1;
    reply[at] ^= 0xff;
    device.send(&reply);
    let mut answer = [0u8; 9];
    master.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [0, 7, 0, 0, 0, 3, 1, 0x83, 0x0b]);

    // A request whose client leaves before its reply comes.
    let mut gone = TcpStream::connect(server.addr()).unwrap();
    gone.write_all(b"ask\n").unwrap();
    wait_received(&device, b"ask\n");
    drop(gone);
    server.wait_status("the departed client is still listed", |p| {
        p["clients"].as_array().is_some_and(|c| c.len() == 1)
    });
    let late = b"late reply\n";
    device.send(late);
    server.wait_status("the discarded reply was not counted", |p| {
        p["replies_discarded"] == late.len()
    });

    let port = &status(&server.control)[0];
    assert_eq!(port["unsolicited_dropped"], unprompted.len(), "{port:#}");
    assert_eq!(port["bad_replies"], 1, "{port:#}");
    assert_eq!(port["reset_lost"], 0, "{port:#}");
    // The Modbus TCP client, the only one left, shown as a TCP peer.
    let peer = format!("tcp:127.0.0.1:{}", master.local_addr().unwrap().port());
    let client = &port["clients"][0];
    assert_eq!(client["peer"], peer, "{port:#}");
    assert_eq!(client["bad_replies"], 1, "{port:#}");
    assert_eq!(client["transactions"], 1, "{port:#}");

    let (code, _, body) = get(&server.metrics_addr(), "/metrics");
    assert!(code.contains(" 200 "), "{code}");
    let f = parse(&body);
    let name = port["name"].as_str().unwrap();
    let labels = [("port", name)];
    assert_eq!(
        sample(&f, "serialhub_unsolicited_dropped_bytes", &labels),
        unprompted.len() as f64
    );
    assert_eq!(sample(&f, "serialhub_bad_replies", &labels), 1.0);
    assert_eq!(
        sample(&f, "serialhub_replies_discarded_bytes", &labels),
        late.len() as f64
    );
    assert_eq!(sample(&f, "serialhub_reset_lost_bytes", &labels), 0.0);
    let labels = [("port", name), ("peer", peer.as_str())];
    assert_eq!(sample(&f, "serialhub_client_bad_replies", &labels), 1.0);
    assert_eq!(sample(&f, "serialhub_client_transactions", &labels), 1.0);

    // Issue 21: refusals by reason, per port and per endpoint, in status
    // and the metrics, every reason listed though none happened here.
    let endpoints = port["endpoint_refusals"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{port:#}");
    for reason in REFUSALS {
        assert_eq!(port["refusals"][reason], 0, "{reason}: {port:#}");
        for e in endpoints {
            assert_eq!(e[reason], 0, "{reason}: {port:#}");
        }
        let labels = [("port", name), ("reason", reason)];
        assert_eq!(sample(&f, "serialhub_refused", &labels), 0.0, "{reason}");
    }
}

/// Every reason a connection is refused for (issue 21).
const REFUSALS: [&str; 6] = [
    "max_clients",
    "descriptors",
    "network",
    "handshake",
    "identity",
    "revoked",
];
