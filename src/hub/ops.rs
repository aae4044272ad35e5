//! What the hub hands the device: one ordered queue of data and settings.
//!
//! Clients' bytes and run-time settings changes travel on the same bounded
//! queue, so the device applies a change after every byte queued before it
//! and before every byte queued after it: bytes written before a baud change
//! go out at the old rate, as the client that sent them expects.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ids::ClientId;
use crate::line::LineSettings;
pub(crate) use crate::modem::Signal;
use crate::traffic::ClientRef;

/// One chunk from one client on its way to the device.
#[derive(Debug)]
pub struct WriteChunk {
    pub(crate) client: ClientId,
    /// For the traffic log, which names the writer of every byte.
    pub(crate) client_name: Arc<str>,
    pub(crate) data: Bytes,
    pub(super) permit: OwnedSemaphorePermit,
}

impl WriteChunk {
    /// Returns the budget for `n` bytes that have reached the wire.
    pub(crate) fn release(&mut self, n: usize) {
        drop(self.permit.split(n.min(self.permit.num_permits())));
    }
}

/// New line settings for the device, once what was queued before is out.
#[derive(Debug)]
pub struct LineChange {
    pub(crate) line: LineSettings,
    /// Who asked: a client, or `None` for the operator (a reload).
    pub(crate) by: Option<ClientRef>,
    /// Cancelled when the asking client leaves: a change not yet applied
    /// is then dropped, so a departed client's requests stop changing the
    /// device (issue 18).
    pub(crate) departed: Option<CancellationToken>,
    /// Told the outcome, if the asker waits for it.
    pub(crate) answer: Option<oneshot::Sender<LineAnswer>>,
}

/// The outcome of a [`LineChange`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LineAnswer {
    /// The settings in force afterwards: the new ones, or the old ones if
    /// the device refused them.
    pub(crate) in_force: LineSettings,
    /// Why the device refused, if it did.
    pub(crate) refused: Option<String>,
}

/// Sets a modem control output (or break) on or off, in order with the data.
#[derive(Debug)]
pub struct SignalChange {
    pub(crate) signal: Signal,
    pub(crate) on: bool,
    pub(crate) by: Option<ClientRef>,
    /// As for [`LineChange::departed`].
    pub(crate) departed: Option<CancellationToken>,
    pub(crate) answer: Option<oneshot::Sender<SignalAnswer>>,
}

/// The outcome of a [`SignalChange`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SignalAnswer {
    /// The state serialhub holds for the signal afterwards. A device without
    /// modem lines (a pty) cannot show it on a wire; it is still kept, so a
    /// client reads back what it set.
    pub(crate) on: bool,
    /// Why the device could not apply it, if it could not.
    pub(crate) refused: Option<String>,
}

/// One item on the device's queue.
#[derive(Debug)]
pub enum DeviceOp {
    Write(WriteChunk),
    Line(LineChange),
    Signal(SignalChange),
}

/// The hub's end of the device queue, owned by the device writer.
pub(crate) type WriteQueue = mpsc::Receiver<DeviceOp>;

impl DeviceOp {
    /// A settings or modem-line change whose client has left.
    pub(crate) fn orphaned(&self) -> bool {
        let departed = match self {
            DeviceOp::Write(_) => return false,
            DeviceOp::Line(c) => &c.departed,
            DeviceOp::Signal(c) => &c.departed,
        };
        departed.as_ref().is_some_and(|t| t.is_cancelled())
    }

    /// The chunk, if this is one.
    #[cfg(test)]
    pub(crate) fn into_write(self) -> Option<WriteChunk> {
        match self {
            DeviceOp::Write(c) => Some(c),
            DeviceOp::Line(_) | DeviceOp::Signal(_) => None,
        }
    }
}
