//! A real `nats-server` (Debian's 2.9.10 in `scripts/test`) for the fleet
//! tests: JetStream on, a store in a temp dir, a port of the OS's choosing
//! read back from its ports file. It can be killed with SIGKILL and started
//! again on the same port with the same store, as a broker restart.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts it; `PATH` is tried first.
const PLACES: &[&str] = &[
    "nats-server",
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
];

/// How long a start may take on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running (or killed) `nats-server`.
pub struct NatsServer {
    child: Option<Child>,
    /// Holds the ports file, the JetStream store and the config file.
    dir: tempfile::TempDir,
    port: u16,
    /// A configuration file's text (`max_payload: 4096`), if given.
    config: Option<PathBuf>,
}

/// The `nats-server` binary.
fn binary() -> &'static str {
    PLACES
        .iter()
        .copied()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("nats-server is not installed (scripts/test installs it)")
}

impl NatsServer {
    /// `nats-server -a 127.0.0.1 -p -1 -js -sd TMP/js`, once it accepts
    /// clients.
    pub fn start() -> NatsServer {
        Self::start_config("")
    }

    /// As [`start`](Self::start), with `config` as a configuration file's
    /// text (`max_payload: 4096`); empty for none.
    pub fn start_config(config: &str) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = (!config.is_empty()).then(|| {
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, config).expect("write nats.conf");
            path
        });
        let mut server = NatsServer {
            child: None,
            dir,
            port: 0,
            config,
        };
        let child = server.spawn("-1");
        server.child = Some(child);
        server.port = server.read_port();
        server.wait_accepting();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("js")
    }

    /// Kills it with SIGKILL and reaps it: no goodbye to its clients.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (killing it first if it runs) on the same port with
    /// the same store, and waits until it accepts clients.
    pub fn restart(&mut self) {
        self.kill9();
        let port = self.port.to_string();
        let child = self.spawn(&port);
        self.child = Some(child);
        self.wait_accepting();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn spawn(&self, port: &str) -> Child {
        let dir = self.dir.path();
        let mut cmd = Command::new(binary());
        cmd.args(["-a", "127.0.0.1", "-p", port, "--ports_file_dir"])
            .arg(dir)
            .arg("-js")
            .arg("-sd")
            .arg(dir.join("js"));
        if let Some(config) = &self.config {
            cmd.arg("-c").arg(config);
        }
        // Its log would only interleave with the test's output.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server")
    }

    /// The client port from the ports file it writes once listening.
    fn read_port(&mut self) -> u16 {
        let pid = self.child.as_ref().map(Child::id).expect("running");
        let file = self.dir.path().join(format!("nats-server_{pid}.ports"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(port) = port_in(&file) {
                return port;
            }
            assert!(self.is_running(), "nats-server exited at start-up");
            assert!(
                Instant::now() < deadline,
                "no ports file {}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Until a client connecting gets its `INFO` line.
    fn wait_accepting(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"INFO" {
                    return;
                }
            }
            assert!(self.is_running(), "nats-server exited at start-up");
            assert!(
                Instant::now() < deadline,
                "nats-server does not accept on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The first client URL's port in a ports file:
/// `{"nats":["nats://127.0.0.1:37501"]}`.
fn port_in(file: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = v["nats"].as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
