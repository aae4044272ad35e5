//! Issue 11: the `rfc2217:` endpoint, driven by pyserial's real
//! `rfc2217://` client and by hand-written Telnet bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::common::{PtyDevice, Server, device_got, eventually, finish, python, status};

/// `HOST:PORT` of the server's first `rfc2217:` endpoint.
fn rfc2217(server: &Server) -> String {
    server.rfc2217[0].to_string()
}

/// Stops serialhub as SIGTERM does, so its traffic log is complete.
fn stop(mut server: Server) {
    assert!(server.terminate(Duration::from_secs(10)).is_some());
}

/// Opens `rfc2217://ADDR` at 19200 baud, checks data both ways (all 256
/// byte values), sets 2 stop bits and toggles DTR/RTS; prints "OK".
const OPEN_AND_TALK: &str = r#"
import sys, serial
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=19200, timeout=5)
assert s.baudrate == 19200
data = bytes(range(256)) * 2
s.write(data)
print("WROTE", flush=True)
got = b""
while len(got) < len(data):
    chunk = s.read(len(data) - len(got))
    if not chunk:
        sys.exit("timed out reading: got %d bytes" % len(got))
    got += chunk
assert got == data, "device data differs"
s.stopbits = 2
s.dtr = False; s.rts = False; s.dtr = True; s.rts = True
print("OK", flush=True)
s.close()
"#;

#[tokio::test]
async fn issue11_pyserial_sets_baud_and_stop_bits_on_a_pty_device() {
    let device = PtyDevice::new();
    let hub = Server::listen(
        &device.path,
        9600,
        &["rfc2217:127.0.0.1:0"],
        &["--no-pacing"],
    );
    let client = python(OPEN_AND_TALK, &[&rfc2217(&hub)]);
    // The device echoes what it gets, as a loopback would.
    let data: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    assert!(
        device_got(&device, &data, Duration::from_secs(15)).await,
        "device got {:?}",
        device.received().len()
    );
    device.send(&data);
    let (ok, out) = finish(client, Duration::from_secs(30));
    assert!(ok && out.contains("OK"), "{out}");
    assert_eq!(device.baud(), 19200);
    assert!(
        device.cflag() & libc::CSTOPB != 0,
        "2 stop bits were not set"
    );
    assert_eq!(status(&hub.control)[0]["line"], "19200 8N2");
}

const SET_PARITY: &str = r#"
import sys, time, serial
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=9600, timeout=1)
t = time.monotonic()
try:
    s.parity = sys.argv[2]
    s.bytesize = int(sys.argv[3])
    print("SET", s.parity, s.bytesize)
except (serial.SerialException, ValueError) as e:
    print("REFUSED after %.1f s: %s" % (time.monotonic() - t, e))
s.close()
"#;

#[tokio::test]
async fn issue11_a_pty_refuses_parity_with_an_answer_not_a_timeout() {
    let device = PtyDevice::new();
    let hub = Server::listen(&device.path, 9600, &["rfc2217:127.0.0.1:0"], &[]);
    let (ok, out) = finish(
        python(SET_PARITY, &[&rfc2217(&hub), "E", "7"]),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    // pyserial names a rejected value "rejected"; a missing answer, "timeout".
    assert!(out.contains("REFUSED") && out.contains("rejected"), "{out}");
    assert!(!out.contains("timeout"), "{out}");
    assert_eq!(status(&hub.control)[0]["line"], "9600 8N1");
}

/// Opens at `argv[2]` baud and prints the baud rate pyserial ends up with,
/// or the error.
const OPEN_AT: &str = r#"
import sys, serial
try:
    s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=int(sys.argv[2]), timeout=1)
    print("OPEN", s.baudrate, flush=True)
    sys.stdin.read()
    s.close()
except (serial.SerialException, ValueError) as e:
    print("ERROR", e, flush=True)
"#;

#[tokio::test]
async fn issue11_a_second_client_cannot_change_the_first_ones_baud() {
    use std::process::Stdio;
    let device = PtyDevice::new();
    let hub = Server::listen(
        &device.path,
        9600,
        &["rfc2217:127.0.0.1:0", "tcp:127.0.0.1:0"],
        &[],
    );
    let addr = rfc2217(&hub);
    let mut first = Command::new("python3")
        .args(["-c", OPEN_AT, &addr, "19200"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(first.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "OPEN 19200");
    assert_eq!(device.baud(), 19200);
    // A raw TCP client shares the port meanwhile.
    let mut raw = TcpStream::connect(hub.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The second asks for 38400: it is told 19200, which pyserial rejects.
    let (_, second) = finish(python(OPEN_AT, &[&addr, "38400"]), Duration::from_secs(30));
    assert!(second.contains("ERROR"), "{second}");
    assert_eq!(device.baud(), 19200);
    // The same rate as in force is fine for anyone.
    let mut third = python(OPEN_AT, &[&addr, "19200"]);
    let mut line = String::new();
    let mut out3 = std::io::BufReader::new(third.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out3, &mut line).unwrap();
    assert_eq!(line.trim(), "OPEN 19200");
    raw.write_all(b"raw\n").unwrap();
    assert!(device_got(&device, b"raw\n", Duration::from_secs(10)).await);
    device.send(b"to all\n");
    let mut got = [0u8; 7];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to all\n");
    drop(first.stdin.take());
    let _ = first.wait();
    let _ = third.kill();
    let _ = third.wait();
}

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DO: u8 = 253;
const DONT: u8 = 254;
const WONT: u8 = 252;

/// Reads from `s` until `want` appears in what came, or panics.
fn read_until_has(s: &mut TcpStream, got: &mut Vec<u8>, want: &[u8]) {
    let mut buf = [0u8; 4096];
    while !got.windows(want.len()).any(|w| w == want) {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {want:?}: {e}; got {got:?}"));
        assert!(n > 0, "closed while waiting for {want:?}; got {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn issue11_telnet_bytes_by_hand() {
    let device = PtyDevice::new();
    let hub = Server::listen(
        &device.path,
        9600,
        &["rfc2217:127.0.0.1:0"],
        &["--no-pacing"],
    );
    let mut s = TcpStream::connect(rfc2217(&hub)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    // The server opens by asking for COM-PORT-OPTION.
    read_until_has(&mut s, &mut got, &[IAC, DO, 44]);
    // An unknown option is refused, each way.
    s.write_all(&[IAC, WILL, 99, IAC, DO, 98]).unwrap();
    read_until_has(&mut s, &mut got, &[IAC, DONT, 99]);
    read_until_has(&mut s, &mut got, &[IAC, WONT, 98]);
    // Agreeing to COM-PORT-OPTION gets the modem state at once.
    s.write_all(&[IAC, WILL, 44]).unwrap();
    read_until_has(&mut s, &mut got, &[IAC, SB, 44, 107]);
    // Another RFC 2217 client, which must not hear of the changes this one
    // makes: an answer it did not ask for kills pyserial (issue 19).
    let mut other = TcpStream::connect(rfc2217(&hub)).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut heard = Vec::new();
    other.write_all(&[IAC, WILL, 44]).unwrap();
    read_until_has(&mut other, &mut heard, &[IAC, SB, 44, 107]);
    // SIGNATURE names serialhub and the port.
    s.write_all(&[IAC, SB, 44, 0, IAC, SE]).unwrap();
    read_until_has(&mut s, &mut got, b"serialhub ");
    // IAC is doubled both ways, and a command split across writes works.
    s.write_all(&[b'a', IAC]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&[IAC, b'b', IAC, SB, 44]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SET-BAUDRATE 115200 (0x0001c200).
    s.write_all(&[1, 0, 1, 0xc2, 0, IAC, SE]).unwrap();
    read_until_has(
        &mut s,
        &mut got,
        &[IAC, SB, 44, 101, 0, 1, 0xc2, 0, IAC, SE],
    );
    assert!(device_got(&device, &[b'a', 0xff, b'b'], Duration::from_secs(10)).await);
    assert_eq!(device.baud(), 115_200);
    device.send(&[1, 0xff, 2]);
    read_until_has(&mut s, &mut got, &[1, IAC, IAC, 2]);
    // The other gets the data sent after the change, and no answer.
    read_until_has(&mut other, &mut heard, &[1, IAC, IAC, 2]);
    assert!(
        !heard.windows(4).any(|w| w == [IAC, SB, 44, 101]),
        "an unasked-for SET-BAUDRATE answer: {heard:?}"
    );
    // A baud rate with 0xff bytes in it (65535) is escaped in the answer too.
    s.write_all(&[IAC, SB, 44, 1, 0, 0, IAC, IAC, IAC, IAC, IAC, SE])
        .unwrap();
    read_until_has(
        &mut s,
        &mut got,
        &[IAC, SB, 44, 101, 0, 0, IAC, IAC, IAC, IAC, IAC, SE],
    );
    assert_eq!(device.baud(), 65_535);
    // An over-long subnegotiation is skipped, and the stream goes on.
    let mut long = vec![IAC, SB, 44, 0];
    long.extend(std::iter::repeat_n(b'x', 10_000));
    long.extend([IAC, SE, b'z']);
    s.write_all(&long).unwrap();
    assert!(device_got(&device, b"z", Duration::from_secs(10)).await);
    // A query (value 0) answers the value in force and changes nothing.
    s.write_all(&[IAC, SB, 44, 1, 0, 0, 0, 0, IAC, SE]).unwrap();
    read_until_has(
        &mut s,
        &mut got,
        &[IAC, SB, 44, 101, 0, 0, IAC, IAC, IAC, IAC, IAC, SE],
    );
    assert!(
        eventually(Duration::from_secs(5), || status(&hub.control)[0]["line"]
            == "65535 8N1")
        .await
    );
}

#[tokio::test]
async fn issue11_a_baud_change_waits_for_the_bytes_before_it() {
    use serialhub::pattern::{Checker, Generator};
    let device = PtyDevice::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().to_str().unwrap().to_owned();
    let hub = Server::listen(
        &device.path,
        9600,
        &["rfc2217:127.0.0.1:0"],
        &["--log", &log, "--log-format", "json"],
    );
    let mut s = TcpStream::connect(rfc2217(&hub)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data = Generator::new().take(4096);
    assert!(!data.contains(&IAC));
    // 4 KB, then at once a change to 115200 baud.
    let mut burst = data.clone();
    burst.extend([IAC, SB, 44, 1, 0, 1, 0xc2, 0, IAC, SE]);
    s.write_all(&burst).unwrap();
    let mut got = Vec::new();
    read_until_has(
        &mut s,
        &mut got,
        &[IAC, SB, 44, 101, 0, 1, 0xc2, 0, IAC, SE],
    );
    assert!(device_got(&device, &data, Duration::from_secs(10)).await);
    let mut checker = Checker::new();
    checker.feed(&device.received());
    assert_eq!(checker.errors, 0, "{:?}", checker.first_error);
    assert_eq!(device.baud(), 115_200);
    drop(s);
    stop(hub);
    // The traffic log: every byte went out before the change, paced at the
    // old rate (4096 bytes at 960 bytes/s is at least 4 s, less the
    // 20 ms the writer may run ahead).
    let mut files: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let (mut before, mut first, mut last, mut changed) = (0u64, None, None, false);
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        match v["kind"].as_str() {
            Some("tx") if !changed => {
                before += v["len"].as_u64().unwrap();
                let ts = time::OffsetDateTime::parse(
                    v["ts"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                first.get_or_insert(ts);
                last = Some(ts);
            }
            Some("settings") if v["line"].as_str().unwrap().starts_with("115200") => changed = true,
            _ => {}
        }
    }
    assert!(changed, "no settings record for the change:\n{text}");
    assert_eq!(before, 4096, "bytes written before the change");
    let span = last.unwrap() - first.unwrap();
    assert!(
        span >= time::Duration::milliseconds(4000),
        "4 KB went out in {span}: not at 9600 baud"
    );
}

#[tokio::test]
async fn issue11_a_remote_serialhub_as_the_device_survives_its_restart() {
    let upstream = Server::listen("sim:echo", 9600, &["rfc2217:127.0.0.1:0"], &[]);
    let up = rfc2217(&upstream);
    let remote = format!("rfc2217://{up}");
    let downstream = Server::listen(&remote, 19200, &["tcp:127.0.0.1:0"], &[]);
    // The downstream's line settings reached the upstream's device.
    assert!(
        eventually(
            Duration::from_secs(5),
            || status(&upstream.control)[0]["line"] == "19200 8N1"
        )
        .await
    );
    let mut c = TcpStream::connect(downstream.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let data: Vec<u8> = (0..=255u8).collect();
    c.write_all(&data).unwrap();
    let mut got = vec![0u8; data.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, data, "every byte value through two serialhubs");

    // The upstream restarts on the same address: the client stays, and data
    // flows again once the downstream has reconnected.
    drop(upstream);
    let listen = format!("rfc2217:{up}");
    let _again = Server::listen("sim:echo", 9600, &[&listen], &[]);
    assert!(
        eventually(
            Duration::from_secs(15),
            || status(&downstream.control)[0]["device_state"]["state"] == "open"
        )
        .await,
        "{}",
        status(&downstream.control)
    );
    c.write_all(b"again\n").unwrap();
    let mut got = [0u8; 6];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"again\n");
}

/// Against a loopback plug: parity and data size change, and the modem
/// inputs follow the outputs as the plug's wiring says.
const LOOPBACK: &str = r#"
import sys, time, serial
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=19200, timeout=2)
s.parity = serial.PARITY_EVEN
s.bytesize = serial.SEVENBITS
def wait(what, get, want):
    end = time.monotonic() + 5
    while get() != want:
        if time.monotonic() > end:
            sys.exit("%s stayed %s" % (what, get()))
        time.sleep(0.02)
for rts, dtr in [(False, True), (True, False), (False, False), (True, True)]:
    s.rts = rts
    s.dtr = dtr
    wait("CTS", lambda: s.cts, rts)
    wait("DSR", lambda: s.dsr, dtr)
    wait("CD", lambda: s.cd, dtr)
s.write(b"loop\n")
assert s.read(5) == b"loop\n"
print("OK", flush=True)
"#;

#[tokio::test]
async fn issue11_pyserial_on_a_loopback_plug() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().to_str().unwrap().to_owned();
    let hub = Server::listen(
        "sim:loopback",
        9600,
        &["rfc2217:127.0.0.1:0"],
        &["--log", &log, "--log-format", "json"],
    );
    let (ok, out) = finish(python(LOOPBACK, &[&rfc2217(&hub)]), Duration::from_secs(60));
    assert!(ok && out.contains("OK"), "{out}");
    assert_eq!(status(&hub.control)[0]["line"], "19200 7E1");
    stop(hub);
    let text: String = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        text.lines()
            .any(|l| l.contains("\"settings\"") && l.contains("19200 7E1") && l.contains("by #")),
        "no settings record naming the client:\n{text}"
    );
}

#[tokio::test]
async fn issue11_a_request_is_answered_while_the_device_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ttyGONE");
    let hub = Server::listen(
        missing.to_str().unwrap(),
        9600,
        &["rfc2217:127.0.0.1:0"],
        &["--wait-for-device"],
    );
    let mut s = TcpStream::connect(rfc2217(&hub)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    s.write_all(&[IAC, WILL, 44, IAC, SB, 44, 1, 0, 0, 0x4b, 0, IAC, SE])
        .unwrap();
    // Not left waiting: told, within the 2 s rule, the value asked for
    // (19200 = 0x4b00), which stays queued for the device (issue 19).
    let asked = std::time::Instant::now();
    read_until_has(
        &mut s,
        &mut got,
        &[IAC, SB, 44, 101, 0, 0, 0x4b, 0, IAC, SE],
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn issue11_break_on_a_loopback_plug_is_reported_as_line_state() {
    let hub = Server::listen("sim:loopback", 9600, &["rfc2217:127.0.0.1:0"], &[]);
    let mut s = TcpStream::connect(rfc2217(&hub)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    s.write_all(&[IAC, WILL, 44]).unwrap();
    read_until_has(&mut s, &mut got, &[IAC, SB, 44, 107]);
    // Line state reports are off until asked for (RFC 2217's default mask).
    s.write_all(&[IAC, SB, 44, 10, 0x10, IAC, SE]).unwrap();
    read_until_has(&mut s, &mut got, &[IAC, SB, 44, 110, 0x10, IAC, SE]);
    // BREAK on, then off: answered, and the plug receives the break.
    s.write_all(&[IAC, SB, 44, 5, 5, IAC, SE]).unwrap();
    read_until_has(&mut s, &mut got, &[IAC, SB, 44, 105, 5, IAC, SE]);
    read_until_has(&mut s, &mut got, &[IAC, SB, 44, 106, 0x10, IAC, SE]);
    s.write_all(&[IAC, SB, 44, 5, 6, IAC, SE, IAC, SB, 44, 5, 4, IAC, SE])
        .unwrap();
    read_until_has(
        &mut s,
        &mut got,
        &[IAC, SB, 44, 105, 6, IAC, SE, IAC, SB, 44, 105, 6, IAC, SE],
    );
}

/// Opens at 19200 and closes, then opens at 38400 100 ms later.
const REOPEN_AT_ANOTHER_RATE: &str = r#"
import sys, time, serial
url = "rfc2217://" + sys.argv[1]
s = serial.serial_for_url(url, baudrate=19200, timeout=1)
s.close()
time.sleep(0.1)
try:
    s = serial.serial_for_url(url, baudrate=38400, timeout=1)
    print("OPEN", s.baudrate, flush=True)
    s.close()
except (serial.SerialException, ValueError) as e:
    print("ERROR", e, flush=True)
"#;

#[tokio::test]
async fn issue19_the_settings_owner_releases_them_when_it_closes() {
    let device = PtyDevice::new();
    let hub = Server::listen(&device.path, 9600, &["rfc2217:127.0.0.1:0"], &[]);
    let (ok, out) = finish(
        python(REOPEN_AT_ANOTHER_RATE, &[&rfc2217(&hub)]),
        Duration::from_secs(30),
    );
    assert!(ok && out.contains("OPEN 38400"), "{out}");
    assert!(
        eventually(Duration::from_secs(5), || device.baud() == 38400).await,
        "device at {}",
        device.baud()
    );
}

/// `changer`: switches between 9600 and 19200 baud for `argv[3]` seconds;
/// `opener`: opens, checks the rate and closes, over and over. Each checks
/// that pyserial's reader thread is alive and prints "OK" and a count.
const SHARE_WHILE_CHANGING: &str = r#"
import sys, time, serial
url, role, secs = "rfc2217://" + sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + secs
n = 0
if role == "changer":
    s = serial.serial_for_url(url, baudrate=9600, timeout=1)
    while time.monotonic() < end:
        s.baudrate = 19200 if n % 2 else 9600
        assert s._thread.is_alive(), "the changer's reader thread died"
        n += 1
    s.close()
else:
    while time.monotonic() < end:
        rate = 19200 if n % 2 else 9600
        s = serial.serial_for_url(url, baudrate=rate, timeout=1)
        time.sleep(0.05)
        assert s._thread.is_alive(), "the opener's reader thread died"
        s.close()
        n += 1
print("OK", n, flush=True)
"#;

#[tokio::test]
async fn issue19_no_answer_a_client_did_not_ask_for_kills_pyserial() {
    let device = PtyDevice::new();
    let hub = Server::listen(
        &device.path,
        9600,
        &["rfc2217:127.0.0.1:0,control=any"],
        &[],
    );
    let addr = rfc2217(&hub);
    let changer = python(SHARE_WHILE_CHANGING, &[&addr, "changer", "10"]);
    let opener = python(SHARE_WHILE_CHANGING, &[&addr, "opener", "10"]);
    let (ok, out) = finish(opener, Duration::from_secs(60));
    assert!(ok && out.contains("OK"), "opener: {out}");
    let (ok, out) = finish(changer, Duration::from_secs(60));
    assert!(ok && out.contains("OK"), "changer: {out}");
}

/// Opens at `argv[2]` baud, with `argv[3]` data bits, parity and stop bits
/// (`7E2`); prints how long the open took, or the error.
const OPEN_TIMED: &str = r#"
import sys, time, serial
t = time.monotonic()
b, p, st = sys.argv[3]
try:
    s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=int(sys.argv[2]),
        bytesize=int(b), parity=p, stopbits=int(st), timeout=1)
    print("OPEN %.2f" % (time.monotonic() - t), flush=True)
    s.close()
except (serial.SerialException, ValueError) as e:
    print("ERROR after %.2f: %s" % (time.monotonic() - t, e), flush=True)
"#;

/// Issue 19: requests that wait for the device are answered together, each
/// within 2 s of its arrival: an open's four settings, while the device is
/// absent, used to be answered at 2, 4, 6 and 8 s, past pyserial's 3 s.
#[tokio::test]
async fn issue19_an_opens_settings_are_answered_together_while_the_device_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ttyGONE");
    let hub = Server::listen(
        missing.to_str().unwrap(),
        9600,
        &["rfc2217:127.0.0.1:0"],
        &["--wait-for-device"],
    );
    let (ok, out) = finish(
        python(OPEN_TIMED, &[&rfc2217(&hub), "115200", "7E2"]),
        Duration::from_secs(30),
    );
    assert!(ok && out.contains("OPEN"), "{out}");
    eprintln!("{out}");
}

/// Sets 300 baud, writes 200 bytes and stays; prints "SENT".
const SLOW_WRITER: &str = r#"
import sys, serial
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=300, timeout=1)
s.write(b"x" * 200)
print("SENT", flush=True)
sys.stdin.read()
"#;

/// Issue 19: pyserial opens at 115200 right after another client set 300
/// baud and wrote 200 bytes (control=any): the open succeeds. (A pty
/// takes neither 7 data bits nor parity, so this one asks for 2 stop bits.)
#[tokio::test]
async fn issue19_pyserial_opens_while_another_clients_bytes_crawl_out_at_300_baud() {
    use std::process::Stdio;
    let device = PtyDevice::new();
    let hub = Server::listen(
        &device.path,
        9600,
        &["rfc2217:127.0.0.1:0,control=any"],
        &[],
    );
    let addr = rfc2217(&hub);
    let mut slow = Command::new("python3")
        .args(["-c", SLOW_WRITER, &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(slow.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "SENT");
    assert!(eventually(Duration::from_secs(10), || device.baud() == 300).await);
    let (ok, opened) = finish(
        python(OPEN_TIMED, &[&addr, "115200", "8N2"]),
        Duration::from_secs(30),
    );
    drop(slow.stdin.take());
    let _ = slow.wait();
    assert!(ok && opened.contains("OPEN"), "{opened}");
    eprintln!("{opened}");
}

/// A Modbus RTU master over pyserial's `rfc2217://`: `argv[4]` reads of
/// `argv[2]`'s input registers from `argv[3]` on, 1 to 4 at a time, each
/// reply checked byte for byte (the sim's rule: input `a` of unit `u` is
/// `(u << 12) ^ a`). Prints "ok N".
const RTU_MASTER: &str = r#"
import sys, serial
def crc(b):
    c = 0xFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return bytes([c & 0xFF, c >> 8])
url, unit, base, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = serial.serial_for_url("rfc2217://" + url, baudrate=115200, timeout=3)
for i in range(n):
    a, qty = (base + i * 7) % 9990, 1 + i % 4
    req = bytes([unit, 4, a >> 8, a & 255, 0, qty])
    s.write(req + crc(req))
    want = bytes([unit, 4, 2 * qty]) + b"".join(
        (((unit << 12) ^ (a + k)) & 0xFFFF).to_bytes(2, "big") for k in range(qty))
    got = s.read(len(want) + 2)
    if got != want + crc(want):
        sys.exit(f"poll {i} of unit {unit}: got {got.hex()}, want {(want + crc(want)).hex()}")
s.close()
print("ok", n, flush=True)
"#;

/// Issue 19: request/response through RFC 2217. Two pyserial `rfc2217://`
/// Modbus masters poll one `sim:modbus` slave through `--writers
/// transaction` with `framing=modbus-rtu`: each gets only its own replies.
#[tokio::test]
async fn issue19_two_rfc2217_modbus_masters_each_get_their_own_replies() {
    let hub = Server::listen(
        "sim:modbus",
        115_200,
        &["rfc2217:127.0.0.1:0,framing=modbus-rtu"],
        &["--writers", "transaction"],
    );
    let addr = rfc2217(&hub);
    let one = python(RTU_MASTER, &[&addr, "1", "0", "500"]);
    let two = python(RTU_MASTER, &[&addr, "2", "5000", "500"]);
    for (n, master) in [(1, one), (2, two)] {
        let (ok, out) = finish(master, Duration::from_secs(120));
        assert!(ok && out.contains("ok 500"), "master {n}: {out}");
    }
    let p = &status(&hub.control)[0];
    assert!(p["transactions"].as_u64() >= Some(1000), "{p:#}");
    assert_eq!(p["timeouts"], 0, "{p:#}");
}
