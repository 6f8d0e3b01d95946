//! One file system context of the new mount API: `fsopen` → `fsconfig` → `fsmount`.
//!
//! `FsContext` owns the `fsopen` fd. Its steps return the kernel's errno as is, so each
//! caller keeps its own error text; `FsContext::kernel_log` drains the messages the kernel
//! left in the context (`e overlay: Unknown parameter 'x'`) for the error of a failed step.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Result;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

/// An `fsopen` fd: a file system being configured, not yet created or mounted.
#[derive(Debug)]
pub(crate) struct FsContext(OwnedFd);

impl FsContext {
    /// `fsopen(fstype, FSOPEN_CLOEXEC)`.
    pub(crate) fn open(fstype: &str) -> Result<FsContext> {
        rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map(FsContext)
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    pub(crate) fn set_string(&self, key: &str, value: &str) -> Result<()> {
        rustix::mount::fsconfig_set_string(&self.0, key, value)
    }

    /// `fsconfig(FSCONFIG_SET_FLAG, key)`.
    pub(crate) fn set_flag(&self, key: &str) -> Result<()> {
        rustix::mount::fsconfig_set_flag(&self.0, key)
    }

    /// One overlayfs mount option: a flag, or a key with its value.
    pub(crate) fn set_option(&self, o: &crate::overlayopts::FsOption) -> Result<()> {
        match &o.1 {
            Some(v) => self.set_string(o.0.as_str(), v.as_str()),
            None => self.set_flag(o.0.as_str()),
        }
    }

    /// `fsconfig(FSCONFIG_CMD_CREATE)`: the file system's superblock.
    pub(crate) fn create(&self) -> Result<()> {
        rustix::mount::fsconfig_create(&self.0)
    }

    /// `fsmount(FSMOUNT_CLOEXEC, attrs)`: a detached mount of the created file system.
    pub(crate) fn mount(&self, attrs: MountAttrFlags) -> Result<OwnedFd> {
        rustix::mount::fsmount(&self.0, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
    }

    /// The messages the kernel logged into this context since the last drain, oldest first,
    /// one per message with trailing white space removed and the level prefix (`e `, `w `,
    /// `i `) kept. Reading empties the log.
    pub(crate) fn kernel_log(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match rustix::io::read(&self.0, &mut buf) {
                Ok(n) if n > 0 => {
                    out.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
                }
                _ => break,
            }
        }
        out
    }
}

impl AsFd for FsContext {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A detached tmpfs whose root has `mode` (octal, as the `mode=` option takes it).
pub(crate) fn detached_tmpfs(mode: &str, attrs: MountAttrFlags) -> Result<OwnedFd> {
    let fs = FsContext::open("tmpfs")?;
    fs.set_string("mode", mode)?;
    fs.create()?;
    fs.mount(attrs)
}
