//! Issue 21: who gets through a TLS endpoint, and what they may do. A
//! certificate pinned by its fingerprint (`sha256:HEX`) without naming it
//! otherwise, an `ro` identity whose writes never reach the device (seen
//! from the device's side), and a flood of
//! connections that never start their handshake, which must not keep a
//! client that does from being served.

use std::net::TcpStream;
use std::time::Duration;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use serialhub::device::SimMode;

use crate::common::{Server, sim, status};
use crate::tls::{echo_server, pki, socat};

/// `--allow rw:sha256:HEX` admits the certificate with that fingerprint as
/// `rw`; another certificate the same CA vouches for is refused as an
/// unknown identity, before any of its bytes reach the device.
#[test]
fn issue21_a_pinned_sha256_identity_is_admitted_and_another_refused() {
    let pki = pki();
    let pin = format!("rw:sha256:{}", pki.alice_sha256);
    let server = echo_server(&pki, &["--allow", &pin]);
    let port = server.addr().port();

    let mut carol = socat(port, &pki, Some("carol"));
    carol.send(b"from carol\n");
    let echoed = carol.wait_for(b"from carol", Duration::from_secs(2));
    let (_, out, _) = carol.finish(Duration::from_secs(10));
    assert!(!echoed && !out.contains("from carol"), "{out}");
    server.wait_status("carol is refused as an unknown identity", |p| {
        p["refusals"]["identity"] == 1 && p["endpoint_refusals"][0]["identity"] == 1
    });
    assert_eq!(status(&server.control)[0]["bytes_to_device"], 0);

    let mut alice = socat(port, &pki, Some("alice"));
    alice.send(b"pinned alice\n");
    assert!(
        alice.wait_for(b"pinned alice\n", Duration::from_secs(20)),
        "{}",
        server.log()
    );
    let ports = status(&server.control);
    let clients = ports[0]["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{ports:#}");
    // Her identity is still shown by name; the pin only decided her role.
    assert_eq!(clients[0]["identity"], "cn:alice", "{ports:#}");
    assert_eq!(ports[0]["refusals"]["identity"], 1, "{ports:#}");
    alice.finish(Duration::from_secs(10));
}

/// Peers that connect and send nothing (no ClientHello) hold no place a
/// well-behaved client needs: with far more of them than handshakes may
/// be in progress at once, and the default 10 s handshake timeout, a
/// client that does its handshake is served at once.
#[test]
fn issue21_a_flood_of_silent_connections_does_not_stop_a_tls_client() {
    const FLOOD: usize = 200;
    let pki = pki();
    let server = echo_server(&pki, &[]);
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    let mut alice = socat(server.addr().port(), &pki, Some("alice"));
    alice.send(b"served through the flood\n");
    // Well within the 10 s that the silent peers may hold their places.
    let echoed = alice.wait_for(b"served through the flood\n", Duration::from_secs(8));
    let ports = status(&server.control);
    assert!(echoed, "{ports:#}\n{}", server.log());
    assert_eq!(ports[0]["clients"][0]["identity"], "cn:alice", "{ports:#}");
    // The bound held: the oldest silent peers were closed to make room
    // (one for each past the 64 places, and one for alice), and counted.
    server.wait_status("the evicted handshakes are counted", |p| {
        p["refusals"]["handshake"].as_u64() >= Some((FLOOD - 64 + 1) as u64)
    });
    assert!(
        server.log().contains("a newer connection needed its place"),
        "{}",
        server.log()
    );
    alice.send(b"still served\n");
    assert!(alice.wait_for(b"still served\n", Duration::from_secs(10)));
    alice.finish(Duration::from_secs(10));
    drop(flood);
}

/// An `ro` identity's writes never reach the device: the simulated sink,
/// run here so its own byte count can be read, receives nothing of carol's
/// (`ro`), though the hub counted her bytes as discarded, and then exactly
/// what alice (`rw`) writes after her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue21_an_ro_identitys_writes_never_reach_the_sink() {
    let pki = pki();
    let sink = sim(SimMode::Sink, 115_200);
    let mut args: Vec<String> = [
        "serve",
        "-d",
        sink.path().to_str().unwrap(),
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0,tls",
        "--allow",
        "ro:cn:carol",
        "--allow",
        "rw:cn:alice",
    ]
    .map(String::from)
    .to_vec();
    args.extend(pki.serve_flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let port = server.addr().port();

    let from_carol = b"from carol\n".repeat(50);
    let mut carol = socat(port, &pki, Some("carol"));
    carol.send(&from_carol);
    server.wait_status("carol's writes are discarded", |p| {
        p["clients"][0]["identity"] == "cn:carol"
            && p["clients"][0]["discarded"].as_u64() >= Some(from_carol.len() as u64)
    });
    let ports = status(&server.control);
    assert_eq!(ports[0]["bytes_to_device"], 0, "{ports:#}");

    // alice's bytes go the same way after carol's: once they are on the
    // line, carol's would have been before them.
    let mut alice = socat(port, &pki, Some("alice"));
    alice.send(b"from alice\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.stats().rx_bytes.load(Relaxed) < 11 {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.stats().rx_bytes.load(Relaxed), 11);
    let ports = status(&server.control);
    assert_eq!(ports[0]["bytes_to_device"], 11, "{ports:#}");
    carol.finish(Duration::from_secs(10));
    alice.finish(Duration::from_secs(10));
}
