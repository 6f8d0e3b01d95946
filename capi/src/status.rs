//! `sysext_status` and `sysext_hierarchy_status`: what is merged now (`status`).

use crate::boundary::{cstring, nth_ptr, opt_out, opt_ptr};
use crate::handle::{self, Castable, OwnershipBox, OwnershipRef};
use crate::options::sysext_mutable_mode;
use crate::plan::sysext_upper_kind;
use std::ffi::CString;
use std::os::raw::c_char;

/// The state of each configured hierarchy that exists, sorted by path, from
/// `sysext_context_status()`. Freed by `sysext_status_free()`, which also invalidates
/// its items.
///
/// Thread safety: immutable; its getters may be called from several threads at once.
#[derive(Debug)]
pub struct sysext_status {
    _private: [u8; 0],
}

/// The state of one hierarchy; it belongs to its `sysext_status` (never freed alone).
#[derive(Debug)]
pub struct sysext_hierarchy_status {
    _private: [u8; 0],
}

#[derive(Debug)]
pub(crate) struct StatusData {
    items: Vec<HierarchyStatusData>,
}

#[derive(Debug)]
pub(crate) struct HierarchyStatusData {
    hierarchy: CString,
    merged: bool,
    extensions: Vec<CString>,
    since_usec: u64,
    mutable: Option<sysext_mutable_mode>,
    upper_kind: Option<sysext_upper_kind>,
    upper_path: Option<CString>,
}

impl Castable for sysext_status {
    type Ownership = OwnershipBox;
    type RustType = StatusData;
}

impl Castable for sysext_hierarchy_status {
    type Ownership = OwnershipRef;
    type RustType = HierarchyStatusData;
}

impl From<Vec<sysext::HierarchyStatus>> for StatusData {
    fn from(v: Vec<sysext::HierarchyStatus>) -> Self {
        let items = v
            .into_iter()
            .map(|s| HierarchyStatusData {
                hierarchy: cstring(s.hierarchy),
                merged: s.extensions.is_some(),
                extensions: s
                    .extensions
                    .unwrap_or_default()
                    .into_iter()
                    .map(cstring)
                    .collect(),
                since_usec: s.since_usec.unwrap_or(0),
                mutable: s.mutable.map(sysext_mutable_mode::from_core),
                upper_kind: s.upper.map(sysext_upper_kind::from_core),
                upper_path: s.upper_dir.map(cstring),
            })
            .collect();
        StatusData { items }
    }
}

impl sysext_status {
    /// The number of hierarchies; 0 if `status` is NULL.
    ///
    /// # Safety
    /// `status` is NULL or a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_status_count(status: *const sysext_status) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `status` is NULL or a live `sysext_status`.
            unsafe { handle::try_ref(status) }.map_or(0, |s| s.items.len())
        })
    }

    /// The `index`-th hierarchy, or NULL if `status` is NULL or `index` is out of range.
    /// Valid until the status is freed.
    ///
    /// # Safety
    /// `status` is NULL or a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_status_get(
        status: *const sysext_status,
        index: usize,
    ) -> *const sysext_hierarchy_status {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `status` is NULL or a live `sysext_status`.
            unsafe { handle::try_ref(status) }
                .map_or(std::ptr::null(), |s| handle::nth_item::<sysext_hierarchy_status>(&s.items, index))
        })
    }

    /// Free a status and its items. NULL is allowed and does nothing.
    ///
    /// # Safety
    /// `status` is NULL or a status not freed yet; it, its items and their strings must not
    /// be used afterwards.
    ///
    /// Thread safety: needs exclusive access to `status`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_status_free(status: *mut sysext_status) {
        ffi_boundary!(default => (), {
            // SAFETY: by the function's contract, `status` is NULL or a status not freed yet; every
            // such handle was made by `to_boxed_mut_ptr`.
            unsafe { handle::free_box(status) }
        })
    }
}

impl sysext_hierarchy_status {
    /// The hierarchy as configured (`"/usr"`), or NULL if `status` is NULL.
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_get_hierarchy(
        status: *const sysext_hierarchy_status,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            unsafe { handle::try_ref(status) }.map_or(std::ptr::null(), |s| s.hierarchy.as_ptr())
        })
    }

    /// Whether extensions are merged onto the hierarchy (by libsysext or systemd).
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_is_merged(
        status: *const sysext_hierarchy_status,
    ) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            unsafe { handle::try_ref(status) }.is_some_and(|s| s.merged)
        })
    }

    /// The number of merged extensions (0 when not merged).
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_extensions_count(
        status: *const sysext_hierarchy_status,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            unsafe { handle::try_ref(status) }.map_or(0, |s| s.extensions.len())
        })
    }

    /// The name of the `index`-th merged extension, or NULL if out of range.
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_get_extension(
        status: *const sysext_hierarchy_status,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            unsafe { handle::try_ref(status) }
                .map_or(std::ptr::null(), |s| nth_ptr(&s.extensions, index))
        })
    }

    /// When the hierarchy was merged (modification time of the merged directory), microseconds since
    /// the epoch; 0 when not merged or unknown.
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_get_since_usec(
        status: *const sysext_hierarchy_status,
    ) -> u64 {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            unsafe { handle::try_ref(status) }.map_or(0, |s| s.since_usec)
        })
    }

    /// The mutable mode of the merge: stores its `SYSEXT_MUTABLE_MODE_*` value in
    /// `*ret_mode` and returns true; returns false (and writes nothing) when not merged, when
    /// not recorded (merges made by systemd do not record it), or if an argument is NULL.
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`; `ret_mode` is NULL or valid
    /// for a write.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_get_mutable_mode(
        status: *const sysext_hierarchy_status,
        ret_mode: *mut sysext_mutable_mode,
    ) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            let value = unsafe { handle::try_ref(status) }.and_then(|s| s.mutable);
            // SAFETY: by the function's contract, `ret_mode` is NULL or valid for a write.
            match (value, unsafe { opt_out(ret_mode) }) {
                (Some(m), Some(slot)) => {
                    slot.write(m);
                    true
                }
                _ => false,
            }
        })
    }

    /// Where writes to the merged hierarchy go: stores its `SYSEXT_UPPER_KIND_*` value
    /// (`_NONE` for a read-only merge, `_MUTABLE_DIR`, `_HOST` or `_EPHEMERAL`; never
    /// `_MUTABLE_DIR_CREATED`) in `*ret_kind` and returns true; returns false (and writes
    /// nothing) when not merged, when not recorded (merges made by systemd), or if an
    /// argument is NULL.
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`; `ret_kind` is NULL or valid
    /// for a write.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_get_upper_kind(
        status: *const sysext_hierarchy_status,
        ret_kind: *mut sysext_upper_kind,
    ) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            let value = unsafe { handle::try_ref(status) }.and_then(|s| s.upper_kind);
            // SAFETY: by the function's contract, `ret_kind` is NULL or valid for a write.
            match (value, unsafe { opt_out(ret_kind) }) {
                (Some(k), Some(slot)) => {
                    slot.write(k);
                    true
                }
                _ => false,
            }
        })
    }

    /// The mutable directory writes go to (root prefix included) for
    /// `SYSEXT_UPPER_KIND_MUTABLE_DIR`; NULL otherwise.
    ///
    /// # Safety
    /// `status` is NULL or an item of a live `sysext_status`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_hierarchy_status_get_upper_path(
        status: *const sysext_hierarchy_status,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `status` is NULL or an item of a live
            // `sysext_status`.
            unsafe { handle::try_ref(status) }.map_or(std::ptr::null(), |s| opt_ptr(&s.upper_path))
        })
    }
}
