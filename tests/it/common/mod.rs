//! Test harness: runs the real `serialhub` binary against pty devices from the
//! built-in simulator, on ports chosen by the OS.

#![allow(dead_code)]

pub mod browser;
pub mod fake_rfc2217;
pub mod nats;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;

pub const BIN: &str = env!("CARGO_BIN_EXE_serialhub");

/// The binary, with a runtime directory of the tests' own: a serve given no
/// control socket makes one there, never in the user's (or /run/serialhub).
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("XDG_RUNTIME_DIR", runtime_dir());
    cmd
}

/// The tests' `XDG_RUNTIME_DIR`, shared by the run: sockets there are named
/// by pid, so tests do not collide. Tests that look at it have their own.
fn runtime_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runtime");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

pub fn sim(mode: SimMode, baud: u32) -> Sim {
    Sim::spawn(mode, &LineSettings::with_baud(baud)).expect("start simulator")
}

/// A running `serialhub` process whose stderr is collected.
pub struct Server {
    child: Child,
    /// Its `tcp:` endpoints as bound, in the order of its ports and their
    /// endpoints (`status --json`).
    pub addrs: Vec<SocketAddr>,
    /// The addresses of `modbus-tcp:` endpoints, in order.
    pub modbus: Vec<SocketAddr>,
    /// The addresses of `rfc2217:` endpoints, in order.
    pub rfc2217: Vec<SocketAddr>,
    /// Its control socket: the test's own, or one the harness gave it.
    pub control: PathBuf,
    log: Arc<Mutex<String>>,
    /// Holds the control socket the harness made up, if it did.
    _dir: Option<tempfile::TempDir>,
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == flag).map(|w| w[1])
}

/// `serialhub --control SOCK ARGS...`: (success, stdout, stderr).
pub fn control(sock: &Path, args: &[&str]) -> (bool, String, String) {
    let out = command()
        .arg("--control")
        .arg(sock)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn serialhub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`status_json`], for a daemon that must be up.
pub fn status(sock: &Path) -> serde_json::Value {
    status_json(sock).unwrap_or_else(|e| panic!("status failed: {e}"))
}

/// `serialhub --control PATH status --json`, parsed; `Err` with its stderr
/// if it failed (the daemon is not up yet, or gone).
pub fn status_json(control: &Path) -> Result<serde_json::Value, String> {
    let out = command()
        .arg("--control")
        .arg(control)
        .args(["status", "--json"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("spawn serialhub status: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
}

/// `serialhub ARGS` with no `--control` and `runtime` as `XDG_RUNTIME_DIR`:
/// (success, stdout, stderr).
pub fn found(runtime: &Path, args: &[&str]) -> (bool, String, String) {
    let out = command()
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(Stdio::null())
        .output()
        .expect("spawn serialhub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `serialhub status --json` without `--control`, every daemon found in
/// `runtime` (as `XDG_RUNTIME_DIR`); `Err` with its stderr if it failed.
pub fn status_found(runtime: &Path) -> Result<serde_json::Value, String> {
    let (ok, out, err) = found(runtime, &["status", "--json"]);
    if !ok {
        return Err(err);
    }
    serde_json::from_str(&out).map_err(|e| format!("status --json: {e}"))
}

/// The endpoints of every port in a `status --json` answer with `prefix`
/// (`tcp:`), as addresses, in order.
pub fn endpoints(ports: &serde_json::Value, prefix: &str) -> Vec<SocketAddr> {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str()?.strip_prefix(prefix)?.parse().ok())
        .collect()
}

impl Server {
    /// Starts `serialhub ARGS` and waits until its control socket answers
    /// `status`, which it does once every endpoint is bound; the addresses
    /// come from that answer. Without `--control` (in ARGS or the
    /// `--config` file) the harness gives it one in a temp dir.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(args, |_| {})
    }

    /// As [`start`](Self::start), with the command adjusted by `configure`
    /// first (limits, environment).
    pub fn start_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        let from_file = flag_value(args, "--config").and_then(|f| {
            let file = serialhub::config::load(Path::new(f)).ok()?;
            file.control?.socket
        });
        let (control, dir) = match flag_value(args, "--control")
            .map(PathBuf::from)
            .or(from_file)
        {
            Some(path) => (path, None),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                (dir.path().join("control.sock"), Some(dir))
            }
        };
        let mut cmd = Server::command();
        if dir.is_some() {
            cmd.arg("--control").arg(&control);
        }
        cmd.args(args);
        configure(&mut cmd);
        let mut server = Server::spawn(cmd, control, dir);
        let ports = server.wait_ready(|s| status_json(&s.control));
        server.learn_endpoints(&ports);
        server
    }

    /// Starts `serialhub ARGS` as a user would, with no control socket
    /// named, and `runtime` as its `XDG_RUNTIME_DIR`; waits until
    /// `serialhub status` (same environment, no flags) shows its ports.
    /// `control` is the socket that status names.
    pub fn start_found(args: &[&str], runtime: &Path) -> Server {
        let mut cmd = Server::command();
        cmd.args(args).env("XDG_RUNTIME_DIR", runtime);
        let mut server = Server::spawn(cmd, PathBuf::new(), None);
        let pid = u64::from(server.pid());
        let ports = server.wait_ready(|_| {
            let all = status_found(runtime)?;
            let ours: Vec<_> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["pid"].as_u64() == Some(pid))
                .cloned()
                .collect();
            if ours.is_empty() {
                return Err(format!("pid {pid} not in status: {all}"));
            }
            Ok(serde_json::Value::Array(ours))
        });
        server.control = PathBuf::from(ports[0]["control"].as_str().expect("control in status"));
        server.learn_endpoints(&ports);
        server
    }

    /// Its endpoints' addresses as bound, from its ports in a `status`.
    fn learn_endpoints(&mut self, ports: &serde_json::Value) {
        self.addrs = endpoints(ports, "tcp:");
        self.modbus = endpoints(ports, "modbus-tcp:");
        self.rfc2217 = endpoints(ports, "rfc2217:");
    }

    /// The binary, logging at info to a pipe the harness reads.
    fn command() -> Command {
        let mut cmd = command();
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(mut cmd: Command, control: PathBuf, dir: Option<tempfile::TempDir>) -> Server {
        let mut child = cmd.spawn().expect("spawn serialhub");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Server {
            child,
            addrs: Vec::new(),
            modbus: Vec::new(),
            rfc2217: Vec::new(),
            control,
            log,
            _dir: dir,
        }
    }

    /// Polls `ask` until it answers with the ports, which it does once
    /// every endpoint is bound.
    fn wait_ready(
        &mut self,
        ask: impl Fn(&Server) -> Result<serde_json::Value, String>,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let asked = ask(self);
            if let Ok(ports) = asked {
                return ports;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "serialhub exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "serialhub did not answer status: {asked:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `serialhub serve -d DEVICE -b BAUD -l tcp:127.0.0.1:0 EXTRA...`.
    pub fn serve(device: &str, baud: u32, extra: &[&str]) -> Server {
        Server::listen(device, baud, &["tcp:127.0.0.1:0"], extra)
    }

    /// [`serve`](Self::serve) with the metrics listener on a port of the
    /// OS's choosing (`--metrics 127.0.0.1:0`); [`metrics_addr`](Self::metrics_addr)
    /// says which.
    pub fn serve_with_metrics(device: &str, baud: u32, extra: &[&str]) -> Server {
        Server::serve_args(
            &["--metrics", "127.0.0.1:0"],
            device,
            baud,
            &["tcp:127.0.0.1:0"],
            extra,
        )
    }

    /// `serialhub serve -d DEVICE -b BAUD -l LISTEN... EXTRA...`: an
    /// endpoint for each of `listen` (`rfc2217:127.0.0.1:0`).
    pub fn listen(device: &str, baud: u32, listen: &[&str], extra: &[&str]) -> Server {
        Server::serve_args(&[], device, baud, listen, extra)
    }

    /// `serialhub GLOBAL... serve -d DEVICE -b BAUD -l LISTEN... EXTRA...`.
    fn serve_args(
        global: &[&str],
        device: &str,
        baud: u32,
        listen: &[&str],
        extra: &[&str],
    ) -> Server {
        let baud = baud.to_string();
        let mut args = global.to_vec();
        args.extend(["serve", "-d", device, "-b", &baud]);
        for l in listen {
            args.extend(["-l", l]);
        }
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Waits (up to 20 s) until `f` holds for the first port's status.
    pub fn wait_status(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = status(&self.control);
            if f(&s[0]) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}; status: {s:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The metrics address as bound (`--metrics 127.0.0.1:0`), from
    /// `status --json`.
    pub fn metrics_addr(&self) -> String {
        let ports = status(&self.control);
        ports[0]["metrics"]
            .as_str()
            .unwrap_or_else(|| panic!("no metrics address in the status: {ports}"))
            .to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGKILL, as a crash would end it, and waits for it to go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `serialhub ARGS` to completion (at most `timeout`) and returns its
/// status and stderr.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String, Duration) {
    let start = Instant::now();
    let mut child = command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serialhub");
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status, err, start.elapsed());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("serialhub {args:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// A bare pseudo-terminal used as the device: the test holds the master side
/// and sees every byte serialhub writes, unpaced.
pub struct PtyDevice {
    pub path: String,
    received: Arc<Mutex<Vec<u8>>>,
    master: Arc<nix::pty::PtyMaster>,
}

impl PtyDevice {
    pub fn new() -> PtyDevice {
        use nix::fcntl::OFlag;
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).expect("openpt");
        nix::pty::grantpt(&master).unwrap();
        nix::pty::unlockpt(&master).unwrap();
        let path = nix::pty::ptsname_r(&master).unwrap();
        let master = Arc::new(master);
        let received = Arc::new(Mutex::new(Vec::new()));
        let (m, r) = (master.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match nix::unistd::read(&*m, &mut buf) {
                    Ok(n) if n > 0 => r.lock().unwrap().extend_from_slice(&buf[..n]),
                    // EIO while no one has the slave open: wait for serialhub.
                    Err(nix::errno::Errno::EIO) => std::thread::sleep(Duration::from_millis(10)),
                    Ok(_) | Err(_) => return,
                }
            }
        });
        PtyDevice {
            path,
            received,
            master,
        }
    }

    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    /// The termios serialhub set on the device. A pty master reads the
    /// slave's termios, which is what serialhub programs.
    fn termios(&self) -> libc::termios2 {
        use std::os::fd::AsRawFd;
        // SAFETY: TCGETS2 fills one termios2 through the pointer we pass.
        let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TCGETS2, &mut t) };
        assert_eq!(r, 0, "TCGETS2 on the pty master");
        t
    }

    /// The baud rate serialhub set on the device.
    pub fn baud(&self) -> u32 {
        self.termios().c_ospeed
    }

    /// The control flags (data bits, parity, stop bits) serialhub set.
    pub fn cflag(&self) -> libc::tcflag_t {
        self.termios().c_cflag
    }

    /// Sends bytes as if the device produced them.
    pub fn send(&self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let n = nix::unistd::write(&*self.master, rest).expect("write pty master");
            rest = &rest[n..];
        }
    }
}

/// Runs a Python script (pyserial installed by `scripts/test`) in the
/// background, with `args` as `sys.argv[1:]`.
pub fn python(script: &str, args: &[&str]) -> Child {
    let ok = Command::new("python3")
        .args(["-c", "import serial"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "pyserial is missing: run the tests with scripts/test, which installs it"
    );
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3")
}

/// Waits for a child, killing it after `timeout`; returns (success, output).
pub fn finish(mut child: Child, timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            return (out.status.success(), text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    (
        false,
        format!(
            "timed out; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits until the device has received `needle`.
pub async fn device_got(device: &PtyDevice, needle: &[u8], timeout: Duration) -> bool {
    eventually(timeout, || {
        device.received().windows(needle.len()).any(|w| w == needle)
    })
    .await
}

/// Reads until `needle` has arrived; panics with what came instead.
pub async fn read_until(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    needle: &[u8],
    timeout: Duration,
) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    while !got.windows(needle.len()).any(|w| w == needle) {
        match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(s, &mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "no {:?} before {other:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    got
}

/// Reads exactly `msg` from a blocking stream; panics with what came instead.
pub fn expect(s: &mut impl std::io::Read, msg: &[u8]) {
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}
