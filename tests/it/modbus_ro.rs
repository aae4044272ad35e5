//! Issue 21: a read-only Modbus TCP client (`access=ro`, as an `ro`
//! identity is) may read, and nothing else: its other requests never reach
//! the bus, are answered with exception 01 (illegal function) and counted.
//! Checked byte for byte, and with two masters nobody here wrote (pymodbus
//! and mbpoll).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::common::{Server, finish, python};

/// Writes register 10 of unit 1 (and 11..13 with function 16), expecting
/// exception 01 for each, through `ro`; reads through `ro` must pass. The
/// values read back must be those of `want` (the registers are untouched).
const PYMODBUS_RO: &str = r#"
import sys, inspect
from pymodbus.client import ModbusTcpClient
host, port, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = ModbusTcpClient(host, port=port, timeout=5, retries=0)
assert c.connect(), "no connection"
kw = "device_id" if "device_id" in inspect.signature(c.read_holding_registers).parameters else "slave"
r = c.read_holding_registers(10, count=1, **{kw: 1})
assert not r.isError(), f"read refused: {r}"
assert r.registers == [want], f"read {r.registers}, want {want}"
r = c.read_input_registers(10, count=1, **{kw: 1})
assert not r.isError() and r.registers == [(1 << 12) ^ 10], f"input register: {r}"
r = c.write_register(10, 4242, **{kw: 1})
assert r.isError() and r.exception_code == 1, f"write_register: {r}"
r = c.write_registers(11, [1, 2, 3], **{kw: 1})
assert r.isError() and r.exception_code == 1, f"write_registers: {r}"
r = c.read_holding_registers(10, count=4, **{kw: 1})
assert r.registers == [want, 1011, 1012, 1013], f"after the refused writes: {r.registers}"
c.close()
print("ok")
"#;

fn mbpoll_write(addr: SocketAddr, value: &str) -> (bool, String) {
    let out = Command::new("mbpoll")
        .args(["-m", "tcp", "-p", &addr.port().to_string()])
        .args(["-a", "1", "-r", "11", "-t", "4", "-1", "-o", "5"])
        .arg(addr.ip().to_string())
        .arg(value)
        .output()
        .expect("mbpoll is missing: run the tests with scripts/test, which installs it");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut a = tid.to_be_bytes().to_vec();
    a.extend_from_slice(&[0, 0]);
    a.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    a.push(unit);
    a.extend_from_slice(pdu);
    a
}

#[test]
fn issue21_read_only_modbus_tcp_clients_may_only_read() {
    let server = Server::serve(
        "sim:modbus",
        19_200,
        &[
            "--writers",
            "transaction",
            "-l",
            "modbus-tcp:127.0.0.1:0,access=ro",
            "-l",
            "modbus-tcp:127.0.0.1:0",
        ],
    );
    let (ro, rw) = (server.modbus[0], server.modbus[1]);

    // Byte for byte: a write, then a broadcast write, then a read, in one
    // go. The write gets exception 01 in its turn, the broadcast nothing,
    // the read its reply; none of the writes reaches the bus.
    let mut s = TcpStream::connect(ro).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let write = adu(7, 1, &[0x06, 0, 10, 0x12, 0x34]);
    let broadcast = adu(8, 0, &[0x06, 0, 10, 0x56, 0x78]);
    let read = adu(9, 1, &[0x03, 0, 10, 0, 1]);
    s.write_all(&[write.clone(), broadcast.clone(), read].concat())
        .unwrap();
    let mut answer = [0u8; 9];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [0, 7, 0, 0, 0, 3, 1, 0x86, 0x01]);
    let mut reply = [0u8; 11];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(
        reply,
        [0, 9, 0, 0, 0, 5, 1, 3, 2, 0x03, 0xf2],
        "1010 unchanged"
    );
    let discarded = write.len() + broadcast.len();
    server.wait_status("the refused requests were not counted", |p| {
        p["clients"][0]["discarded"] == discarded && p["transactions"] == 1
    });
    drop(s);

    // Through the read-write endpoint the same write goes through, so the
    // refusals above were the endpoint's doing.
    let (ok, out) = mbpoll_write(rw, "1234");
    assert!(
        ok,
        "mbpoll through the rw endpoint: {out}\n{}",
        server.log()
    );
    let (ok, out) = mbpoll_write(ro, "999");
    assert!(!ok, "mbpoll wrote through the ro endpoint: {out}");
    assert!(out.to_lowercase().contains("illegal function"), "{out}");

    let (host, port) = (ro.ip().to_string(), ro.port().to_string());
    let (ok, out) = finish(
        python(PYMODBUS_RO, &[&host, &port, "1234"]),
        Duration::from_secs(60),
    );
    assert!(ok, "pymodbus: {out}\n{}", server.log());
}
