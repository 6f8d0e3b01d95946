//! Building the overlays of a plan, detached.

use super::build_staged::{build_staged, StagedInputs};
use super::ephemeral::ephemeral_dir;
use super::fault::FaultInjector;
use super::fs_options::set_fs_options;
use super::io_at;
use super::journal::Journal;
use super::layers::{layer_fd, LayerFd, LayerSources};
use super::meta_files::{attach_meta_bind, write_file_at};
use super::staged::Stager;
use super::submounts::{attach_in_detached, carry_submounts, MountTable};
use super::workspace::{mkdirat_ws, workspace};
use crate::error::{Error, Result};
use crate::fscontext::FsContext;
use crate::kernel::Kernel;
use crate::meta;
use crate::plan::{HierarchyPlan, Plan, Upper, UpperKind, WorkDir};
use crate::probe::{ImageTree, Probed};
use crate::root::{proc_fd_path, Root};
use crate::state;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use rustix::mount::MountAttrFlags;
use rustix::mount::OpenTreeFlags;
use std::collections::HashMap;
use std::io::{self};

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
/// `journal`. Nothing is visible on the host until [`publish`]. On kernels that take neither
/// detached layers nor mounts inside a detached tree (before 6.15), the layers are staged in
/// a private namespace first (see [`staged`]).
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
    let root = inputs.root;
    let class = plan.class;
    let info = class.info();
    let faults = inputs.faults;
    let ws = workspace(faults)?;
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
        let comp = h.hierarchy.as_component();
        let target = h.target.as_str();
        faults
            .step("mkdir meta")
            .map_err(|e| Error::io("create directory", "meta layer", e))?;
        // Made with the mode the merged root gets when there is no upper layer (the umask
        // may still take bits away: then it is changed below). One directory per hierarchy
        // right in the workspace: its name is seen nowhere (layers are passed as fds).
        let meta_name = format!("meta.{comp}");
        mkdirat_ws(ws.as_fd(), &meta_name, h.top_mode & 0o777)?;
        let meta_fd = rustix::fs::openat(
            &ws,
            meta_name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_at("open", "meta layer"))?;

        // Upper and work dirs. Ephemeral ones go below /run/libsysext/ephemeral when possible.
        let ephemeral = match h.upper {
            Some(Upper::Ephemeral) => ephemeral_dir(inputs, h.index, &comp, class, journal),
            _ => None,
        };
        let mut ephemeral_used: Option<String> = None;
        let mut upper_fd: Option<OwnedFd> = None;
        let mut work_fd: Option<OwnedFd> = None;
        let mut eph_mount: Option<OwnedFd> = None;
        match &h.upper {
            None => {}
            Some(Upper::MutableDir { path, rel, create }) => {
                if *create {
                    faults
                        .step("mkdir routing dir")
                        .map_err(|e| Error::MutableDirCreate {
                            dir: path.clone(),
                            source: e,
                        })?;
                    // Made with the hierarchy's mode at once: a kill cannot leave it 0700.
                    journal.note_missing(root, rel, false);
                    let created =
                        root.mkdir_p_exact(rel, h.parent_mode, h.top_mode)
                            .map_err(|e| Error::MutableDirCreate {
                                dir: path.clone(),
                                source: e,
                            })?;
                    journal.dirs(created, false);
                    upper_fd = Some(
                        root.open_in(rel, OFlags::PATH | OFlags::DIRECTORY)
                            .map_err(|e| Error::io("open", path, e))?,
                    );
                } else {
                    let fd = inputs.probed.hierarchies[h.index]
                        .mutable_dir
                        .as_ref()
                        .expect("probed routing dir");
                    upper_fd = Some(rustix::io::dup(fd).map_err(io_at("dup", path))?);
                }
            }
            Some(Upper::Host { path, .. }) => match &inputs.probed.hierarchies[h.index].host {
                Ok(Some(hh)) => {
                    upper_fd = Some(rustix::io::dup(&hh.fd).map_err(io_at("dup", path))?)
                }
                _ => {
                    return Err(Error::io(
                        "open",
                        path,
                        io::Error::from_raw_os_error(libc::ENOENT),
                    ))
                }
            },
            Some(Upper::Ephemeral) if ephemeral.is_some() => {
                let dir = ephemeral.clone().expect("checked");
                let d = rustix::fs::open(
                    dir.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_at("open", &dir))?;
                // Through a private clone of its tmpfs: a detached mount the staging
                // thread of older kernels can take into its namespace (which was made
                // before the tmpfs was attached, so it would not see it there).
                let clone = rustix::mount::open_tree(
                    &d,
                    "",
                    OpenTreeFlags::OPEN_TREE_CLONE
                        | OpenTreeFlags::OPEN_TREE_CLOEXEC
                        | OpenTreeFlags::AT_EMPTY_PATH,
                )
                .map_err(io_at("open", &dir))?;
                let open = |p: &str| {
                    rustix::fs::openat(
                        &clone,
                        p,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(io_at("open", "ephemeral upper dir"))
                };
                upper_fd = Some(open("upper")?);
                work_fd = Some(open("work")?);
                ephemeral_used = Some(dir);
                eph_mount = Some(clone);
            }
            Some(Upper::Ephemeral) => {
                let base = format!("mh_workspace/{comp}");
                mkdirat_ws(ws.as_fd(), "mh_workspace", 0o700)?;
                mkdirat_ws(ws.as_fd(), &base, 0o700)?;
                mkdirat_ws(ws.as_fd(), &format!("{base}/{comp}"), 0o700)?;
                mkdirat_ws(
                    ws.as_fd(),
                    &format!("{base}/.systemd-{comp}-workdir"),
                    0o700,
                )?;
                let open = |p: String| {
                    rustix::fs::openat(
                        &ws,
                        p.as_str(),
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(io_at("open", "ephemeral upper dir"))
                };
                upper_fd = Some(open(format!("{base}/{comp}"))?);
                work_fd = Some(open(format!("{base}/.systemd-{comp}-workdir"))?);
            }
        }
        if let Some(WorkDir::Beside { path, rel }) = &h.work_dir {
            faults
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
            work_fd = Some(match via_clone {
                Some(clone) => {
                    let base = rel.rsplit('/').next().unwrap_or(rel);
                    rustix::fs::openat(
                        clone,
                        base,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(io_at("open", path))?
                }
                None => root
                    .open_in(rel, OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(|e| Error::io("open", path, e))?,
            });
        }

        // The top layer gives the merged root its mode.
        let upper_top = match &upper_fd {
            Some(fd) => Some(
                crate::root::reopen_dir(fd.as_fd()).map_err(|e| Error::io("open", target, e))?,
            ),
            None => None,
        };
        let top = upper_top.as_ref().unwrap_or(&meta_fd);
        let cur = rustix::fs::fstat(top)
            .map_err(io_at("stat", target))?
            .st_mode
            & 0o7777;
        if cur & 0o777 != h.top_mode {
            rustix::fs::fchmod(top, Mode::from_raw_mode(h.top_mode))
                .map_err(io_at("chmod", target))?;
        }
        // The meta dir below is made with 0755. When the meta layer just made came out with
        // every bit asked for, and those include 0755, the umask takes none of them away.
        let umask_keeps_0755 =
            upper_top.is_none() && cur & 0o777 == h.top_mode && h.top_mode & 0o755 == 0o755;

        let mut attrs = MountAttrFlags::empty();
        if h.flags.read_only {
            attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
        }
        if h.flags.nodev {
            attrs |= MountAttrFlags::MOUNT_ATTR_NODEV;
        }
        if h.flags.nosuid {
            attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
        }
        if h.flags.noexec {
            attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
        }
        if h.flags.noatime {
            attrs |= MountAttrFlags::MOUNT_ATTR_NOATIME;
        } else if h.flags.strictatime {
            attrs |= MountAttrFlags::MOUNT_ATTR_STRICTATIME;
        }
        if h.flags.nodiratime {
            attrs |= MountAttrFlags::MOUNT_ATTR_NODIRATIME;
        }
        // The meta dir, in the meta layer, naming the overlay's device (`st`).
        let built_dev = std::cell::Cell::new(None);
        let write_meta = |st: &rustix::fs::Statx| -> Result<()> {
            built_dev.set(Some((st.stx_dev_major, st.stx_dev_minor)));
            faults
                .step("write meta")
                .map_err(|e| Error::io("write", "meta dir", e))?;
            mkdirat_ws(meta_fd.as_fd(), info.dot_dir, 0o755)?;
            if !umask_keeps_0755 {
                // The meta dir was just made in our own tmpfs: no symlink to fear.
                rustix::fs::chmodat(
                    &meta_fd,
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
                meta_fd.as_fd(),
                &in_meta(info.list_file),
                &meta::encode_extensions(&h.meta.extensions),
                "meta extensions",
            )?;
            write_file_at(
                meta_fd.as_fd(),
                &in_meta("dev"),
                &meta::encode_dev(st.stx_dev_major, st.stx_dev_minor),
                "meta dev",
            )?;
            if let Some(w) = &h.meta.work_dir {
                write_file_at(
                    meta_fd.as_fd(),
                    &in_meta("work_dir"),
                    &meta::encode_work_dir(w),
                    "meta work_dir",
                )?;
            }
            let note = state::Note {
                mutable: plan.mode,
                upper: h.upper.as_ref().map_or(UpperKind::None, Upper::kind),
                upper_dir: match &h.upper {
                    Some(Upper::MutableDir { path, .. }) => Some(path.clone()),
                    _ => None,
                },
                fingerprint: inputs.fingerprint,
                ephemeral: ephemeral_used.clone(),
            };
            write_file_at(
                meta_fd.as_fd(),
                &in_meta(state::MODE_NOTE),
                &note.encode(),
                "meta note",
            )?;
            // The merged root's mtime (what `status` reports as the merge's time) is the meta
            // layer's: set by making the meta dir in it, its last change, just now.

            Ok(())
        };
        let (mnt, mnt_id, meta_bind_pending, hidden_submounts) = match stager {
            None => {
                // The overlay. Each layer's fd is closed as soon as the overlay's context
                // holds the path (a merge of 500 layers must fit in the usual limit of 1024
                // open files); clones stay open until the overlay is created.
                let mut keep = Vec::new();
                faults
                    .step("fsopen overlay")
                    .map_err(|e| Error::mount("mount overlay on", target, e))?;
                let fs = FsContext::open("overlay")
                    .map_err(|e| Error::mount("mount overlay on", target, e))?;
                let fail = |fs: &FsContext, e: rustix::io::Errno| Error::Mount {
                    op: "mount overlay on",
                    target: target.to_string(),
                    source: e.into(),
                    kernel_log: fs.kernel_log(),
                };
                fs.set_string("source", info.short)
                    .map_err(|e| fail(&fs, e))?;
                for l in &h.lower {
                    let fd = layer_fd(l, h, meta_fd.as_fd(), inputs, &mut sources)?;
                    faults
                        .step("fsconfig lowerdir+")
                        .map_err(|e| Error::mount("mount overlay on", target, e))?;
                    fs.set_string("lowerdir+", proc_fd_path(fd.as_fd()).as_str())
                        .map_err(|e| fail(&fs, e))?;
                    if let LayerFd::Kept(fd) = fd {
                        keep.push(fd);
                    }
                }
                if let (Some(u), Some(w)) = (&upper_fd, &work_fd) {
                    fs.set_string("upperdir", proc_fd_path(u.as_fd()).as_str())
                        .map_err(|e| fail(&fs, e))?;
                    fs.set_string("workdir", proc_fd_path(w.as_fd()).as_str())
                        .map_err(|e| fail(&fs, e))?;
                }
                set_fs_options(&fs, &h.fs_options, target)?;
                faults
                    .step("fsconfig create")
                    .map_err(|e| Error::mount("mount overlay on", target, e))?;
                fs.create().map_err(|e| fail(&fs, e))?;
                faults
                    .step("fsmount overlay")
                    .map_err(|e| Error::mount("mount overlay on", target, e))?;
                let mnt = fs.mount(attrs).map_err(|e| fail(&fs, e))?;
                drop(keep);
                // The same statx
                // gives the overlay's unique mount id, to count its layers once it is attached.
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
                    meta_bind_pending =
                        attach_meta_bind(mnt.as_fd(), info.dot_dir, faults).is_err();
                }
                let hidden = carry_submounts(root, h, info.dot_dir, &mounts, inputs, &mut |c| {
                    Ok(attach_in_detached(mnt.as_fd(), c))
                })?;
                (mnt, mnt_id, meta_bind_pending, hidden)
            }
            Some(stager) => {
                let (mnt, hidden) = build_staged(
                    stager,
                    h,
                    StagedInputs {
                        inputs,
                        ws: ws.as_fd(),
                        meta: meta_fd.as_fd(),
                        upper: upper_fd.as_ref().zip(work_fd.as_ref()),
                        attrs,
                        short: info.short,
                        dot: info.dot_dir,
                        mounts: &mounts,
                        passed: &passed,
                        eph: eph_mount.as_ref().map(|m| m.as_fd()),
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
            ephemeral: ephemeral_used,
            hidden_submounts,
            dev: built_dev.get(),
        });
    }
    Ok(built)
}
