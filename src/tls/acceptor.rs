//! The handle every TLS listener takes its configuration from: the current
//! [`ServerConfig`], which [`TlsAcceptor::reload`] replaces by reading the
//! files again, and the bound on handshakes in progress.
//!
//! A handshake reads the configuration once, when it starts, so a reload
//! changes what new connections get; sessions already open keep theirs. A
//! reload that fails (a missing file, a key that does not match) keeps the
//! old configuration and says which file and why.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{TlsError, TlsFiles, server_config};

/// Handshakes in progress at once, per acceptor. A handshake costs CPU
/// (a signature, a key exchange); past this, new connections are refused
/// (and counted) rather than queued, so a flood of half-open connections
/// cannot starve the port's clients.
pub const MAX_HANDSHAKES: usize = 64;
/// Peers whose last failed handshake was logged less than
/// [`LOG_EVERY`] ago, remembered to keep a scanner from flooding the log.
/// Bounded: past it, failures go unlogged (still counted) until entries
/// expire.
const LOG_MEMORY: usize = 1024;
/// A peer's failed handshakes are logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The current TLS configuration and what bounds its handshakes.
#[derive(Debug)]
pub struct TlsAcceptor {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
    handshakes: Arc<Semaphore>,
    /// Handshakes that failed, timed out, or found no room.
    failed: AtomicU64,
    /// Of which: the client's certificate was revoked by a CRL.
    revoked: AtomicU64,
    /// Failures not logged (the peer was logged recently).
    unlogged: AtomicU64,
    logged: std::sync::Mutex<std::collections::HashMap<IpAddr, Instant>>,
}

impl TlsAcceptor {
    /// Reads `files` and builds the first configuration.
    pub fn new(files: TlsFiles) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsAcceptor {
            files,
            config: ArcSwap::new(config),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            failed: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
            logged: Default::default(),
        })
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The configuration a handshake starting now uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Reads the certificate, key, client CA and CRLs again. On success new
    /// handshakes use them; on error the old ones stay in force, and the
    /// error names the file and the reason.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        self.config.store(config);
        Ok(())
    }

    /// A place for one more handshake, if there is room.
    pub fn try_handshake(&self) -> Option<OwnedSemaphorePermit> {
        self.handshakes.clone().try_acquire_owned().ok()
    }

    /// Counts a failed handshake (`revoked`: by a CRL), and says whether
    /// to log it: at most once per peer address per [`LOG_EVERY`].
    pub fn failed(&self, peer: Option<IpAddr>, revoked: bool) -> bool {
        self.failed.fetch_add(1, Relaxed);
        if revoked {
            self.revoked.fetch_add(1, Relaxed);
        }
        let log = match peer {
            Some(ip) => self.log_now(ip, Instant::now()),
            None => true,
        };
        if !log {
            self.unlogged.fetch_add(1, Relaxed);
        }
        log
    }

    fn log_now(&self, ip: IpAddr, now: Instant) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = logged.get(&ip)
            && now.duration_since(*at) < LOG_EVERY
        {
            return false;
        }
        if logged.len() >= LOG_MEMORY && !logged.contains_key(&ip) {
            logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
            if logged.len() >= LOG_MEMORY {
                return false;
            }
        }
        logged.insert(ip, now);
        true
    }

    /// Failed handshakes so far: all of them, those revoked by a CRL, and
    /// those not logged.
    pub fn failures(&self) -> (u64, u64, u64) {
        (
            self.failed.load(Relaxed),
            self.revoked.load(Relaxed),
            self.unlogged.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_logged_once_per_interval_and_memory_is_bounded() {
        let a = TlsAcceptor {
            files: TlsFiles {
                cert: "c".into(),
                key: "k".into(),
                client_ca: None,
                crls: vec![],
            },
            config: ArcSwap::new(Arc::new(
                ServerConfig::builder_with_provider(super::super::config::provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_cert_resolver(
                        Arc::new(rustls::server::ResolvesServerCertUsingSni::new()),
                    ),
            )),
            handshakes: Arc::new(Semaphore::new(1)),
            failed: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
            logged: Default::default(),
        };
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(a.log_now(ip, t0));
        assert!(!a.log_now(ip, t0 + Duration::from_secs(9)));
        assert!(a.log_now(ip, t0 + Duration::from_secs(11)));
        // A scan from many addresses fills the memory, then goes unlogged,
        // until entries expire.
        for i in 0..LOG_MEMORY as u32 * 2 {
            a.log_now(IpAddr::from(i.to_be_bytes()), t0 + Duration::from_secs(20));
        }
        assert!(a.logged.lock().unwrap().len() <= LOG_MEMORY);
        assert!(!a.log_now(
            "198.51.100.1".parse().unwrap(),
            t0 + Duration::from_millis(20_500)
        ));
        assert!(a.log_now(
            "198.51.100.1".parse().unwrap(),
            t0 + Duration::from_secs(31)
        ));
        assert!(a.try_handshake().is_some());
        let held = a.try_handshake();
        assert!(held.is_some());
        assert!(a.try_handshake().is_none());
    }
}
