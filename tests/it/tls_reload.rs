//! Issue 21: `serialhub reload` reads the TLS files again. New handshakes
//! get the new certificate while an open session goes on; a broken file is
//! refused, the reload fails naming it, and the certificate in force stays.

use std::time::Duration;

use crate::common::control;
use crate::tls::{echo_server, pki, s_client, socat};

/// The subject line `openssl s_client` prints for the server's certificate.
fn served_subject(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject in:\n{out}"))
}

#[test]
fn issue21_reload_serves_a_renewed_certificate_and_keeps_it_over_a_broken_one() {
    let pki = pki();
    let server = echo_server(&pki, &[]);
    let port = server.addr().port();

    let (ok, out) = s_client(port, &pki, "-tls1_3");
    assert!(ok, "{out}");
    assert!(!served_subject(&out).contains("renewed"), "{out}");

    // A session that is open across both reloads.
    let mut alice = socat(port, &pki, Some("alice"));
    alice.send(b"before\n");
    assert!(
        alice.wait_for(b"before\n", Duration::from_secs(10)),
        "{}",
        server.log()
    );

    // The renewed certificate replaces the old one on disk.
    for ext in ["pem", "key"] {
        std::fs::copy(
            pki.path(&format!("renewed.{ext}")),
            pki.path(&format!("server.{ext}")),
        )
        .unwrap();
    }
    let (ok, said, err) = control(&server.control, &["reload"]);
    assert!(ok, "reload failed: {said}{err}\n{}", server.log());
    assert!(said.contains("TLS certificates: read anew"), "{said}");
    let (ok, out) = s_client(port, &pki, "-tls1_3");
    assert!(ok, "{out}");
    assert!(served_subject(&out).contains("renewed"), "{out}");

    // A broken certificate: the reload fails and says which file, and the
    // renewed one is still served.
    std::fs::write(pki.path("server.pem"), "not a certificate\n").unwrap();
    let (ok, said, err) = control(&server.control, &["reload"]);
    assert!(!ok, "a broken certificate was taken: {said}");
    assert!(
        err.contains("server.pem") && err.contains("old ones kept"),
        "{err}"
    );
    let (ok, out) = s_client(port, &pki, "-tls1_3");
    assert!(ok, "{out}");
    assert!(served_subject(&out).contains("renewed"), "{out}");

    // The session begun before it all still streams.
    alice.send(b"after\n");
    assert!(
        alice.wait_for(b"before\nafter\n", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let (_, got, _) = alice.finish(Duration::from_secs(10));
    assert_eq!(got, "before\nafter\n");
}
