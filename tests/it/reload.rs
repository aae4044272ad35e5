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
