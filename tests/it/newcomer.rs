//! Issue 20 point 3: the small things a newcomer found.

use std::time::Duration;

use crate::common::{Server, command};

#[test]
fn issue20_wait_for_device_does_not_log_device_open_while_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyLATE");
    let server = Server::start(&[
        "serve",
        "--wait-for-device",
        "-d",
        link.to_str().unwrap(),
        "-l",
        "tcp:127.0.0.1:0",
    ]);
    assert!(
        server.wait_log("waiting for it", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    server.wait_status("device waiting", |v| {
        v["device_state"]["state"] == "waiting"
    });
    assert!(!server.log().contains("device open"), "{}", server.log());
}

#[test]
fn issue20_check_config_refuses_a_missing_log_directory_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        format!(
            "[[port]]\nname = \"lab\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n\
             [port.log]\ndir = \"{}\"\n",
            missing.display()
        ),
    )
    .unwrap();
    let check = command()
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    // And serve refuses the same file for the same reason.
    let sock = dir.path().join("control.sock");
    let (status, serve_err, _) = crate::common::run_to_exit(
        &[
            "--control",
            sock.to_str().unwrap(),
            "serve",
            "--config",
            file.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert!(!status.success(), "{serve_err}");
    assert!(serve_err.contains("does not exist"), "{serve_err}");
}

#[test]
fn issue20_log_raw_names_its_value_a_direction() {
    let out = command().args(["log", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("--raw <DIRECTION>"), "{help}");
    assert!(!help.contains("<DIR>"), "{help}");
}

#[test]
fn issue20_output_error_has_one_form_on_every_endpoint() {
    let server = Server::serve(
        "sim:modbus",
        19_200,
        &["--writers", "transaction", "-l", "modbus-tcp:127.0.0.1:0"],
    );
    for addr in [server.addr(), server.modbus[0]] {
        drop(std::net::TcpStream::connect(addr).unwrap());
    }
    let disconnected = |log: &str| {
        log.lines()
            .filter(|l| l.contains("client disconnected"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while disconnected(&server.log()).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = disconnected(&server.log());
    assert_eq!(lines.len(), 2, "{}", server.log());
    for line in lines {
        assert!(line.contains("output_error=\"-\""), "{line}");
    }
}

#[test]
fn issue20_an_operator_unlock_is_logged_once() {
    for writers in ["merge", "transaction"] {
        let server = Server::serve("sim:echo", 115_200, &["--writers", writers]);
        let port = crate::common::status(&server.control)[0]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let (ok, _, err) = crate::common::control(&server.control, &["lock", &port]);
        assert!(ok, "{err}");
        let (ok, _, err) = crate::common::control(&server.control, &["unlock", &port]);
        assert!(ok, "{err}");
        // The daemon's line is the last the unlock logs (the lock's own
        // lines, if any, come before it, in the same task): wait for it to
        // reach the harness, then count.
        assert!(
            server.wait_log(
                "write lock released: released by the operator",
                Duration::from_secs(10)
            ),
            "--writers {writers}:\n{}",
            server.log()
        );
        let log = server.log();
        let released = log.matches("write lock released").count();
        assert_eq!(released, 1, "--writers {writers}:\n{log}");
    }
}

/// The `dropped=N` of the first log line that contains `what` and `who`.
fn dropped_in(log: &str, what: &str, who: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(what) && l.contains(who))?;
    let n = line.split("dropped=").nth(1)?;
    n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue20_a_slow_reader_kick_and_its_disconnect_line_agree() {
    let source = crate::common::sim(serialhub::device::SimMode::Source, 115_200);
    let server = Server::serve(
        source.path().to_str().unwrap(),
        115_200,
        &["--slow-reader", "disconnect", "--client-queue", "4KiB"],
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr()).await.unwrap();
    let me = stalled.local_addr().unwrap().to_string();
    assert!(
        server.wait_log("disconnecting client", Duration::from_secs(20)),
        "{}",
        server.log()
    );
    // Read to the end, so that its loop ends and says so.
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut sink),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let gone = loop {
        let log = server.log();
        if let Some(n) = dropped_in(&log, "client disconnected", &me) {
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = server.log();
    let kick = log
        .lines()
        .find(|l| l.contains("disconnecting client") && l.contains(&me));
    // `discarded` is a client's writes not sent (read-only); what a kicked
    // reader lost is `dropped`, in both lines.
    assert!(kick.is_some_and(|l| !l.contains("discarded=")), "{log}");
    let kicked = dropped_in(&log, "disconnecting client", &me);
    assert!(gone > 0, "{}", server.log());
    assert_eq!(kicked, Some(gone), "{}", server.log());
}

#[test]
fn issue20_sim_mode_loopback_is_refused_not_run_as_echo() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyLOOP");
    let (status, err, _) = crate::common::run_to_exit(
        &[
            "sim",
            "--mode",
            "loopback",
            "--link",
            link.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("sim:loopback") && err.contains("--mode echo"),
        "{err}"
    );
    assert!(!link.exists());
}

/// The Modbus TCP example of docs/modbus.md: what follows "Try it on the
/// simulated slave" up to the end of its code block.
fn readme_modbus_example() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/modbus.md")).unwrap();
    let start = readme
        .find("Try it on the simulated slave")
        .expect("the example");
    let block = &readme[start..];
    let open = block.find("```sh").unwrap();
    let close = open + 5 + block[open + 5..].find("```").unwrap();
    block[open..close].to_owned()
}

#[test]
fn issue20_readme_modbus_example_reaches_mbpoll_with_0x0b() {
    let example = readme_modbus_example();
    // Registers, not values, are what -r and -c name.
    assert!(
        !example.contains("holding registers 1000..1004"),
        "{example}"
    );
    // Shorter than mbpoll's own 1 s, so the exception reaches it.
    let timeout = example
        .split("--reply-timeout ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("the example sets --reply-timeout");
    let timeout = humantime::parse_duration(timeout).unwrap();
    assert!(timeout < Duration::from_secs(1), "{example}");
}

#[test]
fn issue20_completions_help_and_readme_give_one_install_path() {
    let out = command().args(["completions", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/service.md")).unwrap();
    let install =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install")).unwrap();
    let path = "/usr/local/share/bash-completion/completions/serialhub";
    assert!(help.contains(path), "{help}");
    assert!(readme.contains(path));
    assert!(install.contains(path));
    assert!(!help.contains("/etc/bash_completion.d"), "{help}");
}

#[test]
fn issue20_serve_help_and_man_page_cover_what_the_readme_does() {
    let out = command().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let listen = &help[help.find("--listen <ENDPOINT>").expect("--listen")..];
    let listen = &listen[..listen.find("\n\n").unwrap()];
    for word in [
        "modbus-tcp:",
        "rfc2217:",
        "framing=",
        "gap=",
        "max-request=",
        "see=",
        "control=",
    ] {
        assert!(
            listen.contains(word),
            "--listen help has no {word}:\n{listen}"
        );
    }
    let parity = &help[help.find("--parity <PARITY>").expect("--parity")..];
    let parity = parity.lines().nth(1).unwrap_or("");
    assert!(
        parity.contains("Parity bit"),
        "no help for --parity:\n{help}"
    );
    assert!(help.contains("Examples:"), "{help}");
    let man = command().args(["man", "serve"]).output().unwrap();
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains("\n.SH EXAMPLES\n"), "{man}");
    assert!(man.contains("modbus\\-tcp:127.0.0.1:1502"), "{man}");
}

#[test]
fn issue20_subcommands_show_only_the_flags_they_use() {
    let help = |args: &[&str]| {
        let out = command().args(args).arg("--help").output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for cmd in [
        "completions",
        "man",
        "log",
        "sim",
        "check-config",
        "print-config",
    ] {
        let h = help(&[cmd]);
        assert!(
            !h.contains("--control") && !h.contains("--metrics"),
            "{cmd}:\n{h}"
        );
    }
    for cmd in ["serve", "status", "kick", "lock", "unlock", "reload"] {
        assert!(help(&[cmd]).contains("--control"), "{cmd}");
    }
    assert!(help(&["serve"]).contains("--metrics"));
    // Before the command or after it, --control finds the same serve.
    let server = Server::serve("sim:echo", 115_200, &[]);
    let sock = server.control.to_str().unwrap();
    for args in [
        &["--control", sock, "status"],
        &["status", "--control", sock],
    ] {
        let out = command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue20_an_idle_lock_expiry_is_logged_when_it_expires() {
    use tokio::io::AsyncWriteExt;
    let device = crate::common::PtyDevice::new();
    let server = Server::serve(
        &device.path,
        115_200,
        &["-l", "tcp:127.0.0.1:0,lock=inband", "--lock-idle", "300ms"],
    );
    let mut holder = tokio::net::TcpStream::connect(server.addrs[1])
        .await
        .unwrap();
    holder.write_all(b"\x10Lholds\n").await.unwrap();
    assert!(crate::common::device_got(&device, b"holds\n", Duration::from_secs(10)).await);
    // The holder stays, silent, and nobody else writes or asks for status.
    assert!(
        server.wait_log("write lock released: idle for", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    drop(holder);
}
