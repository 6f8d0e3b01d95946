//! Disk images: file system detection, GPT parsing and DPS partition selection, image
//! policies and dm-verity verification. Pure userspace code that reads image files; the
//! kernel side (loop devices) lives in [`crate::sys`].

pub mod dmverity;
pub mod dps;
pub mod error;
pub mod gpt;
pub mod mount;
pub mod policy;
pub mod signature;
pub mod superblock;
pub mod verity;

#[cfg(test)]
pub(crate) mod testutil;

pub use dps::{Guid, PartitionKind};
pub use error::{ImageError, ImagePart};
pub use gpt::{GptError, GptTable, Part, SelectError, SelectOptions, Selection};
pub use policy::{ImagePolicy, PartitionDesignator, PolicyFlags, PolicyViolation, Protection};
pub use superblock::FsType;
pub use verity::{VerityError, VeritySuperblock};
