//! `sysext_report`: what merge, refresh, unmerge and their by-name variants did.

use crate::boundary::{cstring, nth_ptr};
use crate::handle::{self, Castable, OwnershipBox};
use std::ffi::CString;
use std::os::raw::c_char;

/// An image not used, and why (in reports and plans).
#[derive(Debug)]
pub(crate) struct SkippedData {
    pub name: CString,
    pub reason: CString,
}

impl From<sysext::Skipped> for SkippedData {
    fn from(s: sysext::Skipped) -> Self {
        SkippedData {
            name: cstring(s.name),
            reason: cstring(s.reason),
        }
    }
}

/// What a merge, refresh or unmerge did: the merged extensions, the hierarchies that got
/// an overlay or lost one, the extensions skipped as incompatible (with the reason), and
/// whether the service manager should be reloaded.
///
/// Returned by `sysext_context_merge()` and friends; freed by `sysext_report_free()`.
///
/// Thread safety: a report is immutable; its getters may be called from several threads
/// at once.
#[derive(Debug)]
pub struct sysext_report {
    _private: [u8; 0],
}

#[derive(Debug)]
pub(crate) struct ReportData {
    merged: Vec<CString>,
    hierarchies: Vec<CString>,
    targets: Vec<CString>,
    unmerged: Vec<CString>,
    skipped: Vec<SkippedData>,
    needs_reload: bool,
    restart_units: Vec<CString>,
    reload_or_restart_units: Vec<CString>,
}

impl Castable for sysext_report {
    type Ownership = OwnershipBox;
    type RustType = ReportData;
}

impl From<sysext::Report> for ReportData {
    fn from(r: sysext::Report) -> Self {
        ReportData {
            merged: r.merged.into_iter().map(cstring).collect(),
            hierarchies: r.hierarchies.into_iter().map(cstring).collect(),
            targets: r.targets.into_iter().map(cstring).collect(),
            unmerged: r.unmerged.into_iter().map(cstring).collect(),
            skipped: r.skipped.into_iter().map(SkippedData::from).collect(),
            needs_reload: r.needs_reload,
            restart_units: r.units.restart.into_iter().map(cstring).collect(),
            reload_or_restart_units: r.units.reload_or_restart.into_iter().map(cstring).collect(),
        }
    }
}

impl sysext_report {
    /// The number of merged extensions (0 after an unmerge, or when none was suitable).
    ///
    /// Returns 0 if `report` is NULL.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_merged_count(report: *const sysext_report) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }.map_or(0, |r| r.merged.len())
        })
    }

    /// The name of the `index`-th merged extension, in ascending (version) order, or NULL if
    /// `report` is NULL or `index` is out of range. Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_merged(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .map_or(std::ptr::null(), |r| nth_ptr(&r.merged, index))
        })
    }

    /// The number of hierarchies that got an overlay.
    ///
    /// Returns 0 if `report` is NULL.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_hierarchies_count(
        report: *const sysext_report,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }.map_or(0, |r| r.hierarchies.len())
        })
    }

    /// The `index`-th hierarchy that got an overlay, as configured (`"/usr"`, without the
    /// root prefix; `sysext_report_get_target()` gives the mount point), or NULL if `report`
    /// is NULL or `index` is out of range. Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_hierarchy(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .map_or(std::ptr::null(), |r| nth_ptr(&r.hierarchies, index))
        })
    }

    /// Where the `index`-th overlay of `sysext_report_get_hierarchy()` was mounted (the
    /// hierarchy with the root prefix, `"/srv/root/usr"`), or NULL if `report` is NULL or
    /// `index` is out of range (there are `sysext_report_hierarchies_count()` of them).
    /// Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_target(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .map_or(std::ptr::null(), |r| nth_ptr(&r.targets, index))
        })
    }

    /// The number of hierarchies whose previous merge was removed.
    ///
    /// Returns 0 if `report` is NULL.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_unmerged_count(report: *const sysext_report) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }.map_or(0, |r| r.unmerged.len())
        })
    }

    /// The `index`-th hierarchy whose previous merge was removed, as configured (`"/usr"`), or NULL if
    /// `report` is NULL or `index` is out of range. Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_unmerged(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .map_or(std::ptr::null(), |r| nth_ptr(&r.unmerged, index))
        })
    }

    /// The number of extensions skipped because they do not fit the host.
    ///
    /// Returns 0 if `report` is NULL.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_skipped_count(report: *const sysext_report) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }.map_or(0, |r| r.skipped.len())
        })
    }

    /// The name of the `index`-th skipped extension, or NULL if `report` is NULL or `index`
    /// is out of range. Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_skipped_name(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .and_then(|r| r.skipped.get(index))
                .map_or(std::ptr::null(), |s| s.name.as_ptr())
        })
    }

    /// Why the `index`-th skipped extension was skipped (naming the field and values, e.g.
    /// "is for OS 'fedora', host is 'debian'"), or NULL if `report` is NULL or `index` is out
    /// of range. Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_skipped_reason(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .and_then(|r| r.skipped.get(index))
                .map_or(std::ptr::null(), |s| s.reason.as_ptr())
        })
    }

    /// Whether an extension that was merged (or, for unmerge, removed) sets
    /// `EXTENSION_RELOAD_MANAGER=1`: the caller should then reload the service manager
    /// (`systemctl daemon-reload`), as systemd-sysext does unless `--no-reload`.
    ///
    /// Returns false if `report` is NULL.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_needs_reload(report: *const sysext_report) -> bool {
        ffi_boundary!(default => false, {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }.is_some_and(|r| r.needs_reload)
        })
    }

    /// The number of units the merged (or, for unmerge, the removed) extensions ask to have
    /// restarted (`EXTENSION_RESTART_UNITS=` in their release files, systemd 259), each unit
    /// once, in the order found. Collected at every compatibility level and also with a root
    /// or `no_reload`; acting on them (after the manager reload) is the caller's business.
    ///
    /// Returns 0 if `report` is NULL.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_restart_units_count(
        report: *const sysext_report,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }.map_or(0, |r| r.restart_units.len())
        })
    }

    /// The `index`-th unit to restart (`"foo.service"`), or NULL if `report` is NULL or
    /// `index` is out of range. Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_restart_unit(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .map_or(std::ptr::null(), |r| nth_ptr(&r.restart_units, index))
        })
    }

    /// The number of units to reload-or-restart (`EXTENSION_RELOAD_OR_RESTART_UNITS=`), each
    /// once, without those also to be restarted.
    ///
    /// Returns 0 if `report` is NULL.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_reload_or_restart_units_count(
        report: *const sysext_report,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }.map_or(0, |r| r.reload_or_restart_units.len())
        })
    }

    /// The `index`-th unit to reload-or-restart, or NULL if `report` is NULL or `index` is
    /// out of range. Valid until the report is freed.
    ///
    /// # Safety
    /// `report` is NULL or a live `sysext_report`.
    ///
    /// Thread safety: may be called from several threads at once on the same handle.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_get_reload_or_restart_unit(
        report: *const sysext_report,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `report` is NULL or a live `sysext_report`.
            unsafe { handle::try_ref(report) }
                .map_or(std::ptr::null(), |r| nth_ptr(&r.reload_or_restart_units, index))
        })
    }

    /// Free a report. NULL is allowed and does nothing.
    ///
    /// # Safety
    /// `report` is NULL or a report not freed yet; it and the strings it returned must not
    /// be used afterwards.
    ///
    /// Thread safety: needs exclusive access to `report`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_report_free(report: *mut sysext_report) {
        ffi_boundary!(default => (), {
            // SAFETY: by the function's contract, `report` is NULL or a report not freed yet; every
            // such handle was made by `to_boxed_mut_ptr`.
            unsafe { handle::free_box(report) }
        })
    }
}
