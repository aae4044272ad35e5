//! Issue #8: pty endpoints (virtual serial ports) under programs that close
//! and reopen them back to back, and the links they are reached by.

use std::time::{Duration, Instant};

use serialhub::measure::cpu_seconds;

use crate::common::{Server, finish, python};

/// Closes and at once reopens a port `argv[2]` times, holding it open a few
/// milliseconds each time, like a program restarted in a loop.
const REOPENER: &str = r#"
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
for i in range(int(sys.argv[2])):
    os.close(fd)
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
    time.sleep(0.02)
os.close(fd)
"#;

/// The control program of the README: takes the write lock, sends a request,
/// reads the echoed reply, releases. It reopens the port every ten exchanges.
/// Prints the slowest exchange; fails on a missing or wrong reply.
const CONTROLLER: &str = r#"
import serial, sys, time
worst = 0.0
port = None
for i in range(int(sys.argv[2])):
    if i % 10 == 0:
        if port:
            port.close()
        port = serial.Serial(sys.argv[1], 115200, timeout=10)
    start = time.monotonic()
    line = b"request-%d\n" % i
    port.write(b"\x10L" + line)
    reply = port.readline()
    port.write(b"\x10U")
    worst = max(worst, time.monotonic() - start)
    if reply != line:
        print("exchange %d: sent %r, got %r" % (i, line, reply))
        sys.exit(1)
print("slowest exchange: %.3f s" % worst)
"#;

/// Issue #8: programs that close and reopen pty endpoints back to back must
/// not put serialhub into a busy loop. A stale hang-up on the pty master made
/// the client task poll the master without end while the next program held
/// the port, starving everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_reopening_pty_endpoints_does_not_spin() {
    let dir = tempfile::tempdir().unwrap();
    let (ctl, term, log) = (
        dir.path().join("ttyCTL"),
        dir.path().join("ttyTERM"),
        dir.path().join("ttyLOG"),
    );
    let server = Server::serve(
        "sim:echo",
        115200,
        &[
            "-l",
            &format!("pty:{},lock=inband", ctl.display()),
            "-l",
            &format!("pty:{}", term.display()),
            "-l",
            &format!("pty:{},access=ro", log.display()),
        ],
    );
    let cpu_before = cpu_seconds(server.pid()).unwrap();
    let start = Instant::now();
    let programs = [
        python(REOPENER, &[term.to_str().unwrap(), "200"]),
        python(REOPENER, &[log.to_str().unwrap(), "200"]),
        python(CONTROLLER, &[ctl.to_str().unwrap(), "100"]),
    ];
    for p in programs {
        let (ok, out) = tokio::task::spawn_blocking(|| finish(p, Duration::from_secs(120)))
            .await
            .unwrap();
        assert!(ok, "program failed: {out}\nserialhub:\n{}", server.log());
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.pid()).unwrap() - cpu_before;
    // The work is small (a few hundred opens and lines): serialhub needs a
    // few percent of a core for it (0.2 s in 5 s here). The busy loop burnt
    // a whole core while a reopened port was held (1.8 to 2.5 s in 5 s).
    assert!(
        cpu < 0.25 * wall,
        "serialhub used {cpu:.2} s of CPU in {wall:.2} s:\n{}",
        server.log()
    );
    // And it stays idle once the programs are gone.
    let idle_before = cpu_seconds(server.pid()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = cpu_seconds(server.pid()).unwrap() - idle_before;
    assert!(idle < 0.3, "serialhub used {idle:.2} s of CPU while idle");
}
