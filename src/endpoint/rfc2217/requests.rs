//! COM-PORT requests from one RFC 2217 client: each is checked against the
//! endpoint's policy, queued for the device in order with the data, and
//! answered.
//!
//! A request the device must apply is answered once it has, or
//! [`ANSWER_WAIT`] after it came, whichever is first, and the reader goes
//! on meanwhile (issue 19). So requests queued behind a slow line are all
//! answered within 2 s of their arrival, never one 2 s wait after another,
//! and PURGE-DATA, which needs no device, is answered at once. A change not
//! applied in time stays queued and is answered with the value asked for,
//! which is the value the port will have when the client's earlier bytes
//! are out; a change the device refuses is answered with the value in
//! force.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use tracing::{Instrument, debug, info, warn};

use super::{ANSWER_WAIT, Access, End, Reader};
use crate::hub::Signal;
use crate::line::{FlowControl, LineSettings, Parity};
use crate::modem::ModemOutputs;
use crate::proto::telnet::line as telnet_line;
use crate::proto::telnet::rfc2217::{self, Command, Control, DataSize, LineState, Purge, StopSize};
use crate::traffic::Buffers;

/// Answers a client may have waiting for the device. pyserial has at most
/// four (an open's line settings); past this the reader waits for the
/// oldest, holding no write budget.
pub(super) const MAX_PENDING: usize = 64;

/// The client's requests still on their way to the device: later requests
/// and queries build on what was asked, not on what is in force, so a data
/// size asked right after a baud rate does not undo it, and a query right
/// after a change reads it back.
#[derive(Debug, Default)]
pub(super) struct Asked {
    line: Option<LineSettings>,
    pending: Arc<AtomicUsize>,
    outputs: Option<ModemOutputs>,
    signals_pending: Arc<AtomicUsize>,
}

impl Reader<'_> {
    fn line(&self) -> LineSettings {
        self.handle.hub().line().unwrap_or_default()
    }

    /// The line as this client's queued changes will leave it.
    fn asked_line(&self) -> LineSettings {
        match self.asked.line {
            Some(line) if self.asked.pending.load(Relaxed) > 0 => line,
            _ => self.line(),
        }
    }

    /// The modem outputs as this client's queued changes will leave them.
    fn asked_outputs(&self) -> ModemOutputs {
        match self.asked.outputs {
            Some(o) if self.asked.signals_pending.load(Relaxed) > 0 => o,
            _ => self.handle.hub().settings.outputs(),
        }
    }

    /// Handles one COM-PORT request and answers it, now or later.
    pub(super) async fn request(&mut self, command: Command) -> Result<(), End> {
        let line = self.asked_line();
        let answer = match command {
            Command::Signature(s) if s.is_empty() => Command::Signature(Bytes::from(format!(
                "serialhub {} port {}",
                env!("CARGO_PKG_VERSION"),
                self.port
            ))),
            Command::Signature(s) => {
                info!(signature = %String::from_utf8_lossy(&s), "client signature");
                return Ok(());
            }
            Command::SetBaudrate(0) => Command::SetBaudrate(line.baud),
            Command::SetBaudrate(baud) => {
                let new = LineSettings { baud, ..line };
                return self
                    .change_line(new, "baud rate", |l| Command::SetBaudrate(l.baud))
                    .await;
            }
            Command::SetDatasize(size) => {
                let bits = match size {
                    DataSize::Five => Some(5),
                    DataSize::Six => Some(6),
                    DataSize::Seven => Some(7),
                    DataSize::Eight => Some(8),
                    DataSize::Request | DataSize::Unknown(_) => None,
                };
                let answer = |l: &LineSettings| Command::SetDatasize(DataSize::from(l.data_bits));
                match bits {
                    Some(data_bits) => {
                        let new = LineSettings { data_bits, ..line };
                        return self.change_line(new, "data size", answer).await;
                    }
                    None => answer(&line),
                }
            }
            Command::SetParity(p) => {
                let parity = match p {
                    rfc2217::Parity::None => Some(Parity::None),
                    rfc2217::Parity::Odd => Some(Parity::Odd),
                    rfc2217::Parity::Even => Some(Parity::Even),
                    rfc2217::Parity::Mark
                    | rfc2217::Parity::Space
                    | rfc2217::Parity::Unknown(_) => {
                        self.refused(format!("parity {p:?} is not supported"));
                        None
                    }
                    rfc2217::Parity::Request => None,
                };
                let answer = |l: &LineSettings| Command::SetParity(telnet_line::parity(l.parity));
                match parity {
                    Some(parity) => {
                        let new = LineSettings { parity, ..line };
                        return self.change_line(new, "parity", answer).await;
                    }
                    None => answer(&line),
                }
            }
            Command::SetStopsize(s) => {
                let bits = match s {
                    StopSize::One => Some(1),
                    StopSize::Two => Some(2),
                    StopSize::OnePointFive | StopSize::Unknown(_) => {
                        self.refused(format!("stop size {s:?} is not supported"));
                        None
                    }
                    StopSize::Request => None,
                };
                let answer =
                    |l: &LineSettings| Command::SetStopsize(telnet_line::stop_size(l.stop_bits));
                match bits {
                    Some(stop_bits) => {
                        let new = LineSettings { stop_bits, ..line };
                        return self.change_line(new, "stop size", answer).await;
                    }
                    None => answer(&line),
                }
            }
            Command::SetControl(c) => return self.control(c, line).await,
            Command::NotifyLinestate(_) => Command::NotifyLinestate(Some(LineState(0))),
            Command::NotifyModemstate(_) => {
                let inputs = *self.handle.hub().settings.watch_inputs().borrow();
                Command::NotifyModemstate(Some(super::writer::modem_state(inputs, None)))
            }
            Command::SetLinestateMask(m) => {
                self.shared.line_mask.store(m.0, Relaxed);
                Command::SetLinestateMask(m)
            }
            Command::SetModemstateMask(m) => {
                self.shared.modem_mask.store(m.0, Relaxed);
                Command::SetModemstateMask(m)
            }
            Command::PurgeData(p) => {
                // The receive buffer is what the device sent and this
                // client has not got yet: its own queue. The transmit
                // buffer holds other clients' bytes too, so it is kept.
                let mut discarded = 0;
                if matches!(p, Purge::Receive | Purge::Both) {
                    discarded = self.handle.purge_output();
                    debug!(discarded, "purged the client's receive buffer");
                }
                if let Some(buffers) = purged(p) {
                    self.handle.record_purge(buffers, discarded);
                }
                Command::PurgeData(p)
            }
            Command::FlowControlSuspend => {
                self.suspend.send_replace(true);
                return Ok(());
            }
            Command::FlowControlResume => {
                self.suspend.send_replace(false);
                return Ok(());
            }
            Command::Malformed { code, .. } | Command::Unknown { code, .. } => {
                if !std::mem::replace(&mut self.warned.malformed, true) {
                    warn!(code, "malformed or unknown COM-PORT request ignored");
                }
                return Ok(());
            }
        };
        self.answer(answer).await
    }

    /// SET-CONTROL: flow control, break, DTR, RTS, and their queries.
    async fn control(&mut self, c: Control, line: LineSettings) -> Result<(), End> {
        let outputs = self.asked_outputs();
        let flow = |f| LineSettings {
            flow_control: f,
            ..line
        };
        let outbound = |l: &LineSettings| Command::SetControl(telnet_line::flow(l.flow_control));
        let answer = match c {
            Control::RequestFlow => telnet_line::flow(line.flow_control),
            Control::FlowNone | Control::FlowInboundNone => {
                let new = flow(FlowControl::None);
                return self.change_line(new, "flow control", outbound).await;
            }
            Control::FlowXonXoff | Control::FlowInboundXonXoff => {
                let new = flow(FlowControl::Xonxoff);
                return self.change_line(new, "flow control", outbound).await;
            }
            Control::FlowHardware | Control::FlowInboundHardware => {
                let new = flow(FlowControl::Rtscts);
                return self.change_line(new, "flow control", outbound).await;
            }
            Control::RequestFlowInbound => match line.flow_control {
                FlowControl::None => Control::FlowInboundNone,
                FlowControl::Xonxoff => Control::FlowInboundXonXoff,
                FlowControl::Rtscts => Control::FlowInboundHardware,
            },
            Control::RequestBreak => on_off(outputs.brk, Control::BreakOn, Control::BreakOff),
            Control::RequestDtr => on_off(outputs.dtr, Control::DtrOn, Control::DtrOff),
            Control::RequestRts => on_off(outputs.rts, Control::RtsOn, Control::RtsOff),
            Control::BreakOn | Control::BreakOff => {
                let pair = (Control::BreakOn, Control::BreakOff);
                return self
                    .signal(Signal::Break, c == pair.0, outputs.brk, pair)
                    .await;
            }
            Control::DtrOn | Control::DtrOff => {
                let pair = (Control::DtrOn, Control::DtrOff);
                return self
                    .signal(Signal::Dtr, c == pair.0, outputs.dtr, pair)
                    .await;
            }
            Control::RtsOn | Control::RtsOff => {
                let pair = (Control::RtsOn, Control::RtsOff);
                return self
                    .signal(Signal::Rts, c == pair.0, outputs.rts, pair)
                    .await;
            }
            Control::FlowDcd | Control::FlowInboundDtr | Control::FlowDsr | Control::Unknown(_) => {
                self.refused(format!("flow control {c:?} is not supported"));
                telnet_line::flow(line.flow_control)
            }
        };
        self.answer(Command::SetControl(answer)).await
    }

    /// Asks for `new` line settings under the endpoint's policy, and
    /// answers with `answer` of the settings that result.
    async fn change_line(
        &mut self,
        new: LineSettings,
        what: &'static str,
        answer: fn(&LineSettings) -> Command,
    ) -> Result<(), End> {
        let line = self.asked_line();
        if new == line {
            return self.answer(answer(&line)).await;
        }
        if let Err(e) = new.validate() {
            self.refused(format!("{what}: {e}"));
            return self.answer(answer(&line)).await;
        }
        if !self.may_change(what) {
            let in_force = self.line();
            return self.answer(answer(&in_force)).await;
        }
        let told = self.handle.change_line(new).await?;
        self.asked.line = Some(new);
        let pending = self.asked.pending.clone();
        pending.fetch_add(1, Relaxed);
        self.later(async move {
            let outcome = tokio::time::timeout(ANSWER_WAIT, told).await;
            pending.fetch_sub(1, Relaxed);
            match outcome {
                Ok(Ok(told)) => {
                    if let Some(why) = told.refused {
                        warn!("{what}: the device refused {new}: {why}; answered with the value in force");
                    }
                    answer(&told.in_force)
                }
                // The port is stopping: the change would have applied.
                Ok(Err(_)) => answer(&new),
                Err(_) => {
                    debug!("{what}: {new} not applied within {ANSWER_WAIT:?} (the device is \
                        absent, or still sending what was queued before); it stays queued, \
                        and is answered as asked");
                    answer(&new)
                }
            }
        })
        .await
    }

    /// Sets a modem output (or break) under the endpoint's policy, and
    /// answers with the state that results (`pair`: the on and off codes).
    async fn signal(
        &mut self,
        signal: Signal,
        on: bool,
        now: bool,
        pair: (Control, Control),
    ) -> Result<(), End> {
        // The state serialhub holds may not be the wire's (a remote port
        // whose lines were off at connect): a request for it is sent too
        // when the client could change it, but claims nothing (issue 19).
        let allowed = match on == now {
            true => {
                self.options.access == Access::ReadWrite
                    && self.handle.may_change_settings(self.options.control)
            }
            false => self.may_change(&signal.to_string()),
        };
        if !allowed {
            return self
                .answer(Command::SetControl(on_off(now, pair.0, pair.1)))
                .await;
        }
        let told = self.handle.change_signal(signal, on).await?;
        let mut asked = self.asked_outputs();
        match signal {
            Signal::Dtr => asked.dtr = on,
            Signal::Rts => asked.rts = on,
            Signal::Break => asked.brk = on,
        }
        self.asked.outputs = Some(asked);
        let pending = self.asked.signals_pending.clone();
        if on == now {
            // Sent for the wire's sake; the answer is known. (pyserial sets
            // DTR and RTS one after the other on every open, waiting for
            // each answer: behind a slow line that would be 2 s each.)
            return self
                .answer(Command::SetControl(on_off(on, pair.0, pair.1)))
                .await;
        }
        pending.fetch_add(1, Relaxed);
        self.later(async move {
            let outcome = tokio::time::timeout(ANSWER_WAIT, told).await;
            pending.fetch_sub(1, Relaxed);
            let state = match outcome {
                Ok(Ok(told)) => {
                    if let Some(why) = told.refused {
                        // The device writer warns once that it has no
                        // modem lines; the state is still kept.
                        debug!(%signal, "{why}");
                    }
                    told.on
                }
                Ok(Err(_)) => on,
                Err(_) => {
                    debug!(%signal, "not applied within {ANSWER_WAIT:?}; it stays queued, \
                        and is answered as asked");
                    on
                }
            };
            Command::SetControl(on_off(state, pair.0, pair.1))
        })
        .await
    }

    /// Answers with what `answer` resolves to, once it does, while the
    /// reader goes on. At most [`MAX_PENDING`] wait; past that, the oldest
    /// is waited for first.
    async fn later(
        &mut self,
        answer: impl Future<Output = Command> + Send + 'static,
    ) -> Result<(), End> {
        while self.answers.len() >= MAX_PENDING {
            self.answer_one().await?;
        }
        self.answers.spawn(answer.in_current_span());
        Ok(())
    }

    /// Sends the next answer that is ready, waiting for one.
    pub(super) async fn answer_one(&mut self) -> Result<(), End> {
        match self.answers.join_next().await {
            Some(Ok(command)) => self.answer(command).await,
            // A task that panicked or was cancelled has no answer to give.
            Some(Err(_)) | None => Ok(()),
        }
    }

    /// Whether this client may change settings now; logs once if not.
    fn may_change(&mut self, what: &str) -> bool {
        let denied = match self.options.access {
            Access::ReadOnly => Some("the endpoint is read-only".to_owned()),
            Access::ReadWrite => self
                .handle
                .claim_settings(self.options.control)
                .err()
                .map(|d| d.to_string()),
        };
        match denied {
            None => true,
            Some(why) => {
                if !std::mem::replace(&mut self.warned.denied, true) {
                    warn!(
                        setting = what,
                        "settings change refused: {why}; answered with the values in force"
                    );
                } else {
                    debug!(setting = what, "settings change refused: {why}");
                }
                false
            }
        }
    }

    fn refused(&mut self, why: String) {
        if !std::mem::replace(&mut self.warned.refused, true) {
            warn!("{why}; answered with the value in force");
        } else {
            debug!("{why}; answered with the value in force");
        }
    }
}

/// The traffic log's name for what a PURGE-DATA request names; `None` for
/// a value RFC 2217 does not define, which purges nothing.
fn purged(p: Purge) -> Option<Buffers> {
    match p {
        Purge::Receive => Some(Buffers::Rx),
        Purge::Transmit => Some(Buffers::Tx),
        Purge::Both => Some(Buffers::Both),
        Purge::Unknown(_) => None,
    }
}

fn on_off(on: bool, yes: Control, no: Control) -> Control {
    if on { yes } else { no }
}
