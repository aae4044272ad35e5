//! `serialhub fleet connect HOST/PORT`: a terminal on a fleet port, over a
//! `raw` session: stdin to the device, the device to stdout.
//!
//! At a terminal, stdin is put in raw mode (every key goes to the device,
//! Ctrl-C too; the mode is restored on exit) and `~.` at the start of a
//! line quits ([`super::escape`]). In a pipe nothing is escaped: at the end
//! of stdin the sending side is closed, and what the device answers is
//! printed until it has been quiet for [`QUIET`] once everything sent was
//! acknowledged, or the session ends.
//!
//! Stdin is read by a thread of its own, not the runtime's blocking pool:
//! a read that never returns (a terminal nobody types at) would otherwise
//! hold the runtime, and the process, at exit.

use std::cell::Cell;
use std::io::{self, IsTerminal, Read};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::FleetError;
use super::address::FleetPort;
use super::config::Broker;
use super::connect::{CONNECT_WAIT, connect_within};
use super::dial;
use super::escape::{Escape, Typed};
use super::stream;
use super::wire::Mode;
use crate::endpoint::sink::{Shared, SocketHalf};
use crate::endpoint::source::ClientSource;

/// How long the device must be quiet, after the end of a piped stdin, for
/// its answer to be taken as complete.
pub(crate) const QUIET: Duration = Duration::from_secs(1);
/// Reads of stdin waiting for the session: a few, so typing ahead and
/// piping in are held back by the session's window, not buffered here.
const STDIN_QUEUE: usize = 4;
/// Size of one read of stdin or of the session.
const CHUNK: usize = 4096;

/// Bytes the device may send ahead of what the terminal printed: a
/// screenful many times over, and a small part of a session's most.
const WINDOW: usize = 64 * 1024;
/// The most the end of a session may take: the session's own linger for
/// unacknowledged bytes, and a little more to tell the host.
const CLOSE_WAIT: Duration = Duration::from_secs(7);

/// `serialhub fleet connect HOST/PORT`, through `broker`.
pub(crate) async fn run(broker: &Broker, port: &FleetPort) -> Result<(), FleetError> {
    let conn = connect_within(broker, "serialhub fleet connect", CONNECT_WAIT).await?;
    let (reader, writer) = dial::open_over(&conn.client, port, Mode::Raw, WINDOW)
        .await
        .map_err(|e| FleetError::Session(e.to_string()))?;
    let writer = Arc::new(writer);
    let raw = RawMode::enter();
    let how = match raw {
        Some(_) => {
            eprint!("serialhub: connected to {port}; ~. at the start of a line quits\r\n");
            Input::Terminal
        }
        None => Input::Pipe,
    };
    let stop = CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(stop.clone()));
    let held = Held(writer.clone());
    let unacked = || writer.unacked();
    let mut stdout = tokio::io::stdout();
    let ended = relay(
        read_stdin(),
        how,
        &reader,
        held,
        unacked,
        &mut stdout,
        &stop,
    )
    .await;
    signals.abort();
    drop(raw);
    // The host detaches its client now rather than after its silence
    // timeout; what was sent is given the session's linger to arrive.
    if let Ok(writer) = Arc::try_unwrap(writer) {
        let _ = tokio::time::timeout(CLOSE_WAIT, stream::close(reader, writer)).await;
    }
    match ended {
        Ok(Ended::Closed) if how == Input::Terminal => {
            eprintln!("\r\nserialhub: {port} closed the session");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(FleetError::Session(format!("{port}: {e}"))),
    }
}

/// Cancels `stop` at SIGINT or SIGTERM (in raw mode Ctrl-C is a key for
/// the device, not a signal).
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    stop.cancel();
}

/// The session's sending half, held also by the count of what it has
/// not yet had acknowledged.
#[derive(Debug)]
struct Held<W>(Arc<W>);

impl<W: SocketHalf> SocketHalf for Held<W> {
    fn poll_write_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        self.0.poll_write_ready(cx)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.0.shutdown_write()
    }
}

/// How the terminal's input is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// A person at a terminal: `~.` quits.
    Terminal,
    /// A pipe or a file: sent as it is; its end closes the sending side.
    Pipe,
}

/// Stdin in raw mode for as long as this lives.
pub(crate) struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// Puts stdin in raw mode if it is a terminal.
    pub(crate) fn enter() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Reads stdin on a thread of its own (see the module docs) into a small
/// bounded queue; the queue closes at the end of stdin.
pub(crate) fn read_stdin() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading stdin failed; taking it as its end");
                    return;
                }
            }
        }
    });
    rx
}

/// Why the terminal ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// `~.` typed.
    Quit,
    /// The input ended and the device has been quiet since.
    Quiet,
    /// The far end closed the session.
    Closed,
    /// Shutdown (a signal).
    Stopped,
}

/// Relays `input` to the session's `writer` and the session's `reader` to
/// `output` until one of the [`Ended`] cases. `unacked` says how many bytes
/// sent the far end has not yet acknowledged.
pub(crate) async fn relay<R, W>(
    mut input: mpsc::Receiver<Vec<u8>>,
    how: Input,
    reader: &R,
    writer: W,
    unacked: impl Fn() -> usize,
    output: &mut (impl AsyncWrite + Unpin),
    shutdown: &CancellationToken,
) -> io::Result<Ended>
where
    R: ClientSource,
    W: SocketHalf,
{
    let last_heard = Cell::new(Instant::now());
    let mut sink = Shared::new(writer);
    let to_device = async {
        let mut escape = Escape::default();
        while let Some(keys) = input.recv().await {
            let (send, quit) = match how {
                Input::Pipe => (keys, false),
                Input::Terminal => match escape.feed(&keys) {
                    Typed::Send(b) => (b, false),
                    Typed::Quit(b) => (b, true),
                },
            };
            sink.write_all(&send).await?;
            if quit {
                return Ok(Ended::Quit);
            }
        }
        sink.shutdown().await?;
        Ok::<_, io::Error>(Ended::Quiet)
    };
    let to_user = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            reader.readable().await?;
            let n = match reader.try_read(&mut buf) {
                Ok(0) => return Ok::<_, io::Error>(Ended::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            last_heard.set(Instant::now());
            output.write_all(&buf[..n]).await?;
            output.flush().await?;
        }
    };
    tokio::pin!(to_device, to_user);
    tokio::select! {
        r = &mut to_device => match r? {
            Ended::Quiet => {}
            other => return Ok(other),
        },
        r = &mut to_user => return r,
        () = shutdown.cancelled() => return Ok(Ended::Stopped),
    }
    // The input ended: print the answer until the device has been quiet
    // for QUIET since everything sent was acknowledged.
    let mut acked = false;
    loop {
        if !acked && unacked() == 0 {
            acked = true;
            last_heard.set(last_heard.get().max(Instant::now()));
        }
        let due = match acked {
            true => last_heard.get() + QUIET,
            false => Instant::now() + Duration::from_millis(20),
        };
        tokio::select! {
            r = &mut to_user => return r,
            () = tokio::time::sleep_until(due) => {
                if acked && last_heard.get().elapsed() >= QUIET {
                    return Ok(Ended::Quiet);
                }
            }
            () = shutdown.cancelled() => return Ok(Ended::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A TCP connection to an echo server, split as a session would be.
    async fn echo_session() -> (
        tokio::net::tcp::OwnedReadHalf,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            loop {
                match s.read(&mut buf).await {
                    // Open still, as a session stays after the client's
                    // end of input.
                    Ok(0) => std::future::pending::<()>().await,
                    Err(_) => return,
                    Ok(n) => s.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
        TcpStream::connect(addr).await.unwrap().into_split()
    }

    #[tokio::test]
    async fn a_pipe_is_sent_and_the_answer_printed_until_the_device_is_quiet() {
        let (r, w) = echo_session().await;
        let (tx, rx) = mpsc::channel(4);
        tx.send(b"reboot\n".to_vec()).await.unwrap();
        drop(tx);
        let mut out = Vec::new();
        let stop = CancellationToken::new();
        let started = std::time::Instant::now();
        let ended = relay(rx, Input::Pipe, &r, w, || 0, &mut out, &stop)
            .await
            .unwrap();
        assert_eq!(ended, Ended::Quiet);
        assert_eq!(out, b"reboot\n");
        assert!(started.elapsed() >= QUIET);
    }

    #[tokio::test]
    async fn at_a_terminal_tilde_dot_quits_and_the_rest_is_sent() {
        let (r, w) = echo_session().await;
        let (tx, rx) = mpsc::channel(4);
        tx.send(b"ab~~\r".to_vec()).await.unwrap();
        let stop = CancellationToken::new();
        let (mut out, mut printed) = tokio::io::duplex(64);
        let relayed = relay(rx, Input::Terminal, &r, w, || 0, &mut out, &stop);
        tokio::pin!(relayed);
        // `~.` is typed once the echo of the line before it is printed.
        let typed = async {
            let mut echo = [0u8; 5];
            printed.read_exact(&mut echo).await.unwrap();
            assert_eq!(&echo, b"ab~~\r");
            tx.send(b"~.".to_vec()).await.unwrap();
            std::future::pending::<()>().await
        };
        let ended = tokio::select! {
            e = &mut relayed => e.unwrap(),
            () = typed => unreachable!(),
        };
        assert_eq!(ended, Ended::Quit);
    }
}
