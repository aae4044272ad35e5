//! Issue 10: the control socket: `status`, `kick`, `lock`, `unlock` and
//! `reload` on a running serialhub.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::common::{Server, control, expect, status};

#[test]
fn issue10_status_lists_clients_and_kick_disconnects_one() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("control.sock");
    let server = Server::start(&[
        "--control",
        sock.to_str().unwrap(),
        "serve",
        "-d",
        "sim:echo",
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0",
    ]);
    // The port's address, learnt from status rather than from the log.
    let ports = status(&sock);
    let endpoint = ports[0]["endpoints"][0].as_str().unwrap().to_owned();
    let addr = endpoint.strip_prefix("tcp:").unwrap();
    assert_eq!(addr.parse::<std::net::SocketAddr>().unwrap(), server.addr());

    let mut a = TcpStream::connect(addr).unwrap();
    let mut b = TcpStream::connect(addr).unwrap();
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    // Every client sees the device's echo of every write.
    for msg in [&b"from-a\n"[..], b"from-b\n"] {
        let writer = if msg == b"from-a\n" { &mut a } else { &mut b };
        writer.write_all(msg).unwrap();
        expect(&mut a, msg);
        expect(&mut b, msg);
    }
    let ports = status(&sock);
    let port = &ports[0];
    assert_eq!(port["name"], "sim-echo");
    assert_eq!(port["device_state"]["state"], "open");
    let clients = port["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "{port}");
    let a_port = a.local_addr().unwrap().port();
    let a_client = clients
        .iter()
        .find(|c| c["peer"] == format!("tcp:127.0.0.1:{a_port}").as_str())
        .expect("client a is listed");
    // Both directions counted (the echo reaches both clients).
    assert!(a_client["bytes_in"].as_u64().unwrap() >= 7, "{a_client}");
    assert!(a_client["bytes_out"].as_u64().unwrap() >= 14, "{a_client}");
    let id = a_client["id"].as_u64().unwrap().to_string();

    let (ok, _, err) = control(&sock, &["kick", "sim-echo", &id]);
    assert!(ok, "{err}");
    let mut buf = [0u8; 64];
    loop {
        match a.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    b.write_all(b"b-still-flows\n").unwrap();
    expect(&mut b, b"b-still-flows\n");
    let port = &status(&sock)[0];
    assert_eq!(port["clients"].as_array().unwrap().len(), 1);
    assert_eq!(port["kicked"], 1);

    // Clear errors for what does not exist.
    let (ok, _, err) = control(&sock, &["kick", "sim-echo", "999999"]);
    assert!(!ok && err.contains("no client 999999"), "{err}");
    let (ok, _, err) = control(&sock, &["status", "nope"]);
    assert!(!ok && err.contains("no port \"nope\""), "{err}");
    let (ok, out, _) = control(&sock, &["status"]);
    assert!(
        ok && out.contains("port sim-echo") && out.contains("CLIENT"),
        "{out}"
    );
}

#[test]
fn issue10_status_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let (ok, _, err) = control(&sock, &["status"]);
    assert!(!ok);
    assert!(err.contains("no serialhub at"), "{err}");
}

#[test]
fn issue10_a_config_with_three_ports_serves_them_all() {
    use crate::common::PtyDevice;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hub.sock");
    let device = PtyDevice::new();
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[control]
socket = "{sock}"

[defaults]
baud = 115200

[[port]]
name = "echo"
device = "sim:echo"
listen = ["tcp:127.0.0.1:0"]

[[port]]
name = "source"
device = "sim:source"
listen = ["tcp:127.0.0.1:0"]

[[port]]
name = "pty"
device = "{pty}"
listen = ["tcp:127.0.0.1:0"]
"#,
            sock = sock.display(),
            pty = device.path
        ),
    )
    .unwrap();
    let _server = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    let ports = status(&sock);
    let addr = |name: &str| -> String {
        let port = ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name} in {ports}"));
        assert_eq!(port["device_state"]["state"], "open", "{port}");
        port["endpoints"][0]
            .as_str()
            .unwrap()
            .trim_start_matches("tcp:")
            .to_owned()
    };
    let mut echo = TcpStream::connect(addr("echo")).unwrap();
    let mut source = TcpStream::connect(addr("source")).unwrap();
    let mut pty = TcpStream::connect(addr("pty")).unwrap();
    for s in [&mut echo, &mut source, &mut pty] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    echo.write_all(b"to-echo\n").unwrap();
    expect(&mut echo, b"to-echo\n");
    let mut buf = [0u8; 9];
    source.read_exact(&mut buf).unwrap();
    device.send(b"from-the-pty\n");
    expect(&mut pty, b"from-the-pty\n");

    let ports = status(&sock);
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 3);
    for p in ports {
        assert_eq!(p["clients"].as_array().unwrap().len(), 1, "{p}");
    }
    // Ids are unique across the ports.
    let mut ids: Vec<u64> = ports
        .iter()
        .map(|p| p["clients"][0]["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

fn write_config(file: &Path, sock: &Path, ports: &str) {
    std::fs::write(
        file,
        format!("[control]\nsocket = \"{}\"\n{ports}", sock.display()),
    )
    .unwrap();
}

fn tcp_of(ports: &serde_json::Value, name: &str) -> String {
    let port = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {ports}"));
    port["endpoints"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("tcp:")
        .to_owned()
}

#[test]
fn issue10_reload_changes_one_port_and_leaves_the_others_flowing() {
    use serialhub::pattern::Checker;
    let dir = tempfile::tempdir().unwrap();
    let (file, sock) = (dir.path().join("hub.toml"), dir.path().join("hub.sock"));
    let port = |name: &str, device: &str, baud: u32| {
        format!(
            "[[port]]\nname = \"{name}\"\ndevice = \"{device}\"\nbaud = {baud}\nlisten = [\"tcp:127.0.0.1:0\"]\n"
        )
    };
    let stream = port("stream", "sim:source", 115_200);
    write_config(
        &file,
        &sock,
        &(stream.clone() + &port("echo", "sim:echo", 115_200)),
    );
    let server = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    let ports = status(&sock);
    let mut streaming = TcpStream::connect(tcp_of(&ports, "stream")).unwrap();
    streaming
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut checker = Checker::new();
    let mut buf = [0u8; 4096];
    let mut read_for = |s: &mut TcpStream, checker: &mut Checker, d: Duration| {
        let end = std::time::Instant::now() + d;
        while std::time::Instant::now() < end {
            let n = s
                .read(&mut buf)
                .expect("the streaming client stays connected");
            assert!(n > 0, "the streaming client was closed");
            checker.feed(&buf[..n]);
        }
    };
    read_for(&mut streaming, &mut checker, Duration::from_millis(500));

    // SIGHUP with one port's baud rate changed, and a port added.
    write_config(
        &file,
        &sock,
        &(stream.clone() + &port("echo", "sim:echo", 9600) + &port("extra", "sim:echo", 9600)),
    );
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(
        server.wait_log("reloaded:", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    read_for(&mut streaming, &mut checker, Duration::from_millis(500));
    let ports = status(&sock);
    assert_eq!(ports.as_array().unwrap().len(), 3, "{ports}");
    let line = |name: &str| {
        ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["line"]
            .clone()
    };
    assert_eq!(line("echo"), "9600 8N1");
    let mut extra = TcpStream::connect(tcp_of(&ports, "extra")).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    extra.write_all(b"new-port\n").unwrap();
    expect(&mut extra, b"new-port\n");

    // A bad file changes nothing, and says why.
    std::fs::write(&file, "[[port]]\nname = \"x\"\ndevcie = \"sim:echo\"\n").unwrap();
    let (ok, _, err) = control(&sock, &["reload"]);
    assert!(!ok, "a bad file was accepted");
    assert!(err.contains("devcie") && err.contains("3:1"), "{err}");
    assert_eq!(status(&sock).as_array().unwrap().len(), 3);

    // Removing ports by `serialhub reload`.
    write_config(&file, &sock, &stream);
    let (ok, out, err) = control(&sock, &["reload"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed: echo, extra"), "{out}");
    read_for(&mut streaming, &mut checker, Duration::from_millis(500));
    assert_eq!(status(&sock).as_array().unwrap().len(), 1);
    // Through all of it, the unchanged port's stream had no gap.
    assert_eq!(checker.errors, 0, "{:?}", checker.first_error);
    assert!(checker.records > 100);
}

/// `serialhub --control PATH ARGS` as (success, stdout + stderr).
fn ask(server: &Server, args: &[&str]) -> (bool, String) {
    let (ok, out, err) = control(&server.control, args);
    (ok, out + &err)
}

/// The only port of `server`, from `status --json`.
fn only_port(server: &Server) -> serde_json::Value {
    let ports = status(&server.control);
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports}");
    ports[0].clone()
}

/// `n` bytes of numbered lines, so a lost or reordered line shows.
fn numbered(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(format!("line-{i:06}\n").as_bytes());
        i += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_operator_lock_holds_client_writes_until_unlock() {
    use crate::common::{PtyDevice, device_got};
    let device = PtyDevice::new();
    let server = Server::serve(&device.path, 115_200, &[]);
    let port = only_port(&server)["name"].as_str().unwrap().to_owned();
    for key in ["reopens", "lock_waits", "traffic_log_dropped"] {
        assert!(only_port(&server)[key].is_u64(), "no {key} in status");
    }

    let (ok, out) = ask(&server, &["lock", &port]);
    assert!(ok && out.contains("write lock taken"), "{out}");
    let (ok, out) = ask(&server, &["lock", &port]);
    assert!(ok && out.contains("already holds"), "{out}");
    assert_eq!(
        only_port(&server)["write_lock"],
        "operator (control socket)"
    );
    let (ok, out) = ask(&server, &["status"]);
    assert!(
        ok && out.contains("write lock operator (control socket), lock waits"),
        "{out}"
    );

    // More than the write budget holds: the rest waits in the sockets.
    let payload = numbered(24 * 1024);
    let addr = server.addr();
    let sent = payload.clone();
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&sent).unwrap();
        s
    });
    // The hub counts the write as waiting for the lock before it could
    // send it; then nothing of it may have reached the device.
    server.wait_status("the client's write did not wait for the lock", |p| {
        p["lock_waits"].as_u64() >= Some(1)
    });
    assert!(
        device.received().is_empty(),
        "a client wrote while the operator held the lock"
    );
    let held = only_port(&server);
    assert_eq!(held["bytes_to_device"], 0, "{held}");

    let (ok, out) = ask(&server, &["unlock", &port]);
    assert!(
        ok && out.contains("released the write lock of operator (control socket)"),
        "{out}"
    );
    assert!(
        device_got(
            &device,
            &payload[payload.len() - 12..],
            Duration::from_secs(60)
        )
        .await,
        "the held writes did not arrive:\n{}",
        server.log()
    );
    assert_eq!(
        device.received(),
        payload,
        "held writes were lost or reordered"
    );
    let _client = writer.join().unwrap();
    assert!(only_port(&server)["write_lock"].is_null());
    let (ok, out) = ask(&server, &["unlock", &port]);
    assert!(
        !ok && out.contains(&format!("port {port}: the write lock is not held")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_unlock_releases_a_clients_inband_lock() {
    use crate::common::{PtyDevice, device_got};
    use tokio::io::AsyncWriteExt;
    let device = PtyDevice::new();
    let server = Server::serve(
        &device.path,
        115_200,
        // Longer than the test: only the operator releases the lock.
        &["-l", "tcp:127.0.0.1:0,lock=inband", "--lock-idle", "10m"],
    );
    let port = only_port(&server)["name"].as_str().unwrap().to_owned();
    let inband = server.addrs[1];
    let mut a = tokio::net::TcpStream::connect(inband).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(inband).await.unwrap();
    a.write_all(b"\x10La-holds\n").await.unwrap();
    assert!(device_got(&device, b"a-holds\n", Duration::from_secs(10)).await);
    let a_peer = format!("tcp:{}", a.local_addr().unwrap());
    assert_eq!(only_port(&server)["write_lock"], a_peer.as_str());
    let a_id = only_port(&server)["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["peer"] == a_peer.as_str())
        .expect("client a is listed")["id"]
        .as_u64()
        .unwrap();

    // The operator cannot take a client's lock: the answer names it.
    let (ok, out) = ask(&server, &["lock", &port]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("held by client {a_id} ({a_peer})"))
            && out.contains(&format!("serialhub unlock {port}")),
        "{out}"
    );

    b.write_all(b"from-b\n").await.unwrap();
    // b's write is counted as waiting for a's lock; it must not be out.
    server.wait_status("b's write did not wait for the lock", |p| {
        p["lock_waits"].as_u64() >= Some(1)
    });
    assert!(
        !device_got(&device, b"from-b", Duration::ZERO).await,
        "b wrote while a held the lock"
    );
    let (ok, out) = ask(&server, &["unlock", &port]);
    assert!(
        ok && out.contains(&format!(
            "released the write lock of client {a_id} ({a_peer})"
        )),
        "{out}"
    );
    assert!(
        device_got(&device, b"from-b\n", Duration::from_secs(10)).await,
        "b still held after unlock:\n{}",
        server.log()
    );
    assert_eq!(device.received(), b"a-holds\nfrom-b\n");
    assert!(
        server.wait_log(
            "write lock released: released by the operator",
            Duration::from_secs(10)
        ),
        "{}",
        server.log()
    );
    // a carries on as an ordinary writer; its own unlock finds nothing.
    a.write_all(b"a-again\n\x10U").await.unwrap();
    assert!(device_got(&device, b"a-again\n", Duration::from_secs(10)).await);

    for (args, why) in [
        (["lock", "nope"], "no port \"nope\""),
        (["unlock", "nope"], "no port \"nope\""),
    ] {
        let (ok, out) = ask(&server, &args);
        assert!(!ok && out.contains(why), "{args:?}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_operator_lock_holds_transactions_until_unlock() {
    use crate::common::{PtyDevice, device_got};
    use tokio::io::AsyncWriteExt;
    let device = PtyDevice::new();
    let server = Server::serve(
        &device.path,
        115_200,
        &["--writers", "transaction", "--reply-timeout", "100ms"],
    );
    let port = only_port(&server)["name"].as_str().unwrap().to_owned();
    let (ok, out) = ask(&server, &["lock", &port]);
    assert!(ok, "{out}");
    let mut a = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    a.write_all(b"request-1\n").await.unwrap();
    // The arbiter counts the request as waiting for the lock; it must not
    // have gone out.
    server.wait_status("the request did not wait for the lock", |p| {
        p["lock_waits"].as_u64() >= Some(1)
    });
    assert!(
        device.received().is_empty(),
        "a request went out while locked"
    );
    let held = only_port(&server);
    assert_eq!(held["write_lock"], "operator (control socket)", "{held}");
    let (ok, out) = ask(&server, &["unlock", &port]);
    assert!(ok && out.contains("operator (control socket)"), "{out}");
    assert!(
        device_got(&device, b"request-1\n", Duration::from_secs(10)).await,
        "{}",
        server.log()
    );
}

/// The operator's lock ends with the port: a stop drains what clients sent,
/// as at any stop, instead of waiting for an `unlock` that cannot come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_sigterm_under_the_operator_lock_still_drains_accepted_writes() {
    use crate::common::{PtyDevice, eventually};
    use tokio::io::AsyncWriteExt;
    let device = PtyDevice::new();
    let mut server = Server::serve(&device.path, 115_200, &[]);
    let port = only_port(&server)["name"].as_str().unwrap().to_owned();
    let (ok, out) = ask(&server, &["lock", &port]);
    assert!(ok, "{out}");
    let mut client = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    client.write_all(b"accepted-while-locked\n").await.unwrap();
    // Acknowledged by the kernel: serialhub's to deliver.
    let accepted = eventually(Duration::from_secs(10), || {
        serialhub::measure::unacked(&client).unwrap() == 0
    })
    .await;
    assert!(accepted);
    // And taken from the listen backlog: serialhub has it as a client.
    let attached = eventually(Duration::from_secs(10), || {
        only_port(&server)["clients"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    })
    .await;
    assert!(attached, "{}", server.log());
    assert!(device.received().is_empty());
    let status = server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        server.log()
    );
    assert_eq!(
        device.received(),
        b"accepted-while-locked\n",
        "{}",
        server.log()
    );
    assert!(
        !server.log().contains("did not close in time"),
        "{}",
        server.log()
    );
}
