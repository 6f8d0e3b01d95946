//! `sysext_context`: one image class and root, and the verbs.

use crate::boundary::{arg, cstring, nth_ptr, opt_out, out, str_array_arg, CResult};
use crate::error::sysext_error;
use crate::extension::{sysext_extension_list, ImageListData};
use crate::handle::{self, Castable, OwnershipBox};
use crate::options::{sysext_image_class, sysext_mutable_mode, sysext_options};
use crate::plan::{sysext_plan, PlanData};
use crate::report::{sysext_report, ReportData};
use crate::status::{sysext_status, StatusData};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use sysext::{Context, Report};

/// A context for one image class and root: lists, plans, merges, refreshes, unmerges and
/// reports the status of extension images.
///
/// Created by `sysext_context_new()`, freed by `sysext_context_free()`.
///
/// Thread safety: every function taking a `const sysext_context *` may be called from
/// several threads at once on the same context. Merge, unmerge and refresh of one root and
/// image class are serialized by a lock file below `/run` (see
/// `sysext_options_set_lock_timeout_ms()`), also between processes. The log callback runs
/// on the calling thread.
#[derive(Debug)]
pub struct sysext_context {
    _private: [u8; 0],
}

#[derive(Debug)]
pub(crate) struct ContextData {
    ctx: Context,
    root: CString,
    hierarchies: Vec<CString>,
}

impl Castable for sysext_context {
    type Ownership = OwnershipBox;
    type RustType = ContextData;
}

/// Run a verb that produces a report; `ret_report` is optional.
///
/// # Safety
/// `context` is NULL or a live context; `ret_report` is NULL or valid for writing a
/// pointer; `ret_error` is NULL or valid for reading and writing a pointer (the verbs'
/// `# Safety` and the header's conventions).
unsafe fn verb(
    context: *const sysext_context,
    ret_report: *mut *mut sysext_report,
    ret_error: *mut *mut sysext_error,
    func: &'static str,
    f: impl FnOnce(&Context) -> CResult<Report>,
) -> c_int {
    ffi_boundary!(ret_error => {
        // SAFETY: by the contract, `context` is NULL or a live context.
        let c = unsafe { arg(context, func, "context") }?;
        let report = f(&c.ctx)?;
        // SAFETY: by the contract, `ret_report` is NULL or valid for writing a pointer.
        if let Some(slot) = unsafe { opt_out(ret_report) } {
            slot.write(handle::to_boxed_mut_ptr::<sysext_report>(ReportData::from(report)));
        }
        Ok(())
    })
}

impl sysext_context {
    /// Create a context from options: opens the root, validates the hierarchies and fixes
    /// the mutable mode (reading the `SYSTEMD_*` environment variables where the options
    /// leave it open). Nothing is mounted. The options are copied.
    ///
    /// On success stores the context in `*ret_context` and returns 0; free it with
    /// `sysext_context_free()`. Fails with `-EINVAL` if an argument is NULL or a hierarchy
    /// from the environment is invalid, `-ENOENT` if the root does not exist, `-ENOTDIR` if
    /// it is not a directory, or another negative errno.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_context` is NULL or valid for writing a
    /// pointer; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: may be called from any thread; `options` must not be changed meanwhile.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_new(
        options: *const sysext_options,
        ret_context: *mut *mut sysext_context,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_new";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options.
            let o = unsafe { arg(options, F, "options") }?;
            // SAFETY: by the function's contract, `ret_context` is NULL or valid for writing a
            // pointer.
            let slot = unsafe { out(ret_context, F, "ret_context") }?;
            let ctx = Context::new(o.clone())?;
            let root = cstring(ctx.root_path());
            let hierarchies = ctx.hierarchies().iter().map(|h| cstring(h.to_string())).collect();
            let data = ContextData { ctx, root, hierarchies };
            slot.write(handle::to_boxed_mut_ptr::<sysext_context>(data));
            Ok(())
        })
    }

    /// Free a context. NULL is allowed and does nothing. Merges stay in place.
    ///
    /// # Safety
    /// `context` is NULL or a context not freed yet, which no other thread is using; it and
    /// the strings it returned must not be used afterwards.
    ///
    /// Thread safety: needs exclusive access to `context`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_free(context: *mut sysext_context) {
        ffi_boundary!(default => (), {
            // SAFETY: by the function's contract, `context` is NULL or a context not freed yet,
            // which no other thread is using; every such handle was made by `to_boxed_mut_ptr`.
            unsafe { handle::free_box(context) }
        })
    }

    /// The image class of the context; `SYSEXT_IMAGE_CLASS_SYSEXT` if `context` is NULL.
    ///
    /// # Safety
    /// `context` is NULL or a live context.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_get_image_class(
        context: *const sysext_context,
    ) -> sysext_image_class {
        ffi_boundary!(default => sysext_image_class::Sysext, {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            unsafe { handle::try_ref(context) }
                .map_or(sysext_image_class::Sysext, |c| sysext_image_class::from_core(c.ctx.options().class))
        })
    }

    /// The mutable mode merge and refresh use (from the options, else the environment, else
    /// `no`); `SYSEXT_MUTABLE_MODE_DISABLED` if `context` is NULL.
    ///
    /// # Safety
    /// `context` is NULL or a live context.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_get_mutable_mode(
        context: *const sysext_context,
    ) -> sysext_mutable_mode {
        ffi_boundary!(default => sysext_mutable_mode::Disabled, {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            unsafe { handle::try_ref(context) }
                .map_or(sysext_mutable_mode::Disabled, |c| sysext_mutable_mode::from_core(c.ctx.mutable_mode()))
        })
    }

    /// The compatibility level in effect (`257` or `262`: from the options, else
    /// `LIBSYSEXT_COMPAT`, else the newest), or 0 if `context` is NULL.
    ///
    /// # Safety
    /// `context` is NULL or a live context.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_get_compat(context: *const sysext_context) -> c_int {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            unsafe { handle::try_ref(context) }.map_or(0, |c| c.ctx.compat().version() as c_int)
        })
    }

    /// The root as the context prints it (`"/"` for the host), or NULL if `context` is NULL.
    /// Valid until the context is freed.
    ///
    /// # Safety
    /// `context` is NULL or a live context.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_get_root(
        context: *const sysext_context,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            unsafe { handle::try_ref(context) }.map_or(std::ptr::null(), |c| c.root.as_ptr())
        })
    }

    /// The number of configured hierarchies.
    ///
    /// # Safety
    /// `context` is NULL or a live context.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_hierarchies_count(
        context: *const sysext_context,
    ) -> usize {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            unsafe { handle::try_ref(context) }.map_or(0, |c| c.hierarchies.len())
        })
    }

    /// The `index`-th configured hierarchy (`"/usr"`), in merge order, or NULL if out of
    /// range. Valid until the context is freed.
    ///
    /// # Safety
    /// `context` is NULL or a live context.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_get_hierarchy(
        context: *const sysext_context,
        index: usize,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            unsafe { handle::try_ref(context) }
                .map_or(std::ptr::null(), |c| nth_ptr(&c.hierarchies, index))
        })
    }

    /// List the extension images of the context's class (systemd's `list`): name, kind,
    /// path, time, and for each image what a merge would do with it and, if it would not
    /// use it, why. Needs no privilege for directory images (image files are then listed in
    /// state `SYSEXT_IMAGE_STATE_UNKNOWN`).
    ///
    /// On success stores the list in `*ret_list` and returns 0; free it with
    /// `sysext_extension_list_free()`. Fails with a negative errno if the search directories
    /// cannot be read.
    ///
    /// Example (`ctx` is a `const sysext_context *`; compiled and run by the tests):
    ///
    /// ```c
    /// // List the extensions: name, state and, where a merge would not use one, why.
    /// __attribute__((cleanup(sysext_extension_list_freep))) sysext_extension_list *list = NULL;
    /// __attribute__((cleanup(sysext_error_freep))) sysext_error *err = NULL;
    /// int r = sysext_context_list(ctx, &list, &err);
    /// if (r < 0)
    ///         return fprintf(stderr, "list: %s\n", sysext_error_get_message(err)), r;
    /// for (size_t i = 0; i < sysext_extension_list_count(list); i++) {
    ///         const sysext_extension *e = sysext_extension_list_get(list, i);
    ///         const char *reason = sysext_extension_get_reason(e);
    ///         printf("%s %s%s%s\n", sysext_extension_get_name(e),
    ///                sysext_image_state_to_string(sysext_extension_get_state(e)),
    ///                reason ? ": " : "", reason ? reason : "");
    /// }
    /// return 0;
    /// ```
    ///
    /// # Safety
    /// `context` is NULL or a live context; `ret_list` is NULL or valid for writing a
    /// pointer; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_list(
        context: *const sysext_context,
        ret_list: *mut *mut sysext_extension_list,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_list";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            let c = unsafe { arg(context, F, "context") }?;
            // SAFETY: by the function's contract, `ret_list` is NULL or valid for writing a
            // pointer.
            let slot = unsafe { out(ret_list, F, "ret_list") }?;
            let images = c.ctx.list()?;
            slot.write(handle::to_boxed_mut_ptr::<sysext_extension_list>(ImageListData::from(images)));
            Ok(())
        })
    }

    /// Plan a merge without mounting anything and without privilege: the overlays that
    /// would be built per hierarchy (layers top to bottom, upper and work directory,
    /// flags), the extensions that would be merged and those that would be skipped.
    ///
    /// On success stores the plan in `*ret_plan` and returns 0; free it with
    /// `sysext_plan_free()`. Fails with the error the merge would fail with (e.g. `-EINVAL`
    /// for a mutable directory whose mode differs from the hierarchy's).
    ///
    /// Example (`ctx` is a `const sysext_context *`; compiled and run by the tests):
    ///
    /// ```c
    /// // What a merge would do, without mounting: the layers of each overlay, top first.
    /// __attribute__((cleanup(sysext_plan_freep))) sysext_plan *plan = NULL;
    /// __attribute__((cleanup(sysext_error_freep))) sysext_error *err = NULL;
    /// int r = sysext_context_plan(ctx, &plan, &err);
    /// if (r < 0)
    ///         return fprintf(stderr, "plan: %s\n", sysext_error_get_message(err)), r;
    /// for (size_t i = 0; i < sysext_plan_hierarchies_count(plan); i++) {
    ///         const sysext_hierarchy_plan *h = sysext_plan_get_hierarchy(plan, i);
    ///         printf("%s:\n", sysext_hierarchy_plan_get_hierarchy(h));
    ///         for (size_t l = 0; l < sysext_hierarchy_plan_layers_count(h); l++)
    ///                 printf("  %s\n", sysext_hierarchy_plan_get_layer(h, l));
    /// }
    /// return 0;
    /// ```
    ///
    /// # Safety
    /// `context` is NULL or a live context; `ret_plan` is NULL or valid for writing a
    /// pointer; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_plan(
        context: *const sysext_context,
        ret_plan: *mut *mut sysext_plan,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_plan";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            let c = unsafe { arg(context, F, "context") }?;
            // SAFETY: by the function's contract, `ret_plan` is NULL or valid for writing a
            // pointer.
            let slot = unsafe { out(ret_plan, F, "ret_plan") }?;
            let plan = c.ctx.plan()?;
            slot.write(handle::to_boxed_mut_ptr::<sysext_plan>(PlanData::from(plan)));
            Ok(())
        })
    }

    /// Merge the compatible extensions onto the hierarchies (systemd's `merge`). Each
    /// overlay is built detached and attached in one step. Needs `CAP_SYS_ADMIN`.
    ///
    /// On success returns 0 and, if `ret_report` is not NULL, stores a report there (free
    /// it with `sysext_report_free()`); check `sysext_report_needs_reload()`. Fails with
    /// `-EBUSY` if a hierarchy is already merged, `-EPERM` without privilege,
    /// `-EWOULDBLOCK` if the lock is held past the timeout, or another negative errno;
    /// a failed merge leaves the hierarchies as they were.
    ///
    /// `context` is `const` although the call changes the system: the merge changes the
    /// mount table and files below the root, never the context object (which holds the
    /// options and the open root only), so several threads may merge, refresh or unmerge
    /// through one context at once (a lock file serializes them). The same holds for
    /// every verb.
    ///
    /// Example (`ctx` is a `const sysext_context *`; compiled and run by the tests):
    ///
    /// ```c
    /// // Merge; on failure say which hierarchy or extension is at fault.
    /// __attribute__((cleanup(sysext_report_freep))) sysext_report *report = NULL;
    /// __attribute__((cleanup(sysext_error_freep))) sysext_error *err = NULL;
    /// int r = sysext_context_merge(ctx, &report, &err);
    /// if (r < 0) {
    ///         const char *h = sysext_error_get_hierarchy(err), *x = sysext_error_get_extension(err);
    ///         fprintf(stderr, "merge: %s (hierarchy %s, extension %s)\n", sysext_error_get_message(err),
    ///                 h ? h : "-", x ? x : "-");
    ///         return r;
    /// }
    /// for (size_t i = 0; i < sysext_report_hierarchies_count(report); i++)
    ///         printf("merged %s at %s\n", sysext_report_get_hierarchy(report, i),
    ///                sysext_report_get_target(report, i));
    /// return 0;
    /// ```
    ///
    /// # Safety
    /// `context` is NULL or a live context; `ret_report` and `ret_error` are NULL or valid for
    /// writing a pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_merge(
        context: *const sysext_context,
        ret_report: *mut *mut sysext_report,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_merge";
        let run = |c: &Context| Ok(c.merge()?);
        // SAFETY: by the function's contract, `context` is NULL or a live context and
        // `ret_report` and `ret_error` are NULL or valid for writing a pointer (and `*ret_error`
        // is NULL, the header's conventions): `verb`'s contract.
        unsafe { verb(context, ret_report, ret_error, F, run) }
    }

    /// Rebuild the merge from the current images (systemd's `refresh`), replacing the old
    /// overlays without a moment in which a hierarchy shows neither; merges if nothing is
    /// merged, unmerges if no extension is left. Needs `CAP_SYS_ADMIN`.
    ///
    /// Returns 0 or a negative errno, like `sysext_context_merge()`.
    ///
    /// Example (`ctx` is a `const sysext_context *`; compiled and run by the tests):
    ///
    /// ```c
    /// // Refresh after images were added or removed; nothing to do is not an error.
    /// __attribute__((cleanup(sysext_report_freep))) sysext_report *report = NULL;
    /// __attribute__((cleanup(sysext_error_freep))) sysext_error *err = NULL;
    /// int r = sysext_context_refresh(ctx, &report, &err);
    /// if (r < 0)
    ///         return fprintf(stderr, "refresh: %s\n", sysext_error_get_message(err)), r;
    /// printf("%zu extensions merged\n", sysext_report_merged_count(report));
    /// return 0;
    /// ```
    ///
    /// # Safety
    /// `context` is NULL or a live context; `ret_report` and `ret_error` are NULL or valid for
    /// writing a pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_refresh(
        context: *const sysext_context,
        ret_report: *mut *mut sysext_report,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_refresh";
        let run = |c: &Context| Ok(c.refresh()?);
        // SAFETY: by the function's contract, `context` is NULL or a live context and
        // `ret_report` and `ret_error` are NULL or valid for writing a pointer (and `*ret_error`
        // is NULL, the header's conventions): `verb`'s contract.
        unsafe { verb(context, ret_report, ret_error, F, run) }
    }

    /// Remove the merge from all configured hierarchies (systemd's `unmerge`); not being
    /// merged is not an error. Needs `CAP_SYS_ADMIN`.
    ///
    /// On success returns 0 and, if `ret_report` is not NULL, stores a report listing the
    /// unmerged hierarchies (`sysext_report_needs_reload()` tells whether a removed
    /// extension asked for a reload).
    ///
    /// Example (`ctx` is a `const sysext_context *`; compiled and run by the tests):
    ///
    /// ```c
    /// // Unmerge everything; the report names the hierarchies that were unmerged.
    /// __attribute__((cleanup(sysext_report_freep))) sysext_report *report = NULL;
    /// __attribute__((cleanup(sysext_error_freep))) sysext_error *err = NULL;
    /// int r = sysext_context_unmerge(ctx, &report, &err);
    /// if (r < 0)
    ///         return fprintf(stderr, "unmerge: %s\n", sysext_error_get_message(err)), r;
    /// for (size_t i = 0; i < sysext_report_unmerged_count(report); i++)
    ///         printf("unmerged %s\n", sysext_report_get_unmerged(report, i));
    /// return 0;
    /// ```
    ///
    /// # Safety
    /// `context` is NULL or a live context; `ret_report` and `ret_error` are NULL or valid for
    /// writing a pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_unmerge(
        context: *const sysext_context,
        ret_report: *mut *mut sysext_report,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_unmerge";
        let run = |c: &Context| Ok(c.unmerge()?);
        // SAFETY: by the function's contract, `context` is NULL or a live context and
        // `ret_report` and `ret_error` are NULL or valid for writing a pointer (and `*ret_error`
        // is NULL, the header's conventions): `verb`'s contract.
        unsafe { verb(context, ret_report, ret_error, F, run) }
    }

    /// Add the named extensions to the current merge, keeping the others, the mutable mode
    /// (unless the options set one) and the upper layers, as a gap-free refresh; without a
    /// current merge, merge just these. Needs `CAP_SYS_ADMIN`.
    ///
    /// Returns 0 or a negative errno: `-ENOENT` if a name is not found, `-ENOMEDIUM` if an
    /// extension does not fit the host (unless forced), `-EINVAL` for bad arguments.
    ///
    /// # Safety
    /// `context` is NULL or a live context; `names` is NULL or points to `n_names`
    /// NUL-terminated strings; `ret_report` and `ret_error` are NULL or valid for writing a
    /// pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_merge_names(
        context: *const sysext_context,
        names: *const *const c_char,
        n_names: usize,
        ret_report: *mut *mut sysext_report,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_merge_names";
        let run = |c: &Context| {
            // SAFETY: by the function's contract, `names` is NULL or points to `n_names`
            // NUL-terminated strings.
            let names = unsafe { names_arg(names, n_names, F) }?;
            Ok(c.merge_names(&names)?)
        };
        // SAFETY: by the function's contract, `context` is NULL or a live context and
        // `ret_report` and `ret_error` are NULL or valid for writing a pointer (and `*ret_error`
        // is NULL, the header's conventions): `verb`'s contract.
        unsafe { verb(context, ret_report, ret_error, F, run) }
    }

    /// Remove the named extensions from the current merge, keeping the others (a gap-free
    /// refresh with a smaller set); removing the last one unmerges. Needs `CAP_SYS_ADMIN`.
    ///
    /// Returns 0 or a negative errno: `-ENOENT` (`SYSEXT_ERROR_KIND_NOT_MERGED`) if a name
    /// is not part of the current merge, `-EINVAL` for bad arguments.
    ///
    /// # Safety
    /// `context` is NULL or a live context; `names` is NULL or points to `n_names`
    /// NUL-terminated strings; `ret_report` and `ret_error` are NULL or valid for writing a
    /// pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_unmerge_names(
        context: *const sysext_context,
        names: *const *const c_char,
        n_names: usize,
        ret_report: *mut *mut sysext_report,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_unmerge_names";
        let run = |c: &Context| {
            // SAFETY: by the function's contract, `names` is NULL or points to `n_names`
            // NUL-terminated strings.
            let names = unsafe { names_arg(names, n_names, F) }?;
            Ok(c.unmerge_names(&names)?)
        };
        // SAFETY: by the function's contract, `context` is NULL or a live context and
        // `ret_report` and `ret_error` are NULL or valid for writing a pointer (and `*ret_error`
        // is NULL, the header's conventions): `verb`'s contract.
        unsafe { verb(context, ret_report, ret_error, F, run) }
    }

    /// The state of each configured hierarchy that exists (systemd's `status`): whether it
    /// is merged, the extensions, since when, the mutable mode and where writes go.
    /// Needs no privilege.
    ///
    /// On success stores the status in `*ret_status` and returns 0; free it with
    /// `sysext_status_free()`.
    ///
    /// Example (`ctx` is a `const sysext_context *`; compiled and run by the tests):
    ///
    /// ```c
    /// // Which extensions are merged where, and in which mutable mode.
    /// __attribute__((cleanup(sysext_status_freep))) sysext_status *status = NULL;
    /// __attribute__((cleanup(sysext_error_freep))) sysext_error *err = NULL;
    /// int r = sysext_context_status(ctx, &status, &err);
    /// if (r < 0)
    ///         return fprintf(stderr, "status: %s\n", sysext_error_get_message(err)), r;
    /// for (size_t i = 0; i < sysext_status_count(status); i++) {
    ///         const sysext_hierarchy_status *h = sysext_status_get(status, i);
    ///         sysext_mutable_mode mode;
    ///         if (!sysext_hierarchy_status_is_merged(h))
    ///                 continue;
    ///         printf("%s (%s):", sysext_hierarchy_status_get_hierarchy(h),
    ///                sysext_hierarchy_status_get_mutable_mode(h, &mode) ? sysext_mutable_mode_to_string(mode) : "?");
    ///         for (size_t e = 0; e < sysext_hierarchy_status_extensions_count(h); e++)
    ///                 printf(" %s", sysext_hierarchy_status_get_extension(h, e));
    ///         printf("\n");
    /// }
    /// return 0;
    /// ```
    ///
    /// # Safety
    /// `context` is NULL or a live context; `ret_status` and `ret_error` are NULL or valid for
    /// writing a pointer.
    ///
    /// Thread safety: may be called from several threads at once on the same context.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_context_status(
        context: *const sysext_context,
        ret_status: *mut *mut sysext_status,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_context_status";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `context` is NULL or a live context.
            let c = unsafe { arg(context, F, "context") }?;
            // SAFETY: by the function's contract, `ret_status` is NULL or valid for writing a
            // pointer.
            let slot = unsafe { out(ret_status, F, "ret_status") }?;
            let st = c.ctx.status()?;
            slot.write(handle::to_boxed_mut_ptr::<sysext_status>(StatusData::from(st)));
            Ok(())
        })
    }
}

/// Copy a list of extension names, refusing an empty one.
///
/// # Safety
/// `names` is NULL or points to `n` pointers, each NULL (refused) or a NUL-terminated
/// string.
unsafe fn names_arg(
    names: *const *const c_char,
    n: usize,
    func: &'static str,
) -> CResult<Vec<String>> {
    // SAFETY: `names_arg`'s contract is `str_array_arg`'s.
    let v = unsafe { str_array_arg(names, n, func, "names") }?;
    if v.is_empty() {
        return Err(crate::error::ErrorData::invalid(format!(
            "{func}: no names given"
        )));
    }
    Ok(v)
}
