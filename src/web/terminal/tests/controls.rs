//! Settings, modem lines, break and the write lock from a browser, in
//! order with its typing and under the port's `control=` policy; and
//! transaction mode's replies.

use std::time::Instant;

use serde_json::json;

use super::harness::{Viewer, start};

#[tokio::test]
async fn a_settings_change_applies_after_the_bytes_typed_before_it() {
    let h = start(&["-d", "sim:loopback", "-b", "9600", "-l", "tcp:127.0.0.1:0"]).await;
    let mut v = Viewer::open(&h, "").await;
    // About half a second of line at 9600 baud, then the change at once.
    let typed = vec![b'a'; 480];
    let t0 = Instant::now();
    v.type_bytes(&typed).await;
    v.text(json!({"type": "set", "id": 1, "baud": 19200, "parity": "even", "data_bits": 7}))
        .await;
    let a = v.answer(1).await;
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(
        h.hub.status().bytes_to_device,
        480,
        "every byte typed before the change was on the wire before it applied"
    );
    assert!(t0.elapsed().as_millis() >= 400, "{:?}", t0.elapsed());
    assert_eq!(h.hub.line().unwrap().to_string(), "19200 7E1");
    v.until(|v| v.received.len() >= 480).await;
}

#[tokio::test]
async fn dtr_rts_and_break_are_applied_and_answered() {
    let h = start(&["-d", "sim:loopback", "-l", "tcp:127.0.0.1:0"]).await;
    let mut v = Viewer::open(&h, "").await;
    v.text(json!({"type": "signal", "id": 1, "dtr": false}))
        .await;
    v.text(json!({"type": "signal", "id": 2, "rts": false}))
        .await;
    v.text(json!({"type": "break", "id": 3, "ms": 100})).await;
    for id in 1..=3 {
        let a = v.answer(id).await;
        assert_eq!(a["ok"], true, "{a}");
    }
    let out = h.hub.settings.outputs();
    assert!(!out.dtr && !out.rts && !out.brk, "{out:?}");
    v.text(json!({"type": "signal", "id": 4, "dtr": true}))
        .await;
    assert_eq!(v.answer(4).await["ok"], true);
    assert!(h.hub.settings.outputs().dtr);
}

#[tokio::test]
async fn control_none_refuses_a_browsers_settings() {
    let h = start(&[
        "-d",
        "sim:loopback",
        "-l",
        "rfc2217:127.0.0.1:0,control=none",
    ])
    .await;
    let mut v = Viewer::open(&h, "").await;
    v.text(json!({"type": "set", "id": 1, "baud": 19200})).await;
    let a = v.answer(1).await;
    assert_eq!(a["ok"], false, "{a}");
    assert_ne!(h.hub.line().unwrap().baud, 19200);
}

#[tokio::test]
async fn control_first_gives_the_settings_to_the_first_browser() {
    let h = start(&["-d", "sim:loopback", "-l", "tcp:127.0.0.1:0"]).await;
    let mut a = Viewer::open(&h, "").await;
    let mut b = Viewer::open(&h, "").await;
    a.text(json!({"type": "set", "id": 1, "baud": 19200})).await;
    assert_eq!(a.answer(1).await["ok"], true);
    b.text(json!({"type": "set", "id": 1, "baud": 38400})).await;
    assert_eq!(b.answer(1).await["ok"], false);
    assert_eq!(h.hub.line().unwrap().baud, 19200);
}

#[tokio::test]
async fn the_write_lock_keeps_another_browser_off_until_unlocked() {
    let h = start(&["-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]).await;
    let mut a = Viewer::open(&h, "").await;
    let mut b = Viewer::open(&h, "").await;
    a.text(json!({"type": "lock", "id": 1})).await;
    assert_eq!(a.answer(1).await["ok"], true);
    assert!(h.hub.write_lock_holder().unwrap().starts_with("web:"));
    b.type_bytes(b"waits").await;
    a.type_bytes(b"holder").await;
    a.until(|v| v.has(b"holder")).await;
    assert!(!a.has(b"waits"), "b's bytes wait while a holds the lock");
    a.text(json!({"type": "unlock", "id": 2})).await;
    assert_eq!(a.answer(2).await["ok"], true);
    a.until(|v| v.has(b"waits")).await;
    a.text(json!({"type": "unlock", "id": 3})).await;
    assert_eq!(a.answer(3).await["ok"], false, "not held any more");
}

#[tokio::test]
async fn transaction_mode_replies_to_the_viewer_that_asked() {
    let h = start(&[
        "-d",
        "sim:echo",
        "--writers",
        "transaction",
        "-l",
        "tcp:127.0.0.1:0",
    ])
    .await;
    let mut a = Viewer::open(&h, "").await;
    let mut b = Viewer::open(&h, "").await;
    a.type_bytes(b"question-a").await;
    a.until(|v| v.has(b"question-a")).await;
    b.type_bytes(b"question-b").await;
    b.until(|v| v.has(b"question-b")).await;
    a.type_bytes(b"again-a").await;
    a.until(|v| v.has(b"again-a")).await;
    assert!(!a.has(b"question-b"), "a got b's reply");
    assert!(
        !b.has(b"question-a") && !b.has(b"again-a"),
        "b got a's reply"
    );
}
