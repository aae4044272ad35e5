//! One connected client, whatever endpoint it came through.
//!
//! A client runs two directions at once:
//! - *to the device* ([`Ingress`]): wait until the client has data, take
//!   write budget from the hub, then read at most that much and submit it.
//!   Waiting for budget *before* reading leaves unsent data in the kernel's
//!   socket buffer, whose full window stops the sender: that is the
//!   backpressure. The endpoint's options apply here: `access=ro` discards
//!   (and counts) writes, `framing=line` submits whole lines only, and
//!   `lock=inband` honours DLE lock commands.
//! - *to the client*: write every chunk the hub queued for it.
//!
//! Every byte the kernel acknowledged to the client reaches the device.
//! The two directions therefore end differently:
//! - When the client closes its sending side, it frees its `--max-clients`
//!   slot at once, and keeps receiving for a short linger ([`LINGER`] for
//!   network clients), so replies to its last request arrive.
//! - When writing to the client fails (it closed or reset its connection,
//!   typically while the device was talking) or the hub kicks it, only the
//!   direction to the client ends. What the client sent before it left is
//!   still read and submitted, behind backpressure like any other write,
//!   until its end of input; a kicked client hands over what the kernel
//!   already holds. Only bytes that the kernel itself discards on a reset
//!   are lost; they are counted and logged.
//! - On shutdown, the client hands over what the kernel already holds.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::framing::LineAssembler;
use super::inband::{InbandParser, Piece};
use super::request;
use super::slot::{Slot, chat, output_error};
use super::source::{ClientSource, End, discard, read_failed, read_queued, settle};
use super::{Access, EndpointOptions, Framing};
use crate::hub::ClientHandle;

/// How long a network client that has closed its sending side still
/// receives.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// A partial line held this long under `framing=line` is worth a warning:
/// the client is likely not line-based.
const LINE_HOLD_WARN: Duration = Duration::from_secs(1);
/// Read size for read-only clients, whose bytes are only counted.
const DISCARD_READ: usize = 4096;

/// Runs one client until it ends, then detaches it from the hub. `slot` is
/// the client's `--max-clients` place, freed as soon as its input ends.
pub(crate) async fn run<S, W>(
    handle: ClientHandle,
    source: S,
    mut sink: W,
    options: &EndpointOptions,
    linger: Duration,
    slot: Slot,
    shutdown: CancellationToken,
) where
    S: ClientSource,
    W: AsyncWrite + Unpin,
{
    chat!(slot.loud(), "client connected");
    handle.see_all(options.sees_all());
    let mut slot = slot;
    let (end, output_end) = {
        let to_device = async {
            match (handle.txn_config(), options.access) {
                (Some(t), Access::ReadWrite) => {
                    let (gap, hold) = (t.frame_gap, t.reply_timeout);
                    request::to_arbiter(&handle, &source, options, gap, hold, &shutdown).await
                }
                _ => to_device(&handle, &source, options, &shutdown).await,
            }
        };
        let to_client = to_client(&handle, &mut sink);
        tokio::pin!(to_device, to_client);
        tokio::select! {
            r = &mut to_device => {
                if r.is_ok() {
                    // Half-closed: it can write no more, so it needs neither
                    // the lock nor a slot; keep delivering for a moment, so
                    // replies to its last request arrive.
                    let lingers = slot.half_closed();
                    handle.release_settings();
                    handle.unlock("holder closed its sending side");
                    if handle.txn_config().is_some() {
                        let _ = handle.txn_unlock().await;
                    }
                    if lingers {
                        let _ = tokio::time::timeout(linger, &mut to_client).await;
                    } else {
                        debug!("too many clients lingering; closed at once");
                    }
                }
                (r, None)
            }
            out = &mut to_client => (output_ended(&handle, &out, to_device).await, Some(out)),
        }
    };
    let end = end.err().unwrap_or(End::Closed);
    let _ = sink.shutdown().await;
    let s = handle.stats();
    let (rx, tx, dropped, discarded) = (
        s.to_client.load(Relaxed),
        s.from_client.load(Relaxed),
        s.dropped.load(Relaxed),
        s.discarded.load(Relaxed),
    );
    let output_error = output_error(output_end.as_ref());
    match end {
        End::Error(e) => {
            chat!(slot.loud(), error = %e, output_error, rx, tx, dropped, discarded, "client disconnected")
        }
        other => {
            chat!(slot.loud(), reason = ?other, output_error, rx, tx, dropped, discarded, "client disconnected")
        }
    }
    // The connection is closed (the hub's fan-out holds the socket too,
    // until the client detaches) before its place is free.
    drop((source, sink, handle));
    drop(slot);
}

/// The client's output ended first (kicked, or a write to it failed): it
/// takes no more device data, but what it sent before is still ours to
/// deliver, so its input is read on until it ends. Never cancel `to_device`
/// instead: it may hold bytes already read.
pub(super) async fn output_ended<T>(
    handle: &ClientHandle,
    out: &io::Result<()>,
    to_device: impl Future<Output = T>,
) -> T {
    handle.close_output();
    if let Err(e) = out {
        debug!(error = %e, "writing to client failed; taking in what it sent");
    }
    to_device.await
}

/// Moves the client's bytes into the hub. `Ok` on end of input.
///
/// Shutdown and a kick are noticed only between reads, never in the middle
/// of handing bytes to the hub, so no byte already read is lost. Then the
/// bytes the kernel had already accepted from the client (a small amount:
/// socket buffers are sized for the line rate) are read and submitted too.
async fn to_device(
    handle: &ClientHandle,
    source: &impl ClientSource,
    options: &EndpointOptions,
    shutdown: &CancellationToken,
) -> Result<(), End> {
    let mut ingress = Ingress::new(handle, options);
    let kicked = handle.kicked();
    loop {
        let held_since = ingress.line_since.filter(|_| !ingress.warned_hold);
        tokio::select! {
            r = source.readable() => r.map_err(|e| End::Error(read_failed(handle, source, e)))?,
            () = request::sleep_until(held_since.map(|t| t + LINE_HOLD_WARN)) => {
                ingress.warned_hold = true;
                warn!(delimiter = format_args!("{:#04x}", options.delimiter),
                    "framing=line: a partial line has waited {LINE_HOLD_WARN:?} for its delimiter; \
                     is this client line-based? (its bytes wait until the line ends)");
                continue;
            }
            () = shutdown.cancelled() => {
                ingress.flush(source).await?;
                return Err(End::Shutdown);
            }
            () = kicked.cancelled() => {
                ingress.flush(source).await?;
                return Err(End::Kicked);
            }
        }
        // Plain writers hold budget before reading. Line framing reads into
        // its own bounded line buffer and takes budget per complete line.
        let permit = match (options.access, options.framing) {
            (Access::ReadWrite, Framing::None) => {
                Some(handle.reserve().await.map_err(|_| End::Hub)?)
            }
            _ => None,
        };
        let size = match (&permit, options.access) {
            (Some(p), _) => p.num_permits(),
            (None, Access::ReadOnly) => DISCARD_READ,
            (None, Access::ReadWrite) => ingress.lines.room().max(1),
        };
        let mut buf = Vec::new();
        match source.try_read_vec(&mut buf, size) {
            Ok(0) => {
                ingress.finish().await?;
                return settle(handle, source).await;
            }
            Ok(_) => ingress.take(buf, permit).await?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => drop(permit),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => drop(permit),
            Err(e) => {
                // Whatever it had sent is taken; a reset ends the input.
                ingress.finish().await?;
                return Err(End::Error(read_failed(handle, source, e)));
            }
        }
        settle(handle, source).await?;
    }
}

/// Applies an endpoint's write options to what one client sends.
struct Ingress<'a> {
    handle: &'a ClientHandle,
    options: &'a EndpointOptions,
    lines: LineAssembler,
    inband: InbandParser,
    warned_ro: bool,
    warned_cut: bool,
    /// When the partial line held by `framing=line` began.
    line_since: Option<tokio::time::Instant>,
    warned_hold: bool,
}

impl<'a> Ingress<'a> {
    fn new(handle: &'a ClientHandle, options: &'a EndpointOptions) -> Self {
        Self {
            handle,
            options,
            lines: LineAssembler::new(options.delimiter, options.max_line),
            inband: InbandParser::default(),
            warned_ro: false,
            warned_cut: false,
            line_since: None,
            warned_hold: false,
        }
    }

    /// Handles bytes just read; `permit` is budget already held for them.
    async fn take(
        &mut self,
        data: Vec<u8>,
        mut permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), End> {
        let pieces = if self.options.inband_lock {
            let pieces = self.inband.feed(&data);
            if let Some(s) = self.inband.news() {
                warn!("{}", s.message());
            }
            pieces
        } else {
            // The read buffer becomes the chunk: no copy on the plain path.
            vec![Piece::Data(Bytes::from(data))]
        };
        for piece in pieces {
            match piece {
                Piece::Data(d) => self.data(d, &mut permit).await?,
                Piece::Lock if self.options.access == Access::ReadOnly => {
                    warn!("read-only client asked for the write lock; ignored");
                }
                Piece::Lock => {
                    // Waiting for the lock while holding budget could starve
                    // the holder; give it back and take it again after.
                    permit = None;
                    self.handle.lock().await;
                }
                Piece::Unlock => {
                    self.handle.unlock("holder asked");
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
            discard(self.handle, data.len(), &mut self.warned_ro);
            return Ok(());
        }
        if self.options.framing == Framing::Line {
            let (lines, cut) = self.lines.push(&data);
            if cut && !self.warned_cut {
                self.warned_cut = true;
                warn!(
                    max_line = self.options.max_line,
                    "line longer than max-line; sent in pieces"
                );
            }
            self.line_since = match self.lines.room() < self.lines.max_line() {
                true => Some(self.line_since.unwrap_or_else(tokio::time::Instant::now)),
                false => None,
            };
            for line in lines {
                self.submit(line, &mut None).await?;
            }
            return Ok(());
        }
        self.submit(data, permit).await
    }

    async fn submit(
        &self,
        data: Bytes,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), End> {
        self.handle
            .submit_from(data, permit)
            .await
            .map_err(|_| End::Hub)
    }

    /// Takes what the kernel already holds from the client, then finishes.
    async fn flush(&mut self, source: &impl ClientSource) -> Result<(), End> {
        // In pieces, so each holds no more budget than a read would.
        for piece in read_queued(source).chunks(DISCARD_READ) {
            self.take(piece.to_vec(), None).await?;
        }
        self.finish().await
    }

    /// End of input: nothing the client sent is held back.
    async fn finish(&mut self) -> Result<(), End> {
        if let Some(dle) = self.inband.finish() {
            self.data(dle, &mut None).await?;
        }
        if let Some(rest) = self.lines.finish() {
            self.submit(rest, &mut None).await?;
        }
        Ok(())
    }
}

/// Writes the hub's chunks to the client until its queue closes (it was
/// kicked or detached) or a write fails. Cancel safe between chunks; a chunk
/// cut short by cancellation was going to a client that is leaving.
async fn to_client(handle: &ClientHandle, sink: &mut (impl AsyncWrite + Unpin)) -> io::Result<()> {
    while let Some(chunk) = handle.next_output().await {
        sink.write_all(&chunk).await?;
        handle.output_written();
    }
    Ok(())
}
