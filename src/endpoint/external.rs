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
//!
//! A browser's terminal (see [`crate::web::terminal`]) comes in the same
//! way ([`admit_as`]), with its role, its own options, and the port's
//! scrollback from an offset, snapshotted as it attaches (`web:ADDRESS`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio_util::sync::CancellationToken;

use tracing::{debug, info_span};

use super::EndpointOptions;
use super::accept::{Admitted, Context, Protocol, for_role, spawn_client};
use super::refusal::Refusal;
use super::sink::{Shared, SocketHalf};
use super::slot::Slot;
use super::source::ClientSource;
use crate::access::Role;
use crate::hub::history::Snapshot;
use crate::hub::{ClientId, Hub};

/// Who a client accepted elsewhere is, and what it may do.
pub(crate) struct Admission<'a> {
    /// Its name in status and the log.
    pub(crate) peer: &'a str,
    pub(crate) protocol: Protocol,
    /// `ro` makes it read-only, as an `access=ro` endpoint's clients are.
    pub(crate) role: Role,
    pub(crate) options: EndpointOptions,
    /// A viewer is given the port's scrollback from this offset (`Some(None)`:
    /// all of it), atomically with its attach.
    pub(crate) history: Option<Option<u64>>,
}

/// A client admitted by [`admit_as`], as its connection's owner sees it.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) id: ClientId,
    pub(crate) hub: Arc<Hub>,
    pub(crate) snapshot: Option<Snapshot>,
    /// Cancelled when the hub kicks it (slow reader, operator).
    pub(crate) kicked: CancellationToken,
    /// Cancelled when its port stops.
    pub(crate) port_stopped: CancellationToken,
}

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
    let admission = Admission {
        peer,
        protocol,
        role: Role::Rw,
        options: EndpointOptions::default(),
        history: None,
    };
    admit_as(cx, source, sink, admission).map(|_| ())
}

/// [`admit`] with the client's role, options and scrollback.
pub(crate) fn admit_as<S, W>(
    cx: &Context,
    source: S,
    sink: W,
    admission: Admission<'_>,
) -> Result<Joined, String>
where
    S: ClientSource + Send + Sync + 'static,
    W: SocketHalf,
{
    let Admission {
        peer,
        protocol,
        role,
        options,
        history,
    } = admission;
    if cx.shutdown.is_cancelled() {
        return Err(format!("port {} is shutting down", cx.port));
    }
    let Ok(place) = cx.clients.clone().try_acquire_owned() else {
        cx.hub.stats.refused.fetch_add(1, Relaxed);
        cx.refusals.add(Refusal::MaxClients, 1);
        debug!(peer, "client refused: --max-clients reached");
        return Err(format!(
            "port {} has --max-clients {} clients already",
            cx.port, cx.max_clients
        ));
    };
    let slot = Slot::new(place, cx.lingering.clone(), true);
    let policy = options.slow_reader.unwrap_or(cx.hub.config().slow_reader);
    let (handle, snapshot) = match history {
        Some(since) => {
            let (h, s) = cx.hub.attach_with_history(peer.to_owned(), policy, since);
            (h, Some(s))
        }
        None => (cx.hub.attach_with(peer.to_owned(), policy), None),
    };
    let joined = Joined {
        id: handle.id(),
        hub: cx.hub.clone(),
        snapshot,
        kicked: handle.kicked().clone(),
        port_stopped: cx.shutdown.clone(),
    };
    let sink = Shared::new(sink);
    let span = info_span!("client", id = handle.id(), peer = %peer);
    let client = Admitted {
        handle,
        slot,
        options: for_role(&Arc::new(options), role),
        span,
    };
    spawn_client(cx, protocol, client, source, sink);
    Ok(joined)
}
