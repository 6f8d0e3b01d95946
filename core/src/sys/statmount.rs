//! `statmount(2)` and `listmount(2)` (Linux 6.8; mount options since 6.10): what one mount's
//! options are, and which mounts sit on a mount, without reading and parsing the whole mount
//! table (which costs the kernel a formatted line per mount in the namespace).
#![allow(unsafe_code)]

use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, StatxFlags};
use std::io;

const SYS_STATMOUNT: libc::c_long = 457;
const SYS_LISTMOUNT: libc::c_long = 458;
/// `STATX_MNT_ID_UNIQUE` (Linux 6.8).
pub(crate) const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
const STATMOUNT_MNT_BASIC: u64 = 0x2;
const STATMOUNT_MNT_POINT: u64 = 0x10;
const STATMOUNT_FS_TYPE: u64 = 0x20;
const STATMOUNT_MNT_OPTS: u64 = 0x80;
const STATMOUNT_SB_SOURCE: u64 = 0x200;
/// `sizeof(struct statmount)`: the strings follow the fixed part.
const HEADER: usize = 512;
const OFF_SIZE: usize = 0;
const OFF_MNT_OPTS: usize = 4;
const OFF_MASK: usize = 8;
const OFF_FS_TYPE: usize = 36;
const OFF_MNT_PARENT_ID: usize = 48;
const OFF_MNT_ID_OLD: usize = 56;
const OFF_MNT_PARENT_ID_OLD: usize = 60;
const OFF_MNT_POINT: usize = 108;
const OFF_SB_SOURCE: usize = 124;

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
    let mut buf = vec![0u8; HEADER + 64];
    matches!(statmount(id, STATMOUNT_MNT_BASIC, &mut buf), Ok(Some(_)))
}

#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

/// Element types the kernel may fill with any bits.
trait Plain: Copy {}
impl Plain for u8 {}
impl Plain for u64 {}

/// `statmount(req, out, len, 0)` or `listmount(req, out, len, 0)`: both take a mnt_id_req
/// and fill `out` (bytes for statmount, mount ids for listmount), `len` counting its elements.
fn mnt_id_call<T: Plain>(nr: libc::c_long, mnt_id: u64, param: u64, out: &mut [T]) -> libc::c_long {
    let req = MntIdReq {
        size: std::mem::size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id,
        param,
    };
    // SAFETY: `req` is a valid mnt_id_req of the size it declares; the kernel writes at most
    // `out.len()` elements of `T` (bytes for statmount, u64 ids for listmount) into `out`.
    unsafe {
        libc::syscall(
            nr,
            &req as *const MntIdReq,
            out.as_mut_ptr(),
            out.len(),
            0u32,
        )
    }
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

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn string_at(b: &[u8], size: usize, off: u32) -> Option<String> {
    let start = HEADER.checked_add(off as usize)?;
    let tail = b.get(start..size)?;
    let end = tail.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&tail[..end]).into_owned())
}

/// One `statmount` call for mount `id` asking for `mask`, into `buf` (grown when the answer
/// does not fit). `Ok(None)` when the kernel lacks the call or does not answer all of `mask`;
/// else the answer's size.
fn statmount(id: u64, mask: u64, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    loop {
        let r = mnt_id_call(SYS_STATMOUNT, id, mask, buf);
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EOVERFLOW) if buf.len() < 16 * 1024 * 1024 => {
                    buf.resize(buf.len() * 4, 0);
                    continue;
                }
                Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                    return Ok(None)
                }
                _ => return Err(e),
            }
        }
        let size = (u32_at(buf, OFF_SIZE) as usize).min(buf.len());
        if size < HEADER || u64_at(buf, OFF_MASK) & mask != mask {
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
        let r = mnt_id_call(SYS_LISTMOUNT, parent, last, &mut chunk);
        if r < 0 {
            return None;
        }
        let n = r as usize;
        ids.extend_from_slice(&chunk[..n]);
        if n < chunk.len() {
            break;
        }
        last = chunk[n - 1];
    }
    if ids.is_empty() {
        return Some(Vec::new());
    }
    // Room for a mount point of a few hundred bytes; grown (EOVERFLOW) for longer ones.
    let mut buf = vec![0u8; HEADER + 512];
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        // listmount lists the whole subtree: keep the direct children (asking for the
        // mount point, which costs the kernel a path walk, only for them).
        match statmount(id, STATMOUNT_MNT_BASIC, &mut buf) {
            Ok(Some(_)) if u64_at(&buf, OFF_MNT_PARENT_ID) != parent => continue,
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(_) => return None,
        }
        match statmount(id, STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT, &mut buf) {
            Ok(Some(size)) => {
                let point = string_at(&buf, size, u32_at(&buf, OFF_MNT_POINT))?;
                out.push((u32_at(&buf, OFF_MNT_ID_OLD) as u64, point));
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
    let mut buf = vec![0u8; HEADER + 1024];
    let mask = STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT | STATMOUNT_FS_TYPE | STATMOUNT_SB_SOURCE;
    let Some(size) = statmount(id, mask, &mut buf)? else {
        return Ok(None);
    };
    let s = |off| string_at(&buf, size, u32_at(&buf, off));
    let (Some(mount_point), Some(fstype), Some(source)) =
        (s(OFF_MNT_POINT), s(OFF_FS_TYPE), s(OFF_SB_SOURCE))
    else {
        return Ok(None);
    };
    Ok(Some(MountBrief {
        id,
        parent: u64_at(&buf, OFF_MNT_PARENT_ID),
        parent_old: u32_at(&buf, OFF_MNT_PARENT_ID_OLD) as u64,
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
    fs_type_and_options_in(id, vec![0u8; HEADER + 64 + expect.min(1 << 20)])
}

fn fs_type_and_options_in(id: u64, mut buf: Vec<u8>) -> io::Result<Option<(String, String)>> {
    let Some(size) = statmount(id, STATMOUNT_FS_TYPE | STATMOUNT_MNT_OPTS, &mut buf)? else {
        return Ok(None);
    };
    Ok(
        match (
            string_at(&buf, size, u32_at(&buf, OFF_FS_TYPE)),
            string_at(&buf, size, u32_at(&buf, OFF_MNT_OPTS)),
        ) {
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
        let Some(big) = fs_type_and_options_in(id, vec![0u8; HEADER + 4096]).unwrap() else {
            return;
        };
        // Too short even for the file system type: EOVERFLOW, grown, asked again.
        let small = fs_type_and_options_in(id, vec![0u8; HEADER + 2]).unwrap();
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
