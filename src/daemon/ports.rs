//! The daemon's running ports: what each was started from, and starting and
//! stopping them. The run loop owns the list; a reload and the control
//! requests are handed it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::ServeConfig;
use crate::fds::FdReserve;
use crate::port::{Port, PortError};

/// A port to run, with its name.
#[derive(Clone, Debug)]
pub(crate) struct PortPlan {
    pub(crate) name: String,
    pub(crate) config: ServeConfig,
    /// Serve even if the device is absent, and open it when it appears.
    pub(crate) wait_for_device: bool,
}

impl PortPlan {
    /// A port of a configuration file: one whose device is absent waits
    /// for it.
    pub(crate) fn from_file(config: ServeConfig) -> Self {
        Self {
            name: config.name.clone(),
            config,
            wait_for_device: true,
        }
    }
}

/// A running port and the plan it was started from, to compare on reload.
pub(crate) struct Running {
    pub(crate) plan: PortPlan,
    pub(crate) port: Port,
}

pub(crate) async fn start(
    plan: &PortPlan,
    fds: &Arc<FdReserve>,
    shutdown: &CancellationToken,
) -> Result<Port, PortError> {
    let wait = plan.wait_for_device;
    Port::start(&plan.name, &plan.config, wait, fds.clone(), shutdown).await
}

/// Stops every port at once; each drains for at most its drain timeout.
pub(crate) async fn stop_all(ports: Vec<Running>) {
    let stops: Vec<_> = ports
        .into_iter()
        .map(|r| tokio::spawn(r.port.stop()))
        .collect();
    for s in stops {
        if let Err(e) = s.await {
            warn!(error = %e, "a port failed while stopping");
        }
    }
}
