//! Issue 21: who gets through a TLS endpoint, and what they may do: a
//! certificate pinned by its fingerprint (`sha256:HEX`); an `ro` identity
//! whose writes never reach the device (seen from the device's side); a
//! resumed session that keeps its identity and role; roles by DNS name and
//! common name from the config file; `any` against named identities; a
//! renegotiation refused; and a flood of connections that never start
//! their handshake, which must not keep a client that does from being
//! served.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
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
    let server = crate::tls::serve_tls(
        &pki,
        &[
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
        ],
    );
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

/// `openssl s_client` to `port` with `version`, and `extra`; its input
/// piped, its output collected when it exits.
fn s_client(port: u16, pki: &crate::tls::Pki, version: &str, extra: &[String]) -> Child {
    let mut args = vec![
        "s_client".to_owned(),
        "-connect".into(),
        format!("127.0.0.1:{port}"),
        "-servername".into(),
        "localhost".into(),
        "-CAfile".into(),
        pki.arg("ca.pem"),
        "-verify_return_error".into(),
        version.into(),
    ];
    args.extend_from_slice(extra);
    Command::new("openssl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is missing: run the tests with scripts/test, which installs it")
}

/// Closes its input and waits for it to exit: its output.
fn ended(mut c: Child) -> String {
    drop(c.stdin.take());
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Session resumption is allowed (TLS 1.3 and 1.2), and a resumed session,
/// which presents no certificate, is still the identity of the one it
/// resumes, with its role: alice, `ro`, resumes, is named in status, and
/// her write is discarded. Without resumption she would be refused: the
/// second client has no certificate to give.
#[test]
fn issue21_a_resumed_session_keeps_its_identity_and_role() {
    let pki = pki();
    let server = echo_server(&pki, &["--allow", "ro:cn:alice"]);
    let port = server.addr().port();
    for (version, shown) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let session = pki.path(&format!("session{version}"));
        let first = s_client(
            port,
            &pki,
            version,
            &[
                "-cert".into(),
                pki.arg("alice.pem"),
                "-key".into(),
                pki.arg("alice.key"),
                "-sess_out".into(),
                session.display().to_string(),
            ],
        );
        // Written once the session is known: with TLS 1.3, when its
        // ticket arrives after the handshake.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&session).map_or(true, |m| m.len() == 0) {
            assert!(
                Instant::now() < deadline,
                "no session saved:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = ended(first);
        assert!(out.contains(&format!("New, {shown}")), "{out}");
        server.wait_status("the first session is gone", |p| {
            p["clients"].as_array().is_some_and(|c| c.is_empty())
        });

        let session = session.display().to_string();
        let mut resumed = s_client(port, &pki, version, &["-sess_in".into(), session]);
        server.wait_status("the resumed session is admitted as alice", |p| {
            p["clients"][0]["identity"] == "cn:alice"
        });
        let stdin = resumed.stdin.as_mut().unwrap();
        stdin.write_all(b"resumed\n").unwrap();
        stdin.flush().unwrap();
        server.wait_status("her write is discarded", |p| {
            p["clients"][0]["discarded"].as_u64() >= Some(8)
        });
        let out = ended(resumed);
        assert!(out.contains(&format!("Reused, {shown}")), "{out}");
    }
    let ports = status(&server.control);
    assert_eq!(ports[0]["bytes_to_device"], 0, "{ports:#}");
    assert_eq!(ports[0]["refusals"]["handshake"], 0, "{ports:#}");
}

/// The config file's `[tls]` table and `[port.access]` roles, served by
/// `serve --config`: `dns:monitor.lab` (a DNS subject alternative name)
/// may read only, `cn:alice` may write, and carol, whom the CA vouches for
/// too, is named by neither and refused.
#[test]
fn issue21_config_file_roles_by_dns_name_and_common_name() {
    let pki = pki();
    let file = pki.path("serialhub.toml");
    std::fs::write(
        &file,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient-ca = {:?}\ncrl = [{:?}]\n\n\
             [[port]]\nname = \"lab\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0,tls\"]\n\n\
             [port.access]\nrw = [\"cn:alice\"]\nro = [\"dns:monitor.lab\"]\n",
            pki.arg("server.pem"),
            pki.arg("server.key"),
            pki.arg("ca.pem"),
            pki.arg("ca.crl"),
        ),
    )
    .unwrap();
    let server = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    let port = server.addr().port();

    let mut carol = socat(port, &pki, Some("carol"));
    carol.send(b"from carol\n");
    carol.finish(Duration::from_secs(10));
    server.wait_status("carol is refused as an unknown identity", |p| {
        p["refusals"]["identity"] == 1
    });

    let mut monitor = socat(port, &pki, Some("monitor"));
    monitor.send(b"from monitor\n");
    server.wait_status("the monitor's write is discarded", |p| {
        p["clients"][0]["discarded"].as_u64() >= Some(13)
    });
    let mut alice = socat(port, &pki, Some("alice"));
    alice.send(b"from alice\n");
    assert!(
        alice.wait_for(b"from alice\n", Duration::from_secs(20)),
        "{}",
        server.log()
    );
    // The monitor reads what the device says, and only that.
    assert!(monitor.wait_for(b"from alice\n", Duration::from_secs(20)));
    let ports = status(&server.control);
    assert_eq!(ports[0]["bytes_to_device"], 11, "{ports:#}");
    assert_eq!(
        ports[0]["clients"].as_array().unwrap().len(),
        2,
        "{ports:#}"
    );
    let (_, seen, _) = monitor.finish(Duration::from_secs(10));
    assert_eq!(seen, "from alice\n");
    let (_, got, _) = alice.finish(Duration::from_secs(10));
    assert_eq!(got, "from alice\n");
}

/// No renegotiation: a TLS 1.2 client that asks for one (`R` in
/// s_client) is told no (the `no_renegotiation` alert, which OpenSSL
/// takes as fatal) and leaves; the port goes on serving.
#[test]
fn issue21_renegotiation_is_refused() {
    let pki = pki();
    let server = echo_server(&pki, &[]);
    let port = server.addr().port();
    let alice = [
        "-cert".to_owned(),
        pki.arg("alice.pem"),
        "-key".into(),
        pki.arg("alice.key"),
    ];
    let mut c = s_client(port, &pki, "-tls1_2", &alice);
    server.wait_status("s_client is admitted", |p| {
        p["clients"][0]["identity"] == "cn:alice"
    });
    let stdin = c.stdin.as_mut().unwrap();
    stdin.write_all(b"R\n").unwrap();
    stdin.flush().unwrap();
    // Its input still open: it leaves because the renegotiation failed.
    server.wait_status("s_client leaves", |p| {
        p["clients"].as_array().is_some_and(|c| c.is_empty())
    });
    let out = ended(c);
    assert!(
        out.contains("RENEGOTIATING") && out.contains("no renegotiation"),
        "{out}"
    );
    let mut next = socat(port, &pki, Some("alice"));
    next.send(b"still served\n");
    assert!(next.wait_for(b"still served\n", Duration::from_secs(20)));
    next.finish(Duration::from_secs(10));
}

/// `any` is every certificate the client CA vouches for, and a named
/// identity decides over it: with `rw:cn:alice` and `ro:any`, carol reads
/// only, alice writes, and mallory, whose CA is another, is refused at the
/// handshake.
#[test]
fn issue21_any_covers_the_cas_certificates_and_a_named_identity_decides_over_it() {
    let pki = pki();
    let server = echo_server(&pki, &["--allow", "rw:cn:alice", "--allow", "ro:any"]);
    let port = server.addr().port();

    let mut mallory = socat(port, &pki, Some("mallory"));
    mallory.send(b"from mallory\n");
    mallory.finish(Duration::from_secs(10));
    server.wait_status("mallory is refused at the handshake", |p| {
        p["refusals"]["handshake"] == 1
    });

    let mut carol = socat(port, &pki, Some("carol"));
    carol.send(b"from carol\n");
    server.wait_status("carol's write is discarded", |p| {
        p["clients"][0]["identity"] == "cn:carol"
            && p["clients"][0]["discarded"].as_u64() >= Some(11)
    });
    let mut alice = socat(port, &pki, Some("alice"));
    alice.send(b"from alice\n");
    assert!(alice.wait_for(b"from alice\n", Duration::from_secs(20)));
    assert!(carol.wait_for(b"from alice\n", Duration::from_secs(20)));
    let ports = status(&server.control);
    assert_eq!(ports[0]["bytes_to_device"], 11, "{ports:#}");
    assert_eq!(ports[0]["refusals"]["identity"], 0, "{ports:#}");
    let (_, seen, _) = carol.finish(Duration::from_secs(10));
    assert_eq!(seen, "from alice\n");
    alice.finish(Duration::from_secs(10));
}
