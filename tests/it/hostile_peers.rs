//! Issue 18: hostile peers. Each test runs an attack as an attacker would,
//! while a witness client echoes through the same port; the test fails if
//! the witness stalls for seconds (its normal is milliseconds), loses or
//! changes a byte, or if `status` stops answering.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{Server, status};

/// A stall no healthy echo comes near (it takes milliseconds), short of
/// the "forever" the attacks used to cause.
const STALL: Duration = Duration::from_secs(3);

/// Echoes 64-byte records through `addr` until `stop`, counting them in
/// `echoed`; returns the longest round trip. Panics on a wrong byte or a
/// stall past [`STALL`].
fn witness(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    echoed: Arc<AtomicU32>,
) -> JoinHandle<Duration> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(STALL)).unwrap();
        let mut worst = Duration::ZERO;
        let mut n = 0u32;
        while !stop.load(Relaxed) {
            let record: Vec<u8> = (0..64).map(|i| (n.wrapping_mul(7) + i) as u8).collect();
            let start = Instant::now();
            s.write_all(&record).unwrap();
            let mut got = vec![0u8; record.len()];
            if let Err(e) = s.read_exact(&mut got) {
                panic!("witness: no echo within {STALL:?} (record {n}): {e}");
            }
            assert_eq!(got, record, "witness: echo of record {n} differs");
            worst = worst.max(start.elapsed());
            n += 1;
            echoed.store(n, Relaxed);
        }
        assert!(n > 0, "the witness echoed nothing");
        worst
    })
}

/// A client with a small receive buffer that sends `data` and never reads.
fn non_reader(addr: SocketAddr, data: Arc<Vec<u8>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut s: TcpStream = socket.into();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        // Ends with an error once serialhub closes the connection.
        let _ = s.write_all(&data);
    })
}

/// A serve of `sim:echo` with a raw TCP and an RFC 2217 endpoint, and the
/// latter's address.
fn echo_with_rfc2217() -> (Server, SocketAddr) {
    let server = Server::serve("sim:echo", 115_200, &["-l", "rfc2217:127.0.0.1:0"]);
    let rfc2217 = server.rfc2217[0];
    (server, rfc2217)
}

#[test]
fn issue18_rfc2217_clients_flooding_negotiations_without_reading_are_kicked_not_freezing_writes() {
    let (server, rfc2217) = echo_with_rfc2217();
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU32::new(0));
    let echo = witness(server.addr(), stop.clone(), echoed.clone());
    // DO BINARY, DONT BINARY: each is answered, so the answers pile up.
    let flood = Arc::new(b"\xff\xfd\x00\xff\xfe\x00".repeat(1_000_000));
    let attacked = Instant::now();
    let attackers: Vec<_> = (0..4).map(|_| non_reader(rfc2217, flood.clone())).collect();
    server.wait_status("the four attackers were not kicked", |p| {
        p["kicked"].as_u64() >= Some(4)
    });
    server.wait_status("kicked attackers are still connected", |p| {
        p["clients"].as_array().map(Vec::len) == Some(1)
    });
    for a in attackers {
        a.join().unwrap();
    }
    // The witness goes on echoing after the attack too.
    let after = echoed.load(Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while echoed.load(Relaxed) < after + 10 && !echo.is_finished() {
        assert!(Instant::now() < deadline, "the witness stopped echoing");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Relaxed);
    let worst = echo.join().expect("the witness stalled or lost data");
    eprintln!("witness: longest echo {worst:?}");
    let log = server.log();
    assert!(
        log.contains("slow reader"),
        "no slow-reader disconnect logged:\n{log}"
    );
    crate::hostile::assert_no_repeats(&log, attacked.elapsed());
}

/// 10,000 BREAK toggles from a client that closes right after sending them:
/// those the device had not applied when it left are dropped, and counted.
#[test]
fn issue18_a_departed_clients_queued_break_toggles_are_dropped() {
    let (server, rfc2217) = echo_with_rfc2217();
    let stop = Arc::new(AtomicBool::new(false));
    let echo = witness(server.addr(), stop.clone(), Arc::default());
    let mut s = TcpStream::connect(rfc2217).unwrap();
    // WILL COM-PORT, then SET-CONTROL break on (5) and off (6), 5,000 times.
    let mut out = b"\xff\xfb\x2c".to_vec();
    for code in [5u8, 6].repeat(5_000) {
        out.extend_from_slice(&[0xff, 0xfa, 0x2c, 0x05, code, 0xff, 0xf0]);
    }
    // Read the answers for a while, so the client is no slow reader, then
    // leave with the rest of them unread.
    let reader = s.try_clone().unwrap();
    let read = std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = [0u8; 256];
        let mut got = 0;
        while got < 20_000 {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    });
    s.write_all(&out).unwrap();
    read.join().unwrap();
    drop(s);
    let left = Instant::now();
    server.wait_status("the departed client is still served", |p| {
        p["clients"].as_array().map(Vec::len) == Some(1)
    });
    let gone_after = left.elapsed();
    stop.store(true, Relaxed);
    echo.join().expect("the witness stalled or lost data");
    let p = &status(&server.control)[0];
    assert!(
        p["requests_dropped"].as_u64() > Some(0),
        "no request of the departed client was dropped ({gone_after:?} to leave): {p:#}"
    );
    eprintln!(
        "client gone {gone_after:?} after closing; requests dropped: {}",
        p["requests_dropped"]
    );
}

/// Counts the process's open sockets.
fn sockets(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// A fast connect/close loop against `--max-clients 64`: lingering
/// half-closed clients are bounded too, so the process holds at most 128
/// client connections (docs/serve.md, Limits), plus the one it is refusing, its
/// listeners and its control socket. Reading /proc/PID/fd is not atomic,
/// so a few connections closing and opening during one read may be seen
/// at once: the test allows 4 over (the code before the fix held 1,576).
#[test]
fn issue18_max_clients_bounds_connections_held_under_a_connect_close_loop() {
    let server = Server::start(&[
        "serve",
        "-d",
        "sim:echo",
        "--max-clients",
        "64",
        "-l",
        "tcp:127.0.0.1:0",
    ]);
    let (addr, pid) = (server.addr(), server.pid());
    let baseline = sockets(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Relaxed) {
                if let Ok(s) = TcpStream::connect(addr) {
                    drop(s);
                    n += 1;
                }
            }
            n
        })
    };
    let mut most = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        most = most.max(sockets(pid));
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Relaxed);
    let connections = looping.join().unwrap();
    let held = most.saturating_sub(baseline);
    eprintln!("{connections} connections in 3 s; at most {held} client sockets held");
    assert!(
        connections > 500,
        "the loop made only {connections} connections"
    );
    assert!(
        held <= 2 * 64 + 4,
        "{held} client sockets held with --max-clients 64"
    );
    // Connect and disconnect lines are logged for at most 20 clients a
    // second; past that, one episode line says they go to debug.
    let log = server.log();
    let secs = start.elapsed().as_secs() + 1;
    for what in ["client connected", "client disconnected"] {
        let n = log
            .lines()
            .filter(|l| l.contains(" INFO ") && l.contains(what))
            .count() as u64;
        assert!(n <= 20 * secs, "{n} lines of '{what}' in {secs} s");
    }
    assert!(
        log.contains("clients connecting faster than 20 a second"),
        "{log}"
    );
    crate::hostile::assert_no_repeats(&log, start.elapsed());
    // It still serves.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(STALL)).unwrap();
    s.write_all(b"still here").unwrap();
    let mut got = [0u8; 10];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still here");
}
