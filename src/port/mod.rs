//! A port: one serial port's whole life, from opening its device to the
//! last byte drained at shutdown.
//!
//! A [`Port`] owns its device and the loops that move its bytes, its hub,
//! its endpoints and their clients, its traffic log, and the transaction
//! arbiter if it has one, all under one cancellation token, so one port can
//! start and stop without touching any other. [`Port::start`] fails before
//! serving anything if any part cannot start (a missing device, a port in
//! use, a bad log directory). [`Port::stop`] stops in the order that loses
//! nothing: accept loops and clients first (each hands over what the kernel
//! already holds from it), then the arbiter with the requests they handed
//! over, then the device writer, which drains for at most the drain timeout,
//! then the traffic log.
//!
//! A running port can also be changed in place ([`Port::reconfigure`]): new
//! line settings travel to the device on its ordered queue, and endpoints
//! that were removed or added are stopped or bound, while every other client
//! stays connected.

mod session;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::config::ServeConfig;
use crate::control::{EndpointRefusals, PortStatus};
use crate::device::{self, Device, TtyError};
use crate::endpoint::accept::Protocol;
use crate::endpoint::pty::{PtyEndpoint, PtyError};
use crate::endpoint::refusal::{RefusalCounts, Refuser};
use crate::endpoint::unix::{UnixEndpoint, UnixError};
use crate::endpoint::{Context, EndpointKind, EndpointSpec, accept, tcp};
use crate::fds::FdReserve;
use crate::hub::Hub;
use crate::traffic::{self, TrafficError, TrafficLog};

/// How long clients may take, after shutdown, to hand over the bytes they had accepted and close.
const CLIENT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the traffic log may take to write what is queued at shutdown: a
/// full queue is about a megabyte, which any working disk takes in far less.
const TRAFFIC_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A part of a port that could not start.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error(transparent)]
    Device(#[from] TtyError),
    /// A tty that is not there, without `--wait-for-device`.
    #[error("{0}; plug it in, or serve with --wait-for-device to open it when it appears")]
    Absent(TtyError),
    #[error(transparent)]
    Tcp(#[from] tcp::TcpError),
    #[error(transparent)]
    Unix(#[from] UnixError),
    #[error(transparent)]
    Pty(#[from] PtyError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A running port.
#[derive(Debug)]
pub(crate) struct Port {
    name: String,
    /// Every log line of the port's tasks is in it, naming the port.
    span: tracing::Span,
    device_spec: String,
    line: String,
    writers: &'static str,
    hub: Arc<Hub>,
    /// Stops the accept loops, the clients and the stats reports.
    cancel: CancellationToken,
    /// The accept loops and the clients.
    tracker: TaskTracker,
    /// What an endpoint added later is started with.
    cx: Context,
    /// Under `--writers transaction`, the device's only writer.
    arbiter: Option<JoinHandle<()>>,
    arbiter_stop: CancellationToken,
    device: JoinHandle<()>,
    device_stop: CancellationToken,
    traffic: Option<traffic::writer::Writer>,
    drain_timeout: Duration,
    endpoints: Vec<Endpoint>,
}

/// One endpoint's accept loop (or pty) and its clients.
#[derive(Debug)]
struct Endpoint {
    spec: EndpointSpec,
    /// What it is bound to (`tcp:127.0.0.1:40001`), for status.
    shown: String,
    /// Stops the endpoint and its clients; a child of the port's token.
    stop: CancellationToken,
    /// Connections it refused, by reason; none for a pty, which refuses
    /// nobody.
    refusals: Option<Arc<RefusalCounts>>,
    /// Ends once the endpoint has let go of its address.
    task: JoinHandle<()>,
}

/// How long a removed endpoint may take to let go of its address (its
/// clients close on their own time, as at shutdown).
const ENDPOINT_STOP_TIMEOUT: Duration = Duration::from_secs(2);

impl Port {
    /// Opens the device and the traffic log and binds every endpoint, then
    /// serves, until [`stop`](Self::stop) or until `parent` is cancelled.
    /// `fds` is the process's descriptor reserve, shared by its ports.
    ///
    /// With `wait_for_device`, a tty that is not there is no error: the port
    /// serves its endpoints and opens the device when it appears.
    pub(crate) async fn start(
        name: &str,
        cfg: &ServeConfig,
        wait_for_device: bool,
        fds: Arc<FdReserve>,
        parent: &CancellationToken,
    ) -> Result<Port, PortError> {
        let span = info_span!("port", port = %name);
        Self::start_in(name, cfg, wait_for_device, fds, parent, span.clone())
            .instrument(span)
            .await
    }

    async fn start_in(
        name: &str,
        cfg: &ServeConfig,
        wait_for_device: bool,
        fds: Arc<FdReserve>,
        parent: &CancellationToken,
        span: tracing::Span,
    ) -> Result<Port, PortError> {
        // The log first: its errors are the cheaper ones to find.
        let (log, traffic) = match &cfg.traffic {
            Some(t) => {
                let (log, writer) = TrafficLog::open(t)?;
                info!(file = %writer.path().display(), format = ?t.format, max_size = t.max_size,
                    keep = t.keep, "traffic log open");
                (log, Some(writer))
            }
            None => (TrafficLog::disabled(), None),
        };
        let mut device = match Device::open(&cfg.device, cfg.line).await {
            Ok(d) => d,
            Err(e) => match Device::absent(&cfg.device, cfg.line) {
                Some(absent) if wait_for_device => {
                    warn!(error = %e, "device not available; waiting for it");
                    absent
                }
                _ if e.is_absent() => return Err(PortError::Absent(e)),
                _ => return Err(e.into()),
            },
        };
        device.pacing = cfg.pacing;
        // A device waited for is not open yet: the device task says
        // "device appeared; open" when it is.
        if device.is_open() {
            info!(device = %cfg.device, tty = %device.path().display(), line = %cfg.line,
                write_budget = cfg.hub.write_budget, client_queue = cfg.hub.client_queue,
                "device open");
        }
        let (hub, writes) = Hub::with_traffic(cfg.hub.clone(), log);
        hub.changers.configure(cfg.line);
        let cancel = parent.child_token();
        let tracker = TaskTracker::new();
        let cx = Context {
            port: Arc::from(name),
            hub: hub.clone(),
            clients: Arc::new(Semaphore::new(cfg.max_clients)),
            max_clients: cfg.max_clients,
            lingering: Arc::new(Semaphore::new(cfg.max_clients)),
            fds: fds.clone(),
            refusals: Arc::new(RefusalCounts::default()),
            access: Arc::new(cfg.access.clone()),
            shutdown: cancel.clone(),
            tracker: tracker.clone(),
            tls: crate::tls::TlsAcceptor::of(cfg.tls.as_ref())?,
            tls_buffer: cfg.sockets.send_buffer,
        };
        // Bind everything before serving anything, so a bad endpoint fails
        // start-up.
        let mut bound = Vec::new();
        for spec in &cfg.listen {
            bound.push(bind(spec, cfg).await?);
        }
        let endpoints = bound
            .into_iter()
            .zip(&cfg.listen)
            .map(|(b, spec)| serve(b, spec, &cx, &span))
            .collect();
        let arbiter_stop = CancellationToken::new();
        let arbiter = hub.take_arbiter().map(|a| {
            tokio::spawn(
                a.run(hub.clone(), arbiter_stop.clone())
                    .instrument(info_span!(parent: &span, "arbiter")),
            )
        });
        let device_stop = CancellationToken::new();
        let device = tokio::spawn(
            device::run(
                device,
                hub.clone(),
                writes,
                fds,
                device_stop.clone(),
                cfg.drain_timeout,
            )
            .instrument(info_span!(parent: &span, "device", path = %cfg.device)),
        );
        // Under transaction writers the arbiter times the lock itself.
        if cfg.hub.txn.is_none() {
            let hub = hub.clone();
            let stop = cancel.clone();
            tokio::spawn(
                async move { hub.write_lock().expire_on_time(stop).await }.instrument(span.clone()),
            );
        }
        if let Some(every) = cfg.stats_every {
            tokio::spawn(
                stats::report(hub.clone(), cx.refusals.clone(), every, cancel.clone())
                    .instrument(span.clone()),
            );
        }
        Ok(Port {
            name: name.to_owned(),
            span,
            device_spec: cfg.device.to_string(),
            line: cfg.line.to_string(),
            writers: if cfg.hub.txn.is_some() {
                "transaction"
            } else {
                "merge"
            },
            hub,
            cancel,
            tracker,
            cx,
            arbiter,
            arbiter_stop,
            device,
            device_stop,
            traffic,
            drain_timeout: cfg.drain_timeout,
            endpoints,
        })
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Re-reads the TLS files for new handshakes; `None` without TLS.
    pub(crate) fn reload_tls(&self) -> Option<Result<(), crate::tls::TlsError>> {
        self.cx.tls.as_ref().map(|t| t.reload())
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The port's status, for the control socket.
    pub(crate) fn status(&self) -> PortStatus {
        let line = self
            .hub
            .line()
            .map_or_else(|| self.line.clone(), |l| l.to_string());
        let mut status = PortStatus::new(
            &self.name,
            self.device_spec.clone(),
            line,
            self.writers,
            self.endpoints(),
            &self.hub.status(),
        );
        status.refusals = self.cx.refusals.snapshot();
        status.endpoint_refusals = self
            .endpoints
            .iter()
            .filter_map(|e| {
                Some(EndpointRefusals {
                    endpoint: e.shown.clone(),
                    refusals: e.refusals.as_ref()?.snapshot(),
                })
            })
            .collect();
        status
    }

    /// Where the endpoints listen, as bound (`tcp:127.0.0.1:40001`).
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.shown.clone()).collect()
    }

    /// Changes the running port from `old` to `new`, which differ only in
    /// line settings and endpoints (see `daemon`): the line change is queued
    /// for the device after the bytes already queued, removed endpoints stop
    /// (their clients close, handing over what they sent), added ones are
    /// bound. Other clients stay connected throughout. What changed is the
    /// reload plan's to report.
    pub(crate) async fn reconfigure(
        &mut self,
        old: &ServeConfig,
        new: &ServeConfig,
    ) -> Result<(), PortError> {
        let span = self.span.clone();
        self.reconfigure_in(old, new).instrument(span).await
    }

    async fn reconfigure_in(
        &mut self,
        old: &ServeConfig,
        new: &ServeConfig,
    ) -> Result<(), PortError> {
        if new.line != old.line {
            self.hub.changers.configure(new.line);
            // Not awaited: the device may be absent, and the change waits
            // for it in the queue like any write. The writer logs the outcome.
            let hub = self.hub.clone();
            let line = new.line;
            tokio::spawn(
                async move {
                    if let Ok(told) = hub.change_line(line, None).await
                        && let Ok(answer) = told.await
                        && let Some(why) = answer.refused
                    {
                        warn!(line = %line, error = %why, "reload: the device kept {}", answer.in_force);
                    }
                }
                .in_current_span(),
            );
        }
        // Stop first, so an endpoint that moves is never deleted by its old
        // owner after its new one made it.
        let (going, staying): (Vec<Endpoint>, Vec<Endpoint>) = std::mem::take(&mut self.endpoints)
            .into_iter()
            .partition(|e| !new.listen.contains(&e.spec));
        self.endpoints = staying;
        for mut e in going {
            info!(endpoint = %e.shown, "reload: endpoint removed");
            e.stop.cancel();
            if tokio::time::timeout(ENDPOINT_STOP_TIMEOUT, &mut e.task)
                .await
                .is_err()
            {
                warn!(endpoint = %e.shown, "the endpoint did not stop in time");
            }
        }
        for spec in new.listen.iter().filter(|s| !old.listen.contains(s)) {
            let b = bind(spec, new).await?;
            self.endpoints.push(serve(b, spec, &self.cx, &self.span));
        }
        Ok(())
    }

    /// Stops the port without losing what it accepted (see the module
    /// docs); the device writer drains for at most the drain timeout.
    pub(crate) async fn stop(self) {
        let span = self.span.clone();
        self.stop_in().instrument(span).await
    }

    async fn stop_in(self) {
        info!("shutting down");
        self.cancel.cancel();
        // Clients flush what they sent; an operator's lock would hold it.
        self.hub.end_operator_lock();
        self.tracker.close();
        if tokio::time::timeout(CLIENT_CLOSE_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("some clients did not close in time");
        }
        self.arbiter_stop.cancel();
        if let Some(mut a) = self.arbiter
            && tokio::time::timeout(self.drain_timeout, &mut a)
                .await
                .is_err()
        {
            a.abort();
            warn!(
                "gave up on queued transactions after {:?}",
                self.drain_timeout
            );
        }
        self.device_stop.cancel();
        let _ = self.device.await;
        if let Some(w) = self.traffic
            && !w.finish(TRAFFIC_CLOSE_TIMEOUT).await
        {
            warn!("the traffic log writer did not finish in time; its last records may be missing");
        }
        stats::log(&self.hub, &self.cx.refusals, "stopped");
    }
}

/// Starts serving a bound endpoint, under its own token.
fn serve(
    bound: (Bound, String),
    spec: &EndpointSpec,
    cx: &Context,
    span: &tracing::Span,
) -> Endpoint {
    let (endpoint, shown) = bound;
    let stop = cx.shutdown.child_token();
    let cx = Context {
        shutdown: stop.clone(),
        ..cx.clone()
    };
    let (options, tracker, span) = (spec.options.clone(), cx.tracker.clone(), span.clone());
    let counts = Arc::new(RefusalCounts::default());
    let refuser = Arc::new(Refuser::new(counts.clone(), cx.refusals.clone()));
    let mut refusals = Some(counts);
    let task = match endpoint {
        Bound::Tcp(l) => {
            tracker.spawn(accept::serve(l, options, cx, Protocol::Raw, refuser).instrument(span))
        }
        Bound::ModbusTcp(l) => tracker
            .spawn(accept::serve(l, options, cx, Protocol::ModbusTcp, refuser).instrument(span)),
        Bound::Rfc2217(l) => tracker
            .spawn(accept::serve(l, options, cx, Protocol::Rfc2217, refuser).instrument(span)),
        Bound::Unix(l) => {
            tracker.spawn(accept::serve(l, options, cx, Protocol::Raw, refuser).instrument(span))
        }
        Bound::Pty(p) => {
            refusals = None;
            tracker.spawn(p.serve(options, cx).instrument(span))
        }
    };
    Endpoint {
        spec: spec.clone(),
        shown,
        stop,
        refusals,
        task,
    }
}

enum Bound {
    Tcp(tcp::TcpEndpoint),
    ModbusTcp(tcp::TcpEndpoint),
    Rfc2217(tcp::TcpEndpoint),
    Unix(UnixEndpoint),
    Pty(PtyEndpoint),
}

/// Binds one of the TCP endpoints, `kind` (`tcp`, `modbus-tcp`,
/// `rfc2217`); with its address as bound, as status shows it:
/// `tcp:127.0.0.1:40001`.
async fn bind_tcp(
    kind: &'static str,
    addr: &str,
    spec: &EndpointSpec,
    cfg: &ServeConfig,
) -> Result<(tcp::TcpEndpoint, String), PortError> {
    let l = tcp::bind(kind, addr, cfg.sockets, spec.options.keepalive).await?;
    let shown = match l.local_addr() {
        Ok(local) => format!("{kind}:{local}"),
        Err(_) => format!("{kind}:{addr}"),
    };
    Ok((l, shown))
}

async fn bind(spec: &EndpointSpec, cfg: &ServeConfig) -> Result<(Bound, String), PortError> {
    let bound = match &spec.kind {
        EndpointKind::Tcp { addr } => {
            let (l, shown) = bind_tcp("tcp", addr, spec, cfg).await?;
            (Bound::Tcp(l), shown)
        }
        EndpointKind::ModbusTcp { addr } => {
            let (l, shown) = bind_tcp("modbus-tcp", addr, spec, cfg).await?;
            (Bound::ModbusTcp(l), shown)
        }
        EndpointKind::Rfc2217 { addr } => {
            let (l, shown) = bind_tcp("rfc2217", addr, spec, cfg).await?;
            (Bound::Rfc2217(l), shown)
        }
        EndpointKind::Unix { path } => {
            let l = UnixEndpoint::bind(path, spec.options.mode)?;
            (Bound::Unix(l), format!("unix:{}", path.display()))
        }
        EndpointKind::Pty { path } => {
            let p = PtyEndpoint::create(path, &cfg.line)?;
            let shown = format!("pty:{} -> {}", path.display(), p.tty().display());
            (Bound::Pty(p), shown)
        }
    };
    info!("listening on {}", bound.1);
    Ok(bound)
}
