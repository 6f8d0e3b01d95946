//! `statmount(2)` and `listmount(2)` (Linux 6.8; mount options since 6.10): what one mount's
//! options are, and which mounts sit on a mount, without reading and parsing the whole mount
//! table (which costs the kernel a formatted line per mount in the namespace).
#![allow(unsafe_code)]

use linux_raw_sys::general::{
    __NR_listmount, __NR_statmount, mnt_id_req, statmount as Statmount, MNT_ID_REQ_SIZE_VER0,
    STATMOUNT_FS_TYPE, STATMOUNT_MNT_BASIC, STATMOUNT_MNT_OPTS, STATMOUNT_MNT_POINT,
    STATMOUNT_SB_SOURCE,
};
use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, StatxFlags};
use std::io;

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8).
pub(crate) const STATX_MNT_ID_UNIQUE: u32 = linux_raw_sys::general::STATX_MNT_ID_UNIQUE;
/// `sizeof(struct statmount)`: the strings (`str[]`) follow the fixed part.
const HEADER: usize = std::mem::size_of::<Statmount>();
const _: () = assert!(HEADER == 512);
const _: () = assert!(std::mem::offset_of!(Statmount, str_) == HEADER);
// An [`Answer`]'s u64s are aligned for the struct.
const _: () = assert!(std::mem::align_of::<Statmount>() <= std::mem::align_of::<u64>());

/// Whether the kernel answers `statmount(2)` (asked about the mount of `/`). Callers ask
/// [`crate::kernel::Kernel`], which asks this once per process.
pub fn available() -> bool {
    let Ok(root) = rustix::fs::open(
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let Some(id) = unique_mount_id(std::os::fd::AsFd::as_fd(&root)) else {
        return false;
    };
    let mut buf = Answer::new(HEADER + 64);
    matches!(statmount(id, STATMOUNT_MNT_BASIC, &mut buf), Ok(Some(_)))
}

/// The buffer `statmount` fills: a `struct statmount` and its strings. Kept as u64s, so that
/// its start is aligned for the struct; `len` bytes of it (at least [`HEADER`]) are offered
/// to the kernel.
struct Answer {
    words: Vec<u64>,
    len: usize,
}

impl Answer {
    fn new(len: usize) -> Answer {
        let len = len.max(HEADER);
        Answer {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    fn grow(&mut self) {
        self.len = self.len.saturating_mul(4);
        self.words.resize(self.len.div_ceil(8), 0);
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the words hold at least `len` bytes, and every byte of a u64 is a valid u8.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn header(&self) -> &Statmount {
        // SAFETY: the words hold at least `HEADER` bytes, the size of the struct (`new`),
        // aligned for it (checked above); its fields are integers, valid with any bits.
        unsafe { &*self.words.as_ptr().cast::<Statmount>() }
    }
}

/// A `struct mnt_id_req` of the first version (Linux 6.8; `mnt_ns_id`, added in 6.11, is not
/// part of what the kernel reads): the same request for every kernel.
fn request(mnt_id: u64, param: u64) -> mnt_id_req {
    mnt_id_req {
        size: MNT_ID_REQ_SIZE_VER0,
        spare: 0,
        mnt_id,
        param,
        mnt_ns_id: 0,
    }
}

/// `syscall(nr, req, out, len, 0)`: statmount or listmount, which both take a mnt_id_req and
/// fill `out` (bytes for statmount, mount ids for listmount), `len` counting its elements.
///
/// # Safety
///
/// `out` must be valid for writes of `len` elements of what `nr` writes.
unsafe fn mnt_id_call(nr: u32, req: &mnt_id_req, out: *mut u64, len: usize) -> io::Result<usize> {
    // SAFETY: `req` is a valid mnt_id_req of at least the size it declares; `out` is the
    // caller's to vouch for.
    let r = unsafe { libc::syscall(nr as libc::c_long, req as *const mnt_id_req, out, len, 0u32) };
    // Negative: failed, with errno set.
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// `statmount(mnt_id, mask)` into `buf`, as many bytes as it offers.
fn statmount_call(id: u64, mask: u32, buf: &mut Answer) -> io::Result<()> {
    let req = request(id, u64::from(mask));
    // SAFETY: the words hold at least `len` bytes.
    unsafe { mnt_id_call(__NR_statmount, &req, buf.words.as_mut_ptr(), buf.len) }.map(drop)
}

/// `listmount(mnt_id, last)` into `out`: how many ids it wrote.
fn listmount_call(id: u64, last: u64, out: &mut [u64]) -> io::Result<usize> {
    let req = request(id, last);
    // SAFETY: `out` holds `out.len()` ids.
    unsafe { mnt_id_call(__NR_listmount, &req, out.as_mut_ptr(), out.len()) }
}

/// The unique (never reused) 64-bit id of the mount `fd` is on (Linux 6.8+).
pub fn unique_mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    let st = rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE),
    )
    .ok()?;
    (st.stx_mask & STATX_MNT_ID_UNIQUE != 0).then_some(st.stx_mnt_id)
}

impl Answer {
    /// The NUL-terminated string at offset `off` of `str[]`, within the answer's `size`.
    fn string(&self, size: usize, off: u32) -> Option<String> {
        let start = HEADER.checked_add(off as usize)?;
        let tail = self.bytes().get(start..size)?;
        let end = tail.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    }
}

/// One `statmount` call for mount `id` asking for `mask`, into `buf` (grown when the answer
/// does not fit). `Ok(None)` when the kernel lacks the call or does not answer all of `mask`;
/// else the answer's size.
fn statmount(id: u64, mask: u32, buf: &mut Answer) -> io::Result<Option<usize>> {
    loop {
        if let Err(e) = statmount_call(id, mask, buf) {
            match e.raw_os_error() {
                Some(libc::EOVERFLOW) if buf.len < 16 * 1024 * 1024 => {
                    buf.grow();
                    continue;
                }
                Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                    return Ok(None)
                }
                _ => return Err(e),
            }
        }
        let h = buf.header();
        let size = (h.size as usize).min(buf.len);
        if size < HEADER || h.mask & u64::from(mask) != u64::from(mask) {
            return Ok(None);
        }
        return Ok(Some(size));
    }
}

/// The mounts sitting directly on the mount `fd` is on: (mount id as mountinfo shows it,
/// mount point relative to our root), from `listmount` (which lists the whole subtree) and
/// one `statmount` per mount in it.
/// `None` when the kernel cannot tell (before 6.8): read mountinfo instead. A child that
/// goes away meanwhile is left out. `id`: the unique id of `fd`'s mount, when known.
pub fn child_mounts(fd: BorrowedFd<'_>, id: Option<u64>) -> Option<Vec<(u64, String)>> {
    let parent = id.or_else(|| unique_mount_id(fd))?;
    let mut ids: Vec<u64> = Vec::new();
    let mut chunk = [0u64; 64];
    let mut last = 0u64;
    loop {
        let n = listmount_call(parent, last, &mut chunk).ok()?;
        let got = chunk.get(..n)?;
        ids.extend_from_slice(got);
        // A full chunk: there may be more, after its last id.
        match got.last() {
            Some(&l) if n == chunk.len() => last = l,
            _ => break,
        }
    }
    if ids.is_empty() {
        return Some(Vec::new());
    }
    // Room for a mount point of a few hundred bytes; grown (EOVERFLOW) for longer ones.
    let mut buf = Answer::new(HEADER + 512);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        // listmount lists the whole subtree: keep the direct children (asking for the
        // mount point, which costs the kernel a path walk, only for them).
        match statmount(id, STATMOUNT_MNT_BASIC, &mut buf) {
            Ok(Some(_)) if buf.header().mnt_parent_id != parent => continue,
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(_) => return None,
        }
        match statmount(id, STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT, &mut buf) {
            Ok(Some(size)) => {
                let h = buf.header();
                let point = buf.string(size, h.mnt_point)?;
                out.push((u64::from(h.mnt_id_old), point));
            }
            Ok(None) => return None,
            // Unmounted since listmount: not a child any more.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(_) => return None,
        }
    }
    Some(out)
}

/// What `statmount` tells of one mount: where it sits and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountBrief {
    /// Unique id.
    pub id: u64,
    /// Unique id of the mount it sits on.
    pub parent: u64,
    /// Parent's id as mountinfo shows it.
    pub parent_old: u64,
    /// Mount point relative to our root.
    pub mount_point: String,
    /// File system type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
}

/// [`MountBrief`] of the mount with unique id `id`. `Ok(None)` when the kernel cannot tell
/// (before 6.11, which added the source): read mountinfo instead.
pub fn brief(id: u64) -> io::Result<Option<MountBrief>> {
    let mut buf = Answer::new(HEADER + 1024);
    let mask = STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT | STATMOUNT_FS_TYPE | STATMOUNT_SB_SOURCE;
    let Some(size) = statmount(id, mask, &mut buf)? else {
        return Ok(None);
    };
    let h = buf.header();
    let s = |off| buf.string(size, off);
    let (Some(mount_point), Some(fstype), Some(source)) =
        (s(h.mnt_point), s(h.fs_type), s(h.sb_source))
    else {
        return Ok(None);
    };
    Ok(Some(MountBrief {
        id,
        parent: h.mnt_parent_id,
        parent_old: u64::from(h.mnt_parent_id_old),
        mount_point,
        fstype,
        source,
    }))
}

/// File system type and file-system-specific options (as `show_options` prints them,
/// comma separated, escaped) of the mount with unique id `id`. `Ok(None)` when the kernel
/// cannot tell (no `statmount`, or no options in its answer): read mountinfo instead.
/// `expect`: about how long the options are (the buffer grows when they do not fit).
pub fn fs_type_and_options(id: u64, expect: usize) -> io::Result<Option<(String, String)>> {
    fs_type_and_options_in(id, Answer::new(HEADER + 64 + expect.min(1 << 20)))
}

fn fs_type_and_options_in(id: u64, mut buf: Answer) -> io::Result<Option<(String, String)>> {
    let Some(size) = statmount(id, STATMOUNT_FS_TYPE | STATMOUNT_MNT_OPTS, &mut buf)? else {
        return Ok(None);
    };
    let h = buf.header();
    Ok(
        match (buf.string(size, h.fs_type), buf.string(size, h.mnt_opts)) {
            (Some(fstype), Some(opts)) => Some((fstype, opts)),
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsFd;

    #[test]
    fn root_mount_type_matches_mountinfo() {
        let f = std::fs::File::open("/proc").unwrap();
        let Some(id) = unique_mount_id(f.as_fd()) else {
            return;
        };
        // /proc is procfs on every machine this runs on.
        if let Some((fstype, _)) = fs_type_and_options(id, 0).unwrap() {
            assert_eq!(fstype, "proc");
        }
    }

    #[test]
    fn a_short_buffer_grows() {
        let f = std::fs::File::open("/").unwrap();
        let Some(id) = unique_mount_id(f.as_fd()) else {
            return;
        };
        let Some(big) = fs_type_and_options_in(id, Answer::new(HEADER + 4096)).unwrap() else {
            return;
        };
        // Too short even for the file system type: EOVERFLOW, grown, asked again.
        let small = fs_type_and_options_in(id, Answer::new(HEADER + 2)).unwrap();
        assert_eq!(small, Some(big.clone()));
        // The options are those mountinfo shows after the superblock's own flags.
        let old = crate::state::mount_id(f.as_fd()).unwrap();
        let mi = crate::mountinfo::read_self().unwrap();
        let m = mi.iter().find(|m| m.id == old).unwrap();
        assert_eq!(big.0, m.fstype);
        assert!(m.super_options.ends_with(&big.1), "{m:?} {big:?}");
    }

    #[test]
    fn brief_matches_mountinfo() {
        let f = std::fs::File::open("/proc").unwrap();
        let Some(id) = unique_mount_id(f.as_fd()) else {
            return;
        };
        let Some(b) = brief(id).unwrap() else {
            return;
        };
        let old = crate::state::mount_id(f.as_fd()).unwrap();
        let mi = crate::mountinfo::read_self().unwrap();
        let m = mi.iter().find(|m| m.id == old).unwrap();
        assert_eq!(
            (
                b.mount_point.as_str(),
                b.fstype.as_str(),
                b.source.as_str(),
                b.parent_old
            ),
            (
                m.mount_point.as_str(),
                m.fstype.as_str(),
                m.source.as_str(),
                m.parent
            )
        );
    }

    #[test]
    fn children_of_root_match_mountinfo() {
        let f = std::fs::File::open("/").unwrap();
        let Some(mut kids) = child_mounts(f.as_fd(), None) else {
            return;
        };
        let me = crate::state::mount_id(f.as_fd()).unwrap();
        let mut want: Vec<(u64, String)> = crate::mountinfo::read_self()
            .unwrap()
            .into_iter()
            .filter(|m| m.parent == me && m.id != me)
            .map(|m| (m.id, m.mount_point))
            .collect();
        kids.sort();
        want.sort();
        assert_eq!(kids, want);
    }
}
