//! The RFC 2217 endpoint: Telnet with the COM-PORT-OPTION, so remote
//! programs (pyserial's `rfc2217://`, esptool, Windows virtual COM drivers)
//! set the shared port's line settings and modem lines.
//!
//! A client runs two tasks, as any client (see [`super::client`]):
//! - the *reader* decodes the client's Telnet stream ([`Telnet`]). Data goes
//!   to the device behind the write budget. A COM-PORT request is handled in
//!   order with the data: a new baud rate travels on the device's queue
//!   after the bytes before it, which go out at the old rate. Every request
//!   is answered with the value in force, at once where the device cannot
//!   honour it (a pty has no parity, no modem lines), never left hanging.
//!   Whose changes apply is the endpoint's `control=` policy.
//! - the *writer* sends what the reader queues (negotiation, answers) first,
//!   then device data with IAC doubled, and NOTIFY-MODEMSTATE when the
//!   device's modem inputs change. FLOWCONTROL-SUSPEND pauses the device
//!   data (the client's queue then meets its slow-reader policy).
//!
//! The reader never waits on its own client while it holds write budget:
//! answers go to a bounded [`Outbox`], and a client that sends requests
//! without reading the answers overflows it and meets its slow-reader
//! policy like one that does not read data (issue 18: four such clients
//! used to hold the whole write budget).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::{ClientSource, LINGER, Slot, read_failed, read_queued};
use super::{Access, EndpointOptions};
use crate::hub::{ClientHandle, HubClosed, Signal, SlowReaderPolicy};
use crate::line::{FlowControl, LineSettings, Parity};
use crate::modem::{LineErrors, ModemInputs};
use crate::proto::telnet::line as telnet_line;
use crate::proto::telnet::rfc2217::{
    self, COM_PORT_OPTION, Command, Control, DataSize, LineState, Message, ModemState, Purge,
    StopSize,
};
use crate::proto::telnet::{Event, Telnet, escape_into};
use crate::traffic::Buffers;

/// Bytes of Telnet answers that may wait for a client to read them. An
/// answer is 3 to 10 bytes and a client reads each before it asks again,
/// so a client past this has sent thousands of requests without reading:
/// a slow reader.
const OUTBOX_BYTES: usize = 16 * 1024;
/// Read size for a read-only client, whose data is discarded.
const DISCARD_READ: usize = 4096;
/// How long a request waits for the device before it is answered with the
/// value in force: less than the 3 s pyserial waits, so a client is never
/// left hanging while the device is absent, or busy sending a long queue at
/// a low rate. The change itself stays queued and applies in order.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// RFC 2217's default modem-state mask: every change is reported.
const DEFAULT_MODEM_MASK: u8 = 0xff;

/// What the reader and the writer share.
#[derive(Debug)]
struct Shared {
    /// COM-PORT-OPTION was agreed: modem notifications may go out.
    com_port: AtomicBool,
    /// SET-MODEMSTATE-MASK.
    modem_mask: AtomicU8,
    /// SET-LINESTATE-MASK: RFC 2217's default is 0, no line-state reports.
    line_mask: AtomicU8,
}

/// Telnet answers waiting for the writer, bounded in bytes. The reader
/// appends without waiting (under `block` it waits for room, holding no
/// budget); the writer takes all that is there at once.
#[derive(Debug)]
struct Outbox {
    buf: Mutex<BytesMut>,
    /// Woken when bytes are added.
    filled: Notify,
    /// Woken when the writer takes the bytes.
    emptied: Notify,
}

/// The answers did not fit.
#[derive(Debug)]
struct Full;

impl Outbox {
    fn new() -> Self {
        Self {
            buf: Mutex::new(BytesMut::new()),
            filled: Notify::new(),
            emptied: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BytesMut> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: &[u8]) -> Result<(), Full> {
        let mut buf = self.lock();
        if buf.len() + bytes.len() > OUTBOX_BYTES {
            return Err(Full);
        }
        buf.extend_from_slice(bytes);
        drop(buf);
        self.filled.notify_one();
        Ok(())
    }

    /// Everything queued, if anything is.
    fn take(&self) -> Option<Bytes> {
        let mut buf = self.lock();
        if buf.is_empty() {
            return None;
        }
        let out = buf.split().freeze();
        drop(buf);
        self.emptied.notify_one();
        Some(out)
    }
}

/// Runs one RFC 2217 client until it leaves.
pub async fn run<S, W>(
    handle: ClientHandle,
    source: S,
    mut sink: W,
    options: &EndpointOptions,
    port: &str,
    slot: Slot,
    shutdown: CancellationToken,
) where
    S: ClientSource,
    W: AsyncWrite + Unpin,
{
    info!("RFC 2217 client connected");
    let shared = Arc::new(Shared {
        com_port: AtomicBool::new(false),
        modem_mask: AtomicU8::new(DEFAULT_MODEM_MASK),
        line_mask: AtomicU8::new(0),
    });
    let outbox = Arc::new(Outbox::new());
    let (suspend, suspended) = watch::channel(false);
    let mut telnet = Telnet::server();
    let mut hello = BytesMut::new();
    telnet.start(&mut hello);
    let _ = outbox.push(&hello);
    let mut reader = Reader {
        handle: &handle,
        options,
        port,
        telnet,
        outbox: outbox.clone(),
        suspend,
        shared: shared.clone(),
        warned: Warned::default(),
    };
    let mut slot = slot;
    let end = {
        let to_device = reader.run(&source, &shutdown);
        let to_client = to_client(&handle, &mut sink, &outbox, suspended, &shared);
        tokio::pin!(to_device, to_client);
        tokio::select! {
            r = &mut to_device => {
                handle.release_settings();
                if r.is_ok() && slot.half_closed() {
                    let _ = tokio::time::timeout(LINGER, &mut to_client).await;
                }
                r
            }
            out = &mut to_client => {
                handle.close_output();
                if let Err(e) = &out {
                    debug!(error = %e, "writing to client failed; taking in what it sent");
                }
                to_device.await
            }
        }
    };
    let _ = sink.shutdown().await;
    let s = handle.stats();
    let (rx, tx) = (s.to_client.load(Relaxed), s.from_client.load(Relaxed));
    match end {
        Ok(()) => info!(rx, tx, "RFC 2217 client disconnected"),
        Err(why) => info!(reason = %why, rx, tx, "RFC 2217 client disconnected"),
    }
    // The connection is closed (the hub's fan-out holds the socket too,
    // until the client detaches) before its place is free.
    drop((source, sink, handle));
    drop(slot);
}

/// Why a client's input ended, other than by closing.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("kicked")]
    Kicked,
    #[error("shutdown")]
    Shutdown,
    #[error("the port is shutting down")]
    Hub,
    #[error("{0}")]
    Io(io::Error),
}

impl From<HubClosed> for End {
    fn from(_: HubClosed) -> End {
        End::Hub
    }
}

/// Things worth one warning per client, not one per request.
#[derive(Debug, Default)]
struct Warned {
    denied: bool,
    refused: bool,
    signals: bool,
    malformed: bool,
    read_only: bool,
}

struct Reader<'a> {
    handle: &'a ClientHandle,
    options: &'a EndpointOptions,
    port: &'a str,
    telnet: Telnet,
    outbox: Arc<Outbox>,
    suspend: watch::Sender<bool>,
    shared: Arc<Shared>,
    warned: Warned,
}

impl Reader<'_> {
    /// Reads the client until it closes (`Ok`), fails, is kicked or the
    /// port stops. As for raw clients, budget is held before reading, and
    /// what the kernel already holds is taken in on a kick or shutdown.
    async fn run(
        &mut self,
        source: &impl ClientSource,
        shutdown: &CancellationToken,
    ) -> Result<(), End> {
        let kicked = self.handle.kicked().clone();
        loop {
            tokio::select! {
                // A client that floods requests is always readable: look at
                // the kick first, or it could be read on long after it.
                biased;
                () = shutdown.cancelled() => {
                    self.take(read_queued(source), None).await?;
                    return Err(End::Shutdown);
                }
                () = kicked.cancelled() => {
                    self.take(read_queued(source), None).await?;
                    return Err(End::Kicked);
                }
                r = source.readable() => r.map_err(|e| End::Io(read_failed(self.handle, source, e)))?,
            }
            let permit = match self.options.access {
                Access::ReadWrite => Some(self.handle.reserve().await?),
                Access::ReadOnly => None,
            };
            let size = permit.as_ref().map_or(DISCARD_READ, |p| p.num_permits());
            let mut buf = vec![0u8; size];
            match source.try_read(&mut buf) {
                Ok(0) => {
                    let mut events = Vec::new();
                    self.telnet.finish(&mut events);
                    self.handle_events(events, None).await?;
                    return Ok(());
                }
                Ok(n) => {
                    buf.truncate(n);
                    self.take(buf, permit).await?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(End::Io(read_failed(self.handle, source, e))),
            }
        }
    }

    /// Decodes bytes read from the client and acts on them in order.
    async fn take(
        &mut self,
        raw: Vec<u8>,
        mut permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), End> {
        let mut events = Vec::new();
        let mut replies = BytesMut::new();
        self.telnet.feed(&raw, &mut events, &mut replies);
        if !replies.is_empty() && self.outbox.push(&replies).is_err() {
            // Never wait on the client while holding budget.
            permit = None;
            self.send(replies).await?;
        }
        self.handle_events(events, permit).await
    }

    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        mut permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), End> {
        for event in events {
            match event {
                Event::Data(data) => self.data(data, &mut permit).await?,
                Event::ComPort(msg) if msg.direction == rfc2217::Direction::ToServer => {
                    // Budget is not held while a request waits for the
                    // device: other clients' bytes go first.
                    permit = None;
                    self.request(msg.command).await?;
                }
                Event::ComPort(msg) => {
                    debug!(?msg, "ignored a server's COM-PORT message from a client")
                }
                Event::OptionChanged(c) => {
                    debug!(?c, "telnet option changed");
                    if c.option == COM_PORT_OPTION
                        && c.enabled
                        && !self.shared.com_port.swap(true, Relaxed)
                    {
                        // pyserial reads modem lines from notifications
                        // only: tell it the state at once (holding no
                        // budget: `block` may wait for the client).
                        permit = None;
                        let inputs = *self.handle.hub().settings.watch_inputs().borrow();
                        self.answer(Command::NotifyModemstate(Some(modem_state(inputs, None))))
                            .await?;
                    }
                }
                Event::OptionRefused { side, option } => {
                    debug!(?side, option, "refused a telnet option")
                }
                Event::Command(c) => debug!(?c, "telnet command ignored"),
                Event::Subnegotiation { option, .. } => {
                    debug!(option, "subnegotiation of an unknown option ignored")
                }
                Event::Malformed(m) => {
                    if !std::mem::replace(&mut self.warned.malformed, true) {
                        warn!(problem = ?m, "malformed telnet input skipped");
                    }
                }
            }
        }
        Ok(())
    }

    async fn data(
        &mut self,
        data: Bytes,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), End> {
        if self.options.access == Access::ReadOnly {
            super::client::discard(self.handle, data.len(), &mut self.warned.read_only);
            return Ok(());
        }
        // Decoding only shrinks data, so the budget held for the read covers
        // it; after a request dropped it, take budget anew.
        let held = match permit.as_mut().and_then(|p| p.split(data.len())) {
            Some(p) => p,
            None => self.handle.reserve_exact(data.len()).await?,
        };
        self.handle.submit(data, held).await?;
        Ok(())
    }

    /// Queues answers for the client. Call it holding no write budget: under
    /// the `block` policy it waits for the client to read.
    async fn send(&self, bytes: BytesMut) -> Result<(), End> {
        if bytes.is_empty() || self.outbox.push(&bytes).is_ok() {
            return Ok(());
        }
        let kicked = self.handle.kicked();
        if kicked.is_cancelled() {
            // Leaving: nobody will read the answers.
            return Ok(());
        }
        if self.handle.policy() != SlowReaderPolicy::Block {
            // `drop` counts the answers lost, `disconnect` kicks the client.
            self.handle.output_overflow(bytes.len());
            return Ok(());
        }
        loop {
            let emptied = self.outbox.emptied.notified();
            if self.outbox.push(&bytes).is_ok() {
                return Ok(());
            }
            tokio::select! {
                () = emptied => {}
                () = kicked.cancelled() => return Ok(()),
            }
        }
    }

    async fn answer(&self, command: Command) -> Result<(), End> {
        let mut out = BytesMut::new();
        Message::to_client(command).encode(&mut out);
        self.send(out).await
    }

    fn line(&self) -> LineSettings {
        self.handle.hub().line().unwrap_or_default()
    }

    /// Handles one COM-PORT request and answers it.
    async fn request(&mut self, command: Command) -> Result<(), End> {
        let line = self.line();
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
                Command::SetBaudrate(self.change_line(new, "baud rate").await?.baud)
            }
            Command::SetDatasize(size) => {
                let bits = match size {
                    DataSize::Five => Some(5),
                    DataSize::Six => Some(6),
                    DataSize::Seven => Some(7),
                    DataSize::Eight => Some(8),
                    DataSize::Request | DataSize::Unknown(_) => None,
                };
                let in_force = match bits {
                    Some(data_bits) => {
                        let new = LineSettings { data_bits, ..line };
                        self.change_line(new, "data size").await?.data_bits
                    }
                    None => line.data_bits,
                };
                Command::SetDatasize(DataSize::from(in_force))
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
                let in_force = match parity {
                    Some(parity) => {
                        let new = LineSettings { parity, ..line };
                        self.change_line(new, "parity").await?.parity
                    }
                    None => line.parity,
                };
                Command::SetParity(telnet_line::parity(in_force))
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
                let in_force = match bits {
                    Some(stop_bits) => {
                        let new = LineSettings { stop_bits, ..line };
                        self.change_line(new, "stop size").await?.stop_bits
                    }
                    None => line.stop_bits,
                };
                Command::SetStopsize(telnet_line::stop_size(in_force))
            }
            Command::SetControl(c) => Command::SetControl(self.control(c, line).await?),
            Command::NotifyLinestate(_) => Command::NotifyLinestate(Some(LineState(0))),
            Command::NotifyModemstate(_) => {
                let inputs = *self.handle.hub().settings.watch_inputs().borrow();
                Command::NotifyModemstate(Some(modem_state(inputs, None)))
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
    async fn control(&mut self, c: Control, line: LineSettings) -> Result<Control, End> {
        let outputs = self.handle.hub().settings.outputs();
        let flow_code = telnet_line::flow;
        let inbound_code = |f: FlowControl| match f {
            FlowControl::None => Control::FlowInboundNone,
            FlowControl::Xonxoff => Control::FlowInboundXonXoff,
            FlowControl::Rtscts => Control::FlowInboundHardware,
        };
        let flow = |f| LineSettings {
            flow_control: f,
            ..line
        };
        Ok(match c {
            Control::RequestFlow => flow_code(line.flow_control),
            Control::FlowNone | Control::FlowInboundNone => flow_code(
                self.change_line(flow(FlowControl::None), "flow control")
                    .await?
                    .flow_control,
            ),
            Control::FlowXonXoff | Control::FlowInboundXonXoff => flow_code(
                self.change_line(flow(FlowControl::Xonxoff), "flow control")
                    .await?
                    .flow_control,
            ),
            Control::FlowHardware | Control::FlowInboundHardware => flow_code(
                self.change_line(flow(FlowControl::Rtscts), "flow control")
                    .await?
                    .flow_control,
            ),
            Control::RequestFlowInbound => inbound_code(line.flow_control),
            Control::RequestBreak => on_off(outputs.brk, Control::BreakOn, Control::BreakOff),
            Control::RequestDtr => on_off(outputs.dtr, Control::DtrOn, Control::DtrOff),
            Control::RequestRts => on_off(outputs.rts, Control::RtsOn, Control::RtsOff),
            Control::BreakOn | Control::BreakOff => {
                let on = self
                    .signal(Signal::Break, c == Control::BreakOn, outputs.brk)
                    .await?;
                on_off(on, Control::BreakOn, Control::BreakOff)
            }
            Control::DtrOn | Control::DtrOff => {
                let on = self
                    .signal(Signal::Dtr, c == Control::DtrOn, outputs.dtr)
                    .await?;
                on_off(on, Control::DtrOn, Control::DtrOff)
            }
            Control::RtsOn | Control::RtsOff => {
                let on = self
                    .signal(Signal::Rts, c == Control::RtsOn, outputs.rts)
                    .await?;
                on_off(on, Control::RtsOn, Control::RtsOff)
            }
            Control::FlowDcd | Control::FlowInboundDtr | Control::FlowDsr | Control::Unknown(_) => {
                self.refused(format!("flow control {c:?} is not supported"));
                flow_code(line.flow_control)
            }
        })
    }

    /// Asks for `new` line settings under the endpoint's policy; returns the
    /// settings in force afterwards.
    async fn change_line(&mut self, new: LineSettings, what: &str) -> Result<LineSettings, End> {
        let line = self.line();
        if new == line {
            return Ok(line);
        }
        if let Err(e) = new.validate() {
            self.refused(format!("{what}: {e}"));
            return Ok(line);
        }
        if !self.may_change(what) {
            return Ok(line);
        }
        let asked = async {
            let told = self.handle.change_line(new).await?;
            // Dropped unanswered only if the port stops.
            told.await.map_err(|_| End::Hub)
        };
        match tokio::time::timeout(ANSWER_WAIT, asked).await {
            Ok(answer) => {
                let answer = answer?;
                if let Some(why) = answer.refused {
                    self.refused(format!("{what}: the device refused {new}: {why}"));
                }
                Ok(answer.in_force)
            }
            Err(_) => {
                self.refused(format!(
                    "{what}: the device has not applied {new} within {ANSWER_WAIT:?} \
                     (it is absent, or still sending what was queued before); \
                     the change stays queued"
                ));
                Ok(line)
            }
        }
    }

    /// Sets a modem output (or break) under the endpoint's policy; returns
    /// the state in force afterwards.
    async fn signal(&mut self, signal: Signal, on: bool, now: bool) -> Result<bool, End> {
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
            return Ok(now);
        }
        let asked = async {
            let told = self.handle.change_signal(signal, on).await?;
            told.await.map_err(|_| End::Hub)
        };
        let Ok(answer) = tokio::time::timeout(ANSWER_WAIT, asked).await else {
            self.refused(format!(
                "{signal}: the device has not applied it within {ANSWER_WAIT:?}; it stays queued"
            ));
            return Ok(now);
        };
        let answer = answer?;
        if let Some(why) = answer.refused
            && !std::mem::replace(&mut self.warned.signals, true)
        {
            warn!(%signal, "{why}; the state is kept and answered, but no wire changes");
        }
        Ok(answer.on)
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

/// NOTIFY-MODEMSTATE's byte for `now`, with delta bits against `before`.
fn modem_state(now: ModemInputs, before: Option<ModemInputs>) -> ModemState {
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
async fn to_client(
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
