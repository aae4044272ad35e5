//! Issue 21: who gets through a TLS endpoint. A certificate pinned by its
//! fingerprint (`sha256:HEX`) without naming it otherwise.

use std::time::Duration;

use crate::common::{Server, status};
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
