//! Building overlays on kernels before 6.15, which take neither detached mounts as
//! overlayfs layers nor mounts attached inside a detached tree.
//!
//! The layers are attached in a staging place that no one else can see: a thread of ours
//! unshares its mount namespace (and only its own: the fd table stays the process's, and no
//! process is forked), makes the copied root mount private so nothing propagates back,
//! puts a fresh tmpfs on top of `/` (invisible to path lookups, which start at the old
//! root) and works inside it through its own working directory. Each layer is bound there
//! under a short name (`0`, `1`, …), relative to that working directory, so that even the
//! single option string of `mount(2)` (one page) holds 500 layers. The overlay is mounted
//! there too, the read-only bind of the meta dir and the carried sub-mounts go on it, and a
//! detached recursive copy of the result is what the caller attaches on the hierarchy.
//! When the build ends (or fails, or the process dies), the namespace goes away with the
//! thread and with it every staged mount: nothing is left to clean up.

use crate::error::{Error, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags, CWD};
use rustix::mount::{
    MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
};
use std::collections::HashMap;
use std::io;
use std::sync::mpsc;

/// Where a directory handed to the overlay lives.
#[derive(Debug)]
pub enum Src {
    /// A directory on a mount attached in the caller's namespace, found again in the staging
    /// namespace by its path (and checked to be the same directory).
    Attached {
        /// Its path, as the kernel names it.
        path: String,
        /// Its device and inode.
        id: (u64, u64),
    },
    /// A directory on a detached mount of ours.
    Below {
        /// The mount's id.
        id: u64,
        /// The detached mount (the first time a build names it; then it is attached in the
        /// staging namespace and found by its id).
        mount: Option<OwnedFd>,
        /// The directory (`None`: the mount's root). Once its mount is attached in the
        /// staging namespace, it can be bound from there.
        dir: Option<OwnedFd>,
    },
}

/// One overlay to build.
#[derive(Debug)]
pub struct Spec {
    /// Index of the hierarchy (names its staging directory).
    pub index: usize,
    /// The `source` the overlay gets.
    pub source: String,
    /// Lower layers, top to bottom.
    pub lower: Vec<Src>,
    /// Upper and work dir.
    pub upper: Option<(Src, Src)>,
    /// Further options (`redirect_dir=on`, …).
    pub options: Vec<crate::overlayopts::FsOption>,
    /// Mount attributes of the overlay.
    pub attrs: MountAttrFlags,
    /// Whether `lowerdir+` can be used; else one `lowerdir=` option of `mount(2)`.
    pub append: bool,
    /// Display path of the hierarchy, for messages.
    pub target: String,
}

/// What goes on a staged overlay before it is copied out.
#[derive(Debug)]
pub struct Finish {
    /// Index of the hierarchy.
    pub index: usize,
    /// The meta dir to bind read-only onto itself, if any.
    pub meta_bind: Option<String>,
    /// Detached copies of sub-mounts, with their paths below the hierarchy.
    pub submounts: Vec<(String, OwnedFd)>,
    /// Display path of the hierarchy, for messages.
    pub target: String,
}

enum Job {
    Create(Spec),
    Finish(Finish),
    Compose(OwnedFd, Vec<(String, OwnedFd)>),
}

enum Reply {
    Ready(Result<()>),
    Created(Result<rustix::fs::Statx>),
    Finished(Result<(OwnedFd, Vec<bool>)>),
    Composed(Result<OwnedFd>),
}

/// The handle of a running staging thread.
#[derive(Debug)]
pub struct Stager {
    jobs: mpsc::Sender<Job>,
    replies: mpsc::Receiver<Reply>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Create(_) => "Create",
            Job::Finish(_) => "Finish",
            Job::Compose(..) => "Compose",
        })
    }
}

impl Stager {
    /// Run `f` with a staging thread that lives as long as `f` runs.
    pub fn with<R>(f: impl FnOnce(&Stager) -> Result<R>) -> Result<R> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (reply_tx, replies) = mpsc::channel::<Reply>();
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("sysext-stage".into())
                .spawn_scoped(s, move || worker(job_rx, reply_tx))
                .map_err(|e| Error::io("start", "the staging thread", e))?;
            let stager = Stager { jobs, replies };
            let r = match stager.replies.recv() {
                Ok(Reply::Ready(Ok(()))) => f(&stager),
                Ok(Reply::Ready(Err(e))) => Err(e),
                _ => Err(lost()),
            };
            drop(stager);
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
            r
        })
    }

    /// Attach the layers of `spec` and mount its overlay (in the staging namespace); the
    /// answer is the overlay's `statx`.
    pub fn create(&self, spec: Spec) -> Result<rustix::fs::Statx> {
        self.jobs.send(Job::Create(spec)).map_err(|_| lost())?;
        match self.replies.recv() {
            Ok(Reply::Created(r)) => r,
            _ => Err(lost()),
        }
    }

    /// Put the meta bind and the sub-mounts on the overlay of `finish.index` and return a
    /// detached recursive copy of it, with which sub-mounts could be attached.
    pub fn finish(&self, finish: Finish) -> Result<(OwnedFd, Vec<bool>)> {
        self.jobs.send(Job::Finish(finish)).map_err(|_| lost())?;
        match self.replies.recv() {
            Ok(Reply::Finished(r)) => r,
            _ => Err(lost()),
        }
    }
}

/// A detached tree made of the detached mount `outer` with each of `inner` attached at its
/// path below it (kernels before 6.15 cannot attach inside a detached tree directly).
pub fn compose(outer: OwnedFd, inner: Vec<(String, OwnedFd)>) -> io::Result<OwnedFd> {
    Stager::with(|st| {
        st.jobs
            .send(Job::Compose(outer, inner))
            .map_err(|_| lost())?;
        match st.replies.recv() {
            Ok(Reply::Composed(r)) => r,
            _ => Err(lost()),
        }
    })
    .map_err(|e| io::Error::other(e.to_string()))
}

fn lost() -> Error {
    Error::io(
        "talk to",
        "the staging thread",
        io::Error::other("it ended early"),
    )
}

/// The path and identity of a directory attached in our namespace, to find it again in
/// the staging namespace.
pub fn attached(fd: BorrowedFd<'_>) -> Result<Src> {
    let link = crate::root::proc_fd_path(fd);
    let path = std::fs::read_link(&link)
        .map_err(|e| Error::io("read", &link, e))?
        .to_string_lossy()
        .into_owned();
    let st = rustix::fs::fstat(fd).map_err(|e| Error::io("stat", &path, e))?;
    Ok(Src::Attached {
        path,
        id: (st.st_dev, st.st_ino),
    })
}

fn worker(jobs: mpsc::Receiver<Job>, replies: mpsc::Sender<Reply>) {
    let mut st = match State::new() {
        Ok(s) => {
            let _ = replies.send(Reply::Ready(Ok(())));
            s
        }
        Err(e) => {
            let _ = replies.send(Reply::Ready(Err(e)));
            return;
        }
    };
    for job in jobs {
        let reply = match job {
            Job::Create(spec) => Reply::Created(st.create(spec)),
            Job::Finish(f) => Reply::Finished(st.finish(f)),
            Job::Compose(outer, inner) => Reply::Composed(st.compose(outer, inner)),
        };
        if replies.send(reply).is_err() {
            break;
        }
    }
    // Take the staged mounts down now, while the thread still runs: the last references to
    // layers of a failed build (and so loop devices) go before the caller goes on, rather
    // than some time after the thread's namespace is gone.
    let _ = rustix::mount::unmount(
        crate::root::proc_fd_path(st.stage.as_fd()).as_str(),
        rustix::mount::UnmountFlags::DETACH,
    );
}

/// The staging namespace's state: its tmpfs, and the detached mounts attached in it so far
/// (by mount id: the same image serves several hierarchies).
struct State {
    stage: OwnedFd,
    mounts: HashMap<u64, String>,
}

fn stage_err(what: &str) -> impl Fn(rustix::io::Errno) -> Error + '_ {
    move |e| Error::mount("stage", what, e)
}

impl State {
    fn new() -> Result<State> {
        crate::sys::ns::unshare_mount_ns_for_thread()
            .map_err(|e| Error::mount("unshare the mount namespace for", "staging", e))?;
        // Nothing attached from here on may propagate to the caller's namespace.
        rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE).map_err(|e| {
            Error::mount(
                "make private (staging needs the process root to be a mount point)",
                "/",
                e,
            )
        })?;
        let stage = crate::fscontext::detached_tmpfs(
            "0700",
            MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
        )
        .map_err(stage_err("tmpfs"))?;
        rustix::mount::move_mount(
            &stage,
            "",
            CWD,
            "/",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(stage_err("tmpfs"))?;
        mkdir(stage.as_fd(), "m")?;
        Ok(State {
            stage,
            mounts: HashMap::new(),
        })
    }

    /// The staging directory of hierarchy `index`, made on first use.
    fn hier_dir(&self, index: usize) -> Result<OwnedFd> {
        let name = index.to_string();
        mkdir(self.stage.as_fd(), &name)?;
        rustix::fs::openat(
            &self.stage,
            name.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", "staging directory", e))
    }

    /// The path (relative to the staging tmpfs) of a detached mount attached here.
    fn attach_detached(&mut self, id: u64, mount: Option<&OwnedFd>) -> Result<String> {
        if let Some(p) = self.mounts.get(&id) {
            return Ok(p.clone());
        }
        let mount = mount.ok_or_else(|| {
            Error::io(
                "stage",
                "a layer",
                io::Error::other("its mount was not passed"),
            )
        })?;
        let p = format!("m/{}", self.mounts.len());
        mkdir(self.stage.as_fd(), &p)?;
        rustix::mount::move_mount(
            mount,
            "",
            &self.stage,
            p.as_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(stage_err("a layer"))?;
        self.mounts.insert(id, p.clone());
        Ok(p)
    }

    /// An fd, valid in the staging namespace, of the directory `src` names.
    fn open_src(&mut self, src: &Src) -> Result<OwnedFd> {
        match src {
            Src::Attached { path, id } => {
                let fd = rustix::fs::open(
                    path.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open", path, e))?;
                let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat", path, e))?;
                if (st.st_dev, st.st_ino) != *id {
                    return Err(Error::io(
                        "open",
                        path,
                        io::Error::other("it was replaced while merging"),
                    ));
                }
                Ok(fd)
            }
            Src::Below { id, mount, dir } => {
                let at = self.attach_detached(*id, mount.as_ref())?;
                match dir {
                    Some(d) => d
                        .try_clone()
                        .map_err(|e| Error::io("dup", "a staged layer", e)),
                    None => rustix::fs::openat(
                        &self.stage,
                        at.as_str(),
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| Error::io("open", format!("<staging>/{at}"), e)),
                }
            }
        }
    }

    fn create(&mut self, spec: Spec) -> Result<rustix::fs::Statx> {
        let dir = self.hier_dir(spec.index)?;
        let target = spec.target.as_str();
        // Each lower layer gets a bind of its own, named by its position.
        let mut names = Vec::with_capacity(spec.lower.len());
        for (i, src) in spec.lower.iter().enumerate() {
            let fd = self.open_src(src)?;
            let bind = rustix::mount::open_tree(
                &fd,
                "",
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_EMPTY_PATH,
            )
            .map_err(stage_err(target))?;
            let name = i.to_string();
            mkdir(dir.as_fd(), &name)?;
            rustix::mount::move_mount(
                &bind,
                "",
                &dir,
                name.as_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(stage_err(target))?;
            names.push(name);
        }
        // Upper and work dir stay on their common mount; named by fd links.
        let upper = match &spec.upper {
            Some((u, w)) => Some((self.open_src(u)?, self.open_src(w)?)),
            None => None,
        };
        let upper_paths = upper.as_ref().map(|(u, w)| {
            (
                crate::root::proc_fd_path(u.as_fd()),
                crate::root::proc_fd_path(w.as_fd()),
            )
        });
        mkdir(dir.as_fd(), "o")?;
        rustix::process::fchdir(&dir).map_err(|e| Error::io("enter", "staging directory", e))?;
        if spec.append {
            create_with_fsconfig(&spec, &names, upper_paths.as_ref())?;
        } else {
            create_with_mount(&spec, &names, upper_paths.as_ref())?;
        }
        rustix::fs::statx(
            &dir,
            "o",
            AtFlags::empty(),
            StatxFlags::BASIC_STATS
                | StatxFlags::from_bits_retain(crate::sys::statmount::STATX_MNT_ID_UNIQUE),
        )
        .map_err(|e| Error::io("stat", target, e))
    }

    fn compose(&mut self, outer: OwnedFd, inner: Vec<(String, OwnedFd)>) -> Result<OwnedFd> {
        mkdir(self.stage.as_fd(), "c")?;
        let p = format!("c/{}", self.mounts.len() + inner.len());
        mkdir(self.stage.as_fd(), &p)?;
        let attach = |m: &OwnedFd, at: &str| {
            rustix::mount::move_mount(
                m,
                "",
                &self.stage,
                at,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(stage_err("an image"))
        };
        attach(&outer, &p)?;
        for (rel, m) in &inner {
            attach(m, &format!("{p}/{rel}"))?;
        }
        rustix::mount::open_tree(
            &self.stage,
            p.as_str(),
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(stage_err("an image"))
    }

    fn finish(&mut self, f: Finish) -> Result<(OwnedFd, Vec<bool>)> {
        let dir = self.hier_dir(f.index)?;
        let target = f.target.as_str();
        let o = rustix::fs::openat(
            &dir,
            "o",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", target, e))?;
        if let Some(dot) = &f.meta_bind {
            let clone = rustix::mount::open_tree(
                &o,
                dot.as_str(),
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(|e| Error::mount("bind", dot, e))?;
            crate::sys::mountattr::mount_setattr(
                clone.as_fd(),
                false,
                MountAttrFlags::MOUNT_ATTR_RDONLY,
                MountAttrFlags::empty(),
            )
            .map_err(|e| Error::mount("make read-only", dot, e))?;
            rustix::mount::move_mount(
                &clone,
                "",
                &o,
                dot.as_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(|e| Error::mount("attach", dot, e))?;
        }
        // A mount point missing (or shadowed by a file) in the merged view cannot be kept.
        let carried = f
            .submounts
            .iter()
            .map(|(rel, clone)| {
                rustix::mount::move_mount(
                    clone,
                    "",
                    &o,
                    rel.as_str(),
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )
                .is_ok()
            })
            .collect();
        let copy = rustix::mount::open_tree(
            &o,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(|e| Error::mount("copy the staged overlay of", target, e))?;
        Ok((copy, carried))
    }
}

fn mkdir(dir: BorrowedFd<'_>, rel: &str) -> Result<()> {
    match rustix::fs::mkdirat(dir, rel, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::io("create directory", format!("<staging>/{rel}"), e)),
    }
}

/// `fsopen`/`fsconfig` with one `lowerdir+` per layer (6.8+), mounted on `o`.
fn create_with_fsconfig(
    spec: &Spec,
    names: &[String],
    upper: Option<&(String, String)>,
) -> Result<()> {
    let target = spec.target.as_str();
    let fs = crate::fscontext::FsContext::open("overlay")
        .map_err(|e| Error::mount("mount overlay on", target, e))?;
    let fail = |e: rustix::io::Errno| Error::Mount {
        op: "mount overlay on",
        target: target.to_string(),
        source: e.into(),
        kernel_log: fs.kernel_log(),
    };
    fs.set_string("source", spec.source.as_str())
        .map_err(fail)?;
    for n in names {
        fs.set_string("lowerdir+", n.as_str()).map_err(fail)?;
    }
    if let Some((u, w)) = upper {
        fs.set_string("upperdir", u.as_str()).map_err(fail)?;
        fs.set_string("workdir", w.as_str()).map_err(fail)?;
    }
    super::fs_options::set_fs_options(&fs, &spec.options, target)?;
    fs.create().map_err(fail)?;
    let mnt = fs.mount(spec.attrs).map_err(fail)?;
    rustix::mount::move_mount(&mnt, "", CWD, "o", MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| Error::mount("stage the overlay of", target, e))
}

/// The option string of a legacy overlay mount, which the kernel copies into one page: the
/// layers are short names relative to the staging directory, so 500 of them fit.
pub fn legacy_options(
    names: &[String],
    upper: Option<&(String, String)>,
    options: &[crate::overlayopts::FsOption],
) -> String {
    let mut s = String::from("lowerdir=");
    s.push_str(&names.join(":"));
    if let Some((u, w)) = upper {
        s.push_str(",upperdir=");
        s.push_str(u);
        s.push_str(",workdir=");
        s.push_str(w);
    }
    for o in options {
        s.push(',');
        s.push_str(&crate::overlayopts::OverlayOptions::render(o));
    }
    s
}

/// `mount(2)` with all layers in one `lowerdir=` option (before 6.8), on `o`.
fn create_with_mount(
    spec: &Spec,
    names: &[String],
    upper: Option<&(String, String)>,
) -> Result<()> {
    let target = spec.target.as_str();
    let data = legacy_options(names, upper, &spec.options);
    let page = rustix::param::page_size();
    if data.len() >= page {
        return Err(Error::mount(
            "mount overlay on",
            target,
            io::Error::other(format!(
                "{} layers need {} bytes of mount options, more than the {page} this kernel \
                 takes without lowerdir+ (Linux 6.8)",
                names.len(),
                data.len()
            )),
        ));
    }
    let mut flags = MountFlags::empty();
    for (a, m) in [
        (MountAttrFlags::MOUNT_ATTR_RDONLY, MountFlags::RDONLY),
        (MountAttrFlags::MOUNT_ATTR_NODEV, MountFlags::NODEV),
        (MountAttrFlags::MOUNT_ATTR_NOSUID, MountFlags::NOSUID),
        (MountAttrFlags::MOUNT_ATTR_NOEXEC, MountFlags::NOEXEC),
        (MountAttrFlags::MOUNT_ATTR_NOATIME, MountFlags::NOATIME),
        (
            MountAttrFlags::MOUNT_ATTR_STRICTATIME,
            MountFlags::STRICTATIME,
        ),
        (
            MountAttrFlags::MOUNT_ATTR_NODIRATIME,
            MountFlags::NODIRATIME,
        ),
    ] {
        if spec.attrs.contains(a) {
            flags |= m;
        }
    }
    let data = std::ffi::CString::new(data)
        .map_err(|e| Error::io("mount overlay on", target, io::Error::other(e)))?;
    rustix::mount::mount(spec.source.as_str(), "o", "overlay", flags, data.as_c_str()).map_err(
        |e| {
            // mount(2) leaves no log to read: name the refused option if one is.
            super::fs_options::refused_fs_option(&spec.options, target)
                .or_else(|| refused_by_mount(spec, names, upper, flags, e))
                .unwrap_or_else(|| Error::mount("mount overlay on", target, e))
        },
    )
}

/// Before Linux 6.5 overlayfs takes any option into its fs context and refuses a bad one
/// only when the file system is made: find it by mounting without each option in turn (a
/// mount that then succeeds is taken off at once). `None` when no single option is to blame.
fn refused_by_mount(
    spec: &Spec,
    names: &[String],
    upper: Option<&(String, String)>,
    flags: MountFlags,
    e: rustix::io::Errno,
) -> Option<Error> {
    (0..spec.options.len()).find_map(|i| {
        let mut rest = spec.options.clone();
        let refused = rest.remove(i);
        let data = std::ffi::CString::new(legacy_options(names, upper, &rest)).ok()?;
        rustix::mount::mount(spec.source.as_str(), "o", "overlay", flags, data.as_c_str()).ok()?;
        let _ = rustix::mount::unmount("o", rustix::mount::UnmountFlags::DETACH);
        Some(super::fs_options::option_error(
            &refused,
            &spec.target,
            e,
            Vec::new(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_hundred_layers_fit_in_a_page() {
        let names: Vec<String> = (0..500).map(|i| i.to_string()).collect();
        let upper = (
            "/proc/self/fd/1023".to_string(),
            "/proc/self/fd/1022".to_string(),
        );
        let s = legacy_options(
            &names,
            Some(&upper),
            &crate::overlayopts::OverlayOptions::effective(None, true).fs,
        );
        assert!(s.len() < 4096, "{} bytes", s.len());
        assert!(s.starts_with("lowerdir=0:1:2:"));
        assert_eq!(crate::mountinfo::overlay_lower_count(&s), 500);
    }
}
