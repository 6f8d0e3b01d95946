//! Mounts below a hierarchy: found, and carried into the new overlay.

use super::build::BuildInputs;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, KernelFeatures};
use crate::plan::HierarchyPlan;
use crate::root::Root;
use crate::state;
use crate::sys::mountattr::{self};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::MoveMountFlags;
use rustix::mount::OpenTreeFlags;

/// Keep mounts below the hierarchy visible: copy each top-level mount below it (with what
/// is mounted below that) into the new, still detached overlay at the same place. The
/// originals stay where they are, under the host hierarchy, and are visible again after
/// unmerge. A mount point that does not exist in the merged view is skipped.
pub(super) fn carry_submounts(
    root: &Root,
    h: &HierarchyPlan,
    dot: &str,
    mounts: &MountTable,
    inputs: &BuildInputs<'_>,
    attach: &mut dyn FnMut(Vec<(String, OwnedFd)>) -> Result<Vec<bool>>,
) -> Result<Vec<OwnedFd>> {
    let faults = inputs.faults;
    let mut originals = Vec::new();
    // Without a merge of ours on it, the hierarchy is the host directory probing opened.
    let probed = &inputs.probed.hierarchies[h.index];
    let host_info = inputs.probed.inputs.hierarchies[h.index].host.as_ref();
    let resolved;
    let (target, target_id, target_rel) = match (&probed.current, &probed.host, host_info) {
        (None, Ok(Some(hh)), Some(info)) if hh.keep.is_none() => (
            hh.fd.as_fd(),
            hh.stat.as_ref().and_then(state::unique_mount_id),
            info.rel.as_str(),
        ),
        _ => {
            let Ok(Some(r)) =
                root.resolve(h.hierarchy.relative(), OFlags::PATH | OFlags::DIRECTORY)
            else {
                return Ok(originals);
            };
            resolved = r;
            (resolved.fd.as_fd(), None, resolved.rel.as_str())
        }
    };
    let kpath = root.host_path(target_rel).to_string_lossy().into_owned();
    let mut found = Vec::new();
    let mut clones = Vec::new();
    for (m, rel) in child_mounts(target, target_id, &kpath, dot, mounts, inputs.kernel) {
        faults
            .step("carry submount")
            .map_err(|e| Error::mount("carry the submount", &m.mount_point, e))?;
        let Ok(clone) = rustix::mount::open_tree(
            rustix::fs::CWD,
            m.mount_point.as_str(),
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        ) else {
            continue;
        };
        // Not a peer of the original, whose detach would otherwise take the mounts nested
        // in the copy along (umount propagation, on a shared hierarchy).
        let _ = mountattr::make_private(clone.as_fd());
        found.push(m);
        clones.push((rel, clone));
    }
    if found.is_empty() {
        return Ok(originals);
    }
    let carried = attach(clones)?;
    for (m, ok) in found.iter().zip(carried) {
        if !ok {
            continue;
        }
        // The original, soon hidden below the merge, is detached once the merge is in
        // place (so that each sub-mount shows up once, as with systemd).
        if let Ok(fd) = rustix::fs::open(
            m.mount_point.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            if state::mount_id(fd.as_fd()) == Some(m.id) {
                originals.push(fd);
            }
        }
    }
    Ok(originals)
}

/// Attach sub-mount copies inside a detached overlay (6.15+); which ones could be attached.
pub(super) fn attach_in_detached(mnt: BorrowedFd<'_>, clones: Vec<(String, OwnedFd)>) -> Vec<bool> {
    clones
        .iter()
        .map(|(rel, clone)| {
            // A mount point missing (or shadowed by a file) in the merged view cannot be kept.
            rustix::mount::move_mount(
                clone,
                "",
                mnt,
                rel.as_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .is_ok()
        })
        .collect()
}

/// A mount sitting on another one.
#[derive(Debug)]
pub(super) struct ChildMount {
    /// Mount id as mountinfo shows it.
    pub(super) id: u64,
    /// Mount point relative to our root.
    pub(super) mount_point: String,
}

/// The mount table, read at most once and only where `listmount(2)` is missing.
#[derive(Debug, Default)]
pub struct MountTable(std::cell::OnceCell<Vec<crate::mountinfo::MountInfo>>);

impl MountTable {
    fn get(&self) -> &[crate::mountinfo::MountInfo] {
        self.0
            .get_or_init(|| crate::mountinfo::read_self().unwrap_or_default())
    }
}

/// The mounts sitting directly on the mount of `dir` below that directory (kernel path
/// `kpath`), other than our read-only bind of the meta dir `dot`, sorted by path, each with
/// its path below `kpath`.
pub(super) fn child_mounts(
    dir: BorrowedFd<'_>,
    id: Option<u64>,
    kpath: &str,
    dot: &str,
    table: &MountTable,
    kernel: Kernel,
) -> Vec<(ChildMount, String)> {
    let listed = if kernel.has(KernelFeatures::STATMOUNT) {
        crate::sys::statmount::child_mounts(dir, id)
    } else {
        None
    };
    let children: Vec<ChildMount> = match listed {
        Some(v) => v
            .into_iter()
            .map(|(id, mount_point)| ChildMount { id, mount_point })
            .collect(),
        None => {
            let Some(top) = state::mount_id(dir) else {
                return Vec::new();
            };
            table
                .get()
                .iter()
                .filter(|m| m.parent == top && m.id != top)
                .map(|m| ChildMount {
                    id: m.id,
                    mount_point: m.mount_point.clone(),
                })
                .collect()
        }
    };
    let prefix = format!("{}/", kpath.trim_end_matches('/'));
    let mut v: Vec<_> = children
        .into_iter()
        .filter(|m| m.mount_point.starts_with(&prefix))
        .map(|m| {
            let rel = m.mount_point[prefix.len()..].to_string();
            (m, rel)
        })
        .filter(|(_, rel)| rel != dot)
        .collect();
    v.sort_by(|a, b| a.0.mount_point.cmp(&b.0.mount_point));
    v
}
