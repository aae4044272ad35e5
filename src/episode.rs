//! Episodes: a condition that recurs for as long as it lasts (accepts
//! failing for want of descriptors, clients refused at a limit, idle
//! connections shed) is logged once when it starts and once, with how many
//! times it happened, when it ends, never once per occurrence. A flood then
//! costs two log lines, not one per connection or retry.
//!
//! A leaf module: the endpoints' accept loop and the control socket's and
//! metrics listener's both use it.

use tracing::{info, warn};

/// One kind of recurring condition, and the count of the episode under way.
#[derive(Debug)]
pub struct Episode {
    /// What happened: `out of file descriptors`.
    what: &'static str,
    /// What is done meanwhile, said at the start: `refusing new clients`.
    doing: &'static str,
    /// Said when it ends: `over, accepting clients again`.
    after: &'static str,
    /// Occurrences in the episode under way; `None` between episodes.
    count: Option<u64>,
}

impl Episode {
    pub const fn new(what: &'static str, doing: &'static str, after: &'static str) -> Episode {
        Episode {
            what,
            doing,
            after,
            count: None,
        }
    }

    /// Counts `n` more occurrences; the first of an episode is logged, with
    /// `detail` (the error, the limit).
    pub fn hit(&mut self, n: u64, detail: impl std::fmt::Display) {
        match &mut self.count {
            Some(total) => *total = total.saturating_add(n),
            None => {
                warn!("{}: {detail}; {}", self.what, self.doing);
                self.count = Some(n);
            }
        }
    }

    /// Ends the episode under way, if any, logging its count.
    pub fn over(&mut self) -> Option<u64> {
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
}
