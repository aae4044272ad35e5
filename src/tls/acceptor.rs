//! The handle every TLS listener takes its configuration from: the current
//! [`ServerConfig`], which [`TlsAcceptor::reload`] replaces by reading the
//! files again, and the bound on handshakes in progress. (Failed handshakes
//! are counted and logged by the endpoint's refuser, `endpoint::refusal`.)
//!
//! A handshake reads the configuration once, when it starts, so a reload
//! changes what new connections get; sessions already open keep theirs. A
//! reload that fails (a missing file, a key that does not match) keeps the
//! old configuration and says which file and why.
//!
//! Handshakes in progress are bounded, and when all places are taken a new
//! connection takes the place of the oldest handshake, which is told to end
//! (see [`HandshakePlace::evicted`]). Refusing the newcomer instead would
//! let [`MAX_HANDSHAKES`] peers that never send a ClientHello shut every
//! client out for a whole `handshake-timeout`; the oldest is the one that
//! has had the longest to finish, and a well-behaved client finishes in a
//! few round trips.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use super::config::{TlsError, TlsFiles, server_config};

/// Handshakes in progress at once, per acceptor. A handshake costs CPU
/// (a signature, a key exchange) and a task; past this, a new connection
/// ends the oldest handshake rather than queue or be refused, so a flood
/// of half-open connections can neither grow without bound nor starve the
/// port's clients.
pub(crate) const MAX_HANDSHAKES: usize = 64;

/// The handshakes in progress, oldest first.
///
/// A plain mutex, not a task that owns the list: it is held only to push
/// or remove an entry (never across an `.await`), by the accept loop and
/// by a handshake task giving its place back.
#[derive(Debug, Default)]
struct InProgress {
    next: u64,
    /// Each handshake's number and the token that ends it.
    live: VecDeque<(u64, CancellationToken)>,
}

/// The current TLS configuration and what bounds its handshakes.
#[derive(Debug)]
pub(crate) struct TlsAcceptor {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
    in_progress: Arc<Mutex<InProgress>>,
}

/// One handshake's place among the [`MAX_HANDSHAKES`]; dropping it gives
/// the place back.
#[derive(Debug)]
pub(crate) struct HandshakePlace {
    id: u64,
    /// Cancelled when a newer connection took this place: the handshake
    /// ends there, and the connection with it.
    pub(crate) evicted: CancellationToken,
    in_progress: Arc<Mutex<InProgress>>,
}

impl Drop for HandshakePlace {
    fn drop(&mut self) {
        let mut t = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Gone already if it was evicted.
        t.live.retain(|(id, _)| *id != self.id);
    }
}

impl TlsAcceptor {
    /// Reads `files` and builds the first configuration.
    pub(crate) fn new(files: TlsFiles) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsAcceptor {
            files,
            config: ArcSwap::new(config),
            in_progress: Arc::default(),
        })
    }

    /// An acceptor for `files`, if any are given.
    pub(crate) fn of(files: Option<&TlsFiles>) -> Result<Option<Arc<TlsAcceptor>>, TlsError> {
        files
            .map(|f| TlsAcceptor::new(f.clone()).map(Arc::new))
            .transpose()
    }

    /// The configuration a handshake starting now uses.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Reads the certificate, key, client CA and CRLs again. On success new
    /// handshakes use them; on error the old ones stay in force, and the
    /// error names the file and the reason.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        self.config.store(config);
        Ok(())
    }

    /// A place for one more handshake. When all are taken, the oldest
    /// handshake in progress is evicted (its token cancelled) to make room.
    pub(crate) fn handshake_place(&self) -> HandshakePlace {
        let mut t = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if t.live.len() >= MAX_HANDSHAKES
            && let Some((_, oldest)) = t.live.pop_front()
        {
            oldest.cancel();
        }
        let id = t.next;
        t.next += 1;
        let evicted = CancellationToken::new();
        t.live.push_back((id, evicted.clone()));
        HandshakePlace {
            id,
            evicted,
            in_progress: self.in_progress.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a CA-less server certificate and key for `name` into `dir`.
    fn write_cert(dir: &std::path::Path, name: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    }

    fn files(dir: &std::path::Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: None,
            crls: vec![],
        }
    }

    #[test]
    fn reload_takes_new_files_and_keeps_the_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path(), "one.lab");
        let a = TlsAcceptor::new(files(dir.path())).unwrap();
        let first = a.config();
        // Unchanged files: a new configuration all the same.
        write_cert(dir.path(), "two.lab");
        a.reload().unwrap();
        let second = a.config();
        assert!(!Arc::ptr_eq(&first, &second));
        // A broken key: the error names it, the second stays.
        std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
        let e = a.reload().unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("no private key"), "{e}");
        assert!(Arc::ptr_eq(&second, &a.config()));
        // A key of another certificate: named too, and kept out.
        let other = tempfile::tempdir().unwrap();
        write_cert(other.path(), "three.lab");
        std::fs::copy(other.path().join("key.pem"), dir.path().join("key.pem")).unwrap();
        let e = a.reload().unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        assert!(Arc::ptr_eq(&second, &a.config()));
        // A missing file.
        std::fs::remove_file(dir.path().join("cert.pem")).unwrap();
        let e = a.reload().unwrap_err().to_string();
        assert!(e.contains("cert.pem") && e.contains("cannot read"), "{e}");
        assert!(Arc::ptr_eq(&second, &a.config()));
    }

    #[test]
    fn handshakes_in_progress_are_bounded_and_the_oldest_makes_room() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path(), "one.lab");
        let a = TlsAcceptor::new(files(dir.path())).unwrap();
        let mut held: Vec<_> = (0..MAX_HANDSHAKES).map(|_| a.handshake_place()).collect();
        assert!(held.iter().all(|p| !p.evicted.is_cancelled()));
        // One more: the oldest is told to end, and only it.
        let newest = a.handshake_place();
        assert!(held[0].evicted.is_cancelled());
        assert!(held[1..].iter().all(|p| !p.evicted.is_cancelled()));
        assert!(!newest.evicted.is_cancelled());
        assert_eq!(a.in_progress.lock().unwrap().live.len(), MAX_HANDSHAKES);
        // A place given back (a handshake done) makes room without evicting.
        drop(held.remove(0));
        drop(held.remove(0));
        assert_eq!(a.in_progress.lock().unwrap().live.len(), MAX_HANDSHAKES - 1);
        let next = a.handshake_place();
        assert!(held.iter().all(|p| !p.evicted.is_cancelled()));
        drop((held, newest, next));
        assert!(a.in_progress.lock().unwrap().live.is_empty());
    }
}
