//! Browsers' terminals opened on this daemon's ports (see
//! [`crate::web::terminal`]): the daemon, which owns the ports, looks the
//! port up and has it admit the browser as a client (`web:ADDRESS`), or
//! answers why not.

use super::ports::Running;
use crate::web::terminal::{AttachRequest, control_of};

/// Admits the browser of `request` to the port it names, or refuses it.
pub(super) fn attach(ports: &[Running], request: AttachRequest) {
    match ports.iter().find(|r| r.port.name() == request.port()) {
        Some(r) => {
            let control = control_of(&r.plan.config.listen);
            request.attach(&r.port, control);
        }
        None => {
            let why = format!("no port {:?} here", request.port());
            request.refuse(why);
        }
    }
}
