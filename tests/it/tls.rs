//! Issue 21: TLS on the network endpoints, through clients nobody here
//! wrote (socat, openssl s_client, ncat, curl; installed by scripts/test),
//! with certificates made here by rcgen: a CA, a server certificate for
//! `localhost` and 127.0.0.1, users (alice, carol, monitor with the DNS
//! name monitor.lab, and bob whose certificate a CRL revokes), and a user
//! of a foreign CA.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use serialhub::device::SimMode;

use crate::common::{Server, run_to_exit, sim};

/// The certificates of one test, in a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// SHA-256 of alice's certificate, lowercase hex.
    pub alice_sha256: String,
}

impl Pki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The `serve` flags for mutual TLS with the CA and its CRL.
    pub fn serve_flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.arg("server.pem"),
            "--tls-key".into(),
            self.arg("server.key"),
            "--tls-client-ca".into(),
            self.arg("ca.pem"),
            "--tls-crl".into(),
            self.arg("ca.crl"),
        ]
    }
}

fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params, key)
}

/// A client certificate for `cn`, with serial number `serial`.
fn user(cn: &str, serial: u64, issuer: &Issuer<'_, KeyPair>) -> (String, String, Vec<u8>) {
    user_with_dns(cn, serial, &[], issuer)
}

/// A client certificate for `cn` with the DNS subject alternative names
/// `dns`.
fn user_with_dns(
    cn: &str,
    serial: u64,
    dns: &[&str],
    issuer: &Issuer<'_, KeyPair>,
) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
    let mut params = CertificateParams::new(dns).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// Makes the test PKI.
pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let (ca_params, ca_key) = ca("serialhub test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    write("ca.pem", &ca_cert.pem());
    let issuer = Issuer::new(ca_params, ca_key);

    // The server's certificate, and the one that renews it (a reload
    // test puts it in place).
    for (file, cn) in [("server", "localhost"), ("renewed", "localhost renewed")] {
        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        server.distinguished_name.push(DnType::CommonName, cn);
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server.signed_by(&server_key, &issuer).unwrap();
        write(&format!("{file}.pem"), &server.pem());
        write(&format!("{file}.key"), &server_key.serialize_pem());
    }

    let (pem, key, alice_der) = user("alice", 1001, &issuer);
    write("alice.pem", &pem);
    write("alice.key", &key);
    let (pem, key, _) = user("bob", 1002, &issuer);
    write("bob.pem", &pem);
    write("bob.key", &key);
    let (pem, key, _) = user("carol", 1004, &issuer);
    write("carol.pem", &pem);
    write("carol.key", &key);
    // monitor, to be named by its DNS name (`dns:monitor.lab`).
    let (pem, key, _) = user_with_dns("monitor", 1005, &["monitor.lab"], &issuer);
    write("monitor.pem", &pem);
    write("monitor.key", &key);

    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(30),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(1002u64),
            revocation_time: now - time::Duration::minutes(30),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    write("ca.crl", &crl.pem().unwrap());

    let (foreign_params, foreign_key) = ca("someone else's CA");
    let foreign = Issuer::new(foreign_params, foreign_key);
    let (pem, key, _) = user("mallory", 1003, &foreign);
    write("mallory.pem", &pem);
    write("mallory.key", &key);

    let digest = ring::digest::digest(&ring::digest::SHA256, &alice_der);
    let alice_sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Pki { dir, alice_sha256 }
}

/// Whether `tool` is installed; the tests need it (scripts/test installs it).
fn need(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing: run the tests with scripts/test, which installs it"
    );
}

/// A client process whose stdout is collected as it comes.
pub(crate) struct Client {
    child: Child,
    out: mpsc::Receiver<Vec<u8>>,
    got: Vec<u8>,
}

impl Client {
    fn spawn(program: &str, args: &[String]) -> Client {
        Self::start(program, args, true)
    }

    /// With `read` false, its output goes to a pipe nobody reads.
    fn start(program: &str, args: &[String], read: bool) -> Client {
        need(program);
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, out) = mpsc::channel();
        if !read {
            return Client {
                child,
                out,
                got: Vec::new(),
            };
        }
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Client {
            child,
            out,
            got: Vec::new(),
        }
    }

    pub(crate) fn send(&mut self, data: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(data).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until its output holds `needle`; false after `timeout` or at
    /// its end of output.
    pub(crate) fn wait_for(&mut self, needle: &[u8], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.got.windows(needle.len()).any(|w| w == needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(chunk) => self.got.extend_from_slice(&chunk),
                Err(_) => return false,
            }
        }
        true
    }

    /// Closes its input and waits for it to exit: (success, stdout, stderr).
    pub(crate) fn finish(mut self, timeout: Duration) -> (bool, String, String) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(chunk) = self.out.recv_timeout(Duration::from_millis(200)) {
            self.got.extend_from_slice(&chunk);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = self.child.wait();
        (
            status.is_some_and(|s| s.success()),
            String::from_utf8_lossy(&self.got).into_owned(),
            err,
        )
    }
}

/// `socat - OPENSSL:localhost:PORT,...` with `who`'s certificate (if any).
pub(crate) fn socat(port: u16, pki: &Pki, who: Option<&str>) -> Client {
    let mut addr = format!("OPENSSL:localhost:{port},cafile={}", pki.arg("ca.pem"));
    if let Some(who) = who {
        addr += &format!(
            ",cert={},key={}",
            pki.arg(&format!("{who}.pem")),
            pki.arg(&format!("{who}.key"))
        );
    }
    Client::spawn("socat", &["-".into(), addr])
}

/// `serve -d sim:echo -l tcp:127.0.0.1:0,tls` with mutual TLS, and `extra`.
pub(crate) fn echo_server(pki: &Pki, extra: &[&str]) -> Server {
    echo_server_on("tcp:127.0.0.1:0,tls", pki, extra)
}

fn echo_server_on(listen: &str, pki: &Pki, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "-d", "sim:echo", "-l", listen];
    args.extend(extra);
    serve_tls(pki, &args)
}

/// `serialhub ARGS` with the mutual-TLS flags of `pki` after them.
pub(crate) fn serve_tls(pki: &Pki, args: &[&str]) -> Server {
    let flags = pki.serve_flags();
    let mut args = args.to_vec();
    args.extend(flags.iter().map(String::as_str));
    Server::start(&args)
}

#[test]
fn issue21_socat_echoes_through_tls_and_status_and_the_log_name_the_identity() {
    let pki = pki();
    let logs = tempfile::tempdir().unwrap();
    let log_dir = logs.path().display().to_string();
    let server = echo_server(&pki, &["--log", &log_dir, "--log-format", "json"]);
    let port = server.addr().port();

    let mut alice = socat(port, &pki, Some("alice"));
    alice.send(b"hello through tls\n");
    assert!(
        alice.wait_for(b"hello through tls\n", Duration::from_secs(10)),
        "no echo; got {:?}\n{}",
        String::from_utf8_lossy(&alice.got),
        server.log()
    );
    let ports = crate::common::status(&server.control);
    let clients = ports[0]["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{ports:#}");
    assert_eq!(clients[0]["identity"], "cn:alice", "{ports:#}");
    // The table too, last column.
    let (ok, table, _) = crate::common::control(&server.control, &["status"]);
    assert!(
        ok && table.contains("IDENTITY") && table.contains("cn:alice"),
        "{table}"
    );
    let (_, out, err) = alice.finish(Duration::from_secs(10));
    assert_eq!(out, "hello through tls\n", "{err}");
    server.wait_status("alice gone", |p| {
        p["clients"].as_array().is_some_and(|c| c.is_empty())
    });

    // The connect record names her, with her certificate's fingerprint.
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let connect = loop {
        log.clear();
        for f in std::fs::read_dir(logs.path()).unwrap() {
            log += &std::fs::read_to_string(f.unwrap().path()).unwrap();
        }
        if let Some(line) = log.lines().find(|l| l.contains(r#""kind":"connect""#)) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no connect record: {log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let record: serde_json::Value = serde_json::from_str(&connect).unwrap();
    assert_eq!(record["identity"], "cn:alice", "{connect}");
    assert_eq!(record["sha256"], pki.alice_sha256.as_str(), "{connect}");
    // A plain-text status field is null: the other connections had none.
    assert!(
        server.log().contains(r#"identity="cn:alice""#),
        "{}",
        server.log()
    );
}

/// A client refused at the handshake never reaches the device; the refusal
/// is counted under `counted` (per port and per endpoint) and its reason
/// logged.
fn refused(who: Option<&str>, reason: &str, counted: &str) {
    let pki = pki();
    let server = echo_server(&pki, &[]);
    let mut c = socat(server.addr().port(), &pki, who);
    c.send(b"secret\n");
    let echoed = c.wait_for(b"secret", Duration::from_secs(2));
    let (_, out, err) = c.finish(Duration::from_secs(10));
    assert!(
        !echoed && !out.contains("secret"),
        "{who:?} got through: {out} {err}"
    );
    assert!(
        server.wait_log(reason, Duration::from_secs(10)),
        "{who:?}: no {reason:?} in the log:\n{}",
        server.log()
    );
    let ports = crate::common::status(&server.control);
    assert_eq!(ports[0]["bytes_to_device"], 0, "{ports:#}");
    assert!(
        !server.log().contains("client connected"),
        "{}",
        server.log()
    );
    assert_eq!(ports[0]["refusals"][counted], 1, "{ports:#}");
    assert_eq!(ports[0]["endpoint_refusals"][0][counted], 1, "{ports:#}");
    let other = if counted == "revoked" {
        "handshake"
    } else {
        "revoked"
    };
    assert_eq!(ports[0]["refusals"][other], 0, "{ports:#}");
}

#[test]
fn issue21_a_client_without_a_certificate_is_refused() {
    refused(None, "peer sent no certificates", "handshake");
}

#[test]
fn issue21_a_client_of_a_foreign_ca_is_refused() {
    refused(Some("mallory"), "UnknownIssuer", "handshake");
}

#[test]
fn issue21_a_revoked_client_is_refused() {
    refused(Some("bob"), "the client certificate is revoked", "revoked");
}

/// `openssl s_client` with one protocol version: (success, output).
pub(crate) fn s_client(port: u16, pki: &Pki, version: &str) -> (bool, String) {
    need("openssl");
    let mut args = vec![
        "s_client".to_owned(),
        "-connect".into(),
        format!("127.0.0.1:{port}"),
        "-servername".into(),
        "localhost".into(),
        "-CAfile".into(),
        pki.arg("ca.pem"),
        "-cert".into(),
        pki.arg("alice.pem"),
        "-key".into(),
        pki.arg("alice.key"),
        "-verify_return_error".into(),
        version.into(),
    ];
    if version == "-tls1_1" {
        // So that it is serialhub that refuses, not OpenSSL's own policy.
        args.extend(["-cipher".into(), "DEFAULT@SECLEVEL=0".into()]);
    }
    let c = Client::spawn("openssl", &args);
    let (ok, out, err) = c.finish(Duration::from_secs(15));
    (ok, out + &err)
}

#[test]
fn issue21_tls_1_2_and_1_3_only() {
    let pki = pki();
    let server = echo_server(&pki, &[]);
    let port = server.addr().port();
    let (ok, out) = s_client(port, &pki, "-tls1_1");
    assert!(!ok, "TLS 1.1 was accepted:\n{out}");
    assert!(
        out.contains("alert"),
        "TLS 1.1 failed, not by serialhub's alert:\n{out}"
    );
    for (version, shown) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, out) = s_client(port, &pki, version);
        assert!(ok && out.contains(shown), "{version} failed:\n{out}");
    }
}

#[test]
fn issue21_ncat_ssl_echoes() {
    let pki = pki();
    let server = echo_server(&pki, &[]);
    let port = server.addr().port().to_string();
    let mut c = Client::spawn(
        "ncat",
        &[
            "--ssl".into(),
            "--ssl-verify".into(),
            "--ssl-trustfile".into(),
            pki.arg("ca.pem"),
            "--ssl-cert".into(),
            pki.arg("alice.pem"),
            "--ssl-key".into(),
            pki.arg("alice.key"),
            "localhost".into(),
            port,
        ],
    );
    c.send(b"ncat says hi\n");
    let echoed = c.wait_for(b"ncat says hi\n", Duration::from_secs(10));
    let (_, out, err) = c.finish(Duration::from_secs(10));
    assert!(echoed, "no echo: {out} {err}\n{}", server.log());
}

#[test]
fn issue21_tls_settings_are_checked_before_serving() {
    let pki = pki();
    let exit = |args: &[&str]| {
        let (status, err, _) = run_to_exit(args, Duration::from_secs(10));
        (status.code(), err)
    };
    // A tls endpoint needs a certificate.
    let (code, err) = exit(&["serve", "-d", "sim:echo", "-l", "tcp:127.0.0.1:0,tls"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tcp:127.0.0.1:0,tls needs a certificate") && err.contains("--tls-cert"),
        "{err}"
    );
    // tls is for network endpoints.
    let (code, err) = exit(&["serve", "-d", "sim:echo", "-l", "unix:/tmp/x.sock,tls"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("only tcp, rfc2217 and modbus-tcp"), "{err}");
    // A key that is not the certificate's, named.
    let (cert, alice_key) = (pki.arg("server.pem"), pki.arg("alice.key"));
    let (code, err) = exit(&[
        "serve",
        "-d",
        "sim:echo",
        "-l",
        "tcp:127.0.0.1:0,tls",
        "--tls-cert",
        &cert,
        "--tls-key",
        &alice_key,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("does not match") && err.contains(&alice_key),
        "{err}"
    );
    // A file that is not PEM, named.
    let (code, err) = exit(&[
        "serve",
        "-d",
        "sim:echo",
        "-l",
        "tcp:127.0.0.1:0,tls",
        "--tls-cert",
        &alice_key,
        "--tls-key",
        &alice_key,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&alice_key) && err.contains("no certificate"),
        "{err}"
    );
    // check-config reads the [tls] files too.
    let missing = pki.arg("missing.pem");
    let file = pki.path("serialhub.toml");
    std::fs::write(
        &file,
        format!(
            "[tls]\ncert = {missing:?}\nkey = {:?}\n\n[[port]]\nname = \"a\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0,tls\"]\n",
            pki.arg("server.key")
        ),
    )
    .unwrap();
    let (code, err) = exit(&["check-config", &file.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&missing) && err.contains("cannot read"),
        "{err}"
    );
    std::fs::write(
        &file,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient-ca = {:?}\ncrl = [{:?}]\n\n[metrics]\nlisten = \"127.0.0.1:0\"\ntls = true\n\n[[port]]\nname = \"a\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0,tls\"]\n",
            pki.arg("server.pem"),
            pki.arg("server.key"),
            pki.arg("ca.pem"),
            pki.arg("ca.crl"),
        ),
    )
    .unwrap();
    let (status, err, _) = run_to_exit(
        &["check-config", &file.display().to_string()],
        Duration::from_secs(10),
    );
    assert!(status.success(), "{err}");
}

/// A TLS client that stops reading while the device floods it is a slow
/// reader like any other: disconnected, with what serialhub held for it
/// bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue21_a_stalled_tls_reader_meets_the_slow_reader_policy() {
    let pki = pki();
    let source = sim(SimMode::Source, 115_200);
    let server = serve_tls(
        &pki,
        &[
            "serve",
            "-d",
            source.path().to_str().unwrap(),
            "-b",
            "115200",
            "-l",
            "tcp:127.0.0.1:0,tls",
            "--client-queue",
            "16KiB",
        ],
    );
    // socat writes what it receives to a pipe nobody reads: once the pipe
    // is full, socat stops reading its TLS connection (whose receive
    // buffer is small, as a stalled reader's in the plain-text test).
    let stalled = Client::start(
        "socat",
        &[
            "-".into(),
            format!(
                "OPENSSL:localhost:{},cafile={},cert={},key={},rcvbuf=4096",
                server.addr().port(),
                pki.arg("ca.pem"),
                pki.arg("alice.pem"),
                pki.arg("alice.key")
            ),
        ],
        false,
    );
    server.wait_status("the stalled reader is disconnected", |p| {
        p["kicked"].as_u64() >= Some(1)
    });
    let ports = crate::common::status(&server.control);
    assert!(
        ports[0]["clients"].as_array().unwrap().is_empty(),
        "{ports:#}"
    );
    assert!(
        server.log().contains("disconnecting client"),
        "{}",
        server.log()
    );
    drop(stalled);
}

#[test]
fn issue21_a_peer_outside_from_is_closed_before_its_handshake() {
    let pki = pki();
    let server = echo_server_on("tcp:127.0.0.1:0,tls,from=10.0.0.0/8", &pki, &[]);
    let mut c = socat(server.addr().port(), &pki, Some("alice"));
    c.send(b"secret\n");
    let (_, out, _) = c.finish(Duration::from_secs(10));
    assert!(!out.contains("secret"), "{out}");
    server.wait_status("the refusal is counted", |p| p["refusals"]["network"] == 1);
    let ports = crate::common::status(&server.control);
    assert_eq!(ports[0]["refusals"]["handshake"], 0, "{ports:#}");
    assert!(!server.log().contains("TLS handshake"), "{}", server.log());
}

#[test]
fn issue21_handshakes_that_never_start_time_out_and_block_nobody() {
    let pki = pki();
    let server = echo_server_on("tcp:127.0.0.1:0,tls,handshake-timeout=1s", &pki, &[]);
    // Idle peers that never send a ClientHello.
    let mut idle: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(server.addr()).unwrap())
        .collect();
    let started = Instant::now();
    let mut alice = socat(server.addr().port(), &pki, Some("alice"));
    alice.send(b"still served\n");
    assert!(
        alice.wait_for(b"still served\n", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    // Each idle peer is closed when its handshake time is up.
    for peer in &mut idle {
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 16];
        let n = peer.read(&mut buf);
        assert!(matches!(n, Ok(0)) || n.is_err(), "{n:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    // Logged just after the connection closes.
    assert!(
        server.wait_log("no handshake within 1s", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    // Counted, each one, though logged once for their one address.
    server.wait_status("8 handshakes refused", |p| p["refusals"]["handshake"] == 8);
    // Alice, admitted, is not subject to it.
    alice.send(b"after\n");
    assert!(alice.wait_for(b"after\n", Duration::from_secs(10)));
    alice.finish(Duration::from_secs(10));
}

/// `curl` with alice's certificate: (success, body and stderr).
fn curl(url: &str, pki: &Pki, cert: bool) -> (bool, String) {
    need("curl");
    let mut args = vec![
        "--silent".to_owned(),
        "--show-error".into(),
        "--fail".into(),
        "--max-time".into(),
        "10".into(),
        "--cacert".into(),
        pki.arg("ca.pem"),
    ];
    if cert {
        args.extend([
            "--cert".into(),
            pki.arg("alice.pem"),
            "--key".into(),
            pki.arg("alice.key"),
        ]);
    }
    args.push(url.into());
    let out = Command::new("curl").args(&args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn issue21_metrics_over_https_with_mutual_tls() {
    let pki = pki();
    let server = echo_server(&pki, &["--metrics", "127.0.0.1:0", "--metrics-tls"]);
    let port = server.metrics_addr().rsplit_once(':').unwrap().1.to_owned();
    assert!(
        server.log().contains(&format!(
            "metrics served at https://127.0.0.1:{port}/metrics"
        )),
        "{}",
        server.log()
    );
    let (ok, body) = curl(&format!("https://localhost:{port}/metrics"), &pki, true);
    assert!(ok, "{body}");
    // status says where, and that it is HTTPS.
    let (ok, table, _) = crate::common::control(&server.control, &["status"]);
    assert!(
        ok && table.contains(&format!("metrics: https://127.0.0.1:{port}/metrics")),
        "{table}"
    );
    let ports = crate::common::status(&server.control);
    assert_eq!(ports[0]["metrics_https"], true, "{ports:#}");
    let families = crate::metrics::parse(&body);
    assert!(families.get("serialhub_refused").is_some(), "{families:#}");
    // Plain HTTP is not served there, nor HTTPS without a certificate.
    let (ok, out) = curl(&format!("http://localhost:{port}/metrics"), &pki, true);
    assert!(!ok, "plain HTTP was answered: {out}");
    let (ok, out) = curl(&format!("https://localhost:{port}/metrics"), &pki, false);
    assert!(
        !ok,
        "HTTPS without a client certificate was answered: {out}"
    );
    // The server keeps serving after those.
    let (ok, body) = curl(&format!("https://localhost:{port}/metrics"), &pki, true);
    assert!(ok && body.contains("# EOF"), "{body}");
}

#[test]
fn issue21_metrics_tls_needs_metrics() {
    let pki = pki();
    let mut args: Vec<String> = ["serve", "-d", "sim:echo", "--metrics-tls"]
        .map(String::from)
        .to_vec();
    args.extend(pki.serve_flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, err, _) = run_to_exit(&args, Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("--metrics-tls applies only to --metrics"),
        "{err}"
    );
}

/// gensiot (ser2net's own client, Debian gensio-bin) speaks RFC 2217 over
/// TLS to an `rfc2217:...,tls` endpoint, and its data echoes.
#[test]
fn issue21_gensiot_speaks_rfc2217_over_tls() {
    let pki = pki();
    let server = echo_server_on("rfc2217:127.0.0.1:0,tls,control=any", &pki, &[]);
    let ports = crate::common::status(&server.control);
    let addr = crate::common::endpoints(&ports, "rfc2217:")[0];
    let gensio = format!(
        "telnet(rfc2217),ssl(CA={},cert={},key={}),tcp,localhost,{}",
        pki.arg("ca.pem"),
        pki.arg("alice.pem"),
        pki.arg("alice.key"),
        addr.port()
    );
    let mut c = Client::spawn("gensiot", &["-i".into(), "stdio(self)".into(), gensio]);
    c.send(b"through telnet and tls\n");
    let echoed = c.wait_for(b"through telnet and tls\n", Duration::from_secs(10));
    let ports = crate::common::status(&server.control);
    let (_, out, err) = c.finish(Duration::from_secs(10));
    assert!(echoed, "no echo: {out} {err}\n{}", server.log());
    let clients = ports[0]["clients"].as_array().unwrap();
    assert_eq!(clients[0]["identity"], "cn:alice", "{ports:#}");
}

/// pymodbus's TLS client (Modbus/TCP Security: MBAP framing inside TLS;
/// pymodbus 3.x's TLS framer is MBAP), with alice's certificate, reads
/// holding registers from sim:modbus.
const PYMODBUS_TLS: &str = r#"
import sys, inspect, ssl
from pymodbus.client import ModbusTlsClient
host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
ctx.load_cert_chain(cert, key)
# pymodbus's sync client wraps its socket without a server name, so the
# name cannot be checked; the chain still is (CERT_REQUIRED).
ctx.check_hostname = False
c = ModbusTlsClient(host, port=port, sslctx=ctx, timeout=3, retries=0)
assert c.connect(), "cannot connect"
kw = "device_id" if "device_id" in inspect.signature(c.read_holding_registers).parameters else "slave"
for unit in (1, 2, 3):
    r = c.read_holding_registers(10, count=3, **{kw: unit})
    assert not r.isError(), r
    assert r.registers == [unit * 1000 + 10 + j for j in range(3)], r.registers
print("read ok")
c.close()
"#;

/// Runs pymodbus's TLS client `script` as alice against `sim:modbus`
/// through `modbus-tcp:127.0.0.1:0,tls` (with `extra` serve flags), and
/// checks it printed `expect`.
fn pymodbus_tls(pki: &Pki, extra: &[&str], script: &str, expect: &str) {
    let mut args = vec![
        "serve",
        "-d",
        "sim:modbus",
        "-b",
        "19200",
        "--writers",
        "transaction",
        "-l",
        "modbus-tcp:127.0.0.1:0,tls",
    ];
    args.extend(extra);
    let server = serve_tls(pki, &args);
    let port = server.modbus[0].port().to_string();
    let (ca, cert, key) = (
        pki.arg("ca.pem"),
        pki.arg("alice.pem"),
        pki.arg("alice.key"),
    );
    let child = crate::common::python(script, &["localhost", &port, &ca, &cert, &key]);
    let (ok, out) = crate::common::finish(child, Duration::from_secs(30));
    assert!(ok && out.contains(expect), "{out}\n{}", server.log());
}

#[test]
fn issue21_pymodbus_reads_registers_through_modbus_tcp_tls() {
    let pki = pki();
    pymodbus_tls(&pki, &[], PYMODBUS_TLS, "read ok");
}

/// With `--allow`, a verified certificate that matches none is refused
/// before it costs a place or reaches the device; an `ro` identity's
/// writes are discarded and counted, as on an `access=ro` endpoint.
#[test]
fn issue21_roles_apply_to_tls_identities() {
    let pki = pki();
    let server = serve_tls(
        &pki,
        &[
            "serve",
            "-d",
            "sim:sink",
            "-l",
            "tcp:127.0.0.1:0,tls",
            "--allow",
            "ro:cn:carol",
        ],
    );
    let port = server.addr().port();

    // alice is verified, but not allowed.
    let mut alice = socat(port, &pki, Some("alice"));
    alice.send(b"from alice\n");
    alice.finish(Duration::from_secs(10));
    server.wait_status("alice is refused as an unknown identity", |p| {
        p["refusals"]["identity"] == 1
    });
    assert!(
        server.wait_log("cn:alice", Duration::from_secs(10)),
        "{}",
        server.log()
    );

    // carol may read only: her writes are counted, never written.
    let mut carol = socat(port, &pki, Some("carol"));
    carol.send(b"from carol\n");
    server.wait_status("carol's write is discarded", |p| {
        p["clients"][0]["discarded"].as_u64() >= Some(11)
    });
    let ports = crate::common::status(&server.control);
    assert_eq!(ports[0]["clients"][0]["identity"], "cn:carol", "{ports:#}");
    assert_eq!(ports[0]["bytes_to_device"], 0, "{ports:#}");
    carol.finish(Duration::from_secs(10));
}

/// pymodbus's TLS client as an `ro` identity: reads pass, writes are
/// answered with exception 01 (illegal function) and never reach the bus.
const PYMODBUS_TLS_RO: &str = r#"
import sys, inspect, ssl
from pymodbus.client import ModbusTlsClient
host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.check_hostname = False
c = ModbusTlsClient(host, port=port, sslctx=ctx, timeout=3, retries=0)
assert c.connect(), "cannot connect"
kw = "device_id" if "device_id" in inspect.signature(c.read_holding_registers).parameters else "slave"
r = c.read_holding_registers(10, count=1, **{kw: 1})
assert not r.isError() and r.registers == [1010], r
r = c.write_register(10, 4242, **{kw: 1})
assert r.isError() and r.exception_code == 1, f"write_register: {r}"
r = c.read_holding_registers(10, count=1, **{kw: 1})
assert r.registers == [1010], f"after the refused write: {r.registers}"
print("ro ok")
c.close()
"#;

#[test]
fn issue21_an_ro_identity_on_modbus_tcp_tls_gets_exception_01_for_writes() {
    let pki = pki();
    pymodbus_tls(&pki, &["--allow", "ro:cn:alice"], PYMODBUS_TLS_RO, "ro ok");
}
