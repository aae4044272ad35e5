//! Issue #8: pty endpoints (virtual serial ports) under programs that close
//! and reopen them back to back, and the links they are reached by.

use std::time::{Duration, Instant};

use serialhub::measure::cpu_seconds;

use crate::common::{Server, finish, python, run_to_exit};

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

/// A control program like the one in docs/transactions.md: takes the write lock, sends a request,
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

/// The warning serialhub logs when a second program opens a pty endpoint.
const SECOND_PROGRAM: &str = "a second program opened the port";

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
    // Every program closed the port before reopening it: none is taken for
    // a second program.
    assert!(
        !server.log().contains(SECOND_PROGRAM),
        "false alarm:\n{}",
        server.log()
    );
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

/// Writes a line to a pty endpoint on `sim:echo` and expects it back.
const ECHO_ONCE: &str = r#"
import serial, sys
port = serial.Serial(sys.argv[1], 115200, timeout=10)
port.write(b"still-here\n")
reply = port.readline()
print(reply)
sys.exit(0 if reply == b"still-here\n" else 1)
"#;

async fn echo_once(link: &std::path::Path) -> (bool, String) {
    let p = python(ECHO_ONCE, &[link.to_str().unwrap()]);
    tokio::task::spawn_blocking(|| finish(p, Duration::from_secs(20)))
        .await
        .unwrap()
}

/// Issue #8: a second serialhub on the same pty path fails with a clear
/// error, and neither instance removes the other's link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_second_instance_on_a_pty_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyHUB");
    let pty = format!("pty:{}", link.display());
    let mut first = Server::serve("sim:echo", 115200, &["-l", &pty]);
    let ours = std::fs::read_link(&link).unwrap();

    let (status, err, _) = run_to_exit(
        &[
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
            "-l",
            &pty,
        ],
        Duration::from_secs(20),
    );
    assert!(!status.success(), "second instance started: {err}");
    assert!(err.contains(&*link.to_string_lossy()), "{err}");
    assert!(err.contains("another running serialhub"), "{err}");

    assert_eq!(std::fs::read_link(&link).unwrap(), ours, "link changed");
    let (ok, out) = echo_once(&link).await;
    assert!(ok, "first instance stopped working: {out}\n{}", first.log());
    assert!(
        first
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(link.symlink_metadata().is_err(), "link left behind");
}

/// Issue #8: a pty endpoint never replaces or deletes what is not its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_pty_link_leaves_foreign_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyHUB");
    let pty = format!("pty:{}", link.display());
    let serve = |extra: &str| {
        run_to_exit(
            &[
                "serve",
                "-d",
                "sim:echo",
                "-l",
                "tcp:127.0.0.1:0",
                "-l",
                extra,
            ],
            Duration::from_secs(20),
        )
    };

    // A link to something that exists (a device, say) is refused, untouched.
    let device = dir.path().join("ttyUSB0");
    std::fs::write(&device, b"").unwrap();
    std::os::unix::fs::symlink(&device, &link).unwrap();
    let (status, err, _) = serve(&pty);
    assert!(!status.success(), "replaced a live link: {err}");
    assert!(err.contains(&*device.to_string_lossy()), "{err}");
    assert!(err.contains("If it is a stale link, remove it"), "{err}");
    assert_eq!(std::fs::read_link(&link).unwrap(), device);

    // A dangling link (left by a crash) is replaced. A file named like the
    // temporary link serialhub used to make stays.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(dir.path().join("pts-gone"), &link).unwrap();
    let unrelated = dir.path().join("ttyHUB.serialhub-new");
    std::fs::write(&unrelated, b"not serialhub's").unwrap();
    let mut server = Server::serve("sim:echo", 115200, &["-l", &pty]);
    let ours = std::fs::read_link(&link).unwrap();
    assert!(ours.starts_with("/dev/pts"), "{ours:?}");
    let (ok, out) = echo_once(&link).await;
    assert!(ok, "{out}\n{}", server.log());

    // The user points the path elsewhere while serialhub runs: at exit,
    // serialhub leaves their link.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&device, &link).unwrap();
    assert!(
        server
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), device);
    assert_eq!(std::fs::read(&unrelated).unwrap(), b"not serialhub's");
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ttyHUB", "ttyHUB.serialhub-new", "ttyUSB0"]);
}

/// Issue #8: nothing stops a second program from opening a pty endpoint that
/// one already has (see docs/endpoints.md), but it is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_second_program_on_a_pty_endpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyONE");
    let server = Server::serve(
        "sim:echo",
        115200,
        &["-l", &format!("pty:{}", link.display())],
    );
    let script = r#"
import os, sys, time
first = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
time.sleep(0.5)
second = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
time.sleep(0.5)
os.close(second)
os.close(first)
"#;
    let p = python(script, &[link.to_str().unwrap()]);
    let (ok, out) = tokio::task::spawn_blocking(|| finish(p, Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(
        server.wait_log(SECOND_PROGRAM, Duration::from_secs(10)),
        "{}",
        server.log()
    );
    assert_eq!(server.log().matches(SECOND_PROGRAM).count(), 1);
}

/// Issue 19: after a SIGKILL (the OOM killer, `systemctl kill`), the same
/// command comes up on the same links, though the new process's own ptys
/// take the pty numbers the stale links name; a live serve's links are
/// still refused to a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_a_killed_serve_restarts_on_the_same_pty_links() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
    let (pty_a, pty_b) = (
        format!("pty:{}", a.display()),
        format!("pty:{}", b.display()),
    );
    for round in 0..3 {
        let server = Server::serve("sim:echo", 115200, &["-l", &pty_a, "-l", &pty_b]);
        for link in [&a, &b] {
            let to = std::fs::read_link(link).unwrap();
            assert!(to.starts_with("/dev/pts"), "round {round}: {to:?}");
        }
        let (ok, out) = echo_once(&a).await;
        assert!(ok, "round {round}: {out}\n{}", server.log());
        if round == 0 {
            let other = dir.path().join("other.sock");
            let (status, err, _) = run_to_exit(
                &[
                    "--control",
                    other.to_str().unwrap(),
                    "serve",
                    "-d",
                    "sim:echo",
                    "-l",
                    "tcp:127.0.0.1:0",
                    "-l",
                    &pty_b,
                ],
                Duration::from_secs(20),
            );
            assert!(!status.success(), "a second serve took a live link: {err}");
            assert!(err.contains("another running serialhub"), "{err}");
        }
        // Dropping the server kills it with SIGKILL: the links stay behind.
        drop(server);
        assert!(a.symlink_metadata().is_ok() && b.symlink_metadata().is_ok());
    }
}
