//! Ephemeral dirs below `/run/libsysext/ephemeral` holding upper layers on a tmpfs.

use super::build::BuildInputs;
use super::journal::{Journal, Undo};
use super::publish::attach;
use super::remove::remove_dir_tree_at;
use crate::class::ImageClass;
use crate::fscontext::detached_tmpfs;
use crate::root::proc_fd_path;
use crate::state;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountAttrFlags, UnmountFlags};
use std::io;

/// The ephemeral dir for hierarchy `index`: the one to reuse, or a new one below
/// [`state::EPHEMERAL_DIR`] (journaled). `None` when `/run` cannot hold it (then the
/// detached workspace is used and the upper layer cannot outlive the overlay).
pub(super) fn ephemeral_dir(
    inputs: &BuildInputs<'_>,
    index: usize,
    comp: &str,
    class: ImageClass,
    journal: &mut Journal,
) -> Option<String> {
    if let Some(Some(p)) = inputs.ephemeral_reuse.get(index) {
        if std::path::Path::new(p).join("upper").is_dir()
            && std::path::Path::new(p).join("work").is_dir()
        {
            return Some(p.clone());
        }
    }
    let base = std::path::Path::new(state::EPHEMERAL_DIR);
    if std::fs::create_dir_all(base).is_err() {
        return None;
    }
    let _ = std::fs::set_permissions(
        "/run/libsysext",
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    );
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = base.join(format!(
        "{}-{}-{nonce:x}-{index}-{comp}",
        class.info().short,
        std::process::id()
    ));
    let mk = |p: &std::path::Path| rustix::fs::mkdir(p, Mode::from_raw_mode(0o700));
    let path = dir.to_string_lossy().into_owned();
    // Noted (and journaled) before it exists.
    journal.intent.note(&format!("eph\t{path}\n"));
    journal.undo.push(Undo::Ephemeral(path.clone()));
    if mk(&dir).is_err() {
        return None;
    }
    // The upper layer lives on a tmpfs of its own, mounted on that directory: writes into
    // the merged hierarchy fill it, not `/run`. It is made detached, with the upper and
    // work dirs in it, and attached whole.
    let tmpfs = (|| -> rustix::io::Result<OwnedFd> {
        let m = detached_tmpfs(
            "0700",
            MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
        )?;
        rustix::fs::mkdirat(&m, "upper", Mode::from_raw_mode(0o700))?;
        rustix::fs::mkdirat(&m, "work", Mode::from_raw_mode(0o700))?;
        let d = rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        attach(&m, d.as_fd())?;
        Ok(m)
    })();
    tmpfs.ok().map(|_| path)
}

/// Remove an ephemeral dir (only below [`state::EPHEMERAL_DIR`]).
pub fn remove_ephemeral(path: &str) -> io::Result<()> {
    let Some(name) = path
        .strip_prefix(state::EPHEMERAL_DIR)
        .and_then(|n| n.strip_prefix('/'))
    else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    if name.is_empty() || name.contains('/') || name == ".." {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let base = rustix::fs::open(
        state::EPHEMERAL_DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Its tmpfs first (the overlay using it holds its own reference).
    if let Ok(d) = rustix::fs::openat(
        &base,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        if state::is_mount_point(d.as_fd()) {
            let _ = rustix::mount::unmount(proc_fd_path(d.as_fd()).as_str(), UnmountFlags::DETACH);
        }
    }
    remove_dir_tree_at(base.as_fd(), name)
}
