//! A stream client's sending half, shared between its writer task and the
//! hub's fan-out.
//!
//! [`Shared`] is the client's `AsyncWrite` sink, and also the hub's
//! [`DirectSink`]: while the client keeps up, device data is written to its
//! socket by the fan-out itself, and the writer task only takes over what the
//! socket could not take at once (see [`crate::hub::queue`]).

use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use socket2::SockRef;
use tokio::io::AsyncWrite;

use crate::hub::DirectSink;

/// The sending half of a stream socket, written through `&self`.
pub(crate) trait SocketHalf: Send + Sync + std::fmt::Debug + 'static {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Ends the sending side (FIN), leaving the receiving side open.
    fn shutdown_write(&self) -> io::Result<()>;
}

macro_rules! socket_half {
    ($half:ty) => {
        impl SocketHalf for $half {
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.as_ref().poll_write_ready(cx)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$half>::try_write(self, buf)
            }
            fn shutdown_write(&self) -> io::Result<()> {
                SockRef::from(self.as_ref()).shutdown(Shutdown::Write)
            }
        }
    };
}
socket_half!(tokio::net::tcp::OwnedWriteHalf);
socket_half!(tokio::net::unix::OwnedWriteHalf);

/// A socket's sending half that the writer task and the hub both hold.
#[derive(Debug)]
pub(crate) struct Shared<T>(Arc<T>);

impl<T: SocketHalf> Shared<T> {
    pub(crate) fn new(half: T) -> Self {
        Self(Arc::new(half))
    }

    /// The same socket, for the hub's fan-out to write through.
    pub(crate) fn direct(&self) -> Arc<dyn DirectSink> {
        Arc::new(Self(self.0.clone()))
    }
}

impl<T: SocketHalf> DirectSink for Shared<T> {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
}

impl<T: SocketHalf> AsyncWrite for Shared<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            // A WouldBlock from try_write clears the readiness, so the next
            // poll registers for the socket's next writable edge.
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown_write())
    }
}
