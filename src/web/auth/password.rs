//! Password hashes: argon2id PHC strings, made by `serialhub passwd` and
//! verified at login.
//!
//! A verification costs tens of milliseconds of CPU and 19 MiB, so at most
//! [`MAX_VERIFYING`] run at once (on the blocking pool): a login flood
//! waits for them and cannot starve the ports or eat memory. An unknown
//! user is verified against a dummy hash, so the answer takes as long as
//! for a known one with a wrong password.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Verifications at once: one per core of a small machine.
const MAX_VERIFYING: usize = 2;

static VERIFYING: Semaphore = Semaphore::const_new(MAX_VERIFYING);

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
/// against the dummy so that it takes as long, and fails).
pub(crate) async fn verify(hash: Option<&str>, password: &str) -> bool {
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| dummy()).to_owned();
    let password = password.to_owned();
    let Ok(_permit) = VERIFYING.acquire().await else {
        return false;
    };
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    ok && known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash("secret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        crate::config::http::check_hash(&h).unwrap();
        assert!(verify(Some(&h), "secret").await);
        assert!(!verify(Some(&h), "Secret").await);
        assert!(!verify(None, "no user has this password").await);
        assert!(!verify(Some("garbage"), "secret").await);
    }
}
