//! An in-memory, read-only image for the targets that read through `FileExt` (shared by
//! `gpt` and `verity_superblock`; core's own test copy is crate-private).

use std::io;
use std::os::unix::fs::FileExt;

pub struct Mem<'a>(pub &'a [u8]);

impl FileExt for Mem<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(off) = usize::try_from(offset) else {
            return Ok(0);
        };
        if off >= self.0.len() {
            return Ok(0);
        }
        let n = buf.len().min(self.0.len() - off);
        buf[..n].copy_from_slice(&self.0[off..off + n]);
        Ok(n)
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<usize> {
        Err(io::Error::other("read-only image"))
    }
}
