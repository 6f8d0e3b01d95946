//! Conversions between the Python enums of `sysext.enums` (declared in Python, with
//! systemd's strings as values) and the core's Rust enums.

use crate::errors::invalid_argument;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyModule, PyString};
use sysext::{ImageClass, ImageKind, ImageState, MutableMode};

fn enums_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("sysext.enums")?.unbind()))
        .map(|m| m.bind(py))
}

/// `sysext.enums.<class>(value)`.
fn py_enum<'py>(py: Python<'py>, class: &str, value: &str) -> PyResult<Bound<'py, PyAny>> {
    enums_module(py)?.getattr(class)?.call1((value,))
}

pub(crate) fn image_class_to_py<'py>(
    py: Python<'py>,
    c: ImageClass,
) -> PyResult<Bound<'py, PyAny>> {
    py_enum(py, "ImageClass", c.info().short)
}

pub(crate) fn image_kind_to_py<'py>(py: Python<'py>, k: ImageKind) -> PyResult<Bound<'py, PyAny>> {
    py_enum(py, "ImageKind", k.as_str())
}

pub(crate) fn mutable_to_py<'py>(py: Python<'py>, m: MutableMode) -> PyResult<Bound<'py, PyAny>> {
    py_enum(py, "MutableMode", m.as_str())
}

pub(crate) fn image_state_to_py<'py>(
    py: Python<'py>,
    s: ImageState,
) -> PyResult<Bound<'py, PyAny>> {
    py_enum(py, "ImageState", s.as_str())
}

/// `sysext.enums.LayerKind(value)` (`"meta"`, `"import"`, `"extension"`, `"host"`).
pub(crate) fn layer_kind_to_py<'py>(py: Python<'py>, k: &str) -> PyResult<Bound<'py, PyAny>> {
    py_enum(py, "LayerKind", k)
}

/// `sysext.enums.UpperKind(value)` (`"mutable-dir"`, `"host"`, `"ephemeral"`).
pub(crate) fn upper_kind_to_py<'py>(py: Python<'py>, k: &str) -> PyResult<Bound<'py, PyAny>> {
    py_enum(py, "UpperKind", k)
}

/// Extension names: a sequence of `str`, or one `str` as a single name (never split into
/// its characters).
pub(crate) fn names_from_py(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    let Some(obj) = obj else {
        return Ok(None);
    };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(vec![s.to_cow()?.into_owned()]));
    }
    obj.extract::<Vec<String>>().map(Some).map_err(|_| {
        PyTypeError::new_err(format!(
            "names must be a str (one extension name) or a sequence of str, not {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        ))
    })
}

/// `ImageClass` member or its string (`"sysext"`, `"confext"`).
pub(crate) fn image_class_from_py(obj: &Bound<'_, PyAny>) -> PyResult<ImageClass> {
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("image_class must be a sysext.ImageClass or a str"))?;
    let s = s.to_cow()?;
    let s: &str = &s;
    s.parse::<ImageClass>().map_err(|()| {
        invalid_argument(format!(
            "Unknown image class '{s}' (expected 'sysext' or 'confext')"
        ))
    })
}

/// `MutableMode` member, one of systemd's strings (`no`, `yes`, `auto`, `import`,
/// `ephemeral`, `ephemeral-import`, any boolean string, `disabled`, `enabled`), or a bool.
pub(crate) fn mutable_from_py(obj: &Bound<'_, PyAny>) -> PyResult<MutableMode> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(if b.is_true() {
            MutableMode::Enabled
        } else {
            MutableMode::Disabled
        });
    }
    // A `MutableMode` member is a `str` subclass whose value is systemd's spelling.
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err("mutable must be a sysext.MutableMode, a str or a bool")
    })?;
    let s = s.to_cow()?;
    let s: &str = &s;
    MutableMode::parse_extended(s)
        .ok_or_else(|| invalid_argument(format!("Failed to parse mutable mode: {s}")))
}
