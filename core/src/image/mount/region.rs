//! Putting one file system region of an image on a detached, read-only mount: straight
//! from the file (erofs on 6.12+) or through an auto-clearing loop device.

use super::Opener;
use crate::fscontext::FsContext;
use crate::image::error::{ImageError, ImagePart};
use crate::image::superblock::FsType;
use crate::sys::loopdev::{LoopDevice, LoopOptions};
use rustix::fd::{AsFd, OwnedFd};
use rustix::mount::MountAttrFlags;
use std::fs::File;

/// A region of an image file: offset and size in bytes (size 0: to the end of the file).
pub(super) type Span = (u64, u64);

impl Opener<'_> {
    /// Mount the file system `fstype` from `source` (a device path, or a file's fd path).
    pub(super) fn mount_fs(
        &self,
        fstype: FsType,
        source: &str,
        part: &ImagePart,
    ) -> Result<OwnedFd, ImageError> {
        let io = |op, e: rustix::io::Errno| ImageError::io(part.clone(), op, e);
        (self.step)("fsopen image")
            .map_err(|e| ImageError::io(part.clone(), "open a file system context", e))?;
        let fs = FsContext::open(fstype.kernel_name())
            .map_err(|e| io("open a file system context", e))?;
        fs.set_string("source", source)
            .map_err(|e| io("set the source of the file system context", e))?;
        if fstype == FsType::Ext4 {
            // Never replay a journal on a read-only image.
            let _ = fs.set_flag("norecovery");
        }
        fs.set_flag("ro")
            .map_err(|e| io("make the file system context read-only", e))?;
        fs.create().map_err(|e| ImageError::Mount {
            part: part.clone(),
            fstype,
            source: e.into(),
            // The kernel's messages about the failure, drained from the context's log.
            kernel_log: crate::image::error::kernel_log_lines(
                fs.kernel_log().join("\n").as_bytes(),
            ),
        })?;
        let mut attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV;
        if self.class.info().nosuid {
            attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
        }
        fs.mount(attrs).map_err(|e| io("mount the file system", e))
    }

    /// Mount a file system that lies at `span` of `file`. `whole_regular`: the region is a
    /// whole regular file, which erofs can be mounted from directly.
    pub(super) fn mount_region(
        &self,
        file: &File,
        span: Span,
        fstype: FsType,
        whole_regular: bool,
        part: &ImagePart,
    ) -> Result<OwnedFd, ImageError> {
        if fstype == FsType::Erofs && whole_regular {
            // File-backed erofs (Linux 6.12+): no loop device at all. The path is opened by
            // the kernel; use our fd's /proc link so the lookup cannot be redirected.
            match self.mount_fs(fstype, &crate::root::proc_fd_path(file.as_fd()), part) {
                Ok(m) => return Ok(m),
                // Kernels without file-backed erofs refuse the file as source: use a loop
                // device.
                Err(ImageError::Mount { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(libc::ENOTBLK | libc::EINVAL | libc::EOPNOTSUPP | libc::ENODEV)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        let opts = LoopOptions {
            read_only: true,
            autoclear: true,
            direct_io: true,
            partscan: false,
            block_size: 0,
        };
        let attach_err = |e| ImageError::io(part.clone(), "attach a loop device for", e);
        (self.step)("loop attach").map_err(attach_err)?;
        let dev = LoopDevice::attach(file, span.0, span.1, &opts).map_err(attach_err)?;
        let devpath = dev.path().to_string_lossy().into_owned();
        match self.mount_fs(fstype, &devpath, part) {
            // With autoclear, the device goes away when the file system is unmounted.
            Ok(m) => {
                drop(dev.into_owned_fd());
                Ok(m)
            }
            Err(e) => {
                let _ = dev.detach();
                Err(e)
            }
        }
    }
}

/// Refuse a squashfs whose superblock claims more bytes than the region holds (systemd
/// fails such images as a whole; the kernel would mount them and fail reads later).
pub(super) fn check_complete(
    file: &File,
    span: Span,
    fstype: FsType,
    part: &ImagePart,
) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    if fstype != FsType::Squashfs {
        return Ok(());
    }
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, span.0 + 40)
        .map_err(|e| ImageError::io(part.clone(), "read", e))?;
    let used = u64::from_le_bytes(b);
    let avail = available(file, span);
    if used > avail {
        return Err(ImageError::Truncated {
            part: part.clone(),
            fstype,
            claimed: used,
            available: avail,
        });
    }
    Ok(())
}

/// The bytes a region holds: its size, or for size 0 the rest of the file.
pub(super) fn available(file: &File, span: Span) -> u64 {
    if span.1 == 0 {
        file.metadata()
            .map(|m| m.len())
            .unwrap_or(0)
            .saturating_sub(span.0)
    } else {
        span.1
    }
}
