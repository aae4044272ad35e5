//! The small interface a device's loops use: a local tty, or a remote port
//! over the network, behind one type, so the reading loop and the writer
//! (with its pacing, its ordered settings changes and the in-flight bound)
//! are the same for both.
//!
//! A remote port's futures are boxed: they are larger than a tty's, and
//! inline they would grow every port's long-lived device task by their
//! size, whatever its device (issue 10: the memory of an idle port).

use std::io;

use super::loopback::Loopback;
use super::remote::Remote;
use super::tty::{Tty, TtyError};
use crate::hub::Signal;
use crate::line::LineSettings;
use crate::modem::{LineErrors, ModemInputs};

/// Whether `e`, from a device call, means the device is gone (a remote
/// port's connection closed) rather than that it refused or cannot do what
/// was asked: the change is then kept for the reopened device.
pub(crate) fn connection_lost(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | UnexpectedEof | ConnectionReset | ConnectionAborted | NotConnected
    )
}

/// An open device.
#[derive(Debug)]
pub(crate) enum DeviceIo {
    Tty(Tty),
    /// Boxed: a remote port's state is far larger than a tty's.
    Remote(Box<Remote>),
    /// `sim:loopback`, in process.
    Loopback(Loopback),
}

impl DeviceIo {
    /// Waits until a read would not block. Cancel safe.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            DeviceIo::Tty(t) => t.readable().await,
            DeviceIo::Remote(r) => Box::pin(r.readable()).await,
            DeviceIo::Loopback(l) => l.readable().await,
        }
    }

    /// Reads what the device has. `Ok(0)` means it hung up.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DeviceIo::Tty(t) => t.read(buf).await,
            DeviceIo::Remote(r) => Box::pin(r.read(buf)).await,
            DeviceIo::Loopback(l) => l.read(buf).await,
        }
    }

    /// Writes some of `buf`.
    pub(crate) async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DeviceIo::Tty(t) => t.write(buf).await,
            DeviceIo::Remote(r) => Box::pin(r.write(buf)).await,
            DeviceIo::Loopback(l) => l.write(buf).await,
        }
    }

    /// Bytes written and not yet sent on (a tty's driver queue; a remote
    /// port's unacknowledged bytes).
    pub(crate) fn output_queue(&self) -> io::Result<usize> {
        match self {
            DeviceIo::Tty(t) => t.output_queue(),
            DeviceIo::Remote(r) => r.output_queue(),
            // The writer's pacer models the line.
            DeviceIo::Loopback(_) => Ok(0),
        }
    }

    /// Whether [`output_queue`](Self::output_queue) counts anything: not
    /// for a pty (always 0) or the in-process loopback, so the writer does
    /// not ask them.
    pub(crate) fn reports_output_queue(&self) -> bool {
        match self {
            DeviceIo::Tty(t) => t.reports_output_queue(),
            DeviceIo::Remote(_) => true,
            DeviceIo::Loopback(_) => false,
        }
    }

    /// Changes the line settings; on failure `before` is in force.
    pub(crate) async fn set_line(
        &self,
        line: &LineSettings,
        before: &LineSettings,
    ) -> Result<(), String> {
        match self {
            DeviceIo::Tty(t) => t
                .set_line(line, before)
                .await
                .map_err(|e: TtyError| e.to_string()),
            DeviceIo::Remote(r) => Box::pin(r.set_line(line, before))
                .await
                .map_err(|e| e.to_string()),
            DeviceIo::Loopback(l) => l.set_line(line),
        }
    }

    /// Sets a modem output, or the break condition.
    pub(crate) async fn set_signal(&self, signal: Signal, on: bool) -> io::Result<()> {
        match self {
            DeviceIo::Tty(t) => t.set_signal(signal, on),
            DeviceIo::Remote(r) => Box::pin(r.set_signal(signal, on)).await,
            DeviceIo::Loopback(l) => {
                l.set_signal(signal, on);
                Ok(())
            }
        }
    }

    /// Received breaks and line errors, as counted so far.
    pub(crate) fn line_errors(&self) -> io::Result<LineErrors> {
        match self {
            DeviceIo::Tty(t) => t.line_errors(),
            DeviceIo::Loopback(l) => Ok(l.line_errors()),
            DeviceIo::Remote(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a remote port's line state is not relayed",
            )),
        }
    }

    /// Tells the hub of the modem inputs and line errors, where the device
    /// has them.
    pub(crate) fn publish_state(&self, settings: &crate::hub::settings::SharedSettings) {
        if let Ok(inputs) = self.modem_inputs() {
            settings.inputs_changed(inputs);
        }
        if let Ok(errors) = self.line_errors() {
            settings.line_errors_changed(errors);
        }
    }

    /// The modem status inputs.
    pub(crate) fn modem_inputs(&self) -> io::Result<ModemInputs> {
        match self {
            DeviceIo::Tty(t) => t.modem_inputs(),
            DeviceIo::Remote(r) => r.modem_inputs(),
            DeviceIo::Loopback(l) => Ok(l.modem_inputs()),
        }
    }
}
