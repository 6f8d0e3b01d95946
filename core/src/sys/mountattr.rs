//! `mount_setattr(2)`, which rustix does not wrap yet.
#![allow(unsafe_code)]

use linux_raw_sys::general::{
    __NR_mount_setattr, mount_attr, AT_EMPTY_PATH, AT_RECURSIVE, MOUNT_ATTR_SIZE_VER0, MS_PRIVATE,
};
use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::mount::MountAttrFlags;
use std::io;

const _: () = assert!(std::mem::size_of::<mount_attr>() == MOUNT_ATTR_SIZE_VER0 as usize);

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {attr_set, attr_clr})`:
/// change the flags of the mount (tree) that `fd` refers to, attached or detached.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: MountAttrFlags,
    clear: MountAttrFlags,
) -> io::Result<()> {
    setattr(fd, recursive, set, clear, 0)
}

/// Make the mount tree `fd` refers to (attached or detached) private, recursively: a copy
/// made with `OPEN_TREE_CLONE` of a shared mount is a peer of the original, so unmounting the
/// original (or a mount on one of its peers) would take the copy's sub-mounts with it
/// (umount propagation). A private copy keeps them; attached below a shared mount it becomes
/// shared again, in a peer group of its own.
pub fn make_private(fd: BorrowedFd<'_>) -> io::Result<()> {
    setattr(
        fd,
        true,
        MountAttrFlags::empty(),
        MountAttrFlags::empty(),
        u64::from(MS_PRIVATE),
    )
}

fn setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: MountAttrFlags,
    clear: MountAttrFlags,
    propagation: u64,
) -> io::Result<()> {
    let attr = mount_attr {
        attr_set: u64::from(set.bits()),
        attr_clr: u64::from(clear.bits()),
        propagation,
        userns_fd: 0,
    };
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` lives for the
    // duration of the call and its size is passed along.
    let r = unsafe {
        libc::syscall(
            __NR_mount_setattr as libc::c_long,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const mount_attr,
            std::mem::size_of::<mount_attr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
