//! The log callback: a C function installed as the core's event sink.

use crate::boundary::cstring;
use std::os::raw::{c_char, c_int, c_void};
use sysext::{Event, EventSink, Level};

/// Log levels passed to the log callback; the values are syslog's priorities
/// (`LOG_WARNING`, `LOG_INFO`, `LOG_DEBUG`), so they can go to `syslog()` or
/// `sd_journal_print()` unchanged.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sysext_log_level {
    /// Something unexpected that did not stop the operation (`LOG_WARNING`).
    Warning = 4,
    /// Normal progress, such as "Merged extensions into '/usr'." (`LOG_INFO`).
    Info = 6,
    /// Details, such as why an extension was skipped (`LOG_DEBUG`).
    Debug = 7,
}

impl From<Level> for sysext_log_level {
    fn from(l: Level) -> Self {
        match l {
            Level::Debug => sysext_log_level::Debug,
            Level::Info => sysext_log_level::Info,
            Level::Warning => sysext_log_level::Warning,
        }
    }
}

/// Receives the library's log messages.
///
/// Called synchronously, on the thread that made the library call, before that call
/// returns. `level` is a `SYSEXT_LOG_LEVEL_*` value (a syslog priority), `message` a
/// NUL-terminated UTF-8 line without a trailing newline, valid only during the call:
/// copy it to keep it. `userdata` is the pointer given to `sysext_options_set_log_callback()`.
/// The callback must not call back into the context that is logging, and must return
/// normally (no `longjmp()`, no C++ exception).
pub type sysext_log_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: c_int, message: *const c_char)>;

/// A C callback and its user data, as the core's event sink.
#[derive(Debug)]
pub(crate) struct CallbackSink {
    cb: unsafe extern "C" fn(*mut c_void, c_int, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: the sink only passes `userdata` back to the callback. The header documents that
// the callback runs on whichever thread calls into the context, so making the pair usable
// from several threads is the C caller's contract, as with any C callback API.
unsafe impl Send for CallbackSink {}
// SAFETY: see above; the sink has no interior state of its own.
unsafe impl Sync for CallbackSink {}

impl CallbackSink {
    pub(crate) fn new(
        cb: unsafe extern "C" fn(*mut c_void, c_int, *const c_char),
        userdata: *mut c_void,
    ) -> Self {
        CallbackSink { cb, userdata }
    }
}

impl EventSink for CallbackSink {
    fn event(&self, event: &Event) {
        let message = cstring(event.to_string());
        let level = sysext_log_level::from(event.level()) as c_int;
        // SAFETY: the callback was given to us by C with this contract; `message` outlives the call.
        unsafe { (self.cb)(self.userdata, level, message.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::sync::Mutex;

    /// # Safety
    /// `userdata` points to a live `Mutex<Vec<(c_int, String)>>`; `message` is a
    /// NUL-terminated string (the callback's rules, `sysext_log_callback`).
    unsafe extern "C" fn record(userdata: *mut c_void, level: c_int, message: *const c_char) {
        // SAFETY: by the contract, `userdata` points to a live mutex-guarded vector.
        let v = unsafe { &*(userdata as *const Mutex<Vec<(c_int, String)>>) };
        // SAFETY: by the contract, `message` is a NUL-terminated string.
        let message = unsafe { CStr::from_ptr(message) };
        v.lock()
            .unwrap()
            .push((level, message.to_str().unwrap().to_string()));
    }

    #[test]
    fn events_reach_the_callback_with_syslog_levels() {
        let seen: Mutex<Vec<(c_int, String)>> = Mutex::new(Vec::new());
        let sink = CallbackSink::new(record, &seen as *const _ as *mut c_void);
        sink.event(&Event::Merged("/usr".into()));
        sink.event(&Event::Skipped {
            name: "a".into(),
            reason: "r".into(),
        });
        sink.event(&Event::Message(Level::Warning, "w\0x".into()));
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen,
            [
                (6, "Merged extensions into '/usr'.".to_string()),
                (7, "Extension 'a' ignored: r".to_string()),
                (4, "wx".to_string()),
            ]
        );
    }
}
