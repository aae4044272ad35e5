//! Opening sessions to other hosts' ports, for a `fleet://HOST/PORT` device
//! and `serialhub fleet connect`: the credit window a line rate needs, and
//! the process's broker connection, which every such device shares.

use std::io;
use std::time::Duration;

use super::address::FleetPort;
use crate::line::LineSettings;

/// Line time a session's window holds: enough to keep the line busy over
/// a broker round trip of a few hundred milliseconds.
const WINDOW_TIME: Duration = Duration::from_millis(500);
/// Least window, whatever the rate: a few frames.
const WINDOW_MIN: usize = 4 * 1024;
/// Most window: bounds what one session holds in flight and in memory.
const WINDOW_MAX: usize = 256 * 1024;

/// A session's credit window for `line`: [`WINDOW_TIME`] of line time,
/// within [`WINDOW_MIN`] and [`WINDOW_MAX`].
pub(crate) fn window(line: &LineSettings) -> usize {
    line.bytes_in(WINDOW_TIME).clamp(WINDOW_MIN, WINDOW_MAX)
}

/// Which protocol a session carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Raw,
    Rfc2217,
}

/// Opens a session to `port` for a device whose line is `line`.
pub(crate) async fn open(
    port: &FleetPort,
    _mode: Mode,
    line: &LineSettings,
) -> io::Result<crate::device::remote::Link> {
    let _ = window(line);
    Err(io::Error::new(
        io::ErrorKind::NotConnected,
        format!("fleet://{port}: not in a fleet"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_half_a_second_of_line_time_within_bounds() {
        assert_eq!(window(&LineSettings::with_baud(300)), WINDOW_MIN);
        assert_eq!(window(&LineSettings::with_baud(115_200)), 5760);
        assert_eq!(window(&LineSettings::with_baud(4_000_000)), 200_000);
        assert_eq!(window(&LineSettings::with_baud(12_000_000)), WINDOW_MAX);
    }
}
