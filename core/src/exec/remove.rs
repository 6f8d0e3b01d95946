//! Removing directory trees without following symlinks or crossing mounts.

use crate::root::Root;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::io::{self};

/// Remove a directory tree below the root without following symlinks or crossing mounts.
pub fn remove_tree(root: &Root, rel: &str) -> io::Result<()> {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (parent, base) = match rel.rsplit_once('/') {
        Some((p, b)) => (p, b),
        None => ("", rel),
    };
    let pfd = root.open_in(parent, OFlags::PATH | OFlags::DIRECTORY)?;
    remove_dir_tree_at(pfd.as_fd(), base)
}

/// Remove the directory `name` in `parent` with everything in it, without following
/// symlinks or crossing mounts; a missing one is fine.
pub(super) fn remove_dir_tree_at(parent: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let dfd = match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let dev = rustix::fs::fstat(&dfd)?.st_dev;
    clear_dir(dfd.as_fd(), dev, 0)?;
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

fn clear_dir(dfd: BorrowedFd<'_>, dev: u64, depth: usize) -> io::Result<()> {
    if depth > 256 {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let mut names = Vec::new();
    {
        let fd = crate::root::reopen_dir(dfd)?;
        for e in rustix::fs::Dir::read_from(&fd)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(e.file_name().to_owned());
            }
        }
    }
    for n in names {
        let st = rustix::fs::statat(dfd, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
            if st.st_dev != dev {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            let sub = rustix::fs::openat(
                dfd,
                n.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            clear_dir(sub.as_fd(), dev, depth + 1)?;
            rustix::fs::unlinkat(dfd, n.as_c_str(), AtFlags::REMOVEDIR)?;
        } else {
            rustix::fs::unlinkat(dfd, n.as_c_str(), AtFlags::empty())?;
        }
    }
    Ok(())
}

pub(super) fn rmdir(root: &Root, rel: &str) -> io::Result<()> {
    let (parent, base) = match rel.rsplit_once('/') {
        Some((p, b)) => (p, b),
        None => ("", rel),
    };
    let pfd = root.open_in(parent, OFlags::PATH | OFlags::DIRECTORY)?;
    Ok(rustix::fs::unlinkat(&pfd, base, AtFlags::REMOVEDIR)?)
}
