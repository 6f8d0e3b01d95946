//! The overlayfs mount options after the layers, and naming the one the kernel refuses.

use crate::error::{Error, Result};
use crate::fscontext::FsContext;

/// Hand the overlayfs options after the layers to an overlay's fs context. A refused one is
/// named in the error, with the kernel's log (`overlay: Unknown parameter 'x'`).
pub(crate) fn set_fs_options(
    fs: &FsContext,
    options: &[crate::overlayopts::FsOption],
    target: &str,
) -> Result<()> {
    for o in options {
        fs.set_option(o)
            .map_err(|e| option_error(o, target, e, fs.kernel_log()))?;
    }
    Ok(())
}

pub(crate) fn option_error(
    o: &crate::overlayopts::FsOption,
    target: &str,
    e: rustix::io::Errno,
    kernel_log: Vec<String>,
) -> Error {
    Error::Mount {
        op: "set overlayfs mount option",
        target: format!(
            "'{}' for the overlay on {target}",
            crate::overlayopts::OverlayOptions::render(o)
        ),
        source: e.into(),
        kernel_log,
    }
}

/// After `mount(2)` refused an overlay (the legacy path keeps no fs context log): find the
/// option the kernel refuses by trying each in an fs context of its own, for the error.
/// `None` when each is accepted alone (or the kernel parses overlayfs options only when the
/// file system is created, as before Linux 6.5).
pub(crate) fn refused_fs_option(
    options: &[crate::overlayopts::FsOption],
    target: &str,
) -> Option<Error> {
    for o in options {
        let fs = FsContext::open("overlay").ok()?;
        if let Err(e) = fs.set_option(o) {
            return Some(option_error(o, target, e, fs.kernel_log()));
        }
    }
    None
}
