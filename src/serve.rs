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
use crate::endpoint::{EndpointSpec, tcp};
use crate::hub::Hub;
use crate::traffic::{TrafficError, TrafficLog};

/// How long closing clients may take after shutdown before we stop waiting.
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
    let device = Device::open(&cfg.device, cfg.line)?;
    info!(device = %cfg.device, tty = %device.tty().path().display(), line = %cfg.line,
        write_budget = cfg.hub.write_budget, client_queue = cfg.hub.client_queue, "device open");
    if let Some((w, t)) = &traffic_writer {
        info!(file = %w.path().display(), format = ?t.format, max_size = t.max_size,
            keep = t.keep, "traffic log open");
    }
    let (hub, writes) = Hub::with_traffic(cfg.hub.clone(), traffic);

    let mut listeners = Vec::new();
    for spec in &cfg.listen {
        match spec {
            EndpointSpec::Tcp { addr } => {
                let l = tcp::bind(addr, cfg.sockets).await?;
                let local = l.local_addr().map_err(|reason| tcp::TcpError::Bind {
                    addr: addr.parse().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
                    reason,
                })?;
                info!("listening on tcp:{local}");
                listeners.push(l);
            }
        }
    }

    let tracker = TaskTracker::new();
    for l in listeners {
        tracker.spawn(tcp::serve(
            l,
            hub.clone(),
            cfg.max_clients,
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    let device_task = tokio::spawn(
        device::run(
            device,
            hub.clone(),
            writes,
            shutdown.clone(),
            cfg.drain_timeout,
        )
        .instrument(info_span!("device", path = %cfg.device)),
    );

    shutdown.cancelled().await;
    info!("shutting down");
    tracker.close();
    if tokio::time::timeout(CLIENT_CLOSE_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        warn!("some clients did not close in time");
    }
    let _ = device_task.await;
    if let Some((w, _)) = traffic_writer
        && !w.finish(TRAFFIC_CLOSE_TIMEOUT).await
    {
        warn!("the traffic log writer did not finish in time; its last records may be missing");
    }
    log_totals(&hub);
    Ok(())
}

fn log_totals(hub: &Arc<Hub>) {
    let s = &hub.stats;
    info!(
        device_rx = s.device_rx.load(Relaxed),
        device_tx = s.device_tx.load(Relaxed),
        dropped = s.dropped.load(Relaxed),
        kicked = s.kicked.load(Relaxed),
        traffic_dropped = hub.traffic().dropped(),
        "stopped"
    );
}
