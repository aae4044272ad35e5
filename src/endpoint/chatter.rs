//! Connect and disconnect lines, bounded per endpoint: a loop that connects
//! and closes thousands of times a second must not write thousands of log
//! lines a second (issue 18). The first [`PER_SECOND`] clients of each
//! second are logged as they come and go, at info; past that, a client's
//! lines go to debug, and one episode line says so, with a count at its
//! end.

use std::time::{Duration, Instant};

use crate::episode::{Episode, QUIET};

/// Clients a second whose comings and goings are logged at info: far more
/// than people and programs connect, far fewer than a flood.
pub(crate) const PER_SECOND: u32 = 20;

#[derive(Debug)]
pub(crate) struct Chatter {
    window: Instant,
    logged: u32,
    quieted: Episode,
}

impl Default for Chatter {
    fn default() -> Self {
        Self {
            window: Instant::now(),
            logged: 0,
            quieted: Episode::new(
                "clients connecting faster than 20 a second",
                "their connect and disconnect lines go to debug level",
                "over, logging each client again",
            )
            .quiet(QUIET),
        }
    }
}

impl Chatter {
    /// See [`Episode::due`].
    pub(crate) fn due(&self) -> Option<Instant> {
        self.quieted.due()
    }

    /// Ends the flood's episode if it has been quiet for long enough.
    pub(crate) fn over(&mut self) {
        self.quieted.over();
    }

    /// Whether the client accepted now is logged at info.
    pub(crate) fn loud(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.logged = 0;
        }
        if self.logged < PER_SECOND {
            self.logged += 1;
            self.quieted.over();
            return true;
        }
        self.quieted
            .hit(1, format_args!("{PER_SECOND} in the last second"));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_rate_clients_are_quiet() {
        let mut c = Chatter::default();
        let loud = (0..100).filter(|_| c.loud()).count();
        assert_eq!(loud, PER_SECOND as usize);
    }
}
