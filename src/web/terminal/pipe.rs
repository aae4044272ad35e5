//! The pipe that makes a browser a hub client: its [`PipeSource`]
//! ([`ClientSource`]) and [`PipeSink`] ([`SocketHalf`]) are what the port's
//! raw client loop reads from and writes to, as it would a TCP socket's;
//! the WebSocket task holds the other end ([`WsEnd`]).
//!
//! - Towards the device: typed bytes and the browser's requests (settings,
//!   DTR/RTS, break, lock) wait in one bounded queue, in the order the
//!   browser sent them. A read never goes past a request; the raw loop
//!   calls [`ClientSource::settle`] after each read, which carries out the
//!   requests at the front, so each is applied after the bytes typed
//!   before it and before those typed after (as a pty's termios changes
//!   are). Its answer goes back to the WebSocket task.
//! - Towards the browser: the sink takes at most [`OUTPUT`] bytes; the
//!   WebSocket task takes them within its window. A browser that does not
//!   acknowledge leaves them there, the client's hub queue fills, and the
//!   port's slow-reader policy applies as to any client.
//!
//! One mutex, never held across an await, guards both directions.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;
use tokio::sync::Notify;

use super::codec::{Action, Told};
use crate::endpoint::sink::SocketHalf;
use crate::endpoint::source::ClientSource;
use crate::hub::{ClientHandle, ControlPolicy, HubClosed, Signal};

/// Typed bytes waiting for the device: one largest WebSocket message, so
/// a paste is taken whole and the browser waits (TCP backpressure) beyond.
pub(crate) const INPUT: usize = 64 << 10;
/// Requests sent and not yet answered: a person clicks a few; more wait
/// in the browser's socket.
pub(crate) const REQUESTS: usize = 16;
/// Device bytes the sink holds for the WebSocket task: small, so what the
/// browser has not taken stays in the hub's queue, where the slow-reader
/// policy sees it.
pub(crate) const OUTPUT: usize = 16 << 10;
/// How long a request waits for the device to apply it before it is
/// answered anyway (a device that is absent, or still sending what was
/// queued before); it stays queued.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

enum Item {
    Data(Bytes),
    Request { id: Value, action: Action },
}

#[derive(Default)]
struct State {
    input: VecDeque<Item>,
    /// Bytes in `input`'s data items.
    input_bytes: usize,
    /// The browser has gone: the raw loop reads to the end of `input`.
    input_closed: bool,
    /// Requests queued or being carried out, and answers not yet taken.
    requests: usize,
    answers: VecDeque<Told>,
    output: BytesMut,
    /// The raw loop ended the client's output (kicked, port stopping).
    output_closed: bool,
    /// The raw loop waiting for room in `output`.
    write_waker: Option<Waker>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the raw loop: input or a request arrived, or the browser left.
    to_device: Notify,
    /// Wakes the WebSocket task: output, an answer, or the output ended.
    to_browser: Notify,
    /// Wakes the WebSocket task waiting for room in `input`.
    room: Notify,
    read_only: bool,
    control: ControlPolicy,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The raw loop's receiving half.
pub(crate) struct PipeSource(Arc<Shared>);
/// The raw loop's sending half (and the hub's direct sink).
pub(crate) struct PipeSink(Arc<Shared>);
/// The WebSocket task's end.
pub(crate) struct WsEnd(Arc<Shared>);

impl fmt::Debug for PipeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PipeSink")
    }
}

/// A pipe for a client whose requests run under `control` (refused
/// outright when `read_only`).
pub(crate) fn pipe(read_only: bool, control: ControlPolicy) -> (PipeSource, PipeSink, WsEnd) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        to_device: Notify::new(),
        to_browser: Notify::new(),
        room: Notify::new(),
        read_only,
        control,
    });
    (
        PipeSource(shared.clone()),
        PipeSink(shared.clone()),
        WsEnd(shared),
    )
}

impl WsEnd {
    /// Waits until `input` can take typed bytes or a request. Cancel safe.
    pub(crate) async fn room(&self, request: bool) {
        loop {
            let notified = self.0.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.0.lock();
                let fits = match request {
                    true => s.requests < REQUESTS,
                    false => s.input_bytes < INPUT,
                };
                if fits || s.input_closed {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Queues typed bytes for the device. Call after [`room`](Self::room);
    /// a message may overrun the bound by its own size (at most one).
    pub(crate) fn type_bytes(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut s = self.0.lock();
        s.input_bytes += data.len();
        s.input.push_back(Item::Data(data));
        drop(s);
        self.0.to_device.notify_one();
    }

    /// Queues a request, to be carried out after the bytes typed before.
    pub(crate) fn request(&self, id: Value, action: Action) {
        let mut s = self.0.lock();
        s.requests += 1;
        s.input.push_back(Item::Request { id, action });
        drop(s);
        self.0.to_device.notify_one();
    }

    /// The browser has gone: what it typed still goes to the device, its
    /// requests no longer do (nobody would see their answers).
    pub(crate) fn close(&self) {
        let mut s = self.0.lock();
        s.input_closed = true;
        s.input.retain(|i| matches!(i, Item::Data(_)));
        drop(s);
        self.0.to_device.notify_one();
        self.0.room.notify_waiters();
    }

    /// Waits until there is output, an answer, or the end of output.
    /// Cancel safe.
    pub(crate) async fn ready(&self, output: bool) {
        loop {
            let notified = self.0.to_browser.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.0.lock();
                if (output && !s.output.is_empty()) || !s.answers.is_empty() || s.output_closed {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The next answer, if any.
    pub(crate) fn answer(&self) -> Option<Told> {
        let mut s = self.0.lock();
        let a = s.answers.pop_front()?;
        s.requests -= 1;
        drop(s);
        self.0.room.notify_waiters();
        Some(a)
    }

    /// Takes up to `max` bytes of output.
    pub(crate) fn output(&self, max: usize) -> Bytes {
        let mut s = self.0.lock();
        let n = max.min(s.output.len());
        let out = s.output.split_to(n).freeze();
        if n > 0
            && let Some(w) = s.write_waker.take()
        {
            w.wake();
        }
        out
    }

    /// Whether the raw loop has ended the client's output.
    pub(crate) fn output_closed(&self) -> bool {
        self.0.lock().output_closed
    }

    /// Whether the raw loop has ended the client's output, and nothing of
    /// it is left.
    pub(crate) fn output_ended(&self) -> bool {
        let s = self.0.lock();
        s.output_closed && s.output.is_empty()
    }
}

impl ClientSource for PipeSource {
    async fn readable(&self) -> io::Result<()> {
        loop {
            let notified = self.0.to_device.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.0.lock();
                if !s.input.is_empty() || s.input_closed {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.lock();
        let mut n = 0;
        while n < buf.len() {
            let Some(Item::Data(d)) = s.input.front_mut() else {
                break;
            };
            let k = d.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&d[..k]);
            d.advance(k);
            if d.is_empty() {
                s.input.pop_front();
            }
            n += k;
        }
        s.input_bytes -= n;
        let (empty, closed) = (s.input.is_empty(), s.input_closed);
        drop(s);
        if n > 0 {
            self.0.room.notify_waiters();
            Ok(n)
        } else if empty && closed {
            Ok(0)
        } else {
            // A request at the front: `settle` carries it out.
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    fn queued(&self) -> usize {
        let s = self.0.lock();
        s.input
            .iter()
            .map_while(|i| match i {
                Item::Data(d) => Some(d.len()),
                Item::Request { .. } => None,
            })
            .sum()
    }

    async fn settle(&self, handle: &ClientHandle) -> Result<(), HubClosed> {
        loop {
            let (id, action) = {
                let mut s = self.0.lock();
                match s.input.front() {
                    Some(Item::Request { .. }) => {}
                    _ => return Ok(()),
                }
                match s.input.pop_front() {
                    Some(Item::Request { id, action }) => (id, action),
                    _ => return Ok(()),
                }
            };
            let result = self.carry_out(handle, action).await?;
            self.0.lock().answers.push_back(Told::Answer { id, result });
            self.0.to_browser.notify_one();
        }
    }
}

impl PipeSource {
    /// Carries out one request under the client's role and the port's
    /// `control=` policy; `Err(HubClosed)` only when the port is stopping.
    async fn carry_out(
        &self,
        handle: &ClientHandle,
        action: Action,
    ) -> Result<Result<(), String>, HubClosed> {
        if self.0.read_only {
            return Ok(Err("read-only: this needs the rw role".to_owned()));
        }
        let txn = handle.txn_config().is_some();
        match action {
            Action::Lock if txn => {
                tokio::select! {
                    r = handle.txn_lock(None) => r.map(|()| Ok(())),
                    () = self.browser_gone() => Ok(Err("the browser went away".to_owned())),
                }
            }
            Action::Lock => {
                tokio::select! {
                    () = handle.lock() => Ok(Ok(())),
                    () = self.browser_gone() => Ok(Err("the browser went away".to_owned())),
                }
            }
            Action::Unlock if txn => handle.txn_unlock().await.map(|()| Ok(())),
            Action::Unlock => Ok(match handle.unlock("holder asked") {
                true => Ok(()),
                false => Err("this client does not hold the write lock".to_owned()),
            }),
            Action::Set(fields) => {
                let in_force = handle.hub().line().unwrap_or_default();
                let new = fields.apply(in_force);
                if let Err(e) = new.validate() {
                    return Ok(Err(e.to_string()));
                }
                if let Err(e) = handle.claim_settings(self.0.control) {
                    return Ok(Err(e.to_string()));
                }
                if new == in_force {
                    return Ok(Ok(()));
                }
                let told = handle.change_line(new).await?;
                Ok(match tokio::time::timeout(ANSWER_WAIT, told).await {
                    Ok(Ok(answer)) => answer.refused.map_or(Ok(()), Err),
                    Ok(Err(_)) => Err("the port is stopping".to_owned()),
                    Err(_) => Err(not_yet(&new)),
                })
            }
            Action::Dtr(on) => self.signal(handle, Signal::Dtr, on).await,
            Action::Rts(on) => self.signal(handle, Signal::Rts, on).await,
            Action::Break(ms) => {
                let on = self.signal(handle, Signal::Break, true).await?;
                if on.is_ok() {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                // Off in any case: a break left on would silence the line.
                let off = self.signal(handle, Signal::Break, false).await?;
                Ok(on.and(off))
            }
        }
    }

    async fn signal(
        &self,
        handle: &ClientHandle,
        signal: Signal,
        on: bool,
    ) -> Result<Result<(), String>, HubClosed> {
        if let Err(e) = handle.claim_settings(self.0.control) {
            return Ok(Err(e.to_string()));
        }
        let told = handle.change_signal(signal, on).await?;
        Ok(match tokio::time::timeout(ANSWER_WAIT, told).await {
            Ok(Ok(answer)) => answer.refused.map_or(Ok(()), Err),
            Ok(Err(_)) => Err("the port is stopping".to_owned()),
            Err(_) => Err(not_yet(&format!(
                "{signal} {}",
                if on { "on" } else { "off" }
            ))),
        })
    }

    /// Resolves once the browser has gone. Cancel safe.
    async fn browser_gone(&self) {
        loop {
            let notified = self.0.to_device.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.lock().input_closed {
                return;
            }
            notified.await;
        }
    }
}

fn not_yet(what: &dyn fmt::Display) -> String {
    format!(
        "{what} not applied within {ANSWER_WAIT:?} (the device is absent, or still sending \
         what was queued before); it stays queued"
    )
}

impl SocketHalf for PipeSink {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.lock();
        if s.output_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if s.output.len() < OUTPUT {
            return Poll::Ready(Ok(()));
        }
        s.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.0.lock();
        if s.output_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(OUTPUT.saturating_sub(s.output.len()));
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        s.output.extend_from_slice(&buf[..n]);
        drop(s);
        self.0.to_browser.notify_one();
        Ok(n)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.0.lock().output_closed = true;
        self.0.to_browser.notify_one();
        Ok(())
    }
}

impl Drop for PipeSource {
    /// The raw loop has ended: no request will be carried out any more.
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.output_closed = true;
        let pending: Vec<Value> = s
            .input
            .drain(..)
            .filter_map(|i| match i {
                Item::Request { id, .. } => Some(id),
                Item::Data(_) => None,
            })
            .collect();
        for id in pending {
            s.answers.push_back(Told::Answer {
                id,
                result: Err("the client has ended".to_owned()),
            });
        }
        drop(s);
        self.0.to_browser.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_stops_at_a_request_and_resumes_after_it() {
        let (source, _sink, ws) = pipe(false, ControlPolicy::default());
        ws.type_bytes(Bytes::from_static(b"ab"));
        ws.type_bytes(Bytes::from_static(b"cd"));
        ws.request(Value::from(1), Action::Lock);
        ws.type_bytes(Bytes::from_static(b"ef"));
        assert_eq!(source.queued(), 4);
        let mut buf = [0u8; 3];
        assert_eq!(source.try_read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"abc");
        assert_eq!(source.try_read(&mut buf).unwrap(), 1);
        let e = source.try_read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // settle takes the request; then the rest reads.
        source.0.lock().input.pop_front();
        assert_eq!(source.try_read(&mut buf).unwrap(), 2);
        ws.close();
        assert_eq!(source.try_read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn the_sink_holds_at_most_its_bound() {
        let (_source, sink, ws) = pipe(false, ControlPolicy::default());
        let big = vec![7u8; OUTPUT + 100];
        assert_eq!(sink.try_write(&big).unwrap(), OUTPUT);
        assert_eq!(
            sink.try_write(b"x").unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(ws.output(10).len(), 10);
        assert_eq!(sink.try_write(&big).unwrap(), 10);
        sink.shutdown_write().unwrap();
        assert!(!ws.output_ended());
        assert_eq!(ws.output(usize::MAX).len(), OUTPUT);
        assert!(ws.output_ended());
    }

    #[test]
    fn closing_drops_requests_but_keeps_typed_bytes() {
        let (source, _sink, ws) = pipe(false, ControlPolicy::default());
        ws.type_bytes(Bytes::from_static(b"ab"));
        ws.request(Value::from(1), Action::Lock);
        ws.type_bytes(Bytes::from_static(b"cd"));
        ws.close();
        let mut buf = [0u8; 8];
        assert_eq!(source.try_read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"abcd");
        assert_eq!(source.try_read(&mut buf).unwrap(), 0);
    }
}
