//! Issue 23: the one HTTP listener (`--http`, `[http]`; `--metrics` its old
//! name): the metrics, the console's pages and API, logins, the Origin
//! check, the traffic log streamed, kick, and the listener's limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::common::{Server, command, run_to_exit, status};

/// Longest a well-behaved client may wait, under attack or not.
const BOUND: Duration = Duration::from_secs(5);

/// An HTTP answer: status code, headers, body (de-chunked).
#[derive(Debug)]
struct Reply {
    code: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// `METHOD path` with `headers` and `body` over a fresh connection.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let code = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    let body = if headers
        .to_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        code,
        headers: headers.to_owned(),
        body,
    }
}

fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, "")
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("a chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// The HTTP listener's address, from `status --json` (`ports[0].http`).
fn http_addr(server: &Server) -> String {
    let ports = status(&server.control);
    ports[0]["http"]
        .as_str()
        .unwrap_or_else(|| panic!("no http address in the status: {ports}"))
        .to_owned()
}

/// `printf 'PASSWORD\n' | serialhub passwd`: its hash.
fn passwd(password: &str) -> String {
    let mut child = command()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    assert_eq!(hash.lines().count(), 1, "{hash}");
    hash.trim().to_owned()
}

/// A daemon with a `sim:echo` port `echo` (tcp endpoint), the HTTP
/// listener on loopback, users alice (rw, "wonderland") and bob (ro,
/// "builder"), and `extra` lines in its file.
fn with_users(dir: &Path, extra: &str) -> Server {
    let file = dir.join("hub.toml");
    let (alice, bob) = (passwd("wonderland"), passwd("builder"));
    std::fs::write(
        &file,
        format!(
            "[control]\nsocket = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n\
             [[http.user]]\nname = \"alice\"\npassword-hash = \"{alice}\"\nrole = \"rw\"\n\n\
             [[http.user]]\nname = \"bob\"\npassword-hash = \"{bob}\"\nrole = \"ro\"\n\n\
             [[port]]\nname = \"echo\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n",
            dir.join("c.sock").display()
        ),
    )
    .unwrap();
    Server::start(&["serve", "--config", file.to_str().unwrap()])
}

/// Logs in; the session cookie (`serialhub_session=TOKEN`).
fn login(addr: &str, user: &str, password: &str) -> String {
    let r = request(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("username={user}&password={password}&next=%2Fports%2Fecho"),
    );
    assert_eq!(r.code, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/ports/echo"), "{r:?}");
    let cookie = r.header("set-cookie").expect("a cookie").to_owned();
    let parts: Vec<&str> = cookie.split(';').map(str::trim).collect();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(parts.contains(&flag), "{cookie}");
    }
    assert!(!parts.contains(&"Secure"), "plain HTTP: {cookie}");
    let token = parts[0];
    assert!(
        token.starts_with("serialhub_session=") && token.len() > 40,
        "{cookie}"
    );
    token.to_owned()
}

/// A WebSocket handshake to `path` with `headers`: the socket, or the
/// HTTP status it was refused with.
async fn ws(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, u16> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName =
            k.parse().expect("a header name");
        req.headers_mut()
            .insert(name, v.parse().expect("a header value"));
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((s, _)) => Ok(s),
        Err(WsError::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

/// The next text frame of `s`, within [`BOUND`].
async fn next_text(
    s: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    within: Duration,
) -> String {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, s.next())
            .await
            .expect("a frame in time")
            .expect("the socket open")
            .expect("a frame");
        if let Message::Text(t) = m {
            return t.to_string();
        }
    }
}

#[test]
fn issue23_metrics_and_status_at_the_http_listener_and_by_its_old_name() {
    let server = Server::serve("sim:echo", 115_200, &["--http", "127.0.0.1:0"]);
    let addr = http_addr(&server);
    let ports = status(&server.control);
    assert_eq!(ports[0]["metrics"], ports[0]["http"], "{ports}");

    let m = get(&addr, "/metrics", &[]);
    assert_eq!(m.code, 200, "{m:?}");
    assert!(m.body.contains("serialhub_device_up"), "{m:?}");
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{m:?}"
    );

    // /api/status is `status --json`'s document (counters may move
    // between the two reads on a busy machine: a few tries).
    let mut same = false;
    for _ in 0..5 {
        let api = get(&addr, "/api/status", &[]);
        assert_eq!(api.code, 200, "{api:?}");
        if api.json() == status(&server.control) {
            same = true;
            break;
        }
    }
    assert!(same, "/api/status differs from status --json");

    let who = get(&addr, "/api/whoami", &[]).json();
    assert_eq!(
        who,
        serde_json::json!({"user": null, "role": "rw", "auth": "none"})
    );
    let page = get(&addr, "/", &[]);
    assert_eq!(page.code, 200, "{page:?}");
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some("default-src 'self'; frame-ancestors 'none'")
    );
    let port = status(&server.control)[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get(&addr, &format!("/ports/{port}"), &[]).code, 200);
    assert_eq!(get(&addr, "/ports/nosuchport", &[]).code, 404);
    let css = get(&addr, "/assets/login.html", &[]);
    assert_eq!(css.code, 200);
    let etag = css.header("etag").expect("an etag").to_owned();
    assert_eq!(css.header("cache-control"), Some("no-cache"));
    assert_eq!(
        get(&addr, "/assets/login.html", &[("If-None-Match", &etag)]).code,
        304
    );
    drop(server);

    // The old name serves the same.
    let old = Server::serve_with_metrics("sim:echo", 115_200, &[]);
    let addr = old.metrics_addr();
    assert_eq!(http_addr(&old), addr);
    assert_eq!(get(&addr, "/metrics", &[]).code, 200);
    assert_eq!(get(&addr, "/api/whoami", &[]).code, 200);

    // Two addresses for the one listener are refused.
    let (code, err, _) = run_to_exit(
        &[
            "--metrics",
            "127.0.0.1:0",
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
            "--http",
            "127.0.0.1:1",
        ],
        BOUND,
    );
    assert_eq!(code.code(), Some(2), "{err}");
    assert!(err.contains("name the same listener"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_logins_guard_pages_api_and_websockets() {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| with_users(dir.path(), ""));
    let addr = http_addr(&server);
    let origin = format!("http://{addr}");
    let call = |method: &'static str,
                path: &'static str,
                headers: Vec<(&'static str, String)>,
                body: &'static str| {
        let addr = addr.clone();
        tokio::task::block_in_place(move || {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(&addr, method, path, &h, body)
        })
    };

    // Without a session: pages go to the form, the API and WebSockets 401.
    let r = call("GET", "/", vec![], "");
    assert_eq!((r.code, r.header("location")), (303, Some("/login?next=/")));
    let r = call("GET", "/ports/echo", vec![], "");
    assert_eq!(r.header("location"), Some("/login?next=/ports/echo"));
    let r = call("GET", "/api/status", vec![], "");
    assert_eq!(r.code, 401);
    assert_eq!(r.json(), serde_json::json!({"error": "login required"}));
    assert_eq!(
        ws(&addr, "/ws/status", &[("Origin", &origin)]).await.err(),
        Some(401)
    );
    assert_eq!(
        ws(&addr, "/ws/ports/echo", &[("Origin", &origin)])
            .await
            .err(),
        Some(401)
    );
    // The metrics need none: scrapers have no cookies.
    assert_eq!(call("GET", "/metrics", vec![], "").code, 200);
    let form = call("GET", "/login?next=/ports/echo", vec![], "");
    assert_eq!(form.code, 200);
    assert!(
        form.body.contains("name=\"next\" value=\"/ports/echo\""),
        "{form:?}"
    );

    // A wrong password and an unknown user: the same 401 and message.
    let urlenc = (
        "Content-Type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    for body in [
        "username=alice&password=wrong",
        "username=mallory&password=wonderland",
    ] {
        let addr = addr.clone();
        let r = tokio::task::block_in_place(|| {
            request(
                &addr,
                "POST",
                "/login",
                &[(urlenc.0, urlenc.1.as_str())],
                body,
            )
        });
        assert_eq!(r.code, 401, "{body}: {r:?}");
        assert!(r.body.contains("wrong user name or password"), "{r:?}");
        assert!(r.header("set-cookie").is_none(), "{r:?}");
    }
    // A cross-site POST is refused before any password is looked at.
    let r = call(
        "POST",
        "/login",
        vec![urlenc.clone(), ("Origin", "http://evil.example".into())],
        "username=alice&password=wonderland",
    );
    assert_eq!(r.code, 403, "{r:?}");

    let alice = tokio::task::block_in_place(|| login(&addr, "alice", "wonderland"));
    let bob = tokio::task::block_in_place(|| login(&addr, "bob", "builder"));
    let who = call("GET", "/api/whoami", vec![("Cookie", alice.clone())], "").json();
    assert_eq!(
        who,
        serde_json::json!({"user": "alice", "role": "rw", "auth": "password"})
    );
    let who = call("GET", "/api/whoami", vec![("Cookie", bob.clone())], "").json();
    assert_eq!(who["role"], "ro");
    assert_eq!(
        call("GET", "/", vec![("Cookie", alice.clone())], "").code,
        200
    );
    assert_eq!(
        call("GET", "/api/status", vec![("Cookie", bob.clone())], "").code,
        200
    );

    // WebSockets: the same origin only, and a document at once.
    let cookie = alice.as_str();
    assert_eq!(
        ws(
            &addr,
            "/ws/status",
            &[("Cookie", cookie), ("Origin", "http://evil.example")]
        )
        .await
        .err(),
        Some(403)
    );
    assert_eq!(
        ws(&addr, "/ws/status", &[("Cookie", cookie)]).await.err(),
        Some(403)
    );
    assert_eq!(
        ws(
            &addr,
            "/ws/ports/echo",
            &[("Cookie", cookie), ("Origin", "http://evil.example")]
        )
        .await
        .err(),
        Some(403)
    );
    let mut feed = ws(
        &addr,
        "/ws/status",
        &[("Cookie", cookie), ("Origin", &origin)],
    )
    .await
    .expect("the status feed");
    let doc: Value = serde_json::from_str(&next_text(&mut feed, BOUND).await).unwrap();
    assert_eq!(doc[0]["name"], "echo", "{doc}");

    // Kick: a client of the port, kicked by rw, not by ro; the feed tells.
    let tcp = crate::common::endpoints(&status(&server.control), "tcp:")[0];
    let client = tokio::net::TcpStream::connect(tcp).await.unwrap();
    let id = loop {
        let doc: Value = serde_json::from_str(&next_text(&mut feed, BOUND).await).unwrap();
        if let Some(id) = doc[0]["clients"][0]["id"].as_u64() {
            break id;
        }
    };
    let path: &'static str =
        Box::leak(format!("/api/ports/echo/clients/{id}/kick").into_boxed_str());
    let r = call("POST", path, vec![("Cookie", bob.clone())], "");
    assert_eq!(r.code, 403, "{r:?}");
    let r = call("POST", path, vec![], "");
    assert_eq!(r.code, 401, "{r:?}");
    let r = call(
        "POST",
        path,
        vec![("Cookie", alice.clone()), ("Origin", origin.clone())],
        "",
    );
    assert_eq!(
        (r.code, r.json()),
        (200, serde_json::json!({"ok": true})),
        "{r:?}"
    );
    loop {
        let doc: Value = serde_json::from_str(&next_text(&mut feed, BOUND).await).unwrap();
        if doc[0]["clients"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
    }
    let r = call("POST", path, vec![("Cookie", alice.clone())], "");
    assert_eq!(r.code, 404, "{r:?}");
    drop(client);

    // Logged out, the cookie opens nothing.
    let r = call("POST", "/logout", vec![("Cookie", alice.clone())], "");
    assert_eq!(r.code, 303);
    assert_eq!(
        call("GET", "/api/whoami", vec![("Cookie", alice)], "").code,
        401
    );
}

#[test]
fn issue23_a_reload_ends_the_sessions_of_users_removed_or_demoted() {
    let dir = tempfile::tempdir().unwrap();
    let server = with_users(dir.path(), "");
    let addr = http_addr(&server);
    let alice = login(&addr, "alice", "wonderland");
    let bob = login(&addr, "bob", "builder");
    let whoami = |cookie: &str| get(&addr, "/api/whoami", &[("Cookie", cookie)]);
    assert_eq!(whoami(&alice).code, 200);

    // alice becomes ro; bob stays as he was.
    let file = dir.path().join("hub.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let demoted = text.replacen("role = \"rw\"", "role = \"ro\"", 1);
    assert_ne!(demoted, text);
    std::fs::write(&file, demoted).unwrap();
    let (ok, out, err) = crate::common::control(&server.control, &["reload"]);
    assert!(ok, "{out}{err}");
    assert_eq!(whoami(&alice).code, 401, "a demoted user's session ends");
    assert_eq!(whoami(&bob).json()["user"], "bob");
    let alice = login(&addr, "alice", "wonderland");
    assert_eq!(whoami(&alice).json()["role"], "ro");
}

#[test]
fn issue23_passwd_refuses_an_empty_password() {
    let mut child = command()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty password"), "{err}");
}

#[test]
fn issue23_log_streams_what_serialhub_log_prints() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().to_str().unwrap();
    let server = Server::serve(
        "sim:echo",
        115_200,
        &["--http", "127.0.0.1:0", "--log", logs],
    );
    let addr = http_addr(&server);
    let ports = status(&server.control);
    assert_eq!(ports[0]["traffic_log"].as_str(), Some(logs), "{ports}");
    let name = ports[0]["name"].as_str().unwrap().to_owned();
    let mut c = TcpStream::connect(server.addr()).unwrap();
    c.write_all(b"hello from the web test\n").unwrap();
    let cli = || {
        let out = command()
            .args(["log", logs])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    // The echo is in the log, both ways.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cli().matches("hello from").count() < 2 {
        assert!(Instant::now() < deadline, "not logged: {}", cli());
        std::thread::sleep(Duration::from_millis(50));
    }
    let path = format!("/api/ports/{name}/log");
    let api = get(&addr, &path, &[]);
    assert_eq!(api.code, 200, "{api:?}");
    assert!(
        api.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(api.body, cli());
    let since = get(
        &addr,
        &format!("{path}?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z"),
        &[],
    );
    assert_eq!((since.code, since.body.as_str()), (200, ""));
    assert_eq!(
        get(&addr, &format!("{path}?since=yesterday-ish"), &[]).code,
        400
    );
    let download = get(&addr, &format!("{path}?download=1"), &[]);
    assert_eq!(
        download.header("content-disposition"),
        Some(format!("attachment; filename=\"{name}.log\"").as_str())
    );
    drop(server);

    let plain = Server::serve("sim:echo", 115_200, &["--http", "127.0.0.1:0"]);
    let addr = http_addr(&plain);
    let name = status(&plain.control)[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = get(&addr, &format!("/api/ports/{name}/log"), &[]);
    assert_eq!(r.code, 404, "{r:?}");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("no traffic log"),
        "{r:?}"
    );
}

#[test]
fn issue23_a_network_listener_needs_authentication() {
    let (code, err, _) = run_to_exit(
        &[
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
            "--http",
            "0.0.0.0:0",
        ],
        BOUND,
    );
    assert_eq!(code.code(), Some(1), "{err}");
    assert!(err.contains("needs authentication"), "{err}");

    // With users, plain text needs the explicit opt-in.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    let hash = passwd("pw");
    let conf = |extra: &str| {
        format!(
            "[http]\nlisten = \"0.0.0.0:0\"\n{extra}\n[[http.user]]\nname = \"a\"\npassword-hash = \"{hash}\"\nrole = \"ro\"\n\n\
             [[port]]\nname = \"echo\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n"
        )
    };
    std::fs::write(&file, conf("")).unwrap();
    let (code, err, _) = run_to_exit(&["serve", "--config", file.to_str().unwrap()], BOUND);
    assert_eq!(code.code(), Some(1), "{err}");
    assert!(err.contains("--http-insecure"), "{err}");
    std::fs::write(&file, conf("insecure = true\n")).unwrap();
    let ok = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    let port = http_addr(&ok).rsplit(':').next().unwrap().to_owned();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(get(&addr, "/api/status", &[]).code, 401);
    drop(ok);

    // The old name on a network address keeps serving /metrics alone.
    let old = Server::serve("sim:echo", 115_200, &["--metrics", "0.0.0.0:0"]);
    let port = http_addr(&old).rsplit(':').next().unwrap().to_owned();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(get(&addr, "/metrics", &[]).code, 200);
    let r = get(&addr, "/api/status", &[]);
    assert_eq!(r.code, 404, "{r:?}");
    assert!(r.body.contains("needs --http with authentication"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_limits_hold_and_websockets_outlive_the_request_deadline() {
    let server = tokio::task::block_in_place(|| {
        Server::serve("sim:echo", 115_200, &["--http", "127.0.0.1:0"])
    });
    let addr = http_addr(&server);
    let origin = format!("http://{addr}");
    let mut feed = ws(&addr, "/ws/status", &[("Origin", &origin)])
        .await
        .expect("feed");
    next_text(&mut feed, BOUND).await;

    // 100 slowloris heads and 600 idle connections: the listener's place
    // is bounded and idle ones are shed, so real requests still answer.
    let a = addr.clone();
    let attack = tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        for i in 0..700 {
            if let Ok(mut s) = TcpStream::connect(&a) {
                if i < 100 {
                    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ");
                }
                held.push(s);
            }
        }
        held
    });
    let held = attack.await.unwrap();
    let a = addr.clone();
    tokio::task::block_in_place(|| {
        for path in ["/metrics", "/api/status", "/"] {
            let t = Instant::now();
            let r = get(&a, path, &[]);
            assert_eq!(r.code, 200, "{path}: {r:?}");
            assert!(t.elapsed() < BOUND, "{path} took {:?}", t.elapsed());
        }
    });
    drop(held);

    // Past the 10 s deadline of ordinary connections, the feed is alive
    // and tells of a new client.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let tcp = crate::common::endpoints(&status(&server.control), "tcp:")[0];
    let _client = tokio::net::TcpStream::connect(tcp).await.unwrap();
    loop {
        let doc: Value = serde_json::from_str(&next_text(&mut feed, BOUND).await).unwrap();
        if doc[0]["clients"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
    }
}

/// `curl` over HTTPS to the listener, with alice's certificate if `cert`:
/// (success, body).
fn curl(pki: &crate::tls::Pki, url: &str, cert: bool, extra: &[&str]) -> (bool, String) {
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
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(url.into());
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn issue23_a_client_certificate_is_the_identity_and_allow_its_role() {
    let pki = crate::tls::pki();
    let server = crate::tls::serve_tls(
        &pki,
        &[
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--http-tls",
            "--allow",
            "ro:cn:alice",
        ],
    );
    let ports = status(&server.control);
    assert_eq!(ports[0]["http_https"], true, "{ports:#}");
    let port = http_addr(&server).rsplit_once(':').unwrap().1.to_owned();
    let base = format!("https://localhost:{port}");
    let (ok, body) = curl(&pki, &format!("{base}/api/whoami"), true, &[]);
    assert!(ok, "{body}");
    let who: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        who,
        serde_json::json!({"user": "cn:alice", "role": "ro", "auth": "certificate"})
    );
    // ro may read, not kick.
    let (ok, body) = curl(&pki, &format!("{base}/api/status"), true, &[]);
    assert!(ok, "{body}");
    let name = ports[0]["name"].as_str().unwrap();
    let (ok, body) = curl(
        &pki,
        &format!("{base}/api/ports/{name}/clients/1/kick"),
        true,
        &["-X", "POST"],
    );
    assert!(!ok && body.contains("403"), "{body}");
    // No certificate, no TLS session.
    let (ok, body) = curl(&pki, &format!("{base}/api/whoami"), false, &[]);
    assert!(!ok, "{body}");
}

#[test]
fn issue23_over_https_the_session_cookie_is_secure() {
    let pki = crate::tls::pki();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    let hash = passwd("wonderland");
    std::fs::write(
        &file,
        format!(
            "[control]\nsocket = \"{}\"\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\ntls = true\n\n\
             [[http.user]]\nname = \"alice\"\npassword-hash = \"{hash}\"\nrole = \"rw\"\n\n\
             [[port]]\nname = \"echo\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n",
            dir.path().join("c.sock").display(),
            pki.arg("server.pem"),
            pki.arg("server.key"),
        ),
    )
    .unwrap();
    let server = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    let port = http_addr(&server).rsplit_once(':').unwrap().1.to_owned();
    let base = format!("https://localhost:{port}");
    // Without a session, the API says so.
    let (ok, body) = curl(&pki, &format!("{base}/api/whoami"), false, &[]);
    assert!(!ok && body.contains("401"), "{body}");
    let (ok, head) = curl(
        &pki,
        &format!("{base}/login"),
        false,
        &["--include", "--data", "username=alice&password=wonderland"],
    );
    assert!(ok, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .trim()
        .to_owned();
    let parts: Vec<&str> = cookie.split(';').map(str::trim).collect();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(parts.contains(&flag), "{cookie}");
    }
    let (ok, body) = curl(
        &pki,
        &format!("{base}/api/whoami"),
        false,
        &["--cookie", parts[0]],
    );
    assert!(ok, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::json!({"user": "alice", "role": "rw", "auth": "password"})
    );
}
