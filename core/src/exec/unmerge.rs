//! Taking merges of ours off hierarchies, and putting them back on failure.

use super::ephemeral::remove_ephemeral;
use super::fault::FaultInjector;
use super::publish::attach;
use super::remove::remove_tree;
use super::submounts::{child_mounts, MountTable};
use super::{intent, rescue};
use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::event::{Event, EventSink};
use crate::kernel::Kernel;
use crate::root::{proc_fd_path, Root};
use crate::state;
use crate::sys::mountattr::{self};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::mount::OpenTreeFlags;
use rustix::mount::UnmountFlags;

/// A merge of ours taken off a hierarchy, with what is needed to put it back.
#[derive(Debug)]
pub struct Detached {
    /// Root-relative hierarchy.
    pub rel: String,
    /// Display path.
    pub path: String,
    /// A detached copy of the removed merge (same superblock, meta bind included).
    backup: OwnedFd,
    /// Its work dir, removed by [`finish_unmerge`].
    work_dir: Option<String>,
    /// Its ephemeral dir, removed by [`finish_unmerge`].
    ephemeral: Option<String>,
    /// Its class.
    class: ImageClass,
    /// Copies of the mounts that sat on the merge (not its meta bind), kept in the rescue
    /// directory until [`finish_unmerge`] puts them on the host hierarchy.
    submounts: Vec<rescue::Stashed>,
}

/// Take every merge of ours off one hierarchy (stacked ones too), keeping copies so that
/// [`restore`] can put them back. Work dirs are left for [`finish_unmerge`].
pub fn detach_hierarchy(
    root: &Root,
    class: ImageClass,
    rel: &str,
    mounts: &MountTable,
    faults: &FaultInjector,
    kernel: Kernel,
    intent: &intent::Intent,
    out: &mut Vec<Detached>,
) -> Result<()> {
    loop {
        let Some(r) = root
            .resolve(rel, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| crate::root::resolve_err(root, rel, e))?
        else {
            return Ok(());
        };
        let st = state::dir_stat(r.fd.as_fd());
        if state::merged_dev(r.fd.as_fd(), st.as_ref(), &r.path, class)?.is_none() {
            return Ok(());
        }
        // Of the meta dir, only the work dir matters here (removed after the detach).
        // Never removed unless it is a work dir of this hierarchy (see meta::work_dir_removable).
        let work_dir = state::read_work_dir(r.fd.as_fd(), class)
            .filter(|w| crate::meta::work_dir_removable(w, rel));
        let ephemeral = state::read_note(r.fd.as_fd(), class).and_then(|n| n.ephemeral);
        // Mounts on top of the merge (other than the meta bind) are put back on the host
        // hierarchy afterwards, as systemd does.
        let kpath = root.host_path(&r.rel);
        let submounts = copy_submounts(
            &r,
            st.as_ref().and_then(state::unique_mount_id),
            &kpath.to_string_lossy(),
            class,
            mounts,
            kernel,
        );
        faults
            .step("clone before umount")
            .map_err(|e| Error::mount("unmount", &r.path, e))?;
        let backup =
            super::publish::clone_merge(&r.fd).map_err(|e| Error::mount("unmount", &r.path, e))?;
        note_leftovers(intent, work_dir.as_deref(), ephemeral.as_deref());
        let submounts = unmount_top(root, class, rel, &r, submounts, faults, intent)?;
        out.push(Detached {
            rel: rel.to_string(),
            path: r.path.clone(),
            class,
            backup,
            work_dir,
            ephemeral,
            submounts,
        });
        // (A failure from here on puts the merge back: the caller restores `out`.)
        faults
            .step("unmounted")
            .map_err(|e| Error::mount("unmount", &r.path, e))?;
    }
}

/// Private copies of the mounts that sit on the merge `r` (unique mount id `id`, kernel
/// path `kpath`), its meta bind excepted, each with its path below the hierarchy.
fn copy_submounts(
    r: &crate::root::Resolved,
    id: Option<u64>,
    kpath: &str,
    class: ImageClass,
    mounts: &MountTable,
    kernel: Kernel,
) -> Vec<(String, OwnedFd)> {
    let mut submounts = Vec::new();
    let dot = class.info().dot_dir;
    for (m, sub) in child_mounts(r.fd.as_fd(), id, kpath, dot, mounts, kernel) {
        if let Ok(c) = rustix::mount::open_tree(
            rustix::fs::CWD,
            m.mount_point.as_str(),
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        ) {
            // Not a peer of the mount on the merge (see carry_submounts).
            let _ = mountattr::make_private(c.as_fd());
            submounts.push((sub, c));
        }
    }
    submounts
}

/// Note in the intent record what is left to remove once the merge is gone (its work dir
/// and ephemeral dir), should this process not live to do it.
fn note_leftovers(intent: &intent::Intent, work_dir: Option<&str>, ephemeral: Option<&str>) {
    if !intent.is_on() || (work_dir.is_none() && ephemeral.is_none()) {
        return;
    }
    let mut lines = String::new();
    if let Some(w) = work_dir {
        lines.push_str(&format!("rmwork\t{w}\n"));
    }
    if let Some(e) = ephemeral {
        lines.push_str(&format!("rmeph\t{e}\n"));
    }
    intent.note(&lines);
}

/// Unmount the merge `r` of `rel` (the top of the hierarchy). The mounts on it go to the
/// rescue directory first, the intent record (naming every hierarchy, so that a kill from
/// here on is completed) before that; they are given back if the unmount fails.
fn unmount_top(
    root: &Root,
    class: ImageClass,
    rel: &str,
    r: &crate::root::Resolved,
    submounts: Vec<(String, OwnedFd)>,
    faults: &FaultInjector,
    intent: &intent::Intent,
) -> Result<Vec<rescue::Stashed>> {
    intent.before_effect();
    let submounts = rescue::stash(root, class, rel, submounts)
        .map_err(|e| Error::io("keep the mounts below", &r.path, e))?;
    let gone = faults
        .step("umount")
        .map_err(|e| Error::mount("unmount", &r.path, e))
        .and_then(|()| {
            rustix::mount::unmount(proc_fd_path(r.fd.as_fd()).as_str(), UnmountFlags::DETACH)
                .map_err(|e| Error::mount("unmount", &r.path, e))
        });
    if let Err(e) = gone {
        rescue::discard(root, class, submounts);
        return Err(e);
    }
    Ok(submounts)
}

/// Put detached merges back, newest first (failure path; errors are ignored).
pub fn restore(root: &Root, detached: Vec<Detached>) {
    for d in detached.into_iter().rev() {
        if let Ok(t) = root.open_in(&d.rel, OFlags::PATH | OFlags::DIRECTORY) {
            let _ = attach(&d.backup, t.as_fd());
        }
        // The merge carries its mounts again.
        rescue::discard(root, d.class, d.submounts);
    }
}

/// Complete an unmerge: remove the work dirs of the detached merges and report them.
pub fn finish_unmerge(
    root: &Root,
    detached: Vec<Detached>,
    sink: &dyn EventSink,
) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    for d in detached {
        rescue::put_back(root, d.class, d.submounts);
        // The merge is gone whatever happens to its work dir: a work dir that cannot be
        // removed now is a warning (the next merge in a writable mode reuses it, the next
        // unmerge tries again), not a failed unmerge.
        if let Some(w) = &d.work_dir {
            if let Err(e) = remove_tree(root, w) {
                sink.event(&Event::Message(
                    crate::event::Level::Warning,
                    format!(
                        "Failed to remove work directory '{}', ignoring: {e}",
                        root.display(w)
                    ),
                ));
            }
        }
        if let Some(e) = &d.ephemeral {
            let _ = remove_ephemeral(e);
        }
        sink.event(&Event::Unmerged(d.path.clone()));
        if !paths.contains(&d.path) {
            paths.push(d.path);
        }
    }
    Ok(paths)
}

/// Unmerge one hierarchy completely. Returns how many merges were removed.
pub fn unmerge_hierarchy(
    root: &Root,
    class: ImageClass,
    rel: &str,
    faults: &FaultInjector,
    sink: &dyn EventSink,
    kernel: Kernel,
) -> Result<usize> {
    let mut d = Vec::new();
    let mounts = MountTable::default();
    let off = intent::Intent::off();
    if let Err(e) = detach_hierarchy(root, class, rel, &mounts, faults, kernel, &off, &mut d) {
        restore(root, d);
        return Err(e);
    }
    let n = d.len();
    finish_unmerge(root, d, sink)?;
    Ok(n)
}
