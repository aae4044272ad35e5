//! Issue 20 point 3: the small things a newcomer found.

use std::time::Duration;

use crate::common::Server;

#[test]
fn issue20_wait_for_device_does_not_log_device_open_while_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyLATE");
    let server = Server::start(&[
        "serve",
        "--wait-for-device",
        "-d",
        link.to_str().unwrap(),
        "-l",
        "tcp:127.0.0.1:0",
    ]);
    assert!(
        server.wait_log("waiting for it", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    server.wait_status("device waiting", |v| {
        v["device_state"]["state"] == "waiting"
    });
    assert!(!server.log().contains("device open"), "{}", server.log());
}

