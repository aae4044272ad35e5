//! The one error every command returns, and whether it is a usage error.
//!
//! The error convention (issue 20): every error's own text is complete. A
//! message that includes what caused it (an io error, an inner error) does
//! not also return it from `source()`; the library's errors all include it,
//! so none has a source, and `#[error(transparent)]` wrappers pass the inner
//! one on as it is. Printing an [`Error`] with `{}` therefore states each
//! fact once; the same text is complete where errors are logged with `{}`
//! (reload, a reconnect).

use std::path::PathBuf;

use crate::config::{ConfigError, FileError};
use crate::control::client::ControlError;
use crate::control::discover::DirError;
use crate::daemon::DaemonError;
use crate::docgen::DocgenError;
use crate::logcmd::LogError;
use crate::sim::SimError;
use crate::traffic::TrafficError;

/// Why a command failed. [`Error::is_usage`] tells the binary which exit
/// status that is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or setting out of range (usage).
    #[error("invalid settings: {0}")]
    Settings(ConfigError),
    /// A configuration file that cannot be read or is wrong (usage).
    #[error(transparent)]
    File(FileError),
    /// A configuration file's traffic log directory that `serve` would
    /// refuse (usage).
    #[error("{}: port {port:?}: {error}", file.display())]
    LogDir {
        file: PathBuf,
        port: String,
        error: TrafficError,
    },
    #[error("cannot start runtime: {0}")]
    Runtime(std::io::Error),
    /// The runtime directory for this serve's own control socket.
    #[error("control socket: {0}")]
    ControlDir(DirError),
    #[error(transparent)]
    Daemon(DaemonError),
    #[error(transparent)]
    Control(ControlError),
    #[error(transparent)]
    Sim(SimError),
    #[error(transparent)]
    Log(LogError),
    #[error(transparent)]
    Docgen(DocgenError),
    /// `serialhub passwd` (usage: the password given).
    #[error("passwd: {0}")]
    Passwd(String),
    /// The fleet: its settings, the broker, the registry.
    #[error(transparent)]
    Fleet(crate::fleet::FleetError),
}

impl Error {
    /// Settings out of range and bad configuration files are usage errors,
    /// like the ones clap reports: the command or the file must change.
    /// Anything else stopped a command that was well asked.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Settings(_) | Error::File(_) | Error::LogDir { .. } | Error::Passwd(_)
        ) || matches!(self, Error::Fleet(e) if e.is_usage())
    }
}
