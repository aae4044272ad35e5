//! The web scenario's clients (issue 23): a serialhub with its web listener
//! on a simulator the bench spawned, terminal WebSocket viewers that ack as
//! the page does, and a raw TCP client that times its keystrokes' echo.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serialhub::device::{Sim, SimMode};
use serialhub::line::LineSettings;
use serialhub::pattern::Checker;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::proxy;

pub const BAUD: u32 = 115_200;

/// `serialhub serve` with its web listener, on a device the bench spawned.
pub struct Web {
    child: Child,
    pub tcp: SocketAddr,
    http: String,
    name: String,
    _sim: Sim,
    _dir: tempfile::TempDir,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Web {
    pub async fn start(mode: SimMode) -> Result<Web, String> {
        let sim = Sim::spawn(mode, &LineSettings::with_baud(BAUD)).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let sock = dir.path().join("control.sock");
        let child = proxy::spawn_quiet(
            Command::new(proxy::serialhub_bin())
                .arg("--control")
                .arg(&sock)
                .args(["--http", "127.0.0.1:0", "serve", "-d"])
                .arg(sim.path())
                .args(["-b", &BAUD.to_string(), "-l", "tcp:127.0.0.1:0"])
                .args(["--max-clients", "1024"]),
        )?;
        let mut web = Web {
            child,
            tcp: ([127, 0, 0, 1], 0).into(),
            http: String::new(),
            name: String::new(),
            _sim: sim,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match status(&sock).await {
                Ok(s) => {
                    let p = &s[0];
                    web.tcp = p["endpoints"][0]
                        .as_str()
                        .and_then(|e| e.strip_prefix("tcp:")?.parse().ok())
                        .ok_or("no tcp endpoint in the status")?;
                    web.http = p["http"]
                        .as_str()
                        .ok_or("no http address in the status")?
                        .to_owned();
                    web.name = p["name"].as_str().ok_or("no port name")?.to_owned();
                    return Ok(web);
                }
                Err(why) => {
                    if let Ok(Some(st)) = web.child.try_wait() {
                        return Err(format!("serialhub exited with {st}"));
                    }
                    if Instant::now() > deadline {
                        return Err(format!("serialhub did not report its port: {why}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn viewer(&self, probe: Option<u8>) -> Result<Viewer, String> {
        Viewer::connect(&self.http, &self.name, probe).await
    }
}

async fn status(sock: &Path) -> Result<serde_json::Value, String> {
    let out = tokio::process::Command::new(proxy::serialhub_bin())
        .arg("--control")
        .arg(sock)
        .args(["status", "--json"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// A terminal WebSocket client that acks what it takes, as the page does.
pub struct Viewer {
    /// Binary bytes taken (history and live).
    pub bytes: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
    /// Keys to type.
    pub keys: mpsc::Sender<Vec<u8>>,
    /// When the probe byte came back, each time.
    pub echoes: mpsc::Receiver<Instant>,
    task: JoinHandle<()>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Viewer {
    async fn connect(http: &str, port: &str, probe: Option<u8>) -> Result<Viewer, String> {
        let mut req = format!("ws://{http}/ws/ports/{port}")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        // The server checks the Origin: the page's own.
        let origin = format!("http://{http}").parse().map_err(|_| "origin")?;
        req.headers_mut().insert("origin", origin);
        // No Nagle, as a browser's sockets: a keystroke goes at once.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .map_err(|e| format!("WebSocket to {http}: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"hello\"") => {}
            other => return Err(format!("no hello from the terminal WebSocket: {other:?}")),
        }
        let bytes = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        // A few keystrokes in flight at most; an echo per probe.
        let (keys, mut typed) = mpsc::channel::<Vec<u8>>(4);
        let (echo_tx, echoes) = mpsc::channel(1024);
        let (b, e) = (bytes.clone(), errors.clone());
        let task = tokio::spawn(async move {
            let mut checker = Checker::new();
            let mut total = 0u64;
            loop {
                tokio::select! {
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Binary(data))) => {
                            let now = Instant::now();
                            total += data.len() as u64;
                            b.store(total, Relaxed);
                            if let Some(p) = probe {
                                for _ in data.iter().filter(|&&x| x == p) {
                                    let _ = echo_tx.try_send(now);
                                }
                            } else {
                                checker.feed(&data);
                                e.store(checker.errors, Relaxed);
                            }
                            let ack = format!("{{\"type\":\"ack\",\"bytes\":{total}}}");
                            if ws.send(Message::text(ack)).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return,
                    },
                    Some(k) = typed.recv() => {
                        if ws.send(Message::binary(k)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Viewer {
            bytes,
            errors,
            keys,
            echoes,
            task,
        })
    }
}

/// A raw TCP client that types probes and notes when each came back.
pub struct TcpProbe {
    pub stream: tokio::io::WriteHalf<TcpStream>,
    pub echoes: mpsc::Receiver<Instant>,
    task: JoinHandle<()>,
}

impl Drop for TcpProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpProbe {
    pub async fn connect(addr: SocketAddr, probe: u8) -> Result<TcpProbe, String> {
        let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let (mut rd, wr) = tokio::io::split(s);
        let (tx, echoes) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 16384];
            while let Ok(k) = rd.read(&mut buf).await {
                if k == 0 {
                    return;
                }
                let now = Instant::now();
                for _ in buf[..k].iter().filter(|&&x| x == probe) {
                    let _ = tx.try_send(now);
                }
            }
        });
        Ok(TcpProbe {
            stream: wr,
            echoes,
            task,
        })
    }
}
