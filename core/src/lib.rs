//! libsysext: compose extension images onto `/usr`, `/opt` and `/etc` with overlayfs,
//! the way `systemd-sysext` and `systemd-confext` do, without needing systemd.
//!
//! The library never prints: progress and skipped images are reported through
//! [`event::EventSink`], failures through the typed [`Error`].
//!
//! ```no_run
//! use sysext::{Context, Options, ImageClass, MutableMode};
//! let mut opts = Options::new(ImageClass::Sysext);
//! opts.root = Some("/srv/demo-root".into());
//! opts.mutable = Some(MutableMode::Ephemeral);
//! let ctx = Context::new(opts)?;
//! let report = ctx.merge()?;
//! println!("merged {:?}", report.merged);
//! ctx.unmerge()?;
//! # Ok::<(), sysext::Error>(())
//! ```

#![warn(missing_docs)]
// A library does not panic on bad input or a failed call: errors are returned (tests may).
#![warn(clippy::unwrap_used, clippy::expect_used)]

/// Declares the crate's internal modules: `pub(crate)`, or, with the `testing` feature, `pub`
/// and `#[doc(hidden)]`: the door through which the workspace's integration tests, fuzz
/// targets and benchmarks reach internals. Nothing behind it is part of the API.
macro_rules! internal {
    ($($(#[$attr:meta])* $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        pub(crate) mod $name;
    )*};
}

// The public API: the types re-exported below and these modules.
pub mod error;
pub mod event;
pub mod image;
pub mod level;
pub mod overlayopts;
pub mod plan;
pub mod release;

internal! {
    arch;
    class;
    compat;
    config;
    context;
    discover;
    exec;
    extension;
    fscontext;
    hierarchy;
    kernel;
    lock;
    meta;
    mountinfo;
    mutable;
    probe;
    root;
    smallfile;
    state;
    sys;
    version;
}

pub use class::{ClassInfo, ImageClass};
pub use context::{Context, Extension, ImageState, Options, PlanReport, Report, Skipped};
pub use discover::ImageKind;
pub use error::{Error, ErrorKind, Result};
pub use event::{Event, EventSink, Level};
pub use hierarchy::Hierarchy;
pub use kernel::{Kernel, KernelFeatures};
pub use level::Compat;
pub use mutable::MutableMode;
pub use plan::UpperKind;
pub use state::HierarchyStatus;

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
