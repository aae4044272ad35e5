//! Issue 19 point 7: the traffic log shows a reset sequence. An RFC 2217
//! client (pyserial, as esptool drives it) writes, pulses DTR and RTS,
//! sends a break, writes again and purges; `serialhub log` shows each
//! request with the client, in order with the bytes around it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{PtyDevice, Server, finish, python};

/// esptool's classic reset (DTR off, RTS on, pause, DTR on, RTS off)
/// between two writes, then a break and a purge. Prints its local address,
/// which names it in the log. `argv[2]` and `argv[3]` are serialhub and its
/// control socket, whose status says when the device has had the bytes.
const RESET: &str = r#"
import json, subprocess, sys, time, serial
def wait_written(n):
    end = time.monotonic() + 20
    while True:
        out = subprocess.run([sys.argv[2], "--control", sys.argv[3], "status", "--json"],
                             capture_output=True, check=True).stdout
        if json.loads(out)[0]["bytes_to_device"] >= n:
            return
        if time.monotonic() > end:
            sys.exit("the device did not get %d bytes: %s" % (n, out))
        time.sleep(0.02)
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=115200, timeout=1)
print("LOCAL %s:%d" % s._socket.getsockname()[:2], flush=True)
s.write(b"before-reset")
s.dtr = False
s.rts = True
time.sleep(0.1)
s.dtr = True
s.rts = False
s.send_break(0.1)
s.write(b"after-reset")
# A purge is recorded when the endpoint handles it, not in the device's
# queue: wait until the bytes before it have reached the device.
wait_written(len(b"before-reset") + len(b"after-reset"))
s.reset_input_buffer()
s.close()
print("OK", flush=True)
"#;

/// Runs `serialhub log ARGS`; its stdout, failing on any warning.
fn log(args: &[&str]) -> String {
    let out = crate::common::command()
        .arg("log")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run serialhub log");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "serialhub log {args:?}: {err}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Serves a pty device over RFC 2217 with a traffic log in `format`, runs
/// [`RESET`] through it; returns the client's name as the log has it.
fn run_reset(dir: &Path, format: &str) -> String {
    let device = PtyDevice::new();
    let mut server = Server::listen(
        &device.path,
        115_200,
        &["rfc2217:127.0.0.1:0"],
        &["--log", dir.to_str().unwrap(), "--log-format", format],
    );
    let addr = server.rfc2217[0];
    let control = server.control.to_str().unwrap().to_owned();
    let (ok, out) = finish(
        python(RESET, &[&addr.to_string(), crate::common::BIN, &control]),
        Duration::from_secs(30),
    );
    assert!(ok && out.contains("OK"), "{out}\n{}", server.log());
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", server.log());
    let local = out
        .lines()
        .find_map(|l| l.strip_prefix("LOCAL "))
        .expect("the script's address");
    // The log names the client by id and peer: find its connect record.
    let text = log(&[dir.to_str().unwrap()]);
    text.lines()
        .find_map(|l| {
            let (_, who) = l.split_once(" connect ")?;
            who.ends_with(&format!(":{local}")).then(|| who.to_owned())
        })
        .unwrap_or_else(|| panic!("no connect record for {local}:\n{text}"))
}

/// The header lines of `serialhub log`'s text output without their
/// timestamps, and without the reason a pty gave for refusing a modem line
/// (it has none: the request is recorded all the same).
fn headers(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
        .map(|l| {
            let l = l.split_once(' ').map_or(l, |(_, rest)| rest);
            l.split(" refused: ").next().unwrap_or(l).to_owned()
        })
        .collect()
}

/// The records of `serialhub log --json` from the client's first request
/// for DTR off to its last purge, consecutive `tx` records merged, as
/// `kind detail` strings; every one must name the client `who`.
fn json_sequence(json: &str, who: &str) -> Vec<String> {
    let (id, name) = who.split_once(' ').unwrap();
    let id: u64 = id.trim_start_matches('#').parse().unwrap();
    let mut out: Vec<String> = Vec::new();
    for line in json.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = r["kind"].as_str().unwrap();
        if !matches!(kind, "tx" | "signal" | "purge") {
            continue;
        }
        // The operator's return to the configured lines once the client
        // has left (issue 19), after its sequence.
        if kind == "signal" && r["id"].is_null() {
            continue;
        }
        assert_eq!(
            (r["id"].as_u64(), r["client"].as_str()),
            (Some(id), Some(name)),
            "{r}"
        );
        let item = match kind {
            "tx" => {
                let hex = r["hex"].as_str().unwrap();
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                match out.last_mut() {
                    Some(last) if last.starts_with("tx ") => {
                        last.push_str(&String::from_utf8_lossy(&bytes));
                        continue;
                    }
                    _ => format!("tx {}", String::from_utf8_lossy(&bytes)),
                }
            }
            "signal" => format!(
                "signal {} {}",
                r["signal"].as_str().unwrap(),
                if r["on"].as_bool().unwrap() {
                    "on"
                } else {
                    "off"
                }
            ),
            _ => format!(
                "purge {} discarded={}",
                r["buffers"].as_str().unwrap(),
                r["discarded"]
            ),
        };
        out.push(item);
    }
    out
}

fn check(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let who = run_reset(dir.path(), format);
    let d = dir.path().to_str().unwrap();

    // Text: the requests, one line each with the client, between the
    // client's writes.
    let lines = headers(&log(&[d]));
    let first = lines
        .iter()
        .position(|l| *l == format!("signal dtr off {who}"))
        .unwrap_or_else(|| panic!("no DTR off by {who}:\n{}", lines.join("\n")));
    let expected = [
        format!("signal dtr off {who}"),
        format!("signal rts on {who}"),
        format!("signal dtr on {who}"),
        format!("signal rts off {who}"),
        format!("signal break on {who}"),
        format!("signal break off {who}"),
    ];
    assert_eq!(lines[first..first + 6], expected, "{}", lines.join("\n"));
    assert!(
        lines[..first]
            .last()
            .is_some_and(|l| l.starts_with("tx ") && l.ends_with(&who)),
        "the bytes before the reset come before it:\n{}",
        lines.join("\n")
    );
    let rest = &lines[first + 6..];
    let purge = rest
        .iter()
        .position(|l| *l == format!("purge rx {who} discarded=0"))
        .unwrap_or_else(|| panic!("no purge by {who}:\n{}", lines.join("\n")));
    assert!(
        rest[..purge]
            .iter()
            .all(|l| l.starts_with("tx ") && l.ends_with(&who))
            && purge > 0,
        "the bytes after the reset come between it and the purge:\n{}",
        lines.join("\n")
    );

    // JSON: the same, with the bytes themselves. pyserial's open sets DTR
    // and RTS on and purges both buffers, before the script's own requests.
    let json = log(&["--json", d]);
    let seq = json_sequence(&json, &who);
    assert_eq!(
        seq,
        [
            "signal dtr on",
            "signal rts on",
            "purge rx discarded=0",
            "purge tx discarded=0",
            "tx before-reset",
            "signal dtr off",
            "signal rts on",
            "signal dtr on",
            "signal rts off",
            "signal break on",
            "signal break off",
            "tx after-reset",
            "purge rx discarded=0",
        ],
        "{json}"
    );
    // `--client` keeps the requests: they are the client's records.
    let mine = headers(&log(&["--client", &who[..who.find(' ').unwrap()], d]));
    assert!(mine.contains(&format!("signal break on {who}")), "{mine:?}");
}

#[test]
fn issue19_log_shows_a_reset_sequence_text_format() {
    check("text");
}

#[test]
fn issue19_log_shows_a_reset_sequence_json_format() {
    check("json");
}
