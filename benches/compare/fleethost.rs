//! One serialhub process of the fleet rows: `serve --config` from a
//! generated file with a `[fleet]` table and its ports, its addresses and
//! device states learnt from `status --json` on its own control socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proxy;

/// One `[[port]]` of a host.
pub struct Port {
    pub name: String,
    pub device: String,
    pub baud: u32,
    /// `--listen` strings, such as `tcp:127.0.0.1:0`.
    pub listen: Vec<&'static str>,
    /// The line unpaced and a lossless reader, as the bulk and latency
    /// scenarios run serialhub (`--no-pacing --slow-reader block`).
    pub unpaced: bool,
}

impl Port {
    pub fn new(name: &str, device: &str, baud: u32, listen: &[&'static str]) -> Port {
        Port {
            name: name.into(),
            device: device.into(),
            baud,
            listen: listen.to_vec(),
            unpaced: false,
        }
    }

    pub fn unpaced(mut self, unpaced: bool) -> Port {
        self.unpaced = unpaced;
        self
    }
}

/// A running `serialhub serve --config`. Killed when dropped.
pub struct Host {
    child: Child,
    control: PathBuf,
    /// The last `status --json` answer: one object per port.
    ports: serde_json::Value,
    _dir: tempfile::TempDir,
}

impl Host {
    /// Serves `ports`, in the fleet at `url` as `host` if given (with a
    /// `heartbeat`), and waits until every endpoint is bound.
    pub async fn start(
        fleet: Option<(&str, &str)>,
        heartbeat: &str,
        ports: &[Port],
    ) -> Result<Host, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let control = dir.path().join("control.sock");
        let mut toml = format!("[control]\nsocket = \"{}\"\n", control.display());
        if let Some((url, host)) = fleet {
            toml += &format!(
                "\n[fleet]\nurl = \"{url}\"\nhost = \"{host}\"\nheartbeat = \"{heartbeat}\"\n"
            );
        }
        for p in ports {
            let listen: Vec<String> = p.listen.iter().map(|l| format!("\"{l}\"")).collect();
            toml += &format!(
                "\n[[port]]\nname = \"{}\"\ndevice = \"{}\"\nbaud = {}\nlisten = [{}]\n",
                p.name,
                p.device,
                p.baud,
                listen.join(", ")
            );
            if p.unpaced {
                toml += "pacing = false\nslow-reader = \"block\"\n";
            }
        }
        let conf = dir.path().join("serialhub.toml");
        std::fs::write(&conf, toml).map_err(|e| e.to_string())?;
        // Its log in the temp dir, for an error to quote.
        let log =
            std::fs::File::create(dir.path().join("serialhub.log")).map_err(|e| e.to_string())?;
        let child = Command::new(proxy::serialhub_bin())
            .args(["serve", "--config"])
            .arg(&conf)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start serialhub: {e}"))?;
        let mut h = Host {
            child,
            control,
            ports: serde_json::Value::Null,
            _dir: dir,
        };
        // The control socket answers once every endpoint is bound.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match h.status().await {
                Ok(v) => {
                    h.ports = v;
                    return Ok(h);
                }
                Err(why) => {
                    if let Ok(Some(st)) = h.child.try_wait() {
                        return Err(format!("serialhub exited with {st}"));
                    }
                    if Instant::now() > deadline {
                        return Err(format!("serialhub did not answer status: {why}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of its log, for an error message.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self._dir.path().join("serialhub.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    }

    /// Waits until it has joined the fleet (its ports' `fleet.state` is
    /// `connected`), so that its sessions can be opened.
    pub async fn wait_joined(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(v) = self.status().await
                && v[0]["fleet"]["state"] == "connected"
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "not in the fleet after {within:?}: {}",
            self.log_tail()
        ))
    }

    /// `status --json`: one object per port.
    pub async fn status(&self) -> Result<serde_json::Value, String> {
        let sock = self.control.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(proxy::serialhub_bin())
                .arg("--control")
                .arg(&sock)
                .args(["status", "--json"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
            }
            serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Port `name`'s endpoint whose address starts with `prefix` (`tcp:`,
    /// `rfc2217:`).
    pub fn endpoint(&self, name: &str, prefix: &str) -> Result<SocketAddr, String> {
        self.ports
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == name)
            .flat_map(|p| p["endpoints"].as_array().into_iter().flatten())
            .filter_map(|e| e.as_str()?.strip_prefix(prefix)?.parse().ok())
            .next()
            .ok_or_else(|| format!("port {name} has no {prefix} endpoint"))
    }

    /// Waits until port `name`'s device is open (a `fleet://` or
    /// `rfc2217://` device has connected).
    pub async fn wait_open(&self, name: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(v) = self.status().await {
                let port = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == name);
                let state = port.map(|p| p["device_state"]["state"].clone());
                if state.as_ref().and_then(|s| s.as_str()) == Some("open") {
                    return Ok(());
                }
                last = format!("{state:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "port {name}'s device not open in {within:?} ({last}); log: {}",
            self.log_tail()
        ))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
