//! Is a hierarchy merged by us, and what is merged there (`status`).

use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::meta;
use crate::mutable::MutableMode;
use crate::plan::UpperKind;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, Statx, StatxFlags};

/// `STATX_ATTR_MOUNT_ROOT`.
const STATX_ATTR_MOUNT_ROOT: u64 = 0x2000;

/// `statx` of a directory: its mode, device and inode, whether it is the root of a mount,
/// and the id of its mount (the unique one where the kernel has it, see [`unique_mount_id`]).
pub fn dir_stat(fd: BorrowedFd<'_>) -> Option<Statx> {
    rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS
            | StatxFlags::MNT_ID
            | StatxFlags::from_bits_retain(crate::sys::statmount::STATX_MNT_ID_UNIQUE),
    )
    .ok()
}

pub(crate) fn is_mount_root(st: &Statx) -> bool {
    st.stx_attributes.bits() & STATX_ATTR_MOUNT_ROOT != 0
        && st.stx_attributes_mask.bits() & STATX_ATTR_MOUNT_ROOT != 0
}

/// The unique mount id in a [`dir_stat`], where the kernel gave it (6.8+).
pub fn unique_mount_id(st: &Statx) -> Option<u64> {
    (st.stx_mask & crate::sys::statmount::STATX_MNT_ID_UNIQUE != 0).then_some(st.stx_mnt_id)
}

/// Whether `fd` (a directory) is the root of a mount.
pub fn is_mount_point(fd: BorrowedFd<'_>) -> bool {
    dir_stat(fd).is_some_and(|st| is_mount_root(&st))
}

/// The mount ID of the mount `fd` is on.
pub fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .ok()
        .map(|st| st.stx_mnt_id)
}

/// A meta file (at most 1 MiB; a FIFO or device node planted there is refused, not read).
fn read_small(dir: BorrowedFd<'_>, rel: &str) -> std::io::Result<String> {
    let bytes = crate::smallfile::read_beneath(dir, rel, 1 << 20)?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EILSEQ))
}

/// [`merged_dev`] of the directory `fd`, looked at here.
pub fn merged_dev_at(
    fd: BorrowedFd<'_>,
    path: &str,
    class: ImageClass,
) -> Result<Option<(u32, u32)>> {
    merged_dev(fd, dir_stat(fd).as_ref(), path, class)
}

/// Whether the directory `fd` is a merge of `class` (ours or systemd's), with its
/// [`dir_stat`] at hand.
pub fn is_ours_stat(
    fd: BorrowedFd<'_>,
    st: Option<&Statx>,
    path: &str,
    class: ImageClass,
) -> Result<bool> {
    Ok(merged_dev(fd, st, path, class)?.is_some())
}

/// The device (major, minor) of the merge on the directory `fd` when it is a merge of
/// `class`: what its
/// `dev` file names, and its own device. `None` when it is not such a merge.
pub fn merged_dev(
    fd: BorrowedFd<'_>,
    st: Option<&Statx>,
    path: &str,
    class: ImageClass,
) -> Result<Option<(u32, u32)>> {
    let Some(st) = st.filter(|st| is_mount_root(st)) else {
        return Ok(None);
    };
    let dot = class.info().dot_dir;
    let text = match read_small(fd, &format!("{dot}/dev")) {
        Ok(t) => t,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::io("read", format!("{path}/{dot}/dev"), e)),
    };
    let Some((ma, mi)) = meta::decode_dev(&text) else {
        return Err(Error::MetaDev {
            dot_dir: dot,
            path: path.to_string(),
        });
    };
    Ok((st.stx_dev_major == ma && st.stx_dev_minor == mi).then_some((ma, mi)))
}

/// Read the meta dir of a merged hierarchy, whose `dev` file [`merged_dev`] read already.
pub fn read_meta(
    fd: BorrowedFd<'_>,
    path: &str,
    class: ImageClass,
    dev: (u32, u32),
) -> Result<meta::MetaDir> {
    let info = class.info();
    let ext = read_small(fd, &format!("{}/{}", info.dot_dir, info.list_file)).map_err(|e| {
        Error::io(
            "read",
            format!("{path}/{}/{}", info.dot_dir, info.list_file),
            e,
        )
    })?;
    let dev = Some(dev);
    let work_dir = read_work_dir(fd, class);
    let mut m = meta::MetaDir {
        extensions: meta::decode_extensions(&ext),
        dev,
        work_dir,
    };
    if m.extensions.is_empty() {
        m.extensions = Vec::new();
    }
    Ok(m)
}

/// The work dir a merged hierarchy's meta dir names (`work_dir`, writable merges only).
pub fn read_work_dir(fd: BorrowedFd<'_>, class: ImageClass) -> Option<String> {
    read_small(fd, &format!("{}/work_dir", class.info().dot_dir))
        .ok()
        .and_then(|t| meta::decode_work_dir(&t))
}

/// Extra facts libsysext records about its own merges (`<dot_dir>/libsysext`): the mode in
/// effect, where writes go, and a fingerprint of the inputs (to skip no-op refreshes).
/// Merges made by systemd lack the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Note {
    /// The mutable mode of the merge.
    pub mutable: MutableMode,
    /// Where writes go.
    pub upper: UpperKind,
    /// The mutable directory, for [`UpperKind::MutableDir`] (display path).
    pub upper_dir: Option<String>,
    /// Fingerprint of the merge inputs.
    pub fingerprint: Option<u64>,
    /// Directory holding the ephemeral upper and work dirs (ephemeral modes).
    pub ephemeral: Option<String>,
}

impl Note {
    /// Encode as the file's text.
    pub fn encode(&self) -> String {
        // On disk: the directory, or the kind's name (`none`, `host`, `ephemeral`).
        // The directory C-escaped as `ephemeral=` is (a path may hold a line break).
        let upper = match (self.upper, &self.upper_dir) {
            (UpperKind::MutableDir, Some(dir)) => crate::meta::cescape(dir),
            (kind, _) => kind.as_str().to_string(),
        };
        let mut s = format!("mutable={}\nupper={upper}\n", self.mutable);
        if let Some(f) = self.fingerprint {
            s.push_str(&format!("fingerprint={f:016x}\n"));
        }
        if let Some(e) = &self.ephemeral {
            s.push_str(&format!("ephemeral={}\n", crate::meta::cescape(e)));
        }
        s
    }

    /// Decode the file's text.
    pub fn decode(text: &str) -> Option<Note> {
        let mut n = Note::default();
        let mut have_mode = false;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("mutable=") {
                // A mode this version does not know makes the note unusable.
                n.mutable = MutableMode::parse_systemd(v)?;
                have_mode = true;
            } else if let Some(v) = line.strip_prefix("upper=") {
                // Notes written before 0.2 call the hierarchy itself `base`.
                (n.upper, n.upper_dir) = match v {
                    "none" => (UpperKind::None, None),
                    "host" | "base" => (UpperKind::Host, None),
                    "ephemeral" => (UpperKind::Ephemeral, None),
                    // Escaped since 0.3; a note of an older version held the path as it
                    // is (taken as it is where it does not unescape). No path holds a NUL:
                    // such a note is unusable.
                    dir => (
                        UpperKind::MutableDir,
                        Some(match crate::meta::cunescape(dir) {
                            Some(d) => d,
                            None if !dir.contains('\0') => dir.to_string(),
                            None => return None,
                        }),
                    ),
                };
            } else if let Some(v) = line.strip_prefix("fingerprint=") {
                n.fingerprint = u64::from_str_radix(v, 16).ok();
            } else if let Some(v) = line.strip_prefix("ephemeral=") {
                n.ephemeral = crate::meta::cunescape(v).filter(|p| p.starts_with(EPHEMERAL_DIR));
            }
        }
        have_mode.then_some(n)
    }
}

/// Read libsysext's note of a merged hierarchy.
pub fn read_note(fd: BorrowedFd<'_>, class: ImageClass) -> Option<Note> {
    Note::decode(
        &read_small(
            fd.as_fd(),
            &format!("{}/{}", class.info().dot_dir, MODE_NOTE),
        )
        .ok()?,
    )
}

/// Where the upper and work dirs of ephemeral merges live (on `/run`, a tmpfs), so that a
/// selective merge or unmerge can keep the ephemeral upper layer.
pub const EPHEMERAL_DIR: &str = "/run/libsysext/ephemeral";

/// File name of libsysext's note in the meta dir.
pub const MODE_NOTE: &str = "libsysext";

/// What `status` reports for one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyStatus {
    /// The hierarchy as configured.
    pub hierarchy: String,
    /// Merged extensions (`None` when not merged).
    pub extensions: Option<Vec<String>>,
    /// Modification time of the merged hierarchy, µs since the epoch.
    pub since_usec: Option<u64>,
    /// Mutable mode in effect, when known (merges made by systemd do not record it).
    pub mutable: Option<MutableMode>,
    /// Where writes go, when known (merges made by systemd do not record it).
    pub upper: Option<UpperKind>,
    /// The mutable directory writes go to, for [`UpperKind::MutableDir`] (root prefix
    /// included).
    pub upper_dir: Option<String>,
    /// The verb (`merge`, `refresh`, `unmerge`) of an operation on this root that was
    /// interrupted (its process killed) and is not repaired yet; the next merge, refresh
    /// or unmerge completes or undoes it first. The same on every hierarchy.
    pub interrupted: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_upper_dir_round_trips_with_line_breaks() {
        for dir in [
            "/r/var/lib/extensions.mutable/usr",
            "/a\nb/usr",
            "/x\r",
            "/t\\x41",
        ] {
            let n = Note {
                mutable: MutableMode::Enabled,
                upper: UpperKind::MutableDir,
                upper_dir: Some(dir.to_string()),
                fingerprint: Some(7),
                ephemeral: None,
            };
            let text = n.encode();
            assert_eq!(text.lines().count(), 3, "{text:?}");
            assert_eq!(Note::decode(&text), Some(n), "{dir:?}");
        }
        // A note of an older version: the path as it is.
        let old = Note::decode("mutable=yes\nupper=/r/var/lib/extensions.mutable/usr\n").unwrap();
        assert_eq!(
            old.upper_dir.as_deref(),
            Some("/r/var/lib/extensions.mutable/usr")
        );
        // No path holds a NUL.
        assert_eq!(Note::decode("mutable=yes\nupper=/a\0b\n"), None);
        // An older note's path that does not unescape (a backslash before a letter no escape
        // has) is taken as it is.
        let old = Note::decode("mutable=yes\nupper=/old\\q/usr\n").unwrap();
        assert_eq!(old.upper_dir.as_deref(), Some("/old\\q/usr"));
    }

    fn open_dir(path: &std::path::Path) -> rustix::fd::OwnedFd {
        rustix::fs::open(
            path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    }

    /// A real `statx` with its mount-root attribute and mask set as asked.
    fn stat_with(attr: bool, mask: bool) -> Statx {
        let dir = tempfile::tempdir().unwrap();
        let mut st = dir_stat(open_dir(dir.path()).as_fd()).unwrap();
        let bit = |on| {
            rustix::fs::StatxAttributes::from_bits_retain(if on {
                STATX_ATTR_MOUNT_ROOT
            } else {
                0
            })
        };
        st.stx_attributes = bit(attr);
        st.stx_attributes_mask = bit(mask);
        st
    }

    #[test]
    fn a_mount_root_is_one_the_kernel_says_it_knows_and_is() {
        assert!(is_mount_root(&stat_with(true, true)));
        // Set but not known (the mask lacks it), known and not set, neither.
        assert!(!is_mount_root(&stat_with(true, false)));
        assert!(!is_mount_root(&stat_with(false, true)));
        assert!(!is_mount_root(&stat_with(false, false)));
        // Other attribute bits do not make a mount root.
        let mut st = stat_with(false, true);
        st.stx_attributes = rustix::fs::StatxAttributes::from_bits_retain(!STATX_ATTR_MOUNT_ROOT);
        assert!(!is_mount_root(&st));
        // On the machine: /proc is a mount, a directory made in a temporary one is not.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert!(!is_mount_point(open_dir(&dir.path().join("d")).as_fd()));
        assert!(is_mount_point(
            open_dir(std::path::Path::new("/proc")).as_fd()
        ));
    }

    #[test]
    fn the_unique_mount_id_is_there_only_when_the_kernel_says_so() {
        let mut st = stat_with(false, false);
        st.stx_mnt_id = 0x8000_1234;
        st.stx_mask |= crate::sys::statmount::STATX_MNT_ID_UNIQUE;
        assert_eq!(unique_mount_id(&st), Some(0x8000_1234));
        st.stx_mask &= !crate::sys::statmount::STATX_MNT_ID_UNIQUE;
        assert_eq!(unique_mount_id(&st), None);
        // dir_stat asks for it, and kernels from 6.8 give it (the unique ids start at 2^31).
        let (major, minor) = crate::sys::kernel_release();
        if (major, minor) >= (6, 8) {
            let dir = tempfile::tempdir().unwrap();
            let st = dir_stat(open_dir(dir.path()).as_fd()).unwrap();
            let id = unique_mount_id(&st).expect("a unique mount id from 6.8");
            assert!(id >= 1 << 31, "{id:#x}");
        }
    }

    #[test]
    fn a_merge_is_where_the_dev_file_names_the_mount_s_own_device() {
        let dir = tempfile::tempdir().unwrap();
        let class = ImageClass::Sysext;
        let dot = dir.path().join(class.info().dot_dir);
        let fd = open_dir(dir.path());
        let mut st = stat_with(true, true);
        st.stx_dev_major = 0;
        st.stx_dev_minor = 77;
        let dev = |st: &Statx| merged_dev(fd.as_fd(), Some(st), "/x/usr", class);
        // No meta dir: not a merge.
        assert_eq!(dev(&st).unwrap(), None);
        // A dev file that cannot be read is an error, not "not merged".
        std::fs::create_dir_all(dot.join("dev")).unwrap();
        assert!(dev(&st).is_err());
        std::fs::remove_dir(dot.join("dev")).unwrap();
        std::fs::write(dot.join("dev"), "0:77\n").unwrap();
        assert_eq!(dev(&st).unwrap(), Some((0, 77)));
        // The same major and another minor, or the same minor and another major: not ours.
        st.stx_dev_minor = 78;
        assert_eq!(dev(&st).unwrap(), None);
        st.stx_dev_minor = 77;
        st.stx_dev_major = 1;
        assert_eq!(dev(&st).unwrap(), None);
        // Not a mount root: not a merge, whatever the file says.
        st.stx_dev_major = 0;
        assert_eq!(dev(&stat_with(true, false)).unwrap(), None);
        assert_eq!(dev(&st).unwrap(), Some((0, 77)));
        // A dev file that does not parse.
        std::fs::write(dot.join("dev"), "zero\n").unwrap();
        assert!(dev(&st).is_err());
    }
}
