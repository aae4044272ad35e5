//! The daemon: many ports in one process, and the control socket.
//!
//! One task owns the ports. It starts them all (if one cannot start, the
//! ones already started are stopped and the daemon fails: it never runs
//! half-configured), answers control requests as messages, reloads the
//! configuration file on SIGHUP or `serialhub reload`, and on shutdown stops
//! every port at once, each draining what it accepted.
//!
//! A reload reads and validates the whole file first: a file with an error
//! changes nothing. Ports are matched by name. An unchanged port is not
//! touched: its clients and data keep flowing. A port whose line settings or
//! endpoints alone changed is changed in place ([`Port::reconfigure`]): its
//! other clients stay connected. Any other change stops the port (draining
//! as at shutdown) and starts it with its new settings; a removed
//! one is stopped; an added one is started. Every port that goes is stopped
//! before any new one starts, so an endpoint that moves (a unix socket or a
//! pty link) is never deleted by its old owner after its new one made it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{self, ServeConfig};
use crate::control::http::{MetricsError, MetricsListen, MetricsServer};
use crate::control::server::{Asked, ControlSocket, QUEUE};
use crate::control::{ControlConfig, DaemonInfo, PortStatus, Request, Response};
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
    #[error("port {name}: {error}")]
    Port { name: String, error: PortError },
    #[error("control socket: {0}")]
    Control(UnixError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Runs `ports` (and the control socket and the metrics endpoint, if any)
/// until `shutdown`. `metrics` is the address to serve `/metrics` on
/// (`127.0.0.1:9108`).
/// `config_file` is where the ports came from, to reload; `None` when they
/// came from flags.
pub async fn run(
    ports: Vec<PortPlan>,
    control: Option<ControlConfig>,
    metrics: Option<MetricsListen>,
    config_file: Option<PathBuf>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    // Bound first: a second daemon on the same socket fails before it
    // touches any device.
    let control = match control {
        Some(c) => {
            let socket = ControlSocket::bind(&c.path, c.mode).map_err(DaemonError::Control)?;
            // One of our own in the runtime directory, which the control
            // commands find by themselves, is not news: every serve has one.
            if c.path == crate::control::discover::own_socket() {
                tracing::debug!(path = %c.path.display(), "control socket listening");
            } else {
                info!(path = %c.path.display(), "control socket listening");
            }
            Some(socket)
        }
        None => None,
    };
    let metrics = match metrics {
        Some(listen) => {
            let server = MetricsServer::bind(&listen).await?;
            // Tests and operators who asked for port 0 learn it here.
            info!(
                "metrics served at {}://{}/metrics",
                server.scheme(),
                server.local_addr()
            );
            Some(server)
        }
        None => None,
    };
    // `status` gives it, so nobody has to read it from the log.
    let metrics_addr = metrics.as_ref().map(|m| m.local_addr().to_string());
    let fds = Arc::new(FdReserve::new(fds::RESERVE));
    let mut running: Vec<Running> = Vec::with_capacity(ports.len());
    for plan in ports {
        match start(&plan, &fds, &shutdown).await {
            Ok(port) => running.push(Running { plan, port }),
            Err(error) => {
                stop_all(running).await;
                return Err(DaemonError::Port {
                    name: plan.name.clone(),
                    error,
                });
            }
        }
    }
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
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
            Some(()) = hangup(&mut hangups) => {
                info!("SIGHUP: reloading the configuration");
                let _ = reload(&mut running, config_file.as_deref(), &fds, &shutdown).await;
            }
            Some((request, reply)) = asked.recv() => {
                let status = matches!(request, Request::Status { .. });
                let mut answer = match request {
                    Request::Reload => {
                        match reload(&mut running, config_file.as_deref(), &fds, &shutdown).await {
                            Ok(summary) => Response::done(summary),
                            Err(e) => Response::error(e),
                        }
                    }
                    other => handle(&running, other, metrics_addr.as_deref()),
                };
                if status {
                    answer.daemon = Some(DaemonInfo {
                        pid: std::process::id(),
                        config: config_file.clone(),
                    });
                }
                let _ = reply.send(answer);
            }
        }
    }
    stop_all(running).await;
    Ok(())
}

/// A running port and the plan it was started from, to compare on reload.
struct Running {
    plan: PortPlan,
    port: Port,
}

async fn start(
    plan: &PortPlan,
    fds: &Arc<FdReserve>,
    shutdown: &CancellationToken,
) -> Result<Port, PortError> {
    let wait = plan.wait_for_device;
    Port::start(&plan.name, &plan.config, wait, fds.clone(), shutdown).await
}

/// The next SIGHUP; never, if the handler could not be installed.
async fn hangup(signals: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signals {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Applies the configuration file anew (see the module docs). `Ok` with a
/// summary; `Err` if the file is bad (nothing changed) or a port could not
/// start (the others are as the file says).
async fn reload(
    running: &mut Vec<Running>,
    file: Option<&Path>,
    fds: &Arc<FdReserve>,
    shutdown: &CancellationToken,
) -> Result<String, String> {
    let Some(file) = file else {
        let why = "serialhub was started with flags, not --config: there is nothing to reload";
        warn!("{why}");
        return Err(why.into());
    };
    let new = match config::load(file) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "reload refused: the configuration has an error; nothing changed");
            return Err(format!("{e}; nothing changed"));
        }
    };
    let plans: Vec<PortPlan> = new
        .ports
        .into_iter()
        .map(|config| PortPlan {
            name: config.name.clone(),
            config,
            wait_for_device: true,
        })
        .collect();
    // Matched by name through maps, so a reload of n ports takes O(n)
    // lookups, not n searches of n (issue 18).
    let by_name: HashMap<&str, &PortPlan> = plans.iter().map(|p| (p.name.as_str(), p)).collect();
    let (mut kept, mut going) = (Vec::new(), Vec::new());
    let (mut changed, mut changed_names) = (Vec::new(), HashSet::new());
    for mut r in running.drain(..) {
        let Some(&p) = by_name.get(r.plan.name.as_str()) else {
            going.push(r);
            continue;
        };
        match Change::between(&r.plan.config, &p.config) {
            Change::None => kept.push(r),
            Change::InPlace => match r.port.reconfigure(&r.plan.config, &p.config).await {
                Ok(what) => {
                    changed.push(format!("{} ({what})", p.name));
                    changed_names.insert(p.name.clone());
                    r.plan = p.clone();
                    kept.push(r);
                }
                // An endpoint that cannot bind: the port restarts, and
                // reports the same error if it cannot start either.
                Err(e) => {
                    warn!(port = %p.name, error = %e, "reload: cannot change the port in place; restarting it");
                    going.push(r);
                }
            },
            Change::Restart => going.push(r),
        }
    }
    let mut summary = Vec::new();
    let unchanged: Vec<&str> = kept
        .iter()
        .map(|r| r.plan.name.as_str())
        .filter(|n| !changed_names.contains(*n))
        .collect();
    if !unchanged.is_empty() {
        summary.push(format!("unchanged: {}", unchanged.join(", ")));
    }
    if !changed.is_empty() {
        summary.push(format!("changed in place: {}", changed.join("; ")));
    }
    // A port that goes and is still in the file restarts (or fails to);
    // the others are removed.
    let removed: Vec<&str> = going
        .iter()
        .map(|r| r.plan.name.as_str())
        .filter(|n| !by_name.contains_key(n))
        .collect();
    let removed = removed.join(", ");
    let gone: HashSet<String> = going.iter().map(|r| r.plan.name.clone()).collect();
    stop_all(going).await;
    let mut kept: HashMap<String, Running> =
        kept.into_iter().map(|r| (r.plan.name.clone(), r)).collect();
    let (mut added, mut restarted, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for plan in plans {
        if let Some(r) = kept.remove(&plan.name) {
            running.push(r);
            continue;
        }
        let was_there = gone.contains(&plan.name);
        match start(&plan, fds, shutdown).await {
            Ok(port) => {
                if was_there {
                    restarted.push(plan.name.clone());
                } else {
                    added.push(plan.name.clone());
                }
                running.push(Running { plan, port });
            }
            Err(e) => {
                warn!(port = %plan.name, error = %e, "reload: the port could not start");
                failed.push(format!("{}: {e}", plan.name));
            }
        }
    }
    for (what, names) in [("restarted", &restarted), ("added", &added)] {
        if !names.is_empty() {
            summary.push(format!("{what}: {}", names.join(", ")));
        }
    }
    if !removed.is_empty() {
        summary.push(format!("removed: {removed}"));
    }
    let summary = summary.join("; ");
    if failed.is_empty() {
        info!("reloaded: {summary}");
        Ok(summary)
    } else {
        Err(format!("{summary}; failed to start: {}", failed.join("; ")))
    }
}

/// How a port's new configuration differs from the one it runs with.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    None,
    /// Only line settings and endpoints: [`Port::reconfigure`] applies it
    /// without disturbing the other clients.
    InPlace,
    /// Anything else: the port is stopped (draining) and started anew.
    Restart,
}

impl Change {
    fn between(old: &ServeConfig, new: &ServeConfig) -> Change {
        if old == new {
            return Change::None;
        }
        // The same port with the old line and endpoints: the sizes derived
        // from the line rate follow it at run time (the hub resizes them).
        let mut same = new.clone();
        same.listen = old.listen.clone();
        same.line = old.line;
        same.sockets = old.sockets;
        same.hub.write_budget = old.hub.write_budget;
        same.hub.write_chunk = old.hub.write_chunk;
        if !new.hub.client_queue_fixed {
            same.hub.client_queue = old.hub.client_queue;
        }
        if same == *old {
            Change::InPlace
        } else {
            Change::Restart
        }
    }
}

/// Stops every port at once; each drains for at most its drain timeout.
async fn stop_all(ports: Vec<Running>) {
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

fn find<'a>(ports: &'a [Running], name: &str) -> Result<&'a Port, Response> {
    let ports: Vec<&Port> = ports.iter().map(|r| &r.port).collect();
    ports
        .iter()
        .copied()
        .find(|p| p.name() == name)
        .ok_or_else(|| {
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

/// Answers `request`; `metrics` is where `/metrics` is served, for `status`.
fn handle(ports: &[Running], request: Request, metrics: Option<&str>) -> Response {
    let status = |p: &Port| PortStatus {
        metrics: metrics.map(str::to_owned),
        ..p.status()
    };
    let result = match request {
        Request::Status { port: None } => Ok(Response {
            ports: ports.iter().map(|r| status(&r.port)).collect(),
            ..Response::ok()
        }),
        // Handled by the daemon's loop, which may change the ports.
        Request::Reload => Ok(Response::error("reload is handled by the daemon")),
        Request::Status { port: Some(name) } => find(ports, &name).map(|p| Response {
            ports: vec![status(p)],
            ..Response::ok()
        }),
        Request::Kick { port, client } => find(ports, &port).map(|p| {
            if p.hub().kick(client) {
                Response::ok()
            } else {
                Response::error(format!("port {port} has no client {client}"))
            }
        }),
        Request::Lock { port } => find(ports, &port).map(|p| operator_lock(p, &port)),
        Request::Unlock { port } => find(ports, &port).map(|p| operator_unlock(p, &port)),
    };
    result.unwrap_or_else(|e| e)
}

/// `serialhub lock PORT`: never waits for a client's lock, names it instead.
fn operator_lock(p: &Port, port: &str) -> Response {
    match p.hub().operator_lock() {
        Ok(true) => {
            info!(port, "write lock taken by the operator (control socket)");
            Response::done(format!(
                "port {port}: write lock taken; clients' writes wait until `serialhub unlock {port}`"
            ))
        }
        Ok(false) => Response::done(format!(
            "port {port}: the operator already holds the write lock"
        )),
        Err(e) => Response::error(format!(
            "port {port}: {e}; `serialhub unlock {port}` releases it"
        )),
    }
}

/// `serialhub unlock PORT`: releases whoever holds the lock.
fn operator_unlock(p: &Port, port: &str) -> Response {
    match p.hub().operator_unlock() {
        Ok(released) => {
            // The one line for it: the hub leaves it to us, who know the port.
            info!(port, holder = %released,
                "write lock released: released by the operator (serialhub unlock)");
            Response::done(format!(
                "port {port}: released the write lock of {released}"
            ))
        }
        Err(e) => Response::error(format!("port {port}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PortConfig, PortSettings, Source};

    fn port(f: impl FnOnce(&mut PortSettings)) -> PortConfig {
        let mut s = PortSettings {
            name: Some("p".into()),
            device: Some("/dev/ttyS0".parse().unwrap()),
            ..PortSettings::default()
        };
        f(&mut s);
        PortConfig::resolve(s, Source::File).unwrap()
    }

    #[test]
    fn line_and_endpoint_changes_are_made_in_place() {
        let old = port(|_| {});
        assert_eq!(Change::between(&old, &old.clone()), Change::None);
        let faster = port(|s| s.baud = Some(115_200));
        assert_eq!(Change::between(&old, &faster), Change::InPlace);
        let listen = port(|s| s.listen = Some(vec!["unix:/tmp/x.sock".parse().unwrap()]));
        assert_eq!(Change::between(&old, &listen), Change::InPlace);
        let parity = port(|s| {
            s.parity = Some(crate::line::Parity::Even);
            s.listen = Some(vec!["tcp:127.0.0.1:0".parse().unwrap()]);
        });
        assert_eq!(Change::between(&old, &parity), Change::InPlace);
        // Anything else restarts the port.
        for other in [
            port(|s| s.max_clients = Some(3)),
            port(|s| s.device = Some("/dev/ttyS1".parse().unwrap())),
            port(|s| s.client_queue = Some(1 << 20)),
            port(|s| {
                s.baud = Some(115_200);
                s.writers = Some(crate::config::Writers::Transaction);
            }),
        ] {
            assert_eq!(Change::between(&old, &other), Change::Restart, "{other:?}");
        }
    }
}
