//! Where control sockets live when none is named, and how the control
//! commands find every running serialhub of the user.
//!
//! A daemon given no socket (`--control` or `[control] socket`) listens on
//! `PID.sock` in the user's runtime directory: `$XDG_RUNTIME_DIR/serialhub/`,
//! `/run/serialhub/` as root without `XDG_RUNTIME_DIR` (the service's
//! `RuntimeDirectory`), else `/tmp/serialhub-UID/`. One socket per process,
//! so any number of daemons run side by side, and the control commands
//! without `--control` ask every socket in the directory. `serialhub.sock` is
//! also looked at: it is the documented socket of the system service
//! (`/run/serialhub/serialhub.sock`).
//!
//! The directory is made with mode 0700 when missing. One that others could
//! have made (the `/tmp` fallback) must belong to the user and be closed to
//! others, or it is not used: someone else's socket there could answer for
//! a daemon that is not ours.
//!
//! A daemon killed with SIGKILL leaves its socket behind. A connection to it
//! is refused: the commands skip it silently, and remove it when the process
//! its name carries is gone (so never while a new daemon of that pid is
//! between its `bind` and its `listen`).

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The service's socket name (see `dist/serialhub.toml`), found as well as
/// the per-process ones.
pub(crate) const SERVICE_SOCKET: &str = "serialhub.sock";

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot make the runtime directory {path}: {reason}")]
    Create {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error(
        "{path} is not a directory that only you can use (it must be yours, with mode 0700); \
         remove it or give --control PATH"
    )]
    Unsafe { path: PathBuf },
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// The runtime directory, and whether others could have made it (so that
/// its owner and mode must be checked before it is trusted).
fn runtime_dir_checked() -> (PathBuf, bool) {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        // $XDG_RUNTIME_DIR is the user's own (0700), but `serialhub` in it
        // is checked anyway: it costs nothing.
        return (PathBuf::from(dir).join("serialhub"), true);
    }
    match uid() {
        // Only root can make directories in /run; systemd makes this one
        // for the service's user, mode 0750.
        0 => (PathBuf::from("/run/serialhub"), false),
        uid => (PathBuf::from(format!("/tmp/serialhub-{uid}")), true),
    }
}

/// Where the control sockets of this user's daemons are.
pub(crate) fn runtime_dir() -> PathBuf {
    runtime_dir_checked().0
}

/// This process's socket in the runtime directory: `DIR/PID.sock`.
pub(crate) fn own_socket() -> PathBuf {
    runtime_dir().join(format!("{}.sock", std::process::id()))
}

/// Makes the runtime directory if missing (mode 0700) and checks that only
/// the user can use it.
pub(crate) fn prepare() -> Result<PathBuf, DirError> {
    let (dir, check) = runtime_dir_checked();
    if std::fs::symlink_metadata(&dir).is_err() {
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        // Someone may have made it meanwhile: checked below either way.
        if let Err(reason) = made
            && reason.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(DirError::Create { path: dir, reason });
        }
    }
    if check && !private(&dir) {
        return Err(DirError::Unsafe { path: dir });
    }
    Ok(dir)
}

/// A real directory (not a link), the user's, closed to group and others.
fn private(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid() && m.mode() & 0o077 == 0)
}

/// The control sockets in the runtime directory, sorted by path: every
/// `PID.sock` and the service's `serialhub.sock`. Nothing (not an error)
/// when the directory is missing; an error when it is not safe to use.
pub(crate) fn sockets() -> Result<Vec<PathBuf>, DirError> {
    let (dir, check) = runtime_dir_checked();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    if check && !private(&dir) {
        return Err(DirError::Unsafe { path: dir });
    }
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_control_name(p))
        .collect();
    found.sort();
    Ok(found)
}

/// `PID.sock` or `serialhub.sock`. Other sockets in the directory may be
/// unix endpoints, whose bytes go to a device: never written to.
fn is_control_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name == SERVICE_SOCKET || pid_of(path).is_some()
}

/// The pid in a `PID.sock` name.
fn pid_of(path: &Path) -> Option<i32> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".sock")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().filter(|&p| p > 0)
}

/// A socket nobody listens on: removed when it is a `PID.sock` whose
/// process is gone. A process of that pid, even one that is not a
/// serialhub, keeps it: it may be a new daemon about to listen.
pub(crate) fn clean_stale(path: &Path) {
    let Some(pid) = pid_of(path) else { return };
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
        == Err(nix::errno::Errno::ESRCH);
    if gone && std::fs::remove_file(path).is_ok() {
        tracing::debug!(path = %path.display(), "removed the socket of a daemon that is gone");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pid_and_service_sockets_are_control_sockets() {
        for yes in ["/d/1234.sock", "/d/serialhub.sock", "/d/1.sock"] {
            assert!(is_control_name(Path::new(yes)), "{yes}");
        }
        for no in [
            "/d/plc.sock",
            "/d/.sock",
            "/d/0.sock",
            "/d/12a.sock",
            "/d/-1.sock",
            "/d/1234",
            "/d/99999999999999999999.sock",
        ] {
            assert!(!is_control_name(Path::new(no)), "{no}");
        }
    }
}
