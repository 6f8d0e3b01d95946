//! Building one overlay through the staging thread (kernels before 6.15).

use super::build::BuildInputs;
use super::layers::{layer_fd, LayerFd, LayerSources};
use super::staged;
use super::staged::{Src, Stager};
use super::submounts::{carry_submounts, MountTable};
use crate::error::{Error, Result};
use crate::kernel::KernelFeatures;
use crate::plan::HierarchyPlan;
use crate::state;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::mount::MountAttrFlags;
use std::io::{self};

/// What a staged build of one overlay takes besides the plan.
pub(super) struct StagedInputs<'x> {
    pub(super) inputs: &'x BuildInputs<'x>,
    /// The workspace tmpfs (meta layers, ephemeral upper dirs).
    pub(super) ws: BorrowedFd<'x>,
    /// This hierarchy's meta layer.
    pub(super) meta: BorrowedFd<'x>,
    /// Upper and work dir.
    pub(super) upper: Option<(&'x OwnedFd, &'x OwnedFd)>,
    pub(super) attrs: MountAttrFlags,
    pub(super) short: &'static str,
    pub(super) dot: &'static str,
    pub(super) mounts: &'x MountTable,
    /// Detached mounts handed to the staging thread so far in this build.
    pub(super) passed: &'x std::cell::RefCell<std::collections::HashSet<u64>>,
    /// The private clone of the ephemeral tmpfs holding the upper and work dirs.
    pub(super) eph: Option<BorrowedFd<'x>>,
}

/// Build one overlay through the staging thread (kernels before 6.15): returns the detached
/// copy to attach, and the originals of the sub-mounts carried into it.
pub(super) fn build_staged<'a>(
    stager: &Stager,
    h: &'a HierarchyPlan,
    s: StagedInputs<'_>,
    sources: &mut LayerSources<'a>,
    write_meta: &dyn Fn(&rustix::fs::Statx) -> Result<()>,
) -> Result<(OwnedFd, Vec<OwnedFd>)> {
    let inputs = s.inputs;
    let faults = inputs.faults;
    let target = h.target.as_str();
    faults
        .step("fsopen overlay")
        .map_err(|e| Error::mount("mount overlay on", target, e))?;
    let mut fds = Vec::with_capacity(h.lower.len());
    for l in &h.lower {
        fds.push(layer_fd(l, h, s.meta, inputs, sources)?);
        faults
            .step("fsconfig lowerdir+")
            .map_err(|e| Error::mount("mount overlay on", target, e))?;
    }
    let mut roots = detached_roots(s.ws, inputs, sources, h);
    if let Some(e) = s.eph {
        if let Some(id) = state::mount_id(e) {
            roots.push((id, id, e));
        }
    }
    let mut passed = s.passed.borrow_mut();
    let lower = fds
        .into_iter()
        .map(|fd| to_src(fd, &roots, &mut passed))
        .collect::<Result<Vec<_>>>()?;
    let upper = match s.upper {
        Some((u, w)) => Some((
            to_src(LayerFd::Borrowed(u.as_fd()), &roots, &mut passed)?,
            to_src(LayerFd::Borrowed(w.as_fd()), &roots, &mut passed)?,
        )),
        None => None,
    };
    drop(passed);
    let options = h.fs_options.clone();
    faults
        .step("fsconfig create")
        .map_err(|e| Error::mount("mount overlay on", target, e))?;
    let st = stager.create(staged::Spec {
        index: h.index,
        source: s.short.to_string(),
        lower,
        upper,
        options,
        attrs: s.attrs,
        append: inputs.kernel.has(KernelFeatures::LOWERDIR_APPEND),
        target: target.to_string(),
    })?;
    write_meta(&st)?;
    faults
        .step("fsmount overlay")
        .map_err(|e| Error::mount("mount overlay on", target, e))?;
    let finish = |submounts| staged::Finish {
        index: h.index,
        meta_bind: h.writable().then(|| s.dot.to_string()),
        submounts,
        target: target.to_string(),
    };
    let mut copy = None;
    let hidden = carry_submounts(inputs.root, h, s.dot, s.mounts, inputs, &mut |clones| {
        let (mnt, carried) = stager.finish(finish(clones))?;
        copy = Some(mnt);
        Ok(carried)
    })?;
    let mnt = match copy {
        Some(m) => m,
        None => stager.finish(finish(Vec::new()))?.0,
    };
    Ok((mnt, hidden))
}

/// The detached mounts a layer of this build can lie on, by mount id: the workspace, image
/// files, clones of directory trees, and the clone that reaches the host hierarchy below a
/// merge of ours.
fn detached_roots<'x>(
    ws: BorrowedFd<'x>,
    inputs: &'x BuildInputs<'_>,
    sources: &'x LayerSources<'_>,
    h: &HierarchyPlan,
) -> Vec<(u64, u64, BorrowedFd<'x>)> {
    let mut v = vec![ws];
    v.extend(
        inputs
            .trees
            .iter()
            .filter(|t| t.is_mount)
            .map(|t| t.fd.as_fd()),
    );
    v.extend(sources.clones.values().map(|c| c.as_fd()));
    if let Ok(Some(hh)) = &inputs.probed.hierarchies[h.index].host {
        if let Some(k) = &hh.keep {
            v.push(k.as_fd());
        }
    }
    let mut out = Vec::new();
    for fd in v {
        let Some(id) = state::mount_id(fd) else {
            continue;
        };
        out.push((id, id, fd));
        // An image tree composed of partitions has the usr partition mounted inside.
        if let Ok(usr) = crate::root::open_beneath(fd, "usr", OFlags::PATH | OFlags::DIRECTORY) {
            if let Some(inner) = state::mount_id(usr.as_fd()).filter(|&i| i != id) {
                out.push((inner, id, fd));
            }
        }
    }
    out
}

/// Where the staging thread finds a layer: on one of our detached mounts (`passed`: those
/// handed to the staging thread already in this build), or on a mount attached in our
/// namespace.
fn to_src(
    fd: LayerFd<'_>,
    roots: &[(u64, u64, BorrowedFd<'_>)],
    passed: &mut std::collections::HashSet<u64>,
) -> Result<Src> {
    let no_id = || Error::io("stat", "a layer", io::Error::other("no mount id"));
    // A clone is a detached mount of its own, whose root is the layer.
    if let LayerFd::Kept(own) = fd {
        let id = state::mount_id(own.as_fd()).ok_or_else(no_id)?;
        passed.insert(id);
        return Ok(Src::Below {
            id,
            mount: Some(own),
            dir: None,
        });
    }
    let id = state::mount_id(fd.as_fd());
    let Some(&(_, id, root)) = roots.iter().find(|(m, _, _)| Some(*m) == id) else {
        return staged::attached(fd.as_fd());
    };
    let dir = match fd {
        LayerFd::Passed(own) => own,
        other => other
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", "a layer", e))?,
    };
    let mount = if passed.insert(id) {
        Some(
            root.try_clone_to_owned()
                .map_err(|e| Error::io("dup", "a layer", e))?,
        )
    } else {
        None
    };
    Ok(Src::Below {
        id,
        mount,
        dir: Some(dir),
    })
}
