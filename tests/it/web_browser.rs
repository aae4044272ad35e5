//! Issue 23: the web console in a real browser. Each test starts the real
//! serialhub with `--http 127.0.0.1:0` (the address read back from
//! `status --json`) and runs a selenium script from `tests/web/` that drives
//! headless Chromium through Debian's chromedriver (scripts/test installs
//! both and selenium). A script stops at named steps, where the test does
//! what only it can (send device bytes, flood the port, read `status`), then
//! lets it go on; its last line is what it measured.
//!
//! One browser test runs at a time (Chromium takes most of a core), and a
//! flood runs `SERIALHUB_WEB_FLOOD_SECS` seconds (default 60, as the issue
//! says). `SERIALHUB_WEB_SCREENSHOTS=docs` saves the README's screenshots
//! into docs/ (else into a temp dir, where they are only checked).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{PtyDevice, Server, status};

/// One Chromium at a time: two would starve each other (and the server
/// under test) on a small machine, and turn deadlines into flakes.
static BROWSER: Mutex<()> = Mutex::new(());

fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// A running selenium script (tests/web/NAME.py) and its line protocol.
struct Script {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    fn start(name: &str, args: &[&str]) -> Script {
        require_browser();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/web")
            .join(format!("{name}.py"));
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdin = child.stdin.take().expect("stdin");
        Script {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// The next line with `prefix` (other lines are the script's own
    /// output, kept for a failure report).
    fn expect_line(&mut self, prefix: &str) -> Value {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut other = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return serde_json::from_str(rest.trim()).unwrap_or(Value::Null);
                    }
                    other += &line;
                    other.push('\n');
                }
                Err(e) => {
                    // Let the stderr reader catch up with a dying script.
                    let _ = self.child.wait_timeout(Duration::from_secs(5));
                    panic!(
                        "{}.py: no `{prefix}` ({e:?}); its output:\n{other}\nits stderr:\n{}",
                        self.name,
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// Waits until the script reaches step `name`.
    fn step(&mut self, name: &str) -> Value {
        self.expect_line(&format!("STEP {name} "))
    }

    /// Lets the script go on from its step.
    fn go(&mut self) {
        writeln!(self.stdin, "go").expect("write to the script");
        self.stdin.flush().expect("flush the script's stdin");
    }

    /// Waits for the script's result; it must exit with success.
    fn result(mut self) -> Value {
        let result = self.expect_line("RESULT ");
        let status = self
            .child
            .wait_timeout(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{}.py did not exit after its result", self.name));
        assert!(
            status.success(),
            "{}.py: {status}\n{}",
            self.name,
            self.stderr.lock().unwrap()
        );
        result
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // On a failed test: the script's atexit closes its browsers.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait WaitTimeout {
    fn wait_timeout(&mut self, t: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout(&mut self, t: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + t;
        loop {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Chromium, chromedriver and selenium, as scripts/test installs them.
fn require_browser() {
    for f in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(f).exists(),
            "{f} is missing: run the tests with scripts/test, which installs Debian's chromium and chromium-driver"
        );
    }
    let ok = Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "selenium is missing: run the tests with scripts/test, which installs it"
    );
}

/// `serialhub --http 127.0.0.1:0 serve -d DEVICE -b 115200 -l tcp:127.0.0.1:0 EXTRA...`.
fn serve_web(device: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--http",
        "127.0.0.1:0",
        "serve",
        "-d",
        device,
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The web listener's address and the first port's name, from `status --json`.
fn web(server: &Server) -> (String, String) {
    let s = status(&server.control);
    let http = s[0]["http"]
        .as_str()
        .unwrap_or_else(|| panic!("no http address in the status: {s:#}"))
        .to_owned();
    let name = s[0]["name"].as_str().expect("a port name").to_owned();
    (http, name)
}

/// The port's clients whose peer is a browser (`web:ADDRESS`).
fn web_clients(port: &Value) -> Vec<Value> {
    port["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["peer"].as_str().is_some_and(|p| p.starts_with("web:")))
        .cloned()
        .collect()
}

/// Where the screenshots go: docs/ when asked, else a temp dir.
fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var("SERIALHUB_WEB_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => (Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), None),
        _ => {
            let tmp = tempfile::tempdir().expect("temp dir");
            (tmp.path().to_owned(), Some(tmp))
        }
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "{} is not a screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[test]
fn issue23_browser_opens_the_terminal_from_the_dashboard_and_sees_its_typing_echoed() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let (shots, _tmp) = screenshot_dir();
    let dir = shots.to_str().expect("a UTF-8 path");
    let mut script = Script::start("terminal_echo", &[&http, &name, dir]);

    script.step("dashboard");
    // A TCP client puts a line through the port: the dashboard shows it live.
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(b"a line from a tcp client\r\n").unwrap();
    read_until(&mut tcp, b"tcp client\r\n");
    script.go();

    script.step("typed");
    // The browser's keys went through the device: the TCP client saw the echo.
    read_until(&mut tcp, b"hello\r");
    let s = status(&server.control);
    let web = web_clients(&s[0]);
    assert_eq!(web.len(), 1, "one browser client: {s:#}");
    assert!(web[0]["bytes_in"].as_u64() >= Some(6), "{s:#}");
    script.go();

    let result = script.result();
    assert!(
        result["rows"].as_str().unwrap_or("").contains("hello"),
        "{result}"
    );
    assert_png(&shots.join("web-dashboard.png"));
    assert_png(&shots.join("web-terminal.png"));
}

/// Polls `f` until it holds or `timeout` passes.
fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Reads a blocking stream until `needle` came; panics with what came instead.
fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "no {:?} before {other:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    got
}

/// `printf 'PASSWORD\n' | serialhub passwd`: an argon2id PHC string.
fn password_hash(password: &str) -> String {
    let mut child = crate::common::command()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serialhub passwd");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "serialhub passwd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

#[test]
fn issue23_two_tabs_see_the_device_and_a_read_only_tab_cannot_type() {
    let _one = one_browser();
    let device = PtyDevice::new();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("serialhub.toml");
    let toml = format!(
        "[control]\nsocket = \"{sock}\"\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n\
         [[http.user]]\nname = \"alice\"\npassword-hash = \"{rw}\"\nrole = \"rw\"\n\n\
         [[http.user]]\nname = \"bob\"\npassword-hash = \"{ro}\"\nrole = \"ro\"\n\n\
         [[port]]\nname = \"lab1\"\ndevice = \"{dev}\"\nbaud = 115200\nlisten = [\"tcp:127.0.0.1:0\"]\n",
        sock = dir.path().join("control.sock").display(),
        rw = password_hash("alice's secret"),
        ro = password_hash("bob's secret"),
        dev = device.path,
    );
    std::fs::write(&conf, toml).unwrap();
    let server = Server::start(&["serve", "--config", conf.to_str().unwrap()]);
    let (http, name) = web(&server);
    assert_eq!(name, "lab1");
    let mut script = Script::start(
        "two_tabs",
        &[&http, &name, "alice:alice's secret", "bob:bob's secret"],
    );

    script.step("both");
    let s = status(&server.control);
    assert_eq!(web_clients(&s[0]).len(), 2, "two browser clients: {s:#}");
    device.send(b"line-from-the-device 42\r\n");
    script.go();

    script.step("ro-typed");
    // The server counts the read-only tab's keys as discarded.
    server.wait_status("the read-only tab's typing discarded and counted", |p| {
        web_clients(p)
            .iter()
            .any(|c| c["discarded"].as_u64() >= Some(14))
    });
    script.go();

    script.step("rw-typed");
    assert!(
        wait_for(Duration::from_secs(20), || device
            .received()
            .windows(14)
            .any(|w| w == b"rw-typed-keys\r")),
        "the read-write tab's keys did not reach the device: {:?}",
        String::from_utf8_lossy(&device.received())
    );
    // The read-only tab typed first; what it typed never came.
    let got = device.received();
    assert!(
        !got.windows(6).any(|w| w == b"ro-typ"),
        "the read-only tab's keys reached the device: {:?}",
        String::from_utf8_lossy(&got)
    );
    script.go();
    let result = script.result();
    assert!(
        result["upgrades"]["foreign"]
            .as_str()
            .is_some_and(|s| s.contains(" 403 "))
    );
}

/// A TCP client of the port that writes numbered lines at `share` of the
/// line rate into sim:echo (so the device streams them to every client) and
/// reads the echo back, so it is never a slow reader itself.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    got: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A flood line: 64 bytes.
fn flood_line(n: u64) -> String {
    format!("flood {n:08} abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUV\r\n")
}

impl Flood {
    fn start(server: &Server, share: f64) -> Flood {
        let stream = TcpStream::connect(server.addr()).unwrap();
        let mut reader = stream.try_clone().unwrap();
        let mut writer = stream;
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, got) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let rate = 11_520.0 * share;
        let (s, n) = (stop.clone(), sent.clone());
        let write = std::thread::spawn(move || {
            let start = Instant::now();
            let mut lines = 0u64;
            while !s.load(Relaxed) {
                // Paces the writer on purpose: the line's rate, not faster.
                let due = (start.elapsed().as_secs_f64() * rate / 64.0) as u64;
                let mut chunk = String::new();
                while lines < due {
                    chunk += &flood_line(lines);
                    lines += 1;
                }
                if !chunk.is_empty() {
                    if writer.write_all(chunk.as_bytes()).is_err() {
                        return;
                    }
                    n.fetch_add(chunk.len() as u64, Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let (s, g) = (stop.clone(), got.clone());
        reader
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let read = std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while !s.load(Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(k) => {
                        g.fetch_add(k as u64, Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });
        Flood {
            stop,
            sent,
            got,
            threads: vec![write, read],
        }
    }

    /// Stops it: (bytes written, bytes read back).
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (self.sent.load(Relaxed), self.got.load(Relaxed))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

fn flood_secs() -> u64 {
    std::env::var("SERIALHUB_WEB_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

#[test]
fn issue23_a_flood_keeps_the_tabs_heap_bounded_and_typed_keys_echo() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let secs = flood_secs().to_string();
    let mut script = Script::start("flood", &[&http, &name, &secs]);
    script.step("connected");
    // 90% of the line: the typed keys need some room of their own.
    let flood = Flood::start(&server, 0.9);
    script.go();
    script.step("flooded");
    let (sent, got) = flood.stop();
    let s = status(&server.control);
    script.go();
    let result = script.result();

    // The flood went through the device at about the line rate.
    let secs: f64 = secs.parse().unwrap();
    assert!(
        sent as f64 > secs * 11_520.0 * 0.5,
        "flooded only {sent} bytes"
    );
    assert!(got as f64 > sent as f64 * 0.8, "{got} of {sent} came back");
    // The tab kept up: no drop and no kick for it.
    assert_eq!(s[0]["kicked"], 0, "{s:#}");
    let web = web_clients(&s[0]);
    assert_eq!(web.len(), 1, "{s:#}");
    assert_eq!(web[0]["dropped"], 0, "{s:#}");
    assert_eq!(result["counters"]["dropped"], 0, "{result}");

    // Every typed key came back.
    let echoes = result["echoes_ms"].as_array().expect("echo times");
    assert!(echoes.len() >= 3, "{result}");
    // The heap, after a forced GC, once xterm's scrollback is full (a
    // third of the way in) against the end: the flood's bytes are not
    // kept. A page that kept them would grow by at least what arrived
    // (two bytes a character as JS strings).
    let heaps: Vec<(f64, f64)> = result["heaps"]
        .as_array()
        .expect("heap samples")
        .iter()
        .map(|h| (h[0].as_f64().unwrap(), h[1].as_f64().unwrap()))
        .collect();
    let mid = heaps
        .iter()
        .find(|h| h.0 >= secs / 3.0)
        .expect("a heap sample a third of the way in");
    let end = heaps.last().unwrap();
    let arrived = (end.0 - mid.0) * 11_520.0 * 0.9;
    assert!(
        end.1 - mid.1 < (512.0 * 1024.0f64).max(arrived / 2.0),
        "the JS heap grew by {} bytes while {arrived} bytes arrived: {heaps:?}",
        end.1 - mid.1
    );
    assert!(
        end.1 < 64.0 * 1024.0 * 1024.0,
        "JS heap {} bytes: {heaps:?}",
        end.1
    );
}

#[test]
fn issue23_a_frozen_tab_meets_the_slow_reader_policy_and_the_others_never_notice() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let mut script = Script::start("frozen", &[&http, &name]);
    script.step("open");
    let s = status(&server.control);
    assert_eq!(web_clients(&s[0]).len(), 2, "two browser clients: {s:#}");
    let flood = Flood::start(&server, 0.9);
    script.go();

    script.step("frozen");
    // The frozen tab stops acking: past the window and its client queue the
    // port's policy (disconnect, the default) cuts it.
    assert!(
        wait_for(Duration::from_secs(60), || {
            let p = &status(&server.control)[0];
            p["kicked"].as_u64() >= Some(1) && web_clients(p).len() == 1
        }),
        "the frozen tab was not kicked: {:#}",
        status(&server.control)
    );
    let s = status(&server.control);
    script.go();
    let result = script.result();
    let (sent, got) = flood.stop();

    // Only the frozen tab: the flooding TCP client and the other tab stayed.
    assert_eq!(s[0]["kicked"], 1, "{s:#}");
    assert_eq!(s[0]["clients"].as_array().map(Vec::len), Some(2), "{s:#}");
    assert!(got as f64 > sent as f64 * 0.8, "{got} of {sent} came back");
    assert!(result["live_received"].as_u64() > Some(0), "{result}");
    assert!(result["frozen_shows"].is_string(), "{result}");
}

#[test]
fn issue23_closing_the_tab_or_killing_the_browser_frees_the_slot_within_10s() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let mut script = Script::start("slot", &[&http, &name]);
    let count = |server: &Server| web_clients(&status(&server.control)[0]).len();
    for gone in ["tab-closed", "killed"] {
        script.step("opened");
        server.wait_status("the terminal's client in the status", |p| {
            web_clients(p).len() == 1
        });
        script.go();
        script.step(gone);
        let t0 = Instant::now();
        while count(&server) > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{gone}: the browser's slot still taken after 10 s: {:#}",
                status(&server.control)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        script.go();
    }
    script.result();
}
