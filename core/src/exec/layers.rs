//! The lower layers of an overlay: read-only clones of image trees, opened as fds.

use super::build::BuildInputs;
use super::fault::FaultInjector;
use crate::error::{Error, Result};
use crate::plan::{HierarchyPlan, Layer};
use crate::probe::ImageTree;
use crate::root::open_beneath;
use crate::state;
use crate::sys::mountattr::mount_setattr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::mount::{MountAttrFlags, OpenTreeFlags};
use std::collections::HashMap;
use std::io::{self};

/// A private, read-only, non-recursive bind of a directory image.
pub fn clone_tree(tree: &ImageTree, faults: &FaultInjector) -> Result<OwnedFd> {
    clone_read_only(tree, "", OpenTreeFlags::AT_EMPTY_PATH, faults)
}

/// A private, read-only, non-recursive bind of `rel` in a directory image (`how`: how `rel`
/// is looked up).
fn clone_read_only(
    tree: &ImageTree,
    rel: &str,
    how: OpenTreeFlags,
    faults: &FaultInjector,
) -> Result<OwnedFd> {
    faults
        .step("open_tree image")
        .map_err(|e| Error::mount("bind", &tree.path, e))?;
    let fd = rustix::mount::open_tree(
        &tree.fd,
        rel,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | how,
    )
    .map_err(|e| Error::mount("bind", &tree.path, e))?;
    mount_setattr(
        fd.as_fd(),
        true,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
        MountAttrFlags::empty(),
    )
    .map_err(|e| Error::mount("make read-only", &tree.path, e))?;
    Ok(fd)
}

/// A private read-only clone of the directory `rel` of a directory tree, which probing found
/// to be a plain entry of the tree: a single component, opened without following anything
/// (should it have become a symlink since, the clone is of the link and the overlay refuses
/// it).
fn clone_plain_dir(tree: &ImageTree, rel: &str, faults: &FaultInjector) -> Result<OwnedFd> {
    clone_read_only(tree, rel, OpenTreeFlags::AT_SYMLINK_NOFOLLOW, faults)
}

/// The image trees of a build by name (with their index in [`BuildInputs::trees`]), and the
/// clones of whole directory trees made so far.
pub(super) struct LayerSources<'a> {
    pub(super) trees: HashMap<&'a str, (usize, &'a ImageTree)>,
    pub(super) clones: HashMap<&'a str, OwnedFd>,
}

/// The fd of one lower layer.
pub(super) enum LayerFd<'x> {
    /// Ours, closed once the overlay's context holds the path.
    Passed(OwnedFd),
    /// A clone: closing it would dissolve the mount, so it stays open until the overlay is
    /// created.
    Kept(OwnedFd),
    /// Held elsewhere (the meta dir, the host or routing dir found by probing).
    Borrowed(BorrowedFd<'x>),
}

impl LayerFd<'_> {
    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            LayerFd::Passed(fd) | LayerFd::Kept(fd) => fd.as_fd(),
            LayerFd::Borrowed(fd) => *fd,
        }
    }
}

/// The fd of one lower layer; `meta` is the meta layer's directory.
pub(super) fn layer_fd<'a, 'x>(
    layer: &'a Layer,
    h: &HierarchyPlan,
    meta: BorrowedFd<'x>,
    inputs: &'x BuildInputs<'_>,
    sources: &mut LayerSources<'a>,
) -> Result<LayerFd<'x>> {
    let hp = &inputs.probed.hierarchies[h.index];
    let fd = match layer {
        Layer::Meta => return Ok(LayerFd::Borrowed(meta)),
        Layer::Import(p) => {
            let fd = hp
                .mutable_dir
                .as_ref()
                .ok_or_else(|| Error::io("open", p, io::Error::from_raw_os_error(libc::ENOENT)))?;
            return Ok(LayerFd::Borrowed(fd.as_fd()));
        }
        Layer::Extension { name, path } => {
            let &(i, tree) = sources.trees.get(name.as_str()).ok_or_else(|| {
                Error::io("open", path, io::Error::from_raw_os_error(libc::ENOENT))
            })?;
            let rel = h.hierarchy.relative();
            let plain = inputs.probed.plain.get(i).and_then(|p| p.get(h.index)) == Some(&true);
            if !tree.is_mount && plain {
                return Ok(LayerFd::Kept(clone_plain_dir(tree, rel, inputs.faults)?));
            }
            // Image files are private read-only mounts already; other directory trees are
            // cloned whole (once) and the hierarchy is looked up inside the clone.
            let root = if tree.is_mount {
                tree.fd.as_fd()
            } else {
                if !sources.clones.contains_key(name.as_str()) {
                    sources
                        .clones
                        .insert(name.as_str(), clone_tree(tree, inputs.faults)?);
                }
                sources.clones[name.as_str()].as_fd()
            };
            let fd = open_beneath(root, rel, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| Error::io("open", path, e))?;
            // A DDI's usr partition is a mount inside the image's detached tree; overlayfs
            // takes a detached mount as a layer only at the root of its tree (EINVAL
            // otherwise), so that mount gets a detached tree of its own.
            // (The staging thread of older kernels reaches that mount on its own.)
            if tree.is_mount
                && !inputs.kernel.staged_layers()
                && state::mount_id(fd.as_fd()) != state::mount_id(tree.fd.as_fd())
            {
                inputs
                    .faults
                    .step("open_tree image")
                    .map_err(|e| Error::mount("bind", &tree.path, e))?;
                let clone = rustix::mount::open_tree(
                    &fd,
                    "",
                    OpenTreeFlags::OPEN_TREE_CLONE
                        | OpenTreeFlags::OPEN_TREE_CLOEXEC
                        | OpenTreeFlags::AT_EMPTY_PATH,
                )
                .map_err(|e| Error::mount("bind", &tree.path, e))?;
                return Ok(LayerFd::Kept(clone));
            }
            fd
        }
        Layer::Host(p) => match &hp.host {
            Ok(Some(hh)) => return Ok(LayerFd::Borrowed(hh.fd.as_fd())),
            _ => {
                return Err(Error::io(
                    "open",
                    p,
                    io::Error::from_raw_os_error(libc::ENOENT),
                ))
            }
        },
    };
    Ok(LayerFd::Passed(fd))
}
