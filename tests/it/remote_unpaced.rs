//! An unpaced remote port (`--device rfc2217://... --no-pacing`) takes a
//! client's data as fast as the far end does. Its writer used to wait for
//! the remote's unacknowledged bytes to drain at the line's character
//! time: 64 KiB at 9600 baud's was a 68 s stall (found by the fleet bench).

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{PtyDevice, Server, eventually};

#[tokio::test]
async fn issue22_unpaced_remote_port_streams_past_its_lead() {
    let device = PtyDevice::new();
    let far = Server::listen(
        &device.path,
        9600,
        &["rfc2217:127.0.0.1:0"],
        &["--no-pacing"],
    );
    let near = Server::listen(
        &format!("rfc2217://{}", far.rfc2217[0]),
        9600,
        &["tcp:127.0.0.1:0"],
        &["--no-pacing"],
    );
    near.wait_status("the remote port open", |p| {
        p["device_state"]["state"] == "open"
    });
    // Eight times the unpaced writer's 64 KiB lead; no 0xFF, so the bytes
    // on the Telnet link are the device's.
    let data: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    let mut client = TcpStream::connect(near.addr()).unwrap();
    client.write_all(&data).unwrap();
    let all = eventually(Duration::from_secs(60), || {
        device.received().len() >= data.len()
    })
    .await;
    let got = device.received();
    assert!(all, "the device got {} of {} bytes", got.len(), data.len());
    assert_eq!(got, data);
}
