//! Issue 8: no option value makes serialhub panic. Every numeric setting has
//! a range; a value outside it (zero, negative, huge, overflowing, not a
//! number) is a usage error naming the option, and values at the ends of
//! the ranges are accepted and work.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{Server, read_until, run_to_exit};

/// Command-line values that must be refused, each with the text (the
/// option's name) its error must contain.
const SERVE_REFUSED: &[(&[&str], &str)] = &[
    // The values of issue 8 that panicked, wrapped or were taken unchecked.
    (&["--max-clients=18446744073709551615"], "--max-clients"),
    (&["--max-inflight=500000000000y"], "--max-inflight"),
    (&["--lock-idle=500000000000y"], "--lock-idle"),
    (
        &["--baud=10240", "--max-inflight=33554432s"],
        "--max-inflight",
    ),
    (&["--client-queue=18446744073709551615"], "--client-queue"),
    (&["--baud=0"], "--baud"),
    (&["--baud=49"], "--baud"),
    (&["--baud=20000001"], "--baud"),
    (&["--baud=-1"], "--baud"),
    (&["--baud=99999999999"], "--baud"),
    (&["--baud=fast"], "--baud"),
    (&["--data-bits=4"], "--data-bits"),
    (&["--data-bits=9"], "--data-bits"),
    (&["--data-bits=256"], "--data-bits"),
    (&["--data-bits=-8"], "--data-bits"),
    (&["--stop-bits=0"], "--stop-bits"),
    (&["--stop-bits=3"], "--stop-bits"),
    (&["--stop-bits=one"], "--stop-bits"),
    (&["--client-queue=0"], "--client-queue"),
    (&["--client-queue=4095"], "--client-queue"),
    (&["--client-queue=65MiB"], "--client-queue"),
    (
        &["--client-queue=99999999999999999999999"],
        "--client-queue",
    ),
    (&["--client-queue=-1"], "--client-queue"),
    (&["--client-queue=lots"], "--client-queue"),
    (&["--max-inflight=0s"], "--max-inflight"),
    (&["--max-inflight=9ms"], "--max-inflight"),
    (&["--max-inflight=61min"], "--max-inflight"),
    (&["--max-inflight=1000000000000000000s"], "--max-inflight"),
    (
        &["--max-inflight=99999999999999999999999s"],
        "--max-inflight",
    ),
    (&["--max-inflight=-1s"], "--max-inflight"),
    (&["--max-inflight=soon"], "--max-inflight"),
    (&["--stats-every=1ms"], "--stats-every"),
    (&["--stats-every=2days"], "--stats-every"),
    (&["--stats-every=1000000000000000000s"], "--stats-every"),
    (&["--stats-every=-5s"], "--stats-every"),
    (&["--max-clients=0"], "--max-clients"),
    (&["--max-clients=65537"], "--max-clients"),
    (&["--max-clients=-1"], "--max-clients"),
    (&["--max-clients=1e9"], "--max-clients"),
    (&["--lock-idle=0s"], "--lock-idle"),
    (&["--lock-idle=9ms"], "--lock-idle"),
    (&["--lock-idle=2h"], "--lock-idle"),
    (&["--lock-idle=-1s"], "--lock-idle"),
    (&["--lock-max=0s"], "--lock-max"),
    (&["--lock-max=99ms"], "--lock-max"),
    (&["--lock-max=2days"], "--lock-max"),
    (&["--lock-max=1000000000000000000s"], "--lock-max"),
    (&["--lock-max=forever"], "--lock-max"),
    (&["--drain-timeout=2h"], "--drain-timeout"),
    (&["--drain-timeout=1000000000000000000s"], "--drain-timeout"),
    (&["--drain-timeout=-1s"], "--drain-timeout"),
    (&["--log=LOGDIR", "--log-max-size=0"], "--log-max-size"),
    (&["--log=LOGDIR", "--log-max-size=4095"], "--log-max-size"),
    (&["--log=LOGDIR", "--log-max-size=2TiB"], "--log-max-size"),
    (
        &["--log=LOGDIR", "--log-max-size=18446744073709551615"],
        "--log-max-size",
    ),
    (&["--log=LOGDIR", "--log-max-size=-1"], "--log-max-size"),
    (&["--log=LOGDIR", "--log-keep=0"], "--log-keep"),
    (&["--log=LOGDIR", "--log-keep=1001"], "--log-keep"),
    (
        &["--log=LOGDIR", "--log-keep=18446744073709551615"],
        "--log-keep",
    ),
    (&["--log=LOGDIR", "--log-keep=-1"], "--log-keep"),
    // Endpoint options.
    (&["-l", "tcp:127.0.0.1:0,max-line=0"], "max-line"),
    (&["-l", "tcp:127.0.0.1:0,max-line=65537"], "max-line"),
    (
        &["-l", "tcp:127.0.0.1:0,max-line=18446744073709551615"],
        "max-line",
    ),
    (&["-l", "tcp:127.0.0.1:0,max-line=-1"], "max-line"),
    (&["-l", "tcp:127.0.0.1:0,max-line=long"], "max-line"),
    (&["-l", "tcp:127.0.0.1:0,delimiter=0x100"], "delimiter"),
    (&["-l", "tcp:127.0.0.1:0,delimiter=0x"], "delimiter"),
    (&["-l", "tcp:127.0.0.1:0,delimiter=-0x1"], "delimiter"),
    (&["-l", "tcp:127.0.0.1:0,delimiter=256"], "delimiter"),
    (&["-l", "unix:LOGDIR/s,mode=1000"], "mode"),
    (&["-l", "unix:LOGDIR/s,mode=8"], "mode"),
    (&["-l", "unix:LOGDIR/s,mode=-1"], "mode"),
    (&["-l", "unix:LOGDIR/s,mode=99999999999"], "mode"),
];

/// Asserts that `args` fail as a usage error that names `option`.
fn assert_refused(args: &[String], option: &str) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, err, _) = run_to_exit(&args, Duration::from_secs(30));
    assert!(!status.success(), "{args:?} was accepted:\n{err}");
    assert_eq!(status.signal(), None, "{args:?} died of a signal:\n{err}");
    assert_ne!(status.code(), Some(101), "{args:?} panicked:\n{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    assert!(
        err.contains(option),
        "{args:?}: {option} not named in:\n{err}"
    );
    // Usage errors, like clap's own.
    assert_eq!(status.code(), Some(2), "{args:?}:\n{err}");
}

#[test]
fn issue8_out_of_range_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    for (extra, option) in SERVE_REFUSED {
        let mut args: Vec<String> = ["serve", "-d", "sim:echo", "-l", "tcp:127.0.0.1:0"]
            .map(String::from)
            .into();
        args.extend(extra.iter().map(|a| a.replace("LOGDIR", &dir)));
        assert_refused(&args, option);
    }
    for baud in ["0", "49", "20000001", "-1", "99999999999", "fast"] {
        let link = format!("{dir}/ttySIM");
        let baud = format!("--baud={baud}");
        let args = ["sim", "-m", "echo", "--link", &link, &baud].map(String::from);
        assert_refused(&args, "--baud");
    }
}

/// Sends a line through the echo device and waits for it to come back.
async fn echoes(server: &Server, line: &[u8]) {
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(line).await.unwrap();
    read_until(&mut s, line, Duration::from_secs(60)).await;
}

/// Values at the ends of every range are accepted, and data still flows:
/// in particular the largest in-flight allowance at the lowest baud rates,
/// whose chunk size used to wrap to 0 and drop every client's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_range_ends_are_accepted_and_work() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().display().to_string();
    let cases: &[(u32, &[&str])] = &[
        (50, &["--max-inflight", "1h"]),
        (10_240, &["--max-inflight", "1h"]),
        (
            20_000_000,
            &[
                "--max-inflight=1h",
                "--client-queue=64MiB",
                "--max-clients=65536",
                "--lock-idle=1h",
                "--lock-max=1day",
                "--stats-every=1day",
                "--drain-timeout=1h",
                "--data-bits=8",
                "--stop-bits=2",
                "--log",
                &log,
                "--log-max-size=1TiB",
                "--log-keep=1000",
                "-l",
                "tcp:127.0.0.1:0,framing=line,max-line=64KiB,delimiter=0x0a",
            ],
        ),
        (
            9600,
            &[
                "--max-inflight=10ms",
                "--client-queue=4KiB",
                "--max-clients=1",
                "--lock-idle=10ms",
                "--lock-max=100ms",
                "--stats-every=1s",
                "--drain-timeout=0s",
                "--stop-bits=1",
            ],
        ),
    ];
    for (baud, extra) in cases {
        let server = Server::serve("sim:echo", *baud, extra);
        echoes(&server, b"hi\n").await;
        assert!(!server.log().contains("panicked"), "{}", server.log());
    }
}

/// The longest lock timeouts with two `lock=inband` clients: a far-off
/// expiry used to overflow an Instant and panic a worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_longest_lock_timeouts_work() {
    let server = Server::serve(
        "sim:echo",
        115_200,
        &[
            "--lock-idle=1h",
            "--lock-max=1day",
            "-l",
            "tcp:127.0.0.1:0,lock=inband",
        ],
    );
    let mut a = TcpStream::connect(server.addrs[1]).await.unwrap();
    let mut b = TcpStream::connect(server.addrs[1]).await.unwrap();
    a.write_all(b"\x10La-locked\n").await.unwrap();
    read_until(&mut a, b"a-locked\n", Duration::from_secs(30)).await;
    b.write_all(b"b-waits\n").await.unwrap();
    a.write_all(b"\x10U").await.unwrap();
    read_until(&mut b, b"b-waits\n", Duration::from_secs(30)).await;
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
