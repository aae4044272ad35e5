//! What can be wrong with settings, from flags or a file: each error
//! names the flag or key, the value and what is allowed.

use super::Source;
use super::ranges::MAX_NAME;
use crate::line::LineError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{option}: {why}")]
    Line {
        option: &'static str,
        why: LineError,
    },
    #[error(
        "{spec} needs {writers}: its options (a modbus-tcp gateway, framing=gap or modbus-rtu, see=) are about requests and the replies routed to them"
    )]
    NeedsTransactions {
        spec: String,
        /// `--writers transaction`, or `writers = "transaction"`.
        writers: &'static str,
    },
    #[error("no {0} given")]
    Missing(&'static str),
    #[error(
        "{option} {name:?} is not a usable port name: use 1 to {MAX_NAME} letters, digits, '_', '.' or '-'"
    )]
    Name { option: &'static str, name: String },
    #[error("{option} {value} is out of range ({range})")]
    OutOfRange {
        option: &'static str,
        value: String,
        range: String,
    },
    #[error(
        "sim --mode loopback: loopback is an in-process device with no tty (`serve --device sim:loopback`); for a pty that sends back what it receives, use --mode echo"
    )]
    LoopbackSim,
    /// A `fleet://` device with no fleet to find it in.
    #[error(
        "the device {device} is a port of a fleet: give the broker with --fleet URL (or a configuration file's [fleet] url)"
    )]
    FleetDevice { device: String },
    #[error("{option} applies only to {only}")]
    NotApplicable {
        option: &'static str,
        only: &'static str,
    },
    /// `flag`: the name it was given by (`--http`, `--metrics`).
    #[error("{flag} {addr:?}: {why}")]
    Metrics {
        flag: &'static str,
        addr: String,
        why: String,
    },
    /// `--http` and `--metrics` (or `[http]` and `[metrics]`) name one
    /// listener: two addresses for it are a mistake.
    #[error("--http {http} and --metrics {metrics}: they name the same listener; give one")]
    HttpTwice { http: String, metrics: String },
    /// Two `--listen` flags (or one and the control socket or the metrics
    /// endpoint) on one address; `how` says with what.
    #[error("--listen {spec} {how}")]
    SameAddress { spec: String, how: &'static str },
    /// An endpoint with `tls`, and no certificate to serve it with.
    #[error("{spec},tls needs a certificate: give {how}")]
    TlsNeedsCert { spec: String, how: &'static str },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The safe default (`exposure`): plain text on a non-loopback address.
    #[error(
        "{option} {spec} would serve plain text on {addr}, which is not a loopback address: anyone who can reach it could read and write the device. Add tls to encrypt it ({spec},tls), or insecure to accept plain text on that endpoint knowingly ({spec},insecure)"
    )]
    PlainText {
        option: &'static str,
        spec: String,
        addr: std::net::SocketAddr,
    },
    #[error("{option}: {why}")]
    Labels { option: &'static str, why: String },
    #[error("{option}: {why}")]
    Access {
        /// `--allow`, or `access` in a file.
        option: &'static str,
        why: crate::access::AccessError,
    },
}

impl ConfigError {
    pub(super) fn line(e: LineError, source: Source) -> Self {
        let option = match e {
            LineError::Baud(_) => "--baud",
            LineError::DataBits(_) => "--data-bits",
            LineError::StopBits(_) => "--stop-bits",
        };
        ConfigError::Line {
            option: source.name(option),
            why: e,
        }
    }
}
