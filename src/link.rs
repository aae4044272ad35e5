//! A symlink serialhub owns: the stable path a pty is reached by.
//!
//! serialhub never replaces or deletes a file that is not its own. A link is
//! made only where nothing is, or over a *dangling* symlink (its target is
//! gone, like the link of a serialhub that crashed). A symlink to something
//! that exists is refused: it may be another serialhub's live port, or a
//! device link such as `/dev/serial/by-id/...`. A stale link whose pty name
//! has since been reused by some other program's terminal points at
//! something that exists, so it is refused too; the error says to remove it
//! if it is stale. Refusing is the safe side.
//!
//! A new link is created with `symlink(2)`, which fails rather than replace
//! anything. A dangling link is replaced by swapping a new link, made under
//! a unique temporary name, with it in one `renameat2(RENAME_EXCHANGE)`,
//! then checking what was swapped out: had another program put a live link
//! there in the meantime, it is swapped back. On drop the link is removed
//! only if it still points where serialhub put it.
//!
//! A link that points at something that exists is still taken over when it
//! is a dead serialhub's (issue 19: after a SIGKILL, the restarted process's
//! own pty takes the freed pty number, so the stale link looks live). An
//! owner holds an [`OwnerLock`] beside its link for the link's life: a
//! hidden file, `flock`ed, naming the target. A crashed owner leaves the
//! file but not the lock, so a link that still points where the file says
//! is known to be a dead serialhub's. A live owner's lock refuses a second
//! serialhub, whatever its link points at.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use tracing::warn;

/// Attempts at creating the link while the path keeps changing under us.
const ATTEMPTS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0} exists and is not a symlink; refusing to replace it")]
    NotALink(PathBuf),
    #[error(
        "{path} is a symlink to {target}, which exists (another serialhub's port, or a device?); \
         refusing to replace it. If it is a stale link, remove it"
    )]
    InUse { path: PathBuf, target: PathBuf },
    #[error("{0} is served by another running serialhub; refusing to take it over")]
    Owned(PathBuf),
    #[error("cannot create symlink {path}: {reason}")]
    Io { path: PathBuf, reason: io::Error },
}

/// The lock a live owner holds on its link's path (see the module docs).
#[derive(Debug)]
struct OwnerLock {
    file: nix::fcntl::Flock<std::fs::File>,
    path: PathBuf,
}

impl OwnerLock {
    /// Takes the lock on `link`'s path, with the target its last owner
    /// recorded; `None` while a live owner holds it.
    fn take(link: &Path) -> io::Result<Option<(OwnerLock, Option<PathBuf>)>> {
        use nix::errno::Errno;
        use nix::fcntl::{Flock, FlockArg};
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let name = link.file_name().unwrap_or_default().to_string_lossy();
        let path = link.with_file_name(format!(".{name}.serialhub-owner"));
        for _ in 0..ATTEMPTS {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => return Err(e.into()),
            };
            // Its owner may have removed it between our open and our lock:
            // only the file at the path counts.
            let ours = identity(&file.metadata()?);
            if !std::fs::symlink_metadata(&path).is_ok_and(|m| identity(&m) == ours) {
                continue;
            }
            let mut recorded = String::new();
            (&*file).take(4096).read_to_string(&mut recorded)?;
            let recorded = (!recorded.is_empty()).then(|| PathBuf::from(recorded));
            return Ok(Some((OwnerLock { file, path }, recorded)));
        }
        Err(io::Error::other("its owner file keeps changing"))
    }

    /// Records the target the link was made to.
    fn record(&self, target: &Path) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::FileExt;
        self.file.set_len(0)?;
        self.file.write_all_at(target.as_os_str().as_bytes(), 0)
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // Removed while still locked; the lock goes when the file closes.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A symlink at `path` to `target`, removed on drop if it is still ours.
#[derive(Debug)]
pub(crate) struct OwnedLink {
    path: PathBuf,
    target: PathBuf,
    /// Dropped after the link is removed.
    _lock: OwnerLock,
}

impl OwnedLink {
    /// Links `path` to `target`, where nothing is, over a dangling symlink,
    /// or over a dead serialhub's link.
    pub(crate) fn create(path: &Path, target: &Path) -> Result<OwnedLink, LinkError> {
        let io_err = |reason| LinkError::Io {
            path: path.to_owned(),
            reason,
        };
        let Some((lock, recorded)) = OwnerLock::take(path).map_err(io_err)? else {
            return Err(LinkError::Owned(path.to_owned()));
        };
        let made = |lock: OwnerLock| {
            if let Err(e) = lock.record(target) {
                warn!(error = %e, "cannot record the owner of {}; after a crash, \
                    remove the link by hand", path.display());
            }
            Ok(OwnedLink {
                path: path.to_owned(),
                target: target.to_owned(),
                _lock: lock,
            })
        };
        for _ in 0..ATTEMPTS {
            match std::os::unix::fs::symlink(target, path) {
                Ok(()) => return made(lock),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(e)),
            }
            let replaceable = match check(path)? {
                // Gone since: try again.
                Existing::Nothing => continue,
                Existing::Dangling(id) => id,
                Existing::Live { id, target: to } if recorded.as_ref() == Some(&to) => {
                    warn!(link = %path.display(), was = %to.display(),
                        "taking over the link of a serialhub that is no longer running");
                    id
                }
                Existing::Live { target, .. } => {
                    return Err(LinkError::InUse {
                        path: path.to_owned(),
                        target,
                    });
                }
            };
            if replace_dangling(path, target, replaceable)? {
                return made(lock);
            }
        }
        Err(io_err(io::Error::other(
            "it keeps changing while serialhub creates it",
        )))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnedLink {
    fn drop(&mut self) {
        match std::fs::read_link(&self.path) {
            Ok(t) if t == self.target => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    warn!(error = %e, "cannot remove {}", self.path.display());
                }
            }
            Ok(t) => warn!(
                "{} now points at {}, not at {}; leaving it",
                self.path.display(),
                t.display(),
                self.target.display()
            ),
            Err(e) => {
                warn!(error = %e, "{} is no longer our link; leaving it", self.path.display())
            }
        }
    }
}

/// What is at a path that `symlink` found taken.
enum Existing {
    Nothing,
    /// A dangling symlink, by its identity (device, inode).
    Dangling((u64, u64)),
    /// A symlink to something that exists.
    Live {
        id: (u64, u64),
        target: PathBuf,
    },
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// Refuses anything at `path` but a symlink.
fn check(path: &Path) -> Result<Existing, LinkError> {
    let io_err = |reason| LinkError::Io {
        path: path.to_owned(),
        reason,
    };
    let id = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => identity(&m),
        Ok(_) => return Err(LinkError::NotALink(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(io_err(e)),
    };
    if is_dangling(path).map_err(io_err)? {
        return Ok(Existing::Dangling(id));
    }
    let target = std::fs::read_link(path).map_err(io_err)?;
    Ok(Existing::Live { id, target })
}

/// Whether the symlink at `path` leads nowhere: its target, or a directory
/// on the way, is missing, or it loops. Any other error (no permission to
/// look) is returned, so the link is not taken for dangling.
fn is_dangling(path: &Path) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(false),
        Err(e) => match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP) => Ok(true),
            _ => Err(e),
        },
    }
}

/// Swaps a new link into `path` in place of the link `dangling` (dangling,
/// or a dead serialhub's).
/// `Ok(false)` if `path` changed in the meantime (nothing is lost; the caller
/// looks again).
fn replace_dangling(path: &Path, target: &Path, dangling: (u64, u64)) -> Result<bool, LinkError> {
    let io_err = |reason| LinkError::Io {
        path: path.to_owned(),
        reason,
    };
    let tmp = temp_link(path, target).map_err(io_err)?;
    let swapped = match exchange(&tmp, path) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            // Gone since: the caller tries again.
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(false),
                _ => Err(io_err(e)),
            };
        }
    };
    if !swapped {
        // No exchange on this filesystem: a plain rename over it. Only two
        // programs racing for the same dangling link could lose here.
        return match std::fs::rename(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(io_err(e))
            }
        };
    }
    // `tmp` now holds what was at `path`: if it is the link found dangling
    // (renaming keeps the inode), it goes.
    if std::fs::symlink_metadata(&tmp).is_ok_and(|m| identity(&m) == dangling) {
        let _ = std::fs::remove_file(&tmp);
        return Ok(true);
    }
    // Someone put something else there since we looked: give it back.
    match exchange(&tmp, path) {
        Ok(true) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(false)
        }
        Ok(false) => std::fs::rename(&tmp, path).map(|()| false).map_err(io_err),
        // Theirs is left at `tmp`: name it.
        Err(reason) => Err(LinkError::Io { path: tmp, reason }),
    }
}

/// Creates a symlink to `target` beside `path` under a name no other file
/// has: symlink(2) never replaces, so a taken name just means the next one.
fn temp_link(path: &Path, target: &Path) -> io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    temp_link_from(path, target, &NEXT)
}

fn temp_link_from(path: &Path, target: &Path, next: &AtomicU32) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for _ in 0..ATTEMPTS {
        let tmp = path.with_file_name(format!(
            ".{name}.serialhub-{}-{}",
            std::process::id(),
            next.fetch_add(1, Relaxed)
        ));
        match std::os::unix::fs::symlink(target, &tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free temporary name"))
}

/// Swaps two names atomically. `Ok(false)` where the filesystem (or the
/// platform) cannot.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use nix::errno::Errno;
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    match renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("pts-ours");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("ttyX");
        (dir, link, target)
    }

    #[test]
    fn creates_and_removes_its_link() {
        let (_dir, link, target) = setup();
        let owned = OwnedLink::create(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        drop(owned);
        assert!(link.symlink_metadata().is_err());
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn leaves_unrelated_files_alone() {
        let (dir, link, target) = setup();
        // The temporary name serialhub once used, beside a dangling link
        // that makes it go the temporary-link way.
        let old_tmp = link.with_extension("serialhub-new");
        std::fs::write(&old_tmp, b"keep").unwrap();
        symlink(dir.path().join("pts-gone"), &link).unwrap();
        let owned = OwnedLink::create(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        drop(owned);
        assert_eq!(std::fs::read(&old_tmp).unwrap(), b"keep");
        assert_eq!(names_in(dir.path()), ["pts-ours", "ttyX.serialhub-new"]);
    }

    #[test]
    fn temporary_names_skip_taken_ones() {
        let (dir, link, target) = setup();
        let taken = |n: u32| {
            dir.path()
                .join(format!(".ttyX.serialhub-{}-{n}", std::process::id()))
        };
        std::fs::write(taken(0), b"0").unwrap();
        symlink("elsewhere", taken(1)).unwrap();
        let tmp = temp_link_from(&link, &target, &AtomicU32::new(0)).unwrap();
        assert_eq!(tmp, taken(2));
        assert_eq!(std::fs::read_link(&tmp).unwrap(), target);
        assert_eq!(std::fs::read(taken(0)).unwrap(), b"0");
        assert_eq!(
            std::fs::read_link(taken(1)).unwrap(),
            Path::new("elsewhere")
        );
    }

    #[test]
    fn refuses_a_link_to_something_that_exists() {
        let (dir, link, target) = setup();
        let device = dir.path().join("ttyUSB0");
        std::fs::write(&device, b"").unwrap();
        symlink(&device, &link).unwrap();
        let err = OwnedLink::create(&link, &target).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LinkError::InUse { .. }), "{msg}");
        assert!(msg.contains(&*link.to_string_lossy()), "{msg}");
        assert!(msg.contains(&*device.to_string_lossy()), "{msg}");
        assert!(msg.contains("remove it"), "{msg}");
        assert_eq!(std::fs::read_link(&link).unwrap(), device, "link touched");
    }

    #[test]
    fn refuses_a_file_that_is_not_a_link() {
        let (_dir, link, target) = setup();
        std::fs::write(&link, b"data").unwrap();
        let err = OwnedLink::create(&link, &target).unwrap_err();
        assert!(matches!(err, LinkError::NotALink(_)), "{err}");
        assert_eq!(std::fs::read(&link).unwrap(), b"data");
    }

    #[test]
    fn replaces_a_dangling_link() {
        let (dir, link, target) = setup();
        symlink(dir.path().join("pts-gone"), &link).unwrap();
        let owned = OwnedLink::create(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        // A relative dangling link, and one that loops, are dangling too.
        drop(owned);
        symlink("pts-gone", &link).unwrap();
        let owned = OwnedLink::create(&link, &target).unwrap();
        drop(owned);
        symlink("ttyX", &link).unwrap();
        let _owned = OwnedLink::create(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
    }

    #[test]
    fn leaves_a_link_someone_else_put_in_its_place() {
        let (dir, link, target) = setup();
        let owned = OwnedLink::create(&link, &target).unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::write(&theirs, b"").unwrap();
        std::fs::remove_file(&link).unwrap();
        symlink(&theirs, &link).unwrap();
        drop(owned);
        assert_eq!(std::fs::read_link(&link).unwrap(), theirs);
        // Or a plain file.
        let owned = OwnedLink::create(&dir.path().join("ttyY"), &target).unwrap();
        std::fs::remove_file(owned.path()).unwrap();
        std::fs::write(owned.path(), b"mine").unwrap();
        let path = owned.path().to_owned();
        drop(owned);
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
    }

    #[test]
    fn a_second_owner_is_refused_and_the_first_keeps_its_link() {
        let (_dir, link, target) = setup();
        let first = OwnedLink::create(&link, &target).unwrap();
        let other = target.with_file_name("pts-other");
        std::fs::write(&other, b"").unwrap();
        assert!(matches!(
            OwnedLink::create(&link, &other),
            Err(LinkError::Owned(_))
        ));
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        drop(first);
        assert!(link.symlink_metadata().is_err());
        assert!(!owner_file(&link).exists(), "the owner file is left");
    }

    fn owner_file(link: &Path) -> PathBuf {
        link.with_file_name(".ttyX.serialhub-owner")
    }

    #[test]
    fn takes_over_a_dead_owners_link_to_a_reused_pty() {
        // What a SIGKILLed serialhub leaves: its link, to a pty name that
        // exists again, and its owner file, unlocked.
        let (_dir, link, target) = setup();
        symlink(&target, &link).unwrap();
        std::fs::write(owner_file(&link), target.as_os_str().as_encoded_bytes()).unwrap();
        let owned = OwnedLink::create(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        drop(owned);
        assert!(link.symlink_metadata().is_err());
    }

    #[test]
    fn a_live_link_another_owner_file_does_not_name_is_refused() {
        let (_dir, link, target) = setup();
        let other = target.with_file_name("pts-other");
        std::fs::write(&other, b"").unwrap();
        symlink(&other, &link).unwrap();
        std::fs::write(owner_file(&link), target.as_os_str().as_encoded_bytes()).unwrap();
        assert!(matches!(
            OwnedLink::create(&link, &target),
            Err(LinkError::InUse { .. })
        ));
        assert_eq!(std::fs::read_link(&link).unwrap(), other);
    }

    #[test]
    fn gives_back_a_link_that_changed_after_the_check() {
        let (dir, link, target) = setup();
        // The link was found dangling, then someone else's live one took
        // its place: it is swapped back, and nothing else is left.
        let theirs = dir.path().join("theirs");
        std::fs::write(&theirs, b"").unwrap();
        symlink(&theirs, &link).unwrap();
        assert!(!replace_dangling(&link, &target, (0, 0)).unwrap());
        assert_eq!(std::fs::read_link(&link).unwrap(), theirs);
        assert_eq!(names_in(dir.path()), ["pts-ours", "theirs", "ttyX"]);
    }
}
