//! Episodes: a condition that recurs for as long as it lasts (accepts
//! failing for want of descriptors, clients refused at a limit, idle
//! connections shed) is logged once when it starts and once, with how many
//! times it happened, when it ends, never once per occurrence. A flood then
//! costs two log lines, not one per connection or retry.
//!
//! An episode can be made to end only after a quiet spell
//! ([`Episode::quiet`]), so that a condition that comes and goes under a
//! steady attack is one episode, not two log lines a second.
//!
//! A leaf module: the endpoints' accept loop and the control socket's and
//! metrics listener's both use it.

use std::time::{Duration, Instant};

use tracing::{info, warn};

/// The quiet spell that ends an episode of the control socket's and the
/// metrics listener's: a second, so no line of theirs repeats more often.
pub const QUIET: Duration = Duration::from_secs(1);

/// One kind of recurring condition, and the count of the episode under way.
#[derive(Debug)]
pub(crate) struct Episode {
    /// What happened: `out of file descriptors`.
    what: &'static str,
    /// What is done meanwhile, said at the start: `refusing new clients`.
    doing: &'static str,
    /// Said when it ends: `over, accepting clients again`.
    after: &'static str,
    /// Occurrences in the episode under way; `None` between episodes.
    count: Option<u64>,
    /// How long without an occurrence ends an episode.
    quiet: Duration,
    /// The latest occurrence.
    last: Option<Instant>,
}

impl Episode {
    pub(crate) const fn new(
        what: &'static str,
        doing: &'static str,
        after: &'static str,
    ) -> Episode {
        Episode {
            what,
            doing,
            after,
            count: None,
            quiet: Duration::ZERO,
            last: None,
        }
    }

    /// Ends episodes only after `quiet` without an occurrence.
    pub(crate) const fn quiet(mut self, quiet: Duration) -> Episode {
        self.quiet = quiet;
        self
    }

    /// Counts `n` more occurrences; the first of an episode is logged, with
    /// `detail` (the error, the limit).
    pub(crate) fn hit(&mut self, n: u64, detail: impl std::fmt::Display) {
        if !self.quiet.is_zero() {
            self.last = Some(Instant::now());
        }
        match &mut self.count {
            Some(total) => *total = total.saturating_add(n),
            None => {
                warn!("{}: {detail}; {}", self.what, self.doing);
                self.count = Some(n);
            }
        }
    }

    /// When the episode under way may end, if one is and it ends only
    /// after a quiet spell: call [`over`](Self::over) then, so its end is
    /// logged though nothing more happens.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.count?;
        self.last.map(|t| t + self.quiet)
    }

    /// Ends the episode under way, if any and if it has been quiet long
    /// enough, logging its count.
    pub(crate) fn over(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < self.quiet) {
            return None;
        }
        let n = self.count.take()?;
        info!(count = n, "{}: {}", self.what, self.after);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_an_episode_and_ends_it_once() {
        let mut e = Episode::new("out of file descriptors", "backing off", "accepting again");
        assert_eq!(e.over(), None);
        e.hit(1, "EMFILE");
        e.hit(3, "EMFILE");
        assert_eq!(e.over(), Some(4));
        assert_eq!(e.over(), None);
        e.hit(2, "EMFILE");
        assert_eq!(e.over(), Some(2));
    }

    #[test]
    fn a_quiet_episode_ends_only_after_a_quiet_spell() {
        let quiet = Duration::from_millis(50);
        let mut e = Episode::new("full", "shedding", "no longer shedding").quiet(quiet);
        e.hit(1, "64 open");
        assert_eq!(e.over(), None);
        e.hit(1, "64 open");
        std::thread::sleep(quiet);
        assert_eq!(e.over(), Some(2));
        assert_eq!(e.over(), None);
    }
}
