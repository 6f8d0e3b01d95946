//! Attaching built overlays at their hierarchies, and detaching the merges they replace.

use super::build::Built;
use super::ephemeral::remove_ephemeral;
use super::fault::FaultInjector;
use super::intent;
use super::journal::{Journal, Undo};
use super::layer_check::{layer_count, verify_layers};
use super::meta_files::attach_meta_bind;
use super::remove::remove_tree;
use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::event::{Event, EventSink};
use crate::kernel::{Kernel, KernelFeatures};
use crate::plan::HierarchyPlan;
use crate::probe::Probed;
use crate::root::{proc_fd_path, Root};
use crate::state;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::OpenTreeFlags;
use rustix::mount::{MoveMountFlags, UnmountFlags};

/// Whether `MOVE_MOUNT_BENEATH` is refused by this kernel (before 6.5 the flag is
/// unknown: EINVAL), should the probe have missed it.
fn beneath_unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::INVAL
}

/// How one hierarchy's old merge is replaced.
#[derive(Debug)]
pub struct Replaced {
    /// The old top (to detach after all new overlays are in place).
    pub old_top: OwnedFd,
    /// Root-relative work dir of the old merge (to remove), unless reused.
    pub old_work_dir: Option<String>,
    /// Ephemeral dir of the old merge (to remove), unless reused.
    pub old_ephemeral: Option<String>,
    /// Display path.
    pub path: String,
    /// Where a copy of the old merge was kept while it was replaced in a window.
    pub saved: Option<String>,
}

/// Keep a copy of the old merge `cur` of hierarchy `rel` (number `index`) attached in the
/// lock dir, noted in the intent record, before it is replaced in a window: should the
/// process die before the new merge is complete, the next call puts it back from there.
fn save_old(
    cur: &crate::probe::Current,
    rel: &str,
    index: usize,
    journal: &mut Journal,
) -> Option<String> {
    let path = journal.intent.saved_path(index)?;
    let _ = std::fs::remove_dir(&path);
    std::fs::create_dir(&path).ok()?;
    let p = path.to_string_lossy().into_owned();
    journal.intent.note(&format!("saved\t{rel}\t{p}\n"));
    journal.undo.push(Undo::Saved(p.clone()));
    let copy = clone_merge(&cur.fd).ok()?;
    let dir = rustix::fs::open(
        &path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    attach(&copy, dir.as_fd()).ok()?;
    Some(p)
}

/// Attach built overlays. Where `probed` found a merge of ours on the same hierarchy (taken
/// out of it here), the new overlay is put beneath it (`MOVE_MOUNT_BENEATH`), so readers never
/// see the host tree in between; the old overlays are detached by [`finish_replace`].
pub fn publish(
    root: &Root,
    built: Vec<Built<'_>>,
    probed: &mut Probed,
    journal: &mut Journal,
    faults: &FaultInjector,
    sink: &dyn EventSink,
    class: ImageClass,
    kernel: Kernel,
) -> Result<(Vec<Replaced>, Vec<OwnedFd>)> {
    let mut replaced = Vec::new();
    let mut hidden = Vec::new();
    let mut verify = Vec::new();
    note_new_overlays(journal, &built);
    for mut b in built {
        hidden.append(&mut b.hidden_submounts);
        let h = b.plan;
        let rel = h.hierarchy.relative();
        if h.create_target {
            create_hierarchy(root, h, journal, faults)?;
        }
        // The merge this one replaces, taken out of the probe.
        let cur = probed.hierarchies[h.index].current.take();
        let host = &probed.hierarchies[h.index].host;
        let (backup, saved) =
            attach_at_hierarchy(root, &b, cur.as_ref(), host, journal, faults, class, kernel)?;
        let stacked = cur.is_some() && backup.is_none();
        // The journal keeps the overlay's fd (attached now, so closing it is cheap) to take
        // the overlay down again should a later step fail.
        match backup {
            Some(backup) => journal.undo.push(Undo::Beneath {
                new: b.mnt,
                backup,
                rel: rel.to_string(),
                old_id: cur.as_ref().and_then(|c| state::mount_id(c.fd.as_fd())),
            }),
            None => journal.undo.push(Undo::Mount(b.mnt)),
        }
        #[allow(
            clippy::expect_used,
            reason = "the overlay was journaled on the line above"
        )]
        let mnt = journal.newest_mount().expect("journaled just now");
        if b.meta_bind_pending {
            attach_meta_bind(mnt, class.info().dot_dir, faults)?;
        }
        verify.push((layer_count(mnt, b.mnt_id, h.lower.len(), kernel), h));
        if let Some(c) = cur.filter(|_| !stacked) {
            replaced.push(replaced_merge(c, h, b.ephemeral.as_deref(), saved));
        }
        sink.event(&Event::Merged(h.target.clone()));
    }
    verify_layers(&verify)?;
    Ok((replaced, hidden))
}

/// Note in the intent record, before anything is attached, the device of each new overlay
/// and the sub-mounts it carries, so that recovery can tell them apart from the old ones.
fn note_new_overlays(journal: &mut Journal, built: &[Built<'_>]) {
    if !journal.intent.is_on() {
        return;
    }
    let mut lines = String::new();
    for b in built {
        let rel = b.plan.hierarchy.relative();
        if let Some(d) = b.dev {
            lines.push_str(&format!("new\t{rel}\t{}\n", intent::dev(d)));
        }
        for fd in &b.hidden_submounts {
            if let Some(id) = state::mount_id(fd.as_fd()) {
                lines.push_str(&format!("sub\t{rel}\t{id}\n"));
            }
        }
    }
    journal.intent.note(&lines);
}

/// Create the missing hierarchy `h` (and its missing parents).
fn create_hierarchy(
    root: &Root,
    h: &HierarchyPlan,
    journal: &mut Journal,
    faults: &FaultInjector,
) -> Result<()> {
    let create_err = |e| Error::HierarchyCreate {
        path: h.target.clone(),
        source: e,
    };
    faults.step("mkdir hierarchy").map_err(create_err)?;
    let rel = h.hierarchy.relative();
    journal.note_missing(root, rel, false);
    let created = root.mkdir_p(rel, 0o755).map_err(create_err)?;
    // A hierarchy created for the merge stays, as with systemd (not journaled as
    // undo-on-success, but removed again if the merge fails).
    journal.dirs(created, false);
    Ok(())
}

/// Put the built overlay `b` on its hierarchy: on top when there is no merge of ours
/// (`cur`), else beneath it, or in the smallest window where the kernel cannot put it
/// beneath or an interrupted refresh left overlays stacked. Returns the copy of the old
/// merge kept for rollback (none when stacked on top) and where it was saved for recovery.
fn attach_at_hierarchy(
    root: &Root,
    b: &Built<'_>,
    cur: Option<&crate::probe::Current>,
    host: &std::result::Result<Option<crate::probe::HostHandle>, ()>,
    journal: &mut Journal,
    faults: &FaultInjector,
    class: ImageClass,
    kernel: Kernel,
) -> Result<(Option<OwnedFd>, Option<String>)> {
    let h = b.plan;
    let rel = h.hierarchy.relative();
    // The top of the hierarchy, as probed: our merge on it, or the directory itself
    // (nothing was attached there since, under the lock). Opened only when just made.
    let opened;
    let target_fd = match (cur, host) {
        (Some(c), _) => c.fd.as_fd(),
        (None, Ok(Some(hh))) if hh.keep.is_none() && !h.create_target => hh.fd.as_fd(),
        _ => {
            opened = root
                .open_in(rel, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| Error::HierarchyCreate {
                    path: h.target.clone(),
                    source: e,
                })?;
            opened.as_fd()
        }
    };
    faults
        .step("move_mount")
        .map_err(|e| Error::mount("attach overlay on", &h.target, e))?;
    let Some(c) = cur else {
        stack_on_top(b, target_fd, &h.target)?;
        return Ok((None, None));
    };
    // Overlays of ours stacked below the top (left by an interrupted refresh) can only go
    // with everything above them: collapse the stack in the smallest window. Kernels
    // without MOVE_MOUNT_BENEATH (before 6.5) replace the old merge in the smallest window
    // too, one system call between taking it off and putting the new one on (stacking
    // would keep every old overlay and its loop devices until unmerge).
    let stacked = match host {
        Ok(Some(hh)) => hh.stacked,
        _ => 0,
    };
    let in_window = |journal: &mut Journal, stacked: usize| {
        let saved = save_old(c, rel, h.index, journal);
        let backup = replace_in_window(root, rel, c, b, &h.target, stacked, class)?;
        Ok((Some(backup), saved))
    };
    if stacked > 1 {
        return in_window(journal, stacked);
    }
    if !kernel.has(KernelFeatures::MOVE_BENEATH) {
        return in_window(journal, 1);
    }
    match attach_beneath(b, c, target_fd)? {
        Beneath::Attached(backup) => Ok((Some(backup), None)),
        // The unused copy of the old merge is let go only after the window.
        Beneath::Refused(_copy) => in_window(journal, 1),
    }
}

/// How the new overlay went beneath the old merge, with the copy of the old merge taken first.
enum Beneath {
    /// The new overlay is beneath the old merge; the copy is kept for rollback.
    Attached(OwnedFd),
    /// The kernel does not know `MOVE_MOUNT_BENEATH` (before 6.5): nothing was attached.
    Refused(OwnedFd),
}

/// Put the built overlay `b` beneath the old merge `c` at `target_fd`, after copying the old merge.
fn attach_beneath(
    b: &Built<'_>,
    c: &crate::probe::Current,
    target_fd: BorrowedFd<'_>,
) -> Result<Beneath> {
    let target = &b.plan.target;
    let backup =
        clone_merge(&c.fd).map_err(|e| Error::mount("clone the old overlay on", target, e))?;
    let r = rustix::mount::move_mount(
        &b.mnt,
        "",
        target_fd,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
            | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH
            | MoveMountFlags::MOVE_MOUNT_BENEATH,
    );
    match r {
        Ok(()) => Ok(Beneath::Attached(backup)),
        Err(e) if beneath_unsupported(e) => Ok(Beneath::Refused(backup)),
        Err(e) => Err(Error::mount(
            "attach overlay beneath the old one on",
            target,
            e,
        )),
    }
}

/// A detached copy of the merge whose top is `fd`, with the mounts on it.
pub(super) fn clone_merge(fd: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    rustix::mount::open_tree(
        fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH
            | OpenTreeFlags::AT_RECURSIVE,
    )
}

/// What is left to do for the old merge `c` that the new overlay of `h` (with its
/// ephemeral dir `ephemeral`) replaced: detach it, and remove the work dir and ephemeral
/// dir the new one does not reuse.
fn replaced_merge(
    c: crate::probe::Current,
    h: &HierarchyPlan,
    ephemeral: Option<&str>,
    saved: Option<String>,
) -> Replaced {
    let reused = c.meta.work_dir.is_some() && c.meta.work_dir == h.meta.work_dir;
    let old_eph = c.note.as_ref().and_then(|n| n.ephemeral.clone());
    Replaced {
        saved,
        old_ephemeral: if old_eph.as_deref() == ephemeral {
            None
        } else {
            old_eph
        },
        old_top: c.fd,
        old_work_dir: if reused {
            None
        } else {
            c.meta
                .work_dir
                .clone()
                .filter(|w| crate::meta::work_dir_removable(w, h.hierarchy.relative()))
        },
        path: h.target.clone(),
    }
}

/// Take the old merge `cur` off hierarchy `rel` and put the built overlay on it at once
/// (kernels without `MOVE_MOUNT_BENEATH`, or `stacked` merges of ours to collapse); returns
/// a copy of the old merge for rollback. Everything is looked up before: between the two
/// system calls readers see what lies under the merge.
fn replace_in_window(
    root: &Root,
    rel: &str,
    cur: &crate::probe::Current,
    b: &Built<'_>,
    target: &str,
    stacked: usize,
    class: ImageClass,
) -> Result<OwnedFd> {
    let backup =
        clone_merge(&cur.fd).map_err(|e| Error::mount("clone the old overlay on", target, e))?;
    let (parent, base) = match rel.rsplit_once('/') {
        Some((p, base)) => (
            Some(
                root.open_in(p, OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(|e| Error::io("open", root.display(p), e))?,
            ),
            base,
        ),
        None => (None, rel),
    };
    let pfd = parent.as_ref().map(|f| f.as_fd()).unwrap_or(root.fd());
    let old = proc_fd_path(cur.fd.as_fd());
    rustix::mount::unmount(old.as_str(), UnmountFlags::DETACH)
        .map_err(|e| Error::mount("unmount", target, e))?;
    // Stale merges of ours below it (each checked to be one before it goes).
    for _ in 1..stacked {
        let Ok(t) = rustix::fs::openat(
            pfd,
            base,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            break;
        };
        let st = state::dir_stat(t.as_fd());
        if !matches!(
            state::merged_dev(t.as_fd(), st.as_ref(), target, class),
            Ok(Some(_))
        ) {
            break;
        }
        if rustix::mount::unmount(proc_fd_path(t.as_fd()).as_str(), UnmountFlags::DETACH).is_err() {
            break;
        }
    }
    // Symlinks are not followed (no MOVE_MOUNT_T_SYMLINKS).
    if let Err(e) = rustix::mount::move_mount(
        &b.mnt,
        "",
        pfd,
        base,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    ) {
        let _ = rustix::mount::move_mount(
            &backup,
            "",
            pfd,
            base,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        );
        return Err(Error::mount("attach overlay on", target, e));
    }
    Ok(backup)
}

/// Attach the detached tree `tree` on top of whatever is at the directory `target`.
pub(super) fn attach(tree: &OwnedFd, target: BorrowedFd<'_>) -> rustix::io::Result<()> {
    rustix::mount::move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// Attach a new overlay at its hierarchy, on top of anything there (first merge, or the
/// fallback without `MOVE_MOUNT_BENEATH`).
fn stack_on_top(b: &Built<'_>, target_fd: BorrowedFd<'_>, target: &str) -> Result<()> {
    attach(&b.mnt, target_fd).map_err(|e| Error::mount("attach overlay on", target, e))
}

/// Detach the originals of sub-mounts now shown on the new overlays, then the replaced old
/// overlays, and remove their work dirs.
pub fn finish_replace(
    root: &Root,
    replaced: Vec<Replaced>,
    hidden_submounts: Vec<OwnedFd>,
    sink: &dyn EventSink,
) {
    // The old overlays first: the sub-mounts on them go with them, and the new overlays
    // (beneath them) carry copies, so a sub-mount's files are visible throughout. Then the
    // originals the new overlays hide (a first merge: they sat on the host hierarchy).
    let mut rest = Vec::new();
    for r in replaced {
        let _ = rustix::mount::unmount(
            proc_fd_path(r.old_top.as_fd()).as_str(),
            UnmountFlags::DETACH,
        );
        rest.push(r);
    }
    for fd in hidden_submounts {
        // (Those that were on an old overlay are gone with it: this fails harmlessly.)
        let _ = rustix::mount::unmount(proc_fd_path(fd.as_fd()).as_str(), UnmountFlags::DETACH);
    }
    for r in rest {
        if let Some(p) = &r.saved {
            intent::drop_saved(p);
        }
        if let Some(w) = &r.old_work_dir {
            let _ = remove_tree(root, w);
        }
        if let Some(e) = &r.old_ephemeral {
            let _ = remove_ephemeral(e);
        }
        sink.event(&Event::Message(
            crate::event::Level::Debug,
            format!("Replaced the previous merge on '{}'.", r.path),
        ));
    }
}
