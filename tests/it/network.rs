//! Issue 21: network access. `from=` allow-lists close a peer from
//! elsewhere right after accept, before it costs a client slot, and count
//! and log it (once per address per 10 s, however many connections).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{Server, endpoints, run_to_exit, status};
use crate::metrics::{get, parse, sample};

/// Whether a client at `addr` is served: it writes `probe` and waits for
/// the echo (true), or for serialhub to close it (false).
fn served(addr: SocketAddr, probe: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    served_on(&mut s, probe)
}

fn served_on(s: &mut TcpStream, probe: &[u8]) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A refused peer may already be closed: the write may fail.
    let _ = s.write_all(probe);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(probe.len()).any(|w| w == probe) {
                    return true;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
        assert!(
            Instant::now() < deadline,
            "neither served nor closed: {got:?}"
        );
    }
}

#[test]
fn issue21_from_closes_other_networks_before_a_slot_counts_and_logs_once() {
    let server = Server::start(&[
        "--metrics",
        "127.0.0.1:0",
        "serve",
        "-d",
        "sim:echo",
        "-b",
        "115200",
        // One slot, taken below: a refused peer must not need it.
        "--max-clients",
        "1",
        "-l",
        "tcp:127.0.0.1:0,from=127.0.0.0/8",
        "-l",
        "tcp:127.0.0.1:0,from=10.0.0.0/8,from=192.168.0.0/16",
    ]);
    let (allowed, elsewhere) = (server.addrs[0], server.addrs[1]);
    let mut client = TcpStream::connect(allowed).unwrap();
    assert!(served_on(&mut client, b"inside\n"), "{}", server.log());

    const BURST: usize = 20;
    let burst = Instant::now();
    for i in 0..BURST {
        assert!(
            !served(elsewhere, format!("outside-{i}\n").as_bytes()),
            "a peer outside from= was served\n{}",
            server.log()
        );
    }
    server.wait_status("the refusals were not counted", |p| {
        p["refusals"]["network"] == BURST
    });
    let port = &status(&server.control)[0];
    // Refused before a slot: not as --max-clients, and no client came.
    assert_eq!(port["refusals"]["max_clients"], 0, "{port:#}");
    assert_eq!(port["refused"], 0, "{port:#}");
    assert_eq!(port["clients"].as_array().unwrap().len(), 1, "{port:#}");
    let by = port["endpoint_refusals"].as_array().unwrap();
    assert_eq!(by.len(), 2, "{port:#}");
    assert_eq!(by[0]["endpoint"], format!("tcp:{allowed}"), "{port:#}");
    assert_eq!(by[0]["network"], 0, "{port:#}");
    assert_eq!(by[1]["endpoint"], format!("tcp:{elsewhere}"), "{port:#}");
    assert_eq!(by[1]["network"], BURST, "{port:#}");

    // Logged once for the one address, not once per connection (once per
    // 10 s begun, should a loaded machine take that long).
    let took = burst.elapsed().as_secs() as usize;
    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection refused"))
        .collect();
    assert!(
        !lines.is_empty() && lines.len() <= 1 + took / 10,
        "{took}s: {log}"
    );
    assert!(
        lines[0].contains("reason=network") && lines[0].contains("peer=tcp:127.0.0.1:"),
        "{log}"
    );

    let (code, _, body) = get(&server.metrics_addr(), "/metrics");
    assert!(code.contains(" 200 "), "{code}");
    let f = parse(&body);
    let name = port["name"].as_str().unwrap();
    let network = [("port", name), ("reason", "network")];
    assert_eq!(sample(&f, "serialhub_refused", &network), BURST as f64);
    let full = [("port", name), ("reason", "max_clients")];
    assert_eq!(sample(&f, "serialhub_refused", &full), 0.0);

    // The client inside was never disturbed.
    assert!(served_on(&mut client, b"still here\n"), "{}", server.log());
}

/// A peer reaching an IPv6 listener over IPv4 is judged by its IPv4
/// address; an IPv6 peer outside the networks is refused. RFC 2217
/// endpoints judge the same way, before their Telnet greeting.
#[test]
fn issue21_from_judges_mapped_ipv4_peers_of_an_ipv6_listener() {
    let server = Server::start(&[
        "serve",
        "-d",
        "sim:echo",
        "-b",
        "115200",
        "-l",
        "tcp:[::]:0,insecure,from=127.0.0.0/8",
        "-l",
        "rfc2217:127.0.0.1:0,from=10.0.0.0/8",
    ]);
    let rfc2217 = endpoints(&status(&server.control), "rfc2217:");
    let mut telnet = TcpStream::connect(rfc2217[0]).unwrap();
    telnet
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut greeting = Vec::new();
    // Closed with nothing sent (or reset): no Telnet negotiation at all.
    let _ = telnet.read_to_end(&mut greeting);
    assert!(greeting.is_empty(), "{greeting:?}");
    server.wait_status("the RFC 2217 peer was not counted", |p| {
        p["refusals"]["network"] == 1 && p["endpoint_refusals"][1]["network"] == 1
    });
    let port = server.addr().port();
    assert!(
        served(SocketAddr::from(([127, 0, 0, 1], port)), b"v4\n"),
        "{}",
        server.log()
    );
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    assert!(!served(v6, b"v6\n"), "{}", server.log());
    server.wait_status("the IPv6 peer was not counted", |p| {
        p["refusals"]["network"] == 2 && p["endpoint_refusals"][0]["network"] == 1
    });
}

/// `serialhub -qq ARGS`, which must exit 2 (a usage error): its stderr.
fn refused(args: &[&str]) -> String {
    let mut all = vec!["-qq"];
    all.extend_from_slice(args);
    let (status, err, _) = run_to_exit(&all, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{args:?}: {err}");
    err
}

/// The safe default: plain text on an address that is not loopback is
/// refused at start-up with what to add; `insecure` accepts it.
#[test]
fn issue21_plain_text_on_the_network_needs_insecure() {
    for (spec, extra) in [
        ("tcp:0.0.0.0:0", &[][..]),
        ("tcp:[::]:0,from=10.0.0.0/8", &[]),
        ("rfc2217:0.0.0.0:0", &[]),
        ("modbus-tcp:0.0.0.0:0", &["--writers", "transaction"]),
    ] {
        let mut args = vec![
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
            "-l",
            spec,
        ];
        args.extend_from_slice(extra);
        let err = refused(&args);
        let shown = spec.split(',').next().unwrap();
        assert!(
            err.contains(&format!("--listen {shown} would serve plain text on ")),
            "{spec}: {err}"
        );
        assert!(err.contains("not a loopback address"), "{spec}: {err}");
        assert!(err.contains(&format!("({shown},tls)")), "{spec}: {err}");
        assert!(
            err.contains(&format!("({shown},insecure)")),
            "{spec}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{spec}: {err}");
    }

    // Knowingly: served, from loopback as from anywhere. Loopback (by
    // name too) and unix endpoints need nothing.
    let dir = tempfile::tempdir().unwrap();
    let unix = format!("unix:{}", dir.path().join("hub.sock").display());
    let server = Server::start(&[
        "serve",
        "-d",
        "sim:echo",
        "-l",
        "tcp:0.0.0.0:0,insecure",
        "-l",
        "tcp:localhost:0",
        "-l",
        &unix,
    ]);
    let port = server.addr().port();
    assert!(served(
        SocketAddr::from(([127, 0, 0, 1], port)),
        b"knowingly\n"
    ));
}

/// `check-config` refuses what `serve --config` refuses, naming the port.
#[test]
fn issue21_check_config_refuses_plain_text_on_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    let write = |listen: &str| {
        std::fs::write(
            &file,
            format!("[[port]]\nname = \"lab1\"\ndevice = \"sim:echo\"\nlisten = [{listen}]\n"),
        )
        .unwrap()
    };
    let check = || {
        run_to_exit(
            &["check-config", file.to_str().unwrap()],
            Duration::from_secs(20),
        )
    };

    write("\"pty:/tmp/ttyNOPE\", \"rfc2217:0.0.0.0:7002\"");
    let (status, err, _) = check();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("port \"lab1\""), "{err}");
    assert!(
        err.contains("listen rfc2217:0.0.0.0:7002 would serve plain text on 0.0.0.0:7002"),
        "{err}"
    );
    assert!(err.contains("(rfc2217:0.0.0.0:7002,insecure)"), "{err}");
    let (status, err, _) = run_to_exit(
        &["serve", "--config", file.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("would serve plain text"), "{err}");

    write("\"rfc2217:0.0.0.0:7002,insecure\", \"tcp:127.0.0.1:7001\"");
    let (status, err, _) = check();
    assert_eq!(status.code(), Some(0), "{err}");
}
