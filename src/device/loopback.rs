//! `sim:loopback`: a loopback plug, simulated in process.
//!
//! It echoes every byte, loops RTS to CTS and DTR to DSR and CD as a
//! loopback plug's wiring does, and takes any line settings a UART would
//! (parity, 5 to 8 data bits), so RFC 2217 and settings forwarding can be
//! tested end to end with no hardware. Unlike the other simulators it has no
//! pty behind it: a pty carries no modem lines, and this kernel's ptys
//! refuse some parity and data-size settings. The device writer paces writes
//! at the line rate as for a tty, so the echo comes back at that rate.

use std::io;
use std::sync::{Mutex, MutexGuard};

use bytes::BytesMut;
use tokio::sync::Notify;

use crate::hub::Signal;
use crate::line::LineSettings;
use crate::modem::{LineErrors, ModemInputs, ModemOutputs};

/// Echoed bytes not yet read back: what a UART's receive FIFO and the
/// kernel's buffer hold. Writes wait while it is full.
const CAPACITY: usize = 4096;

#[derive(Debug, Default)]
struct State {
    echo: BytesMut,
    outputs: ModemOutputs,
    /// A break sent is a break received, on a loopback plug.
    breaks: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Loopback {
    state: Mutex<State>,
    /// Woken when echoed bytes arrive.
    readable: Notify,
    /// Woken when echoed bytes are read.
    writable: Notify,
}

impl Loopback {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until echoed bytes are there. Cancel safe.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        loop {
            let more = self.readable.notified();
            if !self.state().echo.is_empty() {
                return Ok(());
            }
            more.await;
        }
    }

    /// Reads echoed bytes, waiting for some.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let more = self.readable.notified();
            {
                let mut s = self.state();
                if !s.echo.is_empty() {
                    let n = buf.len().min(s.echo.len());
                    buf[..n].copy_from_slice(&s.echo.split_to(n));
                    drop(s);
                    self.writable.notify_one();
                    return Ok(n);
                }
            }
            more.await;
        }
    }

    /// Echoes what fits, waiting for room.
    pub(crate) async fn write(&self, data: &[u8]) -> io::Result<usize> {
        loop {
            let room = self.writable.notified();
            {
                let mut s = self.state();
                let n = data.len().min(CAPACITY.saturating_sub(s.echo.len()));
                if n > 0 || data.is_empty() {
                    s.echo.extend_from_slice(&data[..n]);
                    drop(s);
                    self.readable.notify_one();
                    return Ok(n);
                }
            }
            room.await;
        }
    }

    /// Any valid setting is taken, as a UART takes it.
    pub(crate) fn set_line(&self, line: &LineSettings) -> Result<(), String> {
        line.validate().map_err(|e| e.to_string())
    }

    pub(crate) fn set_signal(&self, signal: Signal, on: bool) {
        let mut s = self.state();
        match signal {
            Signal::Dtr => s.outputs.dtr = on,
            Signal::Rts => s.outputs.rts = on,
            Signal::Break => {
                if on && !s.outputs.brk {
                    s.breaks = s.breaks.wrapping_add(1);
                }
                s.outputs.brk = on;
            }
        }
    }

    /// Breaks received (each one sent); no line errors on a plug.
    pub(crate) fn line_errors(&self) -> LineErrors {
        LineErrors {
            breaks: self.state().breaks,
            ..LineErrors::default()
        }
    }

    /// The plug's wiring: CTS from RTS; DSR and CD from DTR.
    pub(crate) fn modem_inputs(&self) -> ModemInputs {
        let o = self.state().outputs;
        ModemInputs {
            cts: o.rts,
            dsr: o.dtr,
            ri: false,
            cd: o.dtr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echoes_and_loops_the_modem_lines() {
        let l = Loopback::default();
        assert_eq!(l.write(b"hi").await.unwrap(), 2);
        let mut buf = [0u8; 8];
        assert_eq!(l.read(&mut buf).await.unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        assert!(l.modem_inputs().cts && l.modem_inputs().dsr);
        l.set_signal(Signal::Rts, false);
        assert!(!l.modem_inputs().cts && l.modem_inputs().cd);
        l.set_signal(Signal::Dtr, false);
        assert!(!l.modem_inputs().dsr && !l.modem_inputs().cd);
        let mut even7 = LineSettings::with_baud(19200);
        even7.parity = crate::line::Parity::Even;
        even7.data_bits = 7;
        assert!(l.set_line(&even7).is_ok());
    }

    #[tokio::test]
    async fn a_full_echo_holds_the_writer() {
        let l = Loopback::default();
        let big = vec![7u8; CAPACITY + 10];
        assert_eq!(l.write(&big).await.unwrap(), CAPACITY);
        let more = tokio::time::timeout(std::time::Duration::from_millis(20), l.write(b"x")).await;
        assert!(more.is_err(), "a full echo took more");
        let mut buf = [0u8; 100];
        l.read(&mut buf).await.unwrap();
        assert_eq!(l.write(b"x").await.unwrap(), 1);
    }
}
