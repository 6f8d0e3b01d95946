//! The meta dir `.systemd-sysext` in the meta layer: its files and its read-only bind.

use super::fault::FaultInjector;
use super::io_at;
use crate::error::{Error, Result};
use crate::sys::mountattr::{self, mount_setattr};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::MoveMountFlags;
use rustix::mount::OpenTreeFlags;
use std::io::Write;

pub(super) fn write_file_at(
    dir: BorrowedFd<'_>,
    name: &str,
    content: &str,
    what: &str,
) -> Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(io_at("create", what))?;
    std::fs::File::from(fd)
        .write_all(content.as_bytes())
        .map_err(|e| Error::io("write", what, e))
}

/// Bind the meta dir of a writable overlay onto itself, read-only.
pub(super) fn attach_meta_bind(
    mnt: BorrowedFd<'_>,
    dot: &str,
    faults: &FaultInjector,
) -> Result<()> {
    faults
        .step("meta bind")
        .map_err(|e| Error::mount("bind", dot, e))?;
    let clone = rustix::mount::open_tree(
        mnt,
        dot,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| Error::mount("bind", dot, e))?;
    mount_setattr(clone.as_fd(), false, mountattr::MOUNT_ATTR_RDONLY, 0)
        .map_err(|e| Error::mount("make read-only", dot, e))?;
    rustix::mount::move_mount(
        &clone,
        "",
        mnt,
        dot,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Error::mount("attach", dot, e))
}
