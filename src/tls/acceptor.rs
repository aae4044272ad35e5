//! The handle every TLS listener takes its configuration from: the current
//! [`ServerConfig`], which [`TlsAcceptor::reload`] replaces by reading the
//! files again, and the bound on handshakes in progress. (Failed handshakes
//! are counted and logged by the endpoint's refuser, `endpoint::refusal`.)
//!
//! A handshake reads the configuration once, when it starts, so a reload
//! changes what new connections get; sessions already open keep theirs. A
//! reload that fails (a missing file, a key that does not match) keeps the
//! old configuration and says which file and why.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{TlsError, TlsFiles, server_config};

/// Handshakes in progress at once, per acceptor. A handshake costs CPU
/// (a signature, a key exchange); past this, new connections are refused
/// (and counted) rather than queued, so a flood of half-open connections
/// cannot starve the port's clients.
pub(crate) const MAX_HANDSHAKES: usize = 64;

/// The current TLS configuration and what bounds its handshakes.
#[derive(Debug)]
pub(crate) struct TlsAcceptor {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
    handshakes: Arc<Semaphore>,
}

impl TlsAcceptor {
    /// Reads `files` and builds the first configuration.
    pub(crate) fn new(files: TlsFiles) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsAcceptor {
            files,
            config: ArcSwap::new(config),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
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

    /// A place for one more handshake, if there is room.
    pub(crate) fn try_handshake(&self) -> Option<OwnedSemaphorePermit> {
        self.handshakes.clone().try_acquire_owned().ok()
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
    fn handshakes_in_progress_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path(), "one.lab");
        let a = TlsAcceptor::new(files(dir.path())).unwrap();
        let held: Vec<_> = (0..MAX_HANDSHAKES).map(|_| a.try_handshake()).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(a.try_handshake().is_none());
        drop(held);
        assert!(a.try_handshake().is_some());
    }
}
