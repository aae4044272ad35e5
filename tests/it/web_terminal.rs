//! The terminal WebSocket through the real daemon's HTTP listener
//! (`/ws/ports/NAME`, issue 23): a browser is one more client of the port.
//!
//! The WebSocket backend's behaviour in detail (flow control, slow-reader
//! policies, settings, transactions) is tested in `src/web/terminal/tests`
//! against a real port; these check that the daemon routes a browser to it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{Server, status};

const WAIT: Duration = Duration::from_secs(20);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The port's web listener and name, from `status --json`.
fn http_of(server: &Server) -> (String, String) {
    let ports = status(&server.control);
    let addr = ports[0]["http"]
        .as_str()
        .or(ports[0]["metrics"].as_str())
        .unwrap_or_else(|| panic!("no http address in the status: {ports}"))
        .to_owned();
    (addr, ports[0]["name"].as_str().unwrap().to_owned())
}

/// Opens `/ws/ports/NAME?QUERY` with the page's own Origin, and reads its
/// hello.
async fn open(addr: &str, name: &str, query: &str) -> (Ws, Value) {
    let mut request = format!("ws://{addr}/ws/ports/{name}?{query}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", format!("http://{addr}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = next_text(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    (ws, hello)
}

async fn next_text(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(_))) => {}
            other => panic!("no text message: {other:?}"),
        }
    }
}

/// Reads binary bytes (acknowledging them) until `needle` is in them.
async fn read_until(ws: &mut Ws, got: &mut Vec<u8>, needle: &[u8]) {
    tokio::time::timeout(WAIT, async {
        while !got.windows(needle.len()).any(|w| w == needle) {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    got.extend_from_slice(&b);
                    let ack = serde_json::json!({"type": "ack", "bytes": got.len()});
                    ws.send(Message::Text(ack.to_string().into()))
                        .await
                        .unwrap();
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{needle:?} never came; got {got:?}"));
}

#[tokio::test]
async fn issue23_a_browser_types_into_sim_echo_and_shows_in_status() {
    let server = Server::serve_with_metrics("sim:echo", 115200, &[]);
    let (addr, name) = http_of(&server);
    let (mut ws, hello) = open(&addr, &name, "").await;
    let peer = hello["peer"].as_str().unwrap().to_owned();
    assert!(peer.starts_with("web:127.0.0.1:"), "{hello}");
    ws.send(Message::Binary(b"hello\r".to_vec().into()))
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut ws, &mut got, b"hello\r").await;
    server.wait_status("the web client in status", |p| {
        p["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["peer"] == peer.as_str())
    });
    // Closing the socket frees its place at once.
    ws.close(None).await.unwrap();
    server.wait_status("the web client gone", |p| {
        !p["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["peer"].as_str().unwrap().starts_with("web:"))
    });
}

#[tokio::test]
async fn issue23_a_browser_that_comes_back_resumes_without_gap_or_duplicate() {
    let server = Server::serve_with_metrics("sim:echo", 115200, &[]);
    let (addr, name) = http_of(&server);
    let (mut a, hello) = open(&addr, &name, "").await;
    assert_eq!(hello["history"], 0);
    a.send(Message::Binary(b"one,".to_vec().into()))
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut a, &mut got, b"one,").await;
    let offset = hello["from"].as_u64().unwrap() + got.len() as u64;
    a.close(None).await.unwrap();
    let (mut b, _) = open(&addr, &name, "").await;
    b.send(Message::Binary(b"two,".to_vec().into()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    read_until(&mut b, &mut seen, b"two,").await;
    let (mut back, hello) = open(&addr, &name, &format!("since={offset}")).await;
    assert_eq!(
        (hello["from"].as_u64(), hello["gap"].as_u64()),
        (Some(offset), Some(0))
    );
    let mut resumed = Vec::new();
    read_until(&mut back, &mut resumed, b"two,").await;
    assert_eq!(resumed, b"two,");
}

#[tokio::test]
async fn issue23_a_browsers_typing_reaches_the_device_and_tcp_clients_see_it() {
    // With no users, a loopback browser is rw (ro comes from a login or a
    // certificate: the web listener's own tests).
    let server = Server::serve_with_metrics("sim:echo", 115200, &[]);
    let (addr, name) = http_of(&server);
    let (mut ws, _) = open(&addr, &name, "").await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    ws.send(Message::Binary(b"seen-by-tcp".to_vec().into()))
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 256];
        while !buf.windows(11).any(|w| w == b"seen-by-tcp") {
            let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut chunk)
                .await
                .unwrap();
            assert!(n > 0, "tcp client closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
}
