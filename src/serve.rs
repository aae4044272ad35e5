//! `serialhub serve`: open the device, bind the endpoints, run until shutdown.
//!
//! Start-up fails fast with a clear error (bad settings, missing device, port
//! in use) before any client is accepted. Once running, `shutdown` stops the
//! accept loops and closes clients, while the device writer drains the bytes
//! it already accepted, for at most the drain timeout.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::config::ServeConfig;
use crate::device::{self, Device, TtyError};
use tokio::sync::Semaphore;

use crate::endpoint::accept::Protocol;
use crate::endpoint::pty::{PtyEndpoint, PtyError};
use crate::endpoint::unix::{UnixEndpoint, UnixError};
use crate::endpoint::{Context, EndpointKind, EndpointSpec, accept, tcp};
use crate::fds::{self, FdReserve};
use crate::hub::Hub;
use crate::traffic::{TrafficError, TrafficLog};

/// How long clients may take, after shutdown, to hand over the bytes they
/// had accepted and close.
const CLIENT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the traffic log may take to write what is queued at shutdown: a
/// full queue is about a megabyte, which any working disk takes in far less.
const TRAFFIC_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Device(#[from] TtyError),
    #[error(transparent)]
    Tcp(#[from] tcp::TcpError),
    #[error(transparent)]
    Unix(#[from] UnixError),
    #[error(transparent)]
    Pty(#[from] PtyError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
}

/// Runs `serve` until `shutdown` is cancelled.
pub async fn serve(cfg: ServeConfig, shutdown: CancellationToken) -> Result<(), ServeError> {
    // The log first: its errors are the cheaper ones to find.
    let (traffic, traffic_writer) = match &cfg.traffic {
        Some(t) => {
            let (log, writer) = TrafficLog::open(t)?;
            (log, Some((writer, t)))
        }
        None => (TrafficLog::disabled(), None),
    };
    let mut device = Device::open(&cfg.device, cfg.line)?;
    // After the device: it needs no reserve to open the first time.
    let fds = Arc::new(FdReserve::new(fds::RESERVE));
    device.pacing = cfg.pacing;
    info!(device = %cfg.device, tty = %device.tty().path().display(), line = %cfg.line,
        write_budget = cfg.hub.write_budget, client_queue = cfg.hub.client_queue, "device open");
    if let Some((w, t)) = &traffic_writer {
        info!(file = %w.path().display(), format = ?t.format, max_size = t.max_size,
            keep = t.keep, "traffic log open");
    }
    let (hub, writes) = Hub::with_traffic(cfg.hub.clone(), traffic);

    let tracker = TaskTracker::new();
    let cx = Context {
        hub: hub.clone(),
        clients: Arc::new(Semaphore::new(cfg.max_clients)),
        max_clients: cfg.max_clients,
        fds: fds.clone(),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    // Bind everything before serving anything, so a bad endpoint fails start-up.
    let mut endpoints = Vec::new();
    for spec in &cfg.listen {
        endpoints.push(bind(spec, &cfg).await?);
    }
    for (endpoint, spec) in endpoints.into_iter().zip(&cfg.listen) {
        let (options, cx) = (spec.options.clone(), cx.clone());
        match endpoint {
            Bound::Tcp(l) => tracker.spawn(accept::serve(l, options, cx, Protocol::Raw)),
            Bound::ModbusTcp(l) => {
                tracker.spawn(accept::serve(l, options, cx, Protocol::ModbusTcp))
            }
            Bound::Unix(l) => tracker.spawn(accept::serve(l, options, cx, Protocol::Raw)),
            Bound::Pty(p) => tracker.spawn(p.serve(options, cx)),
        };
    }
    // The device stops only after the clients: on shutdown they hand over
    // what they had already accepted, and the writer must still be running
    // to make room for it.
    let device_stop = CancellationToken::new();
    // Under --writers transaction, the arbiter is the device's only writer.
    // It stops after the clients, with what they handed over, and before
    // the device.
    let arbiter_stop = CancellationToken::new();
    let arbiter = hub.take_arbiter().map(|a| {
        tokio::spawn(
            a.run(hub.clone(), arbiter_stop.clone())
                .instrument(info_span!("arbiter", path = %cfg.device)),
        )
    });
    let device_task = tokio::spawn(
        device::run(
            device,
            hub.clone(),
            writes,
            fds,
            device_stop.clone(),
            cfg.drain_timeout,
        )
        .instrument(info_span!("device", path = %cfg.device)),
    );

    if let Some(every) = cfg.stats_every {
        tokio::spawn(report_stats(hub.clone(), every, shutdown.clone()));
    }

    shutdown.cancelled().await;
    info!("shutting down");
    tracker.close();
    if tokio::time::timeout(CLIENT_CLOSE_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        warn!("some clients did not close in time");
    }
    arbiter_stop.cancel();
    if let Some(mut a) = arbiter
        && tokio::time::timeout(cfg.drain_timeout, &mut a)
            .await
            .is_err()
    {
        a.abort();
        warn!(
            "gave up on queued transactions after {:?}",
            cfg.drain_timeout
        );
    }
    device_stop.cancel();
    let _ = device_task.await;
    if let Some((w, _)) = traffic_writer
        && !w.finish(TRAFFIC_CLOSE_TIMEOUT).await
    {
        warn!("the traffic log writer did not finish in time; its last records may be missing");
    }
    log_totals(&hub);
    Ok(())
}

enum Bound {
    Tcp(tokio::net::TcpListener),
    ModbusTcp(tokio::net::TcpListener),
    Unix(UnixEndpoint),
    Pty(PtyEndpoint),
}

async fn bind(spec: &EndpointSpec, cfg: &ServeConfig) -> Result<Bound, ServeError> {
    let bound = match &spec.kind {
        EndpointKind::Tcp { addr } => {
            let l = tcp::bind(addr, cfg.sockets).await?;
            if let Ok(local) = l.local_addr() {
                info!("listening on tcp:{local}");
            }
            Bound::Tcp(l)
        }
        EndpointKind::ModbusTcp { addr } => {
            let l = tcp::bind(addr, cfg.sockets).await?;
            if let Ok(local) = l.local_addr() {
                info!("listening on modbus-tcp:{local}");
            }
            Bound::ModbusTcp(l)
        }
        EndpointKind::Unix { path } => {
            let l = UnixEndpoint::bind(path, spec.options.mode)?;
            info!("listening on unix:{}", path.display());
            Bound::Unix(l)
        }
        EndpointKind::Pty { path } => {
            let p = PtyEndpoint::create(path)?;
            info!(
                "listening on pty:{} -> {}",
                path.display(),
                p.tty().display()
            );
            Bound::Pty(p)
        }
    };
    Ok(bound)
}

fn log_totals(hub: &Arc<Hub>) {
    log_counts(hub, counts(hub), "stopped");
}

/// The counters reported in stats lines: device rx, device tx, clients,
/// dropped bytes, kicked clients, refused clients, client bytes lost to
/// resets, dropped traffic-log records, transactions, reply timeouts.
fn counts(hub: &Hub) -> [u64; 10] {
    let s = &hub.stats;
    [
        s.device_rx.load(Relaxed),
        s.device_tx.load(Relaxed),
        s.connected.load(Relaxed),
        s.dropped.load(Relaxed),
        s.kicked.load(Relaxed),
        s.refused.load(Relaxed),
        s.lost.load(Relaxed),
        hub.traffic().dropped(),
        s.transactions.load(Relaxed),
        s.timeouts.load(Relaxed),
    ]
}

fn log_counts(hub: &Hub, c: [u64; 10], what: &str) {
    info!(
        device_rx = c[0],
        device_tx = c[1],
        clients = c[2],
        dropped = c[3],
        kicked = c[4],
        refused = c[5],
        reset_lost = c[6],
        traffic_dropped = c[7],
        transactions = c[8],
        reply_timeouts = c[9],
        write_lock = hub.write_lock().holder().as_deref().unwrap_or("-"),
        "{what}"
    );
}

/// Logs the port's counters every `every`, when they have changed, so drops
/// and kicks are visible without waiting for shutdown.
async fn report_stats(hub: Arc<Hub>, every: Duration, shutdown: CancellationToken) {
    let mut last = None;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = counts(&hub);
        if last != Some(now) {
            log_counts(&hub, now, "stats");
            last = Some(now);
        }
    }
}
