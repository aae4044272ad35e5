//! Issue 8: clients past a limit are told, never left waiting unseen, and
//! can never starve the device of the descriptor it needs to reopen.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use serialhub::device::SimMode;

use crate::common::{Server, sim};

/// What became of a client: served (it got `needle` from the device), or
/// closed by serialhub (EOF or reset). `None` if it just waited.
fn fate(s: &mut TcpStream, needle: &[u8], timeout: Duration) -> Option<bool> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Some(false),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(needle.len()).any(|w| w == needle) {
                    return Some(true);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(false),
        }
    }
    None
}

#[test]
fn issue8_clients_past_max_clients_are_closed_and_slots_free_on_close() {
    let server = Server::serve("sim:echo", 115_200, &["--max-clients", "3"]);
    let addr = server.addr();
    let mut served: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap();
            let hello = format!("hello-{i}\n");
            s.write_all(hello.as_bytes()).unwrap();
            assert_eq!(
                fate(&mut s, hello.as_bytes(), Duration::from_secs(10)),
                Some(true)
            );
            s
        })
        .collect();
    // Past the limit: each is closed, none is left hanging.
    for i in 0..5 {
        let mut s = TcpStream::connect(addr).unwrap();
        assert_eq!(
            fate(&mut s, b"\n", Duration::from_secs(10)),
            Some(false),
            "client {i} past --max-clients was neither closed nor refused\n{}",
            server.log()
        );
    }
    assert!(server.wait_log("client limit reached", Duration::from_secs(5)));
    // Counted by reason too, for the port and for the endpoint (issue 21).
    server.wait_status("the refusals were not counted by reason", |p| {
        p["refused"] == 5
            && p["refusals"]["max_clients"] == 5
            && p["refusals"]["network"] == 0
            && p["endpoint_refusals"][0]["max_clients"] == 5
    });

    // A client that half-closes frees its slot at once, while it still
    // lingers to receive replies: the next client is served, and its echo
    // reaches the lingering one.
    let mut leaving = served.remove(0);
    leaving.shutdown(Shutdown::Write).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next = loop {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"next-client\n").unwrap();
        if fate(&mut s, b"next-client\n", Duration::from_secs(1)) == Some(true) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no slot came free\n{}",
            server.log()
        );
    };
    assert_eq!(
        fate(&mut leaving, b"next-client\n", Duration::from_secs(5)),
        Some(true),
        "the slot was freed only after the leaving client had gone"
    );
    next.write_all(b"still-served\n").unwrap();
    assert_eq!(
        fate(&mut next, b"still-served\n", Duration::from_secs(5)),
        Some(true)
    );
    assert!(server.wait_log("accepting clients again", Duration::from_secs(5)));
}

/// Starts serialhub with `nofile` as its descriptor limit, soft and hard.
pub(crate) fn serve_limited(device: &str, nofile: u64) -> Server {
    let args = [
        "serve",
        "-d",
        device,
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0",
    ];
    Server::start_with(&args, |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

fn relink(target: &std::path::Path, link: &std::path::Path) {
    let tmp = link.with_extension("new");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue8_device_reopens_at_the_descriptor_limit() {
    const CLIENTS: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyFD");
    let first = sim(SimMode::Echo, 115_200);
    relink(first.path(), &link);
    let server = serve_limited(link.to_str().unwrap(), 256);
    let addr: SocketAddr = server.addr();

    let mut clients = tokio::task::spawn_blocking(move || {
        (0..CLIENTS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // Wait until serialhub has taken clients up to its limit.
    let fd_dir = format!("/proc/{}/fd", server.pid());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&fd_dir).map_or(0, |d| d.count()) < 240 {
        assert!(
            Instant::now() < deadline,
            "serialhub never reached its fd limit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    drop(first); // the device goes away...
    assert!(server.wait_log("device lost", Duration::from_secs(10)));
    // ...while clients keep knocking.
    let more = tokio::task::spawn_blocking(move || {
        (0..50)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let second = sim(SimMode::Echo, 115_200);
    relink(second.path(), &link);
    let back = Instant::now();
    assert!(
        server.wait_log("device reopened", Duration::from_secs(15)),
        "the device was not reopened with clients holding every descriptor\n{}",
        server.log()
    );
    eprintln!("device reopened {:?} after it came back", back.elapsed());

    // Every client was either served (it gets the echo) or closed; none
    // waits unseen.
    clients.extend(more);
    let report = tokio::task::spawn_blocking(move || {
        let mut first = clients.remove(0);
        first.write_all(b"ping-all\n").unwrap();
        let mut served =
            usize::from(fate(&mut first, b"ping-all\n", Duration::from_secs(10)) == Some(true));
        let (mut closed, mut waiting) = (0, 0);
        for c in &mut clients {
            match fate(c, b"ping-all\n", Duration::from_secs(5)) {
                Some(true) => served += 1,
                Some(false) => closed += 1,
                None => waiting += 1,
            }
        }
        (served, closed, waiting)
    })
    .await
    .unwrap();
    let (served, closed, waiting) = report;
    eprintln!("served {served}, closed {closed}, waiting {waiting}");
    assert!(served > 100, "{report:?}\n{}", server.log());
    assert!(closed > 0, "{report:?}");
    assert!(server.log().contains("out of file descriptors"));
    assert_eq!(waiting, 0, "clients left waiting: {report:?}");
}
