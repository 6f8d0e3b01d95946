//! Mapping of core errors to the exception classes of `sysext.errors`, polars-style:
//! one [`ErrorKind`] maps to one class, and every exception carries `errno` and, where
//! the core error names them, `path`, `hierarchy` and `extension`.

#[cfg(feature = "testing")]
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};
#[cfg(feature = "testing")]
use std::io;
use sysext::{Error, ErrorKind};

/// The class in `sysext.errors` that an error kind maps to.
pub(crate) fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::AlreadyMerged => "AlreadyMergedError",
        ErrorKind::NotMerged => "NotMergedError",
        ErrorKind::NotPrivileged => "SysextPermissionError",
        ErrorKind::ReleaseFile => "ReleaseFileError",
        ErrorKind::IncompatibleExtension => "IncompatibleExtensionError",
        ErrorKind::MutableDir => "MutableDirError",
        ErrorKind::ImagePolicy => "ImagePolicyError",
        ErrorKind::Image => "ImageError",
        ErrorKind::InvalidArgument => "SysextValueError",
        ErrorKind::Busy => "SysextBusyError",
        ErrorKind::Os => "SysextOSError",
        // A kind added to the core later: still catchable as the base class.
        _ => "SysextError",
    }
}

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("sysext.errors")?.unbind()))
        .map(|m| m.bind(py))
}

/// Build the exception instance for a core error.
fn exception<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    let cls = errors_module(py)?.getattr(class_name(e.kind()))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("errno", e.errno())?;
    kwargs.set_item("path", e.path())?;
    kwargs.set_item("hierarchy", e.hierarchy())?;
    kwargs.set_item("extension", e.extension())?;
    cls.call((e.to_string(),), Some(&kwargs))
}

/// Convert a core error into the matching Python exception.
pub(crate) fn to_pyerr(e: Error) -> PyErr {
    Python::attach(|py| match exception(py, &e) {
        Ok(exc) => PyErr::from_value(exc),
        // `sysext.errors` could not be imported (broken installation): still say what failed.
        Err(import_err) => {
            let err = pyo3::exceptions::PyRuntimeError::new_err(e.to_string());
            err.set_cause(py, Some(import_err));
            err
        }
    })
}

/// An invalid argument detected by the bindings, raised like the core's
/// [`Error::InvalidArgument`] (`SysextValueError`, `EINVAL`).
pub(crate) fn invalid_argument(message: impl Into<String>) -> PyErr {
    to_pyerr(Error::InvalidArgument(message.into()))
}

/// Extension trait: `.py()?` turns a core result into a Python one.
pub(crate) trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for sysext::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}

/// A sample core error of the given variant, converted like a real one. For testing the
/// mapping of errors that the core cannot be made to raise on demand (not public API).
///
/// Only in builds with the `testing` feature (python/run-tests.sh), not in the released wheel.
#[cfg(feature = "testing")]
#[pyfunction]
#[pyo3(name = "_error_sample")]
pub(crate) fn error_sample<'py>(py: Python<'py>, variant: &str) -> PyResult<Bound<'py, PyAny>> {
    let os = |errno: i32| io::Error::from_raw_os_error(errno);
    let e = match variant {
        "Io" => Error::Io {
            op: "open",
            path: "/srv/root/usr".into(),
            source: os(libc::ENOENT),
        },
        "Mount" => Error::Mount {
            op: "mount overlay on",
            target: "/srv/root/usr".into(),
            source: os(libc::EINVAL),
            kernel_log: vec!["overlayfs: bad lowerdir".into()],
        },
        "AlreadyMerged" => Error::AlreadyMerged {
            hierarchy: "/usr".into(),
            path: "/srv/root/usr".into(),
        },
        "NotMerged" => Error::NotMerged { name: "foo".into() },
        "NotPrivileged" => Error::NotPrivileged,
        "HostOsRelease" => Error::HostOsRelease {
            root: "/srv/root".into(),
            source: os(libc::ENOENT),
        },
        "Metadata" => Error::Metadata {
            image: "foo".into(),
            reason: "No medium found".into(),
            errno: libc::ENOMEDIUM,
        },
        "Incompatible" => Error::Incompatible {
            name: "foo".into(),
            reason: "is for OS 'fedora'".into(),
        },
        "NotFound" => Error::NotFound { name: "foo".into() },
        "Image" => Error::Image {
            image: "/var/lib/extensions/foo.raw".into(),
            name: "foo".into(),
            source: Box::new(sysext::image::ImageError::Unrecognised),
        },
        "ImagePolicy" => Error::ImagePolicy {
            image: "/var/lib/extensions/foo.raw".into(),
            reason: "partition 'root' is unprotected, policy requires 'verity+signed'".into(),
        },
        "MutableDirMode" => Error::MutableDirMode {
            dir: "/var/lib/extensions.mutable/usr".into(),
            mode: 0o700,
            expected: 0o755,
        },
        "UpperDirReadOnly" => Error::UpperDirReadOnly {
            dir: "/var/lib/extensions.mutable/usr".into(),
        },
        "WorkDirCrossDevice" => Error::WorkDirCrossDevice {
            upper: "/var/lib/extensions.mutable/usr".into(),
            hierarchy: "/usr".into(),
        },
        "InvalidArgument" => Error::InvalidArgument("Invalid hierarchy path 'usr'".into()),
        "Busy" => Error::Busy {
            path: "/run/libsysext/sysext-1-2.lock".into(),
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown error variant '{other}'"
            )))
        }
    };
    exception(py, &e)
}
