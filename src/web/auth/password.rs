//! Password hashes: argon2id PHC strings, made by `serialhub passwd` and
//! verified at login.
//!
//! A verification costs tens of milliseconds of CPU and 19 MiB, so at most
//! [`MAX_VERIFYING`] run at once (on the blocking pool), and at most
//! [`MAX_WAITING`] more wait for them: past that a login is answered
//! "busy" at once ([`Busy`]), so a login flood can neither starve the
//! ports, eat memory, nor hold the listener's connections waiting. An
//! unknown user is verified against a dummy hash, so the answer takes as
//! long as for a known one with a wrong password.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Verifications at once: one per core of a small machine.
const MAX_VERIFYING: usize = 2;

/// Logins waiting for a verification: a browser or two retrying, not a
/// flood, which is told to come back later.
const MAX_WAITING: usize = 14;

/// The listener's password checks: at most [`MAX_VERIFYING`] run, and
/// [`MAX_WAITING`] more wait.
#[derive(Debug)]
pub(crate) struct Verifier {
    verifying: Semaphore,
    /// Verifying or waiting to.
    admitted: Semaphore,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            verifying: Semaphore::new(MAX_VERIFYING),
            admitted: Semaphore::new(MAX_VERIFYING + MAX_WAITING),
        }
    }
}

/// Too many logins are being verified at once: try again later.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Busy;

/// The argon2id PHC string of `password`, with a random salt and
/// argon2's default costs (19 MiB, 2 passes).
pub(crate) fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| "no random numbers from the system".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A hash no password is known for, verified for unknown users.
fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("no user has this password").unwrap_or_default())
}

/// Whether `password` matches `hash` (`None`: an unknown user, checked
/// against the dummy so that it takes as long, and fails); [`Busy`] if too
/// many logins are verified already.
impl Verifier {
    pub(crate) async fn verify(&self, hash: Option<&str>, password: &str) -> Result<bool, Busy> {
        let Ok(_admitted) = self.admitted.try_acquire() else {
            return Err(Busy);
        };
        let known = hash.is_some();
        let hash = hash.map(str::to_owned);
        let password = password.to_owned();
        let Ok(_permit) = self.verifying.acquire().await else {
            return Ok(false);
        };
        // The dummy is made on the blocking pool too (once): never on a
        // runtime thread.
        let ok = tokio::task::spawn_blocking(move || {
            let hash = hash.as_deref().unwrap_or_else(|| dummy());
            PasswordHash::new(hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash("secret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        crate::config::http::check_hash(&h).unwrap();
        let v = Verifier::default();
        assert_eq!(v.verify(Some(&h), "secret").await, Ok(true));
        assert_eq!(v.verify(Some(&h), "Secret").await, Ok(false));
        assert_eq!(v.verify(None, "no user has this password").await, Ok(false));
        assert_eq!(v.verify(Some("garbage"), "secret").await, Ok(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_logins_is_told_busy_not_queued() {
        let h = hash("secret").unwrap();
        let v = std::sync::Arc::new(Verifier::default());
        let tries: Vec<_> = (0..3 * (MAX_VERIFYING + MAX_WAITING))
            .map(|_| {
                let (h, v) = (h.clone(), v.clone());
                tokio::spawn(async move { v.verify(Some(&h), "wrong").await })
            })
            .collect();
        let mut busy = 0;
        for t in tries {
            match t.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(Busy) => busy += 1,
            }
        }
        assert!(busy > 0, "every login of the flood was queued");
        assert_eq!(
            v.verify(Some(&h), "secret").await,
            Ok(true),
            "verifying again after"
        );
    }
}
