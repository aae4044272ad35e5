//! What anyone who can publish on the broker may send a host: many opens,
//! replayed session ids, odd peer names.

use std::time::Duration;

use super::super::listen::MAX_PENDING;
use super::super::wire::{self, OpenReply};
use super::*;

/// A raw open request, as a forger would send it.
async fn raw_open(client: &async_nats::Client, body: serde_json::Value) -> OpenReply {
    let m = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(
            wire::open_subject(HOST),
            serde_json::to_vec(&body).unwrap().into(),
        ),
    )
    .await
    .expect("answered in time")
    .expect("a reply");
    serde_json::from_slice(&m.payload).expect("an open reply")
}

fn request(session: &str, peer: &str) -> serde_json::Value {
    serde_json::json!({
        "port": "ttyS0", "mode": "raw", "session": session,
        "client": "forger", "peer": peer, "window": 4096,
    })
}

/// The bound on opens being answered is not a bound on live sessions: a
/// host holds more sessions than it answers opens at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_sessions_than_pending_opens_stay_open() {
    let nats = Nats::start();
    let (mut accepted, _stop) = host(connect(&nats.url()).await, 8192, quick());
    let client = connect(&nats.url()).await;
    let mut kept = Vec::new();
    for i in 0..=MAX_PENDING {
        let halves = open_ready(&client, "ttyS0", 8192)
            .await
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
        kept.push((halves, accepted.recv().await.expect("accepted")));
    }
    let ((reader, writer), a) = kept.pop().expect("the last one");
    write_all(&writer, b"ping").await.expect("write");
    let mut buf = [0; 4];
    let mut got = 0;
    while got < 4 {
        a.reader.readable().await.expect("readable");
        got += a.reader.try_read(&mut buf[got..]).unwrap_or(0);
    }
    assert_eq!(&buf, b"ping");
    drop((reader, kept));
}

/// A replayed open (the same session id) is refused and leaves the live
/// session alone; a peer name from the network is cleaned for status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_session_id_is_refused_and_peer_names_are_cleaned() {
    let nats = Nats::start();
    let (mut accepted, _stop) = host(connect(&nats.url()).await, 8192, quick());
    let client = connect(&nats.url()).await;
    // Wait until the host listens.
    drop(open_ready(&client, "ttyS0", 8192).await.expect("open"));
    let _ = accepted.recv().await;
    let first = raw_open(&client, request("sid1", "evil\n\u{1b}[2J")).await;
    assert!(first.ok, "{first:?}");
    let a = accepted.recv().await.expect("accepted");
    assert_eq!(a.peer, "fleet:evil___2J");
    let mut odd = request("sid2", "x");
    odd["port"] = "ttyS0\n\u{1b}[2J".repeat(10_000).into();
    let odd = raw_open(&client, odd).await;
    assert!(!odd.ok, "{odd:?}");
    let why = odd.error.unwrap_or_default();
    assert!(why.starts_with("bad open request: a port name is"), "{why}");
    assert!(why.len() < 100, "{why}");
    let again = raw_open(&client, request("sid1", "x")).await;
    assert!(!again.ok, "{again:?}");
    assert!(
        again
            .error
            .unwrap_or_default()
            .contains("session id in use")
    );
    // The first session still takes its frames.
    let data = super::super::session::frame::Frame::Data {
        offset: 0,
        bytes: bytes::Bytes::from_static(b"hi"),
    };
    client
        .publish(wire::to_host_subject(HOST, "sid1"), data.encode())
        .await
        .expect("publish");
    let mut buf = [0; 2];
    let mut got = 0;
    while got < 2 {
        tokio::time::timeout(Duration::from_secs(10), a.reader.readable())
            .await
            .expect("data in time")
            .expect("readable");
        got += a.reader.try_read(&mut buf[got..]).unwrap_or(0);
    }
    assert_eq!(&buf, b"hi");
}

/// The registry bucket this serialhub makes bounds what anyone may put in
/// it, and so what `fleet ls` reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_bucket_is_bounded() {
    use super::super::records::{BUCKET, MAX_BUCKET, MAX_RECORD, open_or_create};
    let nats = Nats::start_jetstream();
    let js = async_nats::jetstream::new(connect(&nats.url()).await);
    let store = open_or_create(&js).await.expect("bucket");
    let mut stream = js.get_stream(format!("KV_{BUCKET}")).await.expect("stream");
    let config = stream.info().await.expect("info").config.clone();
    assert_eq!(config.max_message_size, MAX_RECORD);
    assert_eq!(config.max_bytes, MAX_BUCKET);
    let big = vec![b'x'; 100 * 1024];
    assert!(store.put("port.a.b", big.into()).await.is_err());
    assert!(store.put("port.a.b", "{}".into()).await.is_ok());
}
