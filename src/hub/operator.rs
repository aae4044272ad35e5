//! The operator's hand on a port's write lock: `serialhub lock` and
//! `serialhub unlock`, through the control socket.
//!
//! In merge mode the operator holds the same [`WriteLock`](super::WriteLock)
//! clients take in-band, with no idle or maximum time; every client's
//! writes wait before they are read from its socket (backpressure, nothing
//! dropped). In transaction mode it closes the arbiter's gate (see
//! [`txn`](super::txn)). Neither call ever waits: a lock a client holds is
//! an error naming it, for the operator to `unlock` first. The operator's
//! lock ends when the port stops (shutdown, or a reload that restarts it).

use std::sync::Arc;

use super::{ClientId, Hub};

pub(crate) use super::lock::{OPERATOR, OPERATOR_NAME};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OperatorLockError {
    #[error("the write lock is held by client {id} ({name})")]
    HeldBy { id: ClientId, name: Arc<str> },
    #[error("the write lock is not held")]
    NotHeld,
}

/// Whom `unlock` released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Released {
    Operator,
    Client { id: ClientId, name: Arc<str> },
}

impl std::fmt::Display for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Released::Operator => f.write_str(OPERATOR_NAME),
            Released::Client { id, name } => write!(f, "client {id} ({name})"),
        }
    }
}

impl Hub {
    /// The operator takes the write lock; `Ok(false)` if it held it already.
    pub(crate) fn operator_lock(&self) -> Result<bool, OperatorLockError> {
        let taken = if self.is_transactional() {
            self.txn_lock.take_for_operator()
        } else {
            self.lock.take_for_operator()
        };
        taken.map_err(|(id, name)| OperatorLockError::HeldBy { id, name })
    }

    /// Releases the write lock whoever holds it, a client or the operator.
    pub(crate) fn operator_unlock(&self) -> Result<Released, OperatorLockError> {
        let released = if self.is_transactional() {
            self.txn_lock.release_any()
        } else {
            self.lock.release_any()
        };
        match released {
            None => Err(OperatorLockError::NotHeld),
            Some((OPERATOR, _)) => Ok(Released::Operator),
            Some((id, name)) => Ok(Released::Client { id, name }),
        }
    }

    /// The port is stopping: the operator's lock (only the operator's)
    /// ends, so what clients sent drains to the device as at any stop
    /// instead of waiting for an `unlock` that cannot come.
    pub(crate) fn end_operator_lock(&self) {
        let why = "the port is stopping";
        if self.is_transactional() {
            self.txn_lock.release_operator(why);
        } else {
            self.lock.release(OPERATOR, why);
        }
    }

    /// Who holds the write lock, in either mode.
    pub(crate) fn write_lock_holder(&self) -> Option<Arc<str>> {
        if self.is_transactional() {
            self.txn_lock.holder()
        } else {
            self.lock.holder()
        }
    }
}
