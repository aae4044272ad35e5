//! One `serialhub serve --config` process serving many ports from a
//! generated file, as idle and ports run it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proxy;

/// A running `serve --config`. Killed when dropped.
pub struct Daemon {
    child: Child,
    /// Each port's TCP address, in the order of the ports given.
    pub addrs: Vec<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Serves each of `devices` as its own `[[port]]` at `baud`, on a TCP
    /// port the OS picks, and learns the addresses from `status --json`.
    pub async fn start(devices: &[String], baud: u32) -> Result<Daemon, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let sock = dir.path().join("control.sock");
        // The control socket in the temp dir, never the user's default one.
        let mut toml = format!("[control]\nsocket = \"{}\"\n", sock.display());
        for (i, dev) in devices.iter().enumerate() {
            toml += &format!(
                "\n[[port]]\nname = \"p{i}\"\ndevice = \"{dev}\"\nbaud = {baud}\nlisten = [\"tcp:127.0.0.1:0\"]\n"
            );
        }
        let conf = dir.path().join("serialhub.toml");
        std::fs::write(&conf, toml).map_err(|e| e.to_string())?;
        let child = proxy::spawn_quiet(
            Command::new(proxy::serialhub_bin())
                .args(["serve", "--config"])
                .arg(&conf),
        )?;
        let mut d = Daemon {
            child,
            addrs: Vec::new(),
            _dir: dir,
        };
        // The control socket answers once every endpoint is bound.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = sock.clone();
            let n = devices.len();
            let asked = tokio::task::spawn_blocking(move || addrs(&s, n))
                .await
                .map_err(|e| e.to_string())?;
            match asked {
                Ok(a) => {
                    d.addrs = a;
                    return Ok(d);
                }
                Err(why) => {
                    if let Ok(Some(st)) = d.child.try_wait() {
                        return Err(format!("serialhub exited with {st}"));
                    }
                    if Instant::now() > deadline {
                        return Err(format!("serialhub did not report its ports: {why}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ports `p0`..`p{n-1}`'s TCP addresses, from `status --json`.
fn addrs(sock: &Path, n: usize) -> Result<Vec<SocketAddr>, String> {
    let out = Command::new(proxy::serialhub_bin())
        .arg("--control")
        .arg(PathBuf::from(sock))
        .args(["status", "--json"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let ports: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))?;
    let list = ports
        .as_array()
        .ok_or("status --json: not a list of ports")?;
    (0..n)
        .map(|i| {
            let name = format!("p{i}");
            list.iter()
                .find(|p| p["name"] == name.as_str())
                .and_then(|p| {
                    p["endpoints"]
                        .get(0)?
                        .as_str()?
                        .strip_prefix("tcp:")?
                        .parse()
                        .ok()
                })
                .ok_or_else(|| format!("no TCP address for port {name}"))
        })
        .collect()
}
