//! The configuration file (`serve --config`, `check-config`): TOML with
//! kebab-case keys named like the `serve` flags.
//!
//! Loading is three steps, and nothing starts unless all pass, so a daemon
//! is never half-configured:
//! 1. parse: serde with `deny_unknown_fields`; values in flag syntax
//!    (device, endpoint strings, sizes, durations) are parsed as they are
//!    read, so a bad one is reported at its line and column;
//! 2. resolve each `[[port]]`: laid over `[defaults]`, then validated by
//!    [`PortConfig::resolve`], the same code and ranges as the flags;
//! 3. check the ports against each other ([`super::clash`]): names,
//!    devices, endpoint addresses, traffic log directories, the control
//!    socket and the metrics address must not collide.
//!
//! Every error names the file, the line and column, and the port.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::clash::{self, Clash, Owner};
use super::http::{HttpConfig, HttpName, HttpUser, check_metrics_listen};
use super::raw::{RawFile, Spans};
use super::settings::PortSettings;
use super::{ConfigError, PortConfig, Source};

/// Default mode of the control socket: only its owner may connect, since
/// it can kick clients and reload the configuration.
pub(crate) const DEFAULT_CONTROL_MODE: u32 = 0o600;

/// An example configuration with every option and its default, which
/// `serialhub print-config` prints. A test loads it.
pub(crate) const EXAMPLE: &str = include_str!("example.toml");

/// Everything one `serialhub serve --config FILE` runs.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// In the file's order; names, devices and addresses are unique.
    pub(crate) ports: Vec<PortConfig>,
    pub control: Option<ControlConfig>,
    /// `[http]` (or its old name `[metrics]`): the metrics and the web
    /// console.
    pub(crate) http: Option<HttpConfig>,
    /// `[tls]`: every port's `tls` endpoints and HTTPS metrics use it.
    pub(crate) tls: Option<crate::tls::TlsFiles>,
    /// `[fleet]` as written (checked): `serve --fleet*` flags are laid
    /// over it. A change takes a restart; reload says so.
    pub(crate) fleet: crate::fleet::config::FleetSettings,
}

impl DaemonConfig {
    /// What `check-config` prints: a line per port (name, device, line
    /// settings, endpoints), then the control socket and metrics.
    pub(crate) fn summary(&self) -> String {
        let mut out = String::new();
        for p in &self.ports {
            let listen: Vec<String> = p.listen.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "port {}: device {}, {}; listen {}\n",
                p.name,
                p.device,
                p.line,
                listen.join(", ")
            ));
        }
        match &self.control {
            Some(c) => out.push_str(&format!(
                "control: socket {}, mode {:04o}\n",
                c.socket
                    .as_ref()
                    .map_or("PID.sock in the runtime directory".into(), |s| s.display().to_string()),
                c.mode
            )),
            None => out.push_str(&format!(
                "control: socket PID.sock in the runtime directory, mode {DEFAULT_CONTROL_MODE:04o}\n"
            )),
        }
        match &self.http {
            Some(h) => {
                let name = match h.name {
                    HttpName::Http => "http",
                    HttpName::Metrics => "metrics",
                };
                let listen = h.listen.as_deref().unwrap_or("off unless --http");
                let https = if h.tls { " (https)" } else { "" };
                out.push_str(&format!("{name}: listen {listen}{https}"));
                if !h.users.is_empty() {
                    out.push_str(&format!(", {} user(s)", h.users.len()));
                }
                out.push('\n');
            }
            None => out.push_str("metrics: off\n"),
        }
        if let Ok(Some(f)) = self
            .fleet
            .clone()
            .resolve(crate::fleet::config::Origin::File)
        {
            out.push_str(&format!(
                "fleet: {} as host {}, heartbeat {}\n",
                f.broker.url,
                f.host,
                crate::units::duration_text(f.heartbeat)
            ));
        }
        if let Some(t) = &self.tls {
            out.push_str(&format!(
                "tls: cert {}, key {}, client CA {}, {} CRL file(s)\n",
                t.cert.display(),
                t.key.display(),
                t.client_ca
                    .as_ref()
                    .map_or("none".into(), |c| c.display().to_string()),
                t.crls.len()
            ));
        }
        out
    }
}

/// `[control]`: the control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlConfig {
    /// `None`: the daemon's default path (or `--control`).
    pub socket: Option<PathBuf>,
    /// File mode of the socket, 0 to 0o777.
    pub(crate) mode: u32,
}

/// A configuration file that cannot be used: where, and what is wrong.
#[derive(Debug)]
pub struct FileError {
    pub(crate) file: PathBuf,
    /// 1-based line and column (in characters), where known.
    pub(crate) at: Option<(usize, usize)>,
    /// The port the problem is in, for per-port problems.
    pub(crate) port: Option<String>,
    /// Boxed: errors are rare, and a small `Result` is cheap to return.
    pub(crate) problem: Box<Problem>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.at {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if let Some(port) = &self.port {
            write!(f, "port {port:?}: ")?;
        }
        write!(f, "{}", self.problem)
    }
}

/// Its text names the file, the place and the problem in full, so it has
/// no `source()` (see the error convention in `app/error.rs`).
impl std::error::Error for FileError {}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Problem {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    /// A TOML syntax error, an unknown key, or a value of the wrong type or
    /// syntax; toml's own message.
    #[error("{0}")]
    Toml(String),
    #[error(transparent)]
    Setting(#[from] ConfigError),
    #[error("[defaults] cannot set {0}: each port sets its own")]
    NotADefault(&'static str),
    #[error("no name given")]
    NoName,
    #[error("no listen given: a port needs at least one endpoint")]
    NoListen,
    #[error("the name is also used by the port at line {0}")]
    SameName(usize),
    #[error("device {device} is also used by port {other:?}")]
    SameDevice { device: String, other: String },
    #[error("{what} is also used by {other}")]
    SameAddress { what: String, other: String },
    #[error("traffic log directory {dir} is also used by port {other:?}")]
    SameLogDir { dir: String, other: String },
    #[error("metrics listen {addr:?}: {why}")]
    MetricsListen { addr: String, why: String },
    #[error("[http] tls = true needs a [tls] table with cert and key")]
    MetricsTls,
    #[error(
        "[http] listen {http:?} and [metrics] listen {metrics:?} name the same listener: give one"
    )]
    HttpTwice { http: String, metrics: String },
    #[error("[[http.user]]: {0}")]
    User(String),
    #[error(transparent)]
    Fleet(crate::fleet::config::FleetConfigError),
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<DaemonConfig, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: path.to_owned(),
        at: None,
        port: None,
        problem: Box::new(Problem::Read(e)),
    })?;
    parse(path, &text)
}

/// Parses and validates `text`, read from `path` (which messages name).
pub(crate) fn parse(path: &Path, text: &str) -> Result<DaemonConfig, FileError> {
    let err = |span: Option<Range<usize>>, port: Option<&str>, problem: Problem| FileError {
        file: path.to_owned(),
        at: span.map(|s| line_col(text, s.start)),
        port: port.map(str::to_owned),
        problem: Box::new(problem),
    };
    let raw: RawFile =
        toml::from_str(text).map_err(|e| err(e.span(), None, Problem::Toml(e.message().into())))?;

    let defaults = match raw.defaults {
        None => PortSettings::default(),
        Some(d) => {
            let span = d.span();
            let d = d.into_inner();
            let set = [
                ("name", d.name.is_some()),
                ("device", d.device.is_some()),
                ("listen", d.listen.is_some()),
                ("log.dir", d.log.as_ref().is_some_and(|l| l.dir.is_some())),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(err(Some(span), None, Problem::NotADefault(key)));
            }
            d.settings().0
        }
    };

    let tls = raw.tls.map(|t| crate::tls::TlsFiles {
        cert: t.cert,
        key: t.key,
        client_ca: t.client_ca,
        crls: t.crl,
    });
    let mut ports = Vec::with_capacity(raw.port.len());
    let mut spans = Vec::with_capacity(raw.port.len());
    for port in raw.port {
        let port_span = port.span();
        let (settings, name, written) = port.into_inner().settings();
        let Some(name) = name else {
            return Err(err(Some(port_span), None, Problem::NoName));
        };
        let (name_span, name) = (name.span(), name.into_inner());
        let label = Some(name.as_str());
        if written.listen.is_empty() {
            return Err(err(Some(port_span), label, Problem::NoListen));
        }
        let settings = PortSettings {
            name: Some(name.clone()),
            tls: tls.clone(),
            ..settings
        }
        .over(&defaults);
        let config = PortConfig::resolve(settings, Source::File)
            .map_err(|e| err(Some(port_span.clone()), label, e.into()))?;
        ports.push(config);
        spans.push(Spans {
            port: port_span,
            name: name_span,
            ..written
        });
    }
    let control_socket = raw.control.as_ref().and_then(|c| c.socket.as_deref());
    let http_listen = raw.http.as_ref().and_then(|h| h.listen.as_ref());
    let metrics_listen = raw.metrics.as_ref().map(|m| &m.listen);
    if let (Some(h), Some(m)) = (http_listen, metrics_listen)
        && h.get_ref() != m.get_ref()
    {
        return Err(err(
            Some(h.span()),
            None,
            Problem::HttpTwice {
                http: h.get_ref().clone(),
                metrics: m.get_ref().clone(),
            },
        ));
    }
    let metrics_listen = http_listen.or(metrics_listen).map(|l| l.get_ref().as_str());
    if let Some(c) = clash::first(&ports, control_socket, metrics_listen) {
        let (port, at) = (&ports[c.port], &spans[c.port]);
        let other = |j: usize| ports[j].name.clone();
        let (span, problem) = match c.clash {
            Clash::Name(j) => (
                at.name.clone(),
                Problem::SameName(line_col(text, spans[j].name.start).0),
            ),
            Clash::Device(j) => (
                at.device.clone().unwrap_or(at.port.clone()),
                Problem::SameDevice {
                    device: port.device.to_string(),
                    other: other(j),
                },
            ),
            Clash::LogDir(j) => (
                at.port.clone(),
                Problem::SameLogDir {
                    dir: port
                        .traffic
                        .as_ref()
                        .map_or(String::new(), |t| t.dir.display().to_string()),
                    other: other(j),
                },
            ),
            Clash::Address { endpoint, other: o } => (
                at.listen.get(endpoint).unwrap_or(&at.port).clone(),
                Problem::SameAddress {
                    what: port.listen[endpoint].to_string(),
                    other: match o {
                        Owner::Control => "the control socket".into(),
                        Owner::Metrics => "the metrics endpoint".into(),
                        Owner::Port(j) => format!("port {:?}", ports[j].name),
                    },
                },
            ),
        };
        return Err(err(Some(span), Some(&port.name), problem));
    }

    let http =
        http(raw.http, raw.metrics, tls.is_some()).map_err(|(span, p)| err(span, None, p))?;
    let fleet = match raw.fleet {
        None => crate::fleet::config::FleetSettings::default(),
        Some(f) => {
            let span = f.span();
            let settings = f.into_inner().settings();
            settings
                .clone()
                .resolve(crate::fleet::config::Origin::File)
                .map_err(|e| err(Some(span), None, Problem::Fleet(e)))?;
            settings
        }
    };
    let control = raw.control.map(|c| ControlConfig {
        socket: c.socket,
        mode: c.mode.map_or(DEFAULT_CONTROL_MODE, |m| m.0),
    });
    Ok(DaemonConfig {
        ports,
        control,
        http,
        tls,
        fleet,
    })
}

/// `[http]` and `[metrics]` as one listener, checked; `has_tls`: the file
/// has a `[tls]` table.
fn http(
    http: Option<super::raw::RawHttp>,
    metrics: Option<super::raw::RawMetrics>,
    has_tls: bool,
) -> Result<Option<HttpConfig>, (Option<Range<usize>>, Problem)> {
    let (listen, tls, name) = match (&http, metrics) {
        (Some(h), _) if h.listen.is_some() => (h.listen.clone(), h.tls.clone(), HttpName::Http),
        (_, Some(m)) => (
            Some(m.listen),
            m.tls.or(http.as_ref().and_then(|h| h.tls.clone())),
            HttpName::Metrics,
        ),
        (Some(h), None) => (None, h.tls.clone(), HttpName::Http),
        (None, None) => return Ok(None),
    };
    if let Some(l) = &listen {
        check_metrics_listen(l.get_ref()).map_err(|why| {
            (
                Some(l.span()),
                Problem::MetricsListen {
                    addr: l.get_ref().clone(),
                    why,
                },
            )
        })?;
    }
    let tls = match tls {
        Some(t) if *t.get_ref() => {
            if !has_tls {
                return Err((Some(t.span()), Problem::MetricsTls));
            }
            true
        }
        _ => false,
    };
    let mut users = Vec::new();
    let mut insecure = false;
    if let Some(h) = http {
        insecure = h.insecure.unwrap_or(false);
        for u in h.user {
            let span = u.span();
            let u = u.into_inner();
            let user = HttpUser::new(&u.name, &u.password_hash, &u.role)
                .map_err(|why| (Some(span.clone()), Problem::User(why)))?;
            users.push(user);
            super::http::check_unique(&users).map_err(|why| (Some(span), Problem::User(why)))?;
        }
    }
    Ok(Some(HttpConfig {
        listen: listen.map(toml::Spanned::into_inner),
        tls,
        insecure,
        users,
        name,
    }))
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::Format;

    const MINIMAL: &str = r#"[control]
socket = "/tmp/serialhub.sock"

[[port]]
name = "lab1"
device = "sim:echo"
baud = 115200
listen = ["tcp:127.0.0.1:7001", "pty:/tmp/ttyLAB1"]
"#;

    /// Issue 21: `[port.access]` lists identities by role, as `--allow`
    /// does; its errors name the key and the place.
    #[test]
    fn issue21_port_access_makes_the_policy() {
        use crate::access::Role;
        let port = |access: &str| {
            format!(
                "[[port]]\nname = \"a\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n{access}"
            )
        };
        let cfg = load_str(&port(
            "[port.access]\nrw = [\"cn:alice\"]\nro = [\"cn:bob\", \"dns:monitor.lab\"]\n",
        ))
        .unwrap();
        let p = &cfg.ports[0].access;
        assert_eq!(p.role(Some("alice"), &[], &[0; 32]), Some(Role::Rw));
        assert_eq!(p.role(Some("bob"), &[], &[0; 32]), Some(Role::Ro));
        assert_eq!(p.role(Some("carol"), &[], &[0; 32]), None);
        assert!(load_str(&port("")).unwrap().ports[0].access.is_open());
        // Only ro: still a policy.
        let cfg = load_str(&port("[port.access]\nro = [\"any\"]\n")).unwrap();
        assert_eq!(
            cfg.ports[0].access.role(Some("x"), &[], &[0; 32]),
            Some(Role::Ro)
        );

        let e = error(&port("[port.access]\nrw = [\"uid:alice\"]\n"));
        assert!(
            e.contains("hub.toml:") && e.contains("expected cn:NAME"),
            "{e}"
        );
        let e = error(&port("[port.access]\nadmin = [\"cn:alice\"]\n"));
        assert!(e.contains("unknown field `admin`"), "{e}");
        let e = error(&port(
            "[port.access]\nrw = [\"cn:alice\"]\nro = [\"cn:alice\"]\n",
        ));
        assert!(
            e.contains("port \"a\": access: identity cn:alice is listed as both rw and ro"),
            "{e}"
        );
    }

    /// Issue 22: `[fleet]` and a port's `labels`, checked at load with
    /// errors at their place.
    #[test]
    fn issue22_fleet_table_and_labels_are_read_and_checked() {
        let port =
            "[[port]]\nname = \"a\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n";
        let cfg = load_str(&format!(
            "[fleet]\nurl = \"nats://u:pw@h:4\"\nhost = \"lab1\"\nheartbeat = \"2s\"\n{port}labels = {{ board = \"rpi4\" }}\n"
        ))
        .unwrap();
        assert_eq!(cfg.ports[0].labels["board"], "rpi4");
        assert_eq!(cfg.fleet.host.as_deref(), Some("lab1"));
        let summary = cfg.summary();
        assert!(
            summary.contains("fleet: nats://u@h:4 as host lab1, heartbeat 2s"),
            "{summary}"
        );
        assert!(!summary.contains("pw"), "{summary}");
        assert!(load_str(port).unwrap().fleet == Default::default());

        let e = error(&format!("[fleet]\nurl = \"h\"\nhost = \"a.b\"\n{port}"));
        assert!(
            e.starts_with("hub.toml:1:1: fleet.host \"a.b\" is not a usable fleet host name"),
            "{e}"
        );
        let e = error(&format!("[fleet]\nhost = \"x\"\n{port}"));
        assert!(e.contains("fleet.host needs fleet.url"), "{e}");
        let e = error(&format!("[fleet]\nurl = \"h\"\nport = 1\n{port}"));
        assert!(e.contains("unknown field `port`"), "{e}");
        let e = error(&format!("{port}labels = {{ \"a b\" = \"x\" }}\n"));
        assert!(e.contains("port \"a\": labels: label key \"a b\""), "{e}");
    }

    fn load_str(text: &str) -> Result<DaemonConfig, FileError> {
        parse(Path::new("hub.toml"), text)
    }

    /// The message for `text`, which must fail.
    fn error(text: &str) -> String {
        match load_str(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    /// A file of the ports given as TOML bodies, each after a `[[port]]`.
    fn ports(bodies: &[&str]) -> String {
        bodies.iter().map(|b| format!("[[port]]\n{b}\n")).collect()
    }

    #[test]
    fn the_minimal_file_loads_as_written() {
        let cfg = load_str(MINIMAL).unwrap();
        assert_eq!(cfg.ports.len(), 1);
        let p = &cfg.ports[0];
        assert_eq!(p.name, "lab1");
        assert_eq!(p.device.to_string(), "sim:echo");
        assert_eq!(p.line.baud, 115_200);
        let listen: Vec<String> = p.listen.iter().map(ToString::to_string).collect();
        assert_eq!(listen, ["tcp:127.0.0.1:7001", "pty:/tmp/ttyLAB1"]);
        assert_eq!(
            cfg.control,
            Some(ControlConfig {
                socket: Some("/tmp/serialhub.sock".into()),
                mode: 0o600
            })
        );
        assert_eq!(cfg.http, None);
        assert!(
            cfg.summary()
                .contains("port lab1: device sim:echo, 115200 8N1")
        );
    }

    /// What the example says are the defaults are the defaults: its port
    /// resolves exactly as a port given only a name, device and listen.
    #[test]
    fn the_example_loads_and_states_the_builtin_defaults() {
        let cfg = load_str(EXAMPLE).unwrap();
        assert_eq!(cfg.ports.len(), 1);
        let bare = PortConfig::resolve(
            PortSettings {
                name: Some("lab1".into()),
                device: Some("sim:echo".parse().unwrap()),
                listen: Some(vec!["tcp:127.0.0.1:7000".parse().unwrap()]),
                ..PortSettings::default()
            },
            Source::File,
        )
        .unwrap();
        assert_eq!(format!("{:?}", cfg.ports[0]), format!("{bare:?}"));
        assert_eq!(cfg.control.map(|c| c.mode), Some(DEFAULT_CONTROL_MODE));
    }

    /// Its optional settings (`#key = value`) load too, once uncommented.
    #[test]
    fn the_examples_optional_settings_load() {
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with([' ', '#']) && !rest.is_empty() => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(uncommented, EXAMPLE);
        let cfg = load_str(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        let p = &cfg.ports[0];
        assert_eq!(p.line.baud, 115_200);
        assert_eq!(p.hub.client_queue, 64 << 10);
        assert!(p.traffic.is_some());
        assert_eq!(
            cfg.http.and_then(|m| m.listen).as_deref(),
            Some("127.0.0.1:9108")
        );
    }

    #[test]
    fn ports_inherit_defaults_and_override_them() {
        let text = format!(
            "[defaults]\nbaud = 19200\nmax-clients = 3\nmax-inflight = \"500ms\"\n\
             client-queue = \"64KiB\"\nwriters = \"transaction\"\n\
             [defaults.log]\nkeep = 7\nformat = \"json\"\n{}",
            ports(&[
                "name = \"a\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]",
                "name = \"b\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n\
                 baud = 57600\nclient-queue = 8192\nwriters = \"merge\"\n\
                 [port.log]\ndir = \"/tmp/b\"\nkeep = 2",
                "name = \"c\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]\n\
                 [port.log]\ndir = \"/tmp/c\"",
            ])
        );
        let cfg = load_str(&text).unwrap();
        let [a, b, c] = &cfg.ports[..] else {
            panic!("{:?}", cfg.ports)
        };
        assert_eq!((a.line.baud, b.line.baud), (19_200, 57_600));
        assert_eq!((a.max_clients, b.max_clients), (3, 3));
        assert_eq!((a.hub.client_queue, b.hub.client_queue), (64 << 10, 8192));
        assert!(a.hub.txn.is_some() && b.hub.txn.is_none());
        // 500 ms at 19200 baud, half of it in the hub, less the writer's lead.
        let lead = crate::pace::Steps::for_rate(1920.0).lead;
        assert_eq!(a.hub.write_budget, 1920 / 4 - lead);
        assert_eq!(a.traffic, None);
        let (b, c) = (b.traffic.clone().unwrap(), c.traffic.clone().unwrap());
        assert_eq!((b.keep, c.keep), (2, 7));
        assert_eq!((b.format, c.format), (Format::Json, Format::Json));
        assert_eq!(c.max_size, crate::traffic::DEFAULT_MAX_SIZE);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line_and_column() {
        let typo = MINIMAL.replace("baud = 115200", "baud = 115200\n  devcie = \"x\"");
        let e = error(&typo);
        assert!(e.starts_with("hub.toml:8:3: unknown field `devcie`"), "{e}");
        assert!(e.contains("expected one of `name`, `device`"), "{e}");
        let e = error("[control]\nsocket = \"/s\"\nmodee = \"0600\"\n");
        assert!(e.starts_with("hub.toml:3:1: unknown field `modee`"), "{e}");
        let e = error("[metric]\nlisten = \"127.0.0.1:0\"\n");
        assert!(e.starts_with("hub.toml:1:2: unknown field `metric`"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[port.log]\ndir = \"/tmp\"\nmax_size = 5\n"
        ));
        assert!(
            e.starts_with("hub.toml:11:1: unknown field `max_size`"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_reported_where_they_are() {
        let with = |old: &str, new: &str| error(&MINIMAL.replace(old, new));
        let e = with("baud = 115200", "baud = \"fast\"");
        assert!(e.starts_with("hub.toml:7:8: invalid type"), "{e}");
        let e = with("baud = 115200", "baud = -1");
        assert!(e.starts_with("hub.toml:7:8:"), "{e}");
        let e = with("\"pty:/tmp/ttyLAB1\"", "\"pty:/tmp/x,acces=ro\"");
        assert!(e.starts_with("hub.toml:8:33: unknown option"), "{e}");
        let e = with("\"sim:echo\"", "\"sim:ech\"");
        assert!(
            e.starts_with("hub.toml:6:10: unknown simulator mode"),
            "{e}"
        );
        let e = with("baud = 115200", "max-inflight = \"soon\"");
        assert!(e.starts_with("hub.toml:7:16: \"soon\""), "{e}");
        let e = with("baud = 115200", "max-inflight = 1");
        assert!(e.contains("expected a duration such as"), "{e}");
        let e = with("baud = 115200", "client-queue = \"lots\"");
        assert!(
            e.starts_with("hub.toml:7:16:") && e.contains("64KiB"),
            "{e}"
        );
        let e = with("baud = 115200", "client-queue = -4096");
        assert!(e.contains("size -4096 is negative"), "{e}");
        let e = with("baud = 115200", "parity = \"mark\"");
        assert!(e.contains("unknown variant `mark`"), "{e}");
        let e = with("socket", "mode = \"0800\"\nsocket");
        assert!(
            e.starts_with("hub.toml:2:8: expected an octal file mode"),
            "{e}"
        );
        let e = error("[[port]]\nname = \"a\"\nbaud = 9600\n[[port]]\nname = \"b\"\n= 5\n");
        assert!(e.starts_with("hub.toml:6:1:"), "{e}");
    }

    #[test]
    fn modes_are_octal_strings_or_integers() {
        let mode = |m: &str| {
            load_str(&format!("[control]\nmode = {m}\n"))
                .map(|c| c.control.unwrap().mode)
                .map_err(|e| e.to_string())
        };
        assert_eq!(mode("\"0660\""), Ok(0o660));
        assert_eq!(mode("\"600\""), Ok(0o600));
        assert_eq!(mode("0o640"), Ok(0o640));
        assert!(mode("\"0o640\"").is_err());
        assert!(mode("0o1000").is_err());
        assert!(mode("\"\"").is_err());
        assert!(mode("-1").is_err());
    }

    /// Out-of-range settings get the flags' messages, with the key's name.
    #[test]
    fn settings_out_of_range_name_the_port_and_key() {
        let with = |extra: &str| error(&MINIMAL.replace("baud = 115200", extra));
        let e = with("max-clients = 0");
        assert_eq!(
            e,
            "hub.toml:4:1: port \"lab1\": max-clients 0 is out of range (1 to 65536)"
        );
        for (extra, want) in [
            (
                "baud = 49",
                "baud: baud rate 49 is out of range (50 to 20000000)",
            ),
            ("data-bits = 9", "data-bits: data bits must be 5, 6, 7 or 8"),
            ("stop-bits = 3", "stop-bits: stop bits must be 1 or 2"),
            (
                "client-queue = 4095",
                "client-queue 4095 is out of range (4KiB to 64MiB)",
            ),
            (
                "max-inflight = \"9ms\"",
                "max-inflight 9ms is out of range (10ms to 1h)",
            ),
            (
                "stats-every = \"1ms\"",
                "stats-every 1ms is out of range (0 for off",
            ),
            ("lock-idle = \"2h\"", "lock-idle 2h is out of range"),
            ("lock-max = \"2days\"", "lock-max 2days is out of range"),
            ("drain-timeout = \"2h\"", "drain-timeout 2h is out of range"),
            (
                "writers = \"transaction\"\nreply-timeout = \"2min\"",
                "reply-timeout 2m is out of range",
            ),
            (
                "writers = \"transaction\"\nreply-gap = \"0s\"",
                "reply-gap 0s is out of range",
            ),
            (
                "listen = [\"modbus-tcp:127.0.0.1:0\"]",
                "needs writers = \"transaction\"",
            ),
        ] {
            let text = MINIMAL.replace("baud = 115200", extra);
            // `listen` given twice is a TOML error; the case replaces it.
            let text = if extra.starts_with("listen") {
                text.replace(
                    "listen = [\"tcp:127.0.0.1:7001\", \"pty:/tmp/ttyLAB1\"]\n",
                    "",
                )
            } else {
                text
            };
            let e = error(&text);
            assert!(
                e.contains("port \"lab1\": ") && e.contains(want),
                "{extra}: {e}"
            );
            assert!(!e.contains("--"), "{extra}: {e}");
        }
        let log = |extra: &str| error(&format!("{MINIMAL}[port.log]\ndir = \"/tmp\"\n{extra}\n"));
        let e = log("max-size = \"2TiB\"");
        assert!(
            e.contains("log.max-size 2TiB is out of range (4KiB to 1TiB)"),
            "{e}"
        );
        let e = log("keep = 0");
        assert!(e.contains("log.keep 0 is out of range (1 to 1000)"), "{e}");
        let off = MINIMAL.replace("baud = 115200", "stats-every = \"0s\"");
        assert_eq!(load_str(&off).unwrap().ports[0].stats_every, None);
    }

    #[test]
    fn a_port_needs_a_usable_name_a_device_and_an_endpoint() {
        let e = error(&ports(&[
            "device = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]",
        ]));
        assert_eq!(e, "hub.toml:1:1: no name given");
        let e = error(&ports(&["name = \"a\"\nlisten = [\"tcp:127.0.0.1:0\"]"]));
        assert_eq!(e, "hub.toml:1:1: port \"a\": no device given");
        let e = error(&ports(&["name = \"a\"\ndevice = \"sim:echo\""]));
        assert!(
            e.starts_with("hub.toml:1:1: port \"a\": no listen given"),
            "{e}"
        );
        let e = error(&ports(&[
            "name = \"a\"\ndevice = \"sim:echo\"\nlisten = []",
        ]));
        assert!(e.contains("no listen given"), "{e}");
        for bad in ["", "lab 1", "lab/1", "läb", "a\\nb", &"x".repeat(65)] {
            let e = error(&ports(&[&format!(
                "name = \"{bad}\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]"
            )]));
            assert!(e.contains("is not a usable port name"), "{bad:?}: {e}");
        }
        for good in ["a", "lab-1.B_2", &"x".repeat(64)] {
            let cfg = load_str(&ports(&[&format!(
                "name = \"{good}\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]"
            )]))
            .unwrap();
            assert_eq!(cfg.ports[0].name, *good);
        }
    }

    #[test]
    fn defaults_cannot_set_what_is_each_ports_own() {
        for (key, line) in [
            ("name", "name = \"x\""),
            ("device", "device = \"sim:echo\""),
            ("listen", "listen = [\"tcp:127.0.0.1:0\"]"),
        ] {
            let e = error(&format!("[defaults]\n{line}\n"));
            assert_eq!(
                e,
                format!("hub.toml:1:1: [defaults] cannot set {key}: each port sets its own")
            );
        }
        let e = error("[defaults.log]\ndir = \"/tmp\"\n");
        assert!(e.contains("[defaults] cannot set log.dir"), "{e}");
    }

    #[test]
    fn two_ports_cannot_share_a_name_a_device_or_a_log() {
        let a = "name = \"a\"\ndevice = \"/dev/ttyS0\"\nlisten = [\"tcp:127.0.0.1:0\"]";
        let e = error(&ports(&[a, &a.replace("ttyS0", "ttyS1")]));
        assert_eq!(
            e,
            "hub.toml:6:8: port \"a\": the name is also used by the port at line 2"
        );
        let e = error(&ports(&[a, &a.replace("\"a\"", "\"b\"")]));
        assert_eq!(
            e,
            "hub.toml:7:10: port \"b\": device /dev/ttyS0 is also used by port \"a\""
        );
        // A link to a device is that device.
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("by-id");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let b = a
            .replace("\"a\"", "\"b\"")
            .replace("/dev/ttyS0", &link.display().to_string());
        let e = error(&ports(&[&a.replace("ttyS0", "null"), &b]));
        assert!(e.contains("is also used by port \"a\""), "{e}");
        // Simulators are each their own.
        let sim = |n: &str| {
            format!("name = \"{n}\"\ndevice = \"sim:echo\"\nlisten = [\"tcp:127.0.0.1:0\"]")
        };
        assert_eq!(
            load_str(&ports(&[&sim("a"), &sim("b")]))
                .unwrap()
                .ports
                .len(),
            2
        );
        let logged = |n: &str| format!("{}\n[port.log]\ndir = \"/tmp/logs\"", sim(n));
        let e = error(&ports(&[&logged("a"), &logged("b")]));
        assert!(
            e.ends_with("port \"b\": traffic log directory /tmp/logs is also used by port \"a\""),
            "{e}"
        );
    }

    #[test]
    fn two_endpoints_cannot_share_an_address() {
        let port = |n: &str, listen: &str| {
            format!(
                "name = \"{n}\"\ndevice = \"sim:{n}\"\nwriters = \"transaction\"\nlisten = [{listen}]"
            )
        };
        let clash = |a: &str, b: &str| {
            load_str(&ports(&[&port("echo", a), &port("sink", b)]))
                .err()
                .map(|e| e.to_string())
        };
        for (a, b) in [
            ("\"tcp:127.0.0.1:7001\"", "\"tcp:127.0.0.1:7001\""),
            ("\"tcp:0.0.0.0:7001,insecure\"", "\"tcp:127.0.0.1:7001\""),
            ("\"tcp:[::1]:7001\"", "\"modbus-tcp:[::1]:7001\""),
            ("\"tcp:localhost:7001\"", "\"tcp:LOCALHOST:7001\""),
            ("\"unix:/tmp/a.sock\"", "\"unix:/tmp/a.sock,mode=0600\""),
            ("\"pty:/tmp/ttyA\"", "\"unix:/tmp//ttyA\""),
            ("\"pty:/tmp/ttyA\"", "\"pty:/tmp/ttyB\", \"pty:/tmp/ttyA\""),
        ] {
            let e = clash(a, b).unwrap_or_else(|| panic!("{a} and {b} accepted"));
            assert!(
                e.contains("port \"sink\": ") && e.ends_with("is also used by port \"echo\""),
                "{e}"
            );
        }
        let e = clash("\"pty:/tmp/ttyA\"", "\"pty:/tmp/ttyB\", \"pty:/tmp/ttyA\"").unwrap();
        assert!(
            e.starts_with("hub.toml:10:28: port \"sink\": pty:/tmp/ttyA"),
            "{e}"
        );
        // Within one port too.
        let e = error(&ports(&[&port(
            "echo",
            "\"tcp:127.0.0.1:7001\", \"tcp:127.0.0.1:7001\"",
        )]));
        assert!(
            e.contains("port \"echo\": tcp:127.0.0.1:7001 is also used by port \"echo\""),
            "{e}"
        );
        for (a, b) in [
            ("\"tcp:127.0.0.1:0\"", "\"tcp:127.0.0.1:0\""),
            ("\"tcp:127.0.0.1:7001\"", "\"tcp:127.0.0.2:7001\""),
            ("\"tcp:127.0.0.1:7001\"", "\"tcp:127.0.0.1:7002\""),
            ("\"unix:/tmp/a\"", "\"unix:/tmp/b\""),
        ] {
            assert_eq!(clash(a, b), None, "{a} {b}");
        }
        // Nor with the control socket or the metrics endpoint.
        let e = error(&format!(
            "[control]\nsocket = \"/tmp/c.sock\"\n{}",
            ports(&[&port("echo", "\"unix:/tmp/c.sock\"")])
        ));
        assert!(
            e.ends_with("unix:/tmp/c.sock is also used by the control socket"),
            "{e}"
        );
        let e = error(&format!(
            "[metrics]\nlisten = \"127.0.0.1:9108\"\n{}",
            ports(&[&port("echo", "\"tcp:127.0.0.1:9108\"")])
        ));
        assert!(
            e.ends_with("tcp:127.0.0.1:9108 is also used by the metrics endpoint"),
            "{e}"
        );
    }

    #[test]
    fn the_metrics_address_is_checked() {
        let metrics = |addr: &str| load_str(&format!("[metrics]\nlisten = \"{addr}\"\n"));
        assert_eq!(
            metrics("[::1]:9108")
                .unwrap()
                .http
                .unwrap()
                .listen
                .as_deref(),
            Some("[::1]:9108")
        );
        for bad in ["9108", ":9108", "127.0.0.1:99999", "127.0.0.1:9108,x=1"] {
            let e = metrics(bad).unwrap_err().to_string();
            assert!(e.starts_with("hub.toml:2:10: metrics listen"), "{bad}: {e}");
        }
        assert!(error("[metrics]\n").contains("missing field `listen`"));
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let e = load(Path::new("/nonexistent/hub.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/hub.toml: cannot read it:"),
            "{e}"
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "ab\nçd\n\nx";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (1, 3));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 5), (2, 2));
        // Inside a character: its start.
        assert_eq!(line_col(text, 4), (2, 1));
        assert_eq!(line_col(text, 8), (4, 1));
        assert_eq!(line_col(text, 99), (4, 2));
    }
}
