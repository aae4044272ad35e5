//! Sleeps precise to tens of microseconds, for the silences that serial
//! protocols measure in character times.
//!
//! tokio's timers have a resolution of one millisecond and round up, so a
//! 1.82 ms inter-frame gap (3.5 characters at 19200 baud) becomes 2 to 3 ms:
//! a third of a Modbus transaction's overhead. A [`PreciseTimer`] is a
//! `timerfd` driven by the reactor, which wakes within microseconds of its
//! deadline and, like tokio's timers, never early. Where one cannot be made
//! (no descriptor to spare), it falls back to tokio's.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

#[derive(Debug)]
struct Owned(TimerFd);

impl AsRawFd for Owned {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A reusable precise sleep; one sleeper at a time.
#[derive(Debug)]
pub(crate) struct PreciseTimer(Option<AsyncFd<Owned>>);

impl PreciseTimer {
    pub(crate) fn new() -> PreciseTimer {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        // SAFETY: `Owned` owns its descriptor, which stays open and the same
        // until the `AsyncFd` drops it.
        .and_then(|t| {
            unsafe { AsyncFd::register_with_interest(Owned(t), tokio::io::Interest::READABLE) }.ok()
        });
        PreciseTimer(fd)
    }

    /// Sleeps until `deadline`. Cancel safe: a cancelled sleep leaves the
    /// timer armed, and the next call re-arms it.
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        let Some(fd) = &self.0 else {
            return tokio::time::sleep_until(deadline).await;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        // A zero TimeSpec would disarm the timer; `left` is not zero.
        let armed = fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(left.max(Duration::from_nanos(1)))),
            TimerSetTimeFlags::empty(),
        );
        if armed.is_err() {
            return tokio::time::sleep_until(deadline).await;
        }
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return tokio::time::sleep_until(deadline).await;
            };
            let mut count = [0u8; 8];
            match nix::unistd::read(fd.get_ref().0.as_fd(), &mut count) {
                // Nothing makes a one-shot timer readable again until it is
                // armed again: forget the readiness now, instead of the
                // next sleep spending a read that fails to learn it.
                Ok(_) => return guard.clear_ready(),
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(_) => return tokio::time::sleep_until(deadline).await,
            }
        }
    }
}

impl Default for PreciseTimer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_at_least_until_the_deadline() {
        let timer = PreciseTimer::new();
        for us in [300u64, 1_820, 5_000] {
            let start = Instant::now();
            timer.sleep_until(start + Duration::from_micros(us)).await;
            assert!(start.elapsed() >= Duration::from_micros(us));
        }
        // A cancelled sleep leaves the timer usable.
        let _ = tokio::time::timeout(
            Duration::from_millis(1),
            timer.sleep_until(Instant::now() + Duration::from_secs(5)),
        )
        .await;
        let start = Instant::now();
        timer.sleep_until(start + Duration::from_millis(2)).await;
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
