//! SET-CONTROL requests to the remote port: DTR, RTS and break, and flow
//! control with the line settings.
//!
//! RFC 2217 has the server answer every request, but some servers leave
//! these unanswered on purpose: esptool's `esp_rfc2217_server` takes DTR and
//! RTS as the cue for its own reset sequences and answers neither, and
//! sredird-style servers answer none, or not with the value asked. pyserial
//! reaches them with `?ign_set_control`. Waiting on such a server would hold
//! the device writer, and every byte, line change and request queued behind
//! the request, for the whole answer time, and pyserial's clients of
//! serialhub would time out. So an answer is awaited only briefly
//! ([`CONTROL_ANSWER_WAIT`]), and only while the server has answered every
//! one: after its first unanswered request (logged once), and with
//! `?ign_set_control` from the start, requests are sent and not awaited.
//! They still reach the server in order with the data (one TCP stream), and
//! the client is answered with the state it asked for.
//!
//! Every request is sent, whatever state serialhub believes in force: the
//! remote's lines may not be what serialhub last set (issue 19).

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tracing::{debug, warn};

use super::{Protocol, Remote};
use crate::device::io::connection_lost;
use crate::hub::Signal;
use crate::modem::ModemOutputs;
use crate::proto::telnet::rfc2217::{Command, Control};

/// How long a SET-CONTROL answer is awaited before the server is taken for
/// one that does not answer them. A server answers in a round trip; this
/// keeps the one request that finds a silent server out, and so the
/// client's DTR or RTS call behind it, well inside the 0.5 s an esptool
/// reset step allows.
pub(crate) const CONTROL_ANSWER_WAIT: Duration = Duration::from_millis(250);

impl Remote {
    /// Sets a modem output (or break) on the remote port.
    pub(crate) async fn set_signal(&self, signal: Signal, on: bool) -> io::Result<()> {
        if self.protocol == Protocol::Raw {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a raw TCP device server has no modem lines",
            ));
        }
        let c = match (signal, on) {
            (Signal::Dtr, true) => Control::DtrOn,
            (Signal::Dtr, false) => Control::DtrOff,
            (Signal::Rts, true) => Control::RtsOn,
            (Signal::Rts, false) => Control::RtsOff,
            (Signal::Break, true) => Control::BreakOn,
            (Signal::Break, false) => Control::BreakOff,
        };
        self.set_control(c).await
    }

    /// Sends SET-CONTROL `c`; waits for its answer only while the server
    /// answers them. Fails if the server answers another value.
    pub(super) async fn set_control(&self, c: Control) -> io::Result<()> {
        let request = Command::SetControl(c);
        if self.options.ign_set_control || self.control_unanswered.load(Relaxed) {
            return self.tell(request).await;
        }
        match self.ask_reading(request.clone(), CONTROL_ANSWER_WAIT).await {
            Ok(answer) if answer == request => Ok(()),
            Ok(answer) => Err(io::Error::other(format!(
                "the remote port answered {answer:?} to {request:?}"
            ))),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if !self.control_unanswered.swap(true, Relaxed) {
                    warn!(remote = %self.addr, request = ?c,
                        "the remote port did not answer SET-CONTROL within \
                        {CONTROL_ANSWER_WAIT:?}; DTR, RTS, break and flow-control requests \
                        are sent from now on without waiting for answers (as with \
                        rfc2217://{}?ign_set_control)", self.addr);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sets DTR and RTS to `lines` (at a reconnect: as serialhub's clients
    /// set them). A server that refuses is logged, not dropped.
    pub(super) async fn restore_lines(&self, lines: ModemOutputs) -> io::Result<()> {
        for (signal, on) in [(Signal::Dtr, lines.dtr), (Signal::Rts, lines.rts)] {
            match self.set_signal(signal, on).await {
                Ok(()) => debug!(%signal, on, "modem output set again on the remote port"),
                Err(e) if connection_lost(&e) => return Err(e),
                Err(e) => warn!(%signal, on, error = %e,
                    "the remote port did not take the modem output its clients set"),
            }
        }
        Ok(())
    }
}
