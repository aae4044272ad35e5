//! TLS for the network endpoints and the metrics listener, with rustls
//! (the `ring` provider; TLS 1.3 and 1.2).
//!
//! - [`config`]: the PEM files (`--tls-cert`, `--tls-key`,
//!   `--tls-client-ca`, `--tls-crl`) and the rustls configuration built
//!   from them;
//! - [`acceptor`]: the handle listeners take that configuration from,
//!   re-read by `reload()`, and the bound on handshakes in progress;
//! - [`handshake`]: one handshake, without blocking, under a deadline;
//! - [`stream`]: an established session as a [`ClientSource`] and a
//!   [`SocketHalf`], so the endpoint code serves it like a plain socket,
//!   backpressure and slow-reader policy included;
//! - [`identity`]: who a verified client certificate names;
//! - [`records`]: where the peer's records end, so the session reads one
//!   record at a time and holds no more than that beyond the kernel's
//!   receive buffer.
//!
//! [`ClientSource`]: crate::endpoint::source::ClientSource
//! [`SocketHalf`]: crate::endpoint::sink::SocketHalf

pub(crate) mod acceptor;
pub(crate) mod config;
pub(crate) mod handshake;
pub(crate) mod identity;
pub(crate) mod records;
pub(crate) mod stream;

pub(crate) use acceptor::TlsAcceptor;
pub(crate) use config::{TlsError, TlsFiles};
pub(crate) use identity::Identity;

#[cfg(test)]
mod tests;
