//! The accept loop shared by stream endpoints (TCP, unix).
//!
//! A peer outside the endpoint's `from=` networks is closed as soon as it
//! is accepted, before anything else ([`super::allow`]).
//!
//! A client that cannot be served is told so, never left waiting unseen:
//! past `--max-clients` (over all endpoints) it is accepted and closed at
//! once. At the process's descriptor limit, accepting stops while the
//! device's [`FdReserve`] cannot be topped up; waiting connections are then
//! closed with a reserve descriptor, and the loop backs off. Each such
//! episode is logged once when it starts and once when it ends, with the
//! number of clients refused; every refusal is counted in the hub's stats
//! and by reason for the endpoint and the port ([`super::refusal`]).

use std::future::Future;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span};

use super::chatter::Chatter;
use super::client;
use super::refusal::{Refusal, RefusalCounts, Refuser};
use super::sink::{Shared, SocketHalf};
use super::slot::Slot;
use super::source::ClientSource;
use super::{Access, EndpointOptions};
use crate::access::{AccessPolicy, Role};
use crate::episode::Episode;
use crate::fds::{self, FdReserve};
use crate::hub::{ClientHandle, Hub};
use crate::tls::{Identity, TlsAcceptor};

/// Back-off after running out of descriptors: short at first, so service
/// resumes quickly once clients leave, growing so a long shortage costs
/// little.
const STARVED_MIN: Duration = Duration::from_millis(50);
const STARVED_MAX: Duration = Duration::from_secs(1);

/// Who connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Endpoint kind and peer, as status and the log name the client:
    /// `tcp:127.0.0.1:40522`, `unix:/run/x.sock#3`.
    pub(crate) name: String,
    /// The peer's IP address, for network clients: what `from=` and the
    /// refusal log judge it by.
    pub(crate) ip: Option<IpAddr>,
}

/// A listener that yields split connections and who each peer is.
pub(crate) trait Accept: AsFd + Send + 'static {
    type Source: ClientSource + Send + Sync + 'static;
    /// The connection's sending half, shared by the client's writer and
    /// the hub's fan-out (see [`super::sink`]).
    type Sink: SocketHalf;
    fn accept(
        &self,
    ) -> impl Future<Output = std::io::Result<(Self::Source, Self::Sink, Peer)>> + Send;
}

/// What an endpoint's clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Bytes for the device, as they are (with the endpoint's options).
    Raw,
    /// Modbus TCP, for a Modbus RTU device ([`super::modbus_tcp`]).
    ModbusTcp,
    /// Telnet with RFC 2217 port control ([`super::rfc2217`]).
    Rfc2217,
}

/// What every accept loop needs from `serve`.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    /// The port's name, for what clients are told (RFC 2217's SIGNATURE).
    pub(crate) port: Arc<str>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) clients: Arc<Semaphore>,
    /// `--max-clients`, the size of `clients`.
    pub(crate) max_clients: usize,
    /// Clients that closed their sending side and still receive for a
    /// moment: as many as `clients` (see [`client::Slot`]).
    pub(crate) lingering: Arc<Semaphore>,
    /// Descriptors held back for reopening the device.
    pub(crate) fds: Arc<FdReserve>,
    /// The port's refusals by reason, which every endpoint's add to: kept
    /// by the port, so they outlive endpoints a reload removes.
    pub(crate) refusals: Arc<RefusalCounts>,
    /// The roles of client identities (`--allow`), for TLS clients.
    pub(crate) access: Arc<AccessPolicy>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// The port's TLS configuration, for endpoints with `tls`.
    pub(crate) tls: Option<Arc<TlsAcceptor>>,
    /// Ciphertext a TLS client's session may hold for sending: as much as
    /// a plain client's socket send buffer, so TLS adds little in flight.
    pub(crate) tls_buffer: usize,
}

/// An episode of refusing clients for want of room, logged at its start
/// and its end rather than once per client.
struct Refusing(Episode, Refusal);

impl Refusing {
    fn new(what: &'static str, reason: Refusal) -> Self {
        // Ends only after a quiet second: under a connect/close flood the
        // limit is reached and left many times a second.
        Self(
            Episode::new(
                what,
                "refusing new clients",
                "over, accepting clients again",
            )
            .quiet(crate::episode::QUIET),
            reason,
        )
    }

    fn refuse(&mut self, hub: &Hub, by: &Refuser, n: u64, detail: impl std::fmt::Display) {
        hub.stats.refused.fetch_add(n, Relaxed);
        by.count(self.1, n);
        self.0.hit(n, detail);
    }

    fn over(&mut self) {
        self.0.over();
    }

    fn due(&self) -> Option<std::time::Instant> {
        self.0.due()
    }
}

/// Accepts clients until shutdown, running each on the tracker; counts
/// and logs refusals with `refuser`. On a `tls` endpoint each connection's
/// handshake runs in a task of its own (see [`super::tls_accept`]), and
/// comes back here, done, to be admitted.
pub(crate) async fn serve<L: Accept>(
    listener: L,
    options: EndpointOptions,
    cx: Context,
    protocol: Protocol,
    refuser: Arc<Refuser>,
) {
    let options = Arc::new(options);

    let mut admit = Admit {
        policy: options.slow_reader.unwrap_or(cx.hub.config().slow_reader),
        full: Refusing::new("client limit reached", Refusal::MaxClients),
        chatter: Chatter::default(),
        cx: cx.clone(),
        options: options.clone(),
        protocol,
        refuser: refuser.clone(),
    };
    let (handshaken, mut done) = tokio::sync::mpsc::channel(super::tls_accept::MAX_DONE);
    let handshakes = match (options.tls, &cx.tls) {
        (true, Some(acceptor)) => Some(super::tls_accept::Handshakes {
            acceptor: acceptor.clone(),
            refuser: refuser.clone(),
            timeout: options.handshake_timeout,
            buffer: cx.tls_buffer,
            tracker: cx.tracker.clone(),
            shutdown: cx.shutdown.clone(),
            done: handshaken,
        }),
        (true, None) => {
            // The settings check refuses this; never serve it in plain text.
            tracing::error!("a tls endpoint without a TLS configuration; not serving it");
            return;
        }
        (false, _) => None,
    };
    let mut starved = Refusing::new("out of file descriptors", Refusal::Descriptors);
    let mut backoff = STARVED_MIN;
    loop {
        // Accept only while the device's reserve is whole.
        // Episodes that end after a quiet spell are ended then, though no
        // client comes.
        let due = [admit.full.due(), starved.due(), admit.chatter.due()]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
        let accepted = if cx.fds.refill() {
            tokio::select! {
                r = listener.accept() => r,
                Some(c) = done.recv() => {
                    let c: super::tls_accept::Done<L::Source, L::Sink> = c;
                    let peer = Peer { name: c.name, ip: c.ip };
                    admit.client(c.source, c.sink, peer, c.identity);
                    continue;
                }
                () = super::request::sleep_until(due) => {
                    admit.full.over();
                    starved.over();
                    admit.chatter.over();
                    continue;
                }
                () = cx.shutdown.cancelled() => return,
            }
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EMFILE))
        };
        let (source, sink, peer) = match accepted {
            Ok(c) => c,
            Err(e) if fds::is_exhaustion(&e) => {
                let shed = cx.fds.shed(listener.as_fd());
                starved.refuse(&cx.hub, &refuser, shed, &e);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cx.shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(STARVED_MAX);
                continue;
            }
            Err(e) => {
                // A connection that failed before we took it (reset in the
                // backlog): nothing to serve, nothing to back off from.
                debug!(error = %e, "accept failed");
                continue;
            }
        };
        starved.over();
        backoff = STARVED_MIN;
        // Judged first: a peer from elsewhere costs no client slot and no
        // handshake, and closing it (by dropping) is all it gets.
        if let Some(ip) = peer.ip
            && !options.from.allows(ip)
        {
            let why = "its address is in none of the endpoint's from= networks";
            refuser.refuse(Refusal::Network, &peer.name, Some(ip), why);
            continue;
        }
        match &handshakes {
            Some(h) => h.start(source, sink, peer.name, peer.ip),
            None => admit.client(source, sink, peer, None),
        }
    }
}

/// The step from a connection (plain, or TLS with its handshake done) to a
/// client: it takes a `--max-clients` place, attaches to the hub and runs.
/// The identity of a TLS client's certificate is known here, before the
/// client is attached, so that whatever it may do can be decided here.
struct Admit {
    cx: Context,
    options: Arc<EndpointOptions>,
    protocol: Protocol,
    policy: crate::hub::SlowReaderPolicy,
    full: Refusing,
    chatter: Chatter,
    refuser: Arc<Refuser>,
}

impl Admit {
    fn client<S, W>(&mut self, source: S, sink: W, peer: Peer, identity: Option<Identity>)
    where
        S: ClientSource + Send + Sync + 'static,
        W: SocketHalf,
    {
        let cx = &self.cx;
        // A TLS client's role is the port's verdict on its certificate: one
        // that matches no --allow identity is refused before it takes a
        // place. A plain-text client has no identity: its endpoint's access=
        // alone decides.
        let role = match &identity {
            None => Role::Rw,
            Some(id) => match cx.access.role(id.cn.as_deref(), &id.dns, &id.sha256) {
                Some(role) => role,
                None => {
                    let why = format_args!("its certificate ({id}) matches no --allow identity");
                    self.refuser
                        .refuse(Refusal::Identity, &peer.name, peer.ip, why);
                    return;
                }
            },
        };
        let name = peer.name;
        let Ok(place) = cx.clients.clone().try_acquire_owned() else {
            // Dropping the connection closes it: the client knows.
            self.full.refuse(
                &cx.hub,
                &self.refuser,
                1,
                format_args!("--max-clients {}", cx.max_clients),
            );
            debug!(peer = %name, "client refused: --max-clients reached");
            return;
        };
        self.full.over();
        let slot = Slot::new(place, cx.lingering.clone(), self.chatter.loud());
        let shown = identity.as_ref().map(ToString::to_string);
        let handle = cx
            .hub
            .attach_identified(name.clone(), self.policy, identity);
        let sink = Shared::new(sink);
        let span = info_span!("client", id = handle.id(), peer = %name, identity = shown);
        let options = for_role(&self.options, role);
        let client = Admitted {
            handle,
            slot,
            options,
            span,
        };
        spawn_client(cx, self.protocol, client, source, sink);
    }
}

/// A client admitted to a port: its hub handle, its `--max-clients`
/// place, the options it runs under and its tracing span.
pub(crate) struct Admitted {
    pub handle: ClientHandle,
    pub slot: Slot,
    pub options: Arc<EndpointOptions>,
    pub span: tracing::Span,
}

/// Runs an admitted client's loop for its protocol on the port's tracker:
/// the same for an endpoint's clients and for those accepted elsewhere
/// (see [`super::external`]).
pub(crate) fn spawn_client<S, W>(
    cx: &Context,
    protocol: Protocol,
    client: Admitted,
    source: S,
    sink: Shared<W>,
) where
    S: ClientSource + Send + Sync + 'static,
    W: SocketHalf,
{
    let Admitted {
        handle,
        slot,
        options,
        span,
    } = client;
    let (shutdown, port) = (cx.shutdown.clone(), cx.port.clone());
    cx.tracker.spawn(
        async move {
            match protocol {
                Protocol::Raw => {
                    // Raw output goes to the socket unchanged, so the
                    // fan-out may write it there itself.
                    handle.write_through_to(sink.direct());
                    client::run(
                        handle,
                        source,
                        sink,
                        &options,
                        client::LINGER,
                        slot,
                        shutdown,
                    )
                    .await
                }
                Protocol::ModbusTcp => {
                    let access = options.access;
                    super::modbus_tcp::run(handle, source, sink, access, slot, shutdown).await
                }
                Protocol::Rfc2217 => {
                    super::rfc2217::run(handle, source, sink, &options, &port, slot, shutdown).await
                }
            }
        }
        .instrument(span),
    );
}

/// The options a client runs under: its endpoint's, read-only if its role
/// is, so that an `ro` client is treated exactly as an `access=ro`
/// endpoint's clients are (writes discarded and counted, settings answered
/// with the values in force, Modbus reads only).
pub(crate) fn for_role(options: &Arc<EndpointOptions>, role: Role) -> Arc<EndpointOptions> {
    match role {
        Role::Ro if options.access != Access::ReadOnly => Arc::new(EndpointOptions {
            access: Access::ReadOnly,
            ..EndpointOptions::clone(options)
        }),
        Role::Ro | Role::Rw => options.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ro_role_makes_a_client_read_only_and_rw_changes_nothing() {
        let rw = Arc::new(EndpointOptions::default());
        let ro = for_role(&rw, Role::Ro);
        assert_eq!(ro.access, Access::ReadOnly);
        assert_eq!(
            *ro,
            EndpointOptions {
                access: Access::ReadOnly,
                ..EndpointOptions::default()
            }
        );
        // Read-only clients see every reply by default, as access=ro's do.
        assert!(ro.sees_all() && !rw.sees_all());
        assert!(Arc::ptr_eq(&for_role(&rw, Role::Rw), &rw));
        // An rw identity on an access=ro endpoint stays read-only.
        assert!(Arc::ptr_eq(&for_role(&ro, Role::Rw), &ro));
        assert!(Arc::ptr_eq(&for_role(&ro, Role::Ro), &ro));
    }
}
