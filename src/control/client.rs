//! The control socket's client, for `serialhub status`, `kick` and the like:
//! one request to a named socket ([`request`]), or to the daemon(s) a
//! request is for among every one running ([`request_found`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::discover::{self, DirError};
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
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(
        "no serialhub is running: no control socket answers in {}; start one with \
         `serialhub serve`, or name its socket with --control PATH",
        .0.display()
    )]
    NoneRunning(PathBuf),
    #[error("no running serialhub serves port {port} (ports: {known})")]
    NoSuchPort { port: String, known: String },
    /// Several daemons could be meant: the user names one.
    #[error("{0}; pick one with --control PATH")]
    Ambiguous(String),
}

impl ControlError {
    /// Nobody listens there: a daemon that is gone (or the file just went).
    fn stale(&self) -> bool {
        matches!(self, ControlError::Connect { reason, .. }
            if matches!(reason.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound))
    }
}

/// A daemon's answer, and the socket it came from.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) socket: PathBuf,
    pub(crate) response: Response,
}

impl Answer {
    /// `pid 1234, control /run/user/1000/serialhub/1234.sock, config hub.toml`.
    pub(crate) fn origin(&self) -> String {
        let mut s = String::new();
        if let Some(d) = &self.response.daemon {
            s = format!("pid {}, ", d.pid);
        }
        s += &format!("control {}", self.socket.display());
        match self
            .response
            .daemon
            .as_ref()
            .and_then(|d| d.config.as_ref())
        {
            Some(file) => s + &format!(", config {}", file.display()),
            None => s + ", started with flags",
        }
    }
}

/// Every daemon in the runtime directory with its status; each port is
/// marked with its daemon's socket and pid. Sockets nobody listens on are
/// skipped, and removed when their process is gone; a daemon that fails
/// otherwise is reported on stderr and skipped, unless every one fails.
pub(crate) fn find_all() -> Result<Vec<Answer>, ControlError> {
    let mut found = Vec::new();
    let mut failed = None;
    for socket in discover::sockets()? {
        match request(&socket, &Request::Status { port: None }) {
            Ok(mut response) => {
                let pid = response.daemon.as_ref().map(|d| d.pid);
                for p in &mut response.ports {
                    p.control = Some(socket.clone());
                    p.pid = pid;
                }
                found.push(Answer { socket, response });
            }
            Err(e) if e.stale() => discover::clean_stale(&socket),
            Err(e) => {
                eprintln!("serialhub: warning: {e}");
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) if found.is_empty() => Err(e),
        _ if found.is_empty() => Err(ControlError::NoneRunning(discover::runtime_dir())),
        _ => Ok(found),
    }
}

/// Sends `asked` to the daemon(s) it is for, found in the runtime directory:
/// `status` to all (or those serving the port named), `kick`, `lock` and
/// `unlock` to the one serving the port, `reload` to the only daemon or the
/// only one started from a file.
pub(crate) fn request_found(asked: &Request) -> Result<Vec<Answer>, ControlError> {
    let found = find_all()?;
    let port = match asked {
        Request::Status { port: None } => return Ok(found),
        Request::Status { port: Some(name) } => {
            let known = known_ports(&found);
            let hits: Vec<Answer> = found
                .into_iter()
                .filter_map(|mut a| {
                    a.response.ports.retain(|p| p.name == *name);
                    (!a.response.ports.is_empty()).then_some(a)
                })
                .collect();
            if hits.is_empty() {
                return Err(ControlError::NoSuchPort {
                    port: name.clone(),
                    known,
                });
            }
            return Ok(hits);
        }
        Request::Reload => {
            let socket = reload_target(found)?;
            let response = request(&socket, asked)?;
            return Ok(vec![Answer { socket, response }]);
        }
        Request::Kick { port, .. } | Request::Lock { port } | Request::Unlock { port } => port,
    };
    let serving: Vec<&Answer> = found
        .iter()
        .filter(|a| a.response.ports.iter().any(|p| p.name == *port))
        .collect();
    let socket = match serving.as_slice() {
        [one] => one.socket.clone(),
        [] => {
            return Err(ControlError::NoSuchPort {
                port: port.clone(),
                known: known_ports(&found),
            });
        }
        several => {
            return Err(ControlError::Ambiguous(format!(
                "port {port} is served by {} serialhubs ({})",
                several.len(),
                list(several.iter().copied())
            )));
        }
    };
    let response = request(&socket, asked)?;
    Ok(vec![Answer { socket, response }])
}

/// The daemon `reload` is for: the only one, or the only one started from
/// a configuration file (a flags-started one has nothing to reload).
fn reload_target(found: Vec<Answer>) -> Result<PathBuf, ControlError> {
    let from_file: Vec<&Answer> = found
        .iter()
        .filter(|a| {
            a.response
                .daemon
                .as_ref()
                .is_some_and(|d| d.config.is_some())
        })
        .collect();
    match (found.as_slice(), from_file.as_slice()) {
        ([one], _) => Ok(one.socket.clone()),
        (_, [one]) => Ok(one.socket.clone()),
        (all, []) => Err(ControlError::Ambiguous(format!(
            "{} serialhubs are running, none from a configuration file ({})",
            all.len(),
            list(all.iter())
        ))),
        (_, several) => Err(ControlError::Ambiguous(format!(
            "{} serialhubs are running from configuration files ({})",
            several.len(),
            list(several.iter().copied())
        ))),
    }
}

fn list<'a>(answers: impl Iterator<Item = &'a Answer>) -> String {
    answers.map(Answer::origin).collect::<Vec<_>>().join("; ")
}

/// `lab1, lab2`, or `none`.
fn known_ports(found: &[Answer]) -> String {
    let names: Vec<&str> = found
        .iter()
        .flat_map(|a| a.response.ports.iter().map(|p| p.name.as_str()))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// How long a request may take: a status of many ports is still quick.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` to the daemon at `path`; an answer with `ok: false` is
/// returned as [`ControlError::Refused`].
pub(crate) fn request(path: &Path, request: &Request) -> Result<Response, ControlError> {
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
