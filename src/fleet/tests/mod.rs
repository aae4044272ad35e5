//! The session protocol over a real nats-server: byte streams both ways,
//! credit, a broker killed and restarted mid-stream, a small
//! `max_payload`, and a host that goes away.

mod attack;
mod nats;
mod proxy;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::drive::Timing;
use super::listen::{Accepted, listen_with};
use super::stream::{FleetReader, FleetStats, FleetWriter, OpenError, close, open_with};
use super::wire::Mode;
use crate::endpoint::sink::SocketHalf;
use crate::endpoint::source::ClientSource;
use crate::pattern::{Checker, Generator};
use nats::{Nats, connect};
use proxy::Proxy;

const HOST: &str = "lab1";

fn quick() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(500),
        gone_after: Duration::from_secs(2),
        ..Timing::default()
    }
}

/// A host serving one port, "ttyS0", accepting with `window`.
fn host(
    client: async_nats::Client,
    window: usize,
    timing: Timing,
) -> (mpsc::Receiver<Accepted>, CancellationToken) {
    let (tx, mut rx) = mpsc::channel::<Accepted>(4);
    let (out_tx, out_rx) = mpsc::channel(4);
    let stop = CancellationToken::new();
    tokio::spawn(listen_with(client, HOST.into(), tx, stop.clone(), timing));
    tokio::spawn(async move {
        while let Some(a) = rx.recv().await {
            if a.port == "ttyS0" {
                let _ = a.answer.send(Ok(window));
                let _ = out_tx
                    .send(Accepted {
                        answer: oneshot_sink(),
                        ..a
                    })
                    .await;
            } else {
                let _ = a
                    .answer
                    .send(Err(format!("no port \"{}\" on {HOST}", a.port)));
            }
        }
    });
    (out_rx, stop)
}

/// An answer channel nobody listens to (the test already answered).
fn oneshot_sink() -> tokio::sync::oneshot::Sender<Result<usize, String>> {
    tokio::sync::oneshot::channel().0
}

async fn write_all(w: &FleetWriter, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        std::future::poll_fn(|cx| w.poll_write_ready(cx)).await?;
        match w.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until end of stream, checking the counter pattern.
async fn read_pattern(r: &FleetReader) -> io::Result<Checker> {
    read_counting(r, &AtomicU64::new(0)).await
}

/// [`read_pattern`], adding what it read to `progress`.
async fn read_counting(r: &FleetReader, progress: &AtomicU64) -> io::Result<Checker> {
    let mut check = Checker::from_start();
    let mut buf = vec![0; 8192];
    loop {
        r.readable().await?;
        match r.try_read(&mut buf) {
            Ok(0) => return Ok(check),
            Ok(n) => {
                check.feed(&buf[..n]);
                progress.fetch_add(n as u64, Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn send_pattern(w: &FleetWriter, total: usize) -> io::Result<()> {
    let mut g = Generator::new();
    let mut left = total;
    while left > 0 {
        let chunk = g.take(left.min(7000));
        write_all(w, &chunk).await?;
        left -= chunk.len();
    }
    w.shutdown_write()
}

/// Opens once the host listens (its subscriptions reach the broker a
/// moment after it starts; until then the open finds no responders).
async fn open_ready(
    client: &async_nats::Client,
    port: &str,
    window: usize,
) -> Result<(FleetReader, FleetWriter), OpenError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open_with(client, HOST, port, Mode::Raw, window, quick()).await {
            Err(OpenError::NoHost(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

fn assert_clean(c: &Checker, total: usize) {
    assert_eq!(c.bytes, total as u64, "{:?}", c.first_error);
    assert_eq!(c.errors, 0, "{:?}", c.first_error);
}

/// Pumps `total` bytes both ways through one session, optionally doing
/// something to the broker mid-stream.
async fn both_ways(nats: &mut Nats, total: usize, mid: impl FnOnce(&mut Nats)) -> FleetStats {
    let host_client = connect(&nats.url()).await;
    let client = connect(&nats.url()).await;
    let (mut accepted, _stop) = host(host_client, 64 * 1024, quick());
    let (reader, writer) = open_ready(&client, "ttyS0", 64 * 1024).await.expect("open");
    let a = accepted.recv().await.expect("accepted");
    assert_eq!(a.mode, Mode::Raw);
    assert!(a.peer.starts_with("fleet:"), "{}", a.peer);
    let (hr, hw) = (a.reader, a.writer);
    let progress = Arc::new(AtomicU64::new(0));
    let (p1, p2) = (progress.clone(), progress.clone());
    let tasks = [
        tokio::spawn(async move { (read_counting(&hr, &p1).await, hr) }),
        tokio::spawn(async move { (read_counting(&reader, &p2).await, reader) }),
    ];
    let senders = [
        tokio::spawn(async move { (send_pattern(&hw, total).await, hw) }),
        tokio::spawn(async move { (send_pattern(&writer, total).await, writer) }),
    ];
    // A tenth of the way in, the broker's turn.
    let deadline = Instant::now() + Duration::from_secs(30);
    while progress.load(Relaxed) < (total / 5) as u64 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mid(nats);
    let at = progress.load(Relaxed);
    assert!(
        at < 2 * total as u64,
        "the stream was over before the broker's turn"
    );
    // Streaming again: the goal is 2 s after the broker's return
    // (bench/compare measures it); a loaded test machine gets more.
    let back = Instant::now();
    while progress.load(Relaxed) == at {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "no progress after the broker's turn"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!(
        "streaming again {:?} after the broker's turn",
        back.elapsed()
    );
    for s in senders {
        let (r, _w) = tokio::time::timeout(Duration::from_secs(90), s)
            .await
            .expect("sent in time")
            .expect("task");
        r.expect("send");
    }
    let mut stats = FleetStats::default();
    for t in tasks {
        let (r, reader) = tokio::time::timeout(Duration::from_secs(90), t)
            .await
            .expect("read in time")
            .expect("task");
        assert_clean(&r.expect("read"), total);
        let s = reader.stats();
        stats.session.send.resends += s.session.send.resends;
        stats.session.recv.gaps += s.session.recv.gaps;
        stats.malformed += s.malformed;
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mebibyte_each_way_arrives_intact() {
    let mut nats = Nats::start();
    both_ways(&mut nats, 1 << 20, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_mid_stream_loses_and_duplicates_nothing() {
    let mut nats = Nats::start();
    let stats = both_ways(&mut nats, 4 << 20, |n| {
        n.kill9();
        std::thread::sleep(Duration::from_secs(2));
        n.restart();
    })
    .await;
    assert!(
        stats.session.send.resends > 0,
        "nothing was resent: {stats:?}"
    );
    assert_eq!(stats.malformed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_kib_max_payload_broker_works() {
    let mut nats = Nats::start_with(Some(4096));
    both_ways(&mut nats, 256 * 1024, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_holds_back_a_writer_whose_peer_does_not_read() {
    // Above the floor of two 16 KiB frames.
    const WINDOW: usize = 40_000;
    let nats = Nats::start();
    let (mut accepted, _stop) = host(connect(&nats.url()).await, WINDOW, quick());
    let client = connect(&nats.url()).await;
    let (_reader, writer) = open_ready(&client, "ttyS0", 8192).await.expect("open");
    let a = accepted.recv().await.expect("accepted");
    let mut written = 0;
    let chunk = [7u8; 1000];
    // Writes until the writer has waited a good while with no room.
    loop {
        let ready = tokio::time::timeout(
            Duration::from_secs(1),
            std::future::poll_fn(|cx| writer.poll_write_ready(cx)),
        )
        .await;
        if ready.is_err() {
            break;
        }
        match writer.try_write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        assert!(written <= WINDOW, "{written} bytes written past the window");
    }
    assert_eq!(written, WINDOW);
    assert_eq!(writer.unacked(), WINDOW);
    // All of it reached the host, which holds it for its reader.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.reader.queued() < WINDOW {
        assert!(
            Instant::now() < deadline,
            "only {} bytes arrived",
            a.reader.queued()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The host's reader takes some: the writer may write that much more.
    let mut buf = [0; 3000];
    assert_eq!(a.reader.try_read(&mut buf).expect("read"), 3000);
    tokio::time::timeout(Duration::from_secs(5), write_all(&writer, &[1; 3000]))
        .await
        .expect("room came back")
        .expect("write");
    assert!(writer.unacked() <= WINDOW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_port_is_refused_with_the_hosts_message() {
    let nats = Nats::start();
    let (_accepted, _stop) = host(connect(&nats.url()).await, 8192, quick());
    let client = connect(&nats.url()).await;
    let err = open_ready(&client, "ttyUSB9", 8192)
        .await
        .expect_err("no such port");
    assert!(
        err.to_string().contains("no port \"ttyUSB9\" on lab1"),
        "{err}"
    );
    let err = open_with(&client, "nohost", "ttyS0", Mode::Raw, 8192, quick())
        .await
        .expect_err("no such host");
    assert!(err.to_string().contains("no responders"), "{err}");
}

/// A host and a client with one session open on it.
async fn one_session(
    nats: &Nats,
) -> (
    async_nats::Client,
    CancellationToken,
    Accepted,
    FleetReader,
    FleetWriter,
) {
    let host_client = connect(&nats.url()).await;
    let (mut accepted, stop) = host(host_client.clone(), 8192, quick());
    let client = connect(&nats.url()).await;
    let (reader, writer) = open_ready(&client, "ttyS0", 8192).await.expect("open");
    let a = accepted.recv().await.expect("accepted");
    (host_client, stop, a, reader, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_is_gone_from_the_host_at_once() {
    let nats = Nats::start();
    let (_host_client, _stop, a, reader, writer) = one_session(&nats).await;
    write_all(&writer, b"last words").await.expect("write");
    tokio::time::timeout(Duration::from_secs(10), close(reader, writer))
        .await
        .expect("closed in time");
    let mut buf = [0; 32];
    let mut got = Vec::new();
    // Well before the host's 120 s silence timeout.
    let read = async {
        loop {
            a.reader.readable().await.expect("readable");
            match a.reader.try_read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => break Err(e),
            }
        }
    };
    let end = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the host heard of it at once");
    assert_eq!(got, b"last words");
    assert_eq!(
        end.expect_err("reset").kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_shutting_down_resets_the_clients_session_at_once() {
    let nats = Nats::start();
    let (_host_client, stop, _a, reader, writer) = one_session(&nats).await;
    stop.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), read_pattern(&reader)).await;
    let err = end.expect("reset in time").expect_err("an error");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert!(err.to_string().contains("shutting down"), "{err}");
    let err = writer.try_write(b"x").expect_err("writes fail too");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_vanishes_ends_the_clients_session_within_a_few_pings() {
    let nats = Nats::start();
    let (host_client, _stop, _a, reader, _writer) = one_session(&nats).await;
    // The host's connection goes without a word (no RESET): the client's
    // pings find no responders, and after `gone_after` it gives up.
    host_client.drain().await.expect("drain");
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(20), read_pattern(&reader)).await;
    let err = end
        .expect("the session ended in time")
        .expect_err("ended with an error");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert!(err.to_string().contains("gone"), "{err}");
    assert!(
        started.elapsed() >= quick().gone_after,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_closing_ends_both_readers() {
    let nats = Nats::start();
    let (_host_client, _stop, a, reader, writer) = one_session(&nats).await;
    write_all(&writer, b"hello").await.expect("write");
    writer.shutdown_write().expect("close");
    let err = writer.try_write(b"late").expect_err("closed");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    let mut buf = [0; 16];
    let mut got = Vec::new();
    loop {
        a.reader.readable().await.expect("readable");
        match a.reader.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, b"hello");
    // The host answers and leaves; the client reads the answer, then the
    // session's end.
    write_all(&a.writer, b"bye").await.expect("write");
    drop(a);
    let mut got = Vec::new();
    let end = loop {
        reader.readable().await.expect("readable");
        match reader.try_read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => break Err(e),
        }
    };
    assert_eq!(got, b"bye");
    let err = end.expect_err("the host dropped its halves: a reset after the bytes");
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_loses_the_broker_for_a_while_keeps_its_sessions() {
    // The host is cut off for longer than a few pings but less than
    // `gone_after`: the client hears no responders meanwhile, and the
    // stream resumes with nothing lost or duplicated.
    let timing = Timing {
        gone_after: Duration::from_secs(8),
        ..quick()
    };
    let nats = Nats::start();
    let proxy = Proxy::start(nats.addr()).await;
    let (mut accepted, _stop) = host(connect(&proxy.url()).await, 64 * 1024, timing);
    let client = connect(&nats.url()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (reader, writer) = loop {
        match open_with(&client, HOST, "ttyS0", Mode::Raw, 64 * 1024, timing).await {
            Err(OpenError::NoHost(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other.expect("open"),
        }
    };
    let a = accepted.recv().await.expect("accepted");
    let total = 2 << 20;
    let (hr, hw) = (a.reader, a.writer);
    let progress = Arc::new(AtomicU64::new(0));
    let (p1, p2) = (progress.clone(), progress.clone());
    let reads = [
        tokio::spawn(async move { read_counting(&hr, &p1).await.map(|c| (c, hr.stats())) }),
        tokio::spawn(async move {
            read_counting(&reader, &p2)
                .await
                .map(|c| (c, reader.stats()))
        }),
    ];
    let writes = [
        tokio::spawn(async move { send_pattern(&hw, total).await }),
        tokio::spawn(async move { send_pattern(&writer, total).await }),
    ];
    while progress.load(Relaxed) < (total / 5) as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut();
    // Several pings' worth of no responders.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        progress.load(Relaxed) < 2 * total as u64,
        "over before the cut"
    );
    proxy.restore();
    for w in writes {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("sent in time")
            .expect("task")
            .expect("send");
    }
    let mut resends = 0;
    for r in reads {
        let (check, stats) = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("read in time")
            .expect("task")
            .expect("the session survived");
        assert_clean(&check, total);
        resends += stats.session.send.resends;
    }
    assert!(resends > 0, "nothing was resent");
}
