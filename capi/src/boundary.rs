//! The panic boundary and argument helpers shared by every export.
//!
//! Every exported function body runs inside [`ffi_boundary!`]: a panic is caught with
//! `catch_unwind` and becomes `-ENOTRECOVERABLE` (fallible functions, with a
//! `SYSEXT_ERROR_KIND_PANIC` error object) or a typed default (NULL, 0, false) for
//! functions that cannot fail. Unwinding into C would be undefined behaviour.

use crate::error::{sysext_error, ErrorData};
use crate::handle::{self, Castable, OwnershipBox};
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the body of a fallible export returns.
pub(crate) type CResult<T> = Result<T, ErrorData>;

/// Run the body of an export with a panic boundary.
///
/// - `ffi_boundary!(ret_error => { body })`: `body` evaluates to `CResult<()>`; the export
///   returns 0, or the negated errno and stores the error in `*ret_error` (if not NULL).
///   A `*ret_error` that is not NULL on entry is refused with `-EINVAL` before `body`
///   runs (see [`run_fallible`]).
/// - `ffi_boundary!(default => value, { body })`: `body` evaluates to the return value;
///   a panic returns `value` instead.
///
/// Unsafe operations in `body` need their own `unsafe {}` blocks: `body` is not in one.
///
/// # Safety
/// The `ret_error =>` arm reads and writes `*ret_error` (through [`run_fallible`]): use it
/// only where `ret_error` is NULL or valid for reading and writing a pointer, that is in
/// an export whose `# Safety` says so of its `ret_error` (or a helper with that contract).
/// The `default =>` arm has no contract.
macro_rules! ffi_boundary {
    (default => $default:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(payload) => {
                $crate::boundary::drop_payload(payload);
                $default
            }
        }
    };
    ($ret_error:expr => $body:block) => {{
        let ret_error: *mut *mut $crate::error::sysext_error = $ret_error;
        let body = || -> $crate::boundary::CResult<()> { $body };
        // SAFETY: the contract of this arm (see the macro's `# Safety`): every export that
        // uses it says in its `# Safety` that `ret_error` is NULL or valid for writing a
        // pointer, and the header's conventions that `*ret_error` is NULL on entry (so it
        // can be read); that is `run_fallible`'s contract.
        unsafe { $crate::boundary::run_fallible(ret_error, body) }
    }};
}

/// Drop a panic payload without letting a panicking `Drop` escape.
pub(crate) fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// The fallible half of [`ffi_boundary!`].
///
/// The contract is GLib's for `GError **`: `*ret_error` must be NULL on entry. An error
/// left there from an earlier call would otherwise be overwritten and leak, so such a call
/// does nothing at all and returns `-EINVAL`, leaving `*ret_error` (still the caller's to
/// free) untouched, as sd-bus refuses a `sd_bus_error` that is already set.
///
/// # Safety
/// `ret_error` is NULL or valid for a read and a write of a pointer.
pub(crate) unsafe fn run_fallible(
    ret_error: *mut *mut sysext_error,
    f: impl FnOnce() -> CResult<()>,
) -> c_int {
    // SAFETY: by the contract, `ret_error` (not NULL here) is valid for reading a pointer.
    if !ret_error.is_null() && !unsafe { *ret_error }.is_null() {
        return -libc::EINVAL;
    }
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(&*payload);
            drop_payload(payload);
            Err(ErrorData::panic(&msg))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let code = -e.errno;
            if !ret_error.is_null() {
                // Allocation failure aborts; nothing here can unwind.
                let error = handle::to_boxed_mut_ptr::<sysext_error>(e);
                // SAFETY: by the contract, `ret_error` (not NULL here) is valid for writing a
                // pointer; the old value is NULL (checked above), so nothing is lost.
                unsafe { *ret_error = error };
            }
            code
        }
    }
}

/// A required handle argument; NULL is `-EINVAL`.
///
/// # Safety
/// `p` is NULL or a live handle of type `C`.
pub(crate) unsafe fn arg<'a, C: Castable>(
    p: *const C,
    func: &str,
    name: &str,
) -> CResult<&'a C::RustType> {
    // SAFETY: by the contract, `p` is NULL or a live handle of type `C`.
    unsafe { handle::try_ref(p) }.ok_or_else(|| ErrorData::null(func, name))
}

/// A required mutable (Box-owned) handle argument; NULL is `-EINVAL`.
///
/// # Safety
/// `p` is NULL or a live handle of type `C` not used by another thread.
pub(crate) unsafe fn arg_mut<'a, C: Castable<Ownership = OwnershipBox>>(
    p: *mut C,
    func: &str,
    name: &str,
) -> CResult<&'a mut C::RustType> {
    // SAFETY: by the contract, `p` is NULL or a live Box handle of type `C` that no other
    // thread uses meanwhile.
    unsafe { handle::try_mut(p) }.ok_or_else(|| ErrorData::null(func, name))
}

/// A required out-param; NULL is `-EINVAL`. Write to it (`MaybeUninit::write`) only once
/// everything succeeded.
///
/// # Safety
/// `p` is NULL or valid for a write of a `T`, which nothing else uses during the call.
pub(crate) unsafe fn out<'a, T>(
    p: *mut T,
    func: &str,
    name: &str,
) -> CResult<&'a mut MaybeUninit<T>> {
    // SAFETY: `out`'s contract is `opt_out`'s.
    unsafe { opt_out(p) }.ok_or_else(|| ErrorData::null(func, name))
}

/// An optional out-param: `None` for NULL.
///
/// The memory behind an out-param need not hold a valid `T` yet (a C caller may pass an
/// uninitialised variable), so it is borrowed as `MaybeUninit<T>`, which can only be
/// written; a write does not drop the old contents.
///
/// # Safety
/// `p` is NULL or valid for a write of a `T`, which nothing else uses during the call.
pub(crate) unsafe fn opt_out<'a, T>(p: *mut T) -> Option<&'a mut MaybeUninit<T>> {
    // SAFETY: by the contract, `p` is NULL or aligned and valid for writing a `T` and not
    // used by anyone else meanwhile. `MaybeUninit<T>` has the layout of `T` and no validity
    // invariant, so a reference to it is sound whatever the memory holds.
    unsafe { p.cast::<MaybeUninit<T>>().as_mut() }
}

/// A required UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn str_arg(p: *const c_char, func: &str, name: &str) -> CResult<String> {
    if p.is_null() {
        return Err(ErrorData::null(func, name));
    }
    // SAFETY: by the contract, `p` (not NULL here) is a NUL-terminated string; it is copied
    // before this returns, while the C caller keeps it alive and unchanged.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(str::to_string)
        .map_err(|_| ErrorData::invalid(format!("{func}: {name} is not valid UTF-8")))
}

/// An optional UTF-8 string argument (NULL is `None`).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn opt_str_arg(
    p: *const c_char,
    func: &str,
    name: &str,
) -> CResult<Option<String>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: by the contract, `p` is a NUL-terminated string.
        unsafe { str_arg(p, func, name) }.map(Some)
    }
}

/// An array of `n` UTF-8 strings; NULL is allowed only when `n == 0`.
///
/// # Safety
/// `p` is NULL or points to `n` pointers, each NULL (refused) or a NUL-terminated string.
pub(crate) unsafe fn str_array_arg(
    p: *const *const c_char,
    n: usize,
    func: &str,
    name: &str,
) -> CResult<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(ErrorData::null(func, name));
    }
    // SAFETY: by the contract, `p` (not NULL here) points to `n` initialised, aligned
    // pointers, which the C caller does not change during the call; an array that exists
    // is smaller than `isize::MAX` bytes.
    let items = unsafe { std::slice::from_raw_parts(p, n) };
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // SAFETY: by the contract, each of the `n` pointers is NULL (which `str_arg`
            // refuses) or a NUL-terminated string.
            unsafe { str_arg(*s, func, &format!("{name}[{i}]")) }
        })
        .collect()
}

/// A C string from Rust text; NUL bytes (which C cannot represent) are dropped.
pub(crate) fn cstring(s: impl Into<String>) -> CString {
    let mut bytes = s.into().into_bytes();
    bytes.retain(|b| *b != 0);
    CString::new(bytes).unwrap_or_default()
}

/// Borrow an optional C string as a pointer (NULL for `None`).
pub(crate) fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// The `i`-th string of a list, NULL when out of range.
pub(crate) fn nth_ptr(v: &[CString], i: usize) -> *const c_char {
    v.get(i).map_or(std::ptr::null(), |c| c.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::sysext_error_kind;

    #[test]
    fn panic_becomes_enotrecoverable_with_error_object() {
        let mut err: *mut sysext_error = std::ptr::null_mut();
        // The macro's contract: `err` is a valid out-param holding NULL.
        let rc = ffi_boundary!(&mut err => { panic!("boom") });
        assert_eq!(rc, -libc::ENOTRECOVERABLE);
        assert!(!err.is_null());
        // SAFETY: `err` was just produced by the boundary.
        let e = unsafe { handle::try_ref(err as *const sysext_error) }.unwrap();
        assert_eq!(e.kind, sysext_error_kind::Panic);
        assert_eq!(e.errno, libc::ENOTRECOVERABLE);
        assert!(
            e.message.to_str().unwrap().contains("boom"),
            "{:?}",
            e.message
        );
        // SAFETY: owned by us.
        unsafe { handle::free_box(err) };
    }

    #[test]
    fn panic_in_infallible_returns_default() {
        let v: *const c_char = ffi_boundary!(default => std::ptr::null(), { panic!("boom") });
        assert!(v.is_null());
        let v: usize = ffi_boundary!(default => 0, { 7 });
        assert_eq!(v, 7);
    }

    #[test]
    fn success_leaves_ret_error_alone() {
        let mut err: *mut sysext_error = std::ptr::null_mut();
        // The macro's contract: `err` is a valid out-param holding NULL.
        let rc = ffi_boundary!(&mut err => { Ok(()) });
        assert_eq!(rc, 0);
        assert!(err.is_null());
    }

    #[test]
    fn an_error_already_set_is_refused_before_the_body_runs() {
        let first = handle::to_boxed_mut_ptr::<sysext_error>(ErrorData::invalid("first"));
        let mut err = first;
        let mut ran = false;
        // The macro's contract: `err` is a valid out-param (holding a live error).
        let rc = ffi_boundary!(&mut err => {
            ran = true;
            Err(ErrorData::invalid("second"))
        });
        assert_eq!(rc, -libc::EINVAL);
        assert!(!ran, "the call must not run");
        assert_eq!(err, first, "the caller's error is left as it was");
        // SAFETY: still owned by us, freed once.
        unsafe { handle::free_box(err) };
    }

    #[test]
    fn failure_with_null_ret_error_only_returns_the_code() {
        // The macro's contract: a NULL ret_error is allowed.
        let rc = ffi_boundary!(std::ptr::null_mut() => { Err(ErrorData::invalid("x")) });
        assert_eq!(rc, -libc::EINVAL);
    }

    #[test]
    fn cstring_drops_nul_bytes() {
        assert_eq!(cstring("a\0b").to_str().unwrap(), "ab");
    }

    #[test]
    fn c_string_arrays_convert_or_fail_by_name() {
        let a = CString::new("a").unwrap();
        let b = CString::new("b").unwrap();
        let v = [a.as_ptr(), b.as_ptr()];
        // SAFETY: valid array of 2 strings.
        let got = unsafe { str_array_arg(v.as_ptr(), 2, "f", "names") }.unwrap();
        assert_eq!(got, ["a", "b"]);
        // SAFETY: NULL with n == 0 is allowed.
        assert!(unsafe { str_array_arg(std::ptr::null(), 0, "f", "names") }
            .unwrap()
            .is_empty());
        // SAFETY: NULL with n > 0 is refused before any read.
        let e = unsafe { str_array_arg(std::ptr::null(), 1, "f", "names") }.unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        let with_null = [a.as_ptr(), std::ptr::null()];
        // SAFETY: an array of 2 pointers, the second NULL.
        let e = unsafe { str_array_arg(with_null.as_ptr(), 2, "f", "names") }.unwrap_err();
        assert!(e.message.to_str().unwrap().contains("names[1]"));
    }
}
