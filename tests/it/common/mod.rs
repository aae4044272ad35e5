//! Test harness: runs the real `serialhub` binary against pty devices from the
//! built-in simulator, on ports chosen by the OS.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;

pub const BIN: &str = env!("CARGO_BIN_EXE_serialhub");

pub fn sim(mode: SimMode, baud: u32) -> Sim {
    Sim::spawn(mode, &LineSettings::with_baud(baud)).expect("start simulator")
}

/// A running `serialhub` process whose stderr is collected.
pub struct Server {
    child: Child,
    pub addrs: Vec<SocketAddr>,
    /// The addresses of `modbus-tcp:` endpoints, in order.
    pub modbus: Vec<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `serialhub ARGS` and waits until all its TCP endpoints listen.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(args, |_| {})
    }

    /// As [`start`](Self::start), with the command adjusted by `configure`
    /// first (limits, environment).
    pub fn start_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        let listens: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "-l" || w[0] == "--listen")
            .map(|w| w[1])
            .collect();
        // With no --listen, serve listens on its default TCP address.
        let listeners = match listens.is_empty() {
            true => 1,
            false => listens.iter().filter(|l| l.starts_with("tcp:")).count(),
        };
        let others = listens.len().saturating_sub(listeners);
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut cmd);
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
        let mut server = Server {
            child,
            addrs: Vec::new(),
            modbus: Vec::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.addrs.len() < listeners
            || server.log().matches("listening on ").count() < listeners + others
        {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "serialhub exited with {status} before listening:\n{}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "serialhub did not listen:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
            server.addrs = server
                .log()
                .lines()
                .filter_map(|l| l.split("listening on tcp:").nth(1))
                .filter_map(|a| a.trim().parse().ok())
                .collect();
        }
        server.modbus = server
            .log()
            .lines()
            .filter_map(|l| l.split("listening on modbus-tcp:").nth(1))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        server
    }

    /// `serialhub serve -d DEVICE -b BAUD -l tcp:127.0.0.1:0 EXTRA...`.
    pub fn serve(device: &str, baud: u32, extra: &[&str]) -> Server {
        let baud = baud.to_string();
        let mut args = vec!["serve", "-d", device, "-b", &baud, "-l", "tcp:127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
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
    let mut child = Command::new(BIN)
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
