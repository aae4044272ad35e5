//! The range of every numeric setting, checked where settings are
//! resolved: a value outside it is refused with an error naming the flag
//! (or key) and the range.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::device::READ_CHUNK;
use crate::traffic;

/// A lock holder that writes nothing for this long loses the write lock.
pub(crate) const DEFAULT_LOCK_IDLE: Duration = Duration::from_secs(5);
/// A lock holder loses the write lock after holding it this long.
pub(crate) const DEFAULT_LOCK_MAX: Duration = Duration::from_secs(60);
#[cfg(test)]
pub(crate) use crate::hub::budget::{CLIENT_QUEUE_MIN, MAX_BUDGET, MIN_BUDGET};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `--client-queue`: at least one device read, at most 64 MiB per client.
pub(crate) const CLIENT_QUEUE: RangeInclusive<usize> =
    READ_CHUNK..=crate::hub::budget::CLIENT_QUEUE_MAX;
/// `--scrollback`: 0 (none) to 16 MiB, copied for each viewer that joins.
pub(crate) const SCROLLBACK: RangeInclusive<usize> = 0..=crate::hub::history::MAX_SCROLLBACK;
/// `--max-inflight`: below 10 ms a chunk is a byte or two; above an hour is
/// no bound at all.
pub(crate) const MAX_INFLIGHT: RangeInclusive<Duration> = ms(10)..=secs(3600);
/// `--stats-every`, when not 0 (off).
pub(crate) const STATS_EVERY: RangeInclusive<Duration> = secs(1)..=secs(86_400);
/// `--max-clients`.
pub(crate) const MAX_CLIENTS: RangeInclusive<usize> = 1..=65_536;
/// `--lock-idle`.
pub(crate) const LOCK_IDLE: RangeInclusive<Duration> = ms(10)..=secs(3600);
/// `--lock-max`.
pub(crate) const LOCK_MAX: RangeInclusive<Duration> = ms(100)..=secs(86_400);
/// `--drain-timeout`: 0 writes nothing more at shutdown.
pub(crate) const DRAIN_TIMEOUT: RangeInclusive<Duration> = Duration::ZERO..=secs(3600);
/// `--log-max-size`: 4 KiB to 1 TiB per file.
pub(crate) const LOG_MAX_SIZE: RangeInclusive<u64> = traffic::MIN_MAX_SIZE..=1 << 40;
/// `--reply-timeout`.
pub(crate) const REPLY_TIMEOUT: RangeInclusive<Duration> = ms(10)..=secs(60);
/// `--reply-gap`.
pub(crate) const REPLY_GAP: RangeInclusive<Duration> = ms(1)..=secs(10);
/// Least default reply gap. USB serial adapters hand over received bytes
/// in batches (an FTDI chip every 16 ms by default), and a loaded machine
/// reads late, so a gap of a few character times would cut replies short.
/// It only ends replies whose end their framing cannot find.
pub(super) const REPLY_GAP_MIN: Duration = ms(10);
/// Modbus RTU's inter-frame silence is 3.5 characters, but at least 1.75 ms
/// above 19200 baud.
pub(super) const FRAME_GAP_MIN: Duration = Duration::from_micros(1750);
/// `--log-keep`: files kept, the current one included.
pub(crate) const LOG_KEEP: RangeInclusive<usize> = 1..=1000;

/// Longest port name: a name is in every log line and metric label of its
/// port, so it is kept short enough to read.
pub(crate) const MAX_NAME: usize = 64;
