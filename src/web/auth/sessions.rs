//! Login sessions: in memory, bounded, expiring.
//!
//! A session is named by 32 random bytes (base64url) that only its cookie
//! carries. At most [`MAX_SESSIONS`] live at once; a new one past that
//! evicts the one idle longest, so logins cannot grow memory. A session
//! idle for [`IDLE`] is gone. A user removed or given another role loses
//! its sessions ([`Sessions::keep_users`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::access::Role;

/// Sessions at once: far more than the people of a lab, and 4096 small
/// entries at most.
pub(crate) const MAX_SESSIONS: usize = 4096;
/// A session unused this long is over: a working day and then some.
pub(crate) const IDLE: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug)]
struct Session {
    user: String,
    role: Role,
    last: Instant,
}

/// The live sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for `user`, and its token; `None` if the system gave
    /// no random numbers.
    pub(crate) fn create(&self, user: &str, role: Role) -> Option<String> {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, s| now.duration_since(s.last) < IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            token.clone(),
            Session {
                user: user.to_owned(),
                role,
                last: now,
            },
        );
        Some(token)
    }

    /// The user and role of the session `token`, if it is live; it is
    /// used now.
    pub(crate) fn get(&self, token: &str) -> Option<(String, Role)> {
        let now = Instant::now();
        let mut map = self.map();
        let s = map.get_mut(token)?;
        if now.duration_since(s.last) >= IDLE {
            map.remove(token);
            return None;
        }
        s.last = now;
        Some((s.user.clone(), s.role))
    }

    /// Ends the session `token`.
    pub(crate) fn remove(&self, token: &str) {
        self.map().remove(token);
    }

    /// Ends the sessions of users `keep` no longer gives the same role.
    pub(crate) fn keep_users(&self, keep: impl Fn(&str, Role) -> bool) {
        self.map().retain(|_, s| keep(&s.user, s.role));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_and_revocable() {
        let s = Sessions::default();
        let a = s.create("alice", Role::Rw).unwrap();
        assert_eq!(a.len(), 43);
        assert_eq!(s.get(&a), Some(("alice".into(), Role::Rw)));
        assert_eq!(s.get("nope"), None);
        let b = s.create("bob", Role::Ro).unwrap();
        s.keep_users(|u, _| u != "bob");
        assert_eq!(s.get(&b), None);
        s.remove(&a);
        assert_eq!(s.get(&a), None);
        for _ in 0..MAX_SESSIONS + 10 {
            s.create("carol", Role::Ro).unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }
}
