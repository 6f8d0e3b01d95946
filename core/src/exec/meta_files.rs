//! The meta dir `.systemd-sysext` in the meta layer: its files and its read-only bind.

use super::fault::FaultInjector;
use super::io_at;
use super::workspace::mkdirat_ws;
use crate::class::ClassInfo;
use crate::error::{Error, Result};
use crate::meta;
use crate::plan::HierarchyPlan;
use crate::state;
use crate::sys::mountattr::mount_setattr;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::mount::{MountAttrFlags, MoveMountFlags, OpenTreeFlags};
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
    mount_setattr(
        clone.as_fd(),
        false,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
        MountAttrFlags::empty(),
    )
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

/// The meta dir of one overlay, written into its meta layer once the overlay's device is
/// known.
pub(super) struct MetaFiles<'a> {
    /// The meta layer.
    pub(super) layer: BorrowedFd<'a>,
    /// The class's names (the meta dir's, its list file's).
    pub(super) info: &'static ClassInfo,
    /// The hierarchy's plan (extensions, work dir).
    pub(super) h: &'a HierarchyPlan,
    /// libsysext's own note about the merge.
    pub(super) note: state::Note,
    /// Whether the umask kept 0755 of the meta layer (no chmod of the meta dir needed).
    pub(super) umask_keeps_0755: bool,
    /// Fault injection.
    pub(super) faults: &'a FaultInjector,
}

impl MetaFiles<'_> {
    /// Write the meta dir naming the overlay's device (`st`).
    pub(super) fn write(&self, st: &rustix::fs::Statx) -> Result<()> {
        let (info, h, meta_fd) = (self.info, self.h, self.layer);
        self.faults
            .step("write meta")
            .map_err(|e| Error::io("write", "meta dir", e))?;
        mkdirat_ws(meta_fd, info.dot_dir, 0o755)?;
        if !self.umask_keeps_0755 {
            // The meta dir was just made in our own tmpfs: no symlink to fear.
            rustix::fs::chmodat(
                meta_fd,
                info.dot_dir,
                Mode::from_raw_mode(0o755),
                AtFlags::empty(),
            )
            .map_err(io_at("chmod", "meta dir"))?;
        }
        // The files are made by their paths below the meta layer (no fd for the meta dir).
        let in_meta = |name: &str| {
            let mut p = String::with_capacity(info.dot_dir.len() + 1 + name.len());
            p.push_str(info.dot_dir);
            p.push('/');
            p.push_str(name);
            p
        };
        write_file_at(
            meta_fd,
            &in_meta(info.list_file),
            &meta::encode_extensions(&h.meta.extensions),
            "meta extensions",
        )?;
        write_file_at(
            meta_fd,
            &in_meta("dev"),
            &meta::encode_dev(st.stx_dev_major, st.stx_dev_minor),
            "meta dev",
        )?;
        if let Some(w) = &h.meta.work_dir {
            write_file_at(
                meta_fd,
                &in_meta("work_dir"),
                &meta::encode_work_dir(w),
                "meta work_dir",
            )?;
        }
        write_file_at(
            meta_fd,
            &in_meta(state::MODE_NOTE),
            &self.note.encode(),
            "meta note",
        )?;
        // The merged root's mtime (what `status` reports as the merge's time) is the meta
        // layer's: set by making the meta dir in it, its last change, just now.
        Ok(())
    }
}
