//! Reading small files.

use rustix::fd::OwnedFd;
use std::io::{self, Read};

/// Read a small file fully (helper for callers reading images' files).
pub fn read_to_string(fd: OwnedFd) -> io::Result<String> {
    // Straight into a buffer with room for a small file: `File::read_to_string` would first
    // ask for the size (statx) and position (lseek).
    let mut s = String::with_capacity(1024);
    std::fs::File::from(fd)
        .take(u64::MAX)
        .read_to_string(&mut s)?;
    Ok(s)
}
