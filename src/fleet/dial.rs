//! Opening sessions to other hosts' ports, for a `fleet://HOST/PORT` device
//! and `serialhub fleet connect`: the credit window a line needs, and the
//! process's broker connection, which every `fleet://` device shares.
//!
//! That connection is the daemon's one client of the broker, made before
//! any port starts; a device reaches it here rather than through every
//! port's start-up arguments, which would carry it through the reload
//! machinery for nothing (it never changes while the process runs).

use std::io;
use std::sync::OnceLock;

use async_nats::Client;

use super::address::FleetPort;
use super::session::window_for;
use super::stream::{self, FleetReader, FleetWriter};
use super::wire::Mode;
use crate::line::LineSettings;

/// The daemon's client of the broker, once it has joined a fleet.
static CLIENT: OnceLock<Client> = OnceLock::new();

/// Makes `client` the one `fleet://` devices open their sessions over.
/// Only the first call counts: a process joins one fleet.
pub(crate) fn use_client(client: &Client) {
    let _ = CLIENT.set(client.clone());
}

/// A session's credit window for `line` (half a second of line time,
/// within the session's bounds); the most for an unpaced line.
pub(crate) fn window(line: &LineSettings, pacing: bool) -> usize {
    let rate = pacing.then(|| line.bytes_per_sec() as u64);
    window_for(rate, 0)
}

/// Opens a session to `port` over `client`, with `window`.
pub(crate) async fn open_over(
    client: &Client,
    port: &FleetPort,
    mode: Mode,
    window: usize,
) -> io::Result<(FleetReader, FleetWriter)> {
    stream::open(client, &port.host, &port.port, mode, window)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, format!("fleet://{port}: {e}")))
}

/// Opens a session to `port` for a device whose line is `line` (paced, or
/// not), over the daemon's connection.
pub(crate) async fn open(
    port: &FleetPort,
    mode: Mode,
    line: &LineSettings,
    pacing: bool,
) -> io::Result<(FleetReader, FleetWriter)> {
    let Some(client) = CLIENT.get() else {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            format!("fleet://{port}: this serialhub is in no fleet (serve --fleet URL)"),
        ));
    };
    open_over(client, port, mode, window(line, pacing)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::session::{MAX_WINDOW, MIN_WINDOW};

    #[test]
    fn the_window_is_half_a_second_of_line_time_within_bounds() {
        let at = |baud| window(&LineSettings::with_baud(baud), true);
        assert_eq!(at(300), MIN_WINDOW);
        assert_eq!(at(115_200), 5760);
        assert_eq!(at(4_000_000), 200_000);
        assert_eq!(at(12_000_000), MAX_WINDOW);
        assert_eq!(window(&LineSettings::with_baud(300), false), MAX_WINDOW);
    }
}
