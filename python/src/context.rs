//! `sysext.Context` (a core [`Context`] behind an `Arc`) and the `merged()` context manager.

use crate::convert::{
    image_class_from_py, image_class_to_py, mutable_from_py, mutable_to_py, names_from_py,
};
use crate::errors::{invalid_argument, IntoPyResult};
use crate::log::LoggerSink;
use crate::types::{PyExtension, PyHierarchyStatus, PyPlan, PyReport};
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sysext::{Context, ImageClass, ImageState, Options};

/// A context for one image class and root: the verbs of `systemd-sysext` /
/// `systemd-confext` as methods.
///
/// Args:
///     root: The directory to operate on instead of `/` (`--root=`). Paths in
///         results carry this prefix.
///     image_class: `ImageClass.SYSEXT` (`/usr`, `/opt`) or `ImageClass.CONFEXT`
///         (`/etc`); the strings `"sysext"` and `"confext"` are accepted too.
///     mutable: The mutable mode for `merge`/`refresh`: a `MutableMode`, one of
///         systemd's strings (`no`, `yes`, `auto`, `import`, `ephemeral`,
///         `ephemeral-import`, any boolean string, `disabled`, `enabled`) or a bool.
///         `None` reads `SYSTEMD_SYSEXT_MUTABLE_MODE` / `SYSTEMD_CONFEXT_MUTABLE_MODE`,
///         then defaults to `no`.
///     force: Merge extensions even if their release data does not match the host
///         (`--force`).
///     noexec: Mount the merged hierarchies `noexec` (`True`) or not (`False`);
///         `None` keeps the class default (`--noexec=`).
///     image_policy: The image policy for image files (`--image-policy=`).
///     hierarchies: The hierarchies to merge onto (absolute paths); `None` reads
///         `SYSTEMD_SYSEXT_HIERARCHIES` / `SYSTEMD_CONFEXT_HIERARCHIES`, then uses
///         the class defaults.
///     lock_timeout: Seconds to wait for another merge, refresh or unmerge of the same
///         root to finish: `None` waits forever, `0` does not wait
///         (`SysextBusyError` when the lock is held).
///     initrd: Whether to behave as in the initrd; `None` detects it.
///     always_refresh: Make `refresh` rebuild the overlays even when nothing changed
///         (`--always-refresh`); by default an unchanged merge is left alone.
///     compat: The compatibility level, `257` or `262` (an int or a string): the systemd
///         release whose behaviour is followed where releases differ; `None` reads
///         `LIBSYSEXT_COMPAT`, then uses the newest level (262).
///     overlay_options: Overlayfs mount options for every overlay, comma-separated as
///         `mount -o` takes them (`"xino=off,noatime"`), as systemd reads them from
///         `SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS` (which the bindings never read). A
///         string, even `""`, replaces the defaults (a writable merge gets
///         `redirect_dir=on,noatime,metacopy=off,index=off`); mount-flag words become
///         mount flags. `None` keeps the defaults.
///     no_reload: Do not work out whether the service manager needs a reload
///         (`--no-reload`), so `Report.needs_reload` is always false. An explicit
///         `root` implies it, as in systemd.
///     allow_block_devices: Use block device nodes found in the search directories of an
///         explicit `root` (`--allow-block-devices`). They are skipped there by default:
///         a device node below a root can name any disk of the machine, so its content
///         would come from outside the root. On the host's own root they are always used.
///
/// Raises:
///     SysextOSError: The root cannot be opened.
///     SysextValueError: An argument is invalid.
///
/// Progress is logged to the `logging` logger `"sysext"`; skipped images at DEBUG level.
#[pyclass(frozen, module = "sysext", name = "Context")]
pub(crate) struct PyContext {
    inner: Arc<Context>,
}

impl std::fmt::Debug for PyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyContext")
            .field("options", self.inner.options())
            .finish()
    }
}

/// `list`, with each image's release data and why a merge would skip it, from the one
/// verdict core's `list` gives (one discovery, each image opened once).
fn list_detailed(ctx: &Context) -> sysext::Result<Vec<PyExtension>> {
    Ok(ctx
        .list()?
        .into_iter()
        .map(|img| PyExtension {
            skipped_reason: match img.state {
                ImageState::Incompatible => img.reason.clone(),
                _ => None,
            },
            state: img.state,
            reason: img.reason,
            name: img.name,
            kind: img.kind,
            path: img.path,
            release: img
                .release
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time_usec: img.time_usec,
            shadows: img.shadows,
        })
        .collect())
}

impl PyContext {
    /// The core context, or one with per-call overrides of `force` and `mutable`.
    fn with_overrides(
        &self,
        py: Python<'_>,
        force: Option<bool>,
        mutable: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Arc<Context>> {
        let mode = mutable.map(mutable_from_py).transpose()?;
        if force.is_none() && mode.is_none() {
            return Ok(self.inner.clone());
        }
        let mut opts = self.inner.options().clone();
        if let Some(f) = force {
            opts.force = f;
        }
        if mode.is_some() {
            opts.mutable = mode;
        }
        Ok(Arc::new(py.detach(move || Context::new(opts)).py()?))
    }
}

#[pymethods]
impl PyContext {
    #[new]
    #[pyo3(signature = (
        root = None,
        image_class = None,
        mutable = None,
        *,
        force = false,
        noexec = None,
        image_policy = None,
        hierarchies = None,
        lock_timeout = None,
        initrd = None,
        always_refresh = false,
        no_reload = false,
        allow_block_devices = false,
        compat = None,
        overlay_options = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        root: Option<PathBuf>,
        image_class: Option<&Bound<'_, PyAny>>,
        mutable: Option<&Bound<'_, PyAny>>,
        force: bool,
        noexec: Option<bool>,
        image_policy: Option<String>,
        hierarchies: Option<Vec<String>>,
        lock_timeout: Option<f64>,
        initrd: Option<bool>,
        always_refresh: bool,
        no_reload: bool,
        allow_block_devices: bool,
        compat: Option<&Bound<'_, PyAny>>,
        overlay_options: Option<String>,
    ) -> PyResult<PyContext> {
        let class = match image_class {
            Some(c) => image_class_from_py(c)?,
            None => ImageClass::Sysext,
        };
        let mut opts = Options::new(class);
        opts.root =
            match root {
                Some(p) => Some(p.into_os_string().into_string().map_err(|p| {
                    invalid_argument(format!("Root path is not valid UTF-8: {p:?}"))
                })?),
                None => None,
            };
        opts.mutable = mutable.map(mutable_from_py).transpose()?;
        opts.force = force;
        opts.noexec = noexec;
        opts.image_policy = image_policy;
        opts.hierarchies = hierarchies;
        opts.lock_timeout = match lock_timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) if t == f64::INFINITY => None,
            Some(t) => {
                return Err(invalid_argument(format!(
                    "Invalid lock timeout {t}: must be >= 0 seconds or None"
                )))
            }
        };
        opts.initrd = initrd;
        opts.always_refresh = always_refresh;
        opts.no_reload = no_reload;
        opts.allow_block_devices = allow_block_devices;
        opts.overlay_options = overlay_options;
        opts.compat = match compat {
            None => None,
            Some(c) => {
                let text = match c.extract::<i64>() {
                    Ok(n) => n.to_string(),
                    Err(_) => c.extract::<String>().map_err(|_| {
                        invalid_argument("compat must be 257, 262 or None".to_string())
                    })?,
                };
                Some(sysext::Compat::parse(&text).ok_or_else(|| {
                    invalid_argument(format!(
                        "Invalid compatibility level {text} (known: 257, 262)"
                    ))
                })?)
            }
        };
        opts.sink = Arc::new(LoggerSink::new(py, "sysext")?);
        let ctx = py.detach(move || Context::new(opts)).py()?;
        Ok(PyContext {
            inner: Arc::new(ctx),
        })
    }

    /// The root as given (`None` for the host's `/`).
    #[getter]
    fn root(&self) -> Option<String> {
        self.inner.options().root.clone()
    }

    /// The image class: a `sysext.ImageClass`.
    #[getter]
    fn image_class<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        image_class_to_py(py, self.inner.options().class)
    }

    /// The mutable mode in effect for `merge` and `refresh`: a `sysext.MutableMode`.
    #[getter]
    fn mutable<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        mutable_to_py(py, self.inner.mutable_mode())
    }

    /// Whether compatibility checks are skipped.
    #[getter]
    fn force(&self) -> bool {
        self.inner.options().force
    }

    /// `noexec` as given (`None`: the class default).
    #[getter]
    fn noexec(&self) -> Option<bool> {
        self.inner.options().noexec
    }

    /// The image policy as given.
    #[getter]
    fn image_policy(&self) -> Option<String> {
        self.inner.options().image_policy.clone()
    }

    /// The hierarchies in effect, in configured order.
    #[getter]
    fn hierarchies(&self) -> Vec<String> {
        self.inner
            .hierarchies()
            .iter()
            .map(|h| h.to_string())
            .collect()
    }

    /// Whether `refresh` rebuilds even when nothing changed.
    #[getter]
    fn always_refresh(&self) -> bool {
        self.inner.options().always_refresh
    }

    /// The overlayfs mount options given, or `None` for the defaults.
    #[getter]
    fn overlay_options(&self) -> Option<String> {
        self.inner.options().overlay_options.clone()
    }

    /// The compatibility level in effect: `257` or `262`.
    #[getter]
    fn compat(&self) -> u32 {
        self.inner.compat().version()
    }

    /// Whether the reload check is skipped (`Report.needs_reload` always false).
    #[getter]
    fn no_reload(&self) -> bool {
        self.inner.options().no_reload
    }

    /// Whether block devices below an explicit root are used.
    #[getter]
    fn allow_block_devices(&self) -> bool {
        self.inner.options().allow_block_devices
    }

    /// The lock timeout in seconds (`None`: wait forever).
    #[getter]
    fn lock_timeout(&self) -> Option<f64> {
        self.inner.options().lock_timeout.map(|d| d.as_secs_f64())
    }

    /// List the extension images found in the search directories, by name.
    ///
    /// Needs no privileges and mounts nothing.
    ///
    /// Returns:
    ///     list[Extension]: name, kind, path, release (the extension-release fields),
    ///     state and reason (what a merge does with it, as `sysext list` shows), and
    ///     skipped_reason (the reason when a merge would skip the image as
    ///     incompatible, as in `Report.skipped`; `None` otherwise). The verdict is the
    ///     one `merge` and `plan()` use, at the context's compatibility level.
    ///
    /// Raises:
    ///     SysextOSError: A search directory cannot be read.
    ///
    /// Example (`root` holds the extension `foo`; run by the test suite):
    ///
    ///     >>> ctx = sysext.Context(root=root)
    ///     >>> [(e.name, e.kind, e.state) for e in ctx.list()]
    ///     [('foo', <ImageKind.DIRECTORY: 'directory'>, <ImageState.WOULD_MERGE: 'would-merge'>)]
    fn list(&self, py: Python<'_>) -> PyResult<Vec<PyExtension>> {
        let ctx = self.inner.clone();
        py.detach(move || list_detailed(&ctx)).py()
    }

    /// Plan a merge without mounting anything (needs no privileges).
    ///
    /// Args:
    ///     force: Override the context's `force` for this call.
    ///     mutable: Override the context's mutable mode for this call.
    ///
    /// Returns:
    ///     Plan: per hierarchy the layers top to bottom, the upper and work dirs.
    ///
    /// Raises:
    ///     ReleaseFileError: The host's os-release or an image's metadata is unusable.
    ///     MutableDirError: The mutable directory cannot be used in this mode.
    ///
    /// Example:
    ///
    ///     >>> plan = sysext.Context(root=root).plan(mutable="ephemeral")
    ///     >>> plan.extensions
    ///     ['foo']
    ///     >>> usr = next(h for h in plan.hierarchies if h.hierarchy == "/usr")
    ///     >>> [str(layer.kind) for layer in usr.layers], usr.upper_kind
    ///     (['meta', 'extension', 'host'], <UpperKind.EPHEMERAL: 'ephemeral'>)
    #[pyo3(signature = (*, force = None, mutable = None))]
    fn plan(
        &self,
        py: Python<'_>,
        force: Option<bool>,
        mutable: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyPlan> {
        let ctx = self.with_overrides(py, force, mutable)?;
        py.detach(move || ctx.plan()).py().map(PyPlan::from)
    }

    /// Merge the extensions onto the hierarchies (`merge`), or with `names` add just
    /// those to the current merge (keeping the others, its mutable mode and upper dirs).
    ///
    /// Args:
    ///     names: Extension names to add (a sequence of str, or one str naming a single
    ///         extension); `None` merges all compatible extensions.
    ///     force: Override the context's `force` for this call.
    ///     mutable: Override the context's mutable mode for this call.
    ///
    /// Returns:
    ///     Report: merged extensions, skipped images, needs_reload.
    ///
    /// Raises:
    ///     AlreadyMergedError: A hierarchy is already merged (without `names`).
    ///     IncompatibleExtensionError: A named extension does not match the host.
    ///     SysextValueError: A named extension does not exist.
    ///     SysextPermissionError: The caller lacks `CAP_SYS_ADMIN`.
    ///     SysextBusyError: Another operation holds the lock past `lock_timeout`.
    ///     TypeError: `names` is neither a str nor a sequence of str.
    ///
    /// Example (needs `CAP_SYS_ADMIN`):
    ///
    ///     >>> ctx = sysext.Context(root=root)
    ///     >>> report = ctx.merge()
    ///     >>> report.merged, report.hierarchies, report.targets == [f"{root}/usr"]
    ///     (['foo'], ['/usr'], True)
    ///     >>> _ = ctx.unmerge()
    ///     >>> ctx.merge("foo").merged    # just this one (a str is one name)
    ///     ['foo']
    ///     >>> _ = ctx.unmerge()
    #[pyo3(signature = (names = None, *, force = None, mutable = None))]
    fn merge(
        &self,
        py: Python<'_>,
        names: Option<&Bound<'_, PyAny>>,
        force: Option<bool>,
        mutable: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyReport> {
        let names = names_from_py(names)?;
        let ctx = self.with_overrides(py, force, mutable)?;
        py.detach(move || match names {
            Some(n) => ctx.merge_names(&n),
            None => ctx.merge(),
        })
        .py()
        .map(PyReport::from)
    }

    /// Rebuild the merge from the current set of images (`refresh`), replacing the old
    /// overlays without a moment in which the hierarchy shows neither.
    ///
    /// Args:
    ///     force: Override the context's `force` for this call.
    ///     mutable: Override the context's mutable mode for this call.
    ///
    /// Returns:
    ///     Report: merged extensions, unmerged hierarchies, skipped images, needs_reload.
    ///
    /// Example (needs `CAP_SYS_ADMIN`):
    ///
    ///     >>> ctx = sysext.Context(root=root)
    ///     >>> ctx.refresh().merged           # nothing merged yet: merges
    ///     ['foo']
    ///     >>> ctx.refresh().merged           # unchanged: left as it is
    ///     ['foo']
    ///     >>> ctx.unmerge().unmerged
    ///     ['/usr']
    #[pyo3(signature = (*, force = None, mutable = None))]
    fn refresh(
        &self,
        py: Python<'_>,
        force: Option<bool>,
        mutable: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyReport> {
        let ctx = self.with_overrides(py, force, mutable)?;
        py.detach(move || ctx.refresh()).py().map(PyReport::from)
    }

    /// Remove the merge (`unmerge`), or with `names` remove just those extensions from
    /// it (removing the last one unmerges).
    ///
    /// Args:
    ///     names: Extension names to remove (a sequence of str, or one str); `None`
    ///         removes the whole merge.
    ///
    /// Returns:
    ///     Report: `unmerged` lists the hierarchies whose merge was removed.
    ///
    /// Raises:
    ///     NotMergedError: A named extension is not part of the current merge.
    ///     TypeError: `names` is neither a str nor a sequence of str.
    ///
    /// Example (needs `CAP_SYS_ADMIN`):
    ///
    ///     >>> ctx = sysext.Context(root=root)
    ///     >>> _ = ctx.merge()
    ///     >>> report = ctx.unmerge()
    ///     >>> report.unmerged, report.merged
    ///     (['/usr'], [])
    #[pyo3(signature = (names = None))]
    fn unmerge(&self, py: Python<'_>, names: Option<&Bound<'_, PyAny>>) -> PyResult<PyReport> {
        let names = names_from_py(names)?;
        let ctx = self.inner.clone();
        py.detach(move || match names {
            Some(n) => ctx.unmerge_names(&n),
            None => ctx.unmerge(),
        })
        .py()
        .map(PyReport::from)
    }

    /// The state of each configured hierarchy that exists, sorted by path (`status`).
    ///
    /// Returns:
    ///     list[HierarchyStatus]: hierarchy, merged, extensions, mutable, upper, since.
    ///
    /// Example (the merge needs `CAP_SYS_ADMIN`, status does not):
    ///
    ///     >>> ctx = sysext.Context(root=root, mutable="ephemeral")
    ///     >>> with ctx.merged():
    ///     ...     [(s.hierarchy, s.extensions, s.mutable) for s in ctx.status() if s.merged]
    ///     [('/usr', ['foo'], <MutableMode.EPHEMERAL: 'ephemeral'>)]
    fn status(&self, py: Python<'_>) -> PyResult<Vec<PyHierarchyStatus>> {
        let ctx = self.inner.clone();
        py.detach(move || ctx.status())
            .py()
            .map(|v| v.into_iter().map(PyHierarchyStatus::from).collect())
    }

    /// A context manager that merges on enter and unmerges on exit, also when the
    /// block raises. `with ctx.merged() as report: ...`
    ///
    /// Args:
    ///     names: Merge (and on exit unmerge) just these extensions, keeping any
    ///         others that are merged; `None` merges all and unmerges everything.
    ///     force: Override the context's `force` for the merge.
    ///     mutable: Override the context's mutable mode for the merge.
    ///
    /// Returns:
    ///     Merged: its `__enter__` returns the merge's `Report`.
    #[pyo3(signature = (names = None, *, force = None, mutable = None))]
    fn merged(
        &self,
        py: Python<'_>,
        names: Option<&Bound<'_, PyAny>>,
        force: Option<bool>,
        mutable: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyMerged> {
        let names = names_from_py(names)?;
        let ctx = self.with_overrides(py, force, mutable)?;
        Ok(PyMerged {
            ctx,
            names,
            entered: Mutex::new(false),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let o = self.inner.options();
        let root = match &o.root {
            Some(r) => r.clone().into_pyobject(py)?.repr()?.to_string(),
            None => "None".into(),
        };
        Ok(format!(
            "Context(root={root}, image_class={}, mutable={})",
            image_class_to_py(py, o.class)?.repr()?,
            mutable_to_py(py, self.inner.mutable_mode())?.repr()?
        ))
    }
}

/// The context manager returned by `Context.merged()`: merges on `__enter__`
/// (returning the `Report`) and unmerges on `__exit__`, also after an exception,
/// which is never suppressed. If unmerging fails, that error is raised (chained to the
/// block's exception, if any). Single use.
#[pyclass(frozen, module = "sysext", name = "Merged")]
pub(crate) struct PyMerged {
    ctx: Arc<Context>,
    names: Option<Vec<String>>,
    entered: Mutex<bool>,
}

impl std::fmt::Debug for PyMerged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyMerged")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

#[pymethods]
impl PyMerged {
    fn __enter__(&self, py: Python<'_>) -> PyResult<PyReport> {
        {
            let mut entered = self.entered.lock().unwrap_or_else(|p| p.into_inner());
            if *entered {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "Context.merged() objects can be entered once",
                ));
            }
            *entered = true;
        }
        let ctx = self.ctx.clone();
        let names = self.names.clone();
        py.detach(move || match names {
            Some(n) => ctx.merge_names(&n),
            None => ctx.merge(),
        })
        .py()
        .map(PyReport::from)
    }

    #[pyo3(signature = (exc_type = None, exc_value = None, traceback = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyType>>,
        exc_value: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let _ = (exc_type, exc_value, traceback);
        let ctx = self.ctx.clone();
        let names = self.names.clone();
        py.detach(move || match names {
            Some(n) => ctx.unmerge_names(&n),
            None => ctx.unmerge(),
        })
        .py()?;
        Ok(false)
    }
}

/// `PyContext` is a frozen class shared between threads: the core context must allow it.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Context>();
};
