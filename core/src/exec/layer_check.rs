//! Checking that the kernel mounted as many lower layers as planned.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, KernelFeatures};
use crate::plan::HierarchyPlan;
use crate::state;
use rustix::fd::BorrowedFd;

/// How many lower layers a new overlay has: counted from `statmount(2)` where the kernel
/// has it, else its mount id, to look it up in mountinfo.
pub(super) enum LayerCount {
    Counted(usize),
    MountId(Option<u64>),
}

pub(super) fn layer_count(
    mnt: BorrowedFd<'_>,
    id: Option<u64>,
    layers: usize,
    kernel: Kernel,
) -> LayerCount {
    if !kernel.has(KernelFeatures::STATMOUNT) {
        return LayerCount::MountId(state::mount_id(mnt));
    }
    // Each layer shows as `lowerdir+=/proc/self/fd/N`, plus the other options.
    let expect = 32 * layers + 128;
    match id
        .or_else(|| crate::sys::statmount::unique_mount_id(mnt))
        .and_then(|u| {
            crate::sys::statmount::fs_type_and_options(u, expect)
                .ok()
                .flatten()
        }) {
        Some((fstype, opts)) if fstype == "overlay" => {
            LayerCount::Counted(crate::mountinfo::overlay_lower_count(&opts))
        }
        _ => LayerCount::MountId(state::mount_id(mnt)),
    }
}

/// Check that the kernel mounted as many lower layers as planned (one mountinfo read for
/// all overlays `statmount` could not count).
pub(super) fn verify_layers(new: &[(LayerCount, &HierarchyPlan)]) -> Result<()> {
    let check = |found: usize, h: &HierarchyPlan| {
        if found != 0 && found != h.lower.len() {
            return Err(Error::LayerCountMismatch {
                hierarchy: h.hierarchy.to_string(),
                expected: h.lower.len(),
                found,
            });
        }
        Ok(())
    };
    let mut rest = Vec::new();
    for (count, h) in new {
        match count {
            LayerCount::Counted(n) => check(*n, h)?,
            LayerCount::MountId(id) => rest.push((*id, *h)),
        }
    }
    if rest.is_empty() {
        return Ok(());
    }
    let Ok(mounts) = crate::mountinfo::read_self() else {
        return Ok(());
    };
    for (id, h) in rest {
        let Some(m) = id.and_then(|id| mounts.iter().find(|m| m.id == id)) else {
            continue;
        };
        check(m.overlay_lower_count(), h)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::ImageClass;
    use crate::hierarchy::Hierarchy;
    use crate::plan::Plan;
    use crate::plan::{DirInfo, ExtLayer, ExtensionInput, HierarchyInput, MutableDir, PlanInputs};

    fn one_hierarchy_plan() -> Plan {
        let host = DirInfo {
            path: "/R/usr".into(),
            rel: "usr".into(),
            mode: 0o755,
            dev: 1,
            ino: 10,
            empty: false,
            read_only: false,
            parent_dev: Some(1),
        };
        crate::plan::plan(&PlanInputs {
            class: ImageClass::Sysext,
            mode: crate::mutable::MutableMode::Disabled,
            noexec: None,
            compat: crate::level::Compat::V257,
            extensions: vec![ExtensionInput {
                name: "foo".into(),
                layers: vec![ExtLayer::Content("E/foo/usr".into())],
            }],
            hierarchies: vec![HierarchyInput {
                hierarchy: Hierarchy::new("/usr").unwrap(),
                path: "/R/usr".into(),
                host: Some(host),
                mutable_dir_path: "/R/var/lib/extensions.mutable/usr".into(),
                mutable_dir: MutableDir::Missing,
                mutable_dir_target: None,
            }],
        })
        .unwrap()
    }

    #[test]
    fn a_short_layer_stack_is_an_error() {
        let p = one_hierarchy_plan();
        let h = &p.hierarchies[0];
        let n = h.lower.len();
        assert_eq!(n, 3, "meta, foo, host");
        assert!(verify_layers(&[(LayerCount::Counted(n), h)]).is_ok());
        // 0: the kernel did not say; nothing to compare.
        assert!(verify_layers(&[(LayerCount::Counted(0), h)]).is_ok());
        match verify_layers(&[(LayerCount::Counted(n - 1), h)]) {
            Err(Error::LayerCountMismatch {
                hierarchy,
                expected,
                found,
            }) => assert_eq!((hierarchy.as_str(), expected, found), ("/usr", n, n - 1)),
            other => panic!("{other:?}"),
        }
    }
}
