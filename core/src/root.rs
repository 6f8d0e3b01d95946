//! The root below which everything happens (`--root`), and path resolution inside it.
//!
//! Every path below the root is resolved with `openat2(RESOLVE_IN_ROOT)` against a
//! directory fd of the root, so symlinks (absolute or with `..`) can never lead
//! outside of it: an absolute link target is re-rooted, `..` is clamped at the root.

use crate::error::{Error, IoContext, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io;
use std::path::{Path, PathBuf};

/// A directory that serves as `/` for all operations.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Prefix printed before root-relative paths: "" for `/`, "/sbv" for `--root=/sbv`.
    prefix: String,
    /// Whether `--root` was given at all (systemd then skips symlinks in search dirs).
    explicit: bool,
    /// The kernel's path of the root (for translating `/proc/self/fd` links).
    real: PathBuf,
}

/// A path resolved inside the root.
#[derive(Debug)]
pub struct Resolved {
    /// An fd for the object (`O_PATH`, or `O_DIRECTORY` when asked for a directory).
    pub fd: OwnedFd,
    /// The resolved path, root prefix included, as systemd would print it.
    pub path: String,
    /// The resolved path relative to the root, without leading slash ("" for the root).
    pub rel: String,
    /// Its `statx` ([`crate::state::dir_stat`]), where a caller looked already.
    pub stat: Option<rustix::fs::Statx>,
}

fn openat2_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Normalise a `--root` value the way systemd prints it: made absolute against the
/// current directory, repeated and trailing slashes removed, `..` kept.
pub fn normalize_root(given: &str) -> Result<String> {
    let abs = if given.starts_with('/') {
        given.to_string()
    } else {
        let cwd = std::env::current_dir().ctx("get current directory", ".")?;
        format!("{}/{}", cwd.display(), given)
    };
    let mut out = String::with_capacity(abs.len());
    for comp in abs.split('/').filter(|c| !c.is_empty() && *c != ".") {
        out.push('/');
        out.push_str(comp);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

impl Root {
    /// Open the root. `None` means the host's `/` without `--root`.
    pub fn open(given: Option<&str>) -> Result<Root> {
        let norm = match given {
            Some(g) => normalize_root(g)?,
            None => "/".to_string(),
        };
        let fd = rustix::fs::open(
            norm.as_str(),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx("open root directory", &norm)?;
        let real = fd_path(fd.as_fd()).unwrap_or_else(|| PathBuf::from(&norm));
        let prefix = if norm == "/" { String::new() } else { norm };
        Ok(Root {
            fd,
            prefix,
            explicit: given.is_some(),
            real,
        })
    }

    /// The root's directory fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether `--root` was given.
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }

    /// The root as systemd prints it in messages (`/` for the host).
    pub fn display_root(&self) -> &str {
        if self.prefix.is_empty() {
            "/"
        } else {
            &self.prefix
        }
    }

    /// Root prefix ("" for `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `R + /rel` as printed by systemd.
    pub fn display(&self, rel: &str) -> String {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            return self.display_root().to_string();
        }
        let mut out = String::with_capacity(self.prefix.len() + 1 + rel.len());
        out.push_str(&self.prefix);
        out.push('/');
        out.push_str(rel);
        out
    }

    /// The absolute path of `rel` in the kernel's view (for `mount` targets and messages).
    pub fn host_path(&self, rel: &str) -> PathBuf {
        self.real.join(rel.trim_start_matches('/'))
    }

    /// Open `rel` inside the root with the given flags (symlinks resolved inside the root).
    pub fn open_in(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        open_beneath(self.fd.as_fd(), rel, flags)
    }

    /// Resolve `rel`; `Ok(None)` when it (or a link target on the way) does not exist.
    pub fn resolve(&self, rel: &str, flags: OFlags) -> io::Result<Option<Resolved>> {
        // Without `..` and without a symlink on the way, the resolved path is the given one:
        // no need to ask /proc for it. A symlink met (ELOOP) or any other failure takes
        // the general way below, so errors stay the same.
        let plain = !rel.split('/').any(|c| c == "..");
        if plain {
            match open_beneath_with(self.fd.as_fd(), rel, flags, ResolveFlags::NO_SYMLINKS) {
                Ok(fd) => {
                    let mut norm = String::with_capacity(rel.len());
                    for c in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
                        if !norm.is_empty() {
                            norm.push('/');
                        }
                        norm.push_str(c);
                    }
                    return Ok(Some(Resolved {
                        path: self.display(&norm),
                        rel: norm,
                        fd,
                        stat: None,
                    }));
                }
                // A missing component met before any symlink is missing either way.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                Err(_) => {}
            }
        }
        match self.open_in(rel, flags) {
            Ok(fd) => {
                let rel = self
                    .rel_of(fd.as_fd())
                    .unwrap_or_else(|| rel.trim_matches('/').to_string());
                Ok(Some(Resolved {
                    path: self.display(&rel),
                    rel,
                    fd,
                    stat: None,
                }))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Root::resolve`] a directory, opened for reading its entries where the caller may
    /// read it, else (`EACCES`) as `O_PATH`.
    pub fn resolve_dir(&self, rel: &str) -> io::Result<Option<Resolved>> {
        match self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                self.resolve(rel, OFlags::PATH | OFlags::DIRECTORY)
            }
            r => r,
        }
    }

    /// Root-relative path of an fd below the root, from `/proc/self/fd`.
    pub fn rel_of(&self, fd: BorrowedFd<'_>) -> Option<String> {
        let p = fd_path(fd)?;
        let rel = p.strip_prefix(&self.real).ok()?;
        Some(rel.to_string_lossy().trim_matches('/').to_string())
    }

    /// `mkdir -p` inside the root. Returns the root-relative paths of the directories it
    /// created, outermost first (for undoing). Each directory is created with `mode`.
    pub fn mkdir_p(&self, rel: &str, mode: u32) -> io::Result<Vec<String>> {
        self.mkdir_p_modes(rel, mode, mode)
    }

    /// [`Root::mkdir_p_modes`], except that the last component, when created, appears
    /// with exactly mode `last` or not at all: it is made under a temporary name, given its
    /// mode and renamed into place (a process killed in between leaves no directory with
    /// the wrong mode where the next call looks; the temporary one is removed by that call).
    pub fn mkdir_p_exact(&self, rel: &str, parents: u32, last: u32) -> io::Result<Vec<String>> {
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", rel),
        };
        match self.open_in(rel, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let mut created = if parent.is_empty() {
            Vec::new()
        } else {
            self.mkdir_p_modes(parent, parents, parents)?
        };
        // Parents get exactly their mode, whatever the umask.
        for p in &created {
            let fd = reopen_dir(self.open_in(p, OFlags::PATH | OFlags::DIRECTORY)?.as_fd())?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(parents))?;
        }
        let pfd = if parent.is_empty() {
            rustix::io::dup(self.fd.as_fd())?
        } else {
            self.open_in(parent, OFlags::PATH | OFlags::DIRECTORY)?
        };
        let tmp = format!(".#{name}.libsysext");
        let _ = rustix::fs::unlinkat(&pfd, tmp.as_str(), rustix::fs::AtFlags::REMOVEDIR);
        rustix::fs::mkdirat(&pfd, tmp.as_str(), Mode::from_raw_mode(0o700))?;
        let made = rustix::fs::openat(
            &pfd,
            tmp.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| rustix::fs::fchmod(&fd, Mode::from_raw_mode(last)))
        .and_then(|()| rustix::fs::renameat(&pfd, tmp.as_str(), &pfd, name));
        if let Err(e) = made {
            let _ = rustix::fs::unlinkat(&pfd, tmp.as_str(), rustix::fs::AtFlags::REMOVEDIR);
            return Err(match e {
                Errno::NOTEMPTY => io::Error::from_raw_os_error(libc::EEXIST),
                e => e.into(),
            });
        }
        created.push(rel.to_string());
        Ok(created)
    }

    /// [`Root::mkdir_p`] giving the parents it creates `parents` (exactly: chmod after the
    /// umask) and the last component `last`.
    pub fn mkdir_p_modes(&self, rel: &str, parents: u32, last: u32) -> io::Result<Vec<String>> {
        let mut created = Vec::new();
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        for i in 0..comps.len() {
            let prefix = comps[..=i].join("/");
            match self.open_in(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let parent = comps[..i].join("/");
            let pfd = if parent.is_empty() {
                rustix::io::dup(self.fd.as_fd())?
            } else {
                self.open_in(&parent, OFlags::PATH | OFlags::DIRECTORY)?
            };
            let is_last = i + 1 == comps.len();
            let mode = if is_last { last } else { parents };
            match rustix::fs::mkdirat(&pfd, comps[i], Mode::from_raw_mode(mode)) {
                Ok(()) => {
                    if !is_last && parents != last {
                        let fd = self.open_in(&prefix, OFlags::PATH | OFlags::DIRECTORY)?;
                        let fd = reopen_dir(fd.as_fd())?;
                        rustix::fs::fchmod(&fd, Mode::from_raw_mode(parents))?;
                    }
                    created.push(prefix)
                }
                Err(Errno::EXIST) => {
                    // Something is there but does not resolve to a directory (a dangling
                    // symlink or a file): mkdir -p fails like systemd's does.
                    return Err(io::Error::from_raw_os_error(libc::EEXIST));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(created)
    }
}

/// Open `rel` beneath `dirfd` treating `dirfd` as the root.
pub fn open_beneath(dirfd: BorrowedFd<'_>, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
    open_beneath_with(dirfd, rel, flags, ResolveFlags::empty())
}

/// [`open_beneath`] with more resolve flags (`RESOLVE_NO_SYMLINKS`, …).
pub fn open_beneath_with(
    dirfd: BorrowedFd<'_>,
    rel: &str,
    flags: OFlags,
    extra: ResolveFlags,
) -> io::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    // openat2() returns EAGAIN when a mount or rename elsewhere raced with `..` resolution
    // under RESOLVE_IN_ROOT; the lookup is simply retried.
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            dirfd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            openat2_flags() | extra,
        ) {
            Err(Errno::AGAIN) if tries < 1000 => tries += 1,
            r => return r.map_err(Into::into),
        }
    }
}

/// The kernel's path of an fd (`readlink /proc/self/fd/N`).
pub fn fd_path(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

/// `/proc/self/fd/N`: a path that reaches exactly the object of `fd` (for overlay options).
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Whether a directory (given as an fd that may be `O_PATH`) has no entries besides `.` and `..`.
pub fn dir_is_empty(fd: BorrowedFd<'_>) -> io::Result<bool> {
    owned_dir_is_empty(reopen_dir(fd)?)
}

/// Like [`dir_is_empty`], reading `fd` itself, which was opened for reading (not `O_PATH`).
/// Its position is used up: for an fd read once.
pub fn readable_dir_is_empty(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1024];
    let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
    while let Some(ent) = dir.next() {
        let n = ent?;
        let n = n.file_name().to_bytes();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The directory `fd` (which may be `O_PATH`) opened again for reading its entries.
pub fn reopen_dir(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Like [`dir_is_empty`], for a directory already opened for reading (consumed).
pub fn owned_dir_is_empty(dfd: OwnedFd) -> io::Result<bool> {
    // One getdents64 into a buffer on the stack usually answers (no allocation).
    readable_dir_is_empty(dfd.as_fd())
}

/// Make an [`Error`] for a failed resolution under the root.
pub(crate) fn resolve_err(root: &Root, rel: &str, e: io::Error) -> Error {
    Error::io("resolve", Path::new(&root.display(rel)), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_paths_normalize_as_systemd_prints_them() {
        assert_eq!(normalize_root("/sbv/").unwrap(), "/sbv");
        assert_eq!(normalize_root("//sbv").unwrap(), "/sbv");
        assert_eq!(normalize_root("/").unwrap(), "/");
        assert_eq!(normalize_root("/a/../b").unwrap(), "/a/../b");
        assert_eq!(normalize_root("/a/./b").unwrap(), "/a/b");
    }

    #[test]
    fn exact_mkdir_appears_with_its_mode_and_clears_a_leftover() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        std::fs::create_dir_all(t.join("var/lib/m")).unwrap();
        // What a process killed between mkdir and chmod would have left under the old scheme
        // goes under a temporary name now; a leftover one is cleared.
        std::fs::create_dir(t.join("var/lib/m/.#usr.libsysext")).unwrap();
        let root = Root::open(Some(t.to_str().unwrap())).unwrap();
        let created = root.mkdir_p_exact("var/lib/m/usr", 0o755, 0o751).unwrap();
        assert_eq!(created, vec!["var/lib/m/usr".to_string()]);
        let mode = std::fs::metadata(t.join("var/lib/m/usr"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o751);
        assert!(!t.join("var/lib/m/.#usr.libsysext").exists());
        // Existing: nothing made.
        assert!(root
            .mkdir_p_exact("var/lib/m/usr", 0o755, 0o700)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn resolution_stays_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        std::fs::create_dir_all(t.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", t.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../usr", t.join("up")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-x", t.join("dangling")).unwrap();
        let root = Root::open(Some(t.to_str().unwrap())).unwrap();
        let r = root.resolve("abs", OFlags::PATH).unwrap().unwrap();
        assert_eq!(r.rel, "usr/lib");
        assert_eq!(r.path, format!("{}/usr/lib", t.display()));
        let r = root.resolve("up", OFlags::PATH).unwrap().unwrap();
        assert_eq!(r.rel, "usr");
        assert!(root.resolve("dangling", OFlags::PATH).unwrap().is_none());
        let created = root.mkdir_p("var/lib/x", 0o700).unwrap();
        assert_eq!(created, vec!["var", "var/lib", "var/lib/x"]);
        assert!(root.mkdir_p("dangling/y", 0o700).is_err());
        assert_eq!(
            root.mkdir_p("usr/lib", 0o755).unwrap(),
            Vec::<String>::new()
        );
    }
}
