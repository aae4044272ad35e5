//! The TLS step between accepting a connection and admitting its client.
//!
//! Each handshake runs in a task of its own, so a slow or silent peer never
//! stalls the accept loop or anyone else: at most
//! [`MAX_HANDSHAKES`](crate::tls::acceptor::MAX_HANDSHAKES) at once per
//! port (past that a connection is closed at once, and counted), each under
//! the endpoint's `handshake-timeout`. A connection whose handshake is done
//! goes back to the accept loop, which admits it as it admits a plain one:
//! only then does it take a `--max-clients` place and reach the hub. A
//! failed handshake is refused as `handshake` (or `revoked`, when a CRL
//! names the certificate), counted and logged by the endpoint's
//! [`Refuser`]: at most once per peer address per 10 s, so a scanner
//! cannot flood the log.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span};

use super::EndpointOptions;
use super::accept::{Context, Peer};
use super::refusal::{Refusal, Refuser};
use super::sink::SocketHalf;
use super::source::ClientSource;
use crate::tls::handshake::handshake;
use crate::tls::stream::{TlsSink, TlsSource};
use crate::tls::{Identity, TlsAcceptor};

/// Handshaken connections waiting for the accept loop: as many as can be
/// in a handshake at once, so a handshake task never waits to hand one in.
pub const MAX_DONE: usize = crate::tls::acceptor::MAX_HANDSHAKES;

/// A connection whose handshake is done, for the accept loop to admit.
pub struct Done<S, W> {
    pub source: TlsSource<S, W>,
    pub sink: TlsSink<S, W>,
    /// `tcp:PEER`, as for a plain client.
    pub name: String,
    pub identity: Option<Identity>,
}

/// Starts the handshake of a connection just accepted, in a task on the
/// port's tracker; it hands the connection to `done` once it is done.
#[allow(clippy::too_many_arguments)]
pub fn start<S, W>(
    acceptor: &Arc<TlsAcceptor>,
    source: S,
    sink: W,
    peer: Peer,
    options: &EndpointOptions,
    cx: &Context,
    refuser: &Arc<Refuser>,
    done: mpsc::Sender<Done<S, W>>,
) where
    S: ClientSource + Send + Sync + 'static,
    W: SocketHalf,
{
    let Some(permit) = acceptor.try_handshake() else {
        // Dropping the connection closes it.
        let why = format_args!(
            "{} TLS handshakes in progress already",
            crate::tls::acceptor::MAX_HANDSHAKES
        );
        refuser.refuse(Refusal::Handshake, &peer.name, peer.ip, why);
        return;
    };
    let (acceptor, timeout, buffer) = (acceptor.clone(), options.handshake_timeout, cx.tls_buffer);
    let (shutdown, refuser) = (cx.shutdown.clone(), refuser.clone());
    let Peer { name, ip } = peer;
    let span = info_span!("tls", peer = %name);
    cx.tracker.spawn(
        async move {
            let config = acceptor.config();
            let result = tokio::select! {
                r = handshake(config, source, sink, buffer, timeout) => r,
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
                            identity: h.identity,
                        })
                        .await;
                }
                Err(e) => {
                    let reason = match e.is_revoked() {
                        true => Refusal::Revoked,
                        false => Refusal::Handshake,
                    };
                    refuser.refuse(reason, &name, ip, format_args!("TLS handshake failed: {e}"));
                }
            }
            drop(permit);
        }
        .instrument(span),
    );
}
