//! Endpoints: the ways clients reach the hub.
//!
//! Each kind has its own module that accepts clients: [`tcp`] and [`unix`]
//! listen for stream connections; [`pty`] is a virtual serial port that one
//! program at a time opens like a real one, and whose termios changes
//! reach the device ([`pty_settings`]). [`client`] then runs a connected
//! client, whatever its kind, applying the endpoint's [`options`]: read-only
//! access, line framing ([`framing`]) and in-band lock commands
//! ([`inband`]). A stream client's socket is shared with the hub's fan-out
//! ([`sink`]), which writes device data to it directly while it keeps up.
//! Connections turned away are counted and logged by [`refusal`].

pub(crate) mod accept;
pub(crate) mod allow;
mod chatter;
pub(crate) mod client;
pub(crate) mod external;
pub mod framing;
pub mod inband;
pub(crate) mod modbus_tcp;
pub(crate) mod options;
pub(crate) mod pty;
mod pty_settings;
pub(crate) mod refusal;
pub(crate) mod request;
pub(crate) mod rfc2217;
pub(crate) mod sink;
pub(crate) mod slot;
pub(crate) mod source;
pub(crate) mod tcp;
pub(crate) mod tls_accept;
pub(crate) mod unix;

pub(crate) use accept::Context;
pub use options::EndpointSpec;
pub(crate) use options::{Access, EndpointKind, EndpointOptions, EndpointParseError, Framing};

/// The endpoint every `serve` listens on when given none: loopback only, so a
/// port is never exposed to the network by accident.
pub(crate) const DEFAULT_LISTEN: &str = "tcp:127.0.0.1:7000";
