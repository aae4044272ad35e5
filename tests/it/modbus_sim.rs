//! Issue #9: the Modbus RTU simulator, driven by a real, unmodified Modbus
//! master (minimalmodbus, installed by `scripts/test`), and its framing by
//! inter-frame silence.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serialhub::device::{Sim, SimMode, SimSpec};
use serialhub::line::LineSettings;
use serialhub::proto::modbus::rtu;

use crate::common::{eventually, finish, python, run_to_exit};

/// Polls units 1 to 3 with minimalmodbus and checks every value against the
/// register rule of docs/simulator.md: holding `a` of unit `u` starts at
/// `u * 1000 + a`, input `a` is `(u << 12) ^ a`, addresses 0 to 9999.
const MINIMALMODBUS_MASTER: &str = r#"
import sys, minimalmodbus
path = sys.argv[1]
def unit(u):
    i = minimalmodbus.Instrument(path, u)
    i.serial.baudrate = 19200
    i.serial.timeout = 2
    i.clear_buffers_before_each_transaction = True
    return i
units = {u: unit(u) for u in (1, 2, 3)}
done = 0
for n in range(100):
    u = 1 + n % 3
    a = (n * 97) % 10000
    i = units[u]
    kind = n % 4
    if kind == 0:
        got, want = i.read_register(a), u * 1000 + a
    elif kind == 1:
        got, want = i.read_register(a, functioncode=4), (u << 12) ^ a
    elif kind == 2:
        a = min(a, 10000 - 5)
        got, want = i.read_registers(a, 5), [u * 1000 + a + k for k in range(5)]
    else:
        i.write_register(a, (n * 7919) % 65536, functioncode=6)
        got, want = i.read_register(a), (n * 7919) % 65536
    if got != want:
        sys.exit(f"request {n} to unit {u} at {a}: got {got}, want {want}")
    done += 1
# Writes stay per unit: unit 2 holds its own values.
units[1].write_registers(20, [11, 22, 33])
if units[1].read_registers(19, 5) != [1019, 11, 22, 33, 1023]:
    sys.exit("write_registers did not round-trip")
if units[2].read_register(21) != 2021:
    sys.exit("a write to unit 1 changed unit 2")
try:
    units[3].read_register(10000)
    sys.exit("address 10000 did not raise an exception")
except minimalmodbus.IllegalRequestError:
    pass
print(f"ok {done}")
"#;

/// `serialhub sim --mode modbus` as a separate process, as a real device.
struct SimProcess(Child);

impl SimProcess {
    fn start(link: &Path) -> SimProcess {
        let child = crate::common::command()
            .args([
                "sim",
                "--mode",
                "modbus",
                "--baud",
                "19200",
                "--reply-delay",
                "5ms",
            ])
            .arg("--link")
            .arg(link)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serialhub sim");
        SimProcess(child)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need_minimalmodbus() {
    let ok = Command::new("python3")
        .args(["-c", "import minimalmodbus"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "minimalmodbus is missing: run the tests with scripts/test, which installs it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_minimalmodbus_polls_the_modbus_sim() {
    need_minimalmodbus();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyMB");
    let _sim = SimProcess::start(&link);
    assert!(
        eventually(Duration::from_secs(10), || link.exists()).await,
        "the simulator made no link at {}",
        link.display()
    );
    let master = python(MINIMALMODBUS_MASTER, &[link.to_str().unwrap()]);
    let (ok, out) = tokio::task::spawn_blocking(|| finish(master, Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(ok, "minimalmodbus master failed: {out}");
    assert_eq!(out.trim(), "ok 100");
}

fn request(body: &[u8]) -> Vec<u8> {
    let mut f = body.to_vec();
    rtu::append_crc(&mut f);
    f
}

/// Opens the simulator's tty as a master would, raw at 19200 baud.
fn open(sim: &Sim) -> serial2::SerialPort {
    let mut port = serial2::SerialPort::open(sim.path(), 19200).expect("open sim tty");
    port.set_read_timeout(Duration::from_millis(200)).unwrap();
    port
}

/// Reads what arrives until the line stays quiet for the read timeout or
/// `want` bytes came.
fn read_some(port: &serial2::SerialPort, want: usize, within: Duration) -> Vec<u8> {
    let deadline = std::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want && std::time::Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read sim tty: {e}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_modbus_sim_frames_requests_by_silence() {
    let spec = SimSpec {
        reply_delay: Duration::from_millis(5),
        ..SimMode::Modbus.into()
    };
    let sim = Sim::spawn_spec(spec, &LineSettings::with_baud(19200)).expect("start simulator");
    let stats = sim.stats().clone();
    let port = open(&sim);
    let a = request(&[1, 3, 0, 0, 0, 2]);
    let b = request(&[2, 4, 0, 5, 0, 1]);
    let reply_a = request(&[1, 3, 4, 0x03, 0xE8, 0x03, 0xE9]);
    let reply_b = request(&[2, 4, 2, 0x20, 0x05]);

    // Back to back (one write), as a careless master would: one frame,
    // which fails its CRC and gets no reply.
    port.write_all(&[a.clone(), b.clone()].concat()).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || stats
            .modbus_crc_errors
            .load(Relaxed)
            == 1)
        .await,
        "no CRC error counted for merged requests"
    );
    assert_eq!(stats.modbus_answered.load(Relaxed), 0);

    // The same requests with a silence between them: two replies, and
    // nothing before them (a reply to the merged frame would come first).
    let want = [reply_a, reply_b].concat();
    let len = want.len();
    let (port, got) = tokio::task::spawn_blocking(move || {
        port.write_all(&a).unwrap();
        // Far more than 3.5 character times (1.8 ms at 19200 baud).
        std::thread::sleep(Duration::from_millis(250));
        port.write_all(&b).unwrap();
        let got = read_some(&port, len, Duration::from_secs(10));
        (port, got)
    })
    .await
    .unwrap();
    assert_eq!(got, want, "two requests apart, two replies in order");
    // Counted once the reply is written, which may be after it is read.
    assert!(
        eventually(Duration::from_secs(10), || stats
            .modbus_answered
            .load(Relaxed)
            == 2)
        .await,
        "two replies were not counted"
    );
    assert_eq!(stats.modbus_crc_errors.load(Relaxed), 1);
    assert_eq!(stats.modbus_exceptions.load(Relaxed), 0);

    // Another unit's request gets no reply either, and is counted.
    let c = request(&[7, 3, 0, 0, 0, 1]);
    port.write_all(&c).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || stats
            .modbus_ignored
            .load(Relaxed)
            == 1)
        .await,
        "a request for unit 7 was not counted as ignored"
    );
    // The next request's reply is the first thing to come: unit 7's got
    // none.
    let again = request(&[1, 3, 0, 0, 0, 2]);
    let want = request(&[1, 3, 4, 0x03, 0xE8, 0x03, 0xE9]);
    let len = want.len();
    let got = tokio::task::spawn_blocking(move || {
        port.write_all(&again).unwrap();
        read_some(&port, len, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert_eq!(got, want, "a request for unit 7 got a reply");
    assert!(
        eventually(Duration::from_secs(10), || stats
            .modbus_answered
            .load(Relaxed)
            == 3)
        .await,
        "the third reply was not counted"
    );
}

#[test]
fn issue9_reply_delay_is_checked() {
    let link = "/nonexistent-dir/ttyMB";
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "sim",
                "--mode",
                "echo",
                "--link",
                link,
                "--reply-delay",
                "5ms",
            ],
            "--reply-delay applies only to --mode modbus",
        ),
        (
            &[
                "sim",
                "--mode",
                "modbus",
                "--link",
                link,
                "--reply-delay",
                "1m",
            ],
            "--reply-delay 1m is out of range (0s to 10s)",
        ),
        (
            &["serve", "-d", "sim:modbus,reply-delay=11s"],
            "reply-delay=11s is out of range (0 to 10s)",
        ),
        (
            &["serve", "-d", "sim:sink,reply-delay=1ms"],
            "reply-delay applies only to sim:modbus",
        ),
    ];
    for (args, want) in cases {
        let (status, err, _) = run_to_exit(args, Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
    }
}
