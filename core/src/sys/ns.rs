//! Calls around mount namespaces and kernel probing that rustix offers only as `unsafe`
//! or not at all.
#![allow(unsafe_code)]

use std::io;

/// `unshare(CLONE_NEWNS | CLONE_FS)` for the calling thread only: it gets a private copy of
/// the mount table and its own working directory and root, while the file descriptor table
/// stays shared with the other threads of the process (so fds opened here or there are
/// valid everywhere). Meant for a short-lived thread of our own.
pub fn unshare_mount_ns_for_thread() -> io::Result<()> {
    // SAFETY: `CLONE_FILES` is not among the flags, so no thread ever sees a file
    // descriptor table other than the process's one; what is unshared (mount namespace,
    // cwd, root, umask) belongs to the calling thread alone, which the caller owns.
    unsafe {
        rustix::thread::unshare_unsafe(
            rustix::thread::UnshareFlags::NEWNS | rustix::thread::UnshareFlags::FS,
        )
    }
    .map_err(io::Error::from)
}

const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x0000_0004;
const MOVE_MOUNT_BENEATH: u32 = 0x0000_0200;

/// Whether `move_mount(2)` knows `MOVE_MOUNT_BENEATH` (Linux 6.5): the kernel checks the
/// flags before it looks at the (invalid) fd and empty path, so an unknown flag answers
/// EINVAL and a known one something else (EBADF or ENOENT, by kernel version). Nothing is
/// moved.
pub fn move_mount_knows_beneath() -> bool {
    // SAFETY: both paths are valid NUL-terminated strings; the fds are invalid on purpose,
    // so the call can do nothing but fail.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            -1i32,
            c"".as_ptr(),
            -1i32,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_BENEATH,
        )
    };
    r < 0
        && !matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL) | Some(libc::ENOSYS)
        )
}

#[cfg(test)]
mod tests {
    use crate::sys::kernel_release as release;

    #[test]
    fn the_beneath_probe_matches_the_kernel_version() {
        // Without CAP_SYS_ADMIN move_mount fails with EPERM before it looks at the flags.
        if !rustix::process::geteuid().is_root() {
            return;
        }
        // Distribution kernels may carry the flag back to older versions: only a kernel of
        // 6.5 or newer is sure to know it.
        if release() >= (6, 5) {
            assert!(super::move_mount_knows_beneath(), "{:?}", release());
        }
    }
}
