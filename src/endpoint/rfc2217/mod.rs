//! The RFC 2217 endpoint: Telnet with the COM-PORT-OPTION, so remote
//! programs (pyserial's `rfc2217://`, esptool, Windows virtual COM drivers)
//! set the shared port's line settings and modem lines.
//!
//! A client runs two tasks, as any client (see [`super::client`]):
//! - the *reader* decodes the client's Telnet stream ([`Telnet`]). Data goes
//!   to the device behind the write budget. A COM-PORT request is handled in
//!   order with the data: a new baud rate travels on the device's queue
//!   after the bytes before it, which go out at the old rate. Every request
//!   is answered within [`ANSWER_WAIT`], while the reader goes on (see
//!   [`requests`]), never left hanging. Whose changes apply is the
//!   endpoint's `control=` policy.
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

mod outbox;
mod requests;
mod writer;

use super::client::{LINGER, output_ended};
use super::request::{Requests, sleep_until};
use super::slot::{Slot, chat};
use super::source::{ClientSource, read_failed, read_queued};
use super::{Access, EndpointOptions};
use crate::hub::{ClientHandle, HubClosed, SlowReaderPolicy};
use crate::proto::telnet::rfc2217::{self, COM_PORT_OPTION, Command, Message};
use crate::proto::telnet::{Event, Telnet};
use outbox::Outbox;

/// Read size for a read-only client, whose data is discarded.
const DISCARD_READ: usize = 4096;
/// How long a request waits for the device before it is answered with the
/// value asked for: less than the 3 s pyserial waits, so a client is never
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

/// Runs one RFC 2217 client until it leaves.
pub(crate) async fn run<S, W>(
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
    chat!(slot.loud(), "RFC 2217 client connected");
    handle.see_all(options.sees_all());
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
        answers: JoinSet::new(),
        asked: requests::Asked::default(),
        transactions: match (handle.txn_config(), options.access) {
            (Some(t), Access::ReadWrite) => Some((
                Requests::new(&handle, options, t.frame_gap),
                t.reply_timeout,
            )),
            _ => None,
        },
    };
    let mut slot = slot;
    let end = {
        let to_device = reader.run(&source, &shutdown);
        let to_client = writer::to_client(&handle, &mut sink, &outbox, suspended, &shared);
        tokio::pin!(to_device, to_client);
        tokio::select! {
            r = &mut to_device => {
                handle.release_settings();
                if r.is_ok() && slot.half_closed() {
                    let _ = tokio::time::timeout(LINGER, &mut to_client).await;
                }
                r
            }
            out = &mut to_client => output_ended(&handle, &out, to_device).await,
        }
    };
    let _ = sink.shutdown().await;
    let s = handle.stats();
    let (rx, tx) = (s.to_client.load(Relaxed), s.from_client.load(Relaxed));
    match end {
        Ok(()) => chat!(slot.loud(), rx, tx, "RFC 2217 client disconnected"),
        Err(why) => chat!(slot.loud(), reason = %why, rx, tx, "RFC 2217 client disconnected"),
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
    /// Answers waiting for the device (see [`requests`]).
    answers: JoinSet<Command>,
    asked: requests::Asked,
    /// Under `--writers transaction`: the client's data, cut into requests
    /// by the endpoint's framing, with how long a partial line is held.
    transactions: Option<(Requests<'a>, Duration)>,
}

impl Reader<'_> {
    /// Reads the client until it closes (`Ok`), fails, is kicked or the
    /// port stops. As for raw clients, budget is held before reading (in
    /// transaction mode, the client's request pipeline holds it back
    /// instead), and what the kernel already holds is taken in on a kick or
    /// shutdown.
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
                    self.finish_requests().await?;
                    return Err(End::Shutdown);
                }
                () = kicked.cancelled() => {
                    self.take(read_queued(source), None).await?;
                    self.finish_requests().await?;
                    return Err(End::Kicked);
                }
                () = sleep_until(self.request_deadline()) => {
                    if let Some((r, hold)) = &mut self.transactions {
                        r.silence(*hold).await.map_err(|_| End::Hub)?;
                    }
                    continue;
                }
                r = self.answers.join_next(), if !self.answers.is_empty() => {
                    if let Some(Ok(command)) = r {
                        self.answer(command).await?;
                    }
                    continue;
                }
                r = source.readable() => r.map_err(|e| End::Io(read_failed(self.handle, source, e)))?,
            }
            let permit = match self.options.access {
                Access::ReadWrite if self.transactions.is_none() => {
                    Some(self.handle.reserve().await?)
                }
                _ => None,
            };
            let size = permit.as_ref().map_or(DISCARD_READ, |p| p.num_permits());
            let mut buf = vec![0u8; size];
            match source.try_read(&mut buf) {
                Ok(0) => {
                    let mut events = Vec::new();
                    self.telnet.finish(&mut events);
                    self.handle_events(events, None).await?;
                    self.finish_requests().await?;
                    // Its last requests are answered (within ANSWER_WAIT).
                    while !self.answers.is_empty() {
                        self.answer_one().await?;
                    }
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
                        self.answer(Command::NotifyModemstate(Some(writer::modem_state(
                            inputs, None,
                        ))))
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
            super::source::discard(self.handle, data.len(), &mut self.warned.read_only);
            return Ok(());
        }
        if let Some((r, _)) = &mut self.transactions {
            return r.take(&data).await.map_err(|_| End::Hub);
        }
        // Decoding only shrinks data, so the budget held for the read covers
        // it; after a request dropped it, budget is taken anew.
        Ok(self.handle.submit_from(data, permit).await?)
    }

    /// When the request being framed ends by silence, in transaction mode.
    fn request_deadline(&self) -> Option<tokio::time::Instant> {
        let (r, hold) = self.transactions.as_ref()?;
        r.deadline(*hold)
    }

    /// End of input in transaction mode: the request being framed goes.
    async fn finish_requests(&mut self) -> Result<(), End> {
        match &mut self.transactions {
            Some((r, _)) => r.finish().await.map_err(|_| End::Hub),
            None => Ok(()),
        }
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
}
