//! Issue 9: unmodified Modbus masters share one RTU bus through serialhub
//! (`--writers transaction`), and each gets its own replies.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Server, finish, python};

/// A Modbus RTU master with minimalmodbus on a serial port (a pty
/// endpoint): reads holding and input registers of units 1 to 3 and checks
/// every value against the simulator's register rule.
const MINIMALMODBUS: &str = r#"
import sys, minimalmodbus
path, n, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
units = {}
for u in (1, 2, 3):
    i = minimalmodbus.Instrument(path, u)
    i.serial.baudrate = 19200
    i.serial.timeout = 2
    units[u] = i
ok = crossed = timeouts = 0
for k in range(n):
    u = 1 + (k + tag) % 3
    a = (k * 37 + tag * 1000) % 9990
    q = 1 + k % 4
    try:
        if k % 2:
            got, want = units[u].read_registers(a, q, functioncode=4), [(u << 12) ^ (a + j) for j in range(q)]
        else:
            got, want = units[u].read_registers(a, q), [u * 1000 + a + j for j in range(q)]
    except minimalmodbus.NoResponseError:
        timeouts += 1
        continue
    except (minimalmodbus.InvalidResponseError, minimalmodbus.ModbusException) as e:
        crossed += 1
        print("bad reply:", e)
        continue
    if got == want:
        ok += 1
    else:
        crossed += 1
print(f"ok {ok} crossed {crossed} timeouts {timeouts}")
"#;

/// A raw Modbus RTU master on any byte stream: a serial port or pyserial's
/// `socket://` URL, or `unix:PATH`. It builds each frame and checks the
/// reply's CRC, unit, function and values itself.
const RAW_MASTER: &str = r#"
import sys, socket, struct, time, serial
url, n, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def crc(b):
    c = 0xFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return struct.pack("<H", c)
if url.startswith("unix:"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(url[5:])
    s.settimeout(2)
    def read(m):
        got = b""
        try:
            while len(got) < m:
                d = s.recv(m - len(got))
                if not d:
                    break
                got += d
        except socket.timeout:
            pass
        return got
    write = s.sendall
else:
    p = serial.serial_for_url(url, baudrate=19200, timeout=2)
    read, write = p.read, p.write
ok = crossed = timeouts = 0
for k in range(n):
    u = 1 + (k + tag) % 3
    a = (k * 53 + tag * 700) % 9990
    q = 1 + k % 5
    f = 4 if k % 2 else 3
    req = struct.pack(">BBHH", u, f, a, q)
    write(req + crc(req))
    want_len = 5 + 2 * q
    rep = read(want_len)
    if len(rep) < want_len:
        timeouts += 1
        time.sleep(0.05)
        continue
    body, c = rep[:-2], rep[-2:]
    want = [((u << 12) ^ (a + j)) if f == 4 else u * 1000 + a + j for j in range(q)]
    vals = list(struct.unpack(">%dH" % q, body[3:]))
    if crc(body) == c and body[0] == u and body[1] == f and body[2] == 2 * q and vals == want:
        ok += 1
    else:
        crossed += 1
print(f"ok {ok} crossed {crossed} timeouts {timeouts}")
"#;

/// Parses a master's last line: (ok, crossed, timeouts).
fn tally(out: &str) -> (usize, usize, usize) {
    let line = out.lines().rfind(|l| l.starts_with("ok ")).unwrap_or("");
    let n: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match n[..] {
        [ok, crossed, timeouts] => (ok, crossed, timeouts),
        _ => panic!("no tally in master output: {out}"),
    }
}

fn run_masters(server: &Server, masters: Vec<Child>, each: usize) {
    let results: Vec<(bool, String)> = masters
        .into_iter()
        .map(|m| finish(m, Duration::from_secs(240)))
        .collect();
    for (ok, out) in &results {
        assert!(ok, "master failed: {out}\n{}", server.log());
        assert_eq!(
            tally(out),
            (each, 0, 0),
            "a master got crossed or missing replies: {out}\n{}",
            server.log()
        );
    }
}

#[test]
fn issue9_minimalmodbus_and_a_raw_master_share_sim_modbus_on_pty_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("ttyM1"), dir.path().join("ttyM2"));
    let server = Server::serve(
        "sim:modbus",
        19_200,
        &[
            "--writers",
            "transaction",
            "-l",
            &format!("pty:{}", a.display()),
            "-l",
            &format!("pty:{}", b.display()),
        ],
    );
    let masters = vec![
        python(MINIMALMODBUS, &[a.to_str().unwrap(), "500", "0"]),
        python(RAW_MASTER, &[b.to_str().unwrap(), "500", "1"]),
    ];
    run_masters(&server, masters, 500);
}

#[test]
fn issue9_masters_on_tcp_unix_and_pty_share_a_slave_that_frames_by_silence() {
    let dir = tempfile::tempdir().unwrap();
    let tty = dir.path().join("ttySLAVE");
    // The slave is a separate process on a pty, as a real device would be.
    let mut slave = crate::common::command()
        .args(["sim", "--mode", "modbus", "--baud", "19200", "--link"])
        .arg(&tty)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tty.exists() {
        assert!(Instant::now() < deadline, "the slave did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (pty, sock) = (dir.path().join("ttyM"), dir.path().join("bus.sock"));
    let server = Server::serve(
        tty.to_str().unwrap(),
        19_200,
        &[
            "--writers",
            "transaction",
            "-l",
            &format!("pty:{}", pty.display()),
            "-l",
            &format!("unix:{}", sock.display()),
        ],
    );
    let tcp = format!("socket://{}", server.addr());
    let unix = format!("unix:{}", sock.display());
    let masters = vec![
        python(RAW_MASTER, &[&tcp, "350", "0"]),
        python(RAW_MASTER, &[&unix, "350", "1"]),
        python(MINIMALMODBUS, &[pty.to_str().unwrap(), "350", "2"]),
    ];
    run_masters(&server, masters, 350);
    let _ = slave.kill();
    let _ = slave.wait();
}

/// pymodbus's Modbus TCP client: reads registers of units 1 to 3 and checks
/// the values (pymodbus itself matches each reply's transaction id).
const PYMODBUS: &str = r#"
import sys, inspect
from pymodbus.client import ModbusTcpClient
host, port, n, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = ModbusTcpClient(host, port=port, timeout=3, retries=0)
assert c.connect()
unit_kw = "device_id" if "device_id" in inspect.signature(c.read_holding_registers).parameters else "slave"
ok = crossed = timeouts = 0
for k in range(n):
    u = 1 + (k + tag) % 3
    a = (k * 41 + tag * 500) % 9990
    q = 1 + k % 6
    try:
        if k % 2:
            r = c.read_input_registers(a, count=q, **{unit_kw: u})
            want = [(u << 12) ^ (a + j) for j in range(q)]
        else:
            r = c.read_holding_registers(a, count=q, **{unit_kw: u})
            want = [u * 1000 + a + j for j in range(q)]
    except Exception as e:
        timeouts += 1
        print("error:", e)
        continue
    if r.isError():
        timeouts += 1
        print("exception:", r)
    elif r.registers == want:
        ok += 1
    else:
        crossed += 1
c.close()
print(f"ok {ok} crossed {crossed} timeouts {timeouts}")
"#;

/// mbpoll (libmodbus, which checks transaction ids), one poll per run.
fn mbpoll(addr: std::net::SocketAddr, n: usize, tag: usize) -> (usize, usize, usize) {
    let (mut ok, mut crossed, mut failed) = (0, 0, 0);
    for k in 0..n {
        let u = 1 + (k + tag) % 3;
        let a = (k * 29 + tag * 300) % 9990;
        let out = Command::new("mbpoll")
            .args(["-m", "tcp", "-p", &addr.port().to_string()])
            .args(["-a", &u.to_string(), "-r", &(a + 1).to_string()])
            .args([
                "-c",
                "3",
                "-t",
                "4",
                "-1",
                "-o",
                "3",
                &addr.ip().to_string(),
            ])
            .output()
            .expect("mbpoll is missing: run the tests with scripts/test, which installs it");
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Vec<usize> = text
            .lines()
            .filter(|l| l.starts_with('['))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect();
        let want: Vec<usize> = (0..3).map(|j| u * 1000 + a + j).collect();
        match (out.status.success(), got == want) {
            (true, true) => ok += 1,
            (true, false) => crossed += 1,
            (false, _) => failed += 1,
        }
    }
    (ok, crossed, failed)
}

#[test]
fn issue9_pymodbus_and_mbpoll_share_the_bus_through_modbus_tcp() {
    let server = Server::serve(
        "sim:modbus",
        19_200,
        &["--writers", "transaction", "-l", "modbus-tcp:127.0.0.1:0"],
    );
    let addr = server.modbus[0];
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let clients = vec![
        python(PYMODBUS, &[&host, &port, "150", "0"]),
        python(PYMODBUS, &[&host, &port, "150", "1"]),
    ];
    let polls: Vec<_> = (2..4)
        .map(|tag| std::thread::spawn(move || mbpoll(addr, 25, tag)))
        .collect();
    for p in polls {
        assert_eq!(p.join().unwrap(), (25, 0, 0), "mbpoll\n{}", server.log());
    }
    run_masters(&server, clients, 150);
}

/// Sends three requests in one write, with its own transaction ids, and
/// checks the replies come back in order with those ids; then one to a unit
/// that does not answer, which must get exception 0x0B.
const PIPELINE: &str = r#"
import sys, socket, struct, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port))
s.settimeout(5)
def adu(tid, unit, pdu):
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu
def read_adu():
    head = b""
    while len(head) < 7:
        head += s.recv(7 - len(head))
    tid, proto, length, unit = struct.unpack(">HHHB", head)
    body = b""
    while len(body) < length - 1:
        body += s.recv(length - 1 - len(body))
    return tid, unit, body
reqs = [(0xBEE0 + i, 1 + i, struct.pack(">BHH", 3, 10 * i, 2)) for i in range(3)]
s.sendall(b"".join(adu(*r) for r in reqs))
for tid, unit, pdu in reqs:
    got = read_adu()
    a = 10 * (unit - 1)
    want = (tid, unit, struct.pack(">BB2H", 3, 4, unit * 1000 + a, unit * 1000 + a + 1))
    assert got == want, f"got {got}, want {want}"
t0 = time.time()
s.sendall(adu(0x0042, 9, struct.pack(">BHH", 3, 0, 1)))
got = read_adu()
took = time.time() - t0
assert got == (0x0042, 9, bytes([0x83, 0x0B])), f"got {got}"
print(f"ok pipelined; exception 0x0B after {took:.2f}s")
"#;

#[test]
fn issue9_modbus_tcp_pipelines_keeps_ids_and_answers_a_silent_unit_with_0x0b() {
    let server = Server::serve(
        "sim:modbus",
        19_200,
        &[
            "--writers",
            "transaction",
            "--reply-timeout",
            "300ms",
            "-l",
            "modbus-tcp:127.0.0.1:0",
        ],
    );
    let addr = server.modbus[0];
    let p = python(
        PIPELINE,
        &[&addr.ip().to_string(), &addr.port().to_string()],
    );
    let (ok, out) = finish(p, Duration::from_secs(30));
    assert!(ok, "{out}\n{}", server.log());
}

#[test]
fn issue9_modbus_tcp_closes_a_connection_with_a_bad_header() {
    use std::io::{Read, Write};
    let server = Server::serve(
        "sim:modbus",
        19_200,
        &["--writers", "transaction", "-l", "modbus-tcp:127.0.0.1:0"],
    );
    let mut s = std::net::TcpStream::connect(server.modbus[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Protocol id 1: not Modbus.
    s.write_all(&[0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1]).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    assert!(server.wait_log("not Modbus TCP", Duration::from_secs(5)));
    // Others are served as before.
    let p = python(
        PIPELINE,
        &[
            &server.modbus[0].ip().to_string(),
            &server.modbus[0].port().to_string(),
        ],
    );
    let (ok, out) = finish(p, Duration::from_secs(30));
    assert!(ok, "{out}");
}

#[test]
fn issue9_modbus_tcp_needs_transactions() {
    let (status, err, _) = crate::common::run_to_exit(
        &["serve", "-d", "sim:modbus", "-l", "modbus-tcp:127.0.0.1:0"],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--writers transaction"), "{err}");
}
