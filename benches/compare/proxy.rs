//! Starting the tools under comparison on a device path, the same way each.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Serialhub,
    /// serialhub with its traffic log on.
    SerialhubLog,
    Socat,
    Ser2net,
    /// ser2net with 4 KiB buffers and chardelay off.
    Ser2net4k,
}

pub const TOOLS: [Tool; 4] = [Tool::Serialhub, Tool::Socat, Tool::Ser2net, Tool::Ser2net4k];

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Serialhub => "serialhub",
            Tool::SerialhubLog => "serialhub --log",
            Tool::Socat => "socat",
            Tool::Ser2net => "ser2net",
            Tool::Ser2net4k => "ser2net-4k",
        }
    }

    /// Why this tool cannot run on this machine, if it cannot.
    pub fn missing(self) -> Option<String> {
        if let Some(only) = SELECTED.get()
            && !only.iter().any(|n| n == self.cmd())
        {
            return Some("not selected by --tools".into());
        }
        let cmd = match self {
            Tool::Serialhub | Tool::SerialhubLog => return None,
            Tool::Socat => "socat",
            Tool::Ser2net | Tool::Ser2net4k => "ser2net",
        };
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!found).then(|| format!("{cmd} is not installed (bench/install-peers installs it)"))
    }

    /// The name `--tools` selects it by.
    fn cmd(self) -> &'static str {
        match self {
            Tool::Serialhub | Tool::SerialhubLog => "serialhub",
            Tool::Socat => "socat",
            Tool::Ser2net => "ser2net",
            Tool::Ser2net4k => "ser2net-4k",
        }
    }
}

/// The tools `--tools` picked; all of them when unset.
pub static SELECTED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The serialhub binary under test: `SERIALHUB_BIN` if set, so a run can
/// compare two builds side by side (`SERIALHUB_BIN=/tmp/base bench/compare`).
pub fn serialhub_bin() -> std::ffi::OsString {
    std::env::var_os("SERIALHUB_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_serialhub").into())
}

/// How to run a tool for one scenario.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub baud: u32,
    /// Clients the tool must accept at once.
    pub clients: usize,
    /// Extra `serialhub serve` flags.
    pub serialhub_args: Vec<String>,
    /// Serve Telnet with the RFC 2217 COM-PORT-OPTION instead of raw TCP.
    pub rfc2217: bool,
    /// Serve TLS with this certificate and key (the server side only).
    pub tls: Option<TlsFiles>,
    /// socat serves one connection and exits; with this it forks a child per
    /// connection, to accept one after another.
    pub socat_fork: bool,
}

/// A PEM certificate chain and its key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// A running tool. Killed when dropped.
pub struct Proxy {
    pub child: Child,
    /// One listening address per device, in order.
    pub addrs: Vec<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `tool` serving each of `devices` on its own TCP port. serialhub and
/// socat serve one device per process, so only ser2net accepts several.
pub fn start(tool: Tool, devices: &[String], setup: &Setup) -> Result<Proxy, String> {
    if let Some(why) = tool.missing() {
        return Err(why);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let baud = setup.baud.to_string();
    if setup.rfc2217 && tool == Tool::Socat {
        return Err("socat has no RFC 2217 server".into());
    }
    let (child, addrs) = match tool {
        Tool::Serialhub | Tool::SerialhubLog => {
            assert_eq!(devices.len(), 1, "one device per serialhub process");
            let mut c = Command::new(serialhub_bin());
            let mut listen = if setup.rfc2217 {
                "rfc2217:127.0.0.1:0"
            } else {
                "tcp:127.0.0.1:0"
            }
            .to_owned();
            if setup.tls.is_some() {
                listen += ",tls";
            }
            c.args(["serve", "-d", &devices[0], "-b", &baud, "-l", &listen]);
            if let Some(t) = &setup.tls {
                c.arg("--tls-cert")
                    .arg(&t.cert)
                    .arg("--tls-key")
                    .arg(&t.key);
            }
            if tool == Tool::SerialhubLog {
                let log = dir.path().join("traffic");
                std::fs::create_dir(&log).map_err(|e| e.to_string())?;
                c.arg("--log").arg(log);
            }
            c.args(["--max-clients", &(setup.clients + 16).to_string()]);
            c.args(&setup.serialhub_args);
            let (child, addr) = spawn_and_find(c, |l| {
                let (_, rest) = l
                    .split_once("listening on tcp:")
                    .or_else(|| l.split_once("listening on rfc2217:"))?;
                rest.trim().parse().ok()
            })?;
            (child, vec![addr])
        }
        Tool::Socat => {
            assert_eq!(devices.len(), 1, "one device per socat process");
            let mut c = Command::new("socat");
            let mut listen = match &setup.tls {
                // The same certificate; verify=0: no client certificate.
                Some(t) => format!(
                    "OPENSSL-LISTEN:0,bind=127.0.0.1,reuseaddr,cert={},key={},verify=0",
                    t.cert.display(),
                    t.key.display()
                ),
                None => "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr".to_owned(),
            };
            if setup.socat_fork {
                listen += ",fork";
            }
            c.args([
                "-d",
                "-d",
                &listen,
                &format!("FILE:{},rawer,b{baud}", devices[0]),
            ]);
            let (child, addr) = spawn_and_find(c, |l| {
                l.split("listening on AF=2 ").nth(1)?.trim().parse().ok()
            })?;
            (child, vec![addr])
        }
        Tool::Ser2net | Tool::Ser2net4k => {
            let mut yaml = String::from("%YAML 1.1\n---\n");
            let mut addrs = Vec::new();
            // ser2net stacks gensios: Telnet with RFC 2217, TLS (gensio's
            // ssl, OpenSSL), TCP.
            let mut accepter = String::new();
            if setup.rfc2217 {
                accepter += "telnet(rfc2217),";
            }
            if let Some(t) = &setup.tls {
                accepter += &format!("ssl(key={},cert={}),", t.key.display(), t.cert.display());
            }
            accepter += "tcp";
            for (i, dev) in devices.iter().enumerate() {
                let port = free_port();
                addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
                yaml += &format!(
                    "connection: &c{i}\n  accepter: {accepter},127.0.0.1,{port}\n  connector: serialdev,{dev},{baud}n81,local\n  options:\n    max-connections: {}\n",
                    setup.clients.max(1)
                );
                if tool == Tool::Ser2net4k {
                    yaml += "    chardelay: false\n    dev-to-net-bufsize: 4096\n    net-to-dev-bufsize: 4096\n";
                }
            }
            let conf = dir.path().join("ser2net.yaml");
            std::fs::write(&conf, yaml).map_err(|e| e.to_string())?;
            let child = spawn_quiet(
                Command::new("ser2net")
                    .args(["-d", "-u", "-P"])
                    .arg(dir.path().join("pid"))
                    .arg("-c")
                    .arg(&conf),
            )?;
            // ser2net opens the device per connection, so it listens before
            // anything touches the device; wait for the last port to listen.
            wait_listening(addrs[addrs.len() - 1])?;
            (child, addrs)
        }
    };
    Ok(Proxy {
        child,
        addrs,
        _dir: dir,
    })
}

/// Spawns `cmd` detached from the terminal, its output discarded.
pub fn spawn_quiet(cmd: &mut Command) -> Result<Child, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))
}

/// Spawns `cmd` and waits for `find` to spot its listening address on stderr.
pub fn spawn_and_find(
    mut cmd: Command,
    find: fn(&str) -> Option<SocketAddr>,
) -> Result<(Child, SocketAddr), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = find(&line) {
                let _ = tx.send(a);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            let _ = child.kill();
            Err("did not report a listening address".into())
        }
    }
}

fn free_port() -> u16 {
    // ser2net cannot report a port it chose, so pick one; a benchmark may
    // race for it, tests never do this.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn wait_listening(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    // Probe with /proc rather than connecting: a probe connection would make
    // ser2net open and close the device.
    let port_hex = format!(":{:04X} ", addr.port());
    while Instant::now() < deadline {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if tcp
            .lines()
            .any(|l| l.contains(&port_hex) && l.split_whitespace().nth(3) == Some("0A"))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listened on {addr}"))
}
