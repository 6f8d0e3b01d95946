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
// Functions short enough to read at once (the threshold is in clippy.toml).
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

// The crate's internal modules are `pub(crate)`. With the `testing` feature, `testing` is
// the door through which the workspace's integration tests, fuzz targets and benchmarks
// reach them; nothing behind it is part of the API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

// The public API: the types re-exported below and these modules.
pub mod error;
pub mod event;
pub mod image;
pub mod level;
pub mod overlayopts;
pub mod plan;
pub mod release;

pub(crate) mod arch;
pub(crate) mod class;
pub(crate) mod compat;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod discover;
pub(crate) mod exec;
pub(crate) mod extension;
pub(crate) mod fscontext;
pub(crate) mod hierarchy;
pub(crate) mod kernel;
pub(crate) mod lock;
pub(crate) mod meta;
pub(crate) mod mountinfo;
pub(crate) mod mutable;
pub(crate) mod probe;
pub(crate) mod root;
pub(crate) mod smallfile;
pub(crate) mod state;
pub(crate) mod sys;
pub(crate) mod version;

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
