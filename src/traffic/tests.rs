//! Unit tests for the traffic log: formats, parsing back, drop accounting and
//! the writer thread against a temp dir.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use time::macros::datetime;

use super::reader::{self, FileReader, Item, Parser};
use super::text::Palette;
use super::*;
use crate::modem::Signal;

fn client(id: u64, name: &str) -> ClientRef {
    ClientRef {
        id,
        name: Arc::from(name),
    }
}

/// One of every kind, with awkward names and every byte value.
fn sample() -> Vec<Record> {
    let all: Bytes = (0..=255u8).collect::<Vec<u8>>().into();
    let c = client(3, "tcp:127.0.0.1:40522");
    let odd = client(4, "unix:/tmp/a dir/sock\\x\n");
    let events = vec![
        Event::Settings("9600 8N1 flow=none".into()),
        Event::DeviceOpen("/dev/pts/3".into()),
        Event::Connect(c.clone(), None),
        Event::Tx(c.clone(), Bytes::from_static(b"hello-token\r\n")),
        Event::Rx(Bytes::from_static(b"h")),
        Event::Rx(all.slice(..16)),
        Event::Rx(all.slice(..17)),
        Event::Tx(odd.clone(), all.clone()),
        Event::TxnBegin(odd.clone()),
        Event::Reply(odd.clone(), all.slice(..20)),
        Event::TxnEnd {
            client: odd.clone(),
            reply: 20,
        },
        Event::TxnBegin(c.clone()),
        Event::TxnTimeout {
            client: c.clone(),
            partial: 0,
        },
        Event::SlowDrop(c.clone()),
        Event::SlowResume {
            client: c.clone(),
            dropped: 4096,
        },
        Event::SlowKick {
            client: odd.clone(),
            discarded: 12,
        },
        Event::Signal {
            signal: Signal::Dtr,
            on: false,
            client: Some(c.clone()),
            refused: None,
        },
        Event::Signal {
            signal: Signal::Rts,
            on: true,
            client: Some(odd.clone()),
            refused: Some("the device has no modem lines (os error 25)\n\\".into()),
        },
        Event::Signal {
            signal: Signal::Break,
            on: true,
            client: None,
            refused: None,
        },
        Event::Signal {
            signal: Signal::Break,
            on: false,
            client: None,
            refused: Some("refused: twice".into()),
        },
        Event::Purge {
            client: odd.clone(),
            buffers: Buffers::Rx,
            discarded: 12,
        },
        Event::Purge {
            client: c.clone(),
            buffers: Buffers::Tx,
            discarded: 0,
        },
        Event::Purge {
            client: c.clone(),
            buffers: Buffers::Both,
            discarded: 3,
        },
        Event::Disconnect(odd),
        Event::Dropped(7),
        Event::DeviceLost {
            path: "/dev/tty USB0".into(),
            error: "Input/output error (os error 5)\n\\".into(),
        },
        Event::DeviceClose("/dev/pts/3".into()),
        // A TLS client, named by its certificate (issue 21).
        Event::Connect(
            c.clone(),
            Some(super::Certified {
                identity: "cn:alice smith".into(),
                sha256: "ab".repeat(32),
            }),
        ),
        Event::Disconnect(c),
    ];
    let t0 = datetime!(2025-01-02 03:04:05.000001 UTC);
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record {
            ts: t0 + time::Duration::microseconds(i as i64 * 1_000_123),
            event,
        })
        .collect()
}

fn parse_all(s: &str) -> Vec<Item> {
    let mut p = Parser::default();
    let mut out = Vec::new();
    let path = std::path::Path::new("mem");
    for (i, line) in s.lines().enumerate() {
        p.feed(line, path, i as u64 + 1, &mut out);
    }
    p.finish(path, 0, &mut out);
    out
}

fn ok(items: Vec<Item>) -> Vec<Record> {
    items
        .into_iter()
        .map(|i| i.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn text_reads_like_a_hexdump() {
    let recs = sample();
    let mut s = String::new();
    text::encode(&recs[3], &mut s, &Palette::plain());
    text::encode(&recs[6], &mut s, &Palette::plain());
    assert_eq!(
        s,
        "2025-01-02T03:04:08.000370Z tx 13 #3 tcp:127.0.0.1:40522\n\
         \x20 0000  68 65 6c 6c 6f 2d 74 6f  6b 65 6e 0d 0a           |hello-token..|\n\
         2025-01-02T03:04:11.000739Z rx 17\n\
         \x20 0000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|\n\
         \x20 0010  10                                                |.|\n"
    );
}

#[test]
fn text_round_trips_every_kind() {
    let recs = sample();
    let mut s = String::from(text::FILE_HEADER);
    for r in &recs {
        text::encode(r, &mut s, &Palette::plain());
    }
    assert!(s.is_ascii(), "names and errors are escaped");
    assert_eq!(ok(parse_all(&s)), recs);
}

#[test]
fn json_round_trips_every_kind() {
    let recs = sample();
    let mut s = String::new();
    for r in &recs {
        json::encode(r, &mut s);
    }
    assert_eq!(s.lines().count(), recs.len());
    assert!(s.starts_with(
        r#"{"ts":"2025-01-02T03:04:05.000001Z","kind":"settings","line":"9600 8N1 flow=none"}"#
    ));
    assert!(s.contains(
        r#""kind":"tx","len":13,"id":3,"client":"tcp:127.0.0.1:40522","hex":"68656c6c6f2d746f6b656e0d0a"}"#
    ));
    assert_eq!(ok(parse_all(&s)), recs);
}

/// Issue 19: a reset sequence reads as one line per request, with the
/// client, between the bytes around it.
fn reset_sequence() -> Vec<Record> {
    let c = client(3, "rfc2217:127.0.0.1:40522");
    let sig = |signal, on| Event::Signal {
        signal,
        on,
        client: Some(c.clone()),
        refused: None,
    };
    let events = vec![
        Event::Tx(c.clone(), Bytes::from_static(b"hi")),
        sig(Signal::Dtr, false),
        sig(Signal::Rts, true),
        sig(Signal::Dtr, true),
        Event::Signal {
            signal: Signal::Rts,
            on: false,
            client: Some(c.clone()),
            refused: Some("the device has no modem lines (ENOTTY)".into()),
        },
        Event::Purge {
            client: c.clone(),
            buffers: Buffers::Rx,
            discarded: 5,
        },
    ];
    let t0 = datetime!(2025-01-02 03:04:05 UTC);
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record {
            ts: t0 + time::Duration::milliseconds(i as i64 * 100),
            event,
        })
        .collect()
}

#[test]
fn issue19_text_shows_a_reset_sequence() {
    let mut s = String::new();
    for r in reset_sequence() {
        text::encode(&r, &mut s, &Palette::plain());
    }
    assert_eq!(
        s,
        "2025-01-02T03:04:05.000000Z tx 2 #3 rfc2217:127.0.0.1:40522\n\
         \x20 0000  68 69                                             |hi|\n\
         2025-01-02T03:04:05.100000Z signal dtr off #3 rfc2217:127.0.0.1:40522\n\
         2025-01-02T03:04:05.200000Z signal rts on #3 rfc2217:127.0.0.1:40522\n\
         2025-01-02T03:04:05.300000Z signal dtr on #3 rfc2217:127.0.0.1:40522\n\
         2025-01-02T03:04:05.400000Z signal rts off #3 rfc2217:127.0.0.1:40522 \
         refused: the device has no modem lines (ENOTTY)\n\
         2025-01-02T03:04:05.500000Z purge rx #3 rfc2217:127.0.0.1:40522 discarded=5\n"
    );
    assert_eq!(ok(parse_all(&s)), reset_sequence());
}

#[test]
fn issue19_json_shows_a_reset_sequence() {
    let mut s = String::new();
    for r in reset_sequence() {
        json::encode(&r, &mut s);
    }
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines[1],
        r#"{"ts":"2025-01-02T03:04:05.100000Z","kind":"signal","signal":"dtr","on":false,"id":3,"client":"rfc2217:127.0.0.1:40522"}"#
    );
    assert_eq!(
        lines[4],
        r#"{"ts":"2025-01-02T03:04:05.400000Z","kind":"signal","signal":"rts","on":false,"id":3,"client":"rfc2217:127.0.0.1:40522","refused":"the device has no modem lines (ENOTTY)"}"#
    );
    assert_eq!(
        lines[5],
        r#"{"ts":"2025-01-02T03:04:05.500000Z","kind":"purge","buffers":"rx","id":3,"client":"rfc2217:127.0.0.1:40522","discarded":5}"#
    );
    assert_eq!(ok(parse_all(&s)), reset_sequence());
}

/// Files written before issue 19 added `signal` and `purge` read as they
/// always did.
#[test]
fn issue19_logs_from_before_the_new_kinds_still_read() {
    let old = "# serialhub traffic log, text format v1\n\
        2025-01-02T03:04:05.000001Z settings 9600 8N1 flow=none by operator\n\
        2025-01-02T03:04:06.310325Z connect #1 tcp:127.0.0.1:40522\n\
        2025-01-02T03:04:06.310765Z tx 3 #1 tcp:127.0.0.1:40522\n\
        \x20 0000  68 69 0a                                          |hi.|\n\
        {\"ts\":\"2025-01-02T03:04:06.330903Z\",\"kind\":\"rx\",\"len\":3,\"hex\":\"68690a\"}\n\
        {\"ts\":\"2025-01-02T03:04:08.000000Z\",\"kind\":\"dropped\",\"records\":12}\n";
    let kinds: Vec<&str> = ok(parse_all(old))
        .iter()
        .map(|r| text::kind(&r.event))
        .collect();
    assert_eq!(kinds, ["settings", "connect", "tx", "rx", "dropped"]);
}

#[test]
fn issue19_bad_signal_and_purge_lines_are_damage() {
    let bad = [
        "signal dtr maybe #3 a",
        "signal dsr on #3 a",
        "signal dtr on",
        "signal dtr on #x a",
        "signal dtr on #3 a extra",
        "signal dtr on operator extra",
        "purge rx #3 a",
        "purge all #3 a discarded=1",
        "purge rx #3 a dropped=1",
    ];
    for line in bad {
        let items = parse_all(&format!("2025-01-02T03:04:05Z {line}"));
        assert!(
            matches!(&items[..], [Err(e)] if e.why.contains("bad header")),
            "{line}: {items:?}"
        );
    }
    let json_bad = [
        r#"{"ts":"2025-01-02T03:04:05Z","kind":"signal","signal":"dtr","on":true,"id":3}"#,
        r#"{"ts":"2025-01-02T03:04:05Z","kind":"signal","signal":"cts","on":true}"#,
        r#"{"ts":"2025-01-02T03:04:05Z","kind":"purge","buffers":"rx","id":3,"client":"a"}"#,
    ];
    for line in json_bad {
        assert!(
            matches!(&parse_all(line)[..], [Err(_)]),
            "{line} is not a record"
        );
    }
}

#[test]
fn timestamps_have_microseconds_and_accept_any_rfc3339() {
    let mut s = String::new();
    text::format_ts(datetime!(2025-06-30 23:59:59.5 UTC), &mut s);
    assert_eq!(s, "2025-06-30T23:59:59.500000Z");
    assert_eq!(
        text::parse_ts("2025-07-01T01:59:59.5+02:00"),
        Some(datetime!(2025-06-30 23:59:59.5 UTC))
    );
    let r = Record::now(Event::Dropped(1));
    assert_eq!(r.ts.nanosecond() % 1000, 0);
}

/// Issue 21: a TLS client's connect record names its identity and the
/// certificate's fingerprint, in both formats; a record without them (a
/// plain client, or a log from before) reads as before.
#[test]
fn issue21_connect_records_name_the_certificate() {
    let tls = sample()
        .into_iter()
        .find(|r| matches!(&r.event, Event::Connect(_, Some(_))))
        .unwrap();
    let mut s = String::new();
    text::encode(&tls, &mut s, &Palette::plain());
    assert!(
        s.ends_with(&format!(
            " connect #3 tcp:127.0.0.1:40522 identity=cn:alice\\x20smith sha256={}\n",
            "ab".repeat(32)
        )),
        "{s}"
    );
    let mut j = String::new();
    json::encode(&tls, &mut j);
    assert!(
        j.contains(r#""identity":"cn:alice smith","sha256":"abab"#),
        "{j}"
    );
    let old = "2025-01-02T03:04:05.000001Z connect #3 tcp:127.0.0.1:40522\n\
               {\"ts\":\"2025-01-02T03:04:05.000001Z\",\"kind\":\"connect\",\"id\":3,\"client\":\"tcp:127.0.0.1:40522\"}\n";
    for r in ok(parse_all(old)) {
        assert!(matches!(r.event, Event::Connect(_, None)), "{r:?}");
    }
}

#[test]
fn damaged_lines_are_reported_and_skipped() {
    let recs = sample();
    let mut s = String::new();
    text::encode(&recs[7], &mut s, &Palette::plain()); // 256 bytes: 16 lines
    let mut lines: Vec<&str> = s.lines().collect();
    lines.remove(5); // a lost data line: the record is cut short
    let mut damaged = lines.join("\n");
    damaged.push_str("\nnot a record\n  0000  41 |A|\n");
    text::encode(&recs[4], &mut damaged, &Palette::plain());
    damaged.push_str("{\"ts\":\"x\"}\n");
    let items = parse_all(&damaged);
    let errors: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors[0].contains("cut short: 240 of 256"), "{errors:?}");
    assert!(errors[1].contains("bad header"), "{errors:?}");
    assert!(errors[2].contains("outside a record"), "{errors:?}");
    assert!(errors[3].starts_with("mem:"), "{errors:?}");
    let good: Vec<Record> = items.into_iter().filter_map(Result::ok).collect();
    assert_eq!(good, vec![recs[4].clone()]);
}

#[test]
fn overlong_lines_and_lengths_are_damage_not_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.log");
    let mut f = std::fs::File::create(&path).unwrap();
    let recs = sample();
    let mut good = String::new();
    text::encode(&recs[2], &mut good, &Palette::plain());
    // A line three caps long, then a record; a length beyond any record,
    // with data lines after it; then the record again.
    f.write_all(&vec![b'x'; 3 * reader::MAX_LINE]).unwrap();
    f.write_all(b"\n").unwrap();
    f.write_all(good.as_bytes()).unwrap();
    let len = text::MAX_DATA + 1;
    writeln!(f, "2025-01-02T03:04:05.000001Z rx {len}").unwrap();
    writeln!(f, "  0000  41 |A|").unwrap();
    f.write_all(good.as_bytes()).unwrap();
    drop(f);
    let items = FileReader::read_all(&path).unwrap();
    let errors: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains(":1: line longer than"), "{errors:?}");
    assert!(errors[1].contains("larger than any record"), "{errors:?}");
    assert!(errors[2].contains("outside a record"), "{errors:?}");
    let good: Vec<Record> = items.into_iter().filter_map(Result::ok).collect();
    assert_eq!(good, vec![recs[2].clone(), recs[2].clone()]);
}

#[test]
fn a_live_file_is_read_as_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.log");
    let recs = sample();
    let mut s = String::new();
    text::encode(&recs[7], &mut s, &Palette::plain());
    let (a, b) = s.split_at(s.len() / 2 + 3); // mid-line
    std::fs::write(&path, a).unwrap();
    let mut r = FileReader::open(&path).unwrap();
    let mut out = Vec::new();
    while r.read_available(&mut out).unwrap() > 0 {}
    assert!(out.is_empty(), "an incomplete record is held back");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b.as_bytes()).unwrap();
    while r.read_available(&mut out).unwrap() > 0 {}
    assert_eq!(ok(out), vec![recs[7].clone()]);
}

/// A queue nobody drains, to test what the hot path does when it is full.
fn stalled() -> (TrafficLog, mpsc::Receiver<Msg>) {
    let (shared, rx) = Shared::queue();
    (
        TrafficLog {
            shared: Some(shared),
        },
        rx,
    )
}

fn take(rx: &mut mpsc::Receiver<Msg>, log: &TrafficLog) -> Record {
    match rx.try_recv() {
        Ok(Msg::Record(r)) => {
            log.shared.as_ref().unwrap().release(&r);
            r
        }
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn a_full_queue_drops_counts_and_marks_the_gap() {
    let (log, mut rx) = stalled();
    for i in 0..QUEUE_RECORDS + 10 {
        log.record(Event::Settings(format!("{i}")));
    }
    assert_eq!(log.dropped(), 10);
    // The writer catches up by two records...
    take(&mut rx, &log);
    take(&mut rx, &log);
    log.record(Event::Settings("after".into()));
    // ...and the marker sits at the gap, just before the next record.
    for _ in 2..QUEUE_RECORDS {
        take(&mut rx, &log);
    }
    assert_eq!(take(&mut rx, &log).event, Event::Dropped(10));
    assert_eq!(take(&mut rx, &log).event, Event::Settings("after".into()));
    assert!(rx.try_recv().is_err());
    assert_eq!(log.dropped(), 10);
}

#[test]
fn queued_bytes_are_bounded_too() {
    let (log, mut rx) = stalled();
    let chunk = Bytes::from(vec![0u8; 4096]);
    for _ in 0..QUEUE_RECORDS {
        log.record(Event::Rx(chunk.clone()));
    }
    let fit = QUEUE_BYTES / (4096 + RECORD_OVERHEAD);
    assert_eq!(log.dropped(), (QUEUE_RECORDS - fit) as u64);
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, fit);
}

#[test]
fn a_disabled_log_is_a_no_op() {
    let log = TrafficLog::disabled();
    assert!(!log.is_enabled());
    log.record(Event::Rx(Bytes::from_static(b"x")));
    assert_eq!(log.dropped(), 0);
}

fn config(dir: &std::path::Path, format: Format) -> TrafficConfig {
    TrafficConfig {
        dir: dir.to_owned(),
        format,
        max_size: DEFAULT_MAX_SIZE,
        keep: DEFAULT_KEEP,
    }
}

#[tokio::test]
async fn the_writer_writes_what_the_handle_records() {
    for format in [Format::Text, Format::Json] {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = TrafficLog::open(&config(dir.path(), format)).unwrap();
        let events: Vec<Event> = sample().into_iter().map(|r| r.event).collect();
        for e in &events {
            log.record(e.clone());
        }
        assert!(writer.finish(Duration::from_secs(10)).await);
        let files = rotate::log_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert!(
            files[0]
                .to_string_lossy()
                .ends_with(&format!(".{}", format.extension()))
        );
        let got: Vec<Event> = ok(FileReader::read_all(&files[0]).unwrap())
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(got, events, "{format:?}");
        // After close, records are counted as dropped, not lost silently.
        log.record(Event::Rx(Bytes::from_static(b"late")));
        assert_eq!(log.dropped(), 1);
    }
}

#[tokio::test]
async fn records_lost_to_the_disk_are_marked_when_it_recovers() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let mut cfg = config(&dir, Format::Text);
    cfg.max_size = MIN_MAX_SIZE;
    let (log, writer) = TrafficLog::open(&cfg).unwrap();
    let chunk = Bytes::from(vec![b'x'; 1000]); // ~5 KB of text: rotates each time
    log.record(Event::Rx(chunk.clone()));
    // Wait for the writer before pulling the directory away.
    let first = rotate::log_files(&dir).unwrap()[0].clone();
    for _ in 0..200 {
        if std::fs::metadata(&first).map(|m| m.len()).unwrap_or(0) > 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    for _ in 0..3 {
        log.record(Event::Rx(chunk.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..200 {
        if log.dropped() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log.dropped(), 3);
    std::fs::create_dir(&dir).unwrap();
    log.record(Event::Rx(Bytes::from_static(b"back")));
    assert!(writer.finish(Duration::from_secs(10)).await);
    let events: Vec<Event> = rotate::log_files(&dir)
        .unwrap()
        .iter()
        .flat_map(|f| ok(FileReader::read_all(f).unwrap()))
        .map(|r| r.event)
        .collect();
    assert_eq!(
        events,
        vec![Event::Dropped(3), Event::Rx(Bytes::from_static(b"back"))]
    );
}

/// The hub's hooks: connect, device data, slow readers, disconnect; and the
/// name a submitted chunk carries to the device writer.
#[tokio::test]
async fn the_hub_records_clients_data_and_slow_readers() {
    use crate::hub::{Hub, HubConfig, SlowReaderPolicy};
    let dir = tempfile::tempdir().unwrap();
    let (log, writer) = TrafficLog::open(&config(dir.path(), Format::Json)).unwrap();
    let (hub, mut writes) = Hub::with_traffic(
        HubConfig {
            client_queue: 10,
            slow_reader: SlowReaderPolicy::Disconnect,
            write_budget: 64,
            write_chunk: 32,
            max_inflight: std::time::Duration::from_secs(1),
            client_queue_fixed: true,
            paced: true,
            lock_idle: std::time::Duration::from_secs(60),
            lock_max: std::time::Duration::from_secs(600),
            txn: None,
            keep_settings: false,
            scrollback: 0,
        },
        log,
    );
    let lossy = hub.attach_with("tcp:1.1.1.1:1", SlowReaderPolicy::Drop);
    let kicked = hub.attach("tcp:2.2.2.2:2");
    let four = Bytes::from_static(b"abcd");
    for _ in 0..3 {
        hub.publish(four.clone()).await;
    }
    while tokio::time::timeout(Duration::from_millis(10), lossy.next_output())
        .await
        .is_ok_and(|o| o.is_some())
    {}
    hub.publish(four.clone()).await;
    let permit = lossy.reserve().await.unwrap();
    lossy
        .submit(Bytes::from_static(b"hi"), permit)
        .await
        .unwrap();
    let chunk = writes.recv().await.unwrap().into_write().unwrap();
    assert_eq!(&*chunk.client_name, "tcp:1.1.1.1:1");
    drop((lossy, kicked));
    assert!(writer.finish(Duration::from_secs(10)).await);

    let files = rotate::log_files(dir.path()).unwrap();
    let got: Vec<String> = ok(FileReader::read_all(&files[0]).unwrap())
        .iter()
        .map(|r| {
            let who = r.event.client().map(|c| format!(" {}", c.name));
            format!("{}{}", text::kind(&r.event), who.unwrap_or_default())
        })
        .collect();
    let lossy = "tcp:1.1.1.1:1";
    let kicked = "tcp:2.2.2.2:2";
    assert_eq!(
        got,
        [
            format!("connect {lossy}"),
            format!("connect {kicked}"),
            "rx".into(),
            "rx".into(),
            "rx".into(),
            format!("slow-drop {lossy}"),
            format!("slow-kick {kicked}"),
            "rx".into(),
            format!("slow-resume {lossy}"),
            format!("disconnect {lossy}"),
            format!("disconnect {kicked}"),
        ]
    );
}
