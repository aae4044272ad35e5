//! Start-up errors (issue 20): each names what failed and what to do, with
//! the right exit status, and states each fact once.

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::Duration;

use crate::common::run_to_exit;

/// `serialhub -qq ARGS` (errors only), which must fail with `code`: its
/// stderr, checked to say nothing twice.
fn fails(code: i32, args: &[&str]) -> String {
    let mut all = vec!["-qq"];
    all.extend_from_slice(args);
    let (status, err, _) = run_to_exit(&all, Duration::from_secs(10));
    assert_eq!(status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains("serialhub: error: "), "{args:?}: {err}");
    each_fact_once(&err);
    err
}

/// No line of `err` repeats, and no part of it between ": " separators
/// does: an error chain printed twice repeats both.
fn each_fact_once(err: &str) {
    let mut lines = HashSet::new();
    let mut parts = HashSet::new();
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(lines.insert(line), "line repeated in:\n{err}");
        for part in line.split(": ") {
            assert!(parts.insert(part.trim()), "{part:?} repeated in:\n{err}");
        }
    }
}

#[test]
fn issue20_each_fact_once_catches_a_repeated_chain() {
    let repeated =
        "serialhub: error: port a: cannot open device /x: gone: cannot open device /x: gone";
    assert!(std::panic::catch_unwind(|| each_fact_once(repeated)).is_err());
    each_fact_once("serialhub: error: port a: cannot open device /x: gone");
}

#[test]
fn issue20_absent_device_names_it_and_wait_for_device() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("ttyUSB0");
    let device = device.to_str().unwrap();
    let err = fails(
        1,
        &["serve", "--device", device, "--listen", "tcp:127.0.0.1:0"],
    );
    assert!(
        err.contains(&format!("cannot open device {device}")),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(err.contains("--wait-for-device"), "{err}");
}

#[test]
fn issue20_dev_null_is_not_a_serial_port() {
    let err = fails(
        1,
        &[
            "serve",
            "--device",
            "/dev/null",
            "--listen",
            "tcp:127.0.0.1:0",
        ],
    );
    assert!(err.contains("/dev/null"), "{err}");
    assert!(err.contains("not a serial port"), "{err}");
}

#[test]
fn issue20_busy_addresses_are_named_with_their_kind() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    for kind in ["tcp", "rfc2217"] {
        let spec = format!("{kind}:{addr}");
        let err = fails(1, &["serve", "--device", "sim:echo", "--listen", &spec]);
        assert!(err.contains(&format!("cannot listen on {spec}")), "{err}");
        assert!(err.contains("in use"), "{err}");
        assert!(err.contains("choose another port"), "{err}");
    }
}

#[test]
fn issue20_missing_log_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let missing = missing.to_str().unwrap();
    let err = fails(
        1,
        &[
            "serve",
            "--device",
            "sim:echo",
            "--listen",
            "tcp:127.0.0.1:0",
            "--log",
            missing,
        ],
    );
    assert!(
        err.contains(&format!("traffic log directory {missing}")),
        "{err}"
    );
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("create it"), "{err}");
}

#[test]
fn issue20_pty_link_over_a_file_is_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ttyB");
    std::fs::write(&file, "keep me").unwrap();
    let spec = format!("pty:{}", file.display());
    let err = fails(1, &["serve", "--device", "sim:echo", "--listen", &spec]);
    assert!(err.contains(&format!("cannot link {spec}")), "{err}");
    assert!(
        err.contains("is not a symlink; refusing to replace it"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn issue20_bad_metrics_address_is_a_usage_error() {
    let err = fails(
        2,
        &[
            "--metrics",
            "bogus",
            "serve",
            "--device",
            "sim:echo",
            "--listen",
            "tcp:127.0.0.1:0",
        ],
    );
    assert!(err.contains("--metrics \"bogus\""), "{err}");
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[test]
fn issue20_identical_listen_flags_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let unix = format!("unix:{}", dir.path().join("s").display());
    // A busy address: binding it would fail, so only the up-front check
    // gives "given twice" and status 2.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = format!("tcp:{}", taken.local_addr().unwrap());
    for spec in [&unix, &tcp] {
        let err = fails(
            2,
            &[
                "serve", "--device", "sim:echo", "--listen", spec, "--listen", spec,
            ],
        );
        assert!(
            err.contains(&format!("--listen {spec} is given twice")),
            "{err}"
        );
    }
}
