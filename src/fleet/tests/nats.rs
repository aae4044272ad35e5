//! A nats-server subprocess for the session tests: random port (read back
//! from its ports file), killed with SIGKILL and restarted on the same port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub(super) struct Nats {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    conf: Option<PathBuf>,
    /// JetStream on, its store in `dir` (the registry bucket's tests).
    jetstream: bool,
}

fn binary() -> PathBuf {
    for p in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "nats-server".into()
}

impl Nats {
    pub(super) fn start() -> Nats {
        Self::start_with(None)
    }

    /// A broker whose `max_payload` is `max_payload` bytes.
    pub(super) fn start_with(max_payload: Option<usize>) -> Nats {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = max_payload.map(|n| {
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, format!("max_payload: {n}\n")).expect("conf");
            path
        });
        let mut nats = Nats {
            child: None,
            dir,
            port: 0,
            conf,
            jetstream: false,
        };
        nats.spawn(None);
        nats
    }

    /// A broker with JetStream, for the registry bucket.
    pub(super) fn start_jetstream() -> Nats {
        let mut nats = Self::start();
        nats.kill9();
        nats.jetstream = true;
        nats.spawn(None);
        nats
    }

    fn spawn(&mut self, port: Option<u16>) {
        let mut cmd = Command::new(binary());
        cmd.args(["-a", "127.0.0.1", "-p"])
            .arg(port.map_or("-1".to_owned(), |p| p.to_string()))
            .arg("--ports_file_dir")
            .arg(self.dir.path());
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.path().join("js"));
        }
        if let Some(conf) = &self.conf {
            cmd.arg("-c").arg(conf);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/test installs it)");
        let ports = self
            .dir
            .path()
            .join(format!("nats-server_{}.ports", child.id()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let port = std::fs::read_to_string(&ports)
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["nats"][0].as_str().map(str::to_owned))
                .and_then(|url| url.rsplit(':').next().and_then(|p| p.parse().ok()));
            if let Some(p) = port
                && std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
            {
                self.port = p;
                return;
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(super) fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(super) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub(super) fn restart(&mut self) {
        self.kill9();
        let port = self.port;
        self.spawn(Some(port));
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A client that retries forever, quickly, as a daemon's would.
pub(super) async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(url)
        .await
        .expect("connect to nats-server")
}
