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

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::framing::LineAssembler;
use super::inband::{InbandParser, Piece, Suspicion};
use super::request;
use super::{Access, EndpointOptions, Framing};
use crate::hub::{ClientHandle, HubClosed};

/// How long a network client that has closed its sending side still
/// receives.
pub const LINGER: Duration = Duration::from_secs(1);
/// A partial line held this long under `framing=line` is worth a warning:
/// the client is likely not line-based.
const LINE_HOLD_WARN: Duration = Duration::from_secs(1);
/// Read size for read-only clients, whose bytes are only counted.
const DISCARD_READ: usize = 4096;

/// The receiving half of a client connection, read without blocking so that
/// budget is taken only once data is ready.
pub trait ClientSource {
    /// Waits until a read may succeed. Cancel safe.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads without waiting; `WouldBlock` if readiness was spurious,
    /// `Ok(0)` at end of input.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// [`try_read`](Self::try_read) into `buf`'s spare capacity, up to
    /// `max` bytes, appending to it. Sources that can read into
    /// uninitialised memory do, so a large read buffer costs no zeroing
    /// when a client sends one byte (issue 12: 64 KiB zeroed per read on
    /// an unpaced device).
    fn try_read_vec(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let start = buf.len();
        buf.resize(start + max, 0);
        let read = self.try_read(&mut buf[start..]);
        buf.truncate(start + *read.as_ref().unwrap_or(&0));
        read
    }
    /// Bytes the kernel holds for reading now (`FIONREAD`).
    fn queued(&self) -> usize;
    /// Reads what the kernel holds now, whatever the reactor has seen of
    /// it: [`try_read`](Self::try_read) answers `WouldBlock` without
    /// reading while the reactor has not yet taken in the readiness of
    /// bytes that `queued` already counts.
    fn read_held(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
    /// Acts on what the source reported besides data (a pty program's
    /// termios change), once the bytes read before it were submitted.
    /// Called after every read and at end of input; most sources report
    /// nothing.
    fn settle(&self, handle: &ClientHandle) -> impl Future<Output = Result<(), HubClosed>> + Send {
        let _ = handle;
        std::future::ready(Ok(()))
    }
}

/// Bytes waiting to be read on `fd` (`FIONREAD`), 0 if unknown.
pub fn queued_bytes(fd: &impl AsRawFd) -> usize {
    nix::ioctl_read_bad!(fionread, libc::FIONREAD, libc::c_int);
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer.
    match unsafe { fionread(fd.as_raw_fd(), &mut n) } {
        Ok(_) => usize::try_from(n).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Runs `read` (of at most `len` bytes) through the socket's `try_io`. A short read has
/// drained the socket (epoll): like tokio's own `poll_read`, it forgets
/// the readiness then, so the next read waits for new data instead of
/// costing a read that fails with EAGAIN on the way to the device.
/// `try_io` forgets only the readiness seen before this read, so data
/// arriving meanwhile still wakes us.
fn forget_if_short(
    len: usize,
    try_io: impl FnOnce(&mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize>,
    mut read: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut short = 0;
    match try_io(&mut || {
        let n = read()?;
        if n > 0 && n < len {
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(short),
        other => other,
    }
}

macro_rules! stream_source {
    ($t:ty) => {
        impl ClientSource for $t {
            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::readable(self)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                let len = buf.len();
                let try_io = |f: &mut dyn FnMut() -> io::Result<usize>| {
                    self.as_ref().try_io(tokio::io::Interest::READABLE, f)
                };
                forget_if_short(len, try_io, || <$t>::try_read(self, buf))
            }
            fn try_read_vec(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
                use bytes::BufMut;
                buf.reserve(max);
                let try_io = |f: &mut dyn FnMut() -> io::Result<usize>| {
                    self.as_ref().try_io(tokio::io::Interest::READABLE, f)
                };
                forget_if_short(max, try_io, || {
                    <$t>::try_read_buf(self, &mut (&mut *buf).limit(max))
                })
            }
            fn queued(&self) -> usize {
                queued_bytes(self.as_ref())
            }
            fn read_held(&self, buf: &mut [u8]) -> io::Result<usize> {
                use std::os::fd::AsFd;
                nix::unistd::read(self.as_ref().as_fd(), buf).map_err(io::Error::from)
            }
        }
    };
}
stream_source!(tokio::net::tcp::OwnedReadHalf);
stream_source!(tokio::net::unix::OwnedReadHalf);

/// Why a client's input ended.
#[derive(Debug)]
pub(super) enum End {
    /// The client closed its sending side.
    Closed,
    /// The slow-reader policy disconnected it.
    Kicked,
    Shutdown,
    Hub,
    Error(io::Error),
}

/// Logs at info for a loud client (see [`Slot::loud`]), else at debug.
macro_rules! chat {
    ($loud:expr, $($arg:tt)+) => {
        if $loud {
            tracing::info!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}
pub(super) use chat;

/// A client's place among `--max-clients`, and its right to linger once it
/// has closed its sending side. Lingering clients are bounded apart (as
/// many again as `--max-clients`), so a loop that connects and closes
/// cannot pile up connections: past the bound, a half-closed client is
/// closed at once (issue 18).
///
/// It also says whether the client's connect and disconnect lines are
/// logged at info, decided when it was admitted (see [`super::chatter`]).
#[derive(Debug)]
pub struct Slot {
    place: Option<OwnedSemaphorePermit>,
    lingering: Arc<Semaphore>,
    linger: Option<OwnedSemaphorePermit>,
    loud: bool,
}

impl Slot {
    pub fn new(place: OwnedSemaphorePermit, lingering: Arc<Semaphore>, loud: bool) -> Self {
        Self {
            place: Some(place),
            lingering,
            linger: None,
            loud,
        }
    }

    /// Whether the client's comings and goings are logged at info.
    pub fn loud(&self) -> bool {
        self.loud
    }

    /// The client closed its sending side: its place is given up, and it
    /// may linger if a permit to is free (taken first, so the connection
    /// always counts against one bound). Drop the slot only once the
    /// connection is closed.
    pub fn half_closed(&mut self) -> bool {
        self.linger = self.lingering.clone().try_acquire_owned().ok();
        self.place = None;
        self.linger.is_some()
    }
}

/// Runs one client until it ends, then detaches it from the hub. `slot` is
/// the client's `--max-clients` place, freed as soon as its input ends.
pub async fn run<S, W>(
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
            out = &mut to_client => {
                // It takes no more device data, but what it sent before is
                // still ours to deliver: read on until its input ends. Never
                // cancel `to_device` here: it may hold bytes already read.
                handle.close_output();
                if let Err(e) = &out {
                    debug!(error = %e, "writing to client failed; taking in what it sent");
                }
                (to_device.await, Some(out))
            }
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
    let output_error = match output_end {
        Some(Err(e)) => e.to_string(),
        Some(Ok(())) | None => "-".to_owned(),
    };
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

/// [`ClientSource::settle`], with no write budget held: a settings change
/// waits on the device queue, where other clients' bytes go first.
pub(super) async fn settle(handle: &ClientHandle, source: &impl ClientSource) -> Result<(), End> {
    source.settle(handle).await.map_err(|_| End::Hub)
}

/// Reads what the kernel already holds from the client (`FIONREAD`), at
/// shutdown or a kick. Socket buffers are sized for the line rate, so this
/// is small.
pub(super) fn read_queued(source: &impl ClientSource) -> Vec<u8> {
    let mut held = vec![0u8; source.queued()];
    let mut got = 0;
    while got < held.len() {
        match source.read_held(&mut held[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    held.truncate(got);
    held
}

/// A read from the client failed, typically on a reset. The kernel returns
/// queued data before the error, so normally nothing is pending; if some is,
/// the kernel discarded it and serialhub can only count and report it.
pub(super) fn read_failed(
    handle: &ClientHandle,
    source: &impl ClientSource,
    e: io::Error,
) -> io::Error {
    let pending = source.queued();
    if pending > 0 {
        handle.count_lost(pending);
        warn!(error = %e, lost = pending,
            "client connection failed with unread bytes; the kernel discarded them");
    }
    e
}

/// A read-only client's write: counted as discarded, and warned of once.
pub(super) fn discard(handle: &ClientHandle, n: usize, warned: &mut bool) {
    handle.stats().discarded.fetch_add(n as u64, Relaxed);
    if !std::mem::replace(warned, true) {
        warn!("read-only client wrote to the device; its writes are discarded and counted");
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
    warned_escape: Option<Suspicion>,
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
            warned_escape: None,
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
            if let Some(s) = self.inband.suspicion()
                && self.warned_escape != Some(s)
            {
                self.warned_escape = Some(s);
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
                self.submit(line, None).await?;
            }
            return Ok(());
        }
        let held = permit.as_mut().and_then(|p| p.split(data.len()));
        self.submit(data, held).await
    }

    async fn submit(&self, data: Bytes, permit: Option<OwnedSemaphorePermit>) -> Result<(), End> {
        let permit = match permit {
            Some(p) => p,
            None => self
                .handle
                .reserve_exact(data.len())
                .await
                .map_err(|_| End::Hub)?,
        };
        self.handle.submit(data, permit).await.map_err(|_| End::Hub)
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
            self.submit(rest, None).await?;
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
