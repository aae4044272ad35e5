//! Clients whose connection was accepted elsewhere: a fleet session that a
//! remote serialhub or `serialhub fleet connect` opened to one of this
//! host's ports (see [`crate::fleet`]).
//!
//! Such a client is admitted as an endpoint's would be: it takes a
//! `--max-clients` place (none free: it is refused, counted as a
//! `max_clients` refusal of the port, and the opener is told why), meets
//! the port's slow-reader policy, write budget and arbitration, and runs
//! the same client loop as a TCP client of its protocol, with default
//! endpoint options. Status shows it under its peer name
//! (`fleet:CLIENTHOST`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tracing::{debug, info_span};

use super::EndpointOptions;
use super::accept::{Admitted, Context, Protocol, spawn_client};
use super::refusal::Refusal;
use super::sink::{Shared, SocketHalf};
use super::slot::Slot;
use super::source::ClientSource;

/// Attaches a connected client to `cx`'s port and runs it on the port's
/// tracker, or says why it cannot be served.
pub(crate) fn admit<S, W>(
    cx: &Context,
    source: S,
    sink: W,
    peer: &str,
    protocol: Protocol,
) -> Result<(), String>
where
    S: ClientSource + Send + Sync + 'static,
    W: SocketHalf,
{
    if cx.shutdown.is_cancelled() {
        return Err(format!("port {} is shutting down", cx.port));
    }
    let Ok(place) = cx.clients.clone().try_acquire_owned() else {
        cx.hub.stats.refused.fetch_add(1, Relaxed);
        cx.refusals.add(Refusal::MaxClients, 1);
        debug!(peer, "fleet client refused: --max-clients reached");
        return Err(format!(
            "port {} has --max-clients {} clients already",
            cx.port, cx.max_clients
        ));
    };
    let slot = Slot::new(place, cx.lingering.clone(), true);
    let policy = cx.hub.config().slow_reader;
    let handle = cx.hub.attach_with(peer.to_owned(), policy);
    let sink = Shared::new(sink);
    let span = info_span!("client", id = handle.id(), peer = %peer);
    let client = Admitted {
        handle,
        slot,
        options: Arc::new(EndpointOptions::default()),
        span,
    };
    spawn_client(cx, protocol, client, source, sink);
    Ok(())
}
