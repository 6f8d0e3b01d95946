//! File system detection by superblock magic.
//!
//! Only the magic numbers are looked at, nothing else is validated: this answers "what
//! would the kernel be asked to mount", the kernel does the real checking. A region that
//! is too small to hold the magic of a file system is never reported as that file system
//! (a 1 KiB stub of an erofs image is not erofs).

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;

/// The file system types an extension image may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsType {
    /// EROFS.
    Erofs,
    /// SquashFS.
    Squashfs,
    /// ext4 (also ext2 and ext3 superblocks).
    Ext4,
    /// Btrfs.
    Btrfs,
}

impl FsType {
    /// The kernel's name of the file system type (the `fstype` argument of `mount(2)`).
    pub fn kernel_name(self) -> &'static str {
        match self {
            FsType::Erofs => "erofs",
            FsType::Squashfs => "squashfs",
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
        }
    }

    /// Whether the file system can only be mounted read-only.
    pub fn is_read_only(self) -> bool {
        matches!(self, FsType::Erofs | FsType::Squashfs)
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kernel_name())
    }
}

/// erofs: little-endian `0xE0F5E1E2` at byte 1024.
const EROFS_MAGIC_OFFSET: u64 = 1024;
const EROFS_MAGIC: [u8; 4] = 0xE0F5_E1E2u32.to_le_bytes();
/// squashfs: `hsqs` at byte 0.
const SQUASHFS_MAGIC: [u8; 4] = *b"hsqs";
/// ext2/3/4: little-endian `0xEF53` at byte 56 of the superblock, which starts at 1024.
const EXT_MAGIC_OFFSET: u64 = 1024 + 56;
const EXT_MAGIC: [u8; 2] = 0xEF53u16.to_le_bytes();
/// btrfs: `_BHRfS_M` at byte 64 of the superblock, which starts at 64 KiB.
const BTRFS_MAGIC_OFFSET: u64 = 65536 + 64;
const BTRFS_MAGIC: [u8; 8] = *b"_BHRfS_M";

/// Reads `N` bytes at `pos` of the region `[offset, offset + size)`. `None` when the
/// region (or the underlying file) ends before `pos + N`.
fn read_magic<const N: usize>(
    reader: &impl FileExt,
    offset: u64,
    size: u64,
    pos: u64,
) -> io::Result<Option<[u8; N]>> {
    if !matches!(pos.checked_add(N as u64), Some(end) if end <= size) {
        return Ok(None);
    }
    let Some(abs) = offset.checked_add(pos) else {
        return Ok(None);
    };
    let mut buf = [0u8; N];
    match reader.read_exact_at(&mut buf, abs) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Detects the file system in the region `[offset, offset + size)` of `reader` by its
/// superblock magic. `Ok(None)`: none of the supported file systems.
pub fn detect(reader: &impl FileExt, offset: u64, size: u64) -> io::Result<Option<FsType>> {
    if read_magic::<4>(reader, offset, size, 0)? == Some(SQUASHFS_MAGIC) {
        return Ok(Some(FsType::Squashfs));
    }
    if read_magic::<4>(reader, offset, size, EROFS_MAGIC_OFFSET)? == Some(EROFS_MAGIC) {
        return Ok(Some(FsType::Erofs));
    }
    if read_magic::<2>(reader, offset, size, EXT_MAGIC_OFFSET)? == Some(EXT_MAGIC) {
        return Ok(Some(FsType::Ext4));
    }
    if read_magic::<8>(reader, offset, size, BTRFS_MAGIC_OFFSET)? == Some(BTRFS_MAGIC) {
        return Ok(Some(FsType::Btrfs));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::Mem;

    #[test]
    fn only_erofs_and_squashfs_are_read_only() {
        assert!(FsType::Erofs.is_read_only() && FsType::Squashfs.is_read_only());
        assert!(!FsType::Ext4.is_read_only() && !FsType::Btrfs.is_read_only());
    }

    /// A reader whose every read fails with EIO.
    struct Failing;
    impl std::os::unix::fs::FileExt for Failing {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
        fn write_at(&self, _: &[u8], _: u64) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
    }

    #[test]
    fn a_read_error_is_not_a_short_image() {
        // Past the end of the file: no magic there. A failing read: the error.
        assert_eq!(read_magic::<4>(&Mem(vec![0; 8]), 0, 64, 6).unwrap(), None);
        let e = read_magic::<4>(&Failing, 0, 64, 6).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
    }

    fn image(len: usize, at: usize, magic: &[u8]) -> Mem {
        let mut v = vec![0u8; len];
        v[at..at + magic.len()].copy_from_slice(magic);
        Mem(v)
    }

    #[test]
    fn detects_each_type() {
        let cases: [(usize, &[u8], FsType); 4] = [
            (0, b"hsqs", FsType::Squashfs),
            (1024, &EROFS_MAGIC, FsType::Erofs),
            (1080, &EXT_MAGIC, FsType::Ext4),
            (65600, b"_BHRfS_M", FsType::Btrfs),
        ];
        for (at, magic, want) in cases {
            let m = image(70000, at, magic);
            assert_eq!(detect(&m, 0, 70000).unwrap(), Some(want), "{want}");
        }
    }

    #[test]
    fn display_is_kernel_name() {
        assert_eq!(FsType::Erofs.to_string(), "erofs");
        assert_eq!(FsType::Squashfs.to_string(), "squashfs");
        assert_eq!(FsType::Ext4.to_string(), "ext4");
        assert_eq!(FsType::Btrfs.to_string(), "btrfs");
    }

    #[test]
    fn erofs_magic_bytes_on_disk() {
        // The on-disk byte sequence of the little-endian magic.
        assert_eq!(EROFS_MAGIC, [0xE2, 0xE1, 0xF5, 0xE0]);
        assert_eq!(EXT_MAGIC, [0x53, 0xEF]);
    }

    #[test]
    fn respects_offset_and_size() {
        // erofs magic at 4096 + 1024: found only with the right offset.
        let m = image(8192, 4096 + 1024, &EROFS_MAGIC);
        assert_eq!(detect(&m, 0, 8192).unwrap(), None);
        assert_eq!(detect(&m, 4096, 4096).unwrap(), Some(FsType::Erofs));
        // The region is too small to hold the magic: not recognised.
        assert_eq!(detect(&m, 4096, 1026).unwrap(), None);
        assert_eq!(detect(&m, 4096, 1028).unwrap(), Some(FsType::Erofs));
    }

    #[test]
    fn short_file_and_stub() {
        // A 1 KiB stub cut off an erofs image has no magic.
        let m = image(1024, 0, b"");
        assert_eq!(detect(&m, 0, 1024).unwrap(), None);
        // Size larger than the file: reads past the end are "not found", not errors.
        assert_eq!(detect(&m, 0, 1 << 20).unwrap(), None);
        assert_eq!(detect(&m, u64::MAX - 2, u64::MAX).unwrap(), None);
        let empty = Mem(Vec::new());
        assert_eq!(detect(&empty, 0, 0).unwrap(), None);
    }

    #[test]
    fn garbage_is_nothing() {
        let m = Mem((0..100_000u32).map(|i| (i * 7 + 3) as u8).collect());
        assert_eq!(detect(&m, 0, 100_000).unwrap(), None);
    }

    #[test]
    fn a_luks_volume_is_no_file_system() {
        let m = image(4096, 0, b"LUKS\xba\xbe\0\x02");
        assert_eq!(detect(&m, 0, 4096).unwrap(), None);
    }
}
