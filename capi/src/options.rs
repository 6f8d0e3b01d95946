//! `sysext_options`: the builder of a context.

use crate::boundary::{arg_mut, opt_str_arg, str_arg, str_array_arg};
use crate::error::{sysext_error, ErrorData};
use crate::handle::{self, Castable, OwnershipBox};
use crate::log::{sysext_log_callback, CallbackSink};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Duration;
use sysext::{Compat, Hierarchy, ImageClass, MutableMode, Options};

/// Which kind of extension images a context handles.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_image_class {
    /// System extensions (`systemd-sysext`): merged onto `/usr` and `/opt`, found in
    /// `/etc/extensions`, `/run/extensions`, `/var/lib/extensions`.
    Sysext = 0,
    /// Configuration extensions (`systemd-confext`): merged onto `/etc`, found in
    /// `/run/confexts`, `/var/lib/confexts`, `/usr/local/lib/confexts`, `/usr/lib/confexts`.
    Confext = 1,
}

impl sysext_image_class {
    pub(crate) fn from_c(v: c_int) -> Option<ImageClass> {
        match v {
            0 => Some(ImageClass::Sysext),
            1 => Some(ImageClass::Confext),
            _ => None,
        }
    }

    pub(crate) fn from_core(c: ImageClass) -> Self {
        match c {
            ImageClass::Sysext => sysext_image_class::Sysext,
            ImageClass::Confext => sysext_image_class::Confext,
        }
    }
}

/// Whether and how merged hierarchies are writable (systemd's `--mutable=`).
///
/// The mutable directory of a hierarchy is `/var/lib/extensions.mutable/<hierarchy>`
/// below the root (`usr`, `opt`, `etc`, `usr.local`, ...). If it is a symlink to the
/// hierarchy itself (`var/lib/extensions.mutable/usr -> /usr`), writes in modes `ENABLED`
/// and `AUTO` land in the base hierarchy.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_mutable_mode {
    /// `no`: read-only merge (the default).
    Disabled = 0,
    /// `yes`: the mutable directory is created if missing and used as the upper dir.
    Enabled = 1,
    /// `auto`: the mutable directory is the upper dir if it exists; read-only otherwise.
    Auto = 2,
    /// `import`: the mutable directory is a read-only layer above the extensions.
    Import = 3,
    /// `ephemeral`: writes go to a private tmpfs and vanish on unmerge.
    Ephemeral = 4,
    /// `ephemeral-import`: `ephemeral` plus the mutable directory as a read-only layer.
    EphemeralImport = 5,
}

impl sysext_mutable_mode {
    pub(crate) fn from_c(v: c_int) -> Option<MutableMode> {
        Some(match v {
            0 => MutableMode::Disabled,
            1 => MutableMode::Enabled,
            2 => MutableMode::Auto,
            3 => MutableMode::Import,
            4 => MutableMode::Ephemeral,
            5 => MutableMode::EphemeralImport,
            _ => return None,
        })
    }

    pub(crate) fn from_core(m: MutableMode) -> Self {
        match m {
            MutableMode::Disabled => sysext_mutable_mode::Disabled,
            MutableMode::Enabled => sysext_mutable_mode::Enabled,
            MutableMode::Auto => sysext_mutable_mode::Auto,
            MutableMode::Import => sysext_mutable_mode::Import,
            MutableMode::Ephemeral => sysext_mutable_mode::Ephemeral,
            MutableMode::EphemeralImport => sysext_mutable_mode::EphemeralImport,
        }
    }
}

/// Settings for `sysext_context_new()`: image class, root, mutable mode, log callback, ...
///
/// Created by `sysext_options_new()`, changed by the `sysext_options_set_*()` setters and
/// freed by `sysext_options_free()`. A context copies the options it is created from, so
/// they can be changed or freed afterwards.
///
/// Thread safety: setters need exclusive access; `sysext_context_new()` may read the same
/// options from several threads at once when nobody changes them.
#[derive(Debug)]
pub struct sysext_options {
    _private: [u8; 0],
}

impl Castable for sysext_options {
    type Ownership = OwnershipBox;
    type RustType = Options;
}

fn tristate(v: c_int) -> Option<bool> {
    match v {
        v if v < 0 => None,
        0 => Some(false),
        _ => Some(true),
    }
}

impl sysext_options {
    /// Create options for an image class (`SYSEXT_IMAGE_CLASS_SYSEXT` or
    /// `SYSEXT_IMAGE_CLASS_CONFEXT`), with systemd's defaults: the host's `/` as root,
    /// the mutable mode from `SYSTEMD_SYSEXT_MUTABLE_MODE`/`SYSTEMD_CONFEXT_MUTABLE_MODE`
    /// (else `no`), hierarchies from `SYSTEMD_SYSEXT_HIERARCHIES`/`SYSTEMD_CONFEXT_HIERARCHIES`
    /// (else the class defaults), no force, no log callback, waiting for the lock forever.
    ///
    /// Returns NULL if `image_class` is not a `SYSEXT_IMAGE_CLASS_*` value.
    /// Free the result with `sysext_options_free()`.
    ///
    /// Thread safety: may be called from any thread.
    #[no_mangle]
    pub extern "C" fn sysext_options_new(image_class: c_int) -> *mut sysext_options {
        ffi_boundary!(default => std::ptr::null_mut(), {
            match sysext_image_class::from_c(image_class) {
                Some(c) => handle::to_boxed_mut_ptr::<sysext_options>(Options::new(c)),
                None => std::ptr::null_mut(),
            }
        })
    }

    /// Free options. NULL is allowed and does nothing. Contexts created from them are not
    /// affected.
    ///
    /// # Safety
    /// `options` is NULL or options not freed yet; it must not be used afterwards.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_free(options: *mut sysext_options) {
        ffi_boundary!(default => (), {
            // SAFETY: by the function's contract, `options` is NULL or options not freed yet; every
            // such handle was made by `to_boxed_mut_ptr`.
            unsafe { handle::free_box(options) }
        })
    }

    /// Set the root directory below which everything happens (systemd's `--root=`);
    /// NULL restores the default, the host's `/`. A relative path is made absolute
    /// against the current directory when the context is created.
    ///
    /// The directory must exist when `sysext_context_new()` runs (else `-ENOENT`). Paths in
    /// messages, plans and reports carry the root as a prefix.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL or `root` is not UTF-8.
    ///
    /// # Safety
    /// `options` is NULL or live options; `root` is NULL or a NUL-terminated string (copied);
    /// `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_root(
        options: *mut sysext_options,
        root: *const c_char,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_root";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            // SAFETY: by the function's contract, `root` is NULL or a NUL-terminated string.
            o.root = unsafe { opt_str_arg(root, F, "root") }?;
            Ok(())
        })
    }

    /// Set the mutable mode (systemd's `--mutable=`) to a `SYSEXT_MUTABLE_MODE_*` value.
    /// This overrides the `SYSTEMD_*_MUTABLE_MODE` environment variable.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL or `mode` is not a
    /// `SYSEXT_MUTABLE_MODE_*` value.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_mutable_mode(
        options: *mut sysext_options,
        mode: c_int,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_mutable_mode";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            let m = sysext_mutable_mode::from_c(mode)
                .ok_or_else(|| ErrorData::invalid(format!("Invalid mutable mode value {mode}")))?;
            o.mutable = Some(m);
            Ok(())
        })
    }

    /// Set the mutable mode from its systemd spelling: `no`, `yes`, `auto`, `import`,
    /// `ephemeral`, `ephemeral-import`, a boolean (`1`, `true`, `on`, `0`, `off`, ..., any case),
    /// or `enabled`/`disabled`. NULL restores the default (the `SYSTEMD_*_MUTABLE_MODE`
    /// environment variable, else `no`).
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL or the string is not a mode; the options
    /// are unchanged then.
    ///
    /// # Safety
    /// `options` is NULL or live options; `mode` is NULL or a NUL-terminated string;
    /// `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_mutable_mode_string(
        options: *mut sysext_options,
        mode: *const c_char,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_mutable_mode_string";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            // SAFETY: by the function's contract, `mode` is NULL or a NUL-terminated string.
            o.mutable = match unsafe { opt_str_arg(mode, F, "mode") }? {
                None => None,
                Some(s) => Some(s.parse::<MutableMode>()?),
            };
            Ok(())
        })
    }

    /// Choose the compatibility level: the systemd release whose behaviour is followed where
    /// releases differ (`257` or `262`), or 0 for the default (`LIBSYSEXT_COMPAT`, else the
    /// newest level, 262).
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL or `level` is none of these; the options
    /// are unchanged then.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_compat(
        options: *mut sysext_options,
        level: c_int,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_compat";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.compat = match level {
                0 => None,
                l => Some(Compat::parse(&l.to_string()).ok_or_else(|| {
                    ErrorData::invalid(format!("Invalid compatibility level {l} (known: 257, 262)"))
                })?),
            };
            Ok(())
        })
    }

    /// Skip the compatibility checks of extension-release files (systemd's `--force`).
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_force(
        options: *mut sysext_options,
        force: bool,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_force";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.force = force;
            Ok(())
        })
    }

    /// Do not work out whether the service manager needs a reload (systemd's
    /// `--no-reload`); `sysext_report_needs_reload()` is then always false. An explicit root
    /// (`sysext_options_set_root()` with a non-NULL path) implies this, as in systemd.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_no_reload(
        options: *mut sysext_options,
        no_reload: bool,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_no_reload";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.no_reload = no_reload;
            Ok(())
        })
    }

    /// Use block device nodes found in the search directories of an explicit root
    /// (`sysext_options_set_root()`; the CLI's `--allow-block-devices`). By default they
    /// are skipped there: a device node below a root can name any disk of the machine,
    /// so its content would come from outside the root. On the host's own root they are
    /// always used, as systemd does.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_allow_block_devices(
        options: *mut sysext_options,
        allow_block_devices: bool,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_allow_block_devices";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.allow_block_devices = allow_block_devices;
            Ok(())
        })
    }

    /// Make `sysext_context_refresh()` rebuild the merge even when nothing changed
    /// (systemd 260's `--always-refresh`); by default a refresh whose inputs equal those of
    /// the current merge does nothing.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_always_refresh(
        options: *mut sysext_options,
        always_refresh: bool,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_always_refresh";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.always_refresh = always_refresh;
            Ok(())
        })
    }

    /// Mount merged hierarchies `noexec` (systemd's `--noexec=`): a tri-state, negative for
    /// the class default (sysext: exec allowed, confext: `noexec`), 0 for off, positive for on.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_noexec(
        options: *mut sysext_options,
        noexec: c_int,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_noexec";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.noexec = tristate(noexec);
            Ok(())
        })
    }

    /// Whether to behave as in the initrd (search `/.extra/sysext` and accept
    /// `SYSEXT_SCOPE=initrd`): a tri-state, negative to detect it (at level 262
    /// `etc/initrd-release` below the root; at 257 `SYSTEMD_IN_INITRD`, else the host's
    /// `/etc/initrd-release`), 0 for no, positive for yes.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_initrd(
        options: *mut sysext_options,
        initrd: c_int,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_initrd";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.initrd = tristate(initrd);
            Ok(())
        })
    }

    /// Set the image policy (systemd's `--image-policy=`, e.g. `root=verity+signed:=absent`)
    /// that image files must satisfy; NULL restores the default.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL or `policy` is not a valid policy; the
    /// options are unchanged then.
    ///
    /// # Safety
    /// `options` is NULL or live options; `policy` is NULL or a NUL-terminated string (copied);
    /// `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_image_policy(
        options: *mut sysext_options,
        policy: *const c_char,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_image_policy";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            // SAFETY: by the function's contract, `policy` is NULL or a NUL-terminated string.
            let p = unsafe { opt_str_arg(policy, F, "policy") }?;
            if let Some(p) = &p {
                sysext::image::ImagePolicy::parse(p).map_err(|e| {
                    ErrorData::invalid(format!("Failed to parse image policy: {p}: {e}"))
                })?;
            }
            o.image_policy = p;
            Ok(())
        })
    }

    /// Set the overlayfs mount options of every overlay, comma-separated as `mount -o` takes
    /// them (e.g. `"xino=off,noatime"`): what systemd 259 reads from
    /// `$SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS`, which the library itself never reads. A list,
    /// even `""`, replaces the defaults (a writable merge gets
    /// `redirect_dir=on,noatime,metacopy=off,index=off`, a read-only one none); mount-flag
    /// words (`noatime`, `nosuid`, …) become mount flags. NULL restores the defaults. An
    /// option the kernel refuses makes the merge fail, naming it (`-EINVAL`).
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL or the list names a layer option
    /// (`lowerdir`, `upperdir`, `workdir`, …) or an empty option name; the options are
    /// unchanged then.
    ///
    /// # Safety
    /// `options` is NULL or live options; `mount_options` is NULL or a NUL-terminated string
    /// (copied); `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_overlay_options(
        options: *mut sysext_options,
        mount_options: *const c_char,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_overlay_options";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            // SAFETY: by the function's contract, `mount_options` is NULL or a NUL-terminated
            // string.
            let p = unsafe { opt_str_arg(mount_options, F, "mount_options") }?;
            if let Some(p) = &p {
                sysext::overlayopts::OverlayOptions::parse(p)
                    .map_err(|e| ErrorData::invalid(e.to_string()))?;
            }
            o.overlay_options = p;
            Ok(())
        })
    }

    /// Set the hierarchies to merge onto, in order (like `SYSTEMD_SYSEXT_HIERARCHIES`):
    /// an array of `n_hierarchies` absolute, normalised paths other than `/`, such as
    /// `"/usr"` and `"/opt"`. `hierarchies == NULL` with `n_hierarchies == 0` restores the
    /// default (the environment variable, else the class defaults).
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL, the list is empty, or a path is
    /// invalid; the options are unchanged then.
    ///
    /// # Safety
    /// `options` is NULL or live options; `hierarchies` is NULL or points to
    /// `n_hierarchies` NUL-terminated strings (copied); `ret_error` is NULL or valid for
    /// writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_hierarchies(
        options: *mut sysext_options,
        hierarchies: *const *const c_char,
        n_hierarchies: usize,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_hierarchies";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            if hierarchies.is_null() && n_hierarchies == 0 {
                o.hierarchies = None;
                return Ok(());
            }
            // SAFETY: by the function's contract, `hierarchies` is NULL or points to
            // `n_hierarchies` NUL-terminated strings.
            let list = unsafe { str_array_arg(hierarchies, n_hierarchies, F, "hierarchies") }?;
            if list.is_empty() {
                return Err(ErrorData::invalid(format!(
                    "{F}: the list of hierarchies is empty"
                )));
            }
            for h in &list {
                Hierarchy::new(h)?;
            }
            o.hierarchies = Some(list);
            Ok(())
        })
    }

    /// How long merge, unmerge and refresh wait for the lock of the root (taken so that
    /// two processes never change the same hierarchies at once): negative to wait forever
    /// (the default), 0 to fail at once with `-EWOULDBLOCK` if it is held, else milliseconds.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_lock_timeout_ms(
        options: *mut sysext_options,
        timeout_ms: i64,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_lock_timeout_ms";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.lock_timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
            Ok(())
        })
    }

    /// Install the log callback of contexts created from these options, with a pointer
    /// passed back to it unchanged; `callback == NULL` removes it (nothing is logged then).
    /// The library never prints: this is the only way to see its progress messages and why
    /// extensions were skipped. See `sysext_log_callback` for the calling rules.
    ///
    /// Returns 0, or `-EINVAL` if `options` is NULL.
    ///
    /// # Safety
    /// `options` is NULL or live options; `callback` is NULL or a function following the
    /// rules of `sysext_log_callback`; `userdata` stays valid as long as a context created
    /// from these options lives; `ret_error` is NULL or valid for writing a pointer.
    ///
    /// Thread safety: needs exclusive access to `options`. The callback runs on whichever
    /// thread calls into the context; `userdata` must be safe to use from those threads.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_options_set_log_callback(
        options: *mut sysext_options,
        callback: sysext_log_callback,
        userdata: *mut c_void,
        ret_error: *mut *mut sysext_error,
    ) -> c_int {
        const F: &str = "sysext_options_set_log_callback";
        ffi_boundary!(ret_error => {
            // SAFETY: by the function's contract, `options` is NULL or live options, to which
            // the caller has exclusive access (its thread safety).
            let o = unsafe { arg_mut(options, F, "options") }?;
            o.sink = match callback {
                Some(cb) => Arc::new(CallbackSink::new(cb, userdata)),
                None => Arc::new(sysext::event::NullSink),
            };
            Ok(())
        })
    }
}

/// The systemd spelling of a mutable mode (`"no"`, `"yes"`, `"auto"`, `"import"`,
/// `"ephemeral"`, `"ephemeral-import"`), or NULL if `mode` is not a
/// `SYSEXT_MUTABLE_MODE_*` value. The string is static.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn sysext_mutable_mode_to_string(mode: c_int) -> *const c_char {
    ffi_boundary!(default => std::ptr::null(), {
        match sysext_mutable_mode::from_c(mode) {
            Some(m) => mode_cstr(m).as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// Parse a mutable mode as `sysext_options_set_mutable_mode_string()` does and store its
/// `SYSEXT_MUTABLE_MODE_*` value in `*ret_mode`.
///
/// Returns 0, or `-EINVAL` if an argument is NULL or the string is not a mode.
///
/// # Safety
/// `mode` is NULL or a NUL-terminated string; `ret_mode` is NULL or valid for a write;
/// `ret_error` is NULL or valid for writing a pointer.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub unsafe extern "C" fn sysext_mutable_mode_from_string(
    mode: *const c_char,
    ret_mode: *mut sysext_mutable_mode,
    ret_error: *mut *mut sysext_error,
) -> c_int {
    const F: &str = "sysext_mutable_mode_from_string";
    ffi_boundary!(ret_error => {
        // SAFETY: by the function's contract, `mode` is NULL or a NUL-terminated string.
        let s = unsafe { str_arg(mode, F, "mode") }?;
        // SAFETY: by the function's contract, `ret_mode` is NULL or valid for a write.
        let out = unsafe { crate::boundary::out(ret_mode, F, "ret_mode") }?;
        let m: MutableMode = s.parse()?;
        out.write(sysext_mutable_mode::from_core(m));
        Ok(())
    })
}

/// The name of an image class (`"sysext"`, `"confext"`), or NULL if `image_class` is not a
/// `SYSEXT_IMAGE_CLASS_*` value. The string is static.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn sysext_image_class_to_string(image_class: c_int) -> *const c_char {
    ffi_boundary!(default => std::ptr::null(), {
        match sysext_image_class::from_c(image_class) {
            Some(ImageClass::Sysext) => c"sysext".as_ptr(),
            Some(ImageClass::Confext) => c"confext".as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// The systemd spelling of a mode as a static C string.
pub(crate) fn mode_cstr(m: MutableMode) -> &'static std::ffi::CStr {
    match m {
        MutableMode::Disabled => c"no",
        MutableMode::Enabled => c"yes",
        MutableMode::Auto => c"auto",
        MutableMode::Import => c"import",
        MutableMode::Ephemeral => c"ephemeral",
        MutableMode::EphemeralImport => c"ephemeral-import",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_round_trip_with_core() {
        for m in MutableMode::ALL {
            let c = sysext_mutable_mode::from_core(m);
            assert_eq!(sysext_mutable_mode::from_c(c as c_int), Some(m));
            let s = sysext_mutable_mode_to_string(c as c_int);
            // SAFETY: a known mode gives a static string, not NULL.
            let name = unsafe { std::ffi::CStr::from_ptr(s) };
            assert_eq!(name.to_str().unwrap(), m.as_str());
        }
        assert_eq!(sysext_mutable_mode::from_c(6), None);
        assert_eq!(sysext_mutable_mode::from_c(-1), None);
        assert!(sysext_mutable_mode_to_string(99).is_null());
        for c in [ImageClass::Sysext, ImageClass::Confext] {
            assert_eq!(
                sysext_image_class::from_c(sysext_image_class::from_core(c) as c_int),
                Some(c)
            );
        }
    }

    #[test]
    fn c_tristates_map_negative_to_unset_and_nonzero_to_true() {
        assert_eq!(tristate(-1), None);
        assert_eq!(tristate(0), Some(false));
        assert_eq!(tristate(2), Some(true));
    }
}
