//! `mount_setattr(2)`, which rustix does not wrap yet.
#![allow(unsafe_code)]

use rustix::fd::{AsRawFd, BorrowedFd};
use std::io;

/// `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// `MOUNT_ATTR_NOEXEC`.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
const AT_EMPTY_PATH: u32 = 0x1000;
const AT_RECURSIVE: u32 = 0x8000;

/// `MS_PRIVATE`, as `mount_attr.propagation` takes it.
const MS_PRIVATE: u64 = 1 << 18;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {attr_set, attr_clr})`:
/// change the flags of the mount (tree) that `fd` refers to, attached or detached.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    setattr(fd, recursive, set, clear, 0)
}

/// Make the mount tree `fd` refers to (attached or detached) private, recursively: a copy
/// made with `OPEN_TREE_CLONE` of a shared mount is a peer of the original, so unmounting the
/// original (or a mount on one of its peers) would take the copy's sub-mounts with it
/// (umount propagation). A private copy keeps them; attached below a shared mount it becomes
/// shared again, in a peer group of its own.
pub fn make_private(fd: BorrowedFd<'_>) -> io::Result<()> {
    setattr(fd, true, 0, 0, MS_PRIVATE)
}

fn setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation,
        userns_fd: 0,
    };
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` lives for the
    // duration of the call and its size is passed along.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
