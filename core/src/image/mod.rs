//! Disk images: file system detection, GPT parsing and DPS partition selection, image
//! policies and dm-verity verification. Pure userspace code that reads image files; the
//! kernel side (loop devices) lives in the crate's `sys` module.

internal! {
    dmverity;
    dps;
    error;
    gpt;
    mount;
    policy;
    signature;
    superblock;
    verity;
}

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
