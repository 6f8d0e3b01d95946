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

pub mod arch;
pub mod class;
pub mod compat;
pub mod config;
pub mod context;
pub mod discover;
pub mod error;
pub mod event;
pub mod exec;
pub mod extension;
pub(crate) mod fscontext;
pub mod hierarchy;
pub mod image;
pub mod kernel;
pub mod level;
pub mod lock;
pub mod meta;
pub mod mountinfo;
pub mod mutable;
pub mod overlayopts;
pub mod plan;
pub mod probe;
pub mod release;
pub mod root;
pub mod smallfile;
pub mod state;
pub mod sys;
pub mod version;

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
