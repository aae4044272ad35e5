//! Issue 11, point 7: a program's termios changes on a `pty:` endpoint reach
//! the device, under the endpoint's `control=` policy, in order with its
//! data.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{PtyDevice, Server, device_got, eventually, finish, python, status};

/// A serialhub on a pty device at 9600 baud with a control socket and a
/// JSON traffic log, and a pty endpoint at `tty` (with `options`).
struct Hub {
    server: Server,
    dir: tempfile::TempDir,
    tty: PathBuf,
}

impl Hub {
    fn start(device: &PtyDevice, options: &str, listen: &[&str]) -> Hub {
        Self::start_with(device, options, listen, &[])
    }

    /// As [`start`](Self::start), with `extra` flags for `serve`.
    fn start_with(device: &PtyDevice, options: &str, listen: &[&str], extra: &[&str]) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let tty = dir.path().join("ttyA");
        let sock = dir.path().join("hub.sock");
        let log = dir.path().join("log");
        std::fs::create_dir(&log).unwrap();
        let pty = format!("pty:{}{options}", tty.display());
        let mut args = vec![
            "--control",
            sock.to_str().unwrap(),
            "serve",
            "-d",
            &device.path,
            "-b",
            "9600",
            "--no-pacing",
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "-l",
            &pty,
        ];
        for l in listen {
            args.extend(["-l", l]);
        }
        args.extend_from_slice(extra);
        let server = Server::start(&args);
        Hub { server, dir, tty }
    }

    fn tty(&self) -> &str {
        self.tty.to_str().unwrap()
    }

    fn status(&self) -> serde_json::Value {
        status(&self.dir.path().join("hub.sock"))
    }

    fn line(&self) -> String {
        self.status()[0]["line"].as_str().unwrap().to_owned()
    }

    /// The endpoint address of `kind`, as status tells it.
    fn addr(&self, kind: &str) -> String {
        let prefix = format!("{kind}:");
        self.status()[0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e.as_str().unwrap().strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {kind} endpoint"))
    }

    /// Stops serialhub and returns its traffic log's records.
    fn stop(mut self) -> Vec<serde_json::Value> {
        assert!(self.server.terminate(Duration::from_secs(20)).is_some());
        records(&self.dir.path().join("log"))
    }
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no traffic log in {}", dir.display());
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `settings` records a pty program caused.
fn pty_settings(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["kind"] == "settings")
        .map(|r| r["line"].as_str().unwrap().to_owned())
        .filter(|l| l.contains("pty:"))
        .collect()
}

/// Opens the port at 19200 baud, writes 3000 `B`, sets 38400 baud, writes
/// 2000 `A` and closes, as an unmodified pyserial program does.
const CHANGE_BAUD: &str = r#"
import sys, serial
s = serial.Serial(sys.argv[1], baudrate=19200)
s.write(b"B" * 3000)
s.baudrate = 38400
s.write(b"A" * 2000)
s.close()
print("OK")
"#;

#[tokio::test]
async fn issue11_pyserial_on_a_pty_endpoint_changes_the_device_baud_in_order() {
    let device = PtyDevice::new();
    // The settings stay after the program leaves, to be looked at.
    let hub = Hub::start_with(&device, "", &[], &["--keep-settings"]);
    let (ok, out) = finish(python(CHANGE_BAUD, &[hub.tty()]), Duration::from_secs(30));
    assert!(ok && out.contains("OK"), "{out}");
    let mut sent = vec![b'B'; 3000];
    sent.extend([b'A'; 2000]);
    assert!(
        device_got(&device, &sent, Duration::from_secs(20)).await,
        "device got {} bytes",
        device.received().len()
    );
    assert_eq!(device.received(), sent, "every byte, in order, once");
    assert!(
        eventually(Duration::from_secs(10), || device.baud() == 38400).await,
        "device baud {}; serialhub said:\n{}",
        device.baud(),
        hub.server.log()
    );
    assert_eq!(hub.line(), "38400 8N1");
    // Once per program: what a pty cannot carry.
    assert_eq!(
        hub.server.log().matches("a pty carries no parity").count(),
        1,
        "{}",
        hub.server.log()
    );
    // The traffic log holds the device's queue in order: every `B` went out
    // before the change to 38400; the open set 19200 before it.
    let records = hub.stop();
    let changes = pty_settings(&records);
    // (Both may be seen as one, if the program is quick.)
    assert!(
        changes.last().is_some_and(|c| c.starts_with("38400 "))
            && changes[..changes.len() - 1]
                .iter()
                .all(|c| c.starts_with("19200 ")),
        "{changes:?}"
    );
    let mut before = Vec::new();
    for r in &records {
        match r["kind"].as_str() {
            Some("tx") => {
                let hex = r["hex"].as_str().unwrap();
                before.extend(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()),
                );
            }
            Some("settings") if r["line"].as_str().unwrap().starts_with("38400 ") => break,
            _ => {}
        }
    }
    assert!(
        before.len() >= 3000 && before[..3000].iter().all(|&b| b == b'B'),
        "only {} bytes went to the device before the change",
        before.len()
    );
}

/// Opens `rfc2217://ARGV1` at 19200 baud and holds it until stdin closes.
const RFC2217_OWNER: &str = r#"
import sys, serial
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=19200, timeout=1)
print("OPEN", s.baudrate, flush=True)
sys.stdin.read()
s.close()
"#;

/// Opens the port at `argv[2]` baud, writes a line and closes.
const OPEN_AT: &str = r#"
import sys, serial
s = serial.Serial(sys.argv[1], baudrate=int(sys.argv[2]))
s.write(b"hello\n")
s.close()
print("OK")
"#;

#[tokio::test]
async fn issue11_a_pty_program_cannot_change_what_an_rfc2217_client_owns() {
    let device = PtyDevice::new();
    let hub = Hub::start(&device, "", &["rfc2217:127.0.0.1:0"]);
    let mut owner = Command::new("python3")
        .args(["-c", RFC2217_OWNER, &hub.addr("rfc2217")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(owner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "OPEN 19200");
    assert_eq!(device.baud(), 19200);

    let (ok, out) = finish(
        python(OPEN_AT, &[hub.tty(), "38400"]),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    assert!(device_got(&device, b"hello\n", Duration::from_secs(20)).await);
    assert!(
        hub.server
            .wait_log("settings change not applied", Duration::from_secs(20)),
        "{}",
        hub.server.log()
    );
    assert!(hub.server.log().contains("owns the port's settings"));
    assert_eq!(device.baud(), 19200);
    assert_eq!(hub.line(), "19200 8N1");
    drop(owner.stdin.take());
    let _ = owner.wait();
    assert!(pty_settings(&hub.stop()).is_empty());
}

#[tokio::test]
async fn issue11_control_none_leaves_the_settings_to_the_operator() {
    let device = PtyDevice::new();
    let hub = Hub::start(&device, ",control=none", &[]);
    let (ok, out) = finish(
        python(OPEN_AT, &[hub.tty(), "19200"]),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    assert!(device_got(&device, b"hello\n", Duration::from_secs(20)).await);
    assert!(
        hub.server.wait_log("control=none", Duration::from_secs(20)),
        "{}",
        hub.server.log()
    );
    assert_eq!(device.baud(), 9600);
    assert_eq!(hub.line(), "9600 8N1");
    assert!(pty_settings(&hub.stop()).is_empty());
}

/// Toggles flags that are no line setting (canonical mode, echo, the
/// hang-up speed B0), then, after the device answered, sets 2 stop bits.
const FLAGS_ONLY: &str = r#"
import os, sys, termios
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
t = termios.tcgetattr(fd)
speed = t[5]
t[3] |= termios.ICANON | termios.ECHO
termios.tcsetattr(fd, termios.TCSANOW, t)
t[4] = t[5] = termios.B0
termios.tcsetattr(fd, termios.TCSANOW, t)
t[3] &= ~(termios.ICANON | termios.ECHO)
t[4] = t[5] = speed
termios.tcsetattr(fd, termios.TCSANOW, t)
os.write(fd, b"ping\n")
got = b""
while b"pong" not in got:
    got += os.read(fd, 100)
t[2] |= termios.CSTOPB
termios.tcsetattr(fd, termios.TCSANOW, t)
os.write(fd, b"done\n")
os.close(fd)
print("OK")
"#;

#[tokio::test]
async fn issue11_flags_that_are_no_line_setting_change_nothing() {
    let device = PtyDevice::new();
    let hub = Hub::start_with(&device, "", &[], &["--keep-settings"]);
    let program = python(FLAGS_ONLY, &[hub.tty()]);
    assert!(device_got(&device, b"ping\n", Duration::from_secs(20)).await);
    assert_eq!(hub.line(), "9600 8N1");
    device.send(b"pong");
    let (ok, out) = finish(program, Duration::from_secs(30));
    assert!(ok && out.contains("OK"), "{out}");
    assert!(device_got(&device, b"done\n", Duration::from_secs(20)).await);
    // The stop bits, and nothing else, whatever speed the slave showed.
    assert!(
        eventually(Duration::from_secs(10), || hub.line() == "9600 8N2").await,
        "{}",
        hub.line()
    );
    assert_eq!(device.baud(), 9600);
    assert!(device.cflag() & libc::CSTOPB != 0);
    let changes = pty_settings(&hub.stop());
    assert!(
        changes.len() == 1 && changes[0].starts_with("9600 8N2"),
        "{changes:?}"
    );
}

/// Opens at 19200 baud with RTS/CTS flow control, as minicom does, writes,
/// and exits.
const MINICOM_LIKE: &str = r#"
import sys, serial
s = serial.Serial(sys.argv[1], baudrate=19200, rtscts=True)
s.write(b"mine\n")
s.flush()
s.close()
print("OK")
"#;

/// Issue 19: a program's settings do not outlive it. When the last client
/// that changed the line leaves, the port returns to its configured line,
/// after the bytes queued before; a raw client's bytes then go out at it.
/// With `--keep-settings` the change stays.
#[tokio::test]
async fn issue19_a_programs_settings_end_with_it_unless_kept() {
    for keep in [false, true] {
        let device = PtyDevice::new();
        let extra: &[&str] = if keep { &["--keep-settings"] } else { &[] };
        let hub = Hub::start_with(&device, "", &["tcp:127.0.0.1:0"], extra);
        let program = python(MINICOM_LIKE, &[hub.tty()]);
        assert!(device_got(&device, b"mine\n", Duration::from_secs(20)).await);
        let (ok, out) = finish(program, Duration::from_secs(30));
        assert!(ok && out.contains("OK"), "{out}");
        assert!(
            eventually(Duration::from_secs(10), || {
                hub.status()[0]["settings_changed_by"].is_null() != keep
            })
            .await,
            "keep={keep}: {}",
            hub.status()
        );
        let (baud, rtscts) = if keep { (19200, true) } else { (9600, false) };
        assert!(
            eventually(Duration::from_secs(10), || device.baud() == baud).await,
            "keep={keep}: device at {} baud",
            device.baud()
        );
        assert_eq!(device.cflag() & libc::CRTSCTS != 0, rtscts, "keep={keep}");
        let mut raw = std::net::TcpStream::connect(hub.addr("tcp")).unwrap();
        std::io::Write::write_all(&mut raw, b"raw\n").unwrap();
        assert!(device_got(&device, b"raw\n", Duration::from_secs(20)).await);
        assert_eq!(device.baud(), baud, "keep={keep}: the raw client's bytes");
    }
}
