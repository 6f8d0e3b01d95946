//! libsysext: compose extension images onto `/usr`, `/opt` and `/etc` with overlayfs,
//! the way `systemd-sysext` and `systemd-confext` do, without needing systemd.
//!
//! The library never prints: progress and skipped images are reported through
//! [`event::EventSink`], failures through the typed [`Error`].

pub mod arch;
pub mod class;
pub mod compat;
pub mod image;
pub mod release;
pub mod sys;
pub mod version;

pub use class::{ClassInfo, ImageClass};
