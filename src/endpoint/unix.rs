//! Unix-domain stream socket endpoint, for local programs.
//!
//! The socket file gets the endpoint's `mode` (0660 unless told otherwise),
//! so access is controlled by file permissions. A stale socket file left by a
//! crashed instance is replaced; a live one (something accepts connections on
//! it) is an error. The file is removed when the endpoint is dropped.
//!
//! Unlike TCP, the kernel bounds a unix stream by the *sender's* buffer, so
//! serialhub cannot shrink what a flooding local client has in its socket;
//! serialhub's own part of the in-flight bound still holds.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::accept::{Accept, Peer};

#[derive(Debug, thiserror::Error)]
pub enum UnixError {
    #[error("cannot listen on unix:{path}: {reason}")]
    Bind {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("unix:{0} is in use by a running program")]
    InUse(PathBuf),
    #[error("unix:{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
}

/// A listening unix socket that removes its file when dropped.
#[derive(Debug)]
pub(crate) struct UnixEndpoint {
    listener: UnixListener,
    path: PathBuf,
    /// Clients are named after the endpoint plus a counter, since unix
    /// peers are usually unnamed.
    next: std::sync::atomic::AtomicU64,
}

impl UnixEndpoint {
    pub(crate) fn bind(path: &Path, mode: u32) -> Result<UnixEndpoint, UnixError> {
        let err = |reason| UnixError::Bind {
            path: path.to_owned(),
            reason,
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(UnixError::NotASocket(path.to_owned()));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(UnixError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        Ok(UnixEndpoint {
            listener,
            path: path.to_owned(),
            next: 1.into(),
        })
    }

    /// Accepts one connection, whole (for the control socket).
    pub(crate) async fn accept_stream(&self) -> std::io::Result<tokio::net::UnixStream> {
        self.listener.accept().await.map(|(s, _)| s)
    }
}

impl Drop for UnixEndpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl std::os::fd::AsFd for UnixEndpoint {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Accept for UnixEndpoint {
    type Source = OwnedReadHalf;
    type Sink = OwnedWriteHalf;

    async fn accept(&self) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, Peer)> {
        let (stream, _) = self.listener.accept().await?;
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (source, sink) = stream.into_split();
        let name = format!("unix:{}#{n}", self.path.display());
        Ok((source, sink, Peer { name, ip: None }))
    }
}
