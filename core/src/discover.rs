//! Discovery of extension images in the search directories of an image class.

use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::root::Root;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, OFlags};
use std::io;

/// What an image is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// A plain directory tree.
    #[doc(alias = "IMAGE_DIRECTORY")]
    Directory,
    /// A btrfs subvolume.
    #[doc(alias = "IMAGE_SUBVOLUME")]
    Subvolume,
    /// A `.raw` image file (naked file system or GPT disk image).
    #[doc(alias = "IMAGE_RAW")]
    Raw,
    /// A block device.
    #[doc(alias = "IMAGE_BLOCK")]
    Block,
}

impl ImageKind {
    /// systemd's name (`directory`, `subvolume`, `raw`, `block`).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Directory => "directory",
            ImageKind::Subvolume => "subvolume",
            ImageKind::Raw => "raw",
            ImageKind::Block => "block",
        }
    }

    /// Whether the image is a directory tree (no mounting of a file system needed).
    pub fn is_tree(self) -> bool {
        matches!(self, ImageKind::Directory | ImageKind::Subvolume)
    }
}

/// Where an image was found and what shadows or masks it.
#[derive(Debug, Clone)]
pub struct DiscoveredImage {
    /// Image name (file name without `.raw` and the class suffix).
    pub name: String,
    /// Kind of image.
    pub kind: ImageKind,
    /// Path as printed (root prefix included, symlinks not resolved).
    pub path: String,
    /// Path relative to the root.
    pub rel: String,
    /// The search directory it was found in (root-relative, with leading slash).
    pub search_dir: &'static str,
    /// `list`'s time: mtime for files, birth time for directories (µs since the epoch).
    pub time_usec: u64,
    /// Lower-precedence images of the same name that this one shadows (paths).
    pub shadows: Vec<String>,
    /// Identity of the image file or directory as found (for merge fingerprints).
    pub identity: FileIdentity,
}

/// What tells one version of an image on disk from another: device and inode of the
/// file or directory (the picked entry of a `.v` directory), and its modification and
/// change times in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileIdentity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Modification time (ns).
    pub mtime_ns: i128,
    /// Change time (ns).
    pub ctime_ns: i128,
}

impl FileIdentity {
    fn from_statx(st: &rustix::fs::Statx) -> FileIdentity {
        let ns = |t: &rustix::fs::StatxTimestamp| {
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        FileIdentity {
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            mtime_ns: ns(&st.stx_mtime),
            ctime_ns: ns(&st.stx_ctime),
        }
    }

    /// The identity of an open file or directory.
    pub fn of_stat(st: &rustix::fs::Stat) -> FileIdentity {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        FileIdentity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }
}

impl DiscoveredImage {
    /// File name of the image path (`foo.raw`, `foo`), used in "Using extensions".
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Whether `name` is a valid image name (systemd's `image_name_is_valid`).
pub fn image_name_is_valid(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 || name == "." || name == ".." {
        return false;
    }
    if name.contains('/') || name.chars().any(|c| c.is_control()) {
        return false;
    }
    !name.starts_with(".#")
}

/// Whether we run in an initrd: `SYSTEMD_IN_INITRD` if set, else `/etc/initrd-release` on the
/// host (never inside the root).
pub fn in_initrd() -> bool {
    if let Ok(v) = std::env::var("SYSTEMD_IN_INITRD") {
        if let Some(b) = crate::release::parse_bool(&v) {
            return b;
        }
    }
    std::path::Path::new("/etc/initrd-release").exists()
}

/// The search directories for a class.
pub fn search_dirs(class: ImageClass, initrd: bool) -> &'static [&'static str] {
    let info = class.info();
    if initrd {
        info.search_dirs_initrd
    } else {
        info.search_dirs
    }
}

fn strip_suffix_once<'a>(s: &'a str, suffix: &str) -> &'a str {
    s.strip_suffix(suffix).unwrap_or(s)
}

fn time_usec(st: &rustix::fs::Statx, dir: bool) -> u64 {
    let ts = if dir { st.stx_btime } else { st.stx_mtime };
    (ts.tv_sec.max(0) as u64) * 1_000_000 + u64::from(ts.tv_nsec) / 1000
}

fn is_btrfs_subvolume(fd: &OwnedFd, st: &rustix::fs::Statx) -> bool {
    const BTRFS_SUPER_MAGIC: i64 = 0x9123683e;
    if st.stx_ino != 256 {
        return false;
    }
    match rustix::fs::fstatfs(fd) {
        Ok(sfs) => {
            let t: i64 = sfs.f_type;
            t == BTRFS_SUPER_MAGIC
        }
        Err(_) => false,
    }
}

/// Pick the newest entry of a versioned directory `NAME.v/` (vpick).
fn pick_versioned(
    dirfd: &OwnedFd,
    base: &str,
    raw: bool,
    follow: bool,
) -> io::Result<Option<(String, FileIdentity)>> {
    let fd = rustix::fs::openat(
        dirfd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut best: Option<(String, String, FileIdentity)> = None; // (version, entry, identity)
    let native = crate::arch::native();
    for ent in rustix::fs::Dir::read_from(&fd)? {
        let ent = ent?;
        let Ok(fname) = ent.file_name().to_str() else {
            continue;
        };
        let Some(rest) = fname.strip_prefix(base).and_then(|r| r.strip_prefix('_')) else {
            continue;
        };
        let rest = if raw {
            match rest.strip_suffix(".raw") {
                Some(r) => r,
                None => continue,
            }
        } else {
            rest
        };
        // version[+tries[-done]][_arch]
        let (rest, arch_ok) = match rest.rsplit_once('_') {
            Some((v, a)) if crate::arch::ALL.contains(&a) => (v, a == native),
            _ => (rest, true),
        };
        if !arch_ok {
            continue;
        }
        let version = match rest.split_once('+') {
            Some((v, tries)) => {
                let left = tries.split('-').next().unwrap_or("");
                if left == "0" {
                    continue;
                }
                v
            }
            None => rest,
        };
        if version.is_empty() {
            continue;
        }
        let flags = if follow {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let Ok(st) = rustix::fs::statat(&fd, fname, flags) else {
            continue;
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        let ok = if raw {
            matches!(ft, FileType::RegularFile | FileType::BlockDevice)
        } else {
            ft == FileType::Directory
        };
        if !ok {
            continue;
        }
        let newer = match &best {
            None => true,
            Some((bv, _, _)) => {
                crate::version::strverscmp_improved(version, bv) == std::cmp::Ordering::Greater
            }
        };
        if newer {
            best = Some((
                version.to_string(),
                fname.to_string(),
                FileIdentity::of_stat(&st),
            ));
        }
    }
    Ok(best.map(|(_, e, id)| (e, id)))
}

/// `dir/name` without a leading slash (`dir` may be empty or start with one).
fn join_rel(dir: &str, name: &str) -> String {
    let dir = dir.trim_start_matches('/');
    if dir.is_empty() {
        return name.trim_start_matches('/').to_string();
    }
    let mut out = String::with_capacity(dir.len() + 1 + name.len());
    out.push_str(dir);
    out.push('/');
    out.push_str(name);
    out
}

/// Discover all images of a class below the root, in precedence order, first name wins.
///
/// With an explicit root, entries that are symlinks are skipped (as systemd 257 does);
/// without one they are followed and a symlink loop fails the whole discovery.
pub fn discover(root: &Root, class: ImageClass, initrd: bool) -> Result<Vec<DiscoveredImage>> {
    let info = class.info();
    let mut out: Vec<DiscoveredImage> = Vec::new();
    // Index of each name in `out` (the first found wins, later ones are shadowed).
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let follow = !root.is_explicit();
    for &sdir in search_dirs(class, initrd) {
        let Some(res) = root
            .resolve(sdir, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| crate::root::resolve_err(root, sdir, e))?
        else {
            continue;
        };
        let dirfd = res.fd;
        let mut entries: Vec<String> = Vec::new();
        {
            // Read with the fd we have (no duplicate fd, as `Dir` would make), into a buffer
            // on the stack.
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
            let mut dir = rustix::fs::RawDir::new(&dirfd, &mut buf);
            while let Some(ent) = dir.next() {
                let ent = ent.map_err(|e| Error::io("read directory", &res.path, e))?;
                let n = ent.file_name().to_bytes();
                if n == b"." || n == b".." {
                    continue;
                }
                // Invalid UTF-8 is not a valid image name.
                if let Ok(s) = std::str::from_utf8(n) {
                    entries.push(s.to_string());
                }
            }
        }
        for fname in entries {
            let flags = if follow {
                AtFlags::empty()
            } else {
                AtFlags::SYMLINK_NOFOLLOW
            };
            let st = match rustix::fs::statx(
                &dirfd,
                fname.as_str(),
                flags,
                rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
            ) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(rustix::io::Errno::LOOP) => {
                    return Err(Error::Discovery {
                        source: io::Error::from_raw_os_error(libc::ELOOP),
                    })
                }
                Err(e) => return Err(Error::io("stat", format!("{}/{}", res.path, fname), e)),
            };
            let ft = FileType::from_raw_mode(st.stx_mode.into());
            let mut identity = FileIdentity::from_statx(&st);
            let (name, kind, entry_rel) = match ft {
                FileType::RegularFile => {
                    let Some(stem) = fname.strip_suffix(".raw") else {
                        continue;
                    };
                    (
                        strip_suffix_once(stem, info.name_suffix).to_string(),
                        ImageKind::Raw,
                        fname.clone(),
                    )
                }
                FileType::Directory => {
                    if let Some(stem) = fname.strip_suffix(".v") {
                        let (base, raw) = match stem.strip_suffix(".raw") {
                            Some(b) => (b, true),
                            None => (stem, false),
                        };
                        let Ok(sub) = rustix::fs::openat(
                            &dirfd,
                            fname.as_str(),
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                            rustix::fs::Mode::empty(),
                        ) else {
                            continue;
                        };
                        let Ok(Some((picked, picked_identity))) =
                            pick_versioned(&sub, base, raw, follow)
                        else {
                            continue;
                        };
                        identity = picked_identity;
                        let name = strip_suffix_once(base, info.name_suffix).to_string();
                        let kind = if raw {
                            ImageKind::Raw
                        } else {
                            ImageKind::Directory
                        };
                        (name, kind, format!("{fname}/{picked}"))
                    } else {
                        // Only a btrfs subvolume root has inode 256: look closer only then.
                        let kind = if st.stx_ino == 256 {
                            let sub = rustix::fs::openat(
                                &dirfd,
                                fname.as_str(),
                                OFlags::PATH
                                    | OFlags::CLOEXEC
                                    | if follow {
                                        OFlags::empty()
                                    } else {
                                        OFlags::NOFOLLOW
                                    },
                                rustix::fs::Mode::empty(),
                            );
                            match sub {
                                Ok(fd) if is_btrfs_subvolume(&fd, &st) => ImageKind::Subvolume,
                                _ => ImageKind::Directory,
                            }
                        } else {
                            ImageKind::Directory
                        };
                        (
                            strip_suffix_once(&fname, info.name_suffix).to_string(),
                            kind,
                            fname.clone(),
                        )
                    }
                }
                FileType::BlockDevice => (fname.clone(), ImageKind::Block, fname.clone()),
                _ => continue,
            };
            if !image_name_is_valid(&name) {
                continue;
            }
            let rel = join_rel(&res.rel, &entry_rel);
            let path = root.display(&join_rel(sdir, &entry_rel));
            if let Some(&i) = seen.get(name.as_str()) {
                let existing: &mut DiscoveredImage = &mut out[i];
                existing.shadows.push(path);
                continue;
            }
            seen.insert(name.clone(), out.len());
            out.push(DiscoveredImage {
                name,
                kind,
                path,
                rel,
                search_dir: sdir,
                time_usec: time_usec(&st, kind.is_tree()),
                shadows: Vec::new(),
                identity,
            });
        }
    }
    let _ = AsFd::as_fd(root);
    Ok(out)
}

impl AsFd for Root {
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["foo", ".hidden", "a b", "foo@1", "x.y"] {
            assert!(image_name_is_valid(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".#tmp", "a/b", "a\u{1}b", &"x".repeat(256)] {
            assert!(!image_name_is_valid(bad), "{bad:?}");
        }
    }
}
