//! Issue 20 point 2: the control commands find every serialhub of the user
//! without `--control`, through one socket per process in the runtime
//! directory (here a per-test `XDG_RUNTIME_DIR`, never the real one).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::common::{Server, found, status_found};

/// `serve -d sim:echo --name NAME -l tcp:127.0.0.1:0`, found through `runtime`.
fn serve(runtime: &Path, name: &str) -> Server {
    Server::start_found(
        &[
            "serve",
            "-d",
            "sim:echo",
            "--name",
            name,
            "-l",
            "tcp:127.0.0.1:0",
        ],
        runtime,
    )
}

/// The ports in a `status --json` answer, by name, with their daemon's pid.
fn names(ports: &serde_json::Value) -> Vec<(String, u64)> {
    let mut names: Vec<_> = ports
        .as_array()
        .expect("a list of ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["pid"].as_u64().unwrap(),
            )
        })
        .collect();
    names.sort();
    names
}

#[test]
fn issue20_status_without_flags_finds_every_flags_started_serve() {
    let runtime = tempfile::tempdir().unwrap();
    let rt = runtime.path();
    let (ok, _, err) = found(rt, &["status"]);
    assert!(!ok && err.contains("no serialhub is running"), "{err}");

    let mut one = serve(rt, "one");
    let socket_one = one.control.clone();
    assert_eq!(socket_one, rt.join(format!("serialhub/{}.sock", one.pid())));
    // A second flags-started serve runs beside the first, with its own socket.
    let two = serve(rt, "two");
    assert_ne!(two.control, socket_one);
    let both = status_found(rt).unwrap();
    assert_eq!(
        names(&both),
        [
            ("one".to_owned(), u64::from(one.pid())),
            ("two".to_owned(), u64::from(two.pid()))
        ]
    );
    // The tables say which process and socket each port comes from.
    let (ok, out, err) = found(rt, &["status"]);
    assert!(ok, "{err}");
    for s in [&one, &two] {
        let origin = format!(
            "serialhub pid {}, control {}, started with flags",
            s.pid(),
            s.control.display()
        );
        assert!(out.contains(&origin), "{out}");
    }
    assert!(
        out.contains("port one:") && out.contains("port two:"),
        "{out}"
    );

    // kick finds the daemon serving the port.
    let mut client = TcpStream::connect(two.addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"hi\n").unwrap();
    crate::common::expect(&mut client, b"hi\n");
    let ports = status_found(rt).unwrap();
    let two_status = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "two")
        .unwrap();
    let id = two_status["clients"][0]["id"].as_u64().unwrap().to_string();
    let (ok, _, err) = found(rt, &["kick", "two", &id]);
    assert!(ok, "{err}");
    let mut buf = [0u8; 16];
    assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)));
    let (ok, _, err) = found(rt, &["kick", "nope", "1"]);
    assert!(
        !ok && err.contains("no running serialhub serves port nope (ports: one, two)"),
        "{err}"
    );
    // reload cannot guess between two daemons started with flags.
    let (ok, _, err) = found(rt, &["reload"]);
    assert!(
        !ok && err.contains("2 serialhubs are running") && err.contains("--control PATH"),
        "{err}"
    );

    // A crashed daemon's socket is skipped silently, and removed.
    one.kill();
    assert!(socket_one.exists(), "SIGKILL leaves the socket behind");
    let (ok, out, err) = found(rt, &["status", "--json"]);
    assert!(ok && err.is_empty(), "{err}");
    let left: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(names(&left), [("two".to_owned(), u64::from(two.pid()))]);
    assert_eq!(left[0]["kicked"], 1);
    assert!(!socket_one.exists(), "the stale socket is cleaned up");
}

#[test]
fn issue20_a_runtime_directory_open_to_others_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let runtime = tempfile::tempdir().unwrap();
    let dir = runtime.path().join("serialhub");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, _, err) = found(runtime.path(), &["status"]);
    assert!(!ok && err.contains("mode 0700"), "{err}");
}

#[test]
fn issue20_reload_without_flags_goes_to_the_serve_with_a_config_file() {
    let runtime = tempfile::tempdir().unwrap();
    let rt = runtime.path();
    let file = rt.join("hub.toml");
    std::fs::write(
        &file,
        "[[port]]\nname = \"cfg\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n",
    )
    .unwrap();
    let _flags = serve(rt, "flags");
    let from_file = Server::start_found(&["serve", "--config", file.to_str().unwrap()], rt);
    let (ok, out, err) = found(rt, &["status"]);
    assert!(ok, "{err}");
    let origin = format!(
        "serialhub pid {}, control {}, config {}",
        from_file.pid(),
        from_file.control.display(),
        file.display()
    );
    assert!(out.contains(&origin), "{out}");
    let (ok, out, err) = found(rt, &["reload"]);
    assert!(ok && out.contains("unchanged: cfg"), "{out}{err}");
}
