//! Issue 23, attacked as outside testers will: odd requests never break
//! the listener, a page that rebinds its name to 127.0.0.1 cannot drive a
//! console that trusts loopback, and floods of logins or of log downloads
//! that are never read leave `/metrics`, `/api/status` and the control
//! socket answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Server, command, status, status_json};

/// Longest a well-behaved client may wait, under attack or not.
const BOUND: Duration = Duration::from_secs(10);

/// Sends `raw` over a fresh connection; the status code of the answer, if
/// one came (`None`: closed without an answer).
fn raw(addr: &str, raw: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before it has read all of it.
    let _ = s.write_all(raw);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let head = String::from_utf8_lossy(&got);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// `GET path` with `headers` (Host is the address unless given).
fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let mut head = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    raw(addr, head.as_bytes())
}

/// The HTTP listener's address, from `status --json` (`ports[0].http`).
fn http_addr(server: &Server) -> String {
    let ports = status(&server.control);
    ports[0]["http"]
        .as_str()
        .unwrap_or_else(|| panic!("no http address in the status: {ports}"))
        .to_owned()
}

/// The management answers, each within [`BOUND`]: `/metrics`,
/// `/api/status` (with `cookie` if given) and the control socket.
fn management_answers(server: &Server, addr: &str, cookie: Option<&str>) {
    let started = Instant::now();
    assert_eq!(get(addr, "/metrics", &[]), Some(200), "/metrics");
    let cookie = cookie.map(|c| ("Cookie", c));
    assert_eq!(
        get(addr, "/api/status", cookie.as_slice()),
        Some(200),
        "/api/status"
    );
    status_json(&server.control).expect("the control socket answers");
    assert!(
        started.elapsed() < 3 * BOUND,
        "management took {:?}",
        started.elapsed()
    );
}

#[test]
fn issue23_attack_odd_requests_never_break_the_listener() {
    let server = Server::serve("sim:echo", 115_200, &["--http", "127.0.0.1:0"]);
    let addr = http_addr(&server);
    let port = status(&server.control)[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let huge = "x".repeat(64 * 1024);
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let malformed: Vec<Vec<u8>> = vec![
        b"\r\n\r\n".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
        b"GET /\x00\xff HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\nCookie: \xff\r\n\r\n".to_vec(),
        format!("GET /{huge} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes(),
        format!("GET / HTTP/1.1\r\nHost: a\r\nX: {huge}\r\n\r\n").into_bytes(),
        format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").into_bytes(),
        // A WebSocket upgrade with a bad key and version.
        b"GET /ws/status HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 99\r\n\r\n"
            .to_vec(),
    ];
    for m in &malformed {
        if let Some(code) = raw(&addr, m) {
            assert!(
                code < 500,
                "{code} for {:?}",
                String::from_utf8_lossy(&m[..m.len().min(80)])
            );
        }
    }
    // Odd paths, queries, cookies: answered, never 5xx, nothing outside
    // web/ served.
    let log = format!("/api/ports/{port}/log");
    let odd: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/assets/../Cargo.toml".into(), vec![]),
        ("/assets/%2e%2e/Cargo.toml".into(), vec![]),
        ("/assets/%2e%2e%2fCargo.toml".into(), vec![]),
        ("/assets/..%5c..%5cCargo.toml".into(), vec![]),
        ("/assets/%00".into(), vec![]),
        ("/assets/index.html%00.css".into(), vec![]),
        ("/assets//etc/passwd".into(), vec![]),
        ("/ports/%00".into(), vec![]),
        ("/ports/%2e%2e%2f%2e%2e".into(), vec![]),
        ("/ports/%3Cscript%3E".into(), vec![]),
        ("/ports/%ff%fe".into(), vec![]),
        ("/api/ports/%00/log".into(), vec![]),
        ("/api/ports/a%2fb/log".into(), vec![]),
        ("/api/ports/x/clients/-1/kick".into(), vec![]),
        (format!("{log}?since=-1"), vec![]),
        (format!("{log}?since=99999999999999999999"), vec![]),
        (format!("{log}?since=1s&until=1h"), vec![]),
        (format!("{log}?since=%ff&until=%00"), vec![]),
        (format!("{log}?since&since=1&since=2"), vec![]),
        (format!("/ws/ports/{port}?since=-1"), vec![]),
        (
            format!("/ws/ports/{port}?since=99999999999999999999"),
            vec![],
        ),
        ("/login?next=%00%ff".into(), vec![]),
        (
            "/api/status".into(),
            vec![("Cookie", "serialhub_session=;;;=;\u{1};a=b")],
        ),
        (
            "/api/status".into(),
            vec![(
                "Cookie",
                "serialhub_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )],
        ),
        (
            "/api/status".into(),
            vec![("Accept-Encoding", "gzip;q=zz, ,;;")],
        ),
        (
            "/assets/app.css".into(),
            vec![("If-None-Match", "\"\", *, W/\"x\"")],
        ),
    ];
    for (path, headers) in &odd {
        let code = get(&addr, path, headers);
        let code = code.unwrap_or_else(|| panic!("no answer for {path}"));
        assert!(code < 500, "{code} for {path}");
    }
    for path in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/%2e%2e%2fCargo.toml",
        "/assets/..%5c..%5cCargo.toml",
    ] {
        assert_ne!(get(&addr, path, &[]), Some(200), "{path}");
    }
    // A bad time is the client's error, said as such.
    assert_eq!(get(&addr, &format!("{log}?since=-1"), &[]), Some(400));
    management_answers(&server, &addr, None);
}

#[test]
fn issue23_attack_a_rebound_name_cannot_use_a_console_open_on_loopback() {
    let server = Server::serve("sim:echo", 115_200, &["--http", "127.0.0.1:0"]);
    let addr = http_addr(&server);
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let evil = format!("evil.example:{port}");
    let origin = format!("http://{evil}");
    // A page of evil.example whose name now points at 127.0.0.1: its
    // requests carry its own Host (and Origin, same-origin with itself).
    for path in ["/", "/api/status", "/api/whoami", "/ws/status"] {
        let headers = [
            ("Host", evil.as_str()),
            ("Origin", origin.as_str()),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let n = if path.starts_with("/ws") { 6 } else { 2 };
        assert_eq!(get(&addr, path, &headers[..n]), Some(403), "{path}");
    }
    let kick = format!(
        "POST /api/ports/x/clients/1/kick HTTP/1.1\r\nHost: {evil}\r\nOrigin: {origin}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(&addr, kick.as_bytes()), Some(403));
    // The machine's own names are served; /metrics is not the console's.
    for host in [
        addr.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(get(&addr, "/api/status", &[("Host", &host)]), Some(200));
    }
    assert_eq!(get(&addr, "/metrics", &[("Host", &evil)]), Some(200));
}

/// `printf 'PASSWORD\n' | serialhub passwd`: its hash.
fn passwd(password: &str) -> String {
    let mut child = command()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A login by form; the answer's code and its `Set-Cookie` value.
fn login(addr: &str, user: &str, password: &str) -> (Option<u16>, Option<String>) {
    let (code, cookie, _) = login_with(addr, &format!("username={user}&password={password}"), &[]);
    (code, cookie)
}

/// `POST /login` with the form `body` and `headers`: the code, the
/// `Set-Cookie` value (`NAME=VALUE`) and the `Location`.
fn login_with(
    addr: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (Option<u16>, Option<String>, Option<String>) {
    let mut req = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(req.as_bytes());
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    let code = got.get(9..12).and_then(|c| c.parse().ok());
    let header = |name: &str| {
        got.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let cookie = header("set-cookie").and_then(|v| Some(v.split(';').next()?.to_owned()));
    (code, cookie, header("location"))
}

/// A daemon with a `sim:echo` port and the user alice (rw, "wonderland"),
/// whose hash is returned, started with `RUST_LOG=rust_log`.
fn with_alice(dir: &std::path::Path, rust_log: &str) -> (Server, String) {
    let file = dir.join("hub.toml");
    let hash = passwd("wonderland");
    std::fs::write(
        &file,
        format!(
            "[control]\nsocket = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [[http.user]]\nname = \"alice\"\npassword-hash = \"{hash}\"\nrole = \"rw\"\n\n\
             [[port]]\nname = \"echo\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n",
            dir.join("c.sock").display(),
        ),
    )
    .unwrap();
    let server = Server::start_with(&["serve", "--config", file.to_str().unwrap()], |c| {
        c.env("RUST_LOG", rust_log);
    });
    (server, hash)
}

#[test]
fn issue23_attack_a_login_flood_leaves_management_answering() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = with_alice(dir.path(), "info");
    let addr = http_addr(&server);
    let (code, cookie) = login(&addr, "alice", "wonderland");
    assert_eq!(code, Some(303));
    let cookie = cookie.expect("a session cookie");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..32)
        .map(|i| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let user = if i % 2 == 0 { "alice" } else { "mallory" };
                    codes.push(login(&addr, user, "guess").0);
                }
                codes
            })
        })
        .collect();
    for _ in 0..5 {
        management_answers(&server, &addr, Some(&cookie));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let codes: Vec<Option<u16>> = flood.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(!codes.is_empty());
    // Every try was answered: refused, or told to come back later.
    for c in &codes {
        assert!(matches!(c, Some(401 | 429)), "{c:?} in {codes:?}");
    }
    assert!(codes.contains(&Some(429)), "no try was slowed: {codes:?}");
}

#[test]
fn issue23_attack_log_downloads_never_read_are_bounded_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let server = Server::serve(
        "sim:source",
        4_000_000,
        &["--http", "127.0.0.1:0", "--log", logs.to_str().unwrap()],
    );
    let addr = http_addr(&server);
    let name = status(&server.control)[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    // A log far larger than every buffer between the file and a peer that
    // does not read (socket buffers grow to a few MiB).
    let size = || -> u64 {
        std::fs::read_dir(&logs)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while size() < 16 << 20 {
        assert!(Instant::now() < deadline, "the log grows too slowly");
        std::thread::sleep(Duration::from_millis(200));
    }
    let path = format!("/api/ports/{name}/log?download=1");
    // Downloads that read their answer's head and then nothing.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let to: std::net::SocketAddr = addr.parse().unwrap();
        sock.connect(&to.into()).unwrap();
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(BOUND)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        match &head[9..12] {
            b"200" => held.push(s),
            b"503" => refused += 1,
            other => panic!("{}", String::from_utf8_lossy(other)),
        }
    }
    assert!(
        !held.is_empty() && refused > 0,
        "{} held, {refused} refused",
        held.len()
    );
    management_answers(&server, &addr, None);
    // Stalled, they are cut, and downloads are served again.
    let empty = format!("/api/ports/{name}/log?since=1s&until=1s");
    let deadline = Instant::now() + Duration::from_secs(90);
    while get(&addr, &empty, &[]) != Some(200) {
        assert!(Instant::now() < deadline, "stalled downloads are never cut");
        std::thread::sleep(Duration::from_millis(500));
    }
    management_answers(&server, &addr, None);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_attack_a_websocket_flood_leaves_management_answering() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let server = Server::serve("sim:echo", 115_200, &["--http", "127.0.0.1:0"]);
    let addr = http_addr(&server);
    let name = status(&server.control)[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    // More WebSockets than the listener has connections, each kept open
    // (its pings answered by the client library as it reads).
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..300 {
        let path = if i % 4 == 0 {
            format!("/ws/ports/{name}")
        } else {
            "/ws/status".to_owned()
        };
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut()
            .insert("Origin", format!("http://{addr}").parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        match tokio::time::timeout(BOUND, tokio_tungstenite::client_async(req, tcp)).await {
            Ok(Ok((s, _))) => open.push(s),
            Ok(Err(WsError::Http(r))) => {
                assert_eq!(r.status().as_u16(), 503, "{path}");
                refused += 1;
            }
            Ok(Err(e)) => panic!("{path}: {e}"),
            Err(_) => panic!("{path}: no answer to the upgrade within {BOUND:?}"),
        }
    }
    assert!(refused > 0, "all 300 WebSockets taken");
    let server = tokio::task::spawn_blocking(move || {
        management_answers(&server, &addr, None);
        server
    })
    .await
    .unwrap();
    drop(open);
    drop(server);
}

#[test]
fn issue23_attack_no_password_hash_or_session_in_logs_status_or_print_config() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hash) = with_alice(dir.path(), "trace");
    let addr = http_addr(&server);
    assert_eq!(login(&addr, "alice", "nope").0, Some(401));
    let (code, cookie) = login(&addr, "alice", "wonderland");
    assert_eq!(code, Some(303));
    let cookie = cookie.expect("a session cookie");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    assert_eq!(get(&addr, "/api/status", &[("Cookie", &cookie)]), Some(200));
    let salt_and_hash = hash.rsplit('$').next().unwrap().to_owned();
    // Something logged at debug last, so that the log is known to be in.
    raw(&addr, b"GARBAGE\r\n\r\n");
    assert!(server.wait_log("bad connection", BOUND), "{}", server.log());
    let file = dir.path().join("hub.toml");
    let printed = command()
        .args(["print-config", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let checked = command()
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let texts = [
        ("the trace log", server.log()),
        ("status", status(&server.control).to_string()),
        (
            "print-config",
            String::from_utf8_lossy(&printed.stdout).into_owned(),
        ),
        (
            "print-config errors",
            String::from_utf8_lossy(&printed.stderr).into_owned(),
        ),
        (
            "check-config",
            String::from_utf8_lossy(&checked.stdout).into_owned(),
        ),
    ];
    for (what, text) in &texts {
        for secret in [salt_and_hash.as_str(), "wonderland", token.as_str()] {
            assert!(!text.contains(secret), "{what} shows {secret:?}");
        }
    }
}

#[test]
fn issue23_attack_login_redirects_stay_local_and_sessions_are_never_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = with_alice(dir.path(), "info");
    let addr = http_addr(&server);
    let form = |next: &str| format!("username=alice&password=wonderland&next={next}");
    for (next, to) in [
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("https%3Aevil.example", "/"),
        ("javascript%3Aalert(1)", "/"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2Fports%2Fecho%0D%0ASet-Cookie%3A%20x%3Dy", "/"),
        ("%2Fports%2Fcaf%C3%A9", "/ports/caf%C3%A9"),
        ("%2Fports%2Fecho", "/ports/echo"),
    ] {
        let (code, cookie, location) = login_with(&addr, &form(next), &[]);
        assert_eq!(code, Some(303), "{next}");
        assert!(cookie.is_some(), "{next}");
        assert_eq!(location.as_deref(), Some(to), "{next}");
    }
    // A session planted in the browser, or left by another user, ends at
    // a login, which always makes a new one.
    let (_, first, _) = login_with(&addr, &form("%2F"), &[]);
    let first = first.unwrap();
    let (_, second, _) = login_with(&addr, &form("%2F"), &[("Cookie", &first)]);
    let second = second.unwrap();
    assert_ne!(first, second);
    assert_eq!(get(&addr, "/api/status", &[("Cookie", &first)]), Some(401));
    assert_eq!(get(&addr, "/api/status", &[("Cookie", &second)]), Some(200));
    let (_, planted, _) = login_with(
        &addr,
        &form("%2F"),
        &[("Cookie", "serialhub_session=chosen-by-the-attacker")],
    );
    assert!(!planted.unwrap().contains("chosen-by-the-attacker"));
    // A cross-site form without Origin, as a browser marks it, is refused.
    let (code, cookie, _) = login_with(&addr, &form("%2F"), &[("Sec-Fetch-Site", "cross-site")]);
    assert_eq!((code, cookie), (Some(403), None));
}

#[test]
fn issue23_attack_a_login_form_trickled_or_huge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = with_alice(dir.path(), "info");
    let addr = http_addr(&server);
    // The head at once, the body one byte and then nothing: answered 408,
    // not held to the connection's deadline.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nu"
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        got.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let huge = format!("username=alice&password={}", "x".repeat(64 << 10));
    let (code, cookie, _) = login_with(&addr, &huge, &[]);
    assert_eq!((code, cookie), (Some(413), None));
    let (_, cookie) = login(&addr, "alice", "wonderland");
    management_answers(&server, &addr, cookie.as_deref());
}

#[test]
fn issue23_attack_an_unknown_user_takes_as_long_as_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = with_alice(dir.path(), "info");
    let addr = http_addr(&server);
    let timed = |user: &str| {
        let t = Instant::now();
        let (code, _) = login(&addr, user, "guess");
        assert_eq!(code, Some(401), "{user}");
        let took = t.elapsed();
        // A good login forgives the failure: no penalty in the next try.
        assert_eq!(login(&addr, "alice", "wonderland").0, Some(303));
        took
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        wrong.push(timed("alice"));
        unknown.push(timed("mallory"));
    }
    let (wrong, unknown) = (median(wrong), median(unknown));
    // Not checking the password would answer in a small fraction.
    assert!(
        unknown * 2 >= wrong && wrong * 2 >= unknown,
        "unknown user {unknown:?}, wrong password {wrong:?}"
    );
}
