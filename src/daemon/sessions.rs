//! Fleet sessions opened to this host's ports (see [`crate::fleet::listen`]):
//! the daemon, which owns the ports, looks the port up and has it admit the
//! session as a client (`fleet:CLIENTHOST`), or answers the opener why not.

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::ports::Running;
use crate::control::FleetStatus;
use crate::endpoint::accept::Protocol;
use crate::fleet::dial;
use crate::fleet::listen::{Accepted, listen};
use crate::fleet::wire::Mode;

/// Admits `session` to the port it names, answering its open request with
/// the window the port's line needs, or with why it cannot be served.
pub(super) fn attach(ports: &[Running], session: Accepted) {
    let Accepted {
        port,
        mode,
        peer,
        reader,
        writer,
        answer,
    } = session;
    let Some(running) = ports.iter().find(|r| r.port.name() == port) else {
        debug!(port, %peer, "fleet session for a port this host does not serve");
        let names: Vec<&str> = ports.iter().map(|r| r.port.name()).collect();
        let _ = answer.send(Err(format!(
            "no port {port:?} here; ports: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
        return;
    };
    let config = &running.plan.config;
    let line = running.port.hub().line().unwrap_or(config.line);
    let window = dial::window(&line, config.pacing);
    let protocol = match mode {
        Mode::Raw => Protocol::Raw,
        Mode::Rfc2217 => Protocol::Rfc2217,
    };
    let admitted = running.port.admit(reader, writer, &peer, protocol);
    if let Err(e) = &admitted {
        info!(port, %peer, error = %e, "fleet session refused");
    }
    let _ = answer.send(admitted.map(|()| window));
}

/// Sessions handed over and not yet attached: the daemon takes each at
/// once, so a few suffice; the listener bounds those still being opened.
const QUEUE: usize = 16;

/// Serves fleet sessions to this host's ports as fleet host `host` over
/// `client` until `shutdown`, or until the registry's `status` says the
/// name was refused (another live serialhub answers for it); the sessions
/// come out of the receiver for [`attach`]. `fleet://` devices open theirs
/// over the same client.
pub(super) fn start(
    client: &async_nats::Client,
    host: &str,
    mut status: watch::Receiver<FleetStatus>,
    shutdown: &CancellationToken,
) -> mpsc::Receiver<Accepted> {
    dial::use_client(client);
    let (tx, rx) = mpsc::channel(QUEUE);
    let stop = shutdown.child_token();
    tokio::spawn(listen(client.clone(), host.to_owned(), tx, stop.clone()));
    tokio::spawn(async move {
        tokio::select! {
            r = status.wait_for(|s| s.state == "refused") => {
                if r.is_ok() {
                    warn!("fleet: this host name is refused; its ports take no fleet sessions");
                    stop.cancel();
                }
            }
            () = stop.cancelled() => {}
        }
    });
    rx
}

/// No sessions: this host is in no fleet.
pub(super) fn none() -> mpsc::Receiver<Accepted> {
    mpsc::channel(1).1
}
