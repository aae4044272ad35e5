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
//! before any other is changed in place or started, so an endpoint that
//! moves (a unix socket or a pty link) is never deleted by its old owner
//! after its new one made it. Then the ports that kept running, and the
//! HTTPS metrics listener, read their TLS files again: new handshakes use the
//! new certificate, open sessions go on.
//!
//! - `ports`: the running ports, and starting and stopping them;
//! - `plan`: what a reload is to do, from the old and new configurations
//!   alone (pure, unit-tested); `report`: what it did, and its one-line
//!   summary; `reload`: carries the plan out; `certs`: reads the TLS files
//!   again;
//! - `request`: answers `status`, `kick`, `lock` and `unlock`;
//! - this file: the task that owns the ports, and its loop.
//!
//! [`Port::reconfigure`]: crate::port::Port::reconfigure

mod certs;
mod plan;
mod ports;
mod reload;
mod report;
mod request;
mod sessions;
mod terminals;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::control::server::{Asked, ControlSocket, QUEUE};
use crate::control::{ControlConfig, DaemonInfo, Request, Response};
use crate::endpoint::unix::UnixError;
use crate::fds::{self, FdReserve};
use crate::fleet::config::FleetSettings;
use crate::fleet::registry::Registry;
use crate::port::PortError;
use crate::web::server::{HttpListen, HttpServer, WebError};
pub(crate) use ports::PortPlan;
use ports::{Running, start, stop_all};
use reload::reload;
use request::handle;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("port {name}: {error}")]
    Port { name: String, error: PortError },
    #[error("control socket: {0}")]
    Control(UnixError),
    #[error(transparent)]
    Http(#[from] WebError),
}

/// Runs `ports` (and the control socket and the metrics endpoint, if any)
/// until `shutdown`. `metrics` is the address to serve `/metrics` on
/// (`127.0.0.1:9108`).
/// `config_file` is where the ports came from, to reload; `None` when they
/// came from flags. `fleet` is this host's place in the fleet, if it joins
/// one; `fleet_file` the file's `[fleet]` as read, which a reload compares
/// (a change takes a restart).
pub(crate) async fn run(
    ports: Vec<PortPlan>,
    control: Option<ControlConfig>,
    metrics: Option<HttpListen>,
    config_file: Option<PathBuf>,
    fleet: Option<Registry>,
    fleet_file: FleetSettings,
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
    // Each port's --allow roles, for the console's certificate identities.
    let policies: crate::web::auth::Policies = Default::default();
    let metrics = match metrics {
        Some(listen) => {
            let server = HttpServer::bind(&listen, policies.clone()).await?;
            // Tests and operators who asked for port 0 learn it here.
            info!(
                "metrics served at {0}://{1}/metrics{2}",
                server.scheme(),
                server.local_addr(),
                match server.console() {
                    crate::web::state::Console::On => format!(
                        ", the web console at {}://{}/",
                        server.scheme(),
                        server.local_addr()
                    ),
                    crate::web::state::Console::MetricsOnly => String::new(),
                }
            );
            Some(server)
        }
        None => None,
    };
    // `status` gives it, so nobody has to read it from the log.
    let metrics_addr = metrics
        .as_ref()
        .map(|m| (m.local_addr().to_string(), m.scheme() == "https"));
    let fds = Arc::new(FdReserve::new(fds::RESERVE));
    // Sessions opened to this host's ports, and this host's `fleet://`
    // devices, use the registry's connection to the broker.
    let mut fleet_sessions = match &fleet {
        Some(r) => {
            let (client, host) = r.sessions();
            sessions::start(client, host, r.status(), &shutdown)
        }
        None => sessions::none(),
    };
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
    // Browsers' terminals come through this channel; the HTTP listener
    // holds the sending end (`attach`), and this task admits them.
    let (attach, mut attaching) = crate::web::terminal::channel();
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // The control socket and the metrics endpoint ask the ports' owner,
    // this task; with neither, the channel closes and is never polled again.
    let (asks, mut asked) = mpsc::channel::<Asked>(QUEUE);
    if let Some(socket) = control {
        tokio::spawn(socket.serve(asks.clone(), shutdown.clone()));
    }
    // Kept to read its TLS files again on reload.
    let metrics_tls = metrics.as_ref().and_then(HttpServer::tls);
    // Kept to give it the users a reload reads.
    let web_auth = metrics.as_ref().map(HttpServer::auth);
    policies.store(std::sync::Arc::new(access_policies(&running)));
    if let Some(server) = metrics {
        tokio::spawn(server.serve(asks.clone(), attach, shutdown.clone()));
    }
    // The registry asks for the ports' status as the control socket does.
    let fleet_status = fleet.as_ref().map(Registry::status);
    let fleet = fleet.map(|r| tokio::spawn(r.run(asks.clone(), shutdown.clone())));
    drop(asks);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = hangup(&mut hangups) => {
                info!("SIGHUP: reloading the configuration");
                let _ = reload(&mut running, config_file.as_deref(), metrics_tls.as_deref(), &fleet_file, &fds, &shutdown).await;
                reloaded(&running, &policies, web_auth.as_deref(), config_file.as_deref());
            }
            Some(session) = fleet_sessions.recv() => sessions::attach(&running, session),
            Some(request) = attaching.recv() => terminals::attach(&running, request),
            Some((request, reply)) = asked.recv() => {
                let status = matches!(request, Request::Status { .. });
                let mut answer = match request {
                    Request::Reload => {
                        let answer = match reload(&mut running, config_file.as_deref(), metrics_tls.as_deref(), &fleet_file, &fds, &shutdown).await {
                            Ok(report) if report.complete() => Response::done(report.to_string()),
                            Ok(report) => Response::error(report.to_string()),
                            Err(e) => Response::error(e.to_string()),
                        };
                        reloaded(&running, &policies, web_auth.as_deref(), config_file.as_deref());
                        answer
                    }
                    other => handle(&running, other, metrics_addr.as_ref().map(|(a, h)| (a.as_str(), *h))),
                };
                if status {
                    let fleet = fleet_status.as_ref().map(|s| s.borrow().clone());
                    for port in &mut answer.ports {
                        port.fleet.clone_from(&fleet);
                    }
                    answer.daemon = Some(DaemonInfo {
                        pid: std::process::id(),
                        config: config_file.clone(),
                        fleet: fleet.map(Box::new),
                    });
                }
                let _ = reply.send(answer);
            }
        }
    }
    stop_all(running).await;
    // It deletes this host's keys, within its own timeout.
    if let Some(task) = fleet {
        let _ = task.await;
    }
    Ok(())
}

/// After a reload: the console's view of the ports' roles, and its users
/// as the file now gives them (the sessions of users removed or given
/// another role end). A file that does not load leaves the users be.
fn reloaded(
    running: &[Running],
    policies: &crate::web::auth::Policies,
    auth: Option<&crate::web::auth::Auth>,
    file: Option<&std::path::Path>,
) {
    policies.store(std::sync::Arc::new(access_policies(running)));
    if let (Some(auth), Some(file)) = (auth, file)
        && let Ok(config) = crate::config::load(file)
    {
        auth.set_users(&config.http.map(|h| h.users).unwrap_or_default());
    }
}

/// Each running port's `--allow` roles, by name.
fn access_policies(
    running: &[Running],
) -> std::collections::BTreeMap<String, crate::access::AccessPolicy> {
    running
        .iter()
        .map(|r| (r.plan.name.clone(), r.plan.config.access.clone()))
        .collect()
}

/// The next SIGHUP; never, if the handler could not be installed.
async fn hangup(signals: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signals {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
