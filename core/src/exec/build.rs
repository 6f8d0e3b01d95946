//! Building the overlays of a plan, detached.

use super::build_staged::{build_staged, StagedInputs};
use super::ephemeral::ephemeral_dir;
use super::fault::FaultInjector;
use super::fs_options::set_fs_options;
use super::io_at;
use super::journal::Journal;
use super::layers::{layer_fd, LayerFd, LayerSources};
use super::meta_files::{attach_meta_bind, MetaFiles};
use super::staged::Stager;
use super::submounts::{attach_in_detached, carry_submounts, MountTable};
use super::workspace::{mkdirat_ws, workspace};
use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::fscontext::FsContext;
use crate::kernel::Kernel;
use crate::plan::{HierarchyPlan, Plan, Upper, UpperKind, WorkDir};
use crate::probe::{ImageTree, Probed};
use crate::root::{proc_fd_path, Root};
use crate::state;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use rustix::mount::MountAttrFlags;
use rustix::mount::OpenTreeFlags;
use std::collections::HashMap;
use std::io;

/// A built, still detached overlay.
#[derive(Debug)]
pub struct Built<'p> {
    /// The plan it was built from.
    pub plan: &'p HierarchyPlan,
    /// The detached overlay mount.
    pub mnt: OwnedFd,
    /// Its unique mount id, where the kernel tells (6.8+).
    pub mnt_id: Option<u64>,
    /// Whether the read-only bind of the meta dir still has to be attached.
    pub meta_bind_pending: bool,
    /// The ephemeral dir used, if any.
    pub ephemeral: Option<String>,
    /// Sub-mounts of the host hierarchy now copied into the overlay; the originals are
    /// detached after a successful publish.
    pub hidden_submounts: Vec<OwnedFd>,
    /// The overlay's device (what its meta dir's `dev` names).
    pub dev: Option<(u32, u32)>,
}

/// Everything a build needs besides the plan.
#[derive(Debug)]
pub struct BuildInputs<'a> {
    /// The root.
    pub root: &'a Root,
    /// Probe results (routing and host handles).
    pub probed: &'a Probed,
    /// Image trees by name.
    pub trees: &'a [ImageTree],
    /// Fault injection.
    pub faults: &'a FaultInjector,
    /// Fingerprint of the inputs, recorded in the meta dir.
    pub fingerprint: Option<u64>,
    /// Per hierarchy: an existing ephemeral dir to reuse (selective merge/unmerge).
    pub ephemeral_reuse: Vec<Option<String>>,
    /// The kernel features to use.
    pub kernel: Kernel,
}

/// Build all overlays of a plan, detached. Directories created under the root go into
/// `journal`. Nothing is visible on the host until [`publish`](super::publish()). On kernels that take neither
/// detached layers nor mounts inside a detached tree (before 6.15), the layers are staged in
/// a private namespace first (see [`staged`](super::staged)).
pub fn build<'p>(
    plan: &'p Plan,
    inputs: &BuildInputs<'_>,
    journal: &mut Journal,
) -> Result<Vec<Built<'p>>> {
    if plan.hierarchies.is_empty() {
        return Ok(Vec::new());
    }
    if inputs.kernel.staged_layers() {
        Stager::with(|stager| build_with(plan, inputs, journal, Some(stager)))
    } else {
        build_with(plan, inputs, journal, None)
    }
}

fn build_with<'p>(
    plan: &'p Plan,
    inputs: &BuildInputs<'_>,
    journal: &mut Journal,
    stager: Option<&Stager>,
) -> Result<Vec<Built<'p>>> {
    let class = plan.class;
    let ws = workspace(inputs.faults)?;
    // Sub-mounts to keep visible come from listmount/statmount, or from one look at the
    // mount table for every hierarchy where the kernel lacks those.
    let mounts = MountTable::default();
    let passed = std::cell::RefCell::new(std::collections::HashSet::new());

    let mut sources = LayerSources {
        trees: inputs
            .trees
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), (i, t)))
            .collect(),
        clones: HashMap::new(),
    };

    let mut built = Vec::new();
    for h in &plan.hierarchies {
        let dirs = overlay_dirs(h, class, inputs, ws.as_fd(), journal)?;
        let umask_keeps_0755 = set_top_mode(h, &dirs)?;
        let meta = MetaFiles {
            layer: dirs.meta.as_fd(),
            info: class.info(),
            h,
            note: merge_note(plan, h, inputs.fingerprint, &dirs),
            umask_keeps_0755,
            faults: inputs.faults,
        };
        // The meta dir, in the meta layer, naming the overlay's device (`st`).
        let built_dev = std::cell::Cell::new(None);
        let write_meta = |st: &rustix::fs::Statx| -> Result<()> {
            built_dev.set(Some((st.stx_dev_major, st.stx_dev_minor)));
            meta.write(st)
        };
        let (mnt, mnt_id, meta_bind_pending, hidden_submounts) = match stager {
            None => build_detached(h, class, &dirs, inputs, &mut sources, &mounts, &write_meta)?,
            Some(stager) => {
                let (mnt, hidden) = build_staged(
                    stager,
                    h,
                    StagedInputs {
                        inputs,
                        ws: ws.as_fd(),
                        meta: dirs.meta.as_fd(),
                        upper: dirs.upper.as_ref().zip(dirs.work.as_ref()),
                        attrs: mount_attrs(h),
                        short: class.info().short,
                        dot: class.info().dot_dir,
                        mounts: &mounts,
                        passed: &passed,
                        eph: dirs.eph_mount.as_ref().map(|m| m.as_fd()),
                    },
                    &mut sources,
                    &write_meta,
                )?;
                let mnt_id = crate::sys::statmount::unique_mount_id(mnt.as_fd());
                (mnt, mnt_id, false, hidden)
            }
        };
        built.push(Built {
            plan: h,
            mnt,
            mnt_id,
            meta_bind_pending,
            ephemeral: dirs.ephemeral,
            hidden_submounts,
            dev: built_dev.get(),
        });
    }
    Ok(built)
}

/// libsysext's note about the merge of `h` (mode, where writes go, fingerprint, ephemeral dir).
fn merge_note(
    plan: &Plan,
    h: &HierarchyPlan,
    fingerprint: Option<u64>,
    dirs: &OverlayDirs,
) -> state::Note {
    state::Note {
        mutable: plan.mode,
        upper: h.upper.as_ref().map_or(UpperKind::None, Upper::kind),
        upper_dir: match &h.upper {
            Some(Upper::MutableDir { path, .. }) => Some(path.clone()),
            _ => None,
        },
        fingerprint,
        ephemeral: dirs.ephemeral.clone(),
    }
}

/// The directories of one overlay besides its image layers.
struct OverlayDirs {
    /// The meta layer (in the workspace).
    meta: OwnedFd,
    /// The upper dir, if writable.
    upper: Option<OwnedFd>,
    /// The work dir beside the upper dir.
    work: Option<OwnedFd>,
    /// The ephemeral dir below /run holding the upper and work dirs, if one is used.
    ephemeral: Option<String>,
    /// The private clone of that ephemeral dir's tmpfs.
    eph_mount: Option<OwnedFd>,
}

/// The meta layer, upper and work dirs of hierarchy `h`. Directories made under the root
/// and ephemeral dirs go into `journal`.
fn overlay_dirs(
    h: &HierarchyPlan,
    class: ImageClass,
    inputs: &BuildInputs<'_>,
    ws: BorrowedFd<'_>,
    journal: &mut Journal,
) -> Result<OverlayDirs> {
    let comp = h.hierarchy.as_component();
    let meta = meta_layer(h, &comp, ws, inputs.faults)?;
    // Upper and work dirs. Ephemeral ones go below /run/libsysext/ephemeral when possible.
    let ephemeral = match h.upper {
        Some(Upper::Ephemeral) => ephemeral_dir(inputs, h.index, &comp, class, journal),
        _ => None,
    };
    let mut dirs = OverlayDirs {
        meta,
        upper: None,
        work: None,
        ephemeral: None,
        eph_mount: None,
    };
    let probed = &inputs.probed.hierarchies[h.index];
    match &h.upper {
        None => {}
        Some(Upper::MutableDir { path, rel, create }) if *create => {
            dirs.upper = Some(create_mutable_dir(
                h,
                inputs.root,
                path,
                rel,
                inputs.faults,
                journal,
            )?);
        }
        Some(Upper::MutableDir { path, .. }) => {
            // The plan routes writes to a directory the probe found (else it would create it).
            let fd = probed.mutable_dir.as_ref().ok_or_else(|| {
                Error::io("open", path, io::Error::from_raw_os_error(libc::ENOENT))
            })?;
            dirs.upper = Some(rustix::io::dup(fd).map_err(io_at("dup", path))?);
        }
        Some(Upper::Host { path, .. }) => match &probed.host {
            Ok(Some(hh)) => dirs.upper = Some(rustix::io::dup(&hh.fd).map_err(io_at("dup", path))?),
            _ => {
                return Err(Error::io(
                    "open",
                    path,
                    io::Error::from_raw_os_error(libc::ENOENT),
                ))
            }
        },
        Some(Upper::Ephemeral) => match ephemeral {
            Some(dir) => {
                let (clone, upper, work) = ephemeral_upper(&dir)?;
                dirs.upper = Some(upper);
                dirs.work = Some(work);
                dirs.ephemeral = Some(dir);
                dirs.eph_mount = Some(clone);
            }
            None => {
                let (upper, work) = workspace_upper(ws, &comp)?;
                dirs.upper = Some(upper);
                dirs.work = Some(work);
            }
        },
    }
    if let Some(WorkDir::Beside { path, rel }) = &h.work_dir {
        dirs.work = Some(work_dir_beside(h, inputs, path, rel, journal)?);
    }
    Ok(dirs)
}

/// The meta layer of `h`: a directory of the workspace, made with the mode the merged root
/// gets when there is no upper layer (the umask may still take bits away: then it is
/// changed by [`set_top_mode`]). One directory per hierarchy right in the workspace: its
/// name is seen nowhere (layers are passed as fds).
fn meta_layer(
    h: &HierarchyPlan,
    comp: &str,
    ws: BorrowedFd<'_>,
    faults: &FaultInjector,
) -> Result<OwnedFd> {
    faults
        .step("mkdir meta")
        .map_err(|e| Error::io("create directory", "meta layer", e))?;
    let meta_name = format!("meta.{comp}");
    mkdirat_ws(ws, &meta_name, h.top_mode & 0o777)?;
    rustix::fs::openat(
        ws,
        meta_name.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_at("open", "meta layer"))
}

/// Make the routing dir `rel` (display path `path`) and what is missing above it, journaled.
fn create_mutable_dir(
    h: &HierarchyPlan,
    root: &Root,
    path: &str,
    rel: &str,
    faults: &FaultInjector,
    journal: &mut Journal,
) -> Result<OwnedFd> {
    faults
        .step("mkdir routing dir")
        .map_err(|e| Error::MutableDirCreate {
            dir: path.to_string(),
            source: e,
        })?;
    // Made with the hierarchy's mode at once: a kill cannot leave it 0700.
    journal.note_missing(root, rel, false);
    let created = root
        .mkdir_p_exact(rel, h.parent_mode, h.top_mode)
        .map_err(|e| Error::MutableDirCreate {
            dir: path.to_string(),
            source: e,
        })?;
    journal.dirs(created, false);
    root.open_in(rel, OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| Error::io("open", path, e))
}

/// The upper and work dirs in the ephemeral dir `dir`, and the private clone of its tmpfs
/// they are opened through: a detached mount the staging thread of older kernels can take
/// into its namespace (which was made before the tmpfs was attached, so it would not see
/// it there).
fn ephemeral_upper(dir: &str) -> Result<(OwnedFd, OwnedFd, OwnedFd)> {
    let d = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_at("open", dir))?;
    let clone = rustix::mount::open_tree(
        &d,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(io_at("open", dir))?;
    let open = |p: &str| {
        rustix::fs::openat(
            &clone,
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_at("open", "ephemeral upper dir"))
    };
    let upper = open("upper")?;
    let work = open("work")?;
    Ok((clone, upper, work))
}

/// Upper and work dirs in the detached workspace, where `/run` cannot hold an ephemeral dir
/// (the upper layer cannot outlive the overlay then).
fn workspace_upper(ws: BorrowedFd<'_>, comp: &str) -> Result<(OwnedFd, OwnedFd)> {
    let base = format!("mh_workspace/{comp}");
    mkdirat_ws(ws, "mh_workspace", 0o700)?;
    mkdirat_ws(ws, &base, 0o700)?;
    mkdirat_ws(ws, &format!("{base}/{comp}"), 0o700)?;
    mkdirat_ws(ws, &format!("{base}/.systemd-{comp}-workdir"), 0o700)?;
    let open = |p: String| {
        rustix::fs::openat(
            ws,
            p.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_at("open", "ephemeral upper dir"))
    };
    Ok((
        open(format!("{base}/{comp}"))?,
        open(format!("{base}/.systemd-{comp}-workdir"))?,
    ))
}

/// Make the work dir `rel` (display path `path`) beside the upper dir, journaled, and open it.
fn work_dir_beside(
    h: &HierarchyPlan,
    inputs: &BuildInputs<'_>,
    path: &str,
    rel: &str,
    journal: &mut Journal,
) -> Result<OwnedFd> {
    let root = inputs.root;
    inputs
        .faults
        .step("mkdir work dir")
        .map_err(|e| Error::io("create directory", path, e))?;
    journal.note_missing(root, rel, true);
    let created = root
        .mkdir_p_modes(rel, h.parent_mode, 0o700)
        .map_err(|e| Error::io("create directory", path, e))?;
    journal.dirs(created, true);
    // The kernel wants upper and work dir on the same mount. When the upper dir is the
    // host hierarchy reached through a private clone of its parent mount (a refresh of
    // a merge that covers it), the work dir must be opened through that clone too.
    let via_clone = match (&h.upper, &inputs.probed.hierarchies[h.index].host) {
        (Some(Upper::Host { .. }), Ok(Some(hh))) => hh.keep.as_ref(),
        _ => None,
    };
    match via_clone {
        Some(clone) => {
            let base = rel.rsplit('/').next().unwrap_or(rel);
            rustix::fs::openat(
                clone,
                base,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_at("open", path))
        }
        None => root
            .open_in(rel, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| Error::io("open", path, e)),
    }
}

/// Give the merged root its mode through the top layer (the upper dir, else the meta
/// layer). Returns whether the umask kept 0755 of the meta layer just made (so that the
/// meta dir made in it needs no chmod).
fn set_top_mode(h: &HierarchyPlan, dirs: &OverlayDirs) -> Result<bool> {
    let target = h.target.as_str();
    let upper_top = match &dirs.upper {
        Some(fd) => {
            Some(crate::root::reopen_dir(fd.as_fd()).map_err(|e| Error::io("open", target, e))?)
        }
        None => None,
    };
    let top = upper_top.as_ref().unwrap_or(&dirs.meta);
    let cur = rustix::fs::fstat(top)
        .map_err(io_at("stat", target))?
        .st_mode
        & 0o7777;
    if cur & 0o777 != h.top_mode {
        rustix::fs::fchmod(top, Mode::from_raw_mode(h.top_mode)).map_err(io_at("chmod", target))?;
    }
    // The meta dir is made with 0755. When the meta layer just made came out with every
    // bit asked for, and those include 0755, the umask takes none of them away.
    Ok(upper_top.is_none() && cur & 0o777 == h.top_mode && h.top_mode & 0o755 == 0o755)
}

/// The mount attributes of the overlay of `h`.
fn mount_attrs(h: &HierarchyPlan) -> MountAttrFlags {
    let f = &h.flags;
    let mut attrs = MountAttrFlags::empty();
    if f.read_only {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    if f.nodev {
        attrs |= MountAttrFlags::MOUNT_ATTR_NODEV;
    }
    if f.nosuid {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
    }
    if f.noexec {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
    }
    if f.noatime {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOATIME;
    } else if f.strictatime {
        attrs |= MountAttrFlags::MOUNT_ATTR_STRICTATIME;
    }
    if f.nodiratime {
        attrs |= MountAttrFlags::MOUNT_ATTR_NODIRATIME;
    }
    attrs
}

/// Build the overlay of `h` with `lowerdir+` fds, detached (kernels that take detached
/// layers): the overlay, its unique mount id, whether the meta bind is still to be attached,
/// and the originals of the sub-mounts carried into it.
fn build_detached<'a>(
    h: &'a HierarchyPlan,
    class: ImageClass,
    dirs: &OverlayDirs,
    inputs: &BuildInputs<'_>,
    sources: &mut LayerSources<'a>,
    mounts: &MountTable,
    write_meta: &dyn Fn(&rustix::fs::Statx) -> Result<()>,
) -> Result<(OwnedFd, Option<u64>, bool, Vec<OwnedFd>)> {
    let faults = inputs.faults;
    let target = h.target.as_str();
    let info = class.info();
    let mnt = overlay_fsmount(h, info.short, dirs, inputs, sources)?;
    // The same statx gives the overlay's unique mount id, to count its layers once it is
    // attached.
    let st = rustix::fs::statx(
        &mnt,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS
            | StatxFlags::from_bits_retain(crate::sys::statmount::STATX_MNT_ID_UNIQUE),
    )
    .map_err(io_at("stat", target))?;
    let mnt_id = state::unique_mount_id(&st);
    write_meta(&st)?;
    let mut meta_bind_pending = false;
    if h.writable() {
        meta_bind_pending = attach_meta_bind(mnt.as_fd(), info.dot_dir, faults).is_err();
    }
    let hidden = carry_submounts(inputs.root, h, info.dot_dir, mounts, inputs, &mut |c| {
        Ok(attach_in_detached(mnt.as_fd(), c))
    })?;
    Ok((mnt, mnt_id, meta_bind_pending, hidden))
}

/// The overlay of `h` through one fs context: source, a `lowerdir+` per layer, upper and
/// work dir, the options; created and mounted detached. Each layer's fd is closed as soon
/// as the overlay's context holds the path (a merge of 500 layers must fit in the usual
/// limit of 1024 open files); clones stay open until the overlay is created.
fn overlay_fsmount<'a>(
    h: &'a HierarchyPlan,
    source: &str,
    dirs: &OverlayDirs,
    inputs: &BuildInputs<'_>,
    sources: &mut LayerSources<'a>,
) -> Result<OwnedFd> {
    let faults = inputs.faults;
    let target = h.target.as_str();
    let step = |what: &str| {
        faults
            .step(what)
            .map_err(|e| Error::mount("mount overlay on", target, e))
    };
    let mut keep = Vec::new();
    step("fsopen overlay")?;
    let fs = FsContext::open("overlay").map_err(|e| Error::mount("mount overlay on", target, e))?;
    let fail = |fs: &FsContext, e: rustix::io::Errno| Error::Mount {
        op: "mount overlay on",
        target: target.to_string(),
        source: e.into(),
        kernel_log: fs.kernel_log(),
    };
    fs.set_string("source", source).map_err(|e| fail(&fs, e))?;
    for l in &h.lower {
        let fd = layer_fd(l, h, dirs.meta.as_fd(), inputs, sources)?;
        step("fsconfig lowerdir+")?;
        fs.set_string("lowerdir+", proc_fd_path(fd.as_fd()).as_str())
            .map_err(|e| fail(&fs, e))?;
        if let LayerFd::Kept(fd) = fd {
            keep.push(fd);
        }
    }
    if let (Some(u), Some(w)) = (&dirs.upper, &dirs.work) {
        fs.set_string("upperdir", proc_fd_path(u.as_fd()).as_str())
            .map_err(|e| fail(&fs, e))?;
        fs.set_string("workdir", proc_fd_path(w.as_fd()).as_str())
            .map_err(|e| fail(&fs, e))?;
    }
    set_fs_options(&fs, &h.fs_options, target)?;
    step("fsconfig create")?;
    fs.create().map_err(|e| fail(&fs, e))?;
    step("fsmount overlay")?;
    let mnt = fs.mount(mount_attrs(h)).map_err(|e| fail(&fs, e))?;
    drop(keep);
    Ok(mnt)
}
