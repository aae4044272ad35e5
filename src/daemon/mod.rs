//! The daemon: many ports in one process, and the control socket.
//!
//! One task owns the ports. It starts them all (if one cannot start, the
//! ones already started are stopped and the daemon fails: it never runs
//! half-configured), answers control requests as messages, and on shutdown
//! stops every port at once, each draining what it accepted.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ServeConfig;
use crate::control::metrics::{MetricsError, MetricsServer};
use crate::control::server::{Asked, ControlSocket, QUEUE};
use crate::control::{ControlConfig, Request, Response};
use crate::endpoint::unix::UnixError;
use crate::fds::{self, FdReserve};
use crate::port::{Port, PortError};

/// A port to run, with its name.
#[derive(Clone, Debug)]
pub struct PortPlan {
    pub name: String,
    pub config: ServeConfig,
    /// Serve even if the device is absent, and open it when it appears.
    pub wait_for_device: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("port {name}: {source}")]
    Port {
        name: String,
        #[source]
        source: PortError,
    },
    #[error("control socket: {0}")]
    Control(#[from] UnixError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Runs `ports` (and the control socket and the metrics endpoint, if any)
/// until `shutdown`. `metrics` is the address to serve `/metrics` on
/// (`127.0.0.1:9108`).
pub async fn run(
    ports: Vec<PortPlan>,
    control: Option<ControlConfig>,
    metrics: Option<String>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    // Bound first: a second daemon on the same socket fails before it
    // touches any device.
    let control = match control {
        Some(c) => {
            let socket = ControlSocket::bind(&c.path, c.mode)?;
            info!(path = %c.path.display(), "control socket listening");
            Some(socket)
        }
        None => None,
    };
    let metrics = match metrics {
        Some(addr) => {
            let server = MetricsServer::bind(&addr).await?;
            // Tests and operators who asked for port 0 learn it here.
            info!("metrics served at http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let fds = Arc::new(FdReserve::new(fds::RESERVE));
    let mut running: Vec<Port> = Vec::with_capacity(ports.len());
    for plan in &ports {
        let wait = plan.wait_for_device;
        match Port::start(&plan.name, &plan.config, wait, fds.clone(), &shutdown).await {
            Ok(p) => running.push(p),
            Err(source) => {
                stop_all(running).await;
                return Err(DaemonError::Port {
                    name: plan.name.clone(),
                    source,
                });
            }
        }
    }
    // The control socket and the metrics endpoint ask the ports' owner,
    // this task; with neither, the channel closes and is never polled again.
    let (asks, mut asked) = mpsc::channel::<Asked>(QUEUE);
    if let Some(socket) = control {
        tokio::spawn(socket.serve(asks.clone(), shutdown.clone()));
    }
    if let Some(server) = metrics {
        tokio::spawn(server.serve(asks.clone(), shutdown.clone()));
    }
    drop(asks);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some((request, reply)) = asked.recv() => {
                let _ = reply.send(handle(&running, request));
            }
        }
    }
    stop_all(running).await;
    Ok(())
}

/// Stops every port at once; each drains for at most its drain timeout.
async fn stop_all(ports: Vec<Port>) {
    let stops: Vec<_> = ports.into_iter().map(|p| tokio::spawn(p.stop())).collect();
    for s in stops {
        if let Err(e) = s.await {
            warn!(error = %e, "a port failed while stopping");
        }
    }
}

fn find<'a>(ports: &'a [Port], name: &str) -> Result<&'a Port, Response> {
    ports.iter().find(|p| p.name() == name).ok_or_else(|| {
        let names: Vec<&str> = ports.iter().map(|p| p.name()).collect();
        Response::error(format!(
            "no port {name:?}; ports: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ))
    })
}

fn handle(ports: &[Port], request: Request) -> Response {
    let result = match request {
        Request::Status { port: None } => Ok(Response {
            ports: ports.iter().map(Port::status).collect(),
            ..Response::ok()
        }),
        Request::Status { port: Some(name) } => find(ports, &name).map(|p| Response {
            ports: vec![p.status()],
            ..Response::ok()
        }),
        Request::Kick { port, client } => find(ports, &port).map(|p| {
            if p.hub().kick(client) {
                Response::ok()
            } else {
                Response::error(format!("port {port} has no client {client}"))
            }
        }),
    };
    result.unwrap_or_else(|e| e)
}
