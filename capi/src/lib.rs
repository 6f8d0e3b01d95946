#![allow(unsafe_code)] // An FFI crate dereferences raw pointers handed in by C.
#![allow(non_camel_case_types)] // C names: `sysext_context`, `sysext_mutable_mode`, ...
#![warn(clippy::undocumented_unsafe_blocks)] // Each `unsafe {}` says why it is sound
#![warn(clippy::multiple_unsafe_ops_per_block)] // and holds one operation.
#![cfg_attr(not(test), warn(clippy::too_many_lines))] // Threshold in clippy.toml.
//! C ABI of libsysext: `libsysext.so.0`, `libsysext.a` and `include/sysext.h`.
//!
//! The header is generated from this crate by cbindgen (config in `capi/cbindgen.toml`)
//! and committed; `capi/tests/header.rs` checks that it is current. Regenerate it with
//! `SYSEXT_BLESS=1 cargo test -p sysext-capi --test header`.
//!
//! Conventions (also at the top of the header):
//! - Fallible functions return `0` on success or a negative errno (`-EBUSY`, ...), and take
//!   an optional last out-param `sysext_error **ret_error` that receives a detailed error
//!   object on failure only.
//! - Handles are opaque; each has exactly one `_free` function, which accepts NULL.
//! - Out-params are written only on success. Strings returned as `const char *` stay
//!   valid until the handle they came from is freed; C never frees them.
//! - No panic crosses the boundary: one turns into `-ENOTRECOVERABLE`
//!   (`SYSEXT_ERROR_KIND_PANIC`), or NULL/0/false for functions that cannot fail.
//! - No global state: everything hangs off the handles.

#[macro_use]
mod boundary;
mod context;
mod error;
mod extension;
mod handle;
mod log;
mod options;
mod plan;
mod report;
mod status;

pub use context::sysext_context;
pub use error::{sysext_error, sysext_error_kind};
pub use extension::{
    sysext_extension, sysext_extension_list, sysext_image_kind, sysext_image_state,
};
pub use log::{sysext_log_callback, sysext_log_level};
pub use options::{sysext_image_class, sysext_mutable_mode, sysext_options};
pub use plan::{sysext_hierarchy_plan, sysext_layer_kind, sysext_plan, sysext_upper_kind};
pub use report::sysext_report;
pub use status::{sysext_hierarchy_status, sysext_status};

use std::os::raw::c_char;

/// Major version of the library this header belongs to.
pub const SYSEXT_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const SYSEXT_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const SYSEXT_VERSION_PATCH: u32 = 0;

/// Parse a decimal version component at compile time.
const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

// The constants above are literals because cbindgen copies them into the header; these
// assertions make a version bump in Cargo.toml without updating them a compile error.
const _: () = assert!(SYSEXT_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
const _: () = assert!(SYSEXT_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
const _: () = assert!(SYSEXT_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The version of the library that is running, as `"MAJOR.MINOR.PATCH"`.
///
/// Compare with `SYSEXT_VERSION_MAJOR`/`_MINOR`/`_PATCH` to detect a header/library mismatch.
/// The string is static: never free it.
///
/// Thread safety: safe to call from any thread.
#[no_mangle]
pub extern "C" fn sysext_version() -> *const c_char {
    ffi_boundary!(default => std::ptr::null(), { VERSION.as_ptr().cast() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_string_matches_cargo() {
        // SAFETY: VERSION is NUL-terminated and static.
        let v = unsafe { CStr::from_ptr(sysext_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(
            format!("{SYSEXT_VERSION_MAJOR}.{SYSEXT_VERSION_MINOR}.{SYSEXT_VERSION_PATCH}"),
            env!("CARGO_PKG_VERSION")
        );
    }

    #[test]
    fn context_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<sysext::Context>();
    }
}
