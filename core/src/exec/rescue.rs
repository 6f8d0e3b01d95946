//! Sub-mounts kept safe while an unmerge takes the merge carrying them down.
//!
//! A mount below a merged hierarchy (a tmpfs on `/usr/share/sub`, say) sits on our overlay:
//! when the overlay goes, so does everything on it. Before that, a copy of each such mount is
//! attached in a rescue directory next to the lock (`/run/libsysext/<class>-<dev>-<ino>.rescue/N`),
//! with a line in its `intent` file naming where it belongs; after the overlay is gone the copy
//! is moved to its place on the host hierarchy. At no instant is the only reference to the
//! mount (and the data of a tmpfs) a file descriptor of ours: a process killed half-way leaves
//! the copy attached, and the next call ([`recover`]) moves it to its place, or drops it when
//! the merge is still there (then the mount is still on it).

use crate::class::ImageClass;
use crate::root::{proc_fd_path, Root};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags, UnmountFlags};
use std::io::{self, Write};
use std::path::PathBuf;

/// A mount put in the rescue directory.
#[derive(Debug)]
pub struct Stashed {
    /// Where it goes, root-relative.
    pub target: String,
    /// Its place in the rescue directory.
    path: PathBuf,
}

fn rescue_dir(root: &Root, class: ImageClass) -> io::Result<PathBuf> {
    let lock = crate::lock::path_for(root, class).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(lock.with_extension("rescue"))
}

/// Attach `copies` (detached copies of the mounts on hierarchy `hier`, each with its path
/// below it) in the rescue directory, each recorded in its intent file first.
pub fn stash(
    root: &Root,
    class: ImageClass,
    hier: &str,
    copies: Vec<(String, OwnedFd)>,
) -> io::Result<Vec<Stashed>> {
    if copies.is_empty() {
        return Ok(Vec::new());
    }
    let dir = rescue_dir(root, class)?;
    std::fs::create_dir_all(&dir)?;
    let mut intent = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("intent"))?;
    let mut out = Vec::new();
    for (sub, copy) in copies {
        let n = next_free(&dir)?;
        let path = dir.join(n.to_string());
        std::fs::create_dir(&path)?;
        // The line first: a copy is never attached without one.
        writeln!(intent, "{n}\t{hier}\t{sub}")?;
        let pfd = rustix::fs::open(
            &path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::mount::move_mount(
            &copy,
            "",
            &pfd,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )?;
        out.push(Stashed {
            target: format!("{hier}/{sub}"),
            path,
        });
    }
    Ok(out)
}

fn next_free(dir: &std::path::Path) -> io::Result<usize> {
    let mut n = 0;
    while dir.join(n.to_string()).exists() {
        n += 1;
    }
    Ok(n)
}

/// Put a stashed mount in its place (root-relative `target`); `false` if that failed. It is
/// copied there rather than moved (the kernel refuses to move a mount whose parent is
/// shared, as `/run` is on most hosts), then the stashed one goes.
fn put(root: &Root, path: &std::path::Path, target: &str) -> bool {
    if !stashed_at(path) {
        // Nothing (any more) at that place: nothing to put back.
        return true;
    }
    let Ok(t) = root.open_in(target, OFlags::PATH | OFlags::DIRECTORY) else {
        return false;
    };
    // Put back already (a kill came after the copy was attached there and before the
    // stashed one went): the same file system's root is mounted at the target.
    if same_mount_root(t.as_fd(), path) {
        drop_mount(path);
        return true;
    }
    let Ok(copy) = rustix::mount::open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    ) else {
        return false;
    };
    // Not a peer of the stashed one (shared once attached below a shared `/run`), whose
    // detach would otherwise take the mounts nested in the copy along.
    let _ = crate::sys::mountattr::make_private(copy.as_fd());
    if rustix::mount::move_mount(
        &copy,
        "",
        &t,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .is_err()
    {
        return false;
    }
    drop_mount(path);
    true
}

/// Whether `t` is the root of a mount of the same file system and directory as the
/// stashed mount at `path`.
fn same_mount_root(t: rustix::fd::BorrowedFd<'_>, path: &std::path::Path) -> bool {
    let Some(ts) = crate::state::dir_stat(t).filter(crate::state::is_mount_root) else {
        return false;
    };
    let Ok(p) = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    crate::state::dir_stat(p.as_fd()).is_some_and(|ps| {
        (ps.stx_dev_major, ps.stx_dev_minor, ps.stx_ino)
            == (ts.stx_dev_major, ts.stx_dev_minor, ts.stx_ino)
    })
}

/// Whether a stashed mount sits at `path`.
fn stashed_at(path: &std::path::Path) -> bool {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .is_ok_and(|fd| is_mount_root(fd.as_fd()))
}

fn drop_mount(path: &std::path::Path) {
    if let Ok(fd) = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        if is_mount_root(fd.as_fd()) {
            let _ = rustix::mount::unmount(proc_fd_path(fd.as_fd()).as_str(), UnmountFlags::DETACH);
        }
    }
}

fn is_mount_root(fd: rustix::fd::BorrowedFd<'_>) -> bool {
    crate::state::dir_stat(fd)
        .map(|st| crate::state::is_mount_root(&st))
        .unwrap_or(false)
}

/// Put stashed mounts back on the host hierarchy (after the merge went). One that cannot be
/// put back stays stashed, with its intent line, for the next call to try again.
pub fn put_back(root: &Root, class: ImageClass, stashed: Vec<Stashed>) {
    let mut all = true;
    for s in &stashed {
        if put(root, &s.path, &s.target) {
            continue;
        }
        if root
            .open_in(&s.target, OFlags::PATH | OFlags::DIRECTORY)
            .is_err()
        {
            // Its mount point went with the merge (a directory of an extension): nothing can
            // show it, as with systemd, and as `recover` decides.
            drop_mount(&s.path);
        } else {
            all = false;
        }
    }
    if !stashed.is_empty() && all {
        clean(root, class);
    }
}

/// Drop stashed copies (the merge carrying the originals was put back).
pub fn discard(root: &Root, class: ImageClass, stashed: Vec<Stashed>) {
    for s in &stashed {
        drop_mount(&s.path);
    }
    if !stashed.is_empty() {
        clean(root, class);
    }
}

/// Remove the rescue directory once nothing is stashed in it any more. While a copy is still
/// attached (another hierarchy's, put back after this one), its intent line stays: lines of
/// copies already gone are passed over by [`recover`].
fn clean(root: &Root, class: ImageClass) {
    let Ok(dir) = rescue_dir(root, class) else {
        return;
    };
    let mut left = false;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_name() != "intent" && std::fs::remove_dir(e.path()).is_err() {
                left = true;
            }
        }
    }
    if left {
        return;
    }
    let _ = std::fs::remove_file(dir.join("intent"));
    let _ = std::fs::remove_dir(&dir);
}

/// Repair what an interrupted unmerge left (run under the lock, before any verb): each
/// stashed mount goes to its place, unless a merge of ours is still on its hierarchy (then
/// the mount is still on it and the copy is dropped). Returns how many were put back.
/// `lock`: the lock file of `root` and `class` (its name gives the rescue directory's).
pub fn recover(root: &Root, class: ImageClass, lock: &std::path::Path) -> usize {
    let dir = lock.with_extension("rescue");
    let Ok(text) = std::fs::read_to_string(dir.join("intent")) else {
        return 0;
    };
    let mut n = 0;
    for line in text.lines() {
        let mut it = line.splitn(3, '\t');
        let (Some(k), Some(hier), Some(sub)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let path = dir.join(k);
        if !path.exists() {
            // Put back and removed already (its line stayed for another one still stashed).
            continue;
        }
        let merged = root
            .resolve(hier, OFlags::PATH | OFlags::DIRECTORY)
            .ok()
            .flatten()
            .is_some_and(|r| {
                let st = crate::state::dir_stat(r.fd.as_fd());
                matches!(
                    crate::state::merged_dev(r.fd.as_fd(), st.as_ref(), &r.path, class),
                    Ok(Some(_))
                )
            });
        let target = format!("{hier}/{sub}");
        if merged {
            drop_mount(&path);
        } else if put(root, &path, &target) {
            n += 1;
        } else if root
            .open_in(&target, OFlags::PATH | OFlags::DIRECTORY)
            .is_err()
        {
            // Its mount point is gone: nothing can show it.
            drop_mount(&path);
        } else {
            // Kept for the next call.
            return n;
        }
    }
    clean(root, class);
    n
}
