//! One advisory lock per root and image class, taken by every mutating entry point, so
//! that concurrent merge/refresh/unmerge calls (CLI, C, Python, threads) serialize.

use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::root::Root;
use rustix::fd::OwnedFd;
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Directory holding the lock files.
pub const LOCK_DIR: &str = "/run/libsysext";

/// A held lock; released on drop.
///
/// The lock file also holds the intent record of the call that holds it
/// ([`crate::exec::intent`]): written through [`Lock::record_fd`], empty when no call was
/// interrupted.
#[derive(Debug)]
pub struct Lock {
    fd: std::sync::Arc<OwnedFd>,
    /// Whether `fd` is the lock file (not the root directory, the fallback without `/run`).
    is_file: bool,
    /// The lock file.
    pub path: PathBuf,
}

impl Lock {
    /// The lock file, open for reading and writing, for the intent record (`None` when the
    /// lock is the root directory's, without a writable `/run`).
    pub fn record_fd(&self) -> Option<std::sync::Arc<OwnedFd>> {
        self.is_file.then(|| self.fd.clone())
    }
}

#[cfg(any(test, feature = "testing"))]
/// Take the lock of `root` and `class`. `timeout`: `None` waits forever, `Some(0)` does not wait.
pub fn lock(root: &Root, class: ImageClass, timeout: Option<Duration>) -> Result<Lock> {
    lock_at(path_for(root, class)?, root, timeout)
}

/// The lock file of `root` and `class`: named after the root directory's device and inode,
/// so that every path to the same root takes the same lock.
pub fn path_for(root: &Root, class: ImageClass) -> Result<PathBuf> {
    let st = rustix::fs::fstat(root.fd()).map_err(|e| Error::io("stat", root.display_root(), e))?;
    Ok(PathBuf::from(format!(
        "{LOCK_DIR}/{}-{}-{}.lock",
        class.info().short,
        st.st_dev,
        st.st_ino
    )))
}

/// Take the lock at `path` (from [`path_for`]) of `root`, as [`lock`] does.
pub fn lock_at(path: PathBuf, root: &Root, timeout: Option<Duration>) -> Result<Lock> {
    let open = || {
        rustix::fs::open(
            &path,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
    };
    // The lock dir usually exists: create it only when the open says it is missing.
    let (fd, is_file) = match open().or_else(|e| {
        if e != rustix::io::Errno::NOENT {
            return Err(std::io::Error::from(e));
        }
        std::fs::create_dir_all(LOCK_DIR)?;
        open().map_err(Into::into)
    }) {
        Ok(fd) => (fd, true),
        // /run not writable (read-only root without /run): lock the root directory itself.
        Err(_) => (
            rustix::io::dup(root.fd()).map_err(|e| Error::io("open", root.display_root(), e))?,
            false,
        ),
    };
    let fd = std::sync::Arc::new(fd);
    let start = Instant::now();
    loop {
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Lock { fd, is_file, path }),
            Err(rustix::io::Errno::WOULDBLOCK) => match timeout {
                None => {
                    rustix::fs::flock(&fd, FlockOperation::LockExclusive)
                        .map_err(|e| Error::io("lock", &path, e))?;
                    return Ok(Lock { fd, is_file, path });
                }
                Some(t) if start.elapsed() >= t => return Err(Error::Busy { path }),
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
            },
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("lock", &path, e)),
        }
    }
}
