//! Disk images: file system detection, GPT parsing and DPS partition selection, image
//! policies and dm-verity verification. Pure userspace code that reads image files; the
//! kernel side (loop devices) lives in the crate's `sys` module.

pub(crate) mod dmverity;
pub(crate) mod dps;
pub(crate) mod error;
pub(crate) mod gpt;
pub(crate) mod mount;
pub(crate) mod policy;
pub(crate) mod signature;
pub(crate) mod superblock;
pub(crate) mod verity;

#[cfg(test)]
pub(crate) mod testutil;

pub use dps::{Guid, PartitionKind};
pub use error::{ImageError, ImagePart};
pub use gpt::{GptError, GptPartition, GptTable, Part, SelectError, SelectOptions, Selection};
pub use mount::VerityCheck;
pub use policy::{
    ImagePolicy, PartitionDesignator, PolicyFlags, PolicyParseError, PolicyParseErrorKind,
    PolicyViolation, Protection,
};
pub use superblock::FsType;
pub use verity::{VerityError, VeritySuperblock};
