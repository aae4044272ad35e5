//! The control socket's client, for `serialhub status`, `kick` and the like.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no serialhub at {path}: {reason}")]
    Connect {
        path: String,
        reason: std::io::Error,
    },
    #[error("control socket {path}: {reason}")]
    Io {
        path: String,
        reason: std::io::Error,
    },
    #[error("control socket {path}: bad answer: {reason}")]
    Answer {
        path: String,
        reason: serde_json::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// How long a request may take: a status of many ports is still quick.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` to the daemon at `path`; an answer with `ok: false` is
/// returned as [`ControlError::Refused`].
pub fn request(path: &Path, request: &Request) -> Result<Response, ControlError> {
    let shown = path.display().to_string();
    let io = |reason| ControlError::Io {
        path: shown.clone(),
        reason,
    };
    let mut stream = UnixStream::connect(path).map_err(|reason| ControlError::Connect {
        path: shown.clone(),
        reason,
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_vec(request).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    let response: Response =
        serde_json::from_str(&answer).map_err(|reason| ControlError::Answer {
            path: shown.clone(),
            reason,
        })?;
    if !response.ok {
        return Err(ControlError::Refused(
            response.error.unwrap_or_else(|| "refused".into()),
        ));
    }
    Ok(response)
}
