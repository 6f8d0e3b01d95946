//! Applying a [`Plan`]: building each overlay detached with the new mount API, writing the
//! meta dir, and attaching the overlays. Every effect that must be undone on failure is
//! recorded in a [`Journal`].

use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::event::{Event, EventSink};
use crate::fscontext::{detached_tmpfs, FsContext};
use crate::kernel::{Kernel, KernelFeatures};
use crate::meta;
use crate::plan::{HierarchyPlan, Layer, Plan, Upper, UpperKind, WorkDir};
use crate::probe::{ImageTree, Probed};
use crate::root::{open_beneath, proc_fd_path, Root};
use crate::state;
use crate::sys::mountattr::{self, mount_setattr};
use staged::{Src, Stager};

pub mod intent;
pub mod rescue;
pub mod staged;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use rustix::mount::OpenTreeFlags;
use rustix::mount::{MountAttrFlags, MoveMountFlags, UnmountFlags};
use std::collections::HashMap;
use std::io::{self, Read, Write};

/// Test hook: make the N-th mount-related step fail (`SYSEXT_FAULT_INJECT=N`, counting from 1),
/// or kill the process there (`SYSEXT_FAULT_KILL=N`: `abort()`, as a crash would).
/// Only honoured in debug builds and with the `fault-injection` feature.
#[derive(Debug, Default)]
pub struct FaultInjector {
    target: Option<u64>,
    kill: Option<u64>,
    count: std::sync::atomic::AtomicU64,
}

impl FaultInjector {
    /// Read the target from the environment.
    pub fn from_env() -> FaultInjector {
        let var = |name: &str| {
            if cfg!(any(debug_assertions, feature = "fault-injection")) {
                std::env::var(name).ok().and_then(|v| v.parse().ok())
            } else {
                None
            }
        };
        FaultInjector {
            target: var("SYSEXT_FAULT_INJECT"),
            kill: var("SYSEXT_FAULT_KILL"),
            count: Default::default(),
        }
    }

    /// Count a step; fail it if it is the chosen one.
    pub fn step(&self, what: &str) -> io::Result<()> {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if self.kill == Some(n) {
            std::process::abort();
        }
        if self.target == Some(n) {
            return Err(io::Error::other(format!(
                "injected fault at step {n} ({what})"
            )));
        }
        Ok(())
    }

    /// Steps counted so far.
    pub fn steps(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An effect to undo on failure.
#[derive(Debug)]
enum Undo {
    /// A directory we created (root-relative). `recursive` for work dirs the kernel filled.
    Dir { rel: String, recursive: bool },
    /// A mount we attached (fd of its root).
    Mount(OwnedFd),
    /// An ephemeral dir we created below [`state::EPHEMERAL_DIR`].
    Ephemeral(String),
    /// A copy of an old merge kept in the lock dir while it is replaced in a window.
    Saved(String),
    /// A mount we put beneath an old merge: undone by detaching both and attaching a clone
    /// of the old merge (taken before the swap) at the hierarchy again.
    Beneath {
        /// Root of the new mount.
        new: OwnedFd,
        /// Detached copy of the old merge (same superblock, meta bind included).
        backup: OwnedFd,
        /// The hierarchy, root-relative.
        rel: String,
        /// Mount id of the old merge's top.
        old_id: Option<u64>,
    },
}

/// Effects done so far, undone in reverse order by [`Journal::rollback`].
#[derive(Debug, Default)]
pub struct Journal {
    undo: Vec<Undo>,
    /// The intent record, written before each effect (see [`intent`]).
    pub intent: intent::Intent,
}

impl Journal {
    /// The overlay of the newest mount entry, if that is the newest entry.
    fn newest_mount(&self) -> Option<BorrowedFd<'_>> {
        match self.undo.last()? {
            Undo::Mount(fd) | Undo::Beneath { new: fd, .. } => Some(fd.as_fd()),
            _ => None,
        }
    }

    fn dirs(&mut self, rels: Vec<String>, recursive: bool) {
        for rel in rels {
            self.undo.push(Undo::Dir { rel, recursive });
        }
    }

    /// A journal writing to `intent`.
    pub fn with_intent(intent: intent::Intent) -> Journal {
        Journal {
            undo: Vec::new(),
            intent,
        }
    }

    /// Note in the intent record the directories of `rel` that do not exist yet, before
    /// they are made (the last one with its content if `recursive`).
    fn note_missing(&self, root: &Root, rel: &str, recursive: bool) {
        if !self.intent.is_on() {
            return;
        }
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut lines = String::new();
        for i in 0..comps.len() {
            let sub = comps[..=i].join("/");
            if root.open_in(&sub, OFlags::PATH).is_ok() {
                continue;
            }
            let last = i + 1 == comps.len() && recursive;
            lines.push_str(&format!("dir\t{sub}\t{}\n", u8::from(last)));
        }
        if !lines.is_empty() {
            self.intent.note(&lines);
        }
    }

    /// Undo everything, newest first. Errors are ignored: this runs on a failure path.
    /// The intent record goes once all is undone.
    pub fn rollback(mut self, root: &Root) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Mount(fd) => {
                    let _ = rustix::mount::unmount(
                        proc_fd_path(fd.as_fd()).as_str(),
                        UnmountFlags::DETACH,
                    );
                }
                Undo::Ephemeral(path) => {
                    let _ = remove_ephemeral(&path);
                }
                Undo::Saved(path) => intent::drop_saved(&path),
                Undo::Beneath {
                    new,
                    backup,
                    rel,
                    old_id,
                } => {
                    // Take the old merge (on top) and the new overlay (just beneath it) off
                    // from the top, each checked to be the one expected: a path to a mount
                    // that has another on top may lead to the one on top.
                    let new_id = state::mount_id(new.as_fd());
                    for _ in 0..2 {
                        let Ok(t) = root.open_in(&rel, OFlags::PATH | OFlags::DIRECTORY) else {
                            break;
                        };
                        let top = state::mount_id(t.as_fd());
                        if top.is_none() || (top != new_id && top != old_id) {
                            break;
                        }
                        let _ = rustix::mount::unmount(
                            proc_fd_path(t.as_fd()).as_str(),
                            UnmountFlags::DETACH,
                        );
                        if top == new_id {
                            break;
                        }
                    }
                    if let Ok(t) = root.open_in(&rel, OFlags::PATH | OFlags::DIRECTORY) {
                        let _ = attach(&backup, t.as_fd());
                    }
                }
                Undo::Dir { rel, recursive } => {
                    if recursive {
                        let _ = remove_tree(root, &rel);
                    } else {
                        let _ = rmdir(root, &rel);
                    }
                }
            }
        }
        std::mem::take(&mut self.intent).finish();
    }

    /// Forget the journal: the effects stay. Returns the intent record (to be finished
    /// once the caller's last step is done).
    pub fn commit(self) -> intent::Intent {
        self.intent
    }
}

fn io_at<'a>(op: &'static str, what: &'a str) -> impl Fn(rustix::io::Errno) -> Error + 'a {
    move |e| Error::io(op, what, e)
}

/// A detached tmpfs used as workspace (meta layers, ephemeral upper dirs). It is never
/// attached anywhere (the meta bind of writable merges is a bind of the overlay), so it
/// needs no source name.
pub fn workspace(faults: &FaultInjector) -> Result<OwnedFd> {
    let what = "workspace tmpfs";
    faults
        .step("fsopen tmpfs")
        .map_err(|e| Error::mount("create", what, e))?;
    let fs = FsContext::open("tmpfs").map_err(|e| Error::mount("create", what, e))?;
    fs.set_string("mode", "0700")
        .map_err(|e| Error::mount("configure", what, e))?;
    fs.create().map_err(|e| Error::mount("create", what, e))?;
    fs.mount(MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID)
        .map_err(|e| Error::mount("mount", what, e))
}

/// A private, read-only, non-recursive bind of a directory image.
pub fn clone_tree(tree: &ImageTree, faults: &FaultInjector) -> Result<OwnedFd> {
    clone_read_only(tree, "", OpenTreeFlags::AT_EMPTY_PATH, faults)
}

/// A private, read-only, non-recursive bind of `rel` in a directory image (`how`: how `rel`
/// is looked up).
fn clone_read_only(
    tree: &ImageTree,
    rel: &str,
    how: OpenTreeFlags,
    faults: &FaultInjector,
) -> Result<OwnedFd> {
    faults
        .step("open_tree image")
        .map_err(|e| Error::mount("bind", &tree.path, e))?;
    let fd = rustix::mount::open_tree(
        &tree.fd,
        rel,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | how,
    )
    .map_err(|e| Error::mount("bind", &tree.path, e))?;
    mount_setattr(fd.as_fd(), true, mountattr::MOUNT_ATTR_RDONLY, 0)
        .map_err(|e| Error::mount("make read-only", &tree.path, e))?;
    Ok(fd)
}

fn mkdirat_ws(ws: BorrowedFd<'_>, rel: &str, mode: u32) -> Result<()> {
    match rustix::fs::mkdirat(ws, rel, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::io(
            "create directory",
            format!("<workspace>/{rel}"),
            e,
        )),
    }
}

fn write_file_at(dir: BorrowedFd<'_>, name: &str, content: &str, what: &str) -> Result<()> {
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

/// A private read-only clone of the directory `rel` of a directory tree, which probing found
/// to be a plain entry of the tree: a single component, opened without following anything
/// (should it have become a symlink since, the clone is of the link and the overlay refuses
/// it).
fn clone_plain_dir(tree: &ImageTree, rel: &str, faults: &FaultInjector) -> Result<OwnedFd> {
    clone_read_only(tree, rel, OpenTreeFlags::AT_SYMLINK_NOFOLLOW, faults)
}

/// The image trees of a build by name (with their index in [`BuildInputs::trees`]), and the
/// clones of whole directory trees made so far.
struct LayerSources<'a> {
    trees: HashMap<&'a str, (usize, &'a ImageTree)>,
    clones: HashMap<&'a str, OwnedFd>,
}

/// The fd of one lower layer.
enum LayerFd<'x> {
    /// Ours, closed once the overlay's context holds the path.
    Passed(OwnedFd),
    /// A clone: closing it would dissolve the mount, so it stays open until the overlay is
    /// created.
    Kept(OwnedFd),
    /// Held elsewhere (the meta dir, the host or routing dir found by probing).
    Borrowed(BorrowedFd<'x>),
}

impl LayerFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            LayerFd::Passed(fd) | LayerFd::Kept(fd) => fd.as_fd(),
            LayerFd::Borrowed(fd) => *fd,
        }
    }
}

/// The fd of one lower layer; `meta` is the meta layer's directory.
fn layer_fd<'a, 'x>(
    layer: &'a Layer,
    h: &HierarchyPlan,
    meta: BorrowedFd<'x>,
    inputs: &'x BuildInputs<'_>,
    sources: &mut LayerSources<'a>,
) -> Result<LayerFd<'x>> {
    let hp = &inputs.probed.hierarchies[h.index];
    let fd = match layer {
        Layer::Meta => return Ok(LayerFd::Borrowed(meta)),
        Layer::Import(p) => {
            let fd = hp
                .mutable_dir
                .as_ref()
                .ok_or_else(|| Error::io("open", p, io::Error::from_raw_os_error(libc::ENOENT)))?;
            return Ok(LayerFd::Borrowed(fd.as_fd()));
        }
        Layer::Extension { name, path } => {
            let &(i, tree) = sources.trees.get(name.as_str()).ok_or_else(|| {
                Error::io("open", path, io::Error::from_raw_os_error(libc::ENOENT))
            })?;
            let rel = h.hierarchy.relative();
            let plain = inputs.probed.plain.get(i).and_then(|p| p.get(h.index)) == Some(&true);
            if !tree.is_mount && plain {
                return Ok(LayerFd::Kept(clone_plain_dir(tree, rel, inputs.faults)?));
            }
            // Image files are private read-only mounts already; other directory trees are
            // cloned whole (once) and the hierarchy is looked up inside the clone.
            let root = if tree.is_mount {
                tree.fd.as_fd()
            } else {
                if !sources.clones.contains_key(name.as_str()) {
                    sources
                        .clones
                        .insert(name.as_str(), clone_tree(tree, inputs.faults)?);
                }
                sources.clones[name.as_str()].as_fd()
            };
            let fd = open_beneath(root, rel, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| Error::io("open", path, e))?;
            // A DDI's usr partition is a mount inside the image's detached tree; overlayfs
            // takes a detached mount as a layer only at the root of its tree (EINVAL
            // otherwise), so that mount gets a detached tree of its own.
            // (The staging thread of older kernels reaches that mount on its own.)
            if tree.is_mount
                && !inputs.kernel.staged_layers()
                && state::mount_id(fd.as_fd()) != state::mount_id(tree.fd.as_fd())
            {
                inputs
                    .faults
                    .step("open_tree image")
                    .map_err(|e| Error::mount("bind", &tree.path, e))?;
                let clone = rustix::mount::open_tree(
                    &fd,
                    "",
                    OpenTreeFlags::OPEN_TREE_CLONE
                        | OpenTreeFlags::OPEN_TREE_CLOEXEC
                        | OpenTreeFlags::AT_EMPTY_PATH,
                )
                .map_err(|e| Error::mount("bind", &tree.path, e))?;
                return Ok(LayerFd::Kept(clone));
            }
            fd
        }
        Layer::Host(p) => match &hp.host {
            Ok(Some(hh)) => return Ok(LayerFd::Borrowed(hh.fd.as_fd())),
            _ => {
                return Err(Error::io(
                    "open",
                    p,
                    io::Error::from_raw_os_error(libc::ENOENT),
                ))
            }
        },
    };
    Ok(LayerFd::Passed(fd))
}

/// Hand the overlayfs options after the layers to an overlay's fs context. A refused one is
/// named in the error, with the kernel's log (`overlay: Unknown parameter 'x'`).
pub(crate) fn set_fs_options(
    fs: &FsContext,
    options: &[crate::overlayopts::FsOption],
    target: &str,
) -> Result<()> {
    for o in options {
        fs.set_option(o)
            .map_err(|e| option_error(o, target, e, fs.kernel_log()))?;
    }
    Ok(())
}

pub(crate) fn option_error(
    o: &crate::overlayopts::FsOption,
    target: &str,
    e: rustix::io::Errno,
    kernel_log: Vec<String>,
) -> Error {
    Error::Mount {
        op: "set overlayfs mount option",
        target: format!(
            "'{}' for the overlay on {target}",
            crate::overlayopts::OverlayOptions::render(o)
        ),
        source: e.into(),
        kernel_log,
    }
}

/// After `mount(2)` refused an overlay (the legacy path keeps no fs context log): find the
/// option the kernel refuses by trying each in an fs context of its own, for the error.
/// `None` when each is accepted alone (or the kernel parses overlayfs options only when the
/// file system is created, as before Linux 6.5).
pub(crate) fn refused_fs_option(
    options: &[crate::overlayopts::FsOption],
    target: &str,
) -> Option<Error> {
    for o in options {
        let fs = FsContext::open("overlay").ok()?;
        if let Err(e) = fs.set_option(o) {
            return Some(option_error(o, target, e, fs.kernel_log()));
        }
    }
    None
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

/// What a staged build of one overlay takes besides the plan.
struct StagedInputs<'x> {
    inputs: &'x BuildInputs<'x>,
    /// The workspace tmpfs (meta layers, ephemeral upper dirs).
    ws: BorrowedFd<'x>,
    /// This hierarchy's meta layer.
    meta: BorrowedFd<'x>,
    /// Upper and work dir.
    upper: Option<(&'x OwnedFd, &'x OwnedFd)>,
    attrs: MountAttrFlags,
    short: &'static str,
    dot: &'static str,
    mounts: &'x MountTable,
    /// Detached mounts handed to the staging thread so far in this build.
    passed: &'x std::cell::RefCell<std::collections::HashSet<u64>>,
    /// The private clone of the ephemeral tmpfs holding the upper and work dirs.
    eph: Option<BorrowedFd<'x>>,
}

/// Build one overlay through the staging thread (kernels before 6.15): returns the detached
/// copy to attach, and the originals of the sub-mounts carried into it.
fn build_staged<'a>(
    stager: &Stager,
    h: &'a HierarchyPlan,
    s: StagedInputs<'_>,
    sources: &mut LayerSources<'a>,
    write_meta: &dyn Fn(&rustix::fs::Statx) -> Result<()>,
) -> Result<(OwnedFd, Vec<OwnedFd>)> {
    let inputs = s.inputs;
    let faults = inputs.faults;
    let target = h.target.as_str();
    faults
        .step("fsopen overlay")
        .map_err(|e| Error::mount("mount overlay on", target, e))?;
    let mut fds = Vec::with_capacity(h.lower.len());
    for l in &h.lower {
        fds.push(layer_fd(l, h, s.meta, inputs, sources)?);
        faults
            .step("fsconfig lowerdir+")
            .map_err(|e| Error::mount("mount overlay on", target, e))?;
    }
    let mut roots = detached_roots(s.ws, inputs, sources, h);
    if let Some(e) = s.eph {
        if let Some(id) = state::mount_id(e) {
            roots.push((id, id, e));
        }
    }
    let mut passed = s.passed.borrow_mut();
    let lower = fds
        .into_iter()
        .map(|fd| to_src(fd, &roots, &mut passed))
        .collect::<Result<Vec<_>>>()?;
    let upper = match s.upper {
        Some((u, w)) => Some((
            to_src(LayerFd::Borrowed(u.as_fd()), &roots, &mut passed)?,
            to_src(LayerFd::Borrowed(w.as_fd()), &roots, &mut passed)?,
        )),
        None => None,
    };
    drop(passed);
    let options = h.fs_options.clone();
    faults
        .step("fsconfig create")
        .map_err(|e| Error::mount("mount overlay on", target, e))?;
    let st = stager.create(staged::Spec {
        index: h.index,
        source: s.short.to_string(),
        lower,
        upper,
        options,
        attrs: s.attrs,
        append: inputs.kernel.has(KernelFeatures::LOWERDIR_APPEND),
        target: target.to_string(),
    })?;
    write_meta(&st)?;
    faults
        .step("fsmount overlay")
        .map_err(|e| Error::mount("mount overlay on", target, e))?;
    let finish = |submounts| staged::Finish {
        index: h.index,
        meta_bind: h.writable().then(|| s.dot.to_string()),
        submounts,
        target: target.to_string(),
    };
    let mut copy = None;
    let hidden = carry_submounts(inputs.root, h, s.dot, s.mounts, inputs, &mut |clones| {
        let (mnt, carried) = stager.finish(finish(clones))?;
        copy = Some(mnt);
        Ok(carried)
    })?;
    let mnt = match copy {
        Some(m) => m,
        None => stager.finish(finish(Vec::new()))?.0,
    };
    Ok((mnt, hidden))
}

/// The detached mounts a layer of this build can lie on, by mount id: the workspace, image
/// files, clones of directory trees, and the clone that reaches the host hierarchy below a
/// merge of ours.
fn detached_roots<'x>(
    ws: BorrowedFd<'x>,
    inputs: &'x BuildInputs<'_>,
    sources: &'x LayerSources<'_>,
    h: &HierarchyPlan,
) -> Vec<(u64, u64, BorrowedFd<'x>)> {
    let mut v = vec![ws];
    v.extend(
        inputs
            .trees
            .iter()
            .filter(|t| t.is_mount)
            .map(|t| t.fd.as_fd()),
    );
    v.extend(sources.clones.values().map(|c| c.as_fd()));
    if let Ok(Some(hh)) = &inputs.probed.hierarchies[h.index].host {
        if let Some(k) = &hh.keep {
            v.push(k.as_fd());
        }
    }
    let mut out = Vec::new();
    for fd in v {
        let Some(id) = state::mount_id(fd) else {
            continue;
        };
        out.push((id, id, fd));
        // An image tree composed of partitions has the usr partition mounted inside.
        if let Ok(usr) = crate::root::open_beneath(fd, "usr", OFlags::PATH | OFlags::DIRECTORY) {
            if let Some(inner) = state::mount_id(usr.as_fd()).filter(|&i| i != id) {
                out.push((inner, id, fd));
            }
        }
    }
    out
}

/// Where the staging thread finds a layer: on one of our detached mounts (`passed`: those
/// handed to the staging thread already in this build), or on a mount attached in our
/// namespace.
fn to_src(
    fd: LayerFd<'_>,
    roots: &[(u64, u64, BorrowedFd<'_>)],
    passed: &mut std::collections::HashSet<u64>,
) -> Result<Src> {
    let no_id = || Error::io("stat", "a layer", io::Error::other("no mount id"));
    // A clone is a detached mount of its own, whose root is the layer.
    if let LayerFd::Kept(own) = fd {
        let id = state::mount_id(own.as_fd()).ok_or_else(no_id)?;
        passed.insert(id);
        return Ok(Src::Below {
            id,
            mount: Some(own),
            dir: None,
        });
    }
    let id = state::mount_id(fd.as_fd());
    let Some(&(_, id, root)) = roots.iter().find(|(m, _, _)| Some(*m) == id) else {
        return staged::attached(fd.as_fd());
    };
    let dir = match fd {
        LayerFd::Passed(own) => own,
        other => other
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", "a layer", e))?,
    };
    let mount = if passed.insert(id) {
        Some(
            root.try_clone_to_owned()
                .map_err(|e| Error::io("dup", "a layer", e))?,
        )
    } else {
        None
    };
    Ok(Src::Below {
        id,
        mount,
        dir: Some(dir),
    })
}

/// Keep mounts below the hierarchy visible: copy each top-level mount below it (with what
/// is mounted below that) into the new, still detached overlay at the same place. The
/// originals stay where they are, under the host hierarchy, and are visible again after
/// unmerge. A mount point that does not exist in the merged view is skipped.
fn carry_submounts(
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
fn attach_in_detached(mnt: BorrowedFd<'_>, clones: Vec<(String, OwnedFd)>) -> Vec<bool> {
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

/// Bind the meta dir of a writable overlay onto itself, read-only.
fn attach_meta_bind(mnt: BorrowedFd<'_>, dot: &str, faults: &FaultInjector) -> Result<()> {
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
    let copy = rustix::mount::open_tree(
        &cur.fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .ok()?;
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
    if journal.intent.is_on() {
        let mut lines = String::new();
        for b in &built {
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
    for mut b in built {
        hidden.append(&mut b.hidden_submounts);
        let h = b.plan;
        let rel = h.hierarchy.relative();
        if h.create_target {
            faults
                .step("mkdir hierarchy")
                .map_err(|e| Error::HierarchyCreate {
                    path: h.target.clone(),
                    source: e,
                })?;
            journal.note_missing(root, rel, false);
            let created = root
                .mkdir_p(rel, 0o755)
                .map_err(|e| Error::HierarchyCreate {
                    path: h.target.clone(),
                    source: e,
                })?;
            // A hierarchy created for the merge stays, as with systemd (not journaled
            // as undo-on-success, but removed again if the merge fails).
            journal.dirs(created, false);
        }
        // The merge this one replaces, taken out of the probe.
        let cur = probed.hierarchies[h.index].current.take();
        // The top of the hierarchy, as probed: our merge on it, or the directory itself
        // (nothing was attached there since, under the lock). Opened only when just made.
        let opened;
        let target_fd = match (&cur, &probed.hierarchies[h.index].host) {
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
        let mut backup = None;
        let mut saved = None;
        // Overlays of ours stacked below the top (left by an interrupted refresh) can only
        // go with everything above them: collapse the stack in the smallest window.
        let stacked = match &probed.hierarchies[h.index].host {
            Ok(Some(hh)) => hh.stacked,
            _ => 0,
        };
        match &cur {
            Some(c) if stacked > 1 => {
                saved = save_old(c, rel, h.index, journal);
                backup = Some(replace_in_window(
                    root, rel, c, &b, &h.target, stacked, class,
                )?);
            }
            Some(c) if !kernel.has(KernelFeatures::MOVE_BENEATH) => {
                // Kernels without MOVE_MOUNT_BENEATH (before 6.5): replace the old merge with
                // the smallest window we can make, one system call between taking it off
                // and putting the new one on (stacking would keep every old overlay and its
                // loop devices until unmerge).
                saved = save_old(c, rel, h.index, journal);
                backup = Some(replace_in_window(root, rel, c, &b, &h.target, 1, class)?);
            }
            Some(c) => {
                backup = Some(
                    rustix::mount::open_tree(
                        &c.fd,
                        "",
                        OpenTreeFlags::OPEN_TREE_CLONE
                            | OpenTreeFlags::OPEN_TREE_CLOEXEC
                            | OpenTreeFlags::AT_EMPTY_PATH
                            | OpenTreeFlags::AT_RECURSIVE,
                    )
                    .map_err(|e| Error::mount("clone the old overlay on", &h.target, e))?,
                );
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
                    Ok(()) => {}
                    Err(e) if beneath_unsupported(e) => {
                        saved = save_old(c, rel, h.index, journal);
                        backup = Some(replace_in_window(root, rel, c, &b, &h.target, 1, class)?);
                    }
                    Err(e) => {
                        return Err(Error::mount(
                            "attach overlay beneath the old one on",
                            &h.target,
                            e,
                        ))
                    }
                }
            }
            None => {
                stack_on_top(&b, target_fd, &h.target)?;
            }
        }
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
        let mnt = journal.newest_mount().expect("journaled just now");
        if b.meta_bind_pending {
            attach_meta_bind(mnt, class.info().dot_dir, faults)?;
        }
        verify.push((layer_count(mnt, b.mnt_id, h.lower.len(), kernel), h));
        if let Some(c) = cur.filter(|_| !stacked) {
            let reused = c.meta.work_dir.is_some() && c.meta.work_dir == h.meta.work_dir;
            let old_eph = c.note.as_ref().and_then(|n| n.ephemeral.clone());
            replaced.push(Replaced {
                saved: saved.take(),
                old_ephemeral: if old_eph == b.ephemeral {
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
            });
        }
        sink.event(&Event::Merged(h.target.clone()));
    }
    verify_layers(&verify)?;
    Ok((replaced, hidden))
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
    let backup = rustix::mount::open_tree(
        &cur.fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| Error::mount("clone the old overlay on", target, e))?;
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
fn attach(tree: &OwnedFd, target: BorrowedFd<'_>) -> rustix::io::Result<()> {
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

/// A mount sitting on another one.
#[derive(Debug)]
struct ChildMount {
    /// Mount id as mountinfo shows it.
    id: u64,
    /// Mount point relative to our root.
    mount_point: String,
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
fn child_mounts(
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

/// How many lower layers a new overlay has: counted from `statmount(2)` where the kernel
/// has it, else its mount id, to look it up in mountinfo.
enum LayerCount {
    Counted(usize),
    MountId(Option<u64>),
}

fn layer_count(mnt: BorrowedFd<'_>, id: Option<u64>, layers: usize, kernel: Kernel) -> LayerCount {
    if !kernel.has(KernelFeatures::STATMOUNT) {
        return LayerCount::MountId(state::mount_id(mnt));
    }
    // Each layer shows as `lowerdir+=/proc/self/fd/N`, plus the other options.
    let expect = 32 * layers + 128;
    match id
        .or_else(|| crate::sys::statmount::unique_mount_id(mnt))
        .and_then(|u| {
            crate::sys::statmount::fs_type_and_options(u, expect)
                .ok()
                .flatten()
        }) {
        Some((fstype, opts)) if fstype == "overlay" => {
            LayerCount::Counted(crate::mountinfo::overlay_lower_count(&opts))
        }
        _ => LayerCount::MountId(state::mount_id(mnt)),
    }
}

/// Check that the kernel mounted as many lower layers as planned (one mountinfo read for
/// all overlays `statmount` could not count).
fn verify_layers(new: &[(LayerCount, &HierarchyPlan)]) -> Result<()> {
    let check = |found: usize, h: &HierarchyPlan| {
        if found != 0 && found != h.lower.len() {
            return Err(Error::LayerCountMismatch {
                hierarchy: h.hierarchy.to_string(),
                expected: h.lower.len(),
                found,
            });
        }
        Ok(())
    };
    let mut rest = Vec::new();
    for (count, h) in new {
        match count {
            LayerCount::Counted(n) => check(*n, h)?,
            LayerCount::MountId(id) => rest.push((*id, *h)),
        }
    }
    if rest.is_empty() {
        return Ok(());
    }
    let Ok(mounts) = crate::mountinfo::read_self() else {
        return Ok(());
    };
    for (id, h) in rest {
        let Some(m) = id.and_then(|id| mounts.iter().find(|m| m.id == id)) else {
            continue;
        };
        check(m.overlay_lower_count(), h)?;
    }
    Ok(())
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
        let mut submounts = Vec::new();
        {
            let kpath = root.host_path(&r.rel);
            for (m, sub) in child_mounts(
                r.fd.as_fd(),
                st.as_ref().and_then(state::unique_mount_id),
                &kpath.to_string_lossy(),
                class.info().dot_dir,
                mounts,
                kernel,
            ) {
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
        }
        faults
            .step("clone before umount")
            .map_err(|e| Error::mount("unmount", &r.path, e))?;
        let backup = rustix::mount::open_tree(
            &r.fd,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(|e| Error::mount("unmount", &r.path, e))?;
        // What is left to remove once the merge is gone, should this process not live
        // to do it.
        if intent.is_on() && (work_dir.is_some() || ephemeral.is_some()) {
            let mut lines = String::new();
            if let Some(w) = &work_dir {
                lines.push_str(&format!("rmwork\t{w}\n"));
            }
            if let Some(e) = &ephemeral {
                lines.push_str(&format!("rmeph\t{e}\n"));
            }
            intent.note(&lines);
        }
        // The mounts on the merge go to the rescue directory before the merge goes; the
        // record (naming every hierarchy, so a kill from here on is completed) before that.
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

/// The ephemeral dir for hierarchy `index`: the one to reuse, or a new one below
/// [`state::EPHEMERAL_DIR`] (journaled). `None` when `/run` cannot hold it (then the
/// detached workspace is used and the upper layer cannot outlive the overlay).
fn ephemeral_dir(
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

/// Remove a directory tree below the root without following symlinks or crossing mounts.
pub fn remove_tree(root: &Root, rel: &str) -> io::Result<()> {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (parent, base) = match rel.rsplit_once('/') {
        Some((p, b)) => (p, b),
        None => ("", rel),
    };
    let pfd = root.open_in(parent, OFlags::PATH | OFlags::DIRECTORY)?;
    remove_dir_tree_at(pfd.as_fd(), base)
}

/// Remove the directory `name` in `parent` with everything in it, without following
/// symlinks or crossing mounts; a missing one is fine.
fn remove_dir_tree_at(parent: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let dfd = match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let dev = rustix::fs::fstat(&dfd)?.st_dev;
    clear_dir(dfd.as_fd(), dev, 0)?;
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

fn clear_dir(dfd: BorrowedFd<'_>, dev: u64, depth: usize) -> io::Result<()> {
    if depth > 256 {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let mut names = Vec::new();
    {
        let fd = crate::root::reopen_dir(dfd)?;
        for e in rustix::fs::Dir::read_from(&fd)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(e.file_name().to_owned());
            }
        }
    }
    for n in names {
        let st = rustix::fs::statat(dfd, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
            if st.st_dev != dev {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            let sub = rustix::fs::openat(
                dfd,
                n.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            clear_dir(sub.as_fd(), dev, depth + 1)?;
            rustix::fs::unlinkat(dfd, n.as_c_str(), AtFlags::REMOVEDIR)?;
        } else {
            rustix::fs::unlinkat(dfd, n.as_c_str(), AtFlags::empty())?;
        }
    }
    Ok(())
}

fn rmdir(root: &Root, rel: &str) -> io::Result<()> {
    let (parent, base) = match rel.rsplit_once('/') {
        Some((p, b)) => (p, b),
        None => ("", rel),
    };
    let pfd = root.open_in(parent, OFlags::PATH | OFlags::DIRECTORY)?;
    Ok(rustix::fs::unlinkat(&pfd, base, AtFlags::REMOVEDIR)?)
}

/// Read a small file fully (helper for callers reading images' files).
pub fn read_to_string(fd: OwnedFd) -> io::Result<String> {
    // Straight into a buffer with room for a small file: `File::read_to_string` would first
    // ask for the size (statx) and position (lseek).
    let mut s = String::with_capacity(1024);
    std::fs::File::from(fd)
        .take(u64::MAX)
        .read_to_string(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::Hierarchy;
    use crate::plan::{DirInfo, ExtLayer, ExtensionInput, HierarchyInput, MutableDir, PlanInputs};

    fn one_hierarchy_plan() -> Plan {
        let host = DirInfo {
            path: "/R/usr".into(),
            rel: "usr".into(),
            mode: 0o755,
            dev: 1,
            ino: 10,
            empty: false,
            read_only: false,
            parent_dev: Some(1),
        };
        crate::plan::plan(&PlanInputs {
            class: ImageClass::Sysext,
            mode: crate::mutable::MutableMode::Disabled,
            noexec: None,
            compat: crate::level::Compat::V257,
            extensions: vec![ExtensionInput {
                name: "foo".into(),
                layers: vec![ExtLayer::Content("E/foo/usr".into())],
            }],
            hierarchies: vec![HierarchyInput {
                hierarchy: Hierarchy::new("/usr").unwrap(),
                path: "/R/usr".into(),
                host: Some(host),
                mutable_dir_path: "/R/var/lib/extensions.mutable/usr".into(),
                mutable_dir: MutableDir::Missing,
                mutable_dir_target: None,
            }],
        })
        .unwrap()
    }

    #[test]
    fn a_short_layer_stack_is_an_error() {
        let p = one_hierarchy_plan();
        let h = &p.hierarchies[0];
        let n = h.lower.len();
        assert_eq!(n, 3, "meta, foo, host");
        assert!(verify_layers(&[(LayerCount::Counted(n), h)]).is_ok());
        // 0: the kernel did not say; nothing to compare.
        assert!(verify_layers(&[(LayerCount::Counted(0), h)]).is_ok());
        match verify_layers(&[(LayerCount::Counted(n - 1), h)]) {
            Err(Error::LayerCountMismatch {
                hierarchy,
                expected,
                found,
            }) => assert_eq!((hierarchy.as_str(), expected, found), ("/usr", n, n - 1)),
            other => panic!("{other:?}"),
        }
    }
}
