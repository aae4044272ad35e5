//! Answers the control requests that read or act on one running port:
//! `status`, `kick`, `lock` and `unlock`. A reload changes the ports, so the
//! run loop carries it out instead (`super::reload`).

use tracing::info;

use super::ports::Running;
use crate::control::{PortStatus, Request, Response};
use crate::port::Port;

/// The running port `name`, or an answer naming the ports there are.
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

/// Answers `request`; `metrics` is where `/metrics` is served (and
/// whether over HTTPS), for `status`.
pub(crate) fn handle(
    ports: &[Running],
    request: Request,
    metrics: Option<(&str, bool)>,
) -> Response {
    let status = |r: &Running| PortStatus {
        metrics: metrics.map(|(addr, _)| addr.to_owned()),
        metrics_https: metrics.is_some_and(|(_, https)| https),
        http: metrics.map(|(addr, _)| addr.to_owned()),
        http_https: metrics.is_some_and(|(_, https)| https),
        traffic_log: r.plan.config.traffic.as_ref().map(|t| t.dir.clone()),
        labels: r.plan.config.labels.clone(),
        ..r.port.status()
    };
    let result = match request {
        Request::Status { port: None } => Ok(Response {
            ports: ports.iter().map(status).collect(),
            ..Response::ok()
        }),
        // Handled by the daemon's loop, which may change the ports.
        Request::Reload => Ok(Response::error("reload is handled by the daemon")),
        Request::Status { port: Some(name) } => find(ports, &name).map(|p| Response {
            ports: ports
                .iter()
                .filter(|r| std::ptr::eq(&r.port, p))
                .map(status)
                .collect(),
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
