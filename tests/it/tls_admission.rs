//! Issue 21: who gets through a TLS endpoint. A certificate pinned by its
//! fingerprint (`sha256:HEX`) without naming it otherwise, and a flood of
//! connections that never start their handshake, which must not keep a
//! client that does from being served.

use std::net::TcpStream;
use std::time::Duration;

use crate::common::status;
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
