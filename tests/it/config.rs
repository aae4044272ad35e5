//! Issue 10: the configuration file, through the real binary: `check-config`
//! summarises a good file and names the line of a bad one, `print-config`
//! prints a file that loads, and `serve --config` serves its port.
//! Issue 18: a file of 10,000 ports is checked promptly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{Server, read_until, run_to_exit};

/// Runs `serialhub ARGS` with `stdin` as its standard input, to the end.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = crate::common::command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serialhub");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for serialhub")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn issue10_check_config_summarises_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let tty = dir.path().join("ttyLAB2");
    let file = write(
        dir.path(),
        "hub.toml",
        &format!(
            r#"[control]
socket = "{d}/serialhub.sock"

[metrics]
listen = "127.0.0.1:9108"

[defaults]
baud = 19200

[[port]]
name = "lab1"
device = "sim:echo"
baud = 115200
listen = ["tcp:127.0.0.1:7001", "pty:{d}/ttyLAB1"]

[[port]]
name = "lab2"
device = "{tty}"
parity = "even"
listen = ["unix:{d}/lab2.sock,mode=0660"]
"#,
            d = dir.path().display(),
            tty = tty.display(),
        ),
    );
    let out = run(&["check-config", file.to_str().unwrap()], b"");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0]
            .starts_with("port lab1: device sim:echo, 115200 8N1; listen tcp:127.0.0.1:7001, pty:"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "port lab2: device {}, 19200 8E1; listen unix:",
            tty.display()
        )),
        "{stdout}"
    );
    assert!(lines[2].contains("serialhub.sock, mode 0600"), "{stdout}");
    assert_eq!(lines[3], "metrics: listen 127.0.0.1:9108");
    // It starts nothing: no socket, no pty link.
    assert!(!dir.path().join("serialhub.sock").exists());
    assert!(!dir.path().join("ttyLAB1").exists());
}

#[test]
fn issue10_a_typo_is_named_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hub.toml",
        "[control]\nsocket = \"/tmp/x.sock\"\n\n[[port]]\nname = \"lab1\"\ndevcie = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n",
    );
    let path = file.to_str().unwrap();
    let out = run(&["check-config", path], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:6:1: unknown field `devcie`")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // serve says the same, and starts nothing.
    let (status, stderr, _) = run_to_exit(&["serve", "--config", path], Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:6:1: unknown field `devcie`")),
        "{stderr}"
    );
    // A bad value in a good key: the port and the key are named.
    let file = write(
        dir.path(),
        "range.toml",
        "[[port]]\nname = \"lab1\"\ndevice = \"sim:echo\"\nmax-clients = 0\nlisten = [\"tcp:127.0.0.1:0\"]\n",
    );
    let out = run(&["check-config", file.to_str().unwrap()], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("range.toml:1:1: port \"lab1\": max-clients 0 is out of range (1 to 65536)"),
        "{stderr}"
    );
}

#[test]
fn issue10_print_config_prints_a_file_that_loads() {
    let out = run(&["print-config"], b"");
    assert!(out.status.success());
    let example = text(&out.stdout);
    assert!(example.contains("[[port]]") && example.contains("max-inflight = \"1s\""));
    // Through a pipe...
    let checked = run(&["check-config", "/dev/stdin"], &out.stdout);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(text(&checked.stdout).starts_with("port lab1: device sim:echo, 9600 8N1"));
    // ...and a file.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "hub.toml", &example);
    let checked = run(&["check-config", file.to_str().unwrap()], b"");
    assert!(checked.status.success(), "{}", text(&checked.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_serve_config_serves_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hub.toml",
        &format!(
            "[control]\nsocket = \"{}\"\n\n[defaults]\nmax-clients = 4\n\n[[port]]\nname = \"lab1\"\ndevice = \"sim:echo\"\nbaud = 115200\nlisten = [\"tcp:127.0.0.1:0\"]\n",
            dir.path().join("hub.sock").display()
        ),
    );
    let server = Server::start(&["serve", "--config", file.to_str().unwrap()]);
    let mut client = TcpStream::connect(server.addr()).await.unwrap();
    client.write_all(b"hello from a file\n").await.unwrap();
    read_until(&mut client, b"hello from a file\n", Duration::from_secs(30)).await;
}

#[test]
fn issue10_config_and_port_flags_are_exclusive() {
    let (status, stderr, _) = run_to_exit(
        &["serve", "--config", "hub.toml", "--device", "sim:echo"],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'--config <FILE>' cannot be used with '--device <DEVICE>'"),
        "{stderr}"
    );
}

/// Issue 18: checking for clashes compared every pair of ports and took
/// minutes for 10,000; through maps it takes well under a second (the
/// release binary; this debug one is slower), far inside the bound.
#[test]
fn issue18_a_file_of_10000_ports_is_checked_promptly() {
    const PORTS: usize = 10_000;
    const BOUND: Duration = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut file = format!("[control]\nsocket = \"{d}/hub.sock\"\n\n");
    for i in 0..PORTS {
        // Every other device is a tty path that exists, so that it resolves.
        let device = if i % 2 == 0 {
            let tty = dir.path().join(format!("tty{i}"));
            std::fs::write(&tty, b"").unwrap();
            tty.display().to_string()
        } else {
            "sim:echo".to_owned()
        };
        file.push_str(&format!(
            "[[port]]\nname = \"p{i}\"\ndevice = \"{device}\"\n\
             listen = [\"tcp:127.0.0.1:{}\", \"unix:{d}/p{i}.sock\"]\n\n",
            10_000 + i
        ));
    }
    let good = write(dir.path(), "hub.toml", &file);
    let (status, stderr, took) = run_to_exit(&["check-config", good.to_str().unwrap()], BOUND);
    assert!(status.success(), "{stderr}");
    eprintln!("check-config of {PORTS} ports: {took:?}");
    // A last port on the first port's device: every port was compared.
    file.push_str(&format!(
        "[[port]]\nname = \"last\"\ndevice = \"{d}/tty0\"\nlisten = [\"tcp:127.0.0.1:0\"]\n"
    ));
    let bad = write(dir.path(), "bad.toml", &file);
    let (status, stderr, took) = run_to_exit(&["check-config", bad.to_str().unwrap()], BOUND);
    assert_eq!(status.code(), Some(2), "{stderr}");
    let line = 3 + 5 * PORTS + 3;
    assert!(
        stderr.contains(&format!(
            ":{line}:10: port \"last\": device {d}/tty0 is also used by port \"p0\""
        )),
        "{stderr}"
    );
    eprintln!(
        "check-config of {} ports, the last clashing: {took:?}",
        PORTS + 1
    );
}
