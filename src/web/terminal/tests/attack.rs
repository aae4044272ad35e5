//! The terminal WebSocket attacked: a read-only viewer tries every control
//! message, odd and hostile messages and ping floods leave the session
//! working, and a message over the limit in fragments closes with 1009.

use serde_json::json;
use tokio_tungstenite::tungstenite::Message as M;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use std::time::Duration;

use super::super::session::Liveness;
use super::harness::{Viewer, start, start_with, wait_hub, web_clients};

#[tokio::test]
async fn a_read_only_viewer_is_refused_every_control_message() {
    let h = start(&["-d", "sim:echo", "-b", "115200", "-l", "tcp:127.0.0.1:0"]).await;
    let mut ro = Viewer::open(&h, "role=ro").await;
    let before = h.hub.line();
    let requests = [
        json!({"type": "set", "id": 1, "baud": 9600, "data_bits": 7, "parity": "even", "stop_bits": "2"}),
        json!({"type": "signal", "id": 2, "dtr": false}),
        json!({"type": "signal", "id": 3, "rts": false}),
        json!({"type": "break", "id": 4, "ms": 100}),
        json!({"type": "lock", "id": 5}),
        json!({"type": "unlock", "id": 6}),
    ];
    for r in &requests {
        ro.text(r.clone()).await;
    }
    for id in 1..=6 {
        let a = ro.answer(id).await;
        assert_eq!(a["ok"], false, "{a}");
        assert!(a["error"].as_str().unwrap().contains("read-only"), "{a}");
    }
    assert_eq!(h.hub.line(), before, "the line settings changed");
    assert!(
        h.hub.status().write_lock.is_none(),
        "a read-only viewer holds the lock"
    );
}

#[tokio::test]
async fn odd_messages_and_a_ping_flood_leave_the_session_working() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut v = Viewer::open(&h, "").await;
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let odd = [
        "".to_owned(),
        "null".to_owned(),
        "\u{0}".to_owned(),
        "{".to_owned(),
        deep,
        r#"{"type":"ack","bytes":-1}"#.to_owned(),
        r#"{"type":"ack","bytes":1e400}"#.to_owned(),
        r#"{"type":"ack","bytes":18446744073709551615}"#.to_owned(),
        r#"{"type":"ack","bytes":"1"}"#.to_owned(),
        r#"{"type":{"a":1},"id":[1,2]}"#.to_owned(),
        r#"{"type":"set","id":10,"baud":-5}"#.to_owned(),
        r#"{"type":"set","id":11,"baud":99999999999}"#.to_owned(),
        r#"{"type":"set","id":12,"parity":"\u0000"}"#.to_owned(),
        r#"{"type":"break","id":13,"ms":99999999999}"#.to_owned(),
        r#"{"type":"signal","id":14}"#.to_owned(),
        r#"{"type":"signal","id":15,"dtr":"yes"}"#.to_owned(),
        r#"{"type":"lock","id":16,"type":"unlock"}"#.to_owned(),
    ];
    for t in &odd {
        v.send(M::Text(t.clone().into())).await;
    }
    for id in 10..=15 {
        assert_eq!(v.answer(id).await["ok"], false, "request {id}");
    }
    for _ in 0..2000 {
        v.send(M::Ping(vec![7u8; 125].into())).await;
    }
    v.send(M::Pong(Vec::new().into())).await;
    v.send(M::Binary(Vec::new().into())).await;
    v.type_bytes(b"alive").await;
    v.until(|v| v.has(b"alive")).await;
    assert!(!v.closed);
}

#[tokio::test]
async fn a_message_over_the_limit_in_fragments_closes_with_1009() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut v = Viewer::open(&h, "").await;
    let piece = vec![b'x'; 16 << 10];
    v.send(M::Frame(Frame::message(
        piece.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    for _ in 0..4 {
        v.send(M::Frame(Frame::message(
            piece.clone(),
            OpCode::Data(Data::Continue),
            false,
        )))
        .await;
    }
    v.until_closed().await;
    assert_eq!(v.close_code, Some(1009));
}

/// A tab that never reads its socket (a TCP zero window: frozen, or a
/// hostile peer) holds no more than its window and the socket buffers, is
/// closed after the silence, and a TCP reader of the flooding port never
/// notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_that_never_reads_is_closed_and_the_port_streams_on() {
    use tokio::io::AsyncReadExt;

    let liveness = Liveness {
        ping_every: Duration::from_millis(200),
        silence: Duration::from_secs(1),
    };
    let h = start_with(
        &["-d", "sim:source", "-b", "1000000", "-l", "tcp:127.0.0.1:0"],
        liveness,
    )
    .await;
    let mut tcp = tokio::net::TcpStream::connect(h.tcp.unwrap())
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0u64;
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        got
    });
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(h.addr).await.unwrap();
    let url = format!("ws://{}/ws/ports/lab1", h.addr);
    let (frozen, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    wait_hub(&h.hub, "the frozen tab to join", |hub| {
        web_clients(hub).len() == 1
    })
    .await;
    wait_hub(&h.hub, "the frozen tab to be closed", |hub| {
        web_clients(hub).is_empty()
    })
    .await;
    let tcp_dropped: u64 = h.hub.status().clients.iter().map(|c| c.dropped).sum();
    assert_eq!(tcp_dropped, 0, "the TCP reader lost bytes");
    drop(frozen);
    h.stop();
    let got = reader.await.unwrap();
    assert!(got > 0, "the TCP reader got nothing");
}
