//! Core events go to the Python logger `sysext` (`logging.getLogger("sysext")`).

use pyo3::prelude::*;
use sysext::{Event, EventSink, Level};

/// An [`EventSink`] that logs through a Python `logging.Logger`.
///
/// Events arrive on the calling thread while it does not hold the GIL (long calls
/// are detached); the sink attaches for the duration of the logging call.
pub(crate) struct LoggerSink {
    logger: Py<PyAny>,
}

impl std::fmt::Debug for LoggerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggerSink").finish_non_exhaustive()
    }
}

/// The numeric levels of Python's `logging` module.
fn py_level(l: Level) -> u32 {
    match l {
        Level::Debug => 10,
        Level::Info => 20,
        Level::Warning => 30,
    }
}

impl LoggerSink {
    /// A sink for the logger named `name`.
    pub(crate) fn new(py: Python<'_>, name: &str) -> PyResult<LoggerSink> {
        let logger = py.import("logging")?.call_method1("getLogger", (name,))?;
        Ok(LoggerSink {
            logger: logger.unbind(),
        })
    }
}

impl EventSink for LoggerSink {
    fn event(&self, event: &Event) {
        Python::attach(|py| {
            let logger = self.logger.bind(py);
            let level = py_level(event.level());
            let enabled = logger
                .call_method1("isEnabledFor", (level,))
                .and_then(|v| v.is_truthy())
                .unwrap_or(true);
            if !enabled {
                return;
            }
            if let Err(e) = logger.call_method1("log", (level, "%s", event.to_string())) {
                e.write_unraisable(py, Some(logger));
            }
        })
    }
}
