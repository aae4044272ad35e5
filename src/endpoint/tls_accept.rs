//! The TLS step between accepting a connection and admitting its client.
//!
//! Each handshake runs in a task of its own, so a slow or silent peer never
//! stalls the accept loop or anyone else: at most
//! [`MAX_HANDSHAKES`](crate::tls::acceptor::MAX_HANDSHAKES) at once per
//! port (past that a new connection takes the place of the oldest
//! handshake, which is closed and counted, so peers that never finish
//! cannot shut others out), each under the endpoint's `handshake-timeout`. A connection whose handshake is done
//! goes back to the accept loop, which admits it as it admits a plain one:
//! only then does it take a `--max-clients` place and reach the hub. A
//! failed handshake is refused as `handshake` (or `revoked`, when a CRL
//! names the certificate), counted and logged by the endpoint's
//! [`Refuser`]: at most once per peer address per 10 s, so a scanner
//! cannot flood the log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span};

use super::refusal::{Refusal, Refuser};
use super::sink::SocketHalf;
use super::source::ClientSource;
use crate::tls::handshake::handshake;
use crate::tls::stream::{TlsSink, TlsSource};
use crate::tls::{Identity, TlsAcceptor};

/// Handshaken connections waiting for the accept loop: as many as can be
/// in a handshake at once, so a handshake task seldom waits to hand one in
/// (only when places of finished handshakes were taken by newer ones; the
/// accept loop takes them at once all the same).
pub(crate) const MAX_DONE: usize = crate::tls::acceptor::MAX_HANDSHAKES;

/// A connection whose handshake is done, for the accept loop to admit.
pub(crate) struct Done<S, W> {
    pub source: TlsSource<S, W>,
    pub sink: TlsSink<S, W>,
    /// `tcp:PEER`, as for a plain client.
    pub name: String,
    /// The peer's address.
    pub ip: Option<IpAddr>,
    pub identity: Option<Identity>,
}

/// What an endpoint's handshakes need: one per `tls` endpoint, made by
/// its accept loop.
pub(crate) struct Handshakes<S, W> {
    pub acceptor: Arc<TlsAcceptor>,
    pub refuser: Arc<Refuser>,
    /// The endpoint's `handshake-timeout`.
    pub timeout: Duration,
    /// Ciphertext a session may hold for sending (see `Context::tls_buffer`).
    pub buffer: usize,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    /// Where finished handshakes go: the accept loop.
    pub done: mpsc::Sender<Done<S, W>>,
}

impl<S, W> Handshakes<S, W>
where
    S: ClientSource + Send + Sync + 'static,
    W: SocketHalf,
{
    /// Starts the handshake of a connection just accepted from `name` (at
    /// `ip`), in a task on the port's tracker; it hands the connection to
    /// the accept loop once it is done.
    pub(crate) fn start(&self, source: S, sink: W, name: String, ip: Option<IpAddr>) {
        let Self {
            acceptor, refuser, ..
        } = self;
        // At most MAX_HANDSHAKES at once: past that the oldest is evicted.
        let place = acceptor.handshake_place();
        let (acceptor, refuser, timeout, buffer) =
            (acceptor.clone(), refuser.clone(), self.timeout, self.buffer);
        let (shutdown, done) = (self.shutdown.clone(), self.done.clone());
        let span = info_span!("tls", peer = %name);
        self.tracker.spawn(
            async move {
                let config = acceptor.config();
                let result = tokio::select! {
                    r = handshake(config, source, sink, buffer, timeout) => r,
                    () = place.evicted.cancelled() => {
                        let why = format_args!(
                            "TLS handshake not done when a newer connection needed its place \
                             ({} in progress at most)",
                            crate::tls::acceptor::MAX_HANDSHAKES
                        );
                        refuser.refuse(Refusal::Handshake, &name, ip, why);
                        return;
                    }
                    () = shutdown.cancelled() => return,
                };
                match result {
                    Ok(h) => {
                        debug!(identity = ?h.identity, "TLS handshake done");
                        // The accept loop gone (shutdown), the connection closes.
                        let _ = done
                            .send(Done {
                                source: h.source,
                                sink: h.sink,
                                name,
                                ip,
                                identity: h.identity,
                            })
                            .await;
                    }
                    Err(e) => {
                        let reason = match e.is_revoked() {
                            true => Refusal::Revoked,
                            false => Refusal::Handshake,
                        };
                        refuser.refuse(
                            reason,
                            &name,
                            ip,
                            format_args!("TLS handshake failed: {e}"),
                        );
                    }
                }
                drop(place);
            }
            .instrument(span),
        );
    }
}
