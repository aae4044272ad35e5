//! Issue 21: pyserial's `rfc2217://` client, which has no TLS, reaches an
//! `rfc2217:...,tls` endpoint through a socat tunnel (`TCP-LISTEN` on
//! loopback to `OPENSSL` with a client certificate) and changes the baud
//! rate there.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{endpoints, status};
use crate::tls::{Pki, pki};

/// The socket inodes a process holds open, from its `/proc/PID/fd` links
/// (`socket:[INODE]`).
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?.to_owned();
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The port of a listening socket (`st` 0A) among `inodes`, from the
/// table of `/proc/net/tcp`: `sl local_address rem_address st ... inode`,
/// with `local_address` as `HEXADDR:HEXPORT`.
fn listening_port(table: &str, inodes: &[u64]) -> Option<u16> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
        if *state != "0A" || !inodes.contains(&inode.parse().ok()?) {
            return None;
        }
        u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
    })
}

/// A socat tunnel from a loopback port it chose (`TCP-LISTEN:0`) to
/// serialhub's TLS endpoint at `port`, with alice's certificate; killed
/// when dropped.
struct Tunnel {
    socat: Child,
    /// Where socat listens, read back from /proc: socat cannot print it.
    port: u16,
}

impl Tunnel {
    fn open(port: u16, pki: &Pki) -> Tunnel {
        let socat = Command::new("socat")
            .args([
                "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr".to_owned(),
                format!(
                    "OPENSSL:localhost:{port},cafile={},cert={},key={}",
                    pki.arg("ca.pem"),
                    pki.arg("alice.pem"),
                    pki.arg("alice.key")
                ),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("socat is missing: run the tests with scripts/test, which installs it");
        let deadline = Instant::now() + Duration::from_secs(20);
        let pid = socat.id();
        let mut tunnel = Tunnel { socat, port: 0 };
        loop {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            if let Some(p) = listening_port(&table, &socket_inodes(pid)) {
                tunnel.port = p;
                return tunnel;
            }
            if let Some(s) = tunnel.socat.try_wait().unwrap() {
                panic!("socat exited ({s}) before it listened");
            }
            assert!(Instant::now() < deadline, "socat does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

#[test]
fn listening_port_reads_proc_net_tcp() {
    let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1\n";
    assert_eq!(listening_port(table, &[4242]), Some(8080));
    // Connected, not listening.
    assert_eq!(listening_port(table, &[4343]), None);
    assert_eq!(listening_port(table, &[1]), None);
}

/// Opens `rfc2217://ADDR` at 19200 baud, checks that data echoes, says
/// "OK" and stays open until its input closes.
const BAUD_THROUGH_TUNNEL: &str = r#"
import sys, serial
s = serial.serial_for_url("rfc2217://" + sys.argv[1], baudrate=19200, timeout=10)
assert s.baudrate == 19200
data = b"through the tunnel\n" + bytes(range(256))
s.write(data)
got = b""
while len(got) < len(data):
    chunk = s.read(len(data) - len(got))
    if not chunk:
        sys.exit("timed out reading: got %r" % got)
    got += chunk
assert got == data, "echo differs: %r" % got
print("OK", flush=True)
sys.stdin.read()
s.close()
"#;

#[test]
fn issue21_pyserial_changes_the_baud_rate_through_a_socat_tls_tunnel() {
    let pki = pki();
    let server = crate::tls::serve_tls(
        &pki,
        &[
            "serve",
            "-d",
            "sim:echo",
            "-b",
            "9600",
            "-l",
            "rfc2217:127.0.0.1:0,tls",
        ],
    );
    assert_eq!(status(&server.control)[0]["line"], "9600 8N1");
    let endpoint = endpoints(&status(&server.control), "rfc2217:")[0];
    let tunnel = Tunnel::open(endpoint.port(), &pki);

    let mut py = Command::new("python3")
        .arg("-c")
        .arg(BAUD_THROUGH_TUNNEL)
        .arg(format!("127.0.0.1:{}", tunnel.port))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = py.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let said = lines.recv_timeout(Duration::from_secs(60));
    if said.as_deref() != Ok("OK") {
        let _ = py.kill();
        let out = py.wait_with_output().unwrap();
        panic!(
            "pyserial: {said:?} {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
    }
    // Set on the device, through TLS, by the client the tunnel carries.
    server.wait_status("the baud rate is 19200", |p| p["line"] == "19200 8N1");
    let ports = status(&server.control);
    let clients = ports[0]["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{ports:#}");
    assert_eq!(clients[0]["identity"], "cn:alice", "{ports:#}");
    assert!(
        ports[0]["bytes_to_device"].as_u64() >= Some(275),
        "{ports:#}"
    );

    drop(py.stdin.take());
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(tunnel);
}
