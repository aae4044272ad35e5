//! Line-rate pacing: a token bucket that models a serial line's transmitter.
//!
//! A UART sends one character per character time. Where the driver cannot say
//! how much of its output queue is still unsent (a pseudo-terminal reports
//! nothing), serialhub keeps its own model of the line: tokens accrue at the
//! line rate and each byte written costs one. The bucket's capacity is the
//! *lead*: how far ahead of the modelled line the writer may get, which is also
//! the most the kernel's buffer holds. The simulator uses the same bucket to
//! consume and produce bytes at line rate.
//!
//! The bucket is pure logic over caller-supplied instants so it can be unit
//! tested without sleeping.

use std::time::{Duration, Instant};

use crate::timer::PreciseTimer;

/// Line time between a paced writer's wake-ups. Each wake-up costs a timer,
/// a write and the runtime's bookkeeping whatever it carries, so the step is
/// as long as the in-flight bound allows: 50 ms is 20 wake-ups a second at
/// any rate, and a twentieth of the second of line time in flight a port is
/// allowed by default (issue 12: 10 ms steps cost 2% of a core per port).
pub(crate) const PACE_STEP: Duration = Duration::from_millis(50);
/// How late a wake-up may come and still find the line busy: the writer
/// keeps this much line time beyond one step in the driver.
pub(crate) const PACE_MARGIN: Duration = Duration::from_millis(20);
/// Fewest bytes per step; at very low rates a step is a few characters.
pub(crate) const MIN_STEP: usize = 8;

/// How a paced writer steps: it wakes when `step` bytes of line time have
/// passed and tops the driver up to `lead` bytes ahead of the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Steps {
    pub(crate) step: usize,
    /// The token bucket's capacity: one step plus [`PACE_MARGIN`].
    pub(crate) lead: usize,
}

impl Steps {
    /// The steps at `bytes_per_sec`.
    pub(crate) fn for_rate(bytes_per_sec: f64) -> Steps {
        let bytes = |d: Duration| (bytes_per_sec * d.as_secs_f64()).ceil() as usize;
        let step = bytes(PACE_STEP).max(MIN_STEP);
        Steps {
            step,
            lead: step + bytes(PACE_MARGIN).max(MIN_STEP),
        }
    }
}

/// Tokens short of a whole byte that still count as the byte (see `grant`).
const TOKEN_SLACK: f64 = 1e-6;

/// Token bucket in bytes, refilled at a fixed rate, capped at `capacity`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Grants everything at once: pacing is off.
    unlimited: bool,
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: the first `capacity` bytes may go at once.
    pub(crate) fn new(bytes_per_sec: f64, capacity: usize, now: Instant) -> Self {
        let capacity = capacity.max(1) as f64;
        Self {
            unlimited: false,
            rate: bytes_per_sec,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// A bucket that never makes anyone wait.
    pub(crate) fn unlimited() -> Self {
        Self {
            unlimited: true,
            rate: f64::INFINITY,
            capacity: f64::INFINITY,
            tokens: f64::INFINITY,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
    }

    /// Grants up to `want` bytes now, provided at least `min(want, batch)`
    /// are available; otherwise says how long until they are. Batching keeps
    /// wake-ups (and write calls) to one per `batch` bytes instead of one
    /// per character.
    pub(crate) fn grant(
        &mut self,
        now: Instant,
        want: usize,
        batch: usize,
    ) -> Result<usize, Duration> {
        if self.unlimited {
            return Ok(want);
        }
        self.refill(now);
        let need = want.min(batch).clamp(1, self.capacity as usize) as f64;
        // A sleep of exactly the wait it was told refills a hair short of
        // `need` in floating point; without the slack each step would take
        // a second, 1 ms wake-up.
        let have = self.tokens + TOKEN_SLACK;
        if have >= need {
            let n = want.min(have as usize);
            self.tokens = (self.tokens - n as f64).max(0.0);
            Ok(n)
        } else {
            Err(Duration::from_secs_f64((need - self.tokens) / self.rate))
        }
    }

    /// Returns `n` granted bytes that were not used after all.
    pub(crate) fn refund(&mut self, n: usize) {
        self.tokens = (self.tokens + n as f64).min(self.capacity);
    }

    /// How long until the modelled line has sent every byte granted so far.
    pub(crate) fn until_empty(&mut self, now: Instant) -> Duration {
        if self.unlimited {
            return Duration::ZERO;
        }
        self.refill(now);
        Duration::from_secs_f64((self.capacity - self.tokens).max(0.0) / self.rate)
    }

    /// Waits, on the tokio clock, for a grant (see [`grant`](Self::grant)).
    pub(crate) async fn take(&mut self, want: usize, batch: usize) -> usize {
        self.take_on(None, want, batch).await
    }

    /// Waits for a grant on `timer` if given, else on tokio's timers.
    ///
    /// A paced writer sleeps once per step, 20 times a second. tokio's
    /// timer wheel files a deadline that crosses one of its 64 ms slots in
    /// a coarser level, and wakes at the slot to refile it: for most
    /// 50 ms sleeps, a second wake-up that does nothing (issue 12). A
    /// [`PreciseTimer`] wakes once, at the deadline.
    pub(crate) async fn take_on(
        &mut self,
        timer: Option<&PreciseTimer>,
        want: usize,
        batch: usize,
    ) -> usize {
        loop {
            match self.grant(Instant::now(), want, batch) {
                Ok(n) => return n,
                // Sleeping at least 1 ms lets several characters accrue at
                // high rates instead of spinning.
                Err(wait) => {
                    let wait = wait.max(Duration::from_millis(1));
                    match timer {
                        Some(t) => t.sleep_until(tokio::time::Instant::now() + wait).await,
                        None => tokio::time::sleep(wait).await,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_empty_is_the_time_to_send_what_was_granted() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 100, t0);
        assert_eq!(b.until_empty(t0), Duration::ZERO);
        assert_eq!(b.grant(t0, 50, 1), Ok(50));
        let d = b.until_empty(t0);
        assert!((d.as_secs_f64() - 0.05).abs() < 1e-9, "{d:?}");
        assert_eq!(
            b.until_empty(t0 + Duration::from_millis(60)),
            Duration::ZERO
        );
        assert_eq!(TokenBucket::unlimited().until_empty(t0), Duration::ZERO);
    }

    #[test]
    fn full_bucket_grants_capacity_then_waits() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 10, t0);
        assert_eq!(b.grant(t0, 100, 1), Ok(10));
        let wait = b.grant(t0, 1, 1).unwrap_err();
        assert!(wait <= Duration::from_millis(1));
    }

    #[test]
    fn refills_at_rate_and_caps_at_capacity() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 10, t0);
        assert_eq!(b.grant(t0, 10, 1), Ok(10));
        assert_eq!(b.grant(t0 + Duration::from_millis(5), 100, 1), Ok(5));
        // A long idle period refills only up to capacity.
        assert_eq!(b.grant(t0 + Duration::from_secs(10), 100, 1), Ok(10));
    }

    #[test]
    fn long_run_rate_matches_line_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(960.0, 16, t0);
        let mut sent = 0;
        for ms in 0..=10_000u64 {
            if let Ok(n) = b.grant(t0 + Duration::from_millis(ms), 1000, 8) {
                sent += n;
            }
        }
        // 10 s at 960 B/s plus the initial bucket, within rounding.
        assert!((9600..=9600 + 16).contains(&sent), "sent {sent}");
    }

    #[test]
    fn batch_delays_grant_until_enough_accrued() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 10, t0);
        assert_eq!(b.grant(t0, 10, 1), Ok(10));
        let wait = b.grant(t0 + Duration::from_millis(2), 100, 5).unwrap_err();
        assert!((wait.as_secs_f64() - 0.003).abs() < 1e-6, "{wait:?}");
        assert_eq!(b.grant(t0 + Duration::from_millis(5), 100, 5), Ok(5));
        // A small request is not held back by the batch size.
        assert_eq!(b.grant(t0 + Duration::from_millis(7), 2, 5), Ok(2));
    }

    /// Issue 12: a writer that sleeps as the bucket says, with `Steps`,
    /// wakes once per step of line time at any rate, and the line never
    /// runs dry while it sleeps (no wall clock: simulated instants).
    #[test]
    fn issue12_pacer_wakes_once_per_step_and_keeps_the_line_busy() {
        for baud in [300.0, 9600.0, 115_200.0, 4_000_000.0] {
            let rate = baud / 10.0;
            let s = Steps::for_rate(rate);
            assert!(s.step >= MIN_STEP && s.lead > s.step, "{baud}: {s:?}");
            let t0 = Instant::now();
            let mut b = TokenBucket::new(rate, s.lead, t0);
            let mut now = t0;
            let (mut wakeups, mut sent) = (0u32, 0usize);
            let secs = 15.0;
            while now < t0 + Duration::from_secs_f64(secs) {
                wakeups += 1;
                match b.grant(now, usize::MAX, s.step) {
                    Ok(n) => sent += n,
                    Err(wait) => now += wait.max(Duration::from_millis(1)),
                }
            }
            let steps = secs * rate / s.step as f64;
            // A grant and a sleep per step.
            assert!(
                f64::from(wakeups) <= 2.0 * steps + 4.0,
                "{baud}: {wakeups} for {steps}"
            );
            if s.step as f64 >= rate * PACE_STEP.as_secs_f64() {
                // 50 ms steps or longer: at most 20 a second.
                assert!(
                    f64::from(wakeups) / 2.0 <= secs * 20.0 + 2.0,
                    "{baud}: {wakeups}"
                );
            }
            // Everything the line could send, plus the first full bucket.
            let line = (secs * rate) as usize;
            assert!(sent + s.step >= line, "{baud}: sent {sent} of {line}");
            assert!(sent <= line + s.lead + 1, "{baud}: sent {sent} of {line}");
        }
        let s = Steps::for_rate(960.0);
        assert_eq!(
            s,
            Steps {
                step: 48,
                lead: 48 + 20
            }
        );
    }

    #[test]
    fn unlimited_grants_everything() {
        let mut b = TokenBucket::unlimited();
        assert_eq!(b.grant(Instant::now(), 1 << 30, 1), Ok(1 << 30));
        b.refund(5);
        assert_eq!(b.grant(Instant::now(), 7, 100), Ok(7));
    }

    #[test]
    fn refund_restores_tokens() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 4, t0);
        assert_eq!(b.grant(t0, 4, 1), Ok(4));
        b.refund(3);
        assert_eq!(b.grant(t0, 4, 1), Ok(3));
    }
}
