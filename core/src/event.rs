//! Progress and diagnostics: the library never prints, it reports [`Event`]s to an
//! [`EventSink`] and the front end (CLI, C callback, Python logger) decides what to show.

use std::fmt;

/// How important an event is (syslog-like).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Details useful when debugging.
    Debug,
    /// Normal progress (systemd logs these at info level).
    Info,
    /// Something unexpected that did not stop the operation.
    Warning,
}

/// Something that happened during an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The images that will be merged, by file name (`Using extensions 'a.raw', 'b'.`).
    Using(Vec<String>),
    /// An overlay was attached (`Merged extensions into '/usr'.`).
    Merged(String),
    /// An overlay was removed (`Unmerged '/usr'.`).
    Unmerged(String),
    /// An image was not used, and why.
    Skipped {
        /// Image name.
        name: String,
        /// The reason, naming the field and values involved.
        reason: String,
    },
    /// No images were found.
    NoExtensions,
    /// Images were found but none is compatible.
    NoSuitable {
        /// How many were ignored.
        ignored: usize,
    },
    /// A free-form message.
    Message(Level, String),
}

impl Event {
    /// The level at which systemd would log this.
    pub fn level(&self) -> Level {
        match self {
            Event::Skipped { .. } => Level::Debug,
            Event::Message(l, _) => *l,
            _ => Level::Info,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Using(names) => {
                let q: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
                write!(f, "Using extensions {}.", q.join(", "))
            }
            Event::Merged(p) => write!(f, "Merged extensions into '{p}'."),
            Event::Unmerged(p) => write!(f, "Unmerged '{p}'."),
            Event::Skipped { name, reason } => write!(f, "Extension '{name}' ignored: {reason}"),
            Event::NoExtensions => f.write_str("No extensions found."),
            Event::NoSuitable { ignored } => {
                write!(f, "No suitable extensions found ({ignored} ignored due to incompatible image(s)).")
            }
            Event::Message(_, m) => f.write_str(m),
        }
    }
}

/// Receives events. Implemented for closures.
pub trait EventSink: Send + Sync {
    /// Called synchronously on the calling thread.
    fn event(&self, event: &Event);

    /// Whether events of `level` are wanted at all: when not, the library may skip making
    /// them (timing messages, for instance). Every level, unless a sink says otherwise.
    fn enabled(&self, level: Level) -> bool {
        let _ = level;
        true
    }
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&self, _: &Event) {}

    fn enabled(&self, _: Level) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_sinks_that_want_every_level() {
        let got = std::sync::Mutex::new(Vec::new());
        let sink = |e: &Event| got.lock().unwrap().push(e.to_string());
        sink_event(&sink, &Event::Message(Level::Info, "hello".into()));
        assert_eq!(*got.lock().unwrap(), vec!["hello".to_string()]);
        for l in [Level::Debug, Level::Info, Level::Warning] {
            assert!(EventSink::enabled(&sink, l));
            assert!(!NullSink.enabled(l));
        }
    }

    fn sink_event(sink: &dyn EventSink, e: &Event) {
        sink.event(e);
    }
}
