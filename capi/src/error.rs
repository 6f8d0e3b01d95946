//! `sysext_error`: the detailed error object of a failed call.

use crate::boundary::cstring;
use crate::handle::{self, Castable, OwnershipBox};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

/// Stable classification of errors (`sysext_error_get_kind()`).
///
/// Values are never reused; new kinds may be added, so handle unknown values.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_error_kind {
    /// An error this version of the header does not know (future kinds).
    Unknown = 0,
    /// A hierarchy is already merged (`merge` without unmerging first); errno `EBUSY`.
    AlreadyMerged = 1,
    /// The operation needs `CAP_SYS_ADMIN`; errno `EPERM`.
    NotPrivileged = 2,
    /// A release file (os-release or extension-release) is missing or unusable (a FIFO,
    /// device node or file over 4 MiB is refused), or an image has none.
    ReleaseFile = 3,
    /// A named extension is not compatible with the host (`merge_names`); errno `ENOMEDIUM`.
    IncompatibleExtension = 4,
    /// The mutable directory (`/var/lib/extensions.mutable/...`) cannot be used as requested.
    MutableDir = 5,
    /// An image does not satisfy the image policy.
    ImagePolicy = 6,
    /// An image file is malformed or cannot be used; the message names its path, the
    /// part at fault (file system superblock, GPT partition table, partition N, verity
    /// tree, verity signature) and what is wrong. errno as systemd's where it fails such
    /// an image: `ENOPKG` (nothing recognised, broken partition table), `EAFNOSUPPORT`
    /// (a partition without a known file system), `ENXIO`/`ENOTUNIQ`/`EADDRNOTAVAIL` (no
    /// usable partition), `EOPNOTSUPP` (needs dm-verity); `EBADMSG` for a truncated file
    /// system or a verity mismatch, `EPERM` for a block device below an explicit root
    /// that is not allowed.
    Image = 7,
    /// An argument is invalid: a NULL pointer, a bad mode string, a bad hierarchy, an
    /// unknown extension name; errno `EINVAL` (`ENOENT` for an unknown name).
    InvalidArgument = 8,
    /// Another process holds the lock of this root and class; errno `EWOULDBLOCK`.
    Busy = 9,
    /// A system call failed; the errno is the system call's.
    Os = 10,
    /// A named extension is not part of the current merge (`unmerge_names`); errno `ENOENT`.
    NotMerged = 11,
    /// The library panicked (a bug); errno `ENOTRECOVERABLE`. The context stays usable
    /// only as far as the failed call had no effect.
    Panic = 12,
}

impl From<sysext::ErrorKind> for sysext_error_kind {
    fn from(k: sysext::ErrorKind) -> Self {
        use sysext::ErrorKind as K;
        match k {
            K::AlreadyMerged => sysext_error_kind::AlreadyMerged,
            K::NotPrivileged => sysext_error_kind::NotPrivileged,
            K::ReleaseFile => sysext_error_kind::ReleaseFile,
            K::IncompatibleExtension => sysext_error_kind::IncompatibleExtension,
            K::MutableDir => sysext_error_kind::MutableDir,
            K::ImagePolicy => sysext_error_kind::ImagePolicy,
            K::Image => sysext_error_kind::Image,
            K::InvalidArgument => sysext_error_kind::InvalidArgument,
            K::Busy => sysext_error_kind::Busy,
            K::Os => sysext_error_kind::Os,
            K::NotMerged => sysext_error_kind::NotMerged,
            _ => sysext_error_kind::Unknown,
        }
    }
}

/// A detailed error: message, errno, kind, and the path, hierarchy and extension it is
/// about.
///
/// Returned through the optional last parameter `sysext_error **ret_error` of fallible
/// functions, only when they fail; free it with `sysext_error_free()` (or declare the
/// variable with `__attribute__((cleanup(sysext_error_freep)))`).
///
/// As with GLib's `GError **`, `*ret_error` must be NULL on entry: a call given a
/// `*ret_error` that still holds an error does nothing and returns `-EINVAL`, leaving that
/// error in place (never overwritten, never leaked). Free an error and reset the
/// variable to NULL before passing it again.
#[derive(Debug)]
pub struct sysext_error {
    _private: [u8; 0],
}

/// What a `sysext_error` holds.
#[derive(Debug)]
pub(crate) struct ErrorData {
    /// Human-readable message, like systemd's.
    pub message: CString,
    /// Positive errno.
    pub errno: c_int,
    /// Classification.
    pub kind: sysext_error_kind,
    /// The object, where there is one.
    pub path: Option<CString>,
    /// The hierarchy (`/usr`), where the error names one.
    pub hierarchy: Option<CString>,
    /// The extension (image name), where the error names one.
    pub extension: Option<CString>,
}

impl Castable for sysext_error {
    type Ownership = OwnershipBox;
    type RustType = ErrorData;
}

impl ErrorData {
    fn new(
        kind: sysext_error_kind,
        errno: c_int,
        message: impl Into<String>,
        path: Option<String>,
    ) -> ErrorData {
        let errno = if errno > 0 { errno } else { libc::EIO };
        ErrorData {
            message: cstring(message),
            errno,
            kind,
            path: path.map(cstring),
            hierarchy: None,
            extension: None,
        }
    }

    /// An invalid argument (`-EINVAL`).
    pub fn invalid(message: impl Into<String>) -> ErrorData {
        ErrorData::new(
            sysext_error_kind::InvalidArgument,
            libc::EINVAL,
            message,
            None,
        )
    }

    /// A required pointer argument was NULL.
    pub fn null(func: &str, name: &str) -> ErrorData {
        ErrorData::invalid(format!("{func}: {name} must not be NULL"))
    }

    /// A panic was caught.
    pub fn panic(message: &str) -> ErrorData {
        ErrorData::new(
            sysext_error_kind::Panic,
            libc::ENOTRECOVERABLE,
            format!("libsysext panicked (this is a bug): {message}"),
            None,
        )
    }
}

impl From<sysext::Error> for ErrorData {
    fn from(e: sysext::Error) -> ErrorData {
        let mut d = ErrorData::new(e.kind().into(), e.errno(), e.to_string(), e.path());
        d.hierarchy = e.hierarchy().map(cstring);
        d.extension = e.extension().map(cstring);
        d
    }
}

impl sysext_error {
    /// The error message (never NULL for a non-NULL error), valid until the error is freed.
    ///
    /// Returns NULL if `error` is NULL.
    ///
    /// # Safety
    /// `error` is NULL or a live `sysext_error`.
    ///
    /// Thread safety: may be called from any thread, concurrently with other getters.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_error_get_message(error: *const sysext_error) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `error` is NULL or a live `sysext_error`.
            unsafe { handle::try_ref(error) }.map_or(std::ptr::null(), |e| e.message.as_ptr())
        })
    }

    /// The (positive) errno of the error; the failed call returned its negation.
    ///
    /// Returns 0 if `error` is NULL.
    ///
    /// # Safety
    /// `error` is NULL or a live `sysext_error`.
    ///
    /// Thread safety: may be called from any thread, concurrently with other getters.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_error_get_errno(error: *const sysext_error) -> c_int {
        ffi_boundary!(default => 0, {
            // SAFETY: by the function's contract, `error` is NULL or a live `sysext_error`.
            unsafe { handle::try_ref(error) }.map_or(0, |e| e.errno)
        })
    }

    /// The kind of the error.
    ///
    /// Returns `SYSEXT_ERROR_KIND_UNKNOWN` if `error` is NULL.
    ///
    /// # Safety
    /// `error` is NULL or a live `sysext_error`.
    ///
    /// Thread safety: may be called from any thread, concurrently with other getters.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_error_get_kind(
        error: *const sysext_error,
    ) -> sysext_error_kind {
        ffi_boundary!(default => sysext_error_kind::Unknown, {
            // SAFETY: by the function's contract, `error` is NULL or a live `sysext_error`.
            unsafe { handle::try_ref(error) }.map_or(sysext_error_kind::Unknown, |e| e.kind)
        })
    }

    /// The path (file, directory, mount target or image) the error is about, or NULL when
    /// it is about none. Valid until the error is freed.
    ///
    /// # Safety
    /// `error` is NULL or a live `sysext_error`.
    ///
    /// Thread safety: may be called from any thread, concurrently with other getters.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_error_get_path(error: *const sysext_error) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `error` is NULL or a live `sysext_error`.
            unsafe { handle::try_ref(error) }
                .map_or(std::ptr::null(), |e| crate::boundary::opt_ptr(&e.path))
        })
    }

    /// The hierarchy the error is about, as configured (`"/usr"`, without the root prefix;
    /// the root-prefixed path is `sysext_error_get_path()` where it names the hierarchy),
    /// or NULL when it names none: set for `SYSEXT_ERROR_KIND_ALREADY_MERGED` and the
    /// mutable directory, work dir and layer-count errors of one hierarchy. Valid until the
    /// error is freed.
    ///
    /// # Safety
    /// `error` is NULL or a live `sysext_error`.
    ///
    /// Thread safety: may be called from any thread, concurrently with other getters.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_error_get_hierarchy(
        error: *const sysext_error,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `error` is NULL or a live `sysext_error`.
            unsafe { handle::try_ref(error) }
                .map_or(std::ptr::null(), |e| crate::boundary::opt_ptr(&e.hierarchy))
        })
    }

    /// The extension (image name, `"foo"` for `foo.raw`) the error is about, or NULL when
    /// it names none: set for `SYSEXT_ERROR_KIND_NOT_MERGED`,
    /// `SYSEXT_ERROR_KIND_INCOMPATIBLE_EXTENSION`, an unknown name given to
    /// `sysext_context_merge_names()`, `SYSEXT_ERROR_KIND_IMAGE` and a bad release file of
    /// an image. Valid until the error is freed.
    ///
    /// # Safety
    /// `error` is NULL or a live `sysext_error`.
    ///
    /// Thread safety: may be called from any thread, concurrently with other getters.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_error_get_extension(
        error: *const sysext_error,
    ) -> *const c_char {
        ffi_boundary!(default => std::ptr::null(), {
            // SAFETY: by the function's contract, `error` is NULL or a live `sysext_error`.
            unsafe { handle::try_ref(error) }
                .map_or(std::ptr::null(), |e| crate::boundary::opt_ptr(&e.extension))
        })
    }

    /// Free an error. NULL is allowed and does nothing.
    ///
    /// # Safety
    /// `error` is NULL or a `sysext_error` not freed yet; it must not be used afterwards.
    ///
    /// Thread safety: needs exclusive access to `error`.
    #[no_mangle]
    pub unsafe extern "C" fn sysext_error_free(error: *mut sysext_error) {
        ffi_boundary!(default => (), {
            // SAFETY: by the function's contract, `error` is NULL or a `sysext_error` not freed
            // yet; every such handle was made by `to_boxed_mut_ptr`.
            unsafe { handle::free_box(error) }
        })
    }
}
