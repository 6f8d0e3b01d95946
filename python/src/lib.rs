// pyo3's macros expand to `unsafe` FFI glue; this crate writes no unsafe code of its own.
#![allow(unsafe_code)]
//! Python bindings of libsysext: the native module `sysext._sysext`.
//!
//! The Python package `sysext` (in `pysrc/sysext/`) re-exports everything public from
//! here and adds what belongs on the Python side: the enums (`enums.py`) and the
//! exception classes (`errors.py`, multiple inheritance from `OSError`/`ValueError`).
//! This crate fetches those Python classes lazily and maps every core
//! [`sysext::Error`] to exactly one exception class, by [`sysext::ErrorKind`].
//!
//! Every call that touches the file system or mounts releases the GIL.

mod context;
mod convert;
mod errors;
mod log;
mod types;

use pyo3::prelude::*;

/// Parse a mutable mode the way libsysext does (systemd's strings, booleans,
/// `disabled`/`enabled`), giving systemd's canonical spelling or `None`.
#[pyfunction]
#[pyo3(name = "_parse_mutable_mode")]
fn parse_mutable_mode(value: &str) -> Option<&'static str> {
    sysext::MutableMode::parse_extended(value).map(|m| m.as_str())
}

/// The native module. Free-threaded Python is supported: the classes are frozen and
/// the core `Context` is `Send + Sync`.
#[pymodule(gil_used = false)]
fn _sysext(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", sysext::VERSION)?;
    m.add_class::<context::PyContext>()?;
    m.add_class::<context::PyMerged>()?;
    m.add_class::<types::PyExtension>()?;
    m.add_class::<types::PySkipped>()?;
    m.add_class::<types::PyReport>()?;
    m.add_class::<types::PyLayer>()?;
    m.add_class::<types::PyHierarchyPlan>()?;
    m.add_class::<types::PyPlan>()?;
    m.add_class::<types::PyHierarchyStatus>()?;
    m.add_function(wrap_pyfunction!(parse_mutable_mode, m)?)?;
    // Test-only: python/run-tests.sh builds with the `testing` feature, the released wheel
    // without. Set as a plain attribute, not added to `__all__` (as `add_function` would), so
    // that `__all__` is the same in both builds and matches the stub's.
    #[cfg(feature = "testing")]
    m.setattr("_error_sample", wrap_pyfunction!(errors::error_sample, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutable_mode_strings() {
        assert_eq!(parse_mutable_mode("enabled"), Some("yes"));
        assert_eq!(parse_mutable_mode("OFF"), Some("no"));
        assert_eq!(
            parse_mutable_mode("ephemeral-import"),
            Some("ephemeral-import")
        );
        assert_eq!(parse_mutable_mode("bogus"), None);
    }

    #[test]
    fn every_kind_has_a_class() {
        use sysext::ErrorKind as K;
        let kinds = [
            K::AlreadyMerged,
            K::NotMerged,
            K::NotPrivileged,
            K::ReleaseFile,
            K::IncompatibleExtension,
            K::MutableDir,
            K::ImagePolicy,
            K::Image,
            K::InvalidArgument,
            K::Busy,
            K::Os,
        ];
        let mut names: Vec<&str> = kinds.iter().map(|k| errors::class_name(*k)).collect();
        assert!(names.iter().all(|n| *n != "SysextError"), "{names:?}");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), kinds.len(), "one class per kind");
    }
}
