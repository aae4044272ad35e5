//! `serialhub serve`: one port, built from flags, run until shutdown.
//!
//! Start-up fails fast with a clear error (bad settings, missing device, port
//! in use) before any client is accepted; see [`Port`] for how it stops.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::fds::{self, FdReserve};
use crate::port::{Port, PortError};

/// Runs one port until `shutdown` is cancelled.
pub async fn serve(cfg: ServeConfig, shutdown: CancellationToken) -> Result<(), PortError> {
    let fds = Arc::new(FdReserve::new(fds::RESERVE));
    let port = Port::start(&cfg, fds, &shutdown).await?;
    shutdown.cancelled().await;
    port.stop().await;
    Ok(())
}
