//! The immutable result objects: `Extension`, `Skipped`, `Report`, `Layer`,
//! `HierarchyPlan`, `Plan` and `HierarchyStatus`.
//!
//! They hold plain Rust data and build Python objects (enum members, dicts,
//! datetimes) on access, so each access returns a fresh, independent value.

use crate::convert::{
    image_kind_to_py, image_state_to_py, layer_kind_to_py, mutable_to_py, upper_kind_to_py,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyTuple};
use sysext::plan::{HierarchyPlan, Layer, Upper, WorkDir};
use sysext::{HierarchyStatus, ImageKind, ImageState, MutableMode, PlanReport, Report, Skipped};

fn py_str_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| py_repr_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A Python-style repr of a string (good enough for `__repr__`).
fn py_repr_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn py_opt_str(s: &Option<String>) -> String {
    s.as_deref()
        .map(py_repr_str)
        .unwrap_or_else(|| "None".into())
}

/// An extension image found in the search directories (`Context.list()`).
///
/// Extensions compare equal when all their fields are equal (two listings of an
/// unchanged directory give equal extensions), and hash accordingly.
#[pyclass(frozen, eq, hash, module = "sysext", name = "Extension")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PyExtension {
    /// The image name (file name without `.raw` and the class suffix).
    #[pyo3(get)]
    pub(crate) name: String,
    pub(crate) kind: ImageKind,
    /// The path of the image, root prefix included.
    #[pyo3(get)]
    pub(crate) path: String,
    pub(crate) release: Vec<(String, String)>,
    /// Why a merge would skip this image as incompatible (as in `Report.skipped`):
    /// `reason` when `state` is `INCOMPATIBLE`, else `None`.
    #[pyo3(get)]
    pub(crate) skipped_reason: Option<String>,
    pub(crate) state: ImageState,
    /// Why, for states other than `"merged"` and `"would-merge"`.
    #[pyo3(get)]
    pub(crate) reason: Option<String>,
    /// Modification time (image files) or birth time (directories), µs since the epoch.
    #[pyo3(get)]
    pub(crate) time_usec: u64,
    /// Paths of lower-precedence images of the same name that this one shadows.
    #[pyo3(get)]
    pub(crate) shadows: Vec<String>,
}

#[pymethods]
impl PyExtension {
    /// The kind of image: a `sysext.ImageKind`.
    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        image_kind_to_py(py, self.kind)
    }

    /// What a merge does with the image, as `sysext list` shows it: a
    /// `sysext.ImageState` (`MERGED`, `WOULD_MERGE`, `MASKED`, `INCOMPATIBLE`, `INVALID`
    /// or `UNKNOWN`; its value is the string `sysext list` prints).
    #[getter]
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        image_state_to_py(py, self.state)
    }

    /// The fields of the image's extension-release file, in file order (a new dict on
    /// every access). Empty when the image has no usable release file, when it was not
    /// inspected (state `UNKNOWN`: image files without privileges; refused block
    /// devices), and for image files that are part of the current merge.
    #[getter]
    fn release<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.release {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Extension(name={}, kind=<ImageKind.{}>, path={}, state={}, skipped_reason={})",
            py_repr_str(&self.name),
            self.kind.as_str().to_uppercase(),
            py_repr_str(&self.path),
            py_repr_str(self.state.as_str()),
            py_opt_str(&self.skipped_reason)
        )
    }
}

/// An image that a merge does not use, and why. Unpacks as `(name, reason)`.
#[pyclass(frozen, eq, hash, module = "sysext", name = "Skipped")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PySkipped {
    /// The image name.
    #[pyo3(get)]
    pub(crate) name: String,
    /// Why it is not used (names the field and values involved).
    #[pyo3(get)]
    pub(crate) reason: String,
}

impl From<Skipped> for PySkipped {
    fn from(s: Skipped) -> PySkipped {
        PySkipped {
            name: s.name,
            reason: s.reason,
        }
    }
}

#[pymethods]
impl PySkipped {
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        PyTuple::new(py, [self.name.as_str(), self.reason.as_str()])?.try_iter()
    }

    fn __repr__(&self) -> String {
        format!(
            "Skipped(name={}, reason={})",
            py_repr_str(&self.name),
            py_repr_str(&self.reason)
        )
    }
}

/// What `merge`, `refresh` or `unmerge` did.
#[pyclass(frozen, module = "sysext", name = "Report")]
#[derive(Debug, Clone)]
pub(crate) struct PyReport {
    /// Names of the merged extensions, ascending.
    #[pyo3(get)]
    pub(crate) merged: Vec<String>,
    /// Hierarchies that got an overlay, as configured (`/usr`, without the root prefix,
    /// as `HierarchyStatus.hierarchy` and `SysextError.hierarchy`).
    #[pyo3(get)]
    pub(crate) hierarchies: Vec<String>,
    /// Where those overlays were mounted (the hierarchies with the root prefix), in the
    /// order of `hierarchies`.
    #[pyo3(get)]
    pub(crate) targets: Vec<String>,
    /// Hierarchies whose previous merge was removed, as configured (`/usr`).
    #[pyo3(get)]
    pub(crate) unmerged: Vec<String>,
    /// Images not used, with the reason.
    #[pyo3(get)]
    pub(crate) skipped: Vec<PySkipped>,
    /// Whether an extension asks for a service manager reload
    /// (`EXTENSION_RELOAD_MANAGER=1`); the bindings never reload by themselves.
    #[pyo3(get)]
    pub(crate) needs_reload: bool,
    /// Units the merged (on unmerge: the removed) extensions ask to have restarted
    /// (`EXTENSION_RESTART_UNITS=`, systemd 259), each once; for the caller to act on after
    /// the manager reload. Reported at every level, also with an explicit root.
    #[pyo3(get)]
    pub(crate) restart_units: Vec<String>,
    /// Units to reload-or-restart (`EXTENSION_RELOAD_OR_RESTART_UNITS=`), without those
    /// also to be restarted.
    #[pyo3(get)]
    pub(crate) reload_or_restart_units: Vec<String>,
}

impl From<Report> for PyReport {
    fn from(r: Report) -> PyReport {
        PyReport {
            merged: r.merged,
            hierarchies: r.hierarchies,
            targets: r.targets,
            unmerged: r.unmerged,
            skipped: r.skipped.into_iter().map(Into::into).collect(),
            needs_reload: r.needs_reload,
            restart_units: r.units.restart,
            reload_or_restart_units: r.units.reload_or_restart,
        }
    }
}

#[pymethods]
impl PyReport {
    fn __repr__(&self) -> String {
        let skipped: Vec<String> = self.skipped.iter().map(|s| s.__repr__()).collect();
        format!(
            "Report(merged={}, hierarchies={}, targets={}, unmerged={}, skipped=[{}], needs_reload={}, \
             restart_units={}, reload_or_restart_units={})",
            py_str_list(&self.merged),
            py_str_list(&self.hierarchies),
            py_str_list(&self.targets),
            py_str_list(&self.unmerged),
            skipped.join(", "),
            if self.needs_reload { "True" } else { "False" },
            py_str_list(&self.restart_units),
            py_str_list(&self.reload_or_restart_units),
        )
    }
}

/// One lower layer of a planned overlay.
#[pyclass(frozen, eq, hash, module = "sysext", name = "Layer")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PyLayer {
    pub(crate) kind: &'static str,
    /// The directory, root prefix included; `None` for the meta layer.
    #[pyo3(get)]
    pub(crate) path: Option<String>,
    /// The extension name for `"extension"` layers, else `None`.
    #[pyo3(get)]
    pub(crate) name: Option<String>,
}

impl From<&Layer> for PyLayer {
    fn from(l: &Layer) -> PyLayer {
        match l {
            Layer::Meta => PyLayer {
                kind: "meta",
                path: None,
                name: None,
            },
            Layer::Import(p) => PyLayer {
                kind: "import",
                path: Some(p.clone()),
                name: None,
            },
            Layer::Extension { name, path } => PyLayer {
                kind: "extension",
                path: Some(path.clone()),
                name: Some(name.clone()),
            },
            Layer::Host(p) => PyLayer {
                kind: "host",
                path: Some(p.clone()),
                name: None,
            },
        }
    }
}

#[pymethods]
impl PyLayer {
    /// What the layer is: a `sysext.LayerKind`, `META` (the synthetic layer carrying
    /// `.systemd-sysext`), `IMPORT` (the mutable directory, read-only), `EXTENSION` or
    /// `HOST` (the host's hierarchy).
    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        layer_kind_to_py(py, self.kind)
    }

    fn __repr__(&self) -> String {
        format!(
            "Layer(kind=<LayerKind.{}>, path={}, name={})",
            self.kind.to_uppercase(),
            py_opt_str(&self.path),
            py_opt_str(&self.name)
        )
    }
}

/// The overlay planned for one hierarchy.
#[pyclass(frozen, module = "sysext", name = "HierarchyPlan")]
#[derive(Debug, Clone)]
pub(crate) struct PyHierarchyPlan {
    /// The hierarchy as configured (`/usr`).
    #[pyo3(get)]
    pub(crate) hierarchy: String,
    /// Where the overlay goes, root prefix included.
    #[pyo3(get)]
    pub(crate) target: String,
    /// Whether the hierarchy directory is created first.
    #[pyo3(get)]
    pub(crate) create_target: bool,
    /// The lower layers, top to bottom.
    #[pyo3(get)]
    pub(crate) layers: Vec<PyLayer>,
    pub(crate) upper_kind: Option<&'static str>,
    /// The upper dir for `UpperKind.MUTABLE_DIR` and `UpperKind.HOST`; `None` otherwise.
    #[pyo3(get)]
    pub(crate) upper_dir: Option<String>,
    /// Whether the upper dir is created by the merge (`mutable="yes"`).
    #[pyo3(get)]
    pub(crate) create_upper: bool,
    /// The overlay work dir when it lies on disk; `None` when read-only or ephemeral.
    #[pyo3(get)]
    pub(crate) work_dir: Option<String>,
    /// Whether the overlay is mounted read-only.
    #[pyo3(get)]
    pub(crate) read_only: bool,
    /// Whether the overlay is mounted `noexec`.
    #[pyo3(get)]
    pub(crate) noexec: bool,
    /// Whether the overlay is mounted `nosuid`.
    #[pyo3(get)]
    pub(crate) nosuid: bool,
}

impl From<&HierarchyPlan> for PyHierarchyPlan {
    fn from(h: &HierarchyPlan) -> PyHierarchyPlan {
        let (upper_kind, upper_dir, create_upper) = match &h.upper {
            None => (None, None, false),
            Some(Upper::MutableDir { path, create, .. }) => {
                (Some("mutable-dir"), Some(path.clone()), *create)
            }
            Some(Upper::Host { path, .. }) => (Some("host"), Some(path.clone()), false),
            Some(Upper::Ephemeral) => (Some("ephemeral"), None, false),
        };
        let work_dir = match &h.work_dir {
            Some(WorkDir::Beside { path, .. }) => Some(path.clone()),
            Some(WorkDir::Ephemeral) | None => None,
        };
        PyHierarchyPlan {
            hierarchy: h.hierarchy.to_string(),
            target: h.target.clone(),
            create_target: h.create_target,
            layers: h.lower.iter().map(PyLayer::from).collect(),
            upper_kind,
            upper_dir,
            create_upper,
            work_dir,
            read_only: h.flags.read_only,
            noexec: h.flags.noexec,
            nosuid: h.flags.nosuid,
        }
    }
}

#[pymethods]
impl PyHierarchyPlan {
    /// Where writes go: a `sysext.UpperKind`, `MUTABLE_DIR` (the hierarchy's mutable
    /// directory, `/var/lib/extensions.mutable/<hierarchy>`), `HOST` (the host hierarchy
    /// itself, when the mutable directory links to it) or `EPHEMERAL` (a private tmpfs);
    /// `None` for a read-only overlay.
    #[getter]
    fn upper_kind<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.upper_kind.map(|k| upper_kind_to_py(py, k)).transpose()
    }

    /// The paths of the lower layers, top to bottom, without the meta layer.
    #[getter]
    fn lower_dirs(&self) -> Vec<String> {
        self.layers.iter().filter_map(|l| l.path.clone()).collect()
    }

    /// Whether the merged hierarchy is writable (has an upper dir).
    #[getter]
    fn writable(&self) -> bool {
        self.upper_kind.is_some()
    }

    fn __repr__(&self) -> String {
        format!(
            "HierarchyPlan(hierarchy={}, lower_dirs={}, upper_kind={}, upper_dir={}, work_dir={})",
            py_repr_str(&self.hierarchy),
            py_str_list(&self.lower_dirs()),
            self.upper_kind
                .map(py_repr_str)
                .unwrap_or_else(|| "None".into()),
            py_opt_str(&self.upper_dir),
            py_opt_str(&self.work_dir)
        )
    }
}

/// What `merge` would do (`Context.plan()`); computing it mounts nothing.
#[pyclass(frozen, module = "sysext", name = "Plan")]
#[derive(Debug, Clone)]
pub(crate) struct PyPlan {
    pub(crate) mode: MutableMode,
    /// Names of the extensions that would be merged, ascending.
    #[pyo3(get)]
    pub(crate) extensions: Vec<String>,
    /// File names of the images that would be used (`Using extensions …`).
    #[pyo3(get)]
    pub(crate) using: Vec<String>,
    /// Images that would not be used, with the reason.
    #[pyo3(get)]
    pub(crate) skipped: Vec<PySkipped>,
    /// One entry per hierarchy that would get an overlay, in configured order.
    #[pyo3(get)]
    pub(crate) hierarchies: Vec<PyHierarchyPlan>,
}

impl From<PlanReport> for PyPlan {
    fn from(p: PlanReport) -> PyPlan {
        PyPlan {
            mode: p.plan.mode,
            extensions: p.plan.extensions.clone(),
            using: p.using,
            skipped: p.skipped.into_iter().map(Into::into).collect(),
            hierarchies: p
                .plan
                .hierarchies
                .iter()
                .map(PyHierarchyPlan::from)
                .collect(),
        }
    }
}

#[pymethods]
impl PyPlan {
    /// The mutable mode the plan was made for: a `sysext.MutableMode`.
    #[getter]
    fn mutable<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        mutable_to_py(py, self.mode)
    }

    fn __repr__(&self) -> String {
        let hs: Vec<String> = self.hierarchies.iter().map(|h| h.__repr__()).collect();
        format!(
            "Plan(mutable={}, extensions={}, hierarchies=[{}])",
            py_repr_str(self.mode.as_str()),
            py_str_list(&self.extensions),
            hs.join(", ")
        )
    }
}

/// The state of one hierarchy (`Context.status()`).
#[pyclass(frozen, module = "sysext", name = "HierarchyStatus")]
#[derive(Debug, Clone)]
pub(crate) struct PyHierarchyStatus {
    /// The hierarchy as configured (`/usr`).
    #[pyo3(get)]
    pub(crate) hierarchy: String,
    pub(crate) extensions: Option<Vec<String>>,
    /// When the hierarchy was merged, µs since the epoch; `None` when not merged.
    #[pyo3(get)]
    pub(crate) since_usec: Option<u64>,
    pub(crate) mutable: Option<MutableMode>,
    pub(crate) upper_kind: Option<sysext::UpperKind>,
    /// The mutable directory writes go to (root prefix included), when `upper_kind` is
    /// `UpperKind.MUTABLE_DIR`; else `None`.
    #[pyo3(get)]
    pub(crate) upper_dir: Option<String>,
}

impl From<HierarchyStatus> for PyHierarchyStatus {
    fn from(s: HierarchyStatus) -> PyHierarchyStatus {
        PyHierarchyStatus {
            hierarchy: s.hierarchy,
            extensions: s.extensions,
            since_usec: s.since_usec,
            mutable: s.mutable,
            upper_kind: s.upper,
            upper_dir: s.upper_dir,
        }
    }
}

#[pymethods]
impl PyHierarchyStatus {
    /// Whether the hierarchy is merged (by libsysext or systemd-sysext).
    #[getter]
    fn merged(&self) -> bool {
        self.extensions.is_some()
    }

    /// The merged extensions (empty when not merged).
    #[getter]
    fn extensions(&self) -> Vec<String> {
        self.extensions.clone().unwrap_or_default()
    }

    /// The mutable mode of the merge (a `sysext.MutableMode`), or `None` when not
    /// merged or not recorded.
    #[getter]
    fn mutable<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.mutable.map(|m| mutable_to_py(py, m)).transpose()
    }

    /// Where writes go (a `sysext.UpperKind`, as in `HierarchyPlan.upper_kind`); `None`
    /// when the merge is read-only (`mutable` is then a mode), not merged, or not
    /// recorded (merges made by systemd-sysext; `mutable` is `None` too).
    #[getter]
    fn upper_kind<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.upper_kind {
            None | Some(sysext::UpperKind::None) => Ok(None),
            Some(k) => upper_kind_to_py(py, k.as_str()).map(Some),
        }
    }

    /// When the hierarchy was merged, as an aware `datetime` in UTC; `None` when not merged.
    #[getter]
    fn since<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(usec) = self.since_usec else {
            return Ok(None);
        };
        let dt = py.import("datetime")?;
        let utc = dt.getattr("timezone")?.getattr("utc")?;
        let epoch = dt
            .getattr("datetime")?
            .call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
        let delta = dt.getattr("timedelta")?.call1((0, 0, usec))?;
        Ok(Some(epoch.call_method1("__add__", (delta,))?))
    }

    fn __repr__(&self) -> String {
        format!(
            "HierarchyStatus(hierarchy={}, extensions={}, mutable={}, upper_kind={}, upper_dir={})",
            py_repr_str(&self.hierarchy),
            py_str_list(&self.extensions()),
            py_opt_str(&self.mutable.map(|m| m.as_str().to_string())),
            py_opt_str(&self.upper_kind.map(|k| k.as_str().to_string())),
            py_opt_str(&self.upper_dir)
        )
    }
}
