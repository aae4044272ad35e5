//! A real `nats-server` for the fleet rows, started as the tests start it
//! (tests/it/common/nats.rs): `-a 127.0.0.1 -p -1 --ports_file_dir DIR -js
//! -sd DIR/js`, its port read back from the ports file. It can be killed with
//! SIGKILL and started again on the same port with the same store, and it
//! tells when it accepts clients again, for the recovery row.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
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

/// A running (or killed) `nats-server`. Killed when dropped.
pub struct Nats {
    child: Option<Child>,
    /// The ports file and the JetStream store.
    dir: tempfile::TempDir,
    port: u16,
    /// The broker's `max_payload`, from its `INFO` line.
    pub max_payload: usize,
}

/// The `nats-server` binary, or why there is none.
pub fn binary() -> Result<&'static str, String> {
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
        .ok_or_else(|| "nats-server is not installed (scripts/test installs it)".into())
}

/// The version line of `nats-server --version`, for the notes.
pub fn version() -> String {
    binary()
        .ok()
        .and_then(|b| Command::new(b).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "nats-server not installed".into())
}

impl Nats {
    /// Starts one on a port of the OS's choosing and waits until it accepts.
    pub async fn start() -> Result<Nats, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut n = Nats {
            child: None,
            dir,
            port: 0,
            max_payload: 0,
        };
        n.child = Some(n.spawn("-1")?);
        n.port = n.read_port().await?;
        n.max_payload = n.wait_accepting().await?;
        Ok(n)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL and reaps it: no goodbye to its clients.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store; returns when
    /// it accepts clients, the instant the recovery row measures from.
    pub async fn restart(&mut self) -> Result<Instant, String> {
        self.kill9();
        let port = self.port.to_string();
        self.child = Some(self.spawn(&port)?);
        self.wait_accepting().await?;
        Ok(Instant::now())
    }

    fn spawn(&self, port: &str) -> Result<Child, String> {
        let dir = self.dir.path();
        Command::new(binary()?)
            .args(["-a", "127.0.0.1", "-p", port, "--ports_file_dir"])
            .arg(dir)
            .arg("-js")
            .arg("-sd")
            .arg(dir.join("js"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nats-server: {e}"))
    }

    fn exited(&mut self) -> bool {
        !self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The client port from the ports file it writes once listening.
    async fn read_port(&mut self) -> Result<u16, String> {
        let pid = self.child.as_ref().map(Child::id).ok_or("not running")?;
        let file = self.dir.path().join(format!("nats-server_{pid}.ports"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(port) = port_in(&file) {
                return Ok(port);
            }
            if self.exited() {
                return Err("nats-server exited at start-up".into());
            }
            if Instant::now() > deadline {
                return Err(format!("no ports file {}", file.display()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Until a client connecting gets its `INFO` line; its `max_payload`.
    async fn wait_accepting(&mut self) -> Result<usize, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let port = self.port;
            let info = tokio::task::spawn_blocking(move || info(port))
                .await
                .ok()
                .flatten();
            if let Some(max_payload) = info {
                return Ok(max_payload);
            }
            if self.exited() {
                return Err("nats-server exited at start-up".into());
            }
            if Instant::now() > deadline {
                return Err(format!("nats-server does not accept on port {port}"));
            }
            // Short: the recovery row's clock starts when this returns.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Connects, reads the `INFO {...}` line and returns its `max_payload`.
fn info(port: u16) -> Option<usize> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 64 * 1024 && s.read_exact(&mut b).is_ok() && b[0] != b'\n' {
        line.push(b[0]);
    }
    let text = String::from_utf8_lossy(&line);
    let json = text.strip_prefix("INFO ")?;
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    Some(v["max_payload"].as_u64().unwrap_or(1024 * 1024) as usize)
}

/// The first client URL's port in a ports file:
/// `{"nats":["nats://127.0.0.1:37501"]}`.
fn port_in(file: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = v["nats"].as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}
