//! The port's shared settings state: who may change the line settings and
//! modem lines, the modem outputs in force, and the modem inputs, which every
//! interested client watches.
//!
//! Clients that can change settings (RFC 2217, and pty programs through
//! packet mode) share one port, so a policy decides whose changes apply.
//! Under [`Policy::First`] the first client to change a setting owns the
//! settings until it leaves; the others are answered with the values in
//! force.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, watch};

use crate::ids::ClientId;
use crate::modem::{LineErrors, ModemInputs, ModemOutputs};

/// Whose settings changes apply on a shared port (endpoint option
/// `control=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Policy {
    /// The first client to change a setting owns them until it leaves.
    #[default]
    First,
    /// The last request wins.
    Any,
    /// The settings are the operator's; requests are answered with the
    /// values in force.
    None,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "first" => Ok(Policy::First),
            "any" => Ok(Policy::Any),
            "none" => Ok(Policy::None),
            _ => Err(format!("control={s}: expected first, any or none")),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::First => "first",
            Policy::Any => "any",
            Policy::None => "none",
        })
    }
}

/// Why a client may not change the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// Another client owns them (`control=first`).
    Owned { id: ClientId, name: String },
    /// The endpoint says `control=none`.
    Operator,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Owned { id, name } => {
                write!(
                    f,
                    "client #{id} {name} owns the port's settings (control=first)"
                )
            }
            Denied::Operator => {
                f.write_str("the endpoint leaves the settings to the operator (control=none)")
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct SharedSettings {
    owner: Mutex<Option<(ClientId, String)>>,
    outputs: Mutex<ModemOutputs>,
    inputs: watch::Sender<ModemInputs>,
    /// Counts of received breaks and line errors.
    line_errors: watch::Sender<LineErrors>,
    /// Woken when someone starts watching the inputs.
    watching: Notify,
}

impl Default for SharedSettings {
    fn default() -> Self {
        SharedSettings {
            owner: Mutex::new(None),
            outputs: Mutex::new(ModemOutputs::default()),
            inputs: watch::Sender::new(ModemInputs::default()),
            line_errors: watch::Sender::new(LineErrors::default()),
            watching: Notify::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single assignment: a poisoned value is still whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SharedSettings {
    /// Whether client `id` may change the settings now under `policy`; under
    /// `first`, asking makes it the owner if nobody is.
    pub(crate) fn claim(&self, id: ClientId, name: &str, policy: Policy) -> Result<(), Denied> {
        match policy {
            Policy::Any => Ok(()),
            Policy::None => Err(Denied::Operator),
            Policy::First => {
                let mut owner = lock(&self.owner);
                match &*owner {
                    Some((o, _)) if *o == id => Ok(()),
                    Some((o, n)) => Err(Denied::Owned {
                        id: *o,
                        name: n.clone(),
                    }),
                    None => {
                        *owner = Some((id, name.to_owned()));
                        tracing::info!(client = %name, "client now owns the port's settings (control=first)");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Whether client `id` could change the settings now under `policy`,
    /// without becoming their owner.
    pub(crate) fn permits(&self, id: ClientId, policy: Policy) -> bool {
        match policy {
            Policy::Any => true,
            Policy::None => false,
            Policy::First => lock(&self.owner).as_ref().is_none_or(|(o, _)| *o == id),
        }
    }

    /// Client `id` has gone: if it owned the settings, nobody does now.
    pub(crate) fn release(&self, id: ClientId) {
        let mut owner = lock(&self.owner);
        if owner.as_ref().is_some_and(|(o, _)| *o == id) {
            *owner = None;
        }
    }

    pub(crate) fn outputs(&self) -> ModemOutputs {
        *lock(&self.outputs)
    }

    pub(crate) fn set_outputs(&self, outputs: ModemOutputs) {
        *lock(&self.outputs) = outputs;
    }

    /// The modem inputs now, and a receiver told of every change.
    pub(crate) fn watch_inputs(&self) -> watch::Receiver<ModemInputs> {
        let rx = self.inputs.subscribe();
        self.watching.notify_waiters();
        rx
    }

    /// Returns once someone watches the inputs.
    pub(crate) async fn watched(&self) {
        loop {
            let started = self.watching.notified();
            if self.inputs_watched() {
                return;
            }
            started.await;
        }
    }

    /// The device's modem inputs changed.
    pub(crate) fn inputs_changed(&self, inputs: ModemInputs) {
        self.inputs.send_if_modified(|now| {
            let changed = *now != inputs;
            *now = inputs;
            changed
        });
    }

    /// The device's counts of breaks and line errors, and a receiver told
    /// of every change.
    pub(crate) fn watch_line_errors(&self) -> watch::Receiver<LineErrors> {
        self.line_errors.subscribe()
    }

    /// The device's counts of breaks and line errors changed.
    pub(crate) fn line_errors_changed(&self, errors: LineErrors) {
        self.line_errors.send_if_modified(|now| {
            let changed = *now != errors;
            *now = errors;
            changed
        });
    }

    /// Whether anyone watches the inputs (so a device without change
    /// interrupts need not poll for nobody).
    pub(crate) fn inputs_watched(&self) -> bool {
        self.inputs.receiver_count() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_client_owns_until_it_leaves() {
        let s = SharedSettings::default();
        let (a, b): (ClientId, ClientId) = (1, 2);
        assert_eq!(s.claim(a, "a", Policy::First), Ok(()));
        assert_eq!(s.claim(a, "a", Policy::First), Ok(()));
        assert_eq!(
            s.claim(b, "b", Policy::First),
            Err(Denied::Owned {
                id: a,
                name: "a".into()
            })
        );
        assert_eq!(s.claim(b, "b", Policy::Any), Ok(()));
        assert_eq!(s.claim(b, "b", Policy::None), Err(Denied::Operator));
        // Another client leaving frees nothing.
        s.release(b);
        assert!(s.claim(b, "b", Policy::First).is_err());
        s.release(a);
        assert_eq!(s.claim(b, "b", Policy::First), Ok(()));
    }

    #[test]
    fn inputs_are_watched() {
        let s = SharedSettings::default();
        assert!(!s.inputs_watched());
        let mut rx = s.watch_inputs();
        assert!(s.inputs_watched());
        s.inputs_changed(ModemInputs::default());
        assert!(!rx.has_changed().unwrap());
        s.inputs_changed(ModemInputs {
            cts: true,
            ..ModemInputs::default()
        });
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().cts);
    }
}
