//! The RFC 2217 client's writer: the reader's answers first, then device
//! data with IAC doubled, and NOTIFY-MODEMSTATE / NOTIFY-LINESTATE when
//! the device's modem inputs change or it counts line errors.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::Shared;
use super::outbox::Outbox;
use crate::hub::ClientHandle;
use crate::modem::{LineErrors, ModemInputs};
use crate::proto::telnet::escape_into;
use crate::proto::telnet::rfc2217::{Command, LineState, Message, ModemState};

/// NOTIFY-MODEMSTATE's byte for `now`, with delta bits against `before`.
pub(super) fn modem_state(now: ModemInputs, before: Option<ModemInputs>) -> ModemState {
    let mut b = 0u8;
    for (on, bit) in [
        (now.cts, ModemState::CTS),
        (now.dsr, ModemState::DSR),
        (now.ri, ModemState::RI),
        (now.cd, ModemState::CD),
    ] {
        if on {
            b |= bit;
        }
    }
    if let Some(was) = before {
        for (changed, bit) in [
            (now.cts != was.cts, ModemState::DELTA_CTS),
            (now.dsr != was.dsr, ModemState::DELTA_DSR),
            (was.ri && !now.ri, ModemState::TRAILING_EDGE_RI),
            (now.cd != was.cd, ModemState::DELTA_CD),
        ] {
            if changed {
                b |= bit;
            }
        }
    }
    ModemState(b)
}

/// NOTIFY-LINESTATE's bits for the errors counted since `before`.
fn line_state(now: LineErrors, before: LineErrors) -> u8 {
    let mut b = 0u8;
    for (more, bit) in [
        (now.breaks != before.breaks, LineState::BREAK_DETECT),
        (now.framing != before.framing, LineState::FRAMING_ERROR),
        (now.parity != before.parity, LineState::PARITY_ERROR),
        (now.overrun != before.overrun, LineState::OVERRUN_ERROR),
    ] {
        if more {
            b |= bit;
        }
    }
    b
}

/// Sends the reader's answers, device data (IAC doubled) and modem-state
/// notifications to the client, until its queue closes or a write fails.
pub(super) async fn to_client(
    handle: &ClientHandle,
    sink: &mut (impl AsyncWrite + Unpin),
    outbox: &Outbox,
    mut suspended: watch::Receiver<bool>,
    shared: &Shared,
) -> io::Result<()> {
    let mut inputs = handle.hub().settings.watch_inputs();
    let mut notified = *inputs.borrow_and_update();
    let mut errors = handle.hub().settings.watch_line_errors();
    let mut counted = *errors.borrow_and_update();
    let mut errors_open = true;
    let mut out = BytesMut::new();
    let (mut inputs_open, mut suspend_open) = (true, true);
    loop {
        // Answers first. Waking on `filled` after this look misses nothing:
        // a push in between leaves its notification stored.
        if let Some(answers) = outbox.take() {
            sink.write_all(&answers).await?;
            continue;
        }
        let paused = *suspended.borrow();
        tokio::select! {
            biased;
            () = outbox.filled.notified() => {}
            r = inputs.changed(), if inputs_open => {
                if r.is_err() {
                    // The hub is gone; the client's queue closes next.
                    inputs_open = false;
                    continue;
                }
                let now = *inputs.borrow_and_update();
                let state = modem_state(now, Some(notified));
                notified = now;
                let mask = shared.modem_mask.load(Relaxed);
                if shared.com_port.load(Relaxed) && state.0 & mask != 0 {
                    out.clear();
                    Message::to_client(Command::NotifyModemstate(Some(ModemState(state.0 & mask))))
                        .encode(&mut out);
                    sink.write_all(&out).await?;
                }
            }
            r = suspended.changed(), if suspend_open => suspend_open = r.is_ok(),
            r = errors.changed(), if errors_open => {
                if r.is_err() {
                    errors_open = false;
                    continue;
                }
                let now = *errors.borrow_and_update();
                let state = line_state(now, counted) & shared.line_mask.load(Relaxed);
                counted = now;
                if shared.com_port.load(Relaxed) && state != 0 {
                    out.clear();
                    Message::to_client(Command::NotifyLinestate(Some(LineState(state))))
                        .encode(&mut out);
                    sink.write_all(&out).await?;
                }
            }
            chunk = handle.next_output(), if !paused => match chunk {
                Some(data) => {
                    out.clear();
                    escape_into(&data, &mut out);
                    sink.write_all(&out).await?;
                }
                None => return Ok(()),
            },
        }
    }
}
