//! A remote serial port as the device: `rfc2217://HOST:PORT` (an RFC 2217
//! access server: a device server, ser2net, another serialhub) or
//! `tcp://HOST:PORT` (a raw TCP device server), or a fleet port
//! (`fleet://HOST/PORT`: RFC 2217 over a fleet session instead of TCP; see
//! [`link`]).
//!
//! It stands where a tty does (see [`super::io`]): reads give the port's
//! data, writes send it, and for RFC 2217 the line settings and modem
//! outputs are requests answered by the server. Writes go through one
//! socket-writer task fed by a small bounded queue, so Telnet commands and
//! escaped data never interleave mid-sequence; the bytes in that queue and
//! the link's unacknowledged bytes (the socket's `SIOCOUTQ`, or what a
//! fleet session's peer has not acknowledged) are reported as the device's
//! output queue, so the in-flight bound holds across the network hop.
//!
//! The URL and its options are [`url`]'s; SET-CONTROL requests (modem
//! lines, break, flow control), which some servers never answer, are
//! [`control`]'s.

mod control;
mod link;
mod target;
mod url;

pub(crate) use link::Link;
pub(crate) use target::Target;

pub(crate) use url::{Protocol, RemoteOptions, RemoteUrl};

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::line::LineSettings;
use crate::modem::{ModemInputs, ModemOutputs};
use crate::proto::telnet::line as telnet_line;
use crate::proto::telnet::rfc2217::{self, Command, Message};
use crate::proto::telnet::{Event, Telnet, escape_into};

/// How long the server has to answer a settings request. pyserial waits 3 s
/// for the same.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for a connection before trying again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes waiting for the socket. Each is one device write (a few hundred
/// bytes at most: the device writer's lead); more would only hide the
/// network's backpressure.
const WRITE_QUEUE: usize = 4;

/// Data from the server held while a settings request waits for its answer
/// and the device's reading loop is not running. At connect, data past it
/// is discarded and counted (the port is not open yet: a flooding remote
/// would otherwise hide the answers behind data nobody reads); once open,
/// the socket is left unread past it until the reading loop takes the data.
const PENDING_MAX: usize = 64 * 1024;

/// What the reader learnt from the server.
#[derive(Debug, Default)]
struct Learnt {
    telnet: Option<Telnet>,
    /// Data decoded and not yet returned by `read`.
    data: BytesMut,
    /// The server's last answer to each COM-PORT command, by code.
    answers: Vec<(u8, Command)>,
    modem: Option<ModemInputs>,
}

/// A connected remote port.
#[derive(Debug)]
pub(crate) struct Remote {
    addr: String,
    protocol: Protocol,
    options: RemoteOptions,
    /// The server has left a SET-CONTROL request unanswered: later ones are
    /// sent without waiting (see [`control`]).
    control_unanswered: AtomicBool,
    /// The port is open: connect's negotiation is over, and the device's
    /// reading loop takes the data.
    opened: AtomicBool,
    /// Data the server sent during connect's negotiation past
    /// [`PENDING_MAX`], discarded.
    discarded: AtomicUsize,
    read: tokio::sync::Mutex<link::LinkReader>,
    writes: mpsc::Sender<Bytes>,
    /// Bytes handed to the socket writer and not yet written to the socket.
    queued: std::sync::Arc<AtomicUsize>,
    /// What the link holds unacknowledged, for the output queue.
    outstanding: link::Outstanding,
    learnt: Mutex<Learnt>,
    /// Woken when the server answers a request.
    answered: Notify,
    writer: JoinHandle<()>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

impl Remote {
    /// Connects, and for RFC 2217 negotiates and sends `line`, checking the
    /// server's answers, then `lines` (DTR and RTS), if given.
    pub(crate) async fn connect(
        protocol: Protocol,
        addr: &str,
        options: RemoteOptions,
        line: &LineSettings,
        lines: Option<ModemOutputs>,
    ) -> io::Result<Remote> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))??;
        Self::over(Link::tcp(stream), protocol, addr, options, line, lines).await
    }

    /// [`connect`](Self::connect) over a link already made (a fleet
    /// session); `addr` names the remote port in errors.
    pub(crate) async fn over(
        link: Link,
        protocol: Protocol,
        addr: &str,
        options: RemoteOptions,
        line: &LineSettings,
        lines: Option<ModemOutputs>,
    ) -> io::Result<Remote> {
        let Link {
            reader,
            writer,
            outstanding,
        } = link;
        let (writes, rx) = mpsc::channel(WRITE_QUEUE);
        let queued = std::sync::Arc::new(AtomicUsize::new(0));
        let writer = match writer {
            link::LinkWriter::Tcp(w) => tokio::spawn(write_socket(w, rx, queued.clone())),
            link::LinkWriter::Stream(w) => tokio::spawn(write_socket(w, rx, queued.clone())),
        };
        let remote = Remote {
            addr: addr.to_owned(),
            protocol,
            options,
            control_unanswered: AtomicBool::new(false),
            opened: AtomicBool::new(false),
            discarded: AtomicUsize::new(0),
            read: tokio::sync::Mutex::new(reader),
            writes,
            queued,
            outstanding,
            learnt: Mutex::new(Learnt::default()),
            answered: Notify::new(),
            writer,
        };
        if protocol == Protocol::Rfc2217 {
            let mut hello = BytesMut::new();
            let mut telnet = Telnet::client();
            telnet.start(&mut hello);
            remote.learn().telnet = Some(telnet);
            remote.send(hello.freeze()).await?;
            remote.set_line(line, line).await?;
            if let Some(lines) = lines {
                remote.restore_lines(lines).await?;
            }
        }
        remote.opened.store(true, Relaxed);
        let discarded = remote.discarded.load(Relaxed);
        if discarded > 0 {
            warn!(
                remote = addr,
                discarded,
                kept = remote.learn().data.len(),
                "the remote port sent data faster than the connection's negotiation; \
                 what came past the first 64 KiB before the port was open was discarded"
            );
        }
        Ok(remote)
    }

    fn learn(&self) -> std::sync::MutexGuard<'_, Learnt> {
        self.learnt.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, bytes: Bytes) -> io::Result<()> {
        self.queued.fetch_add(bytes.len(), Relaxed);
        self.writes.send(bytes).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection to the remote port closed",
            )
        })
    }

    /// Waits until a read would not block. Cancel safe.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        if !self.learn().data.is_empty() {
            return Ok(());
        }
        self.read.lock().await.readable().await
    }

    /// Reads the port's data. `Ok(0)` means the connection closed.
    ///
    /// Cancel safe: decoded data not yet returned stays for the next call.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut l = self.learn();
                if !l.data.is_empty() {
                    let n = buf.len().min(l.data.len());
                    buf[..n].copy_from_slice(&l.data.split_to(n));
                    return Ok(n);
                }
            }
            // Read in place: raw data is the answer as it is, and Telnet is
            // decoded from here into `data`, then copied back out above.
            let n = {
                let read = self.read.lock().await;
                read.readable().await?;
                match read.try_read(buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 || self.protocol == Protocol::Raw {
                return Ok(n);
            }
            self.decode(&buf[..n]).await?;
        }
    }

    /// Feeds bytes from the server through Telnet: data is kept for `read`,
    /// answers recorded, negotiation answered.
    async fn decode(&self, raw: &[u8]) -> io::Result<()> {
        let mut events = Vec::new();
        let mut replies = BytesMut::new();
        {
            let mut l = self.learn();
            let Some(telnet) = l.telnet.as_mut() else {
                return Ok(());
            };
            telnet.feed(raw, &mut events, &mut replies);
            for e in events.drain(..) {
                match e {
                    Event::Data(d) if self.opened.load(Relaxed) => l.data.extend_from_slice(&d),
                    Event::Data(d) => {
                        let room = PENDING_MAX.saturating_sub(l.data.len()).min(d.len());
                        l.data.extend_from_slice(&d[..room]);
                        self.discarded.fetch_add(d.len() - room, Relaxed);
                    }
                    Event::ComPort(m) if m.direction == rfc2217::Direction::ToClient => {
                        match m.command {
                            Command::NotifyModemstate(Some(s)) => {
                                l.modem = Some(ModemInputs {
                                    cts: s.contains(rfc2217::ModemState::CTS),
                                    dsr: s.contains(rfc2217::ModemState::DSR),
                                    ri: s.contains(rfc2217::ModemState::RI),
                                    cd: s.contains(rfc2217::ModemState::CD),
                                });
                            }
                            c => {
                                let code = c.code();
                                l.answers.retain(|(k, _)| *k != code);
                                l.answers.push((code, c));
                            }
                        }
                        self.answered.notify_waiters();
                    }
                    Event::Malformed(m) => {
                        debug!(problem = ?m, "malformed telnet from the remote port")
                    }
                    other => debug!(event = ?other, "telnet from the remote port"),
                }
            }
        }
        if !replies.is_empty() {
            self.send(replies.freeze()).await?;
        }
        Ok(())
    }

    /// Sends the port's data, IAC doubled for RFC 2217. Returns once it is
    /// queued for the socket.
    pub(crate) async fn write(&self, data: &[u8]) -> io::Result<usize> {
        let bytes = match self.protocol {
            Protocol::Raw => Bytes::copy_from_slice(data),
            Protocol::Rfc2217 => {
                let mut out = BytesMut::with_capacity(data.len() + 8);
                escape_into(data, &mut out);
                out.freeze()
            }
        };
        self.send(bytes).await?;
        Ok(data.len())
    }

    /// Bytes sent and not yet acknowledged by the server, plus those still
    /// queued for the link.
    pub(crate) fn output_queue(&self) -> io::Result<usize> {
        Ok(self.outstanding.bytes()? + self.queued.load(Relaxed))
    }

    /// Sends `request` without waiting for an answer.
    async fn tell(&self, request: Command) -> io::Result<()> {
        let mut out = BytesMut::new();
        Message::to_server(request).encode(&mut out);
        self.send(out.freeze()).await
    }

    /// Sends `request` and waits, at most `within`, for the server's answer
    /// to its command.
    async fn ask(&self, request: Command, within: Duration) -> io::Result<Command> {
        let code = request.code();
        self.learn().answers.retain(|(k, _)| *k != code);
        self.tell(request).await?;
        let wait = async {
            loop {
                let answered = self.answered.notified();
                if let Some((_, a)) = self.learn().answers.iter().find(|(k, _)| *k == code) {
                    return a.clone();
                }
                answered.await;
            }
        };
        tokio::time::timeout(within, wait).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the remote port {} did not answer in {within:?}", self.addr),
            )
        })
    }

    /// Asks the server for `line`. Fails if it answers other values than
    /// asked (it did not take them) or does not answer; flow control, a
    /// SET-CONTROL request, is awaited as [`control`] says.
    ///
    /// The answers come through [`read`](Self::read), which the device's
    /// reading loop keeps calling; at connect, before that loop runs, this
    /// reads itself.
    pub(crate) async fn set_line(
        &self,
        line: &LineSettings,
        _before: &LineSettings,
    ) -> io::Result<()> {
        if self.protocol == Protocol::Raw {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a raw TCP device server takes no line settings",
            ));
        }
        for request in telnet_line::commands(line) {
            let answer = self.ask_reading(request.clone(), ANSWER_TIMEOUT).await?;
            if answer != request {
                return Err(io::Error::other(format!(
                    "the remote port answered {answer:?} to {request:?}"
                )));
            }
        }
        self.set_control(telnet_line::flow(line.flow_control)).await
    }

    /// [`ask`](Self::ask), reading the socket meanwhile if nobody else is.
    async fn ask_reading(&self, request: Command, within: Duration) -> io::Result<Command> {
        let ask = self.ask(request, within);
        tokio::pin!(ask);
        loop {
            tokio::select! {
                a = &mut ask => return a,
                r = self.pump() => r?,
            }
        }
    }

    /// Reads and decodes once, if no other task holds the read half;
    /// otherwise waits forever (that task decodes the answers).
    async fn pump(&self) -> io::Result<()> {
        // Once the port is open, data decoded while nobody reads it is
        // held, up to a bound; past it the socket is left unread (TCP holds
        // the server back) until the reading loop takes the data. At
        // connect, `decode` discards what is past the bound instead.
        if self.opened.load(Relaxed) && self.learn().data.len() >= PENDING_MAX {
            return std::future::pending().await;
        }
        let Ok(read) = self.read.try_lock() else {
            return std::future::pending().await;
        };
        read.readable().await?;
        let mut raw = [0u8; 1024];
        let n = match read.try_read(&mut raw) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the remote port closed",
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        drop(read);
        self.decode(&raw[..n]).await
    }

    /// The modem inputs the server last reported.
    pub(crate) fn modem_inputs(&self) -> io::Result<ModemInputs> {
        self.learn().modem.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "the remote port reported no modem state",
            )
        })
    }
}

/// Writes queued bytes to the link in order until the queue or the link
/// closes.
async fn write_socket(
    mut sock: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Bytes>,
    queued: std::sync::Arc<AtomicUsize>,
) {
    while let Some(bytes) = rx.recv().await {
        let r = sock.write_all(&bytes).await;
        queued.fetch_sub(bytes.len(), Relaxed);
        if let Err(e) = r {
            warn!(error = %e, "writing to the remote port failed");
            return;
        }
    }
}
