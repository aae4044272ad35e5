//! Flow control to the browser (window, acks, slow-reader policies) and
//! scrollback (history on join, resume by offset).

use std::time::Duration;

use super::super::session::Liveness;
use super::harness::{Viewer, start, start_with, wait_hub, web_clients};

#[tokio::test]
async fn a_viewer_that_joins_gets_the_scrollback_marked_as_history() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut a = Viewer::open(&h, "").await;
    a.type_bytes(b"said before\r\n").await;
    a.until(|v| v.has(b"said before\r\n")).await;
    let b = Viewer::open(&h, "").await;
    assert_eq!(b.hello["from"], 0);
    assert_eq!(b.hello["history"], 13);
    assert_eq!(b.hello["gap"], 0);
    let mut b = b;
    b.until(|v| v.received.len() >= 13).await;
    assert_eq!(&b.received[..13], b"said before\r\n");
}

#[tokio::test]
async fn resuming_by_offset_has_no_gap_and_no_duplicate() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut a = Viewer::open(&h, "").await;
    let mut other = Viewer::open(&h, "").await;
    a.type_bytes(b"one,").await;
    a.until(|v| v.has(b"one,")).await;
    let offset = a.offset();
    assert_eq!(offset, 4);
    a.close().await;
    // Said while it was away.
    other.type_bytes(b"two,").await;
    other.until(|v| v.has(b"two,")).await;
    let mut back = Viewer::open(&h, &format!("since={offset}")).await;
    assert_eq!(back.hello["from"], 4);
    assert_eq!(back.hello["history"], 4);
    assert_eq!(back.hello["gap"], 0);
    other.type_bytes(b"three").await;
    back.until(|v| v.has(b"three")).await;
    assert_eq!(&back.received[..], b"two,three");
    // Asking for what is no longer kept says how much is missing.
    let h2 = start(&[
        "-d",
        "sim:echo",
        "--scrollback",
        "4",
        "-l",
        "tcp:127.0.0.1:0",
    ])
    .await;
    let mut c = Viewer::open(&h2, "").await;
    c.type_bytes(b"0123456789").await;
    c.until(|v| v.has(b"0123456789")).await;
    let d = Viewer::open(&h2, "since=2").await;
    assert_eq!(
        (d.hello["from"].as_u64(), d.hello["gap"].as_u64()),
        (Some(6), Some(4))
    );
}

/// A viewer that stops acknowledging holds at most its window; under
/// `drop` it is told how much it lost once it acknowledges again, while
/// another viewer keeps up and loses nothing.
#[tokio::test]
async fn a_stalled_viewer_holds_a_window_then_is_told_what_it_dropped() {
    let h = start(&[
        "-d",
        "sim:source",
        "-b",
        "1000000",
        "--slow-reader",
        "drop",
        "-l",
        "tcp:127.0.0.1:0",
    ])
    .await;
    let mut stalled = Viewer::open(&h, "").await;
    stalled.acking = false;
    let mut keeping = Viewer::open(&h, "").await;
    let window = stalled.hello["window"].as_u64().unwrap() as usize;
    let id = stalled.hello["client"].as_u64().unwrap();
    let stalled_dropped = |hub: &crate::hub::Hub| {
        web_clients(hub)
            .iter()
            .find(|c| c.id == id)
            .map_or(0, |c| c.dropped)
    };
    // Read what the stalled one is sent while the other keeps up.
    loop {
        tokio::select! {
            () = stalled.step() => {}
            () = keeping.step() => {}
        }
        assert!(stalled.received.len() <= window, "over the window");
        if stalled_dropped(&h.hub) > 0 && stalled.received.len() == window {
            break;
        }
    }
    let before = keeping.received.len();
    keeping.until(|v| v.received.len() > before + window).await;
    let keeping_id = keeping.hello["client"].as_u64().unwrap();
    let kept = web_clients(&h.hub)
        .into_iter()
        .find(|c| c.id == keeping_id)
        .unwrap();
    assert_eq!(kept.dropped, 0, "the viewer that keeps up loses nothing");
    let mut checker = crate::pattern::Checker::new();
    checker.feed(&keeping.received);
    assert_eq!(checker.errors, 0, "{:?}", checker.first_error);
    assert!(checker.records > 0);
    // Acknowledged again: it is told what it lost, then gets data.
    stalled.acking = true;
    stalled.ack().await;
    stalled
        .until(|v| v.told.iter().any(|t| t["type"] == "dropped"))
        .await;
    let d = stalled
        .told
        .iter()
        .find(|t| t["type"] == "dropped")
        .unwrap()
        .clone();
    assert!(d["bytes"].as_u64().unwrap() > 0, "{d}");
    assert!(d["total"].as_u64().unwrap() >= d["bytes"].as_u64().unwrap());
    let at = stalled.received.len();
    stalled.until(|v| v.received.len() > at).await;
}

/// Under `disconnect`, the stalled viewer is closed with the reason, and
/// its slot freed; the other keeps going.
#[tokio::test]
async fn a_stalled_viewer_is_disconnected_with_the_reason() {
    let h = start(&[
        "-d",
        "sim:source",
        "-b",
        "1000000",
        "--slow-reader",
        "disconnect",
        "-l",
        "tcp:127.0.0.1:0",
    ])
    .await;
    let mut stalled = Viewer::open(&h, "").await;
    stalled.acking = false;
    let mut keeping = Viewer::open(&h, "").await;
    let window = stalled.hello["window"].as_u64().unwrap() as usize;
    while !stalled.closed {
        tokio::select! {
            () = stalled.step() => {}
            () = keeping.step() => {}
        }
        assert!(stalled.received.len() <= window, "over the window");
    }
    let closed = stalled.told.iter().find(|t| t["type"] == "closed").unwrap();
    assert!(
        closed["reason"].as_str().unwrap().contains("slow reader"),
        "{closed}"
    );
    wait_hub(&h.hub, "one web client left", |hub| {
        web_clients(hub).len() == 1
    })
    .await;
    let before = keeping.received.len();
    keeping.until(|v| v.received.len() > before + window).await;
    assert!(!keeping.closed);
}

/// A browser that answers no ping (killed, or its network gone) is closed
/// after the silence, and its client slot freed.
#[tokio::test]
async fn a_silent_browser_is_closed_and_its_slot_freed() {
    let liveness = Liveness {
        ping_every: Duration::from_millis(100),
        silence: Duration::from_millis(500),
    };
    let h = start_with(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"], liveness).await;
    // It reads nothing, so it answers no ping.
    let mut v = Viewer::open(&h, "").await;
    wait_hub(&h.hub, "the silent viewer to be gone", |hub| {
        web_clients(hub).is_empty()
    })
    .await;
    // Its connection is gone (tungstenite, reading now, answers the pings
    // it finds and may meet the closed socket before the `closed` text).
    v.until_closed().await;
    if let Some(closed) = v.told.iter().find(|t| t["type"] == "closed") {
        assert!(
            closed["reason"].as_str().unwrap().contains("no answer"),
            "{closed}"
        );
    }
    // One that reads (and so answers pings) stays.
    let mut alive = Viewer::open(&h, "").await;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        let _ = tokio::time::timeout(Duration::from_millis(100), alive.step()).await;
    }
    assert!(!alive.closed);
    assert_eq!(web_clients(&h.hub).len(), 1);
}

#[tokio::test]
async fn a_stopping_port_tells_its_viewers_why() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut v = Viewer::open(&h, "").await;
    h.stop();
    v.until_closed().await;
    let closed = v.told.iter().find(|t| t["type"] == "closed").unwrap();
    assert_eq!(closed["reason"], "the port stopped");
}
