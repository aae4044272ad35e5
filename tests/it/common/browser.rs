//! The web console's browser tests' harness (issue 23): selenium scripts
//! (tests/web/*.py) driving headless Chromium, run step by step; a serialhub
//! with its web listener; a flood through sim:echo.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, status};

/// One Chromium at a time: two would starve each other (and the server
/// under test) on a small machine, and turn deadlines into flakes.
static BROWSER: Mutex<()> = Mutex::new(());

pub fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// A running selenium script (tests/web/NAME.py) and its line protocol.
pub struct Script {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    pub fn start(name: &str, args: &[&str]) -> Script {
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
    pub fn step(&mut self, name: &str) -> Value {
        self.expect_line(&format!("STEP {name} "))
    }

    /// Lets the script go on from its step.
    pub fn go(&mut self) {
        writeln!(self.stdin, "go").expect("write to the script");
        self.stdin.flush().expect("flush the script's stdin");
    }

    /// Waits for the script's result; it must exit with success.
    pub fn result(mut self) -> Value {
        let result = self.expect_line("RESULT ");
        // Shown with --nocapture, and with a failed test's output.
        println!("{}.py: {result}", self.name);
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
pub fn require_browser() {
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
pub fn serve_web(device: &str, extra: &[&str]) -> Server {
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
pub fn web(server: &Server) -> (String, String) {
    let s = status(&server.control);
    let http = s[0]["http"]
        .as_str()
        .unwrap_or_else(|| panic!("no http address in the status: {s:#}"))
        .to_owned();
    let name = s[0]["name"].as_str().expect("a port name").to_owned();
    (http, name)
}

/// The port's clients whose peer is a browser (`web:ADDRESS`).
pub fn web_clients(port: &Value) -> Vec<Value> {
    port["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["peer"].as_str().is_some_and(|p| p.starts_with("web:")))
        .cloned()
        .collect()
}

/// Where the screenshots go: docs/ when asked, else a temp dir.
pub fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var("SERIALHUB_WEB_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => (Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), None),
        _ => {
            let tmp = tempfile::tempdir().expect("temp dir");
            (tmp.path().to_owned(), Some(tmp))
        }
    }
}

pub fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "{} is not a screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
}

/// Polls `f` until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A TCP client of the port that writes numbered lines at `share` of the
/// line rate into sim:echo (so the device streams them to every client) and
/// reads the echo back, so it is never a slow reader itself.
pub struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    got: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The flood's share of the line rate: the typed keys need some room.
pub const FLOOD_SHARE: f64 = 0.9;

/// The length of a flood line.
pub const FLOOD_LINE: usize = 64;

/// A flood line: [`FLOOD_LINE`] bytes.
fn flood_line(n: u64) -> String {
    format!("flood {n:08} abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRST\r\n")
}

impl Flood {
    pub fn start(server: &Server, share: f64) -> Flood {
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
                let due = (start.elapsed().as_secs_f64() * rate / FLOOD_LINE as f64) as u64;
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
    pub fn stop(mut self) -> (u64, u64) {
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

pub fn flood_secs() -> u64 {
    std::env::var("SERIALHUB_WEB_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}
