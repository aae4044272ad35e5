//! The TLS handshake on a freshly accepted connection, driven without
//! blocking and under a deadline. The accept loop runs each in a task of
//! its own (see `endpoint::accept`), so a slow or silent peer delays
//! nobody; the handshake's result is the connection's identity.

use std::io;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use rustls::{CertificateError, ServerConfig, ServerConnection};

use super::identity::Identity;
use super::stream::{TlsSink, TlsSource, split};
use crate::endpoint::sink::SocketHalf;
use crate::endpoint::source::ClientSource;

/// The default `handshake-timeout`: time a peer has, from being accepted,
/// to complete the handshake.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `handshake-timeout`: long enough for a client on a slow link, short
/// enough that a silent peer does not hold a handshake place for long.
pub(crate) const TIMEOUT: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(60);

/// A `handshake-timeout=` value, checked against [`TIMEOUT`].
pub(crate) fn timeout(value: &str) -> Result<Duration, &'static str> {
    humantime::parse_duration(value)
        .ok()
        .filter(|d| TIMEOUT.contains(d))
        .ok_or("expected a duration from 100ms to 60s, such as 10s")
}

/// A TLS connection whose handshake is done.
pub(crate) struct Handshaken<S, W> {
    pub source: TlsSource<S, W>,
    pub sink: TlsSink<S, W>,
    /// The client certificate's identity; `None` without mutual TLS.
    pub identity: Option<Identity>,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    #[error("the client certificate is revoked")]
    Revoked,
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("{0}")]
    Io(io::Error),
}

impl HandshakeError {
    /// Whether a CRL refused the client.
    pub(crate) fn is_revoked(&self) -> bool {
        matches!(self, HandshakeError::Revoked)
    }
}

/// Runs the server side of a handshake over `raw_in`/`raw_out` with
/// `config`, for at most `timeout`. `buffer_limit` caps the ciphertext held
/// for sending afterwards (see [`super::stream`]).
pub(crate) async fn handshake<S, W>(
    config: Arc<ServerConfig>,
    raw_in: S,
    raw_out: W,
    buffer_limit: usize,
    timeout: Duration,
) -> Result<Handshaken<S, W>, HandshakeError>
where
    S: ClientSource + Send + Sync,
    W: SocketHalf,
{
    let conn = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
    let (source, sink) = split(conn, raw_in, raw_out, buffer_limit);
    let drive = async {
        loop {
            match source.handshake_step() {
                Ok(true) => return Ok(()),
                // Data was taken in: go on at once.
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => source.wait().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    };
    let outcome = tokio::time::timeout(timeout, drive).await;
    match outcome {
        Err(_) => return Err(HandshakeError::Timeout(timeout)),
        Ok(Err(e)) => {
            return Err(match source.failure() {
                Some(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => {
                    HandshakeError::Revoked
                }
                Some(tls) => HandshakeError::Tls(tls),
                None => HandshakeError::Io(e),
            });
        }
        Ok(Ok(())) => {}
    }
    let identity = source.with_session(|c| {
        c.peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| Identity::from_der(leaf))
    });
    Ok(Handshaken {
        source,
        sink,
        identity,
    })
}
