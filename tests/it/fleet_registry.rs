//! Issue 22: the fleet registry. Several `serve --fleet` processes on
//! simulated devices play hosts against a real nats-server; `fleet ls
//! --json` is how the tests see the fleet, `status --json` how they see a
//! host.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::nats::NatsServer;
use crate::common::{Server, command, run_to_exit, status};

/// `serialhub fleet ls --json --fleet URL EXTRA...`, parsed.
fn ls(url: &str, extra: &[&str]) -> Result<Vec<Value>, String> {
    let out = command()
        .args(["fleet", "ls", "--json", "--fleet", url])
        .args(extra)
        .output()
        .expect("run fleet ls");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice::<Vec<Value>>(&out.stdout).map_err(|e| e.to_string())
}

/// The names `fleet ls` lists, sorted.
fn names(list: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = list
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("?").to_owned())
        .collect();
    n.sort();
    n
}

/// Polls `fleet ls` until `f` holds for its list (20 s at most).
fn wait_ls(url: &str, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = ls(url, &[]);
        if let Ok(l) = &list
            && f(l)
        {
            return l.clone();
        }
        assert!(Instant::now() < deadline, "{what}; fleet ls: {list:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A host: `serve -d sim:echo --name PORT` in the fleet at `url` as `host`,
/// with a 1 s heartbeat.
fn host(url: &str, host: &str, port: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "-d",
        "sim:echo",
        "--name",
        port,
        "-l",
        "tcp:127.0.0.1:0",
        "--fleet",
        url,
        "--fleet-host",
        host,
        "--fleet-heartbeat",
        "1s",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// What a host's status says of its place in the fleet.
fn fleet_state(s: &Server) -> String {
    status(&s.control)[0]["fleet"]["state"]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

/// The device echoes through the host's TCP endpoint.
fn echoes(s: &Server) {
    let mut c = TcpStream::connect(s.addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"ping\n").unwrap();
    let mut got = [0u8; 5];
    c.read_exact(&mut got).expect("echo");
    assert_eq!(&got, b"ping\n");
}

#[test]
fn issue22_fleet_ls_lists_three_hosts_ports_with_labels_and_filters_by_them() {
    let nats = NatsServer::start();
    let url = nats.url();
    let _a = host(
        &url,
        "lab1",
        "ttyUSB0",
        &["--label", "board=rpi4", "--label", "rack=3"],
    );
    let _b = host(&url, "lab2", "tty.S1", &["--label", "board=stm32"]);
    // The third from a configuration file: `[fleet]` and `labels = {...}`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        format!(
            "[fleet]\nurl = \"{url}\"\nhost = \"lab3\"\nheartbeat = \"1s\"\n\n\
             [[port]]\nname = \"console\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n\
             labels = {{ board = \"rpi4\", rack = \"4\" }}\n"
        ),
    )
    .unwrap();
    let c = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(status(&c.control)[0]["labels"]["rack"], "4");

    let all = ["lab1/ttyUSB0", "lab2/tty.S1", "lab3/console"];
    let list = wait_ls(&url, "three hosts' ports", |l| names(l) == all);
    let one = list.iter().find(|p| p["name"] == "lab1/ttyUSB0").unwrap();
    assert_eq!(one["host"], "lab1");
    assert_eq!(one["port"], "ttyUSB0");
    assert_eq!(one["device"], "sim:echo");
    assert_eq!(one["state"], "open");
    assert_eq!(one["line"], "9600 8N1");
    assert_eq!(one["clients"], 0);
    assert_eq!(one["labels"]["board"], "rpi4");
    assert_eq!(one["labels"]["rack"], "3");
    assert!(
        one["last_seen"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{one}"
    );
    assert!(one["age_ms"].as_u64().is_some_and(|a| a < 3000), "{one}");

    let rpi = ls(&url, &["--label", "board=rpi4"]).unwrap();
    assert_eq!(names(&rpi), ["lab1/ttyUSB0", "lab3/console"]);
    let rack3 = ls(&url, &["--label", "board=rpi4", "--label", "rack=3"]).unwrap();
    assert_eq!(names(&rack3), ["lab1/ttyUSB0"]);
    assert!(ls(&url, &["--label", "board=none"]).unwrap().is_empty());

    // A client shows in the record at once, not only at the heartbeat.
    let _client = TcpStream::connect(c.addr()).unwrap();
    wait_ls(&url, "a client counted", |l| {
        l.iter()
            .any(|p| p["name"] == "lab3/console" && p["clients"] == 1)
    });

    // The table names the columns and the ports. (Asked again while a
    // host is missing: on a loaded machine a heartbeat can come late
    // enough for its records to look stale for a moment.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let table = loop {
        let out = command()
            .args(["fleet", "ls", "--fleet", &url])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        if table.contains("board=rpi4,rack=3") || Instant::now() > deadline {
            break table;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "NAME", "DEVICE", "STATE", "LINE", "CLIENTS", "LABELS", "SEEN"
        ]
    );
    assert!(table.contains("board=rpi4,rack=3"), "{table}");
}

#[test]
fn issue22_a_host_killed_with_sigkill_is_gone_within_3_heartbeats() {
    let nats = NatsServer::start();
    let url = nats.url();
    let _a = host(&url, "alive", "p", &[]);
    let mut b = host(&url, "doomed", "p", &[]);
    wait_ls(&url, "both hosts", |l| names(l) == ["alive/p", "doomed/p"]);
    b.kill();
    let killed = Instant::now();
    wait_ls(&url, "the killed host gone", |l| names(l) == ["alive/p"]);
    // Its last heartbeat was at most 1 s before the kill; 3 heartbeats
    // after it, it is gone. The margin is for `fleet ls` itself.
    let took = killed.elapsed();
    assert!(took < Duration::from_millis(4500), "gone after {took:?}");
}

#[test]
fn issue22_a_duplicate_host_name_is_refused() {
    let nats = NatsServer::start();
    let url = nats.url();
    let first = host(&url, "dup", "p", &[]);
    wait_ls(&url, "the first host", |l| names(l) == ["dup/p"]);
    let (code, err, _) = run_to_exit(
        &[
            "serve",
            "-d",
            "sim:echo",
            "--name",
            "q",
            "-l",
            "tcp:127.0.0.1:0",
            "--fleet",
            &url,
            "--fleet-host",
            "dup",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code.code(), Some(2), "{err}");
    let want = format!(
        "fleet host name \"dup\" is in use: another serialhub (pid {}) sent a heartbeat",
        first.pid()
    );
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("give this one another --fleet-host"), "{err}");
    // The first is untouched.
    assert_eq!(names(&ls(&url, &[]).unwrap()), ["dup/p"]);
    assert_eq!(fleet_state(&first), "connected");
}

#[test]
fn issue22_with_the_broker_down_a_host_serves_and_joins_when_it_comes() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    nats.kill9();
    let s = host(&url, "early", "p", &[]);
    echoes(&s);
    assert_eq!(fleet_state(&s), "connecting");
    let st = status(&s.control);
    assert_eq!(st[0]["fleet"]["host"], "early");
    assert!(st[0]["fleet"]["error"].is_string(), "{st}");
    nats.restart();
    wait_ls(&url, "the host registered", |l| names(l) == ["early/p"]);
    s.wait_status("fleet connected", |p| p["fleet"]["state"] == "connected");
    echoes(&s);
}

#[test]
fn issue22_after_a_broker_restart_the_hosts_register_again() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let a = host(&url, "h1", "p", &[]);
    let b = host(&url, "h2", "p", &[]);
    wait_ls(&url, "both hosts", |l| names(l) == ["h1/p", "h2/p"]);
    nats.kill9();
    for s in [&a, &b] {
        s.wait_status("broker lost", |p| p["fleet"]["state"] == "connecting");
    }
    nats.restart();
    let back = time::OffsetDateTime::now_utc();
    // Records written after the restart, not the ones the store kept.
    let fresh = |l: &[Value]| {
        names(l) == ["h1/p", "h2/p"]
            && l.iter().all(|p| {
                p["last_seen"]
                    .as_str()
                    .and_then(|t| {
                        time::OffsetDateTime::parse(
                            t,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .is_some_and(|t| t > back)
            })
    };
    wait_ls(&url, "both hosts written again", fresh);
    for s in [&a, &b] {
        assert_eq!(fleet_state(s), "connected");
    }
}

#[test]
fn issue22_fleet_ls_without_a_broker_is_a_clear_error() {
    let (code, err, took) = run_to_exit(&["fleet", "ls"], Duration::from_secs(10));
    assert_ne!(code.code(), Some(0));
    assert!(err.contains("--fleet URL or SERIALHUB_FLEET"), "{err}");
    assert!(took < Duration::from_secs(5));
    let mut nats = NatsServer::start();
    let url = nats.url().replace("nats://", "nats://u:hidden@");
    nats.kill9();
    let (code, err, took) = run_to_exit(&["fleet", "ls", "--fleet", &url], Duration::from_secs(20));
    assert_eq!(code.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the fleet broker nats://u@127.0.0.1:"),
        "{err}"
    );
    assert!(!err.contains("hidden"), "{err}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// A broker with TLS (a private CA) and a password: a host joins with
/// `tls://user:password@` and `--fleet-ca`, `fleet ls` lists it the same
/// way, and the password shows nowhere: not in status, the log or errors.
/// Without the CA the broker is not trusted.
#[test]
fn issue22_a_tls_broker_with_a_password_is_joined_and_the_password_never_shown() {
    let pki = crate::tls::pki();
    let nats = NatsServer::start_config(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\nauthorization {{\n  user: alice\n  password: s3cretpw\n}}\n",
        pki.arg("server.pem"),
        pki.arg("server.key")
    ));
    let url = format!("tls://alice:s3cretpw@127.0.0.1:{}", nats.port());
    let ca = pki.arg("ca.pem");
    let s = host(&url, "secure", "p", &["--fleet-ca", &ca]);
    s.wait_status("fleet connected", |p| p["fleet"]["state"] == "connected");
    let st = status(&s.control);
    assert_eq!(
        st[0]["fleet"]["url"],
        format!("tls://alice@127.0.0.1:{}", nats.port())
    );
    let listed = || {
        let out = command()
            .args(["fleet", "ls", "--json", "--fleet", &url, "--fleet-ca", &ca])
            .output()
            .unwrap();
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while names(&listed()) != ["secure/p"] {
        assert!(Instant::now() < deadline, "not listed: {:?}", listed());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The system's roots do not know the test CA.
    let (code, err, _) = run_to_exit(&["fleet", "ls", "--fleet", &url], Duration::from_secs(20));
    assert_eq!(code.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the fleet broker tls://alice@127.0.0.1:"),
        "{err}"
    );
    // Nor does the most verbose log, of a host or of `fleet ls`.
    let args = [
        "serve",
        "-d",
        "sim:echo",
        "--name",
        "q",
        "-l",
        "tcp:127.0.0.1:0",
        "--fleet",
        &url,
        "--fleet-host",
        "traced",
        "--fleet-heartbeat",
        "1s",
        "--fleet-ca",
        &ca,
    ];
    let traced = Server::start_with(&args, |c| {
        c.env("RUST_LOG", "trace");
    });
    traced.wait_status("fleet connected", |p| p["fleet"]["state"] == "connected");
    let ls = command()
        .args(["fleet", "ls", "--fleet", &url, "--fleet-ca", &ca])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(ls.status.success(), "{ls:?}");
    let ls_err = String::from_utf8_lossy(&ls.stderr).into_owned();
    assert!(
        traced.log().contains("CONNECT"),
        "a trace log shows the CONNECT"
    );
    for text in [st.to_string(), s.log(), err, traced.log(), ls_err] {
        assert!(!text.contains("s3cretpw"), "{text}");
    }
}

/// A reload that finds `[fleet]` changed says it takes a restart, and the
/// host stays in the fleet as it joined; the ports reload as usual.
#[test]
fn issue22_a_reload_reports_that_a_fleet_change_takes_a_restart() {
    let nats = NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    let text = |host: &str, baud: u32| {
        format!(
            "[fleet]\nurl = \"{url}\"\nhost = \"{host}\"\nheartbeat = \"1s\"\n\n\
             [[port]]\nname = \"p\"\ndevice = \"sim:echo\"\nbaud = {baud}\nlisten = [\"tcp:127.0.0.1:0\"]\n"
        )
    };
    std::fs::write(&file, text("r1", 9600)).unwrap();
    let s = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    wait_ls(&url, "the host", |l| names(l) == ["r1/p"]);
    std::fs::write(&file, text("r2", 9600)).unwrap();
    let (ok, out, err) = crate::common::control(&s.control, &["reload"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("[fleet] changed, not applied: it takes a restart"),
        "{out}"
    );
    std::fs::write(&file, text("r1", 19200)).unwrap();
    let (ok, out, err) = crate::common::control(&s.control, &["reload"]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains("[fleet]"), "{out}");
    wait_ls(&url, "the new line in the record", |l| {
        names(l) == ["r1/p"] && l[0]["line"] == "19200 8N1"
    });
}
