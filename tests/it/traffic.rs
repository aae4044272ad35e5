//! Issue #3, the traffic log: `serve --log DIR` records both directions with
//! the writer's identity; `serialhub log` reads it back, filtered, raw or
//! followed; files rotate within their bounds; the port keeps serving when
//! the log cannot keep up or its directory goes away.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serialhub::device::SimMode;
use serialhub::measure::flood;
use serialhub::pattern::Checker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{PtyDevice, Server, eventually, read_until, run_to_exit, sim};

/// Runs `serialhub log ARGS` and returns its stdout, failing on a non-zero
/// exit or any warning.
fn log(args: &[&str]) -> Vec<u8> {
    let (out, err) = log_warning(args);
    assert!(err.is_empty(), "serialhub log {args:?} warned: {err}");
    out
}

/// Runs `serialhub log ARGS`; returns stdout and stderr.
fn log_warning(args: &[&str]) -> (Vec<u8>, String) {
    let out = crate::common::command()
        .arg("log")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run serialhub log");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "serialhub log {args:?}: {err}");
    (out.stdout, err)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    f.sort();
    f
}

fn serve_with_log(device: &str, baud: &str, dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "-d",
        device,
        "-b",
        baud,
        "-l",
        "tcp:127.0.0.1:0",
        "--log",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// `serialhub log --follow --raw rx DIR`, its stdout and stderr piped.
fn follow_rx(dir: &Path) -> std::process::Child {
    crate::common::command()
        .args(["log", "--follow", "--raw", "rx", dir.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(mut server: Server) {
    let status = server.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        server.log()
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Issue #3, done-criterion 1: a unique token appears twice, to the device
/// with the client's identity and back from the device, with microsecond
/// UTC timestamps; and the connect and disconnect are logged around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_echo_token_is_logged_both_ways_with_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_log("sim:echo", "9600", dir.path(), &[]);
    let token = format!("tok-{:08x}", std::process::id() ^ 0x5eed_1234);
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    let name = format!("tcp:{}", client.local_addr().unwrap());
    client
        .write_all(format!("{token}\n").as_bytes())
        .await
        .unwrap();
    read_until(&mut client, token.as_bytes(), Duration::from_secs(10)).await;
    drop(client);
    stop(server);

    let json = String::from_utf8(log(&["--json", dir.path().to_str().unwrap()])).unwrap();
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty());
    let ts_ok = |ts: &str| {
        ts.len() == 27
            && ts.ends_with('Z')
            && ts.as_bytes()[19] == b'.'
            && ts[20..26].bytes().all(|b| b.is_ascii_digit())
    };
    for r in &records {
        let ts = r["ts"].as_str().unwrap();
        assert!(
            ts_ok(ts),
            "timestamp {ts} is not RFC 3339 UTC with microseconds"
        );
    }
    let data = |kind: &str| -> (Vec<u8>, Option<String>) {
        let mut bytes = Vec::new();
        let mut first_ts = None;
        for r in records.iter().filter(|r| r["kind"] == kind) {
            if kind == "tx" {
                assert_eq!(r["client"], name.as_str(), "{r}");
            }
            bytes.extend(unhex(r["hex"].as_str().unwrap()));
            first_ts.get_or_insert_with(|| r["ts"].as_str().unwrap().to_owned());
        }
        (bytes, first_ts)
    };
    let (tx, tx_ts) = data("tx");
    let (rx, rx_ts) = data("rx");
    let line = format!("{token}\n").into_bytes();
    assert_eq!(tx, line, "to the device");
    assert_eq!(rx, line, "back from the device");
    assert!(tx_ts <= rx_ts, "sent at {tx_ts:?}, echoed at {rx_ts:?}");
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for k in [
        "settings",
        "device-open",
        "connect",
        "disconnect",
        "device-close",
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }

    // The text file itself names the client on its tx record.
    let text = std::fs::read_to_string(&files(dir.path())[0]).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(" tx ") && l.ends_with(&format!(" {name}"))),
        "{text}"
    );
    // --client and --tx select the same bytes as the raw view.
    let mine = log(&[
        "--raw",
        "tx",
        "--client",
        &name,
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(mine, line);
    let none = log(&[
        "--raw",
        "tx",
        "--client",
        "#999",
        dir.path().to_str().unwrap(),
    ]);
    assert!(none.is_empty());
}

/// Every byte value, both ways: what `log --raw` gives back is exactly what
/// the client sent and what the device produced.
async fn raw_is_byte_exact(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let device = PtyDevice::new();
    let server = serve_with_log(
        &device.path,
        "115200",
        dir.path(),
        &["--log-format", format],
    );
    let sent: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    client.write_all(&sent).await.unwrap();
    let arrived = eventually(Duration::from_secs(20), || {
        device.received().len() >= sent.len()
    })
    .await;
    assert!(arrived, "device got {} bytes", device.received().len());
    assert!(device.received() == sent, "the device got other bytes");
    let produced: Vec<u8> = (0..=255u8).rev().cycle().take(5000).collect();
    device.send(&produced);
    let mut got = vec![0u8; produced.len()];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got))
        .await
        .expect("device data reaches the client")
        .unwrap();
    drop(client);
    stop(server);

    let d = dir.path().to_str().unwrap();
    assert!(
        log(&["--raw", "tx", d]) == sent,
        "--raw tx differs ({format})"
    );
    assert!(
        log(&["--raw", "rx", d]) == produced,
        "--raw rx differs ({format})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_raw_tx_and_rx_reproduce_the_bytes_text_format() {
    raw_is_byte_exact("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_raw_tx_and_rx_reproduce_the_bytes_json_format() {
    raw_is_byte_exact("json").await;
}

/// Round trip through the binary: printing a text log reproduces its
/// records line for line; converting it to JSON and printing that as text
/// gives the same again; filters agree between the formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_log_round_trips_between_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_log("sim:echo", "115200", dir.path(), &[]);
    let mut a = TcpStream::connect(server.addr()).await.unwrap();
    let mut b = TcpStream::connect(server.addr()).await.unwrap();
    a.write_all(b"from a: \x00\x01\x7f\xff |pipes| and spaces\r\n")
        .await
        .unwrap();
    read_until(&mut a, b"spaces\r\n", Duration::from_secs(5)).await;
    b.write_all(b"from b\n").await.unwrap();
    read_until(&mut b, b"from b\n", Duration::from_secs(5)).await;
    drop((a, b));
    stop(server);

    let file = files(dir.path()).remove(0);
    let file_text = std::fs::read_to_string(&file).unwrap();
    let body: String = file_text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let printed = String::from_utf8(log(&[file.to_str().unwrap()])).unwrap();
    assert!(printed.lines().count() > 10, "{printed}");
    assert_eq!(printed, body, "printing a text log reproduces it");

    let json_file = dir.path().join("copy.jsonl");
    std::fs::write(&json_file, log(&["--json", file.to_str().unwrap()])).unwrap();
    let again = String::from_utf8(log(&[json_file.to_str().unwrap()])).unwrap();
    assert_eq!(again, body, "text -> JSON -> text is lossless");
    for filter in [
        &["--rx"][..],
        &["--tx"],
        &["--client", "#2"],
        &["--raw", "tx"],
    ] {
        let mut t = filter.to_vec();
        t.push(file.to_str().unwrap());
        let mut j = filter.to_vec();
        j.push(json_file.to_str().unwrap());
        assert_eq!(log(&t), log(&j), "{filter:?}");
    }
    assert_eq!(
        log(&["--raw", "tx", "--client", "#2", file.to_str().unwrap()]),
        b"from b\n"
    );
    // Time filters (their edges are unit-tested in logcmd).
    let f = file.to_str().unwrap();
    assert_eq!(log(&["--since", "1h", f]), body.as_bytes());
    assert_eq!(
        log(&["--since", "2000-01-01T00:00:00Z", f]),
        body.as_bytes()
    );
    assert!(log(&["--until", "1h", f]).is_empty());
}

/// Issue #3, rotation: with --log-max-size 64KiB a long run never leaves more
/// than --log-keep files, and no file grows past the limit (a file may pass
/// it only by holding a single record, and no record here is that large).
/// What is kept is the newest data, whole: the retained files together hold
/// an unbroken stretch of the source's counter pattern.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_rotation_keeps_files_and_sizes_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let source = sim(SimMode::Source, 115_200);
    let server = serve_with_log(
        source.path().to_str().unwrap(),
        "115200",
        dir.path(),
        &["--log-max-size", "64KiB", "--log-keep", "3"],
    );
    let mut names = std::collections::BTreeSet::new();
    let (mut max_files, mut max_size) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let now = files(dir.path());
        max_files = max_files.max(now.len());
        for f in &now {
            names.insert(f.clone());
            if let Ok(m) = std::fs::metadata(f) {
                max_size = max_size.max(m.len());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop(server);
    assert!(
        names.len() >= 5,
        "only {} files in 8 s: rotation did not happen",
        names.len()
    );
    assert!(max_files <= 3, "saw {max_files} files at once");
    assert!(max_size <= 64 * 1024, "a file reached {max_size} bytes");
    let kept = files(dir.path());
    assert!(kept.len() <= 3, "{kept:?}");
    let raw = log(&["--raw", "rx", dir.path().to_str().unwrap()]);
    let mut check = Checker::new();
    check.feed(&raw);
    assert_eq!(check.errors, 0, "{:?}", check.first_error);
    assert!(check.records > 1000, "only {} records kept", check.records);
}

/// Issue #3, following: `log --follow DIR --raw rx` streams the live log
/// across several rotations without losing or repeating a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_follow_tails_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let source = sim(SimMode::Source, 115_200);
    let server = serve_with_log(
        source.path().to_str().unwrap(),
        "115200",
        dir.path(),
        &["--log-max-size", "64KiB", "--log-keep", "5"],
    );
    let mut follower = follow_rx(dir.path());
    let mut stderr = follower.stderr.take().unwrap();
    let warnings = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut out = BufReader::new(follower.stdout.take().unwrap());
    let sink = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                return;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let first = files(dir.path())[0].clone();
    // About 5 files' worth (each holds ~13 KB of data in 64 KiB of text).
    let enough = eventually(Duration::from_secs(30), || {
        got.lock().unwrap().len() > 60_000
    })
    .await;
    let _ = follower.kill();
    let _ = follower.wait();
    stop(server);
    let got = got.lock().unwrap().clone();
    assert!(enough, "follow printed only {} bytes", got.len());
    assert!(
        !first.exists() || files(dir.path()).len() > 2,
        "no rotation happened"
    );
    let mut check = Checker::new();
    check.feed(&got);
    assert_eq!(check.errors, 0, "{:?}", check.first_error);
    // Nothing was missed, and it raised no false alarm (issue #8).
    let warnings = warnings.join().unwrap();
    assert!(warnings.is_empty(), "{warnings}");
}

/// Issue #2's flood, with the traffic log on: still near line rate, still
/// bounded in flight, still lossless; and every byte is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_flood_with_log_keeps_rate_and_bound() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sim(SimMode::Sink, 9600);
    let server = serve_with_log(sink.path().to_str().unwrap(), "9600", dir.path(), &[]);
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(2048).unwrap();
    let mut stream = socket.connect(server.addr()).await.unwrap();
    let stats = sink.stats().clone();
    let r = flood(
        &mut stream,
        || stats.rx_bytes.load(Relaxed),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let rate = r.line_bytes as f64 / r.secs;
    let arrived = eventually(Duration::from_secs(30), || {
        stats.rx_bytes.load(Relaxed) == r.written
    })
    .await;
    assert!(
        arrived,
        "device got {} of {}",
        stats.rx_bytes.load(Relaxed),
        r.written
    );
    assert_eq!(stats.errors.load(Relaxed), 0);
    eprintln!(
        "flood with log: {rate:.0} B/s, at most {} bytes in flight",
        r.max_inflight
    );
    // Same margins as the flood test without a log (backpressure.rs).
    assert!(rate > 0.85 * 960.0, "line rate {rate:.0} B/s");
    assert!(
        r.max_inflight <= 1920,
        "in flight peaked at {}",
        r.max_inflight
    );
    drop(stream);
    stop(server);
    let tx = log(&["--raw", "tx", dir.path().to_str().unwrap()]);
    assert_eq!(tx.len() as u64, r.written, "the log holds every byte sent");
    let mut check = Checker::from_start();
    check.feed(&tx);
    assert_eq!(check.errors, 0, "{:?}", check.first_error);
}

/// Issue #3: a log directory that is missing or not a directory stops
/// start-up with a one-line reason naming it.
#[test]
fn issue3_bad_log_dir_fails_start_up_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let cases = [
        (missing.to_str().unwrap(), "does not exist"),
        (file.to_str().unwrap(), "is not a directory"),
    ];
    assert!(!cases.is_empty());
    for (path, why) in cases {
        let (status, err, took) = run_to_exit(
            &[
                "serve",
                "-d",
                "sim:echo",
                "-l",
                "tcp:127.0.0.1:0",
                "--log",
                path,
            ],
            Duration::from_secs(10),
        );
        assert!(!status.success(), "{path}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(err.contains(path) && err.contains(why), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    }
    let (status, err, _) = run_to_exit(
        &["serve", "-d", "sim:echo", "--log-max-size", "1MiB"],
        Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(err.contains("--log"), "{err}");
}

/// Issue #3: the log directory vanishing at run time is logged, the port
/// keeps serving, and once the directory is back the log resumes with a
/// marker counting the records lost in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue3_log_dir_lost_at_run_time_keeps_serving_and_marks_the_gap() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    // The smallest files, so that the writer soon needs a new one.
    let server = serve_with_log("sim:echo", "115200", &dir, &["--log-max-size", "4KiB"]);
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    for i in 0..20 {
        let line =
            format!("while the log is gone {i:02} ........................................\n");
        client.write_all(line.as_bytes()).await.unwrap();
        read_until(&mut client, line.as_bytes(), Duration::from_secs(5)).await;
    }
    assert!(
        server.wait_log("cannot write traffic log", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    std::fs::create_dir(&dir).unwrap();
    client.write_all(b"log is back\n").await.unwrap();
    read_until(&mut client, b"log is back\n", Duration::from_secs(5)).await;
    drop(client);
    stop(server);
    let text = String::from_utf8(log(&[dir.to_str().unwrap()])).unwrap();
    let marker = text
        .lines()
        .find(|l| l.contains(" dropped ") && l.ends_with(" records"))
        .unwrap_or_else(|| panic!("no drop marker in:\n{text}"));
    let n: u64 = marker.split(' ').nth(2).unwrap().parse().unwrap();
    assert!(n >= 10, "{marker}");
    let (raw, warning) = log_warning(&["--raw", "tx", dir.to_str().unwrap()]);
    assert!(contains(&raw, b"log is back\n"));
    assert!(
        warning.contains(&format!("{n} records are missing")),
        "--raw must warn of the gap: {warning}"
    );
}

/// Lines of a server's log that are warnings from the traffic log.
fn traffic_warnings(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("WARN") && l.contains("traffic"))
        .map(str::to_owned)
        .collect()
}

/// Reads from `client` in the background; returns the byte count so far.
fn count_reads(mut client: TcpStream) -> Arc<std::sync::atomic::AtomicU64> {
    let got = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = got.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = client.read(&mut buf).await {
            if n == 0 {
                return;
            }
            sink.fetch_add(n as u64, Relaxed);
        }
    });
    got
}

/// Issue #8: with the log directory deleted under a busy port (a record
/// every few milliseconds, a rotation every few records), the log warns at
/// most once per 10 s, not once per record or rotation, and says how many
/// records were lost; the port keeps serving; and once the directory is back
/// the log resumes with a marker for the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_deleted_log_dir_warns_at_most_once_per_10s() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let source = sim(SimMode::Source, 115_200);
    let server = serve_with_log(
        source.path().to_str().unwrap(),
        "115200",
        &dir,
        &["--log-max-size", "4KiB", "--log-keep", "3"],
    );
    let got = count_reads(TcpStream::connect(server.addr()).await.unwrap());
    let rotated = eventually(Duration::from_secs(20), || {
        std::fs::read_dir(&dir).is_ok_and(|d| d.count() >= 2)
    })
    .await;
    assert!(rotated, "no rotation:\n{}", server.log());
    // serialhub may rotate a new file in while the directory is being
    // emptied (remove_dir_all then fails with ENOTEMPTY): try again.
    let mut removed = std::fs::remove_dir_all(&dir);
    for _ in 0..50 {
        if removed.is_ok() || !dir.exists() {
            break;
        }
        removed = std::fs::remove_dir_all(&dir);
    }
    assert!(
        !dir.exists(),
        "cannot delete the log directory: {removed:?}"
    );
    let deleted = Instant::now();
    let before = got.load(Relaxed);
    // The port serves on: wait until it has passed 20,000 bytes (~1.7 s at
    // 115200 baud, many records, each of which the log failed to write)
    // and the log has warned.
    let served_enough = eventually(Duration::from_secs(8), || {
        got.load(Relaxed) - before >= 20_000 && !traffic_warnings(&server.log()).is_empty()
    })
    .await;
    // Well inside one 10 s period after the deletion (the snapshot is taken
    // after the wait, never earlier, so a loaded machine only shortens what
    // the bound allows).
    let log_then = server.log();
    assert!(deleted.elapsed() < Duration::from_secs(10));
    let served = got.load(Relaxed) - before;
    assert!(
        served_enough,
        "{served} bytes served since the deletion, warnings:\n{}",
        traffic_warnings(&log_then).join("\n")
    );
    let warnings = traffic_warnings(&log_then);
    assert_eq!(
        warnings.len(),
        1,
        "one warning in the first 10 s, not one per record:\n{}",
        warnings.join("\n")
    );
    assert!(
        warnings[0].contains("dropped_since_last_warning="),
        "{}",
        warnings[0]
    );

    std::fs::create_dir(&dir).unwrap();
    let resumed = eventually(Duration::from_secs(20), || {
        std::fs::read_dir(&dir).is_ok_and(|d| d.count() >= 1)
    })
    .await;
    assert!(resumed, "the log did not come back:\n{}", server.log());
    stop(server);
    let text = String::from_utf8(log(&[dir.to_str().unwrap()])).unwrap();
    let n: u64 = text
        .lines()
        .filter(|l| l.contains(" dropped ") && l.ends_with(" records"))
        .filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok())
        .sum();
    assert!(n > 10, "the gap is marked with its size: {n}\n{text}");
}

/// Issue #8: a log that cannot grow (here a file size limit, `ulimit -f`,
/// which fails writes part-way like a full disk) keeps only whole records:
/// every file parses without a damaged line, the losses are marked in the
/// next file, and serialhub survives the limit (SIGXFSZ would kill it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_a_file_size_limit_leaves_only_whole_records() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let source = sim(SimMode::Source, 115_200);
    let d = dir.path().to_str().unwrap();
    let args = [
        "serve",
        "-d",
        source.path().to_str().unwrap(),
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0",
        "--log",
        d,
        // Larger than the limit: the limit, not rotation, ends each file.
        "--log-max-size",
        "64KiB",
        "--log-keep",
        "100",
    ];
    let server = Server::start_with(&args, |cmd| {
        // SAFETY: setrlimit is a plain system call, safe between fork and
        // exec.
        unsafe {
            cmd.pre_exec(|| {
                use nix::sys::resource::{Resource, setrlimit};
                setrlimit(Resource::RLIMIT_FSIZE, LIMIT, LIMIT).map_err(std::io::Error::from)
            });
        }
    });
    let got = count_reads(TcpStream::connect(server.addr()).await.unwrap());
    // Each file takes ~0.4 s of data at 115200 baud.
    let several = eventually(Duration::from_secs(30), || {
        std::fs::read_dir(dir.path()).is_ok_and(|d| d.count() >= 4)
    })
    .await;
    assert!(several, "{}", server.log());
    assert!(got.load(Relaxed) > 0);
    assert!(
        server.wait_log("cannot write traffic log", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    stop(server);
    let files = files(dir.path());
    for f in &files {
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size <= LIMIT, "{} is {size} bytes", f.display());
        assert!(
            std::fs::read(f).unwrap().ends_with(b"\n"),
            "{} ends inside a line",
            f.display()
        );
    }
    // No damaged line anywhere (log() fails on any warning), and the gaps
    // are marked.
    let text = String::from_utf8(log(&[d])).unwrap();
    let markers = text
        .lines()
        .filter(|l| l.contains(" dropped ") && l.ends_with(" records"))
        .count();
    assert!(
        markers >= 2,
        "{markers} drop markers in {} files",
        files.len()
    );
}

/// Runs `serialhub log ARGS` with its heap limited to `limit` bytes
/// (RLIMIT_DATA: an allocation past it fails, and the process aborts);
/// returns whether it succeeded, its stdout and its stderr. A peak-RSS reading
/// would include the test process's own memory, which the child inherits.
fn log_in_limited_memory(args: &[&str], limit: u64) -> (bool, Vec<u8>, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = crate::common::command();
    cmd.arg("log")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is a plain system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            use nix::sys::resource::{Resource, setrlimit};
            setrlimit(Resource::RLIMIT_DATA, limit, limit).map_err(std::io::Error::from)
        });
    }
    let out = cmd.output().expect("run serialhub log");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue #8: `serialhub log` on a large file of garbage streams it: memory
/// stays bounded (a line with no newline is skipped, not buffered), the good
/// records in between are still printed, and stderr shows the first few
/// damaged lines and one count for the file, not a line per damaged line.
#[test]
fn issue8_log_of_garbage_streams_in_bounded_memory_and_sums_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.log");
    let good = [
        "2025-01-02T03:04:05.000001Z connect #1 tcp:127.0.0.1:1\n",
        "2025-01-02T03:04:06.000001Z connect #2 tcp:127.0.0.1:2\n",
        "2025-01-02T03:04:07.000001Z connect #3 tcp:127.0.0.1:3\n",
    ];
    let mut data = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut size = 0;
    let mut put = |bytes: &[u8]| {
        data.write_all(bytes).unwrap();
        size += bytes.len();
        size
    };
    put(good[0].as_bytes());
    // 12 MiB of short lines of noise: about a million damaged lines.
    let mut x: u32 = 0x1234_5678;
    let mut line = [b'\n'; 12];
    while put(&line) < 12 << 20 {
        for b in &mut line[..11] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = b'!' + (x % 90) as u8;
        }
    }
    // A header claiming a record far larger than any, then data lines.
    put(b"2025-01-02T03:04:05.000001Z rx 999999999999\n");
    for _ in 0..1000 {
        put(b"  0000  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|\n");
    }
    put(good[1].as_bytes());
    // 8 MiB without a newline.
    let z = vec![b'z'; 1 << 20];
    for _ in 0..8 {
        put(&z);
    }
    put(b"\n");
    let size = put(good[2].as_bytes());
    data.flush().unwrap();
    drop(data);

    let p = path.to_str().unwrap();
    // Far less than the file; the old reader needed many times the file.
    let limit = 32 << 20;
    let (ok, out, err) = log_in_limited_memory(&[p], limit);
    assert!(
        ok,
        "serialhub log of {size} bytes ran out of {limit} bytes of heap:\n{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() <= 10, "{} lines on stderr:\n{err}", lines.len());
    let summary = lines
        .iter()
        .find(|l| l.contains("damaged lines in") && l.contains(p))
        .unwrap_or_else(|| panic!("no summary in:\n{err}"));
    let n: u64 = summary
        .split_whitespace()
        .find_map(|w| w.replace(',', "").parse().ok())
        .unwrap();
    assert!(n > 500_000, "{summary}");
    // The records around the garbage survive it.
    assert_eq!(String::from_utf8(out).unwrap(), good.concat());
}

/// Issue #8: `log --follow` that cannot keep up with rotation (here: stopped
/// while the log runs through many small files) says on stderr that files
/// were deleted before it could read them, instead of silently skipping
/// their records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_follow_says_when_rotation_deleted_files_it_had_not_read() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().unwrap();
    let source = sim(SimMode::Source, 115_200);
    let server = serve_with_log(
        source.path().to_str().unwrap(),
        "115200",
        dir.path(),
        &["--log-max-size", "4KiB", "--log-keep", "2"],
    );
    let mut follower = follow_rx(dir.path());
    let collect = |mut r: Box<dyn Read + Send>| {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        got
    };
    let out = collect(Box::new(follower.stdout.take().unwrap()));
    let err = collect(Box::new(follower.stderr.take().unwrap()));
    let following = eventually(Duration::from_secs(20), || out.lock().unwrap().len() > 2000).await;
    assert!(following, "follow printed nothing");
    let pid = Pid::from_raw(follower.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    // Each file holds ~900 bytes of data, ~0.1 s at 115200 baud: many
    // files come and go while the follower is stopped.
    let at_stop = files(dir.path());
    let rotated = eventually(Duration::from_secs(30), || {
        let now = files(dir.path());
        // Every file seen at the stop is gone, and more since.
        now.len() == 2 && now.iter().all(|f| !at_stop.contains(f)) && {
            std::thread::sleep(Duration::from_millis(1500));
            true
        }
    })
    .await;
    let printed = out.lock().unwrap().len();
    kill(pid, Signal::SIGCONT).unwrap();
    assert!(rotated, "the log did not rotate");
    // It goes on with what is there now.
    let resumed = eventually(Duration::from_secs(20), || {
        out.lock().unwrap().len() > printed + 2000
    })
    .await;
    assert!(resumed, "follow did not resume");
    let warned = String::from_utf8_lossy(&err.lock().unwrap()).contains("deleted by rotation");
    let _ = follower.kill();
    let _ = follower.wait();
    stop(server);
    let err = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    assert!(warned, "no warning of the missed files: {err:?}");
    // And data was really missed: the pattern has a gap.
    let mut check = Checker::new();
    check.feed(&out.lock().unwrap());
    assert!(
        check.errors > 0,
        "nothing was missed after all: {err}, {} records",
        check.records
    );
}
