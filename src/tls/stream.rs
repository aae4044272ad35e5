//! A TLS connection as the endpoint code sees any connection: a
//! [`ClientSource`] to read from and a [`SocketHalf`] to write to, over the
//! plain socket's own two halves.
//!
//! rustls is sans-I/O: one [`ServerConnection`] behind a mutex holds the
//! session, and both halves use it without ever waiting while holding the
//! lock. All socket I/O is non-blocking (`try_read`, `try_write`); waiting
//! is on the plain socket's readiness, outside the lock.
//!
//! Backpressure is kept: reading plaintext takes ciphertext from the socket
//! only when rustls has no plaintext left, and then one record at a time
//! (see [`super::records`]), so a client whose bytes wait for write budget
//! is stopped by TCP's window as a plain one is, with at most one record
//! more in flight. Writing encrypts only once earlier
//! ciphertext has gone to the socket, and at most the buffer limit, so what
//! serialhub holds for a client beyond its hub queue is bounded, and a
//! reader that does not read sees `WouldBlock` (the slow-reader policy)
//! as a plain one does.

use std::fmt;
use std::io::{self, Read, Write};

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use rustls::ServerConnection;

use super::records::RecordEnds;
use crate::endpoint::sink::SocketHalf;
use crate::endpoint::source::ClientSource;

/// The largest staging buffer kept once empty (see `Session::staged`).
const STAGED_KEPT: usize = 32 * 1024;

/// The session and the plain socket's halves, shared by both TLS halves.
struct Inner<S, W> {
    conn: Mutex<Session>,
    raw_in: S,
    raw_out: W,
}

struct Session {
    conn: ServerConnection,
    /// rustls refused the peer's data: the connection is unusable, and
    /// every read says so.
    failed: Option<rustls::Error>,
    /// The peer closed (close_notify or end of input).
    eof: bool,
    /// Where the peer's records end: reads stop there (see [`records`]).
    ///
    /// [`records`]: super::records
    ends: RecordEnds,
    /// Ciphertext read from the socket and not yet taken by rustls: what the
    /// reader asked for, or the rest of one record and the next header if
    /// more, read in one go (rustls reads 4 KiB at a time; a 16 KiB record
    /// would cost four reads).
    ///
    /// [`records`]: super::records
    staged: Vec<u8>,
    /// How much of `staged` rustls has taken.
    taken: usize,
    /// The last socket read took less than it asked for: the socket had no
    /// more then.
    drained: bool,
}

impl<S, W> Inner<S, W> {
    fn lock(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock leaves the session as it was at
        // some step; nothing here panics, and a poisoned session is no
        // worse than a failed one.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Writes ciphertext to the plain socket without waiting.
struct RawWriter<'a, W>(&'a W);

impl<W: SocketHalf> Write for RawWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: ClientSource, W: SocketHalf> Inner<S, W> {
    /// Writes pending ciphertext until it is all out or the socket is
    /// full. `Ok(true)` when nothing is left.
    fn flush(&self, s: &mut Session) -> io::Result<bool> {
        while s.conn.wants_write() {
            match s.conn.write_tls(&mut RawWriter(&self.raw_out)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Takes in ciphertext the socket holds, up to the end of the record
    /// it is in (and the next header), and hands it to rustls while rustls
    /// wants it, processing it. `WouldBlock` when the socket had nothing.
    ///
    /// `asked` is the plaintext the caller still has room for: the read
    /// takes that much ciphertext, or the rest of the record if more, so a
    /// small record comes in one read with its header, and no more is
    /// decrypted than was asked for but for the rest of one record.
    fn fill(&self, s: &mut Session, held: bool, asked: usize) -> io::Result<()> {
        if let Some(why) = &s.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, why.to_string()));
        }
        if s.taken == s.staged.len() {
            if s.staged.capacity() > STAGED_KEPT {
                // A bulk sender's large reads are not kept for an idle one.
                s.staged = Vec::new();
            }
            s.staged.clear();
            s.taken = 0;
            let want = s.ends.want().max(asked);
            s.staged.resize(want, 0);
            let read = if held {
                self.raw_in.read_held(&mut s.staged)
            } else {
                self.raw_in.try_read(&mut s.staged)
            };
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    s.staged.clear();
                    return Err(e);
                }
            };
            s.staged.truncate(n);
            s.drained = n < want;
            if n == 0 {
                s.eof = true;
                return self.process(s);
            }
            s.ends.feed(&s.staged);
        }
        while s.taken < s.staged.len() && s.conn.wants_read() {
            let Session {
                conn,
                staged,
                taken,
                ..
            } = &mut *s;
            match conn.read_tls(&mut &staged[*taken..]) {
                Ok(0) => break,
                Ok(n) => *taken += n,
                Err(e) => return Err(e),
            }
            self.process(s)?;
        }
        Ok(())
    }

    /// Processes what rustls holds; a protocol error sends its alert (if
    /// the socket takes it) and fails the connection.
    fn process(&self, s: &mut Session) -> io::Result<()> {
        match s.conn.process_new_packets() {
            Ok(state) => {
                if state.peer_has_closed() {
                    s.eof = true;
                }
                // Answers rustls owes the peer (a key update) go out now if
                // they can; else before the next data.
                let _ = self.flush(s);
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                s.failed = Some(e);
                let _ = self.flush(s);
                Err(io::Error::new(io::ErrorKind::InvalidData, why))
            }
        }
    }

    /// Plaintext into `buf`: what rustls holds, then what the socket brings,
    /// record after record until `buf` is full or the socket has no more,
    /// so a bulk sender's records reach the hub in reads as large as a
    /// plain socket's, not one record each. The caller sizes `buf` by its
    /// write budget, so no more is decrypted than it asked for, but for the
    /// rest of the last record.
    fn read(&self, buf: &mut [u8], held: bool) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.lock();
        let mut got = 0;
        loop {
            match s.conn.reader().read(&mut buf[got..]) {
                // Ok(0): close_notify, and all its data delivered.
                Ok(0) => return Ok(got),
                Ok(n) => {
                    got += n;
                    if got == buf.len() {
                        return Ok(got);
                    }
                }
                // No plaintext now; the peer ended without close_notify:
                // its data is all delivered, so this is its end of input.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(got),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if got > 0 => {
                    tracing::debug!(error = %e, "TLS read ends early");
                    return Ok(got);
                }
                Err(e) => return Err(e),
            }
            if s.eof {
                return Ok(got);
            }
            if !s.conn.wants_read() {
                // Neither plaintext nor a wish for more: cannot happen once
                // the handshake is done, but never spin on it.
                return if got > 0 {
                    Ok(got)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            if got > 0 && s.drained && s.taken == s.staged.len() {
                // The last read emptied the socket: another would only
                // say so again.
                return Ok(got);
            }
            let asked = buf.len() - got;
            match self.fill(&mut s, held, asked) {
                Ok(()) => {}
                // The rest (WouldBlock, or an error the next read meets
                // again: a failed session stays failed) after this data.
                Err(_) if got > 0 => return Ok(got),
                Err(e) => return Err(e),
            }
        }
    }

    /// Plaintext rustls holds, and whether the peer has closed.
    fn pending(&self) -> (usize, bool) {
        let mut s = self.lock();
        let fail = s.failed.is_some();
        match s.conn.process_new_packets() {
            // Staged ciphertext is as good as plaintext: reading takes it.
            Ok(state) => (
                state.plaintext_bytes_to_read() + (s.staged.len() - s.taken),
                s.eof || fail,
            ),
            Err(_) => (0, true),
        }
    }
}

/// The receiving half of a TLS connection: plaintext from the client.
pub(crate) struct TlsSource<S, W>(Arc<Inner<S, W>>);

/// The sending half of a TLS connection, shared by the client's writer and
/// the hub's fan-out like a plain socket's.
pub(crate) struct TlsSink<S, W>(Arc<Inner<S, W>>);

impl<S, W> fmt::Debug for TlsSource<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsSource")
    }
}

impl<S, W> fmt::Debug for TlsSink<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsSink")
    }
}

/// Both halves of a new TLS session over a plain connection.
/// `buffer_limit` caps the ciphertext rustls holds for sending.
pub(crate) fn split<S, W>(
    conn: ServerConnection,
    raw_in: S,
    raw_out: W,
    buffer_limit: usize,
) -> (TlsSource<S, W>, TlsSink<S, W>) {
    let mut conn = conn;
    conn.set_buffer_limit(Some(buffer_limit));
    let inner = Arc::new(Inner {
        conn: Mutex::new(Session {
            conn,
            failed: None,
            eof: false,
            ends: RecordEnds::default(),
            staged: Vec::new(),
            taken: 0,
            drained: false,
        }),
        raw_in,
        raw_out,
    });
    (TlsSource(inner.clone()), TlsSink(inner))
}

impl<S: ClientSource, W: SocketHalf> TlsSource<S, W> {
    /// Runs `f` on the session (to read its handshake state or the peer's
    /// certificates).
    pub(crate) fn with_session<T>(&self, f: impl FnOnce(&ServerConnection) -> T) -> T {
        f(&self.0.lock().conn)
    }

    /// What rustls refused in the peer's data, if anything.
    pub(crate) fn failure(&self) -> Option<rustls::Error> {
        self.0.lock().failed.clone()
    }

    /// One step of the handshake: sends what rustls has to send, then
    /// takes in what the peer sent. `Ok(true)` once the handshake is done
    /// and its last messages are out; `WouldBlock` to wait for the socket
    /// ([`wait`](Self::wait)).
    pub(super) fn handshake_step(&self) -> io::Result<bool> {
        let mut s = self.0.lock();
        if !self.0.flush(&mut s)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !s.conn.is_handshaking() {
            return Ok(true);
        }
        if s.eof {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the handshake",
            ));
        }
        if !s.conn.wants_read() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.0.fill(&mut s, false, 0)?;
        let done = !s.conn.is_handshaking() && self.0.flush(&mut s)?;
        Ok(done)
    }

    /// Waits until the socket can take pending ciphertext, or has data.
    pub(super) async fn wait(&self) -> io::Result<()> {
        let wants_write = self.0.lock().conn.wants_write();
        if wants_write {
            std::future::poll_fn(|cx| self.0.raw_out.poll_write_ready(cx)).await
        } else {
            self.0.raw_in.readable().await
        }
    }
}

impl<S, W> ClientSource for TlsSource<S, W>
where
    S: ClientSource + Send + Sync,
    W: SocketHalf,
{
    async fn readable(&self) -> io::Result<()> {
        let (plaintext, closed) = self.0.pending();
        if plaintext > 0 || closed {
            return Ok(());
        }
        self.0.raw_in.readable().await
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf, false)
    }

    /// Plaintext rustls holds, and the ciphertext the kernel holds (a little
    /// more than the plaintext it carries).
    fn queued(&self) -> usize {
        self.0.pending().0 + self.0.raw_in.queued()
    }

    fn read_held(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf, true)
    }
}

impl<S, W> SocketHalf for TlsSink<S, W>
where
    S: ClientSource + Send + Sync + 'static,
    W: SocketHalf,
{
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut s = self.0.lock();
                if self.0.flush(&mut s)? {
                    return Poll::Ready(Ok(()));
                }
            }
            // The failed write cleared the socket's readiness, so this
            // registers for its next writable edge.
            std::task::ready!(self.0.raw_out.poll_write_ready(cx))?;
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.0.lock();
        if !self.0.flush(&mut s)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = s.conn.writer().write(buf)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Out now if the socket takes it; what it does not take waits in
        // rustls (at most the buffer limit) and goes before the next write.
        self.0.flush(&mut s)?;
        Ok(n)
    }

    /// Sends close_notify, then ends the sending side. What the socket
    /// cannot take at once is given up: the client is leaving.
    fn shutdown_write(&self) -> io::Result<()> {
        {
            let mut s = self.0.lock();
            s.conn.send_close_notify();
            let _ = self.0.flush(&mut s);
        }
        self.0.raw_out.shutdown_write()
    }
}
