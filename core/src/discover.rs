//! Discovery of extension images in the search directories of an image class.

use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::level::Compat;
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
    /// `list`'s time: mtime for files, birth time for directories (µs since the epoch).
    pub time_usec: u64,
    /// Lower-precedence images of the same name that this one shadows (paths).
    pub shadows: Vec<String>,
    /// Identity of the image file or directory as found (for merge fingerprints).
    pub identity: FileIdentity,
    /// For an image picked from `NAME.v/` or `NAME.raw.v/`: the picked entry's name
    /// without `.raw` (`NAME_3`), which systemd 257 checks a raw image's release file
    /// against.
    pub picked_stem: Option<String>,
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

/// Whether the root is an initrd as systemd 259 and later decide it for the scope and the
/// search directories: `etc/initrd-release` exists below the root (any file type, symlinks
/// resolved inside the root; a dangling one does not count). An error looking it up (which
/// fails systemd's discovery) counts as absent.
pub fn root_is_initrd(root: &Root) -> bool {
    matches!(
        root.resolve("etc/initrd-release", OFlags::PATH | OFlags::CLOEXEC),
        Ok(Some(_))
    )
}

/// The search directories for a class, in the initrd scope or not, at a level.
pub fn search_dirs(class: ImageClass, initrd: bool, compat: Compat) -> &'static [&'static str] {
    let info = class.info();
    match (initrd, compat.searches_global_extra_dirs()) {
        (false, _) => info.search_dirs,
        (true, false) => info.search_dirs_initrd,
        (true, true) => info.search_dirs_initrd_global,
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

/// How the entries of a `NAME.v/` directory are chosen (see [`Compat`]'s
/// `follows_search_symlinks_in_root`).
#[derive(Debug, Clone, Copy)]
enum PickRule {
    /// 262: every candidate is looked at, its symlinks followed inside the root; one of the
    /// wrong type is passed over, one that does not resolve (dangling) makes the whole
    /// directory unusable; the newest of the rest wins.
    EachCandidate,
    /// 257: the newest candidate by name wins; only it is looked at (its symlinks followed
    /// only when they stay beneath the root, when `beneath`); if it does not resolve or has
    /// the wrong type, the directory yields nothing.
    NewestThenCheck {
        /// An explicit `--root`: absolute links and links climbing above it count as
        /// dangling (257 resolves them against the host's `/`, which we never read).
        beneath: bool,
    },
}

/// A picked entry of `NAME.v/`: its file name, what it resolved to, and its stat.
struct Picked {
    entry: String,
    /// Root-relative path of what the entry resolves to.
    resolved_rel: String,
    st: rustix::fs::Statx,
}

fn statx_flags() -> rustix::fs::StatxFlags {
    rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME
}

fn statx_fd(fd: &OwnedFd) -> io::Result<rustix::fs::Statx> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, statx_flags()).map_err(Into::into)
}

/// Resolve `rel` (a symlink) inside the root: `Ok(None)` when it dangles (or, `beneath`,
/// leaves the root's tree by an absolute target or `..`).
fn resolve_link(
    root: &Root,
    rel: &str,
    beneath: bool,
) -> io::Result<Option<(String, rustix::fs::Statx)>> {
    let fd = if beneath {
        match rustix::fs::openat2(
            root.fd(),
            rel.trim_start_matches('/'),
            OFlags::PATH | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::XDEV) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    } else {
        match root.resolve(rel, OFlags::PATH)? {
            Some(r) => r.fd,
            None => return Ok(None),
        }
    };
    let st = statx_fd(&fd)?;
    let rel = root
        .rel_of(rustix::fd::AsFd::as_fd(&fd))
        .unwrap_or_else(|| rel.trim_matches('/').to_string());
    Ok(Some((rel, st)))
}

fn picked_type_ok(st: &rustix::fs::Statx, raw: bool) -> bool {
    let ft = FileType::from_raw_mode(st.stx_mode.into());
    if raw {
        matches!(ft, FileType::RegularFile | FileType::BlockDevice)
    } else {
        ft == FileType::Directory
    }
}

/// The version of `fname` if it is a candidate of `NAME.v/` for `base`
/// (`base_VERSION[+TRIES[-DONE]][_ARCH][.raw]`, the native or no architecture, tries left).
fn candidate_version<'a>(fname: &'a str, base: &str, raw: bool) -> Option<&'a str> {
    let rest = fname.strip_prefix(base)?.strip_prefix('_')?;
    let rest = if raw {
        rest.strip_suffix(".raw")?
    } else {
        rest
    };
    let rest = match rest.rsplit_once('_') {
        Some((v, a)) if crate::arch::ALL.contains(&a) => {
            if a != crate::arch::native() {
                return None;
            }
            v
        }
        _ => rest,
    };
    let version = match rest.split_once('+') {
        Some((v, tries)) => {
            if tries.split('-').next().unwrap_or("") == "0" {
                return None;
            }
            v
        }
        None => rest,
    };
    (!version.is_empty()).then_some(version)
}

/// Pick the newest entry of a versioned directory `NAME.v/` (vpick) at root-relative `vrel`.
fn pick_versioned(
    root: &Root,
    vrel: &str,
    base: &str,
    raw: bool,
    rule: PickRule,
) -> io::Result<Option<Picked>> {
    let fd = root.open_in(vrel, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let newer = |v: &str, best: &Option<(String, Picked)>| match best {
        None => true,
        Some((bv, _)) => crate::version::strverscmp_improved(v, bv) == std::cmp::Ordering::Greater,
    };
    let look = |fname: &str, beneath: bool| -> io::Result<Option<(String, rustix::fs::Statx)>> {
        let st = match rustix::fs::statx(&fd, fname, AtFlags::SYMLINK_NOFOLLOW, statx_flags()) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(st.stx_mode.into()) == FileType::Symlink {
            resolve_link(root, &join_rel(vrel, fname), beneath)
        } else {
            Ok(Some((join_rel(vrel, fname), st)))
        }
    };
    let mut best: Option<(String, Picked)> = None; // (version, entry)
    let mut newest: Option<(String, String)> = None; // (version, entry) by name only
    for ent in rustix::fs::Dir::read_from(&fd)? {
        let ent = ent?;
        let Ok(fname) = ent.file_name().to_str() else {
            continue;
        };
        let Some(version) = candidate_version(fname, base, raw) else {
            continue;
        };
        match rule {
            PickRule::EachCandidate => {
                let Some((resolved_rel, st)) = look(fname, false)? else {
                    // A dangling candidate spoils the whole directory.
                    return Ok(None);
                };
                if !picked_type_ok(&st, raw) || !newer(version, &best) {
                    continue;
                }
                best = Some((
                    version.to_string(),
                    Picked {
                        entry: fname.to_string(),
                        resolved_rel,
                        st,
                    },
                ));
            }
            PickRule::NewestThenCheck { .. } => {
                let is_newer = match &newest {
                    None => true,
                    Some((bv, _)) => {
                        crate::version::strverscmp_improved(version, bv)
                            == std::cmp::Ordering::Greater
                    }
                };
                if is_newer {
                    newest = Some((version.to_string(), fname.to_string()));
                }
            }
        }
    }
    if let PickRule::NewestThenCheck { beneath } = rule {
        let Some((_, entry)) = newest else {
            return Ok(None);
        };
        let Some((resolved_rel, st)) = look(&entry, beneath)? else {
            return Ok(None);
        };
        if !picked_type_ok(&st, raw) {
            return Ok(None);
        }
        return Ok(Some(Picked {
            entry,
            resolved_rel,
            st,
        }));
    }
    Ok(best.map(|(_, p)| p))
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

/// Discover all images of a class below the root at a compatibility level, in precedence
/// order, first name wins.
///
/// Without an explicit root, entries that are symlinks are followed and a symlink loop fails
/// the whole discovery. With one, at 262, they are followed inside the root (a dangling one
/// is passed over) and the image's path is what they resolve to; at 257 they are skipped.
/// Symlinks inside `NAME.v/` are followed at both levels (see `PickRule`).
pub fn discover_at(
    root: &Root,
    class: ImageClass,
    initrd: bool,
    compat: Compat,
) -> Result<Vec<DiscoveredImage>> {
    let explicit = root.is_explicit();
    let mut d = Discovery {
        root,
        class,
        compat,
        follow: !explicit,
        follow_in_root: explicit && compat.follows_search_symlinks_in_root(),
        rule: if compat.follows_search_symlinks_in_root() {
            PickRule::EachCandidate
        } else {
            PickRule::NewestThenCheck { beneath: explicit }
        },
        out: Vec::new(),
        seen: std::collections::HashMap::new(),
    };
    for &sdir in search_dirs(class, initrd, compat) {
        let Some(res) = root
            .resolve(sdir, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| crate::root::resolve_err(root, sdir, e))?
        else {
            continue;
        };
        for fname in read_names(&res.fd, &res.path)? {
            let Some(entry) = d.stat_entry(&res, &fname)? else {
                continue;
            };
            if let Some(c) = d.candidate(&fname, entry) {
                d.add(sdir, c);
            }
        }
    }
    let _ = AsFd::as_fd(root);
    Ok(d.out)
}

/// One discovery: the rules of the level and root, and what was found so far.
struct Discovery<'r> {
    root: &'r Root,
    class: ImageClass,
    compat: Compat,
    /// Follow symlinks in the search directories (no explicit root).
    follow: bool,
    /// Resolve them inside the explicit root (262) instead of skipping them (257).
    follow_in_root: bool,
    rule: PickRule,
    out: Vec<DiscoveredImage>,
    /// Index of each name in `out` (the first found wins, later ones are shadowed).
    seen: std::collections::HashMap<String, usize>,
}

/// A directory entry, looked at: its stat and where it is (root-relative), resolved through
/// a symlink or not.
struct Entry {
    st: rustix::fs::Statx,
    rel: String,
    resolved: bool,
}

/// An entry that is an image candidate.
struct Candidate {
    name: String,
    kind: ImageKind,
    rel: String,
    st: rustix::fs::Statx,
    identity: FileIdentity,
    picked_stem: Option<String>,
    /// The entry as printed below its search directory (`NAME.v/PICKED` for a pick).
    shown: String,
    resolved: bool,
}

/// The names in a search directory (`.` and `..` left out, invalid UTF-8 too: it is no
/// valid image name). Read with the fd at hand (no duplicate, as `Dir` would make), into a
/// buffer on the stack.
fn read_names(dirfd: &OwnedFd, path: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    let mut dir = rustix::fs::RawDir::new(dirfd, &mut buf);
    while let Some(ent) = dir.next() {
        let ent = ent.map_err(|e| Error::io("read directory", path, e))?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        if let Ok(s) = std::str::from_utf8(n) {
            names.push(s.to_string());
        }
    }
    Ok(names)
}

impl Discovery<'_> {
    /// Stat the entry `fname` of the search directory `res`, following a symlink as the
    /// level and root say; `None` for an entry that is gone, or a symlink passed over.
    fn stat_entry(&self, res: &crate::root::Resolved, fname: &str) -> Result<Option<Entry>> {
        let flags = if self.follow {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let st = match rustix::fs::statx(&res.fd, fname, flags, statx_flags()) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => {
                return Err(Error::Discovery {
                    source: io::Error::from_raw_os_error(libc::ELOOP),
                })
            }
            Err(e) => return Err(Error::io("stat", format!("{}/{}", res.path, fname), e)),
        };
        let rel = join_rel(&res.rel, fname);
        if FileType::from_raw_mode(st.stx_mode.into()) != FileType::Symlink {
            return Ok(Some(Entry {
                st,
                rel,
                resolved: false,
            }));
        }
        if !self.follow_in_root {
            return Ok(None);
        }
        match resolve_link(self.root, &rel, false) {
            Ok(Some((rel, target))) => Ok(Some(Entry {
                st: target,
                rel,
                resolved: true,
            })),
            Ok(None) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(None),
            Err(e) => Err(Error::io("resolve", format!("{}/{}", res.path, fname), e)),
        }
    }

    /// What the entry `fname` is as an image, `None` when it is none (another file type, a
    /// regular file without `.raw`, an empty `NAME.v/`, an invalid name).
    fn candidate(&self, fname: &str, e: Entry) -> Option<Candidate> {
        let suffix = self.class.info().name_suffix;
        let plain = |name: &str, kind| Candidate {
            name: strip_suffix_once(name, suffix).to_string(),
            kind,
            rel: e.rel.clone(),
            st: e.st,
            identity: FileIdentity::from_statx(&e.st),
            picked_stem: None,
            shown: fname.to_string(),
            resolved: e.resolved,
        };
        let c = match FileType::from_raw_mode(e.st.stx_mode.into()) {
            FileType::RegularFile => plain(fname.strip_suffix(".raw")?, ImageKind::Raw),
            FileType::Directory => match fname.strip_suffix(".v") {
                Some(stem) => self.versioned(fname, stem, &e)?,
                None => plain(fname, self.directory_kind(&e)),
            },
            FileType::BlockDevice => Candidate {
                name: fname.to_string(),
                ..plain(fname, ImageKind::Block)
            },
            _ => return None,
        };
        image_name_is_valid(&c.name).then_some(c)
    }

    /// A plain directory or a btrfs subvolume. Only a btrfs subvolume root has inode 256:
    /// look closer only then.
    fn directory_kind(&self, e: &Entry) -> ImageKind {
        if e.st.stx_ino != 256 {
            return ImageKind::Directory;
        }
        match self.root.open_in(&e.rel, OFlags::PATH) {
            Ok(fd) if is_btrfs_subvolume(&fd, &e.st) => ImageKind::Subvolume,
            _ => ImageKind::Directory,
        }
    }

    /// The version picked from `NAME.v/` (or `NAME.raw.v/`), `stem` being the name without
    /// `.v`.
    fn versioned(&self, fname: &str, stem: &str, e: &Entry) -> Option<Candidate> {
        let (base, raw) = match stem.strip_suffix(".raw") {
            Some(b) => (b, true),
            None => (stem, false),
        };
        let Ok(Some(p)) = pick_versioned(self.root, &e.rel, base, raw, self.rule) else {
            return None;
        };
        let as_found = join_rel(&e.rel, &p.entry);
        let picked_stem = p.entry.strip_suffix(".raw").unwrap_or(&p.entry).to_string();
        Some(Candidate {
            name: strip_suffix_once(base, self.class.info().name_suffix).to_string(),
            kind: if raw {
                ImageKind::Raw
            } else {
                ImageKind::Directory
            },
            resolved: e.resolved || p.resolved_rel != as_found,
            shown: format!("{fname}/{}", p.entry),
            rel: p.resolved_rel,
            identity: FileIdentity::from_statx(&p.st),
            st: p.st,
            picked_stem: Some(picked_stem),
        })
    }

    /// Add a candidate found in `sdir`: a new image, or one shadowed by an image of the same
    /// name found before.
    fn add(&mut self, sdir: &str, c: Candidate) {
        // Printed as found (search dir + entry), or, at 262, as resolved where a symlink
        // was on the way.
        let path = if c.resolved && self.compat.follows_search_symlinks_in_root() {
            self.root.display(&c.rel)
        } else {
            self.root.display(&join_rel(sdir, &c.shown))
        };
        if let Some(&i) = self.seen.get(c.name.as_str()) {
            self.out[i].shadows.push(path);
            return;
        }
        self.seen.insert(c.name.clone(), self.out.len());
        self.out.push(DiscoveredImage {
            time_usec: time_usec(&c.st, c.kind.is_tree()),
            name: c.name,
            kind: c.kind,
            path,
            rel: c.rel,
            shadows: Vec::new(),
            identity: c.identity,
            picked_stem: c.picked_stem,
        });
    }
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
    fn vpick_candidate_versions_follow_the_name_pattern() {
        let native = crate::arch::native();
        let other = crate::arch::ALL.iter().find(|a| **a != native).unwrap();
        assert_eq!(candidate_version("foo_1", "foo", false), Some("1"));
        assert_eq!(candidate_version("foo_1.2.raw", "foo", true), Some("1.2"));
        assert_eq!(candidate_version("foo_1.2", "foo", true), None);
        assert_eq!(candidate_version("foo_3+2-1", "foo", false), Some("3"));
        assert_eq!(candidate_version("foo_3+0", "foo", false), None);
        assert_eq!(
            candidate_version(&format!("foo_4_{native}"), "foo", false),
            Some("4")
        );
        assert_eq!(
            candidate_version(&format!("foo_4_{other}"), "foo", false),
            None
        );
        assert_eq!(candidate_version("foo_", "foo", false), None);
        assert_eq!(candidate_version("foobar_1", "foo", false), None);
        assert_eq!(candidate_version("bar_1", "foo", false), None);
    }

    /// A scratch directory below the temp dir, removed on drop.
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("sysext-discover-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn dir(&self, rel: &str) {
            std::fs::create_dir_all(self.0.join(rel)).unwrap();
        }
        fn root(&self) -> Root {
            Root::open(Some(self.0.to_str().unwrap())).unwrap()
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn found(root: &Root, class: ImageClass, initrd: bool, c: Compat) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = discover_at(root, class, initrd, c)
            .unwrap()
            .into_iter()
            .map(|i| {
                let dir = std::path::Path::new(&i.rel).parent().unwrap();
                (i.name, format!("/{}", dir.display()))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_initrd_scope_searches_dot_extra_after_the_usual_dirs() {
        let s = Scratch::new("initrd");
        for d in [
            "var/lib/extensions/dup",
            "var/lib/extensions/plain",
            ".extra/sysext/dup",
            ".extra/sysext/xtra",
            ".extra/sysext/both",
            ".extra/global_sysext/both",
            ".extra/global_sysext/glob",
            "var/lib/confexts/c",
            "usr/lib/confexts/ulib",
            ".extra/confext/cx",
            ".extra/global_confext/cg",
        ] {
            s.dir(d);
        }
        let root = s.root();
        let sx = |initrd, c| found(&root, ImageClass::Sysext, initrd, c);
        let cx = |initrd, c| found(&root, ImageClass::Confext, initrd, c);
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        // Outside the initrd scope, /.extra is never searched, at either level.
        for c in Compat::ALL {
            assert_eq!(
                sx(false, c),
                pairs(&[
                    ("dup", "/var/lib/extensions"),
                    ("plain", "/var/lib/extensions")
                ])
            );
            assert_eq!(
                cx(false, c),
                pairs(&[("c", "/var/lib/confexts"), ("ulib", "/usr/lib/confexts")])
            );
        }
        // In it, /.extra/sysext comes after /var/lib/extensions (which wins a name), and
        // /usr/lib/confexts is not searched; 257 knows no global dirs.
        assert_eq!(
            sx(true, Compat::V257),
            pairs(&[
                ("both", "/.extra/sysext"),
                ("dup", "/var/lib/extensions"),
                ("plain", "/var/lib/extensions"),
                ("xtra", "/.extra/sysext"),
            ])
        );
        assert_eq!(
            cx(true, Compat::V257),
            pairs(&[("c", "/var/lib/confexts"), ("cx", "/.extra/confext")])
        );
        // 262 (from 258) searches the global ones last: the per-UKI one wins a name.
        assert_eq!(
            sx(true, Compat::V262),
            pairs(&[
                ("both", "/.extra/sysext"),
                ("dup", "/var/lib/extensions"),
                ("glob", "/.extra/global_sysext"),
                ("plain", "/var/lib/extensions"),
                ("xtra", "/.extra/sysext"),
            ])
        );
        assert_eq!(
            cx(true, Compat::V262),
            pairs(&[
                ("c", "/var/lib/confexts"),
                ("cg", "/.extra/global_confext"),
                ("cx", "/.extra/confext"),
            ])
        );
        let both = discover_at(&root, ImageClass::Sysext, true, Compat::V262).unwrap();
        let both = both.iter().find(|i| i.name == "both").unwrap();
        assert_eq!(
            both.shadows,
            vec![root.display(".extra/global_sysext/both")]
        );
    }

    #[test]
    fn root_is_an_initrd_when_its_etc_initrd_release_exists() {
        let s = Scratch::new("release");
        s.dir("etc");
        assert!(!root_is_initrd(&s.root()));
        std::fs::write(s.0.join("etc/initrd-release"), "ID=x\n").unwrap();
        assert!(root_is_initrd(&s.root()));
        // A symlink is resolved inside the root: absolute to a file there counts,
        // dangling does not.
        std::fs::remove_file(s.0.join("etc/initrd-release")).unwrap();
        std::fs::write(s.0.join("etc/real"), "ID=x\n").unwrap();
        std::os::unix::fs::symlink("/etc/real", s.0.join("etc/initrd-release")).unwrap();
        assert!(root_is_initrd(&s.root()));
        std::fs::remove_file(s.0.join("etc/real")).unwrap();
        assert!(!root_is_initrd(&s.root()));
        // Any file type counts (systemd checks F_OK).
        std::fs::remove_file(s.0.join("etc/initrd-release")).unwrap();
        s.dir("etc/initrd-release");
        assert!(root_is_initrd(&s.root()));
    }

    #[test]
    fn image_names_are_valid_file_names_not_dots_or_paths() {
        for ok in ["foo", ".hidden", "a b", "foo@1", "x.y"] {
            assert!(image_name_is_valid(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".#tmp", "a/b", "a\u{1}b", &"x".repeat(256)] {
            assert!(!image_name_is_valid(bad), "{bad:?}");
        }
    }
}
