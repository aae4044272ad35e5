//! Unit tests of the hub's policies and write budget, without any I/O.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;

use super::*;

fn hub(policy: SlowReaderPolicy, client_queue: usize, budget: usize) -> (Arc<Hub>, WriteQueue) {
    Hub::new(HubConfig::for_tests(policy, client_queue, budget))
}

fn chunk(n: usize) -> Bytes {
    Bytes::from(vec![b'x'; n])
}

async fn drain(c: &ClientHandle) -> usize {
    let mut total = 0;
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(10), c.next_output()).await {
        total += b.len();
    }
    total
}

#[tokio::test]
async fn every_client_gets_every_chunk_in_order() {
    let (hub, _w) = hub(SlowReaderPolicy::Disconnect, 1024, 64);
    let clients: Vec<_> = (0..3).map(|i| hub.attach(format!("c{i}"))).collect();
    for i in 0..10u8 {
        hub.publish(Bytes::from(vec![i; 3])).await;
    }
    for c in &clients {
        for i in 0..10u8 {
            assert_eq!(c.next_output().await.unwrap(), vec![i; 3]);
        }
    }
    assert_eq!(hub.stats.device_rx.load(Relaxed), 30);
}

#[tokio::test]
async fn disconnect_policy_kicks_only_the_full_client() {
    let (hub, _w) = hub(SlowReaderPolicy::Disconnect, 10, 64);
    let slow = hub.attach("slow");
    let fast = hub.attach("fast");
    for _ in 0..5 {
        hub.publish(chunk(4)).await;
        assert_eq!(drain(&fast).await, 4);
    }
    assert!(slow.kicked().is_cancelled());
    assert!(!fast.kicked().is_cancelled());
    assert_eq!(slow.next_output().await, None, "kicked queue must close");
    // 8 bytes queued and discarded plus the 4 that did not fit; later chunks
    // find the queue closed and are not counted against the client.
    assert_eq!(slow.stats().dropped.load(Relaxed), 12);
    assert_eq!(hub.stats.kicked.load(Relaxed), 1);
}

#[tokio::test]
async fn drop_policy_counts_lost_bytes_and_recovers() {
    let (hub, _w) = hub(SlowReaderPolicy::Drop, 10, 64);
    let slow = hub.attach("slow");
    for _ in 0..5 {
        hub.publish(chunk(4)).await;
    }
    assert!(!slow.kicked().is_cancelled());
    assert_eq!(slow.stats().dropped.load(Relaxed), 12);
    assert_eq!(hub.stats.dropped.load(Relaxed), 12);
    assert_eq!(drain(&slow).await, 8);
    hub.publish(chunk(4)).await;
    assert_eq!(drain(&slow).await, 4, "delivery resumes once there is room");
}

#[tokio::test]
async fn block_policy_waits_for_the_slow_client() {
    let (hub, _w) = hub(SlowReaderPolicy::Block, 8, 64);
    let slow = hub.attach("slow");
    hub.publish(chunk(8)).await;
    let h = hub.clone();
    let publisher = tokio::spawn(async move { h.publish(chunk(8)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!publisher.is_finished(), "publish must wait for room");
    assert_eq!(slow.next_output().await.unwrap().len(), 8);
    publisher.await.unwrap();
    assert_eq!(slow.next_output().await.unwrap().len(), 8);
    assert_eq!(slow.stats().dropped.load(Relaxed), 0);
}

#[tokio::test]
async fn per_client_policy_overrides_default() {
    let (hub, _w) = hub(SlowReaderPolicy::Disconnect, 4, 64);
    let tolerant = hub.attach_with("tolerant", SlowReaderPolicy::Drop);
    hub.publish(chunk(4)).await;
    hub.publish(chunk(4)).await;
    assert!(!tolerant.kicked().is_cancelled());
    assert_eq!(tolerant.stats().dropped.load(Relaxed), 4);
}

#[tokio::test]
async fn detached_client_stops_receiving() {
    let (hub, _w) = hub(SlowReaderPolicy::Disconnect, 64, 64);
    let c = hub.attach("c");
    assert_eq!(hub.client_count(), 1);
    drop(c);
    assert_eq!(hub.client_count(), 0);
    hub.publish(chunk(4)).await;
    assert_eq!(hub.stats.connected.load(Relaxed), 0);
}

#[tokio::test]
async fn write_budget_bounds_bytes_in_flight() {
    let (hub, mut writes) = hub(SlowReaderPolicy::Disconnect, 64, 8);
    let c = hub.attach("writer");
    let p = c.reserve().await.unwrap();
    assert_eq!(p.num_permits(), 4, "a reservation is one write chunk");
    c.submit(Bytes::from_static(b"ab"), p).await.unwrap();
    assert_eq!(hub.writes_in_flight(), 2, "unused permits are returned");
    let p = c.reserve().await.unwrap();
    c.submit(Bytes::from_static(b"cdef"), p).await.unwrap();
    assert_eq!(hub.writes_in_flight(), 6);
    // Two bytes of budget left, less than a write chunk: the next
    // reservation waits for the device.
    let blocked = tokio::time::timeout(Duration::from_millis(20), c.reserve()).await;
    assert!(
        blocked.is_err(),
        "reserve must wait while the budget is spent"
    );

    let mut first = writes.recv().await.unwrap().into_write().unwrap();
    assert_eq!(first.data, "ab");
    first.release(1);
    assert_eq!(hub.writes_in_flight(), 5);
    drop(first);
    assert_eq!(hub.writes_in_flight(), 4);
    let p = tokio::time::timeout(Duration::from_secs(1), c.reserve()).await;
    assert_eq!(p.expect("budget freed").unwrap().num_permits(), 4);
    assert_eq!(c.stats().from_client.load(Relaxed), 6);
}
#[tokio::test]
async fn writes_from_two_clients_arrive_as_whole_chunks_in_order() {
    let (hub, mut writes) = hub(SlowReaderPolicy::Disconnect, 64, 512);
    let a = hub.attach("a");
    let b = hub.attach("b");
    for i in 0..4u8 {
        let p = a.reserve().await.unwrap();
        a.submit(Bytes::from(vec![b'a' + i; 5]), p).await.unwrap();
        let p = b.reserve().await.unwrap();
        b.submit(Bytes::from(vec![b'A' + i; 5]), p).await.unwrap();
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..8 {
        let w = writes.recv().await.unwrap().into_write().unwrap();
        let v = if w.client == a.id() {
            &mut seen_a
        } else {
            &mut seen_b
        };
        v.push(w.data.clone());
    }
    assert_eq!(
        seen_a,
        (0..4u8)
            .map(|i| Bytes::from(vec![b'a' + i; 5]))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        seen_b,
        (0..4u8)
            .map(|i| Bytes::from(vec![b'A' + i; 5]))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn issue10_a_device_back_after_a_loss_counts_as_a_reopen() {
    use status::DeviceState;
    let (hub, _w) = hub(SlowReaderPolicy::Disconnect, 1024, 64);
    let open = || DeviceState::Open {
        tty: "/dev/pts/1".into(),
    };
    hub.set_device_state(open());
    assert_eq!(hub.status().reopens, 0, "the first open is no reopen");
    for _ in 0..2 {
        hub.set_device_state(DeviceState::Reconnecting {
            error: "gone".into(),
        });
        hub.set_device_state(open());
    }
    hub.set_device_state(open()); // already open: no transition
    assert_eq!(hub.status().reopens, 2);
}

fn txn_hub() -> (Arc<Hub>, WriteQueue) {
    Hub::new(HubConfig {
        client_queue: 1024,
        slow_reader: SlowReaderPolicy::Disconnect,
        write_budget: 1024,
        write_chunk: 512,
        max_inflight: Duration::from_secs(1),
        client_queue_fixed: true,
        paced: true,
        lock_idle: Duration::from_secs(60),
        lock_max: Duration::from_secs(600),
        txn: Some(TxnConfig {
            reply_timeout: Duration::from_millis(100),
            reply_gap: Duration::from_millis(10),
            frame_gap: Duration::from_millis(1),
            char_time: Duration::from_micros(100),
            unsolicited: Unsolicited::All,
        }),
        keep_settings: false,
        scrollback: 0,
    })
}

/// Whether the arbiter has written `n` bytes of `c`'s requests towards the
/// device within `wait`.
async fn wrote(c: &ClientHandle, n: u64, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if c.stats().from_client.load(Relaxed) >= n {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn issue10_operator_lock_holds_transactions_until_unlock() {
    let (hub, _writes) = txn_hub();
    let stop = CancellationToken::new();
    let arbiter = tokio::spawn(hub.take_arbiter().unwrap().run(hub.clone(), stop.clone()));
    let a = hub.attach("a");
    assert_eq!(hub.operator_lock(), Ok(true));
    assert_eq!(
        hub.write_lock_holder().as_deref(),
        Some(operator::OPERATOR_NAME)
    );
    a.request(Bytes::from_static(b"held"), ReplyRule::None, None)
        .await
        .unwrap();
    assert!(!wrote(&a, 1, Duration::from_millis(300)).await);
    assert_eq!(hub.operator_unlock(), Ok(operator::Released::Operator));
    assert!(wrote(&a, 4, Duration::from_secs(10)).await);
    assert_eq!(hub.stats.lock_waits.load(Relaxed), 1);
    assert_eq!(
        hub.operator_unlock(),
        Err(operator::OperatorLockError::NotHeld)
    );
    stop.cancel();
    arbiter.await.unwrap();
}

#[tokio::test]
async fn issue10_operator_unlock_ends_a_clients_lock_turn() {
    let (hub, _writes) = txn_hub();
    let stop = CancellationToken::new();
    let arbiter = tokio::spawn(hub.take_arbiter().unwrap().run(hub.clone(), stop.clone()));
    let (a, b) = (hub.attach("a"), hub.attach("b"));
    a.txn_lock(None).await.unwrap();
    assert_eq!(hub.write_lock_holder().as_deref(), Some("a"));
    let held_by = hub.operator_lock().unwrap_err();
    assert_eq!(
        held_by,
        operator::OperatorLockError::HeldBy {
            id: a.id(),
            name: "a".into()
        }
    );
    b.request(Bytes::from_static(b"from-b"), ReplyRule::None, None)
        .await
        .unwrap();
    assert!(!wrote(&b, 1, Duration::from_millis(300)).await);
    assert_eq!(
        hub.operator_unlock(),
        Ok(operator::Released::Client {
            id: a.id(),
            name: "a".into()
        })
    );
    assert!(wrote(&b, 6, Duration::from_secs(10)).await);
    assert_eq!(hub.write_lock_holder(), None);
    stop.cancel();
    arbiter.await.unwrap();
}

/// Issue 12: a paced port's sizes follow the line rate when it changes; an
/// unpaced port's are bytes and stay as they are.
#[tokio::test]
async fn issue12_sizes_follow_a_line_change_only_when_paced() {
    use crate::line::LineSettings;
    let inflight = Duration::from_secs(1);
    for paced in [true, false] {
        let slow = LineSettings::with_baud(9600);
        let fast = LineSettings::with_baud(115_200);
        let at = |line: &LineSettings| Sizes::for_device(line, paced, inflight, None);
        let s = at(&slow);
        let (hub, _writes) = Hub::new(HubConfig {
            client_queue: s.client_queue,
            slow_reader: SlowReaderPolicy::Drop,
            write_budget: s.write_budget,
            write_chunk: s.write_chunk,
            max_inflight: inflight,
            client_queue_fixed: false,
            paced,
            lock_idle: Duration::from_secs(60),
            lock_max: Duration::from_secs(600),
            txn: None,
            keep_settings: false,
            scrollback: 0,
        });
        hub.line_applied(slow);
        hub.line_applied(fast);
        let now = at(&if paced { fast } else { slow });
        assert_eq!(hub.budget.total(), now.write_budget, "paced {paced}");
        assert_eq!(hub.budget.chunk(), now.write_chunk, "paced {paced}");
        assert_eq!(
            hub.client_queue.load(Relaxed),
            now.client_queue,
            "paced {paced}"
        );
        if paced {
            assert!(hub.budget.total() > s.write_budget);
        } else {
            assert_eq!(now, Sizes::unpaced(None));
        }
    }
}

/// Issue 20: a client's bad replies and reset losses reach `status`, per
/// client and summed for the hub, and survive the client's leaving.
#[tokio::test]
async fn issue20_status_carries_bad_replies_and_reset_losses() {
    let (hub, _w) = hub(SlowReaderPolicy::Disconnect, 64, 64);
    let c = hub.attach("c");
    c.count_bad_reply();
    c.count_lost(5);
    let s = hub.status();
    assert_eq!((s.clients[0].bad_replies, s.clients[0].reset_lost), (1, 5));
    drop(c);
    let s = hub.status();
    assert!(s.clients.is_empty());
    assert_eq!((s.bad_replies, s.reset_lost), (1, 5));
}

/// Issue 20: a status written before the drop counters existed still
/// reads, with them at 0.
#[test]
fn issue20_an_older_status_reads_with_the_new_counters_at_zero() {
    let old = serde_json::json!({
        "device_state": {"state": "open", "tty": "/dev/pts/3"},
        "device_since": "2026-01-01T00:00:00Z",
        "bytes_from_device": 1, "bytes_to_device": 2, "dropped": 0,
        "kicked": 0, "refused": 0, "transactions": 0, "timeouts": 0,
        "write_lock": null,
        "clients": [{"id": 1, "peer": "tcp:127.0.0.1:1",
            "connected_since": "2026-01-01T00:00:00Z", "bytes_in": 0,
            "bytes_out": 0, "queued": 0, "dropped": 0, "discarded": 0,
            "transactions": 0, "timeouts": 0}],
    });
    let s: status::HubStatus = serde_json::from_value(old).unwrap();
    assert_eq!(
        (
            s.unsolicited_dropped,
            s.bad_replies,
            s.replies_discarded,
            s.reset_lost
        ),
        (0, 0, 0, 0)
    );
    assert_eq!((s.clients[0].bad_replies, s.clients[0].reset_lost), (0, 0));
}
