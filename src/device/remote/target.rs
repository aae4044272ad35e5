//! Where a remote port is, and connecting to it: a TCP address
//! (`rfc2217://`, `tcp://`), or a fleet port found by name through the
//! broker (`fleet://HOST/PORT`), which always speaks RFC 2217 so that line
//! settings, modem lines and break travel as they do with `rfc2217://`.

use std::io;

use super::{Link, Protocol, Remote, RemoteOptions};
use crate::fleet::address::FleetPort;
use crate::fleet::dial;
use crate::fleet::wire::Mode;
use crate::line::LineSettings;
use crate::modem::ModemOutputs;

/// A remote port to connect, and connect again when it is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Tcp {
        protocol: Protocol,
        addr: String,
        options: RemoteOptions,
    },
    Fleet(FleetPort),
}

impl Target {
    /// Connects with `line`, then sets `lines` (DTR and RTS) if given. A
    /// fleet session's window is sized for the line when `pacing`, and the
    /// largest otherwise (an unpaced port takes data as fast as it comes).
    pub(crate) async fn connect(
        &self,
        line: &LineSettings,
        lines: Option<ModemOutputs>,
        pacing: bool,
    ) -> io::Result<Remote> {
        match self {
            Target::Tcp {
                protocol,
                addr,
                options,
            } => Remote::connect(*protocol, addr, *options, line, lines).await,
            Target::Fleet(port) => {
                let (reader, writer) = dial::open(port, Mode::Rfc2217, line, pacing).await?;
                let link = Link::stream(reader, writer);
                let name = format!("fleet://{port}");
                let options = RemoteOptions::default();
                Remote::over(link, Protocol::Rfc2217, &name, options, line, lines).await
            }
        }
    }

    /// What the device's path shows: the address, or `fleet://HOST/PORT`.
    pub(crate) fn shown(&self) -> String {
        match self {
            Target::Tcp { addr, .. } => addr.clone(),
            Target::Fleet(port) => format!("fleet://{port}"),
        }
    }
}
