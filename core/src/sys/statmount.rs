//! `statmount(2)` (Linux 6.8; mount options since 6.10): what one mount's options are,
//! without reading and parsing the whole mount table.
#![allow(unsafe_code)]

use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, StatxFlags};
use std::io;

const SYS_STATMOUNT: libc::c_long = 457;
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
const STATMOUNT_FS_TYPE: u64 = 0x20;
const STATMOUNT_MNT_OPTS: u64 = 0x80;
/// `sizeof(struct statmount)`: the strings follow the fixed part.
const HEADER: usize = 512;
const OFF_SIZE: usize = 0;
const OFF_MNT_OPTS: usize = 4;
const OFF_MASK: usize = 8;
const OFF_FS_TYPE: usize = 36;

#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
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

/// File system type and file-system-specific options (as `show_options` prints them,
/// comma separated, escaped) of the mount with unique id `id`. `Ok(None)` when the kernel
/// cannot tell (no `statmount`, or no options in its answer): read mountinfo instead.
pub fn fs_type_and_options(id: u64) -> io::Result<Option<(String, String)>> {
    let mut len = 16 * 1024;
    loop {
        let mut buf = vec![0u8; len];
        let req = MntIdReq {
            size: std::mem::size_of::<MntIdReq>() as u32,
            spare: 0,
            mnt_id: id,
            param: STATMOUNT_FS_TYPE | STATMOUNT_MNT_OPTS,
        };
        // SAFETY: `req` is a valid mnt_id_req of the size it declares; the kernel writes at
        // most `buf.len()` bytes into `buf`.
        let r = unsafe {
            libc::syscall(
                SYS_STATMOUNT,
                &req as *const MntIdReq,
                buf.as_mut_ptr(),
                buf.len(),
                0u32,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EOVERFLOW) if len < 16 * 1024 * 1024 => {
                    len *= 4;
                    continue;
                }
                Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                    return Ok(None)
                }
                _ => return Err(e),
            }
        }
        let size = (u32_at(&buf, OFF_SIZE) as usize).min(buf.len());
        let mask = u64_at(&buf, OFF_MASK);
        if size < HEADER
            || mask & (STATMOUNT_FS_TYPE | STATMOUNT_MNT_OPTS)
                != (STATMOUNT_FS_TYPE | STATMOUNT_MNT_OPTS)
        {
            return Ok(None);
        }
        let (Some(fstype), Some(opts)) = (
            string_at(&buf, size, u32_at(&buf, OFF_FS_TYPE)),
            string_at(&buf, size, u32_at(&buf, OFF_MNT_OPTS)),
        ) else {
            return Ok(None);
        };
        return Ok(Some((fstype, opts)));
    }
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
        match fs_type_and_options(id).unwrap() {
            // /proc is procfs on every machine this runs on.
            Some((fstype, _)) => assert_eq!(fstype, "proc"),
            None => {}
        }
    }
}
