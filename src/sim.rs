//! `serialhub sim`: a simulated device on a pty, linked at a stable path, so
//! serialhub and any other program can be tried without hardware.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::device::{Sim, SimMode, SimSpec};
use crate::line::LineSettings;
use crate::link::{LinkError, OwnedLink};

/// How often the simulator reports its counts.
const REPORT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot create pseudo-terminal: {0}")]
    Pty(std::io::Error),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Line(#[from] crate::line::LineError),
}

/// Runs the simulator until `shutdown`, then removes the link if it is
/// still ours (see [`crate::link`] for what it may replace).
pub(crate) async fn run(
    spec: SimSpec,
    line: LineSettings,
    link: &Path,
    shutdown: CancellationToken,
) -> Result<(), SimError> {
    line.validate()?;
    let sim = Sim::spawn_spec(spec, &line).map_err(SimError::Pty)?;
    let owned = OwnedLink::create(link, sim.path())?;
    info!(sim = %spec, line = %line, "simulated device on {} -> {}", link.display(), sim.path().display());
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => report(spec.mode, &sim),
            () = shutdown.cancelled() => break,
        }
    }
    report(spec.mode, &sim);
    drop(owned);
    Ok(())
}

fn report(mode: SimMode, sim: &Sim) {
    let s = sim.stats();
    if mode == SimMode::Modbus {
        info!(
            rx = s.rx_bytes.load(Relaxed),
            tx = s.tx_bytes.load(Relaxed),
            answered = s.modbus_answered.load(Relaxed),
            exceptions = s.modbus_exceptions.load(Relaxed),
            crc_errors = s.modbus_crc_errors.load(Relaxed),
            ignored = s.modbus_ignored.load(Relaxed),
            "sim counts"
        );
        return;
    }
    info!(
        rx = s.rx_bytes.load(Relaxed),
        tx = s.tx_bytes.load(Relaxed),
        records = s.records.load(Relaxed),
        errors = s.errors.load(Relaxed),
        "sim counts"
    );
    if let Some(e) = s.first_error.lock().ok().and_then(|e| e.clone()) {
        warn!("first pattern error: {e}");
    }
}
