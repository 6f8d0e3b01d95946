//! The detached tmpfs workspace that holds meta layers and ephemeral upper dirs.

use super::fault::FaultInjector;
use crate::error::{Error, Result};
use crate::fscontext::FsContext;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::Mode;
use rustix::mount::MountAttrFlags;

/// A detached tmpfs used as workspace (meta layers, ephemeral upper dirs). It is never
/// attached anywhere (the meta bind of writable merges is a bind of the overlay), so it
/// needs no source name.
pub fn workspace(faults: &FaultInjector) -> Result<OwnedFd> {
    let what = "workspace tmpfs";
    faults
        .step("fsopen tmpfs")
        .map_err(|e| Error::mount("create", what, e))?;
    let fs = FsContext::open("tmpfs").map_err(|e| Error::mount("create", what, e))?;
    fs.set_string("mode", "0700")
        .map_err(|e| Error::mount("configure", what, e))?;
    fs.create().map_err(|e| Error::mount("create", what, e))?;
    fs.mount(MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID)
        .map_err(|e| Error::mount("mount", what, e))
}

pub(super) fn mkdirat_ws(ws: BorrowedFd<'_>, rel: &str, mode: u32) -> Result<()> {
    match rustix::fs::mkdirat(ws, rel, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::io(
            "create directory",
            format!("<workspace>/{rel}"),
            e,
        )),
    }
}
