//! The I/O that planning needs: what the hierarchies, routing dirs and image trees look
//! like. Produces [`PlanInputs`] (plain data) plus the handles the executor mounts with.

use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::hierarchy::Hierarchy;
use crate::kernel::{Kernel, KernelFeatures};
use crate::mountinfo;
use crate::mutable::MutableMode;
use crate::plan::{DirInfo, ExtLayer, ExtensionInput, HierarchyInput, MutableDir, PlanInputs};
use crate::root::{dir_is_empty, open_beneath, open_beneath_with, Root};
use crate::state;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::mount::OpenTreeFlags;
use std::io;

/// An image tree ready to be layered: a directory (to be bind-cloned) or a mounted image.
#[derive(Debug)]
pub struct ImageTree {
    /// Image name.
    pub name: String,
    /// Display path of the image.
    pub path: String,
    /// The tree: an `O_PATH` fd of a directory, or a detached mount of an image file.
    pub fd: OwnedFd,
    /// Whether `fd` is already a private read-only mount (image files).
    pub is_mount: bool,
    /// Identity of the image file or directory, as discovered.
    pub identity: crate::discover::FileIdentity,
    /// Where its verity data is checked (image files with verity; `None` otherwise).
    pub verity: Option<crate::image::mount::VerityCheck>,
}

/// The host side of a hierarchy.
#[derive(Debug)]
pub struct HostHandle {
    /// The host directory underneath any merge of ours, opened for reading (its entries
    /// are read once, when probing).
    pub fd: OwnedFd,
    /// A private clone of the mount holding it, kept open while in use.
    pub keep: Option<OwnedFd>,
    /// Its [`state::dir_stat`], when the caller looked already.
    pub stat: Option<rustix::fs::Statx>,
    /// How many overlays of ours sit on it (0 when none; more than 1 after an interrupted
    /// refresh: stale ones are hidden below the top).
    pub stacked: usize,
}

/// A merge of ours currently on a hierarchy.
#[derive(Debug)]
pub struct Current {
    /// Top of the hierarchy (our overlay root).
    pub fd: OwnedFd,
    /// Its meta data.
    pub meta: crate::meta::MetaDir,
    /// libsysext's note, if we made the merge.
    pub note: Option<state::Note>,
}

/// Everything found for one hierarchy.
#[derive(Debug)]
pub struct HierarchyProbe {
    /// The host directory, if it exists; `Err(())` if it is hidden under a foreign mount
    /// below our merge (only then is a gap-free refresh impossible).
    pub host: std::result::Result<Option<HostHandle>, ()>,
    /// The resolved routing dir.
    pub mutable_dir: Option<OwnedFd>,
    /// Our merge on it, if any.
    pub current: Option<Current>,
}

/// Result of probing.
#[derive(Debug)]
pub struct Probed {
    /// Pure inputs for [`crate::plan::plan`].
    pub inputs: PlanInputs,
    /// Per configured hierarchy.
    pub hierarchies: Vec<HierarchyProbe>,
    /// Per image tree, per hierarchy: the hierarchy is a single path component naming a
    /// directory of the tree itself, not reached through a symlink (such a layer can be
    /// cloned straight from the tree).
    pub plain: Vec<Vec<bool>>,
}

fn dir_info(
    fd: BorrowedFd<'_>,
    readable: bool,
    stat: Option<&rustix::fs::Statx>,
    path: String,
    rel: String,
    parent: Option<BorrowedFd<'_>>,
    upper_checks: bool,
) -> io::Result<DirInfo> {
    let (mode, dev, ino) = match stat {
        Some(st) => (
            st.stx_mode as u32,
            rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            st.stx_ino,
        ),
        None => {
            let st = rustix::fs::fstat(fd)?;
            (st.st_mode, st.st_dev, st.st_ino)
        }
    };
    // An fd opened `O_PATH` (no read permission) is opened again by `dir_is_empty`.
    let empty = match readable.then(|| crate::root::readable_dir_is_empty(fd)) {
        Some(Err(e)) if e.raw_os_error() == Some(libc::EBADF) => dir_is_empty(fd)?,
        Some(r) => r?,
        None => dir_is_empty(fd)?,
    };
    // Whether the mount is read-only matters only where an upper dir may go under the root.
    let read_only = upper_checks
        && rustix::fs::fstatvfs(fd)?
            .f_flag
            .contains(rustix::fs::StatVfsMountFlags::RDONLY);
    let parent_dev = match parent {
        Some(p) => Some(rustix::fs::fstat(p)?.st_dev),
        None => None,
    };
    Ok(DirInfo {
        path,
        rel,
        mode: mode & 0o7777,
        dev,
        ino,
        empty,
        read_only,
        parent_dev,
    })
}

fn parent_fd(root: &Root, rel: &str) -> io::Result<Option<OwnedFd>> {
    match rel.rfind('/') {
        Some(i) => Ok(Some(
            root.open_in(&rel[..i], OFlags::PATH | OFlags::DIRECTORY)?,
        )),
        None if rel.is_empty() => Ok(None),
        None => Ok(Some(rustix::io::dup(root.fd())?)),
    }
}

/// Walk down from the mount `top` (at kernel path `kpath`) over our overlays stacked there,
/// one `statmount` each: the id (as mountinfo shows it) of the mount below them, or `Err`
/// when a foreign mount sits at the same place. `None` when the kernel cannot tell.
fn holder_by_statmount(
    top: BorrowedFd<'_>,
    kpath: &str,
    class: ImageClass,
    kernel: Kernel,
) -> Option<std::result::Result<(u64, usize), ()>> {
    use crate::sys::statmount::brief;
    if !kernel.has(KernelFeatures::STATMOUNT) {
        return None;
    }
    let mut cur = brief(crate::sys::statmount::unique_mount_id(top)?).ok()??;
    if cur.mount_point != kpath {
        return Some(Err(()));
    }
    // Bounded: at most as many steps as there can be mounts stacked in one place.
    for depth in 1..100_000 {
        let parent = brief(cur.parent).ok()??;
        if parent.id == cur.id || parent.mount_point != kpath {
            return Some(Ok((cur.parent_old, depth)));
        }
        if parent.fstype != "overlay" || parent.source != class.info().short {
            // A foreign mount sits at the same place below our merge.
            return Some(Err(()));
        }
        cur = parent;
    }
    Some(Err(()))
}

/// The same from mountinfo.
fn holder_by_mountinfo(
    top: BorrowedFd<'_>,
    kpath: &str,
    class: ImageClass,
) -> std::result::Result<(u64, usize), ()> {
    let mounts = mountinfo::read_self().map_err(|_| ())?;
    let stack = mountinfo::stack_at(&mounts, kpath);
    let top_id = state::mount_id(top).ok_or(())?;
    // Walk down over our overlays.
    let mut lowest = None;
    let mut depth = 0;
    for m in &stack {
        if m.id == top_id || (m.fstype == "overlay" && m.source == class.info().short) {
            lowest = Some(*m);
            depth += 1;
        } else {
            break;
        }
    }
    let lowest = lowest.ok_or(())?;
    if stack.iter().any(|m| m.id == lowest.parent) {
        // A foreign mount sits at the same place below our merge.
        return Err(());
    }
    Ok((lowest.parent, depth))
}

/// Find the host directory underneath our merge on `top` (kernel path `kpath`).
fn underlying(
    top: BorrowedFd<'_>,
    kpath: &str,
    class: ImageClass,
    kernel: Kernel,
) -> std::result::Result<HostHandle, ()> {
    // The mount that holds the hierarchy's directory, below our overlays on it.
    let (holder, stacked) = match holder_by_statmount(top, kpath, class, kernel) {
        Some(r) => r?,
        None => holder_by_mountinfo(top, kpath, class)?,
    };
    let (dir, base) = kpath.rsplit_once('/').ok_or(())?;
    let dir = if dir.is_empty() { "/" } else { dir };
    let dfd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| ())?;
    if state::mount_id(dfd.as_fd()) != Some(holder) {
        return Err(());
    }
    let clone = rustix::mount::open_tree(
        &dfd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|_| ())?;
    let open = |how: OFlags| {
        rustix::fs::openat(
            &clone,
            base,
            how | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let fd = match open(OFlags::RDONLY) {
        Err(rustix::io::Errno::ACCESS) => open(OFlags::PATH),
        r => r,
    }
    .map_err(|_| ())?;
    Ok(HostHandle {
        fd,
        keep: Some(clone),
        stat: None,
        stacked,
    })
}

/// Look at one hierarchy: our merge on it, the host directory, and the routing dir when
/// `routing` (the mode uses it; otherwise it is reported as missing, unlooked at).
///
/// `inspect` is false for a hierarchy no extension has content for: then only our merge on
/// it is looked for (to be taken down), not the host directory or the routing dir.
/// `upper_checks`: the mode may put an upper dir under the root (`auto`, `yes`), so the
/// devices of the parents of the host and routing dirs matter. `resolved`: the hierarchy as
/// the caller resolved it already (`Some(None)`: it does not exist), having found no merge of
/// ours on it; else it is resolved and looked at here.
pub fn probe_hierarchy(
    root: &Root,
    class: ImageClass,
    h: &Hierarchy,
    routing: bool,
    inspect: bool,
    upper_checks: bool,
    resolved: Option<Option<crate::root::Resolved>>,
    kernel: Kernel,
) -> Result<(HierarchyInput, HierarchyProbe)> {
    let routing = routing && inspect;
    let rel = h.relative();
    let checked = resolved.is_some();
    let resolved = match resolved {
        Some(r) => r,
        None => root
            .resolve_dir(rel)
            .map_err(|e| crate::root::resolve_err(root, rel, e))?,
    };
    let seen = match resolved {
        None => HostSide {
            path: root.display(rel),
            host: Ok(None),
            current: None,
            rel: rel.to_string(),
        },
        Some(r) => look_at_hierarchy(root, class, r, checked, kernel)?,
    };
    let host_info = match &seen.host {
        Ok(Some(hh)) if inspect => Some(inspect_dir(
            root,
            hh.fd.as_fd(),
            true,
            hh.stat.as_ref(),
            &seen.path,
            &seen.rel,
            upper_checks,
        )?),
        _ => None,
    };
    let routing_dir = if routing {
        probe_routing_dir(root, h, upper_checks)?
    } else {
        RoutingProbe {
            dir: MutableDir::Missing,
            fd: None,
            target: None,
        }
    };
    Ok((
        HierarchyInput {
            hierarchy: h.clone(),
            path: seen.path,
            host: host_info,
            mutable_dir_path: root.display(&h.mutable_dir()),
            mutable_dir: routing_dir.dir,
            mutable_dir_target: routing_dir.target,
        },
        HierarchyProbe {
            host: seen.host.map_err(|_| ()),
            mutable_dir: routing_dir.fd,
            current: seen.current,
        },
    ))
}

/// What is at an existing hierarchy: its path, the host directory (below our overlays when
/// the hierarchy is merged), our merge on it, and the host directory's root-relative path.
struct HostSide {
    path: String,
    host: std::result::Result<Option<HostHandle>, ()>,
    current: Option<Current>,
    rel: String,
}

/// Look at the resolved hierarchy `r`: is it merged by us (skipped when the caller `checked`
/// already), and where is the host directory then, below the overlays.
fn look_at_hierarchy(
    root: &Root,
    class: ImageClass,
    r: crate::root::Resolved,
    checked: bool,
    kernel: Kernel,
) -> Result<HostSide> {
    let dev = if checked {
        None
    } else {
        state::merged_dev_at(r.fd.as_fd(), &r.path, class)?
    };
    let Some(dev) = dev else {
        return Ok(HostSide {
            path: r.path,
            host: Ok(Some(HostHandle {
                fd: r.fd,
                keep: None,
                stat: r.stat,
                stacked: 0,
            })),
            current: None,
            rel: r.rel,
        });
    };
    // `resolve` found the path from /proc/self/fd already: the kernel path is the root's
    // joined with it.
    let kpath = root.host_path(&r.rel).to_string_lossy().into_owned();
    let meta = state::read_meta(r.fd.as_fd(), &r.path, class, dev)?;
    let host = underlying(r.fd.as_fd(), &kpath, class, kernel).map(Some);
    let note = state::read_note(r.fd.as_fd(), class);
    Ok(HostSide {
        path: r.path,
        host,
        current: Some(Current {
            fd: r.fd,
            meta,
            note,
        }),
        rel: r.rel,
    })
}

/// [`dir_info`] of the directory `fd` at `path` (`rel` below the root), with its parent
/// opened when `upper_checks` need the parent's device.
fn inspect_dir(
    root: &Root,
    fd: BorrowedFd<'_>,
    readable: bool,
    stat: Option<&rustix::fs::Statx>,
    path: &str,
    rel: &str,
    upper_checks: bool,
) -> Result<DirInfo> {
    let pfd = if upper_checks {
        parent_fd(root, rel).map_err(|e| Error::io("open parent of", path, e))?
    } else {
        None
    };
    dir_info(
        fd,
        readable,
        stat,
        path.to_string(),
        rel.to_string(),
        pfd.as_ref().map(|f| f.as_fd()),
        upper_checks,
    )
    .map_err(|e| Error::io("inspect", path, e))
}

/// What the routing dir of a hierarchy is, an fd for it when it is a directory, and the
/// target a dangling symlink there points at.
struct RoutingProbe {
    dir: MutableDir,
    fd: Option<OwnedFd>,
    target: Option<String>,
}

/// Look up the routing dir of `h` (`/var/lib/extensions.mutable/<hierarchy>`) inside the root.
fn probe_routing_dir(root: &Root, h: &Hierarchy, upper_checks: bool) -> Result<RoutingProbe> {
    let drel = h.mutable_dir();
    let plain = |dir| RoutingProbe {
        dir,
        fd: None,
        target: None,
    };
    match root.resolve(&drel, OFlags::PATH) {
        Ok(Some(r)) => {
            let st = rustix::fs::fstat(&r.fd).map_err(|e| Error::io("stat", &r.path, e))?;
            let mode = st.st_mode & 0o7777;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let info = inspect_dir(
                    root,
                    r.fd.as_fd(),
                    false,
                    None,
                    &r.path,
                    &r.rel,
                    upper_checks,
                )?;
                Ok(RoutingProbe {
                    dir: MutableDir::Dir(info),
                    fd: Some(r.fd),
                    target: None,
                })
            } else if r.rel != drel {
                Ok(plain(MutableDir::LinkToNonDir {
                    mode,
                    rel: r.rel,
                    path: r.path,
                }))
            } else {
                Ok(plain(MutableDir::NotDir { mode }))
            }
        }
        Ok(None) => Ok(missing_or_dangling(root, &drel)),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(plain(MutableDir::Dangling)),
        Err(e) => Err(Error::io("resolve", root.display(&drel), e)),
    }
}

/// A routing dir that does not resolve: nothing there, or a dangling symlink (itself, or
/// one of its parents); for a dangling link itself, the target it points at.
fn missing_or_dangling(root: &Root, drel: &str) -> RoutingProbe {
    let exists = root.open_in(drel, OFlags::PATH | OFlags::NOFOLLOW).is_ok();
    let parent_dangles = drel.rmatch_indices('/').map(|(i, _)| &drel[..i]).any(|p| {
        root.open_in(p, OFlags::PATH | OFlags::NOFOLLOW).is_ok()
            && root.open_in(p, OFlags::PATH).is_err()
    });
    let dangling = exists || parent_dangles;
    RoutingProbe {
        dir: if dangling {
            MutableDir::Dangling
        } else {
            MutableDir::Missing
        },
        fd: None,
        target: if exists && !parent_dangles {
            dangling_target(root, drel)
        } else {
            None
        },
    }
}

/// The root-relative path a dangling symlink `rel` points at, resolved inside the root: an
/// absolute target is taken below the root, a relative one from the link's directory, `..`
/// stops at the root. `None` if `rel` is no symlink or its target is no plain path.
fn dangling_target(root: &Root, rel: &str) -> Option<String> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", rel),
    };
    let dfd = if dir.is_empty() {
        rustix::io::dup(root.fd()).ok()?
    } else {
        root.open_in(dir, OFlags::PATH | OFlags::DIRECTORY).ok()?
    };
    let target = rustix::fs::readlinkat(&dfd, name, Vec::new()).ok()?;
    let target = target.to_str().ok()?.to_string();
    let mut comps: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|c| !c.is_empty()).collect()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                comps.pop();
            }
            c => comps.push(c),
        }
    }
    if comps.is_empty() {
        return None;
    }
    Some(comps.join("/"))
}

/// What an image tree holds for a hierarchy, and whether the hierarchy is a plain directory
/// entry of the tree (see [`Probed::plain`]).
pub fn ext_layer(tree: BorrowedFd<'_>, image_path: &str, h: &Hierarchy) -> (ExtLayer, bool) {
    let rel = h.relative();
    // One open tells absent / not a directory / directory; the same fd is read for entries.
    // For a one-component hierarchy, first without following symlinks: that answer is the
    // same unless a symlink is met (ELOOP), which is then followed inside the tree.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY;
    let mut plain = !rel.contains('/');
    let mut opened = if plain {
        open_beneath_with(tree, rel, flags, ResolveFlags::NO_SYMLINKS)
    } else {
        open_beneath(tree, rel, flags)
    };
    if plain && opened.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::ELOOP) {
        plain = false;
        opened = open_beneath(tree, rel, flags);
    }
    let layer = match opened {
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => ExtLayer::NotDirectory,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => ExtLayer::Absent,
        Err(_) => match open_beneath(tree, rel, OFlags::PATH) {
            // Exists but cannot be read as a directory.
            Ok(_) => ExtLayer::NotDirectory,
            Err(_) => ExtLayer::Absent,
        },
        Ok(fd) => match crate::root::owned_dir_is_empty(fd) {
            Ok(true) => ExtLayer::Empty,
            Ok(false) => ExtLayer::Content(format!("{image_path}/{rel}")),
            Err(_) => ExtLayer::NotDirectory,
        },
    };
    (layer, plain)
}

/// Probe everything for a merge of `trees` in `mode` at level `compat`.
#[allow(clippy::too_many_arguments)]
pub fn probe(
    root: &Root,
    class: ImageClass,
    hierarchies: &[Hierarchy],
    mode: MutableMode,
    compat: crate::level::Compat,
    noexec: Option<bool>,
    trees: &[ImageTree],
    resolved: Vec<Option<crate::root::Resolved>>,
    kernel: Kernel,
) -> Result<Probed> {
    // Hierarchies resolved already (by the check that none is merged), else resolved here.
    let mut resolved = resolved.into_iter();
    let mut plain = Vec::with_capacity(trees.len());
    let extensions: Vec<ExtensionInput> = trees
        .iter()
        .map(|t| {
            let (layers, p): (Vec<ExtLayer>, Vec<bool>) = hierarchies
                .iter()
                .map(|h| ext_layer(t.fd.as_fd(), &t.path, h))
                .unzip();
            plain.push(p);
            ExtensionInput {
                name: t.name.clone(),
                layers,
            }
        })
        .collect();
    let upper_checks = matches!(mode, MutableMode::Auto | MutableMode::Enabled);
    // Whether planning looks at every hierarchy, extension content or not.
    let every = compat.merges_every_hierarchy_when_mutable() && mode != MutableMode::Disabled;
    let mut his = Vec::new();
    let mut hps = Vec::new();
    for (i, h) in hierarchies.iter().enumerate() {
        // Planning looks at a hierarchy only when some extension has (or claims to have)
        // content for it.
        let inspect = every
            || extensions.iter().any(|e| {
                matches!(
                    e.layers.get(i),
                    Some(ExtLayer::Content(_) | ExtLayer::NotDirectory)
                )
            });
        let (hi, hp) = probe_hierarchy(
            root,
            class,
            h,
            mode.uses_mutable_dir(),
            inspect,
            upper_checks,
            resolved.next(),
            kernel,
        )?;
        his.push(hi);
        hps.push(hp);
    }
    Ok(Probed {
        inputs: PlanInputs {
            class,
            mode,
            noexec,
            compat,
            extensions,
            hierarchies: his,
        },
        hierarchies: hps,
        plain,
    })
}

/// Statx helper used by discovery and status.
pub fn mtime_usec(fd: BorrowedFd<'_>) -> Option<u64> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MTIME).ok()?;
    Some(st.stx_mtime.tv_sec.max(0) as u64 * 1_000_000 + u64::from(st.stx_mtime.tv_nsec) / 1000)
}
