//! The fleet: every port of every host, listed and reached by name through
//! a NATS broker (issue 22). Hosts dial out to the broker; none needs an
//! inbound port. See docs/fleet.md for the subjects, the registry bucket and
//! the session protocol.
//!
//! - `config`: the `--fleet*` flags and `[fleet]` table, resolved and
//!   checked; port labels; `url`: the broker URL, credentials kept apart;
//! - `connect`: the connection to the broker that everything here shares;
//! - `records`: the registry bucket, its keys and records; `join`: taking
//!   a host name only from nobody or the dead; `registry`: the task that
//!   keeps this host's records current; `ls`: `serialhub fleet ls`;
//! - the session protocol (a reliable, flow-controlled byte stream over
//!   core NATS): [`session`] is the sans-I/O state machine, [`wire`] the
//!   subjects and JSON requests, [`drive`] the task that runs one session
//!   end, [`shared`] what it shares with the halves, [`stream`] the client
//!   end ([`stream::open`]) and the two halves endpoints read and write,
//!   [`listen`] the host end;
//! - `address`: a fleet port's name, `HOST/PORT`; `dial`: opening a session
//!   to one (a `fleet://` device, `fleet connect`); `terminal` and `escape`:
//!   `fleet connect` itself.

pub(crate) mod address;
pub(crate) mod config;
pub(crate) mod connect;
pub(crate) mod dial;
pub(crate) mod drive;
mod escape;
mod join;
pub(crate) mod listen;
pub(crate) mod ls;
pub(crate) mod records;
pub(crate) mod registry;
// The sessions' counters (resends, duplicates, gaps) are not in status yet.
#[allow(dead_code)]
pub(crate) mod session;
#[allow(dead_code)]
pub(crate) mod shared;
#[allow(dead_code)]
pub(crate) mod stream;
pub(crate) mod terminal;
pub(crate) mod url;
pub(crate) mod wire;

/// What a fleet command or the registry's start can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A bad `--fleet*` setting or `SERIALHUB_FLEET` (usage).
    #[error(transparent)]
    Config(#[from] config::FleetConfigError),
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    /// Another live serialhub has this fleet host name (usage: give this
    /// one another).
    #[error("{0}")]
    Refused(String),
    #[error("fleet registry: {0}")]
    Registry(String),
    /// A session that could not be opened or broke (`fleet connect`).
    #[error("{0}")]
    Session(String),
}

impl FleetError {
    /// The command or its settings must change.
    pub fn is_usage(&self) -> bool {
        matches!(self, FleetError::Config(_) | FleetError::Refused(_))
    }
}

#[cfg(test)]
mod tests;
