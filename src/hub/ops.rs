//! What the hub hands the device: one ordered queue of data and settings.
//!
//! Clients' bytes and run-time settings changes travel on the same bounded
//! queue, so the device applies a change after every byte queued before it
//! and before every byte queued after it: bytes written before a baud change
//! go out at the old rate, as the client that sent them expects.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::ids::ClientId;
use crate::line::LineSettings;
use crate::traffic::ClientRef;

/// One chunk from one client on its way to the device.
#[derive(Debug)]
pub struct WriteChunk {
    pub client: ClientId,
    /// For the traffic log, which names the writer of every byte.
    pub client_name: Arc<str>,
    pub data: Bytes,
    pub(super) permit: OwnedSemaphorePermit,
}

impl WriteChunk {
    /// Returns the budget for `n` bytes that have reached the wire.
    pub fn release(&mut self, n: usize) {
        drop(self.permit.split(n.min(self.permit.num_permits())));
    }
}

/// New line settings for the device, once what was queued before is out.
#[derive(Debug)]
pub struct LineChange {
    pub line: LineSettings,
    /// Who asked: a client, or `None` for the operator (a reload).
    pub by: Option<ClientRef>,
    /// Told the outcome, if the asker waits for it.
    pub answer: Option<oneshot::Sender<LineAnswer>>,
}

/// The outcome of a [`LineChange`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineAnswer {
    /// The settings in force afterwards: the new ones, or the old ones if
    /// the device refused them.
    pub in_force: LineSettings,
    /// Why the device refused, if it did.
    pub refused: Option<String>,
}

/// One item on the device's queue.
#[derive(Debug)]
pub enum DeviceOp {
    Write(WriteChunk),
    Line(LineChange),
}

/// The hub's end of the device queue, owned by the device writer.
pub type WriteQueue = mpsc::Receiver<DeviceOp>;

impl DeviceOp {
    /// The chunk, if this is one.
    pub fn into_write(self) -> Option<WriteChunk> {
        match self {
            DeviceOp::Write(c) => Some(c),
            DeviceOp::Line(_) => None,
        }
    }
}
