//! The write lock in transaction mode: a client's lock turn and the
//! operator's gate in front of the arbiter.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::hub::ClientId;

/// Who holds the write lock in transaction mode: a client during its lock
/// turn, or the operator. Shared by the arbiter and the control socket,
/// which must never wait for each other.
#[derive(Debug, Default)]
pub(crate) struct TxnLock {
    held: Mutex<Held>,
    /// Woken when the lock is released or taken by the operator.
    pub(crate) changed: Notify,
}

#[derive(Debug, Default, PartialEq)]
enum Held {
    #[default]
    Free,
    Client(ClientId, Arc<str>),
    Operator,
}

/// A client's lock turn in [`TxnLock`]; ends it (if the operator has not
/// already) when dropped.
pub(crate) struct ClientTurn<'a> {
    lock: &'a TxnLock,
    id: ClientId,
}

impl Drop for ClientTurn<'_> {
    fn drop(&mut self) {
        let mut held = self.lock.held();
        if matches!(&*held, Held::Client(id, _) if *id == self.id) {
            *held = Held::Free;
            self.lock.changed.notify_waiters();
        }
    }
}

impl TxnLock {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The holder's name, for status.
    pub(crate) fn holder(&self) -> Option<Arc<str>> {
        match &*self.held() {
            Held::Free => None,
            Held::Client(_, name) => Some(name.clone()),
            Held::Operator => Some(crate::hub::lock::OPERATOR_NAME.into()),
        }
    }

    pub(crate) fn is_held_by(&self, client: ClientId) -> bool {
        matches!(&*self.held(), Held::Client(id, _) if *id == client)
    }

    /// See [`WriteLock::take_for_operator`](super::WriteLock::take_for_operator).
    pub(crate) fn take_for_operator(&self) -> Result<bool, (ClientId, Arc<str>)> {
        let mut held = self.held();
        match &*held {
            Held::Operator => Ok(false),
            Held::Client(id, name) => Err((*id, name.clone())),
            Held::Free => {
                info!(holder = crate::hub::lock::OPERATOR_NAME, "write lock taken");
                *held = Held::Operator;
                self.changed.notify_waiters();
                Ok(true)
            }
        }
    }

    /// Releases the lock whoever holds it; a client's lock turn ends. Not
    /// logged here, nor by the lock turn: the caller, which knows the port,
    /// logs it once.
    pub(crate) fn release_any(&self) -> Option<(ClientId, Arc<str>)> {
        let mut held = self.held();
        let was = match std::mem::take(&mut *held) {
            Held::Free => return None,
            Held::Client(id, name) => (id, name),
            Held::Operator => (
                crate::hub::lock::OPERATOR,
                crate::hub::lock::OPERATOR_NAME.into(),
            ),
        };
        self.changed.notify_waiters();
        Some(was)
    }

    /// Releases the lock if the operator holds it.
    pub(crate) fn release_operator(&self, why: &str) {
        let mut held = self.held();
        if *held == Held::Operator {
            *held = Held::Free;
            info!(
                holder = crate::hub::lock::OPERATOR_NAME,
                "write lock released: {why}"
            );
            self.changed.notify_waiters();
        }
    }

    /// Waits while the operator holds the lock (until `stop`: what clients
    /// handed over is still delivered at shutdown), counting the wait; then,
    /// for a lock turn, makes `turn` the holder at once, so the operator
    /// cannot slip in between. Cancel safe.
    pub(crate) async fn gate<'a>(
        &'a self,
        turn: Option<(ClientId, &Arc<str>)>,
        waits: &std::sync::atomic::AtomicU64,
        stop: &CancellationToken,
    ) -> Option<ClientTurn<'a>> {
        let mut counted = false;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut held = self.held();
                if *held != Held::Operator || stop.is_cancelled() {
                    return turn.map(|(id, name)| {
                        *held = Held::Client(id, name.clone());
                        ClientTurn { lock: self, id }
                    });
                }
            }
            if !counted {
                counted = true;
                waits.fetch_add(1, Relaxed);
            }
            tokio::select! {
                () = changed => {}
                () = stop.cancelled() => {}
            }
        }
    }
}
