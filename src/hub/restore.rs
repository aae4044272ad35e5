//! The return to the configured settings (issue 19): a program's line
//! settings and modem lines must not outlive it. minicom turns on RTS/CTS
//! and GNU screen XON/XOFF; the next raw client should not get a line it
//! never asked for. When the last connected client that changed the line
//! or a modem output leaves, the port goes back to its configured line and
//! to the modem outputs a tty opens with, queued after the bytes already
//! queued. `keep-settings` keeps the last change instead.

use std::sync::{Arc, Mutex, MutexGuard};

use tracing::info;

use super::{DeviceOp, Hub, LineChange, Signal, SignalChange};
use crate::ids::ClientId;
use crate::line::LineSettings;
use crate::modem::ModemOutputs;

/// The clients whose changes are in force, and what to return to.
#[derive(Debug, Default)]
pub(crate) struct Changers {
    /// In the order of their latest change; at most one entry a client.
    clients: Mutex<Vec<(ClientId, Arc<str>)>>,
    /// The line of the configuration (flags, file, the last reload).
    configured: Mutex<Option<LineSettings>>,
    /// Under `keep-settings`, the client whose kept changes are in force
    /// after it left, for status.
    kept: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single assignment or push: a poisoned value is whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Changers {
    /// Client `id` changed the line or a modem output, and the device
    /// applied it.
    pub(crate) fn changed(&self, id: ClientId, name: &Arc<str>) {
        let mut clients = lock(&self.clients);
        clients.retain(|(c, _)| *c != id);
        clients.push((id, name.clone()));
        *lock(&self.kept) = None;
    }

    /// Client `id` left; whether it was the last one whose changes are in
    /// force. Under `keep`, it is still named as the one who set them.
    fn left(&self, id: ClientId, keep: bool) -> bool {
        let mut clients = lock(&self.clients);
        let Some(i) = clients.iter().position(|(c, _)| *c == id) else {
            return false;
        };
        let (id, name) = clients.remove(i);
        if !clients.is_empty() {
            return false;
        }
        *lock(&self.kept) = keep.then(|| format!("#{id} {name} (gone)"));
        true
    }

    /// Who changed the line last, while a change is in force: `#3 tcp:...`.
    pub(crate) fn latest(&self) -> Option<String> {
        lock(&self.clients)
            .last()
            .map(|(id, name)| format!("#{id} {name}"))
            .or_else(|| lock(&self.kept).clone())
    }

    /// The configured line: at start-up, and at each reload.
    pub(crate) fn configure(&self, line: LineSettings) {
        *lock(&self.configured) = Some(line);
        *lock(&self.kept) = None;
    }
}

impl Hub {
    /// Client `id` is leaving: if it was the last whose changes are in
    /// force, and the port does not keep settings, queue the return to the
    /// configured ones.
    pub(super) fn restore_after(&self, id: ClientId) {
        if !self.changers.left(id, self.config.keep_settings) || self.config.keep_settings {
            return;
        }
        let line = *lock(&self.changers.configured);
        let outputs = ModemOutputs::default();
        info!(line = ?line.map(|l| l.to_string()), "the last client that changed the settings left; \
            returning to the configured ones (keep-settings keeps them)");
        let mut ops: Vec<DeviceOp> = line
            .map(|line| {
                DeviceOp::Line(LineChange {
                    line,
                    by: None,
                    departed: None,
                    answer: None,
                })
            })
            .into_iter()
            .collect();
        for (signal, on) in [
            (Signal::Dtr, outputs.dtr),
            (Signal::Rts, outputs.rts),
            (Signal::Break, outputs.brk),
        ] {
            ops.push(DeviceOp::Signal(SignalChange {
                signal,
                on,
                by: None,
                departed: None,
                answer: None,
            }));
        }
        // Called where a client is dropped, which may not await: queue what
        // fits now, and the rest from a task (the queue is bounded).
        let mut rest = Vec::new();
        for op in ops {
            if !rest.is_empty() {
                rest.push(op);
                continue;
            }
            if let Err(e) = self.writes.try_send(op) {
                match e {
                    tokio::sync::mpsc::error::TrySendError::Full(op) => rest.push(op),
                    tokio::sync::mpsc::error::TrySendError::Closed(_) => return,
                }
            }
        }
        if rest.is_empty() {
            return;
        }
        let writes = self.writes.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for op in rest {
                    if writes.send(op).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_changer_to_leave_returns_the_settings() {
        let c = Changers::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("tcp:a"), Arc::from("pty:b"));
        assert!(!c.left(1, false), "never changed anything");
        c.changed(1, &a);
        c.changed(2, &b);
        c.changed(1, &a);
        assert_eq!(c.latest().as_deref(), Some("#1 tcp:a"));
        assert!(!c.left(1, false), "another changer is still there");
        assert_eq!(c.latest().as_deref(), Some("#2 pty:b"));
        assert!(c.left(2, false));
        assert_eq!(c.latest(), None);
        c.changed(3, &a);
        assert!(c.left(3, true));
        assert_eq!(c.latest().as_deref(), Some("#3 tcp:a (gone)"));
        c.configure(LineSettings::default());
        assert_eq!(c.latest(), None);
    }
}
