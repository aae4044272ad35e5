//! What a remote port is reached over: a TCP connection (`rfc2217://`,
//! `tcp://`), or another ordered byte stream, a fleet session
//! (`fleet://HOST/PORT`, see [`crate::fleet`]).
//!
//! TCP keeps its own variant, so its reads stay the socket's own calls,
//! with no boxed future per read, and its output queue is the kernel's
//! unacknowledged bytes (`SIOCOUTQ`). Any other stream is a client
//! connection's two halves ([`ClientSource`], [`SocketHalf`]) that also
//! say how many bytes the far end has not yet acknowledged: that count is
//! the stream's part of the device's output queue, so the in-flight bound
//! holds across the broker as it does across TCP.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::endpoint::sink::{Shared, SocketHalf};
use crate::endpoint::source::ClientSource;

/// A stream's receiving half, with a boxed readiness future so that it can
/// be held as a trait object.
pub(crate) trait StreamSource: Send + Sync + std::fmt::Debug {
    fn readable(&self) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl<T: ClientSource + Send + Sync + std::fmt::Debug> StreamSource for T {
    fn readable(&self) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>> {
        Box::pin(ClientSource::readable(self))
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        ClientSource::try_read(self, buf)
    }
}

/// A stream's sending half, which knows what its peer has not yet
/// acknowledged.
pub(crate) trait StreamSink: SocketHalf {
    /// Bytes written and not yet acknowledged by the far end's reader.
    fn unacked(&self) -> usize;
}

impl StreamSink for crate::fleet::stream::FleetWriter {
    fn unacked(&self) -> usize {
        crate::fleet::stream::FleetWriter::unacked(self)
    }
}

/// Lets the device's writer task and [`Link::output_queue`] share one
/// sending half.
impl SocketHalf for Arc<dyn StreamSink> {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_write_ready(cx)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        (**self).try_write(buf)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        (**self).shutdown_write()
    }
}

/// The receiving side of a link.
#[derive(Debug)]
pub(super) enum LinkReader {
    Tcp(OwnedReadHalf),
    Stream(Box<dyn StreamSource>),
}

impl LinkReader {
    /// Waits until a read may succeed. Cancel safe.
    pub(super) async fn readable(&self) -> io::Result<()> {
        match self {
            LinkReader::Tcp(r) => r.readable().await,
            LinkReader::Stream(r) => r.readable().await,
        }
    }

    /// Reads without waiting: `WouldBlock` if readiness was spurious,
    /// `Ok(0)` at the end of the stream.
    pub(super) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            LinkReader::Tcp(r) => r.try_read(buf),
            LinkReader::Stream(r) => r.try_read(buf),
        }
    }
}

/// Where a link's unsent and unacknowledged bytes are counted.
#[derive(Debug)]
pub(super) enum Outstanding {
    /// The socket's descriptor, for `SIOCOUTQ`; it lives as long as the
    /// read half the link's reader holds.
    Tcp(RawFd),
    Stream(Arc<dyn StreamSink>),
}

impl Outstanding {
    /// Bytes the link took and its far end has not acknowledged.
    pub(super) fn bytes(&self) -> io::Result<usize> {
        match self {
            Outstanding::Tcp(fd) => {
                nix::ioctl_read_bad!(siocoutq, libc::TIOCOUTQ, libc::c_int);
                let mut n: libc::c_int = 0;
                // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one c_int through the
                // pointer; the descriptor lives as long as the remote's reader.
                unsafe { siocoutq(*fd, &mut n) }?;
                Ok(usize::try_from(n).unwrap_or(0))
            }
            Outstanding::Stream(w) => Ok(w.unacked()),
        }
    }
}

/// The sending side of a link, which the remote's writer task takes.
#[derive(Debug)]
pub(super) enum LinkWriter {
    Tcp(OwnedWriteHalf),
    Stream(Shared<Arc<dyn StreamSink>>),
}

/// A connected link to a remote port, in its three parts.
#[derive(Debug)]
pub(crate) struct Link {
    pub(super) reader: LinkReader,
    pub(super) writer: LinkWriter,
    pub(super) outstanding: Outstanding,
}

impl Link {
    /// A TCP connection, with Nagle off: each device write is sent as it
    /// comes, as a serial line would.
    pub(super) fn tcp(stream: TcpStream) -> Link {
        let _ = stream.set_nodelay(true);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let (read, write) = stream.into_split();
        Link {
            reader: LinkReader::Tcp(read),
            writer: LinkWriter::Tcp(write),
            outstanding: Outstanding::Tcp(fd),
        }
    }

    /// Any other ordered byte stream (a fleet session).
    pub(crate) fn stream(
        reader: impl StreamSource + 'static,
        writer: impl StreamSink + 'static,
    ) -> Link {
        let writer: Arc<dyn StreamSink> = Arc::new(writer);
        Link {
            reader: LinkReader::Stream(Box::new(reader)),
            writer: LinkWriter::Stream(Shared::new(writer.clone())),
            outstanding: Outstanding::Stream(writer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LineSettings;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A TCP write half that claims a fixed number of unacknowledged bytes.
    #[derive(Debug)]
    struct Counted(OwnedWriteHalf, usize);

    impl SocketHalf for Counted {
        fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.0.poll_write_ready(cx)
        }
        fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            self.0.try_write(buf)
        }
        fn shutdown_write(&self) -> io::Result<()> {
            self.0.shutdown_write()
        }
    }

    impl StreamSink for Counted {
        fn unacked(&self) -> usize {
            self.1
        }
    }

    #[tokio::test]
    async fn a_remote_runs_over_any_stream_and_counts_its_unacked_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut far, _) = listener.accept().await.unwrap();
        let (read, write) = near.into_split();
        let link = Link::stream(read, Counted(write, 7));
        let line = LineSettings::default();
        let remote = super::super::Remote::over(
            link,
            super::super::Protocol::Raw,
            "test",
            Default::default(),
            &line,
            None,
        )
        .await
        .unwrap();
        assert_eq!(remote.write(b"ping").await.unwrap(), 4);
        let mut got = [0u8; 4];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert_eq!(remote.output_queue().unwrap(), 7);
        far.write_all(b"pong").await.unwrap();
        let mut back = [0u8; 4];
        let mut n = 0;
        while n < 4 {
            remote.readable().await.unwrap();
            n += remote.read(&mut back[n..]).await.unwrap();
        }
        assert_eq!(&back, b"pong");
        drop(far);
        remote.readable().await.unwrap();
        assert_eq!(remote.read(&mut back).await.unwrap(), 0, "end of stream");
    }
}
