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
//!   keeps this host's records current; `ls`: `serialhub fleet ls`.

pub(crate) mod config;
pub(crate) mod connect;
mod join;
pub(crate) mod ls;
pub(crate) mod records;
pub(crate) mod registry;
pub(crate) mod url;

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
}

impl FleetError {
    /// The command or its settings must change.
    pub fn is_usage(&self) -> bool {
        matches!(self, FleetError::Config(_) | FleetError::Refused(_))
    }
}
