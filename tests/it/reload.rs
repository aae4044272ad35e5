//! Issue 10: a reload that changes a port's line settings or endpoints
//! changes it in place: its other clients stay connected.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::common::{PtyDevice, Server, control, device_got, eventually, expect, status};

fn ctl(sock: &Path, args: &[&str]) -> (bool, String) {
    let (ok, out, err) = control(sock, args);
    (ok, out + &err)
}

fn port_status(sock: &Path) -> serde_json::Value {
    status(sock)[0].clone()
}

fn config(file: &Path, sock: &Path, device: &str, baud: u32, listen: &[String]) {
    let listen: Vec<String> = listen.iter().map(|l| format!("{l:?}")).collect();
    std::fs::write(
        file,
        format!(
            "[control]\nsocket = {sock:?}\n\n[[port]]\nname = \"dev\"\ndevice = {device:?}\n\
             baud = {baud}\nlisten = [{}]\n",
            listen.join(", ")
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn issue10_reload_changes_line_and_endpoints_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (file, sock) = (dir.path().join("hub.toml"), dir.path().join("hub.sock"));
    let unix = dir.path().join("dev.sock");
    let device = PtyDevice::new();
    let tcp = "tcp:127.0.0.1:0".to_owned();
    let unix_ep = format!("unix:{}", unix.display());
    config(&file, &sock, &device.path, 9600, std::slice::from_ref(&tcp));
    let _server = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    let st = port_status(&sock);
    let addr = st["endpoints"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("tcp:");
    let mut a = TcpStream::connect(addr).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || port_status(&sock)["clients"][0]
            .is_object())
        .await
    );
    assert_eq!(device.baud(), 9600);

    // The baud rate changes and a unix endpoint is added: the TCP client
    // stays connected, both ways.
    config(
        &file,
        &sock,
        &device.path,
        19200,
        &[tcp.clone(), unix_ep.clone()],
    );
    let (ok, out) = ctl(&sock, &["reload"]);
    assert!(ok, "{out}");
    assert!(out.contains("changed in place: dev"), "{out}");
    assert!(eventually(Duration::from_secs(5), || device.baud() == 19200).await);
    assert_eq!(port_status(&sock)["line"], "19200 8N1");
    device.send(b"after reload\n");
    expect(&mut a, b"after reload\n");
    a.write_all(b"still here\n").unwrap();
    assert!(device_got(&device, b"still here\n", Duration::from_secs(10)).await);
    let mut b = UnixStream::connect(&unix).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || {
            port_status(&sock)["clients"]
                .as_array()
                .is_some_and(|c| c.len() == 2)
        })
        .await
    );
    device.send(b"both\n");
    expect(&mut a, b"both\n");
    expect(&mut b, b"both\n");

    // The TCP endpoint is removed: its client is closed, the unix one stays.
    config(
        &file,
        &sock,
        &device.path,
        19200,
        std::slice::from_ref(&unix_ep),
    );
    let (ok, out) = ctl(&sock, &["reload"]);
    assert!(ok, "{out}");
    let mut rest = Vec::new();
    assert!(
        a.read_to_end(&mut rest).is_ok(),
        "the removed endpoint's client was not closed"
    );
    device.send(b"unix only\n");
    expect(&mut b, b"unix only\n");
    let st = port_status(&sock);
    assert_eq!(st["endpoints"].as_array().unwrap().len(), 1, "{st}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "the removed endpoint still accepts"
    );
    assert_eq!(device.baud(), 19200);
}

/// `[[port]] NAME` on `sim:echo` with `extra` keys, listening on `listen`.
fn sim_port(name: &str, extra: &str, listen: &[String]) -> String {
    let listen: Vec<String> = listen.iter().map(|l| format!("{l:?}")).collect();
    format!(
        "[[port]]\nname = \"{name}\"\ndevice = \"sim:echo\"\n{extra}listen = [{}]\n",
        listen.join(", ")
    )
}

/// Issue 20: the reload's one-line summary names every port in its part,
/// as the README quotes it; a port that cannot start is named with why,
/// and the others are as the file says.
#[test]
fn issue20_reload_summary_names_every_port_in_its_part() {
    let dir = tempfile::tempdir().unwrap();
    let (file, sock) = (dir.path().join("hub.toml"), dir.path().join("hub.sock"));
    let write = |ports: &[String]| {
        std::fs::write(
            &file,
            format!("[control]\nsocket = {sock:?}\n{}", ports.concat()),
        )
        .unwrap();
    };
    let tcp = vec!["tcp:127.0.0.1:0".to_owned()];
    let plc_sock = format!("unix:{}", dir.path().join("plc.sock").display());
    let busy = dir.path().join("busy.sock");
    let names = || -> Vec<String> {
        status(&sock)
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    write(&[
        sim_port("lab1", "", &tcp),
        sim_port("plc", "baud = 9600\n", &tcp),
        sim_port("lab2", "", &tcp),
        sim_port("old", "", &tcp),
    ]);
    let server = Server::start(&["serve", "--config", file.to_str().unwrap()]);

    let plc = [tcp[0].clone(), plc_sock.clone()];
    write(&[
        sim_port("lab1", "", &tcp),
        sim_port("plc", "baud = 19200\n", &plc),
        sim_port("lab3", "", &tcp),
        sim_port("lab2", "max-clients = 3\n", &tcp),
    ]);
    let (ok, out, err) = control(&sock, &["reload"]);
    assert!(ok, "{out}{err}");
    let summary = format!(
        "unchanged: lab1; changed in place: plc (line 9600 8N1 -> 19200 8N1, +{plc_sock}); \
         restarted: lab2; added: lab3; removed: old"
    );
    assert_eq!(out.trim_end(), summary);
    assert!(
        server.wait_log(&format!("reloaded: {summary}"), Duration::from_secs(10)),
        "{}",
        server.log()
    );
    // In the file's order.
    assert_eq!(names(), ["lab1", "plc", "lab3", "lab2"]);

    // plc cannot bind its new endpoint in place, nor start with it.
    std::fs::write(&busy, b"not a socket").unwrap();
    let busy_ep = format!("unix:{}", busy.display());
    write(&[
        sim_port("lab1", "", &tcp),
        sim_port("plc", "baud = 19200\n", &[tcp[0].clone(), busy_ep.clone()]),
        sim_port("lab2", "max-clients = 3\n", &tcp),
    ]);
    let (ok, out, err) = control(&sock, &["reload"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!(
            "unchanged: lab1, lab2; removed: lab3; failed to start: plc: {busy_ep} exists \
             and is not a socket; refusing to replace it"
        )),
        "{err}"
    );
    assert_eq!(names(), ["lab1", "lab2"]);
    assert_eq!(std::fs::read(&busy).unwrap(), b"not a socket");
}
