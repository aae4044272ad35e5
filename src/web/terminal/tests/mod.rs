//! The terminal WebSocket end to end: a real port (a `sim` device), the
//! attach channel, the real `serve` on 127.0.0.1:0, tokio-tungstenite as
//! the browser (see `harness`).

mod attack;
mod controls;
mod flow;
mod harness;

use harness::{Viewer, start, wait_hub, web_clients};
use serde_json::json;

#[tokio::test]
async fn typed_keys_echo_through_sim_echo_and_the_hello_says_who() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut v = Viewer::open(&h, "").await;
    assert_eq!(v.hello["port"], "lab1");
    assert_eq!(v.hello["role"], "rw");
    assert!(
        v.hello["peer"]
            .as_str()
            .unwrap()
            .starts_with("web:127.0.0.1:")
    );
    assert!(v.hello["window"].as_u64().unwrap() >= 64 << 10);
    assert_eq!(
        (v.hello["from"].as_u64(), v.hello["history"].as_u64()),
        (Some(0), Some(0))
    );
    v.type_bytes(b"hello\r").await;
    v.until(|v| v.has(b"hello\r")).await;
    let clients = web_clients(&h.hub);
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].id, v.hello["client"].as_u64().unwrap());
    assert_eq!(clients[0].peer, v.hello["peer"].as_str().unwrap());
}

#[tokio::test]
async fn closing_the_socket_frees_the_client_slot() {
    let h = start(&[
        "-d",
        "sim:echo",
        "-l",
        "tcp:127.0.0.1:0",
        "--max-clients",
        "1",
    ])
    .await;
    let v = Viewer::open(&h, "").await;
    assert_eq!(web_clients(&h.hub).len(), 1);
    // The only place is taken: a second viewer is told why.
    let refused = Viewer::open(&h, "").await;
    assert!(refused.closed, "{:?}", refused.hello);
    assert!(
        refused.told[0]["reason"]
            .as_str()
            .unwrap()
            .contains("max-clients")
    );
    v.close().await;
    wait_hub(&h.hub, "the slot to be free", |hub| {
        web_clients(hub).is_empty()
    })
    .await;
    let mut again = Viewer::open(&h, "").await;
    again.type_bytes(b"x").await;
    again.until(|v| v.has(b"x")).await;
}

#[tokio::test]
async fn two_viewers_both_get_what_the_device_says() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut a = Viewer::open(&h, "").await;
    let mut b = Viewer::open(&h, "").await;
    a.type_bytes(b"from-a\r\n").await;
    b.until(|v| v.has(b"from-a\r\n")).await;
    a.until(|v| v.has(b"from-a\r\n")).await;
    // A TCP client of the same port sees it too, and the viewers see its.
    let mut tcp = tokio::net::TcpStream::connect(h.tcp.unwrap())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"from-tcp\r\n")
        .await
        .unwrap();
    a.until(|v| v.has(b"from-tcp\r\n")).await;
    b.until(|v| v.has(b"from-tcp\r\n")).await;
}

#[tokio::test]
async fn read_only_typing_never_reaches_the_device_and_is_counted() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut ro = Viewer::open(&h, "role=ro").await;
    assert_eq!(ro.hello["role"], "ro");
    let mut rw = Viewer::open(&h, "").await;
    ro.type_bytes(b"secret").await;
    wait_hub(&h.hub, "the ro bytes to be discarded", |hub| {
        web_clients(hub).iter().map(|c| c.discarded).sum::<u64>() == 6
    })
    .await;
    // Typed after: once its echo is in, anything before it would be too.
    rw.type_bytes(b"open").await;
    rw.until(|v| v.has(b"open")).await;
    ro.until(|v| v.has(b"open")).await;
    assert!(!rw.has(b"secret") && !ro.has(b"secret"));
    assert_eq!(
        h.hub.status().bytes_to_device,
        4,
        "only the rw bytes went to the device"
    );
    // Its requests are refused, and say why.
    ro.text(json!({"type": "signal", "id": 1, "dtr": false}))
        .await;
    let a = ro.answer(1).await;
    assert_eq!(a["ok"], false);
    assert!(a["error"].as_str().unwrap().contains("read-only"), "{a}");
}

#[tokio::test]
async fn bad_messages_are_answered_and_a_huge_one_closes_with_1009() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut v = Viewer::open(&h, "").await;
    v.text(json!({"type": "fly", "id": 3})).await;
    assert_eq!(v.answer(3).await["ok"], false);
    v.text(json!("not an object")).await;
    v.until(|v| v.told.iter().any(|t| t["id"].is_null() && t["ok"] == false))
        .await;
    // Still open: typing echoes.
    v.type_bytes(b"still").await;
    v.until(|v| v.has(b"still")).await;
    v.type_bytes(&vec![b'x'; (64 << 10) + 1]).await;
    v.until_closed().await;
    assert_eq!(v.close_code, Some(1009));
}

#[tokio::test]
async fn an_unknown_port_is_refused_with_the_reason() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let url = format!("ws://{}/ws/ports/nope", h.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "closed");
    assert!(v["reason"].as_str().unwrap().contains("nope"));
}
