//! The control socket: how `serialhub status`, `kick` and the like talk to a
//! running daemon.
//!
//! A Unix stream socket (mode 0600 unless configured), one request per
//! connection: the client writes one JSON object on a line, the daemon
//! answers with one JSON object on a line and closes. The server never acts
//! on a port itself: it hands each request to the daemon task that owns the
//! ports, as a message, and waits for its answer.
//!
//! Every daemon has one; unless named, it is `PID.sock` in the user's
//! runtime directory, where the commands find every daemon ([`discover`]).
//!
//! ```text
//! > {"cmd":"status"}                    {"cmd":"status","port":"lab1"}
//! < {"ok":true,"ports":[{"name":"lab1",...}]}
//! > {"cmd":"kick","port":"lab1","client":3}
//! < {"ok":true}                          {"ok":false,"error":"port lab1 has no client 3"}
//! > {"cmd":"lock","port":"lab1"}         {"cmd":"unlock","port":"lab1"}
//! < {"ok":true,"done":"port lab1: ..."}  {"ok":false,"error":"port lab1: the write lock is not held"}
//! ```

pub(crate) mod admit;
pub(crate) mod client;
pub(crate) mod discover;
pub(crate) mod metrics;
pub mod server;
pub(crate) mod show;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::endpoint::refusal::Refusals;
use crate::hub::ClientId;
use crate::hub::status::HubStatus;

/// Longest request line the server reads: requests are tiny.
pub(crate) const MAX_REQUEST: usize = 64 * 1024;

/// What a control client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum Request {
    /// Every port's status, or one port's.
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
    },
    /// Disconnect one client.
    Kick { port: String, client: ClientId },
    /// The operator takes a port's write lock: no client's writes reach the
    /// device until `unlock`.
    Lock { port: String },
    /// Release a port's write lock, whoever holds it.
    Unlock { port: String },
    /// Read the configuration file again and apply it.
    Reload,
}

/// The daemon's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Response {
    pub(crate) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// What was done, for people (a reload's summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) done: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) ports: Vec<PortStatus>,
    /// Which process answered, with `status`: several may run, and the
    /// control commands pick among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) daemon: Option<DaemonInfo>,
}

/// The process behind a control socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DaemonInfo {
    pub(crate) pid: u32,
    /// Its configuration file, which `reload` reads; `None` when started
    /// with flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) config: Option<PathBuf>,
    /// Its place in the fleet (`--fleet`); `None` when not in one. Boxed:
    /// it is rare, and keeps every answer small.
    #[serde(default)]
    pub(crate) fleet: Option<Box<FleetStatus>>,
}

/// A daemon's place in the fleet, as status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FleetStatus {
    /// The broker's URL, with the user but never the password.
    pub(crate) url: String,
    /// This host's fleet name.
    pub(crate) host: String,
    /// `connected` (registered), `connecting` (no broker yet, or not yet
    /// registered) or `refused` (another live serialhub has the name).
    pub(crate) state: String,
    /// Why it is not connected.
    #[serde(default)]
    pub(crate) error: Option<String>,
}

impl Response {
    pub(crate) fn ok() -> Response {
        Response {
            ok: true,
            error: None,
            done: None,
            ports: Vec::new(),
            daemon: None,
        }
    }

    pub(crate) fn done(what: impl Into<String>) -> Response {
        Response {
            done: Some(what.into()),
            ..Response::ok()
        }
    }

    pub(crate) fn error(why: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(why.into()),
            done: None,
            ports: Vec::new(),
            daemon: None,
        }
    }
}

/// One port, as `status` shows it. The field names are a stable schema.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PortStatus {
    pub(crate) name: String,
    /// As configured: a path or `sim:MODE`.
    pub(crate) device: String,
    /// `115200 8N1`.
    pub(crate) line: String,
    /// `merge` or `transaction`.
    pub(crate) writers: String,
    /// Where its endpoints listen, as bound: `tcp:127.0.0.1:40001`.
    pub(crate) endpoints: Vec<String>,
    /// The daemon's metrics address as bound (`127.0.0.1:9108`; its page is
    /// `/metrics`), with `--metrics` or `[metrics]`. Every port of a daemon
    /// gives the same one: the answer stays a list of ports, and each port
    /// says where its series are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metrics: Option<String>,
    /// The metrics are served over HTTPS (`--metrics-tls`); absent for HTTP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) metrics_https: bool,
    /// The HTTP listener as bound (`127.0.0.1:9108`): the web console and
    /// `/metrics`, with `--http` (or `--metrics`). The same for every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) http: Option<String>,
    /// It serves HTTPS; absent for HTTP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) http_https: bool,
    /// The port's traffic log directory (`--log DIR`), which the console's
    /// `/api/ports/NAME/log` reads; absent when it keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) traffic_log: Option<PathBuf>,
    /// The control socket and the pid of the process serving the port, set
    /// by `status` when it found the daemons itself (without `--control`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) control: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pid: Option<u32>,
    /// Connections the port refused, by reason, over all its endpoints
    /// (those since removed by a reload too). `max_clients` and
    /// `descriptors` add up to the hub's `refused`.
    #[serde(default)]
    pub(crate) refusals: Refusals,
    /// The same per endpoint that accepts connections (not ptys), named
    /// as in `endpoints`.
    #[serde(default)]
    pub(crate) endpoint_refusals: Vec<EndpointRefusals>,
    /// Its labels in the fleet (`--label`); absent when it has none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    /// The daemon's place in the fleet, the same for every port of it:
    /// `null` when it is in none.
    #[serde(default)]
    pub(crate) fleet: Option<FleetStatus>,
    #[serde(flatten)]
    pub(crate) hub: serde_json::Value,
}

/// One endpoint's refusals: `{"endpoint": "tcp:0.0.0.0:7000", "network": 3, ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndpointRefusals {
    pub(crate) endpoint: String,
    #[serde(flatten)]
    pub(crate) refusals: Refusals,
}

impl PortStatus {
    pub(crate) fn new(
        name: &str,
        device: String,
        line: String,
        writers: &str,
        endpoints: Vec<String>,
        hub: &HubStatus,
    ) -> PortStatus {
        PortStatus {
            name: name.to_owned(),
            device,
            line,
            writers: writers.to_owned(),
            endpoints,
            metrics: None,
            metrics_https: false,
            http: None,
            http_https: false,
            traffic_log: None,
            control: None,
            pid: None,
            refusals: Refusals::default(),
            endpoint_refusals: Vec::new(),
            labels: std::collections::BTreeMap::new(),
            fleet: None,
            hub: serde_json::to_value(hub).unwrap_or_default(),
        }
    }
}

/// The control socket of a daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ControlConfig {
    pub(crate) path: PathBuf,
    pub(crate) mode: u32,
}

/// Default mode of the control socket: only its owner may use it.
pub(crate) const DEFAULT_MODE: u32 = 0o600;
