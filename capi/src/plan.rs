//! `sysext_plan` and `sysext_hierarchy_plan`: what a merge would do (`plan`).

use crate::boundary::{cstring, nth_ptr, opt_ptr};
use crate::handle::{self, Castable, OwnershipBox, OwnershipRef};
use crate::options::sysext_mutable_mode;
use crate::report::SkippedData;
use std::ffi::CString;
use std::os::raw::c_char;
use sysext::plan::{HierarchyPlan, Layer, Upper, WorkDir};

/// What a lower layer of a planned overlay is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_layer_kind {
    /// The synthetic top layer carrying the `.systemd-sysext`/`.systemd-confext` meta directory.
    Meta = 0,
    /// The mutable directory, imported read-only (modes `import`, `ephemeral-import`).
    Import = 1,
    /// An extension's copy of the hierarchy.
    Extension = 2,
    /// The host's hierarchy (the bottom layer).
    Host = 3,
}

/// Where writes to a planned overlay go.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_upper_kind {
    /// Nowhere: the overlay is read-only.
    None = 0,
    /// The hierarchy's mutable directory, `/var/lib/extensions.mutable/<hierarchy>` (or
    /// the directory its symlink points to).
    MutableDir = 1,
    /// The mutable directory, which the merge creates first (mode `yes`).
    MutableDirCreated = 2,
    /// The host hierarchy itself: the mutable directory is a symlink to it, so writes land
    /// in the host's files (e.g. `var/lib/extensions.mutable/usr -> /usr`).
    Host = 3,
    /// A private tmpfs whose contents vanish on unmerge.
    Ephemeral = 4,
}

impl sysext_upper_kind {
    pub(crate) fn from_core(k: sysext::UpperKind) -> Self {
        match k {
            sysext::UpperKind::MutableDir => sysext_upper_kind::MutableDir,
            sysext::UpperKind::Host => sysext_upper_kind::Host,
            sysext::UpperKind::Ephemeral => sysext_upper_kind::Ephemeral,
            // `None`, and kinds added later that C does not know yet.
            _ => sysext_upper_kind::None,
        }
    }
}

/// The name of an upper kind (`"none"`, `"mutable-dir"`, `"mutable-dir-created"`,
/// `"host"`, `"ephemeral"`; Rust's and Python's words), or NULL if `kind` is not a
/// `SYSEXT_UPPER_KIND_*` value. The string is static.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn sysext_upper_kind_to_string(kind: std::os::raw::c_int) -> *const c_char {
    ffi_boundary!(default => std::ptr::null(), {
        match kind {
            0 => c"none".as_ptr(),
            1 => c"mutable-dir".as_ptr(),
            2 => c"mutable-dir-created".as_ptr(),
            3 => c"host".as_ptr(),
            4 => c"ephemeral".as_ptr(),
            _ => std::ptr::null(),
        }
    })
}

/// A dry run of a merge from `sysext_context_plan()`: the overlays that would be built,
/// the extensions that would be merged and those that would be skipped, with the reason.
/// Nothing is mounted and no privilege is needed.
///
/// Freed by `sysext_plan_free()`, which also invalidates its hierarchies.
///
/// Thread safety: immutable; its getters may be called from several threads at once.
#[derive(Debug)]
pub struct sysext_plan {
    _private: [u8; 0],
}

/// The overlay planned for one hierarchy; it belongs to its `sysext_plan`.
#[derive(Debug)]
pub struct sysext_hierarchy_plan {
    _private: [u8; 0],
}

#[derive(Debug)]
pub(crate) struct PlanData {
    mode: sysext_mutable_mode,
    extensions: Vec<CString>,
    using: Vec<CString>,
    skipped: Vec<SkippedData>,
    hierarchies: Vec<HierarchyPlanData>,
}

#[derive(Debug)]
pub(crate) struct LayerData {
    text: CString,
    kind: sysext_layer_kind,
    path: Option<CString>,
    extension: Option<CString>,
}

#[derive(Debug)]
pub(crate) struct HierarchyPlanData {
    hierarchy: CString,
    target: CString,
    create_target: bool,
    layers: Vec<LayerData>,
    upper_kind: sysext_upper_kind,
    upper_path: Option<CString>,
    work_dir: Option<CString>,
    read_only: bool,
    noexec: bool,
    nosuid: bool,
}

impl Castable for sysext_plan {
    type Ownership = OwnershipBox;
    type RustType = PlanData;
}

impl Castable for sysext_hierarchy_plan {
    type Ownership = OwnershipRef;
    type RustType = HierarchyPlanData;
}

impl From<&Layer> for LayerData {
    fn from(l: &Layer) -> Self {
        // The texts are those of `sysext plan`, so C, Python and the CLI show the same.
        match l {
            Layer::Meta => LayerData {
                text: cstring("(meta)"),
                kind: sysext_layer_kind::Meta,
                path: None,
                extension: None,
            },
            Layer::Import(p) => LayerData {
                text: cstring(format!("{p} (import)")),
                kind: sysext_layer_kind::Import,
                path: Some(cstring(p.as_str())),
                extension: None,
            },
            Layer::Extension { name, path } => LayerData {
                text: cstring(format!("{path} ({name})")),
                kind: sysext_layer_kind::Extension,
                path: Some(cstring(path.as_str())),
                extension: Some(cstring(name.as_str())),
            },
            Layer::Host(p) => LayerData {
                text: cstring(format!("{p} (host)")),
                kind: sysext_layer_kind::Host,
                path: Some(cstring(p.as_str())),
                extension: None,
            },
        }
    }
}

impl From<&HierarchyPlan> for HierarchyPlanData {
    fn from(h: &HierarchyPlan) -> Self {
        let (upper_kind, upper_path) = match &h.upper {
            None => (sysext_upper_kind::None, None),
            Some(Upper::MutableDir {
                path,
                create: false,
                ..
            }) => (sysext_upper_kind::MutableDir, Some(path)),
            Some(Upper::MutableDir {
                path, create: true, ..
            }) => (sysext_upper_kind::MutableDirCreated, Some(path)),
            Some(Upper::Host { path, .. }) => (sysext_upper_kind::Host, Some(path)),
            Some(Upper::Ephemeral) => (sysext_upper_kind::Ephemeral, None),
        };
        HierarchyPlanData {
            hierarchy: cstring(h.hierarchy.to_string()),
            target: cstring(h.target.as_str()),
            create_target: h.create_target,
            layers: h.lower.iter().map(LayerData::from).collect(),
            upper_kind,
            upper_path: upper_path.map(|p| cstring(p.as_str())),
            work_dir: h.work_dir.as_ref().map(|w| match w {
                WorkDir::Beside { path, .. } => cstring(path.as_str()),
                WorkDir::Ephemeral => cstring("ephemeral"),
            }),
            read_only: h.flags.read_only,
            noexec: h.flags.noexec,
            nosuid: h.flags.nosuid,
        }
    }
}

impl From<sysext::PlanReport> for PlanData {
    fn from(p: sysext::PlanReport) -> Self {
        PlanData {
            mode: sysext_mutable_mode::from_core(p.plan.mode),
            hierarchies: p
                .plan
                .hierarchies
                .iter()
                .map(HierarchyPlanData::from)
                .collect(),
            extensions: p.plan.extensions.into_iter().map(cstring).collect(),
            using: p.using.into_iter().map(cstring).collect(),
            skipped: p.skipped.into_iter().map(SkippedData::from).collect(),
        }
    }
}

impl sysext_plan {
    /// The mutable mode the plan was made for; `SYSEXT_MUTABLE_MODE_DISABLED` if `plan` is NULL.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_get_mutable_mode(
        plan: *const sysext_plan,
    ) -> sysext_mutable_mode {
        ffi_boundary!(default => sysext_mutable_mode::Disabled, {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }.map_or(sysext_mutable_mode::Disabled, |p| p.mode)
        })
    }

    /// The number of extensions that would be merged.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_extensions_count(plan: *const sysext_plan) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }.map_or(0, |p| p.extensions.len())
        })
    }

    /// The name of the `index`-th extension that would be merged, in ascending (version)
    /// order, or NULL if out of range. Valid until the plan is freed.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_get_extension(
        plan: *const sysext_plan,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }
                .map_or(std::ptr::null(), |p| nth_ptr(&p.extensions, index))
        })
    }

    /// The number of image files that would be used (as in "Using extensions 'a.raw', 'b'.").
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_using_count(plan: *const sysext_plan) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }.map_or(0, |p| p.using.len())
        })
    }

    /// The file name of the `index`-th image that would be used, or NULL if out of range.
    /// Valid until the plan is freed.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_get_using(
        plan: *const sysext_plan,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }.map_or(std::ptr::null(), |p| nth_ptr(&p.using, index))
        })
    }

    /// The number of extensions that would be skipped because they do not fit the host.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_skipped_count(plan: *const sysext_plan) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }.map_or(0, |p| p.skipped.len())
        })
    }

    /// The name of the `index`-th skipped extension, or NULL if out of range.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_get_skipped_name(
        plan: *const sysext_plan,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }
                .and_then(|p| p.skipped.get(index))
                .map_or(std::ptr::null(), |s| s.name.as_ptr())
        })
    }

    /// Why the `index`-th skipped extension would be skipped, or NULL if out of range.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_get_skipped_reason(
        plan: *const sysext_plan,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }
                .and_then(|p| p.skipped.get(index))
                .map_or(std::ptr::null(), |s| s.reason.as_ptr())
        })
    }

    /// The number of overlays that would be built (hierarchies to which no extension
    /// contributes get none).
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_hierarchies_count(plan: *const sysext_plan) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }.map_or(0, |p| p.hierarchies.len())
        })
    }

    /// The `index`-th overlay, in configured hierarchy order, or NULL if out of range.
    /// Valid until the plan is freed.
    ///
    /// # Safety
    /// `plan` is NULL or a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_get_hierarchy(
        plan: *const sysext_plan,
        index: usize,
    ) -> *const sysext_hierarchy_plan {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `plan` is NULL or a live `sysext_plan`.
            unsafe { handle::try_ref(plan) }
                .map_or(std::ptr::null(), |p| handle::nth_item::<sysext_hierarchy_plan>(&p.hierarchies, index))
        })
    }

    /// Free a plan and its hierarchies. NULL is allowed and does nothing.
    ///
    /// # Safety
    /// `plan` is NULL or a plan not freed yet; it, its items and their strings must not be
    /// used afterwards.
    ///
    /// Thread safety: needs exclusive access to `plan`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_plan_free(plan: *mut sysext_plan) {
        ffi_boundary!(default => (), {
            // SAFETY: by the function's contract, `plan` is NULL or a plan not freed yet; every
            // such handle was made by `to_boxed_mut_ptr`.
            unsafe { handle::free_box(plan) }
        })
    }
}

impl sysext_hierarchy_plan {
    /// The hierarchy as configured (`"/usr"`), or NULL if `hierarchy` is NULL.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_hierarchy(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.map_or(std::ptr::null(), |h| h.hierarchy.as_ptr())
        })
    }

    /// Where the overlay would be mounted (root prefix included, symlinks resolved).
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_target(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.map_or(std::ptr::null(), |h| h.target.as_ptr())
        })
    }

    /// Whether the hierarchy's directory does not exist yet and would be created.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_create_target(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.is_some_and(|h| h.create_target)
        })
    }

    /// The number of lower layers.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_layers_count(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.map_or(0, |h| h.layers.len())
        })
    }

    /// The `index`-th lower layer, top (0) to bottom, as `sysext plan` prints it:
    /// `"(meta)"`, `"<path> (import)"`, `"<path> (<extension>)"` or `"<path> (host)"`;
    /// NULL if out of range.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_layer(
        hierarchy: *const sysext_hierarchy_plan,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }
                .and_then(|h| h.layers.get(index))
                .map_or(std::ptr::null(), |l| l.text.as_ptr())
        })
    }

    /// What the `index`-th lower layer is; `SYSEXT_LAYER_KIND_META` if out of range.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_layer_kind(
        hierarchy: *const sysext_hierarchy_plan,
        index: usize,
    ) -> sysext_layer_kind {
        ffi_boundary!(default => sysext_layer_kind::Meta, {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }
                .and_then(|h| h.layers.get(index))
                .map_or(sysext_layer_kind::Meta, |l| l.kind)
        })
    }

    /// The directory of the `index`-th lower layer (root prefix included), or NULL for the
    /// meta layer or if out of range.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_layer_path(
        hierarchy: *const sysext_hierarchy_plan,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }
                .and_then(|h| h.layers.get(index))
                .map_or(std::ptr::null(), |l| opt_ptr(&l.path))
        })
    }

    /// The extension name of the `index`-th lower layer, or NULL if it is not an extension's
    /// layer or if out of range.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_layer_extension(
        hierarchy: *const sysext_hierarchy_plan,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }
                .and_then(|h| h.layers.get(index))
                .map_or(std::ptr::null(), |l| opt_ptr(&l.extension))
        })
    }

    /// Where writes would go; `SYSEXT_UPPER_KIND_NONE` for a read-only overlay.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_upper_kind(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> sysext_upper_kind {
        ffi_boundary!(default => sysext_upper_kind::None, {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.map_or(sysext_upper_kind::None, |h| h.upper_kind)
        })
    }

    /// The upper directory (root prefix included) for `SYSEXT_UPPER_KIND_MUTABLE_DIR`,
    /// `_MUTABLE_DIR_CREATED` and `_HOST`; NULL otherwise.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_upper_path(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }
                .map_or(std::ptr::null(), |h| opt_ptr(&h.upper_path))
        })
    }

    /// The overlay's work directory: a directory beside the upper one, `"ephemeral"` when it
    /// lives on the private tmpfs, or NULL for a read-only overlay.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_get_work_dir(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.map_or(std::ptr::null(), |h| opt_ptr(&h.work_dir))
        })
    }

    /// Whether the overlay would be mounted read-only (no upper layer).
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_is_read_only(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.is_some_and(|h| h.read_only)
        })
    }

    /// Whether the overlay would be mounted `noexec`.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_is_noexec(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.is_some_and(|h| h.noexec)
        })
    }

    /// Whether the overlay would be mounted `nosuid`.
    ///
    /// # Safety
    /// `hierarchy` is NULL or an item of a live `sysext_plan`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_plan_is_nosuid(
        hierarchy: *const sysext_hierarchy_plan,
    ) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `hierarchy` is NULL or an item of a live
            // `sysext_plan`.
            unsafe { handle::try_ref(hierarchy) }.is_some_and(|h| h.nosuid)
        })
    }
}
