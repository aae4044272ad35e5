//! The fleet's flags: `serve --fleet*` and `--label`, and the `fleet`
//! subcommands (issue 22). Each subcommand's arguments are a struct here,
//! so adding one touches one enum.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::fleet::config::Label;

/// `serve`'s fleet flags: join a NATS broker's fleet; and the port's labels.
#[derive(Debug, Args)]
pub(crate) struct FleetFlags {
    /// A label of the port in the fleet, KEY=VALUE (repeatable; `fleet ls
    /// --label` filters by them): a key of 1 to 64 letters, digits, '_',
    /// '.' or '-', a value of at most 256 characters.
    #[arg(long = "label", value_name = "KEY=VALUE", conflicts_with = "config")]
    pub(crate) labels: Vec<Label>,
    /// Join the fleet of this NATS broker: nats://HOST:PORT (comma-separated
    /// for a cluster), tls://HOST:PORT for TLS, user:password@ in the URL or
    /// --fleet-creds. This host's ports are then listed by `serialhub fleet
    /// ls` everywhere as HOST/PORT. Overrides the file's [fleet] url.
    #[arg(long = "fleet", value_name = "URL")]
    pub(crate) url: Option<String>,
    /// This host's name in the fleet (1 to 64 letters, digits, '_' or '-').
    /// Default: the machine's host name up to its first dot.
    #[arg(long = "fleet-host", value_name = "NAME")]
    pub(crate) host: Option<String>,
    /// A NATS credentials file (.creds: user JWT and nkey seed).
    #[arg(long = "fleet-creds", value_name = "FILE")]
    pub(crate) creds: Option<PathBuf>,
    /// A CA bundle (PEM) the broker's TLS certificate must chain to.
    #[arg(long = "fleet-ca", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// How often this host refreshes its ports in the fleet registry (1s to
    /// 1min; default 5s). A host that stops is gone from listings after 3.
    #[arg(long = "fleet-heartbeat", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) heartbeat: Option<Duration>,
}

impl From<&FleetFlags> for crate::fleet::config::FleetSettings {
    fn from(f: &FleetFlags) -> Self {
        crate::fleet::config::FleetSettings {
            url: f.url.clone(),
            host: f.host.clone(),
            creds: f.creds.clone(),
            ca: f.ca.clone(),
            heartbeat: f.heartbeat,
        }
    }
}

/// The fleet: every port of every serialhub joined to a NATS broker.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    #[command(subcommand)]
    pub(crate) command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FleetCommand {
    /// List every port of the fleet: HOST/PORT, device, state, line,
    /// clients, labels and the age of its last heartbeat.
    Ls(LsArgs),
    /// A terminal on a port of the fleet: stdin to the device, the device
    /// to stdout. At a terminal, keys go to the device as typed (raw mode)
    /// and `~.` after Enter quits; in a pipe, the end of input closes the
    /// sending side and the device's answer is printed until it has been
    /// quiet for a second.
    Connect(ConnectArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The port, as `fleet ls` names it: HOST/PORT.
    #[arg(value_name = "HOST/PORT")]
    pub(crate) port: crate::fleet::address::FleetPort,
    #[command(flatten)]
    pub(crate) broker: BrokerFlag,
}

/// The broker of a `fleet` subcommand.
#[derive(Debug, Args)]
pub(crate) struct BrokerFlag {
    /// The NATS broker: nats://HOST:PORT, tls://HOST:PORT, comma-separated
    /// for a cluster, user:password@ in the URL. Default: $SERIALHUB_FLEET.
    #[arg(long = "fleet", value_name = "URL")]
    pub(crate) url: Option<String>,
    /// A NATS credentials file (.creds), as for `serve --fleet-creds`.
    #[arg(long = "fleet-creds", value_name = "FILE")]
    pub(crate) creds: Option<PathBuf>,
    /// A CA bundle (PEM) the broker's TLS certificate must chain to.
    #[arg(long = "fleet-ca", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
}

impl BrokerFlag {
    /// The broker these flags (or `SERIALHUB_FLEET`) name, its files checked.
    pub(crate) fn broker(
        &self,
    ) -> Result<crate::fleet::config::Broker, crate::fleet::config::FleetConfigError> {
        crate::fleet::config::Broker::from_flags(
            self.url.as_deref(),
            self.creds.clone(),
            self.ca.clone(),
        )
    }
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    pub(crate) broker: BrokerFlag,
    /// Only ports with this label (repeatable: all of them).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<Label>,
    /// Print JSON (a list of ports, a stable schema) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}
