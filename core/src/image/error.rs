//! Why an image file cannot be used: [`ImageError`], carried by
//! [`crate::Error::Image`] together with the image's path.
//!
//! Every variant says which part of the image is at fault ([`ImagePart`]: the superblock,
//! the GPT header, partition N, the verity tree, …) and what is wrong with it in words;
//! [`ImageError::errno`] gives the errno systemd-sysext fails such an image with, where
//! it fails it.

use crate::image::gpt::{GptError, SelectError};
use crate::image::policy::PartitionDesignator;
use crate::image::superblock::FsType;
use crate::image::verity::VerityError;
use std::fmt;
use std::io;

/// A part of an image file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImagePart {
    /// The file as a whole (its type, its size, its first bytes).
    File,
    /// The file system superblock of a naked file system image.
    Superblock,
    /// The GUID partition table (header and entries).
    PartitionTable,
    /// One partition of a GPT disk image.
    Partition {
        /// The partition number (1-based, as the kernel counts).
        number: u32,
        /// What it was chosen for.
        designator: PartitionDesignator,
    },
    /// The file system superblock inside a partition.
    PartitionSuperblock {
        /// The partition number.
        number: u32,
        /// What it was chosen for.
        designator: PartitionDesignator,
    },
    /// The verity hash tree of a partition (or of the `.verity` sidecar file).
    VerityTree {
        /// The hash partition's number; `None` for a sidecar file.
        number: Option<u32>,
        /// The data it protects.
        designator: PartitionDesignator,
    },
    /// A verity signature partition.
    VeritySignature {
        /// The partition number.
        number: u32,
        /// The data it signs.
        designator: PartitionDesignator,
    },
}

impl fmt::Display for ImagePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImagePart::File => f.write_str("file"),
            ImagePart::Superblock => f.write_str("file system superblock"),
            ImagePart::PartitionTable => f.write_str("GPT partition table"),
            ImagePart::Partition { number, designator } => {
                write!(f, "partition {number} ({designator})")
            }
            ImagePart::PartitionSuperblock { number, designator } => {
                write!(
                    f,
                    "file system superblock of partition {number} ({designator})"
                )
            }
            ImagePart::VerityTree {
                number: Some(n),
                designator,
            } => write!(f, "verity tree (partition {n}) of {designator}"),
            ImagePart::VerityTree {
                number: None,
                designator,
            } => write!(f, "verity tree (.verity file) of {designator}"),
            ImagePart::VeritySignature { number, designator } => {
                write!(f, "verity signature (partition {number}) of {designator}")
            }
        }
    }
}

/// Why an image file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Neither a file system nor a partition table was recognised.
    #[error(
        "neither a file system superblock (erofs, squashfs, ext4, btrfs) nor a GPT partition table was found"
    )]
    Unrecognised,
    /// Something that is not a regular file or a block device.
    #[error("{part}: is {what}, not a regular file or block device")]
    NotAnImage {
        /// [`ImagePart::File`].
        part: ImagePart,
        /// "a FIFO", "a directory", …
        what: &'static str,
    },
    /// A block device below an explicit root, where block devices are not allowed.
    #[error("is a block device below the root, and block devices there are not allowed (allow_block_devices)")]
    BlockDeviceRefused,
    /// The partition table is broken.
    #[error("{}: {source}", ImagePart::PartitionTable)]
    PartitionTable {
        /// What is wrong.
        #[source]
        source: GptError,
    },
    /// The partitions do not make a usable image (none for root or usr, ambiguous, …).
    #[error("{}: {source}", ImagePart::PartitionTable)]
    PartitionSelection {
        /// What is wrong.
        #[source]
        source: SelectError,
    },
    /// A chosen partition holds no file system we know.
    #[error("{part}: no file system superblock (erofs, squashfs, ext4, btrfs) found")]
    NoFileSystem {
        /// The partition.
        part: ImagePart,
    },
    /// A file system superblock claims more bytes than its file or partition has.
    #[error("{part}: the {fstype} superblock says the file system has {claimed} bytes, only {available} are there (truncated image)")]
    Truncated {
        /// The superblock.
        part: ImagePart,
        /// Its file system.
        fstype: FsType,
        /// Bytes the superblock claims.
        claimed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// The verity data does not verify (or is malformed).
    #[error("{part}: {source}")]
    Verity {
        /// The verity tree, or the data partition whose block does not match.
        part: ImagePart,
        /// What is wrong.
        #[source]
        source: VerityError,
    },
    /// A verity signature is malformed or not accepted.
    #[error("{part}: {reason}")]
    Signature {
        /// The signature partition.
        part: ImagePart,
        /// What is wrong.
        reason: String,
    },
    /// The image needs dm-verity, which this kernel lacks (or which is not done here).
    #[error("{part} has verity data (its root hash is known), which needs dm-verity{}; pass --image-policy={designator}=verity to verify it in userspace instead",
        if *.device_mapper { ", and its set-up is not implemented" } else { ", but this kernel has no device-mapper" })]
    NeedsDeviceMapper {
        /// The data partition (or the file).
        part: ImagePart,
        /// What it is.
        designator: PartitionDesignator,
        /// Whether device-mapper exists (set-up is then not implemented here).
        device_mapper: bool,
    },
    /// The image does not satisfy the image policy (becomes [`crate::Error::ImagePolicy`]).
    #[error("{0}")]
    Policy(String),
    /// The kernel refused to mount a file system.
    #[error(
        "{part}: the kernel refused to mount it as {fstype}: {}{}",
        crate::error::strerror(source),
        kernel_log_text(kernel_log)
    )]
    Mount {
        /// The superblock (of the file or of a partition).
        part: ImagePart,
        /// The file system type asked for.
        fstype: FsType,
        /// The system call's error.
        #[source]
        source: io::Error,
        /// The kernel's messages about it, without their level prefix.
        kernel_log: Vec<String>,
    },
    /// Reading or setting up a part failed.
    #[error("{part}: cannot {op}: {}", crate::error::strerror(source))]
    Io {
        /// The part being read or set up.
        part: ImagePart,
        /// What was being done ("read", "attach a loop device for", …).
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn kernel_log_text(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("; the kernel said: {}", log.join("; "))
    }
}

/// The messages a file system context log holds, as read from its fd in chunks: one per
/// line, without the level prefix (`e `, `w `, `i `) the kernel puts before each.
pub fn kernel_log_lines(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| {
            let l = l.trim_end();
            match l.as_bytes() {
                [b'e' | b'w' | b'i', b' ', ..] => &l[2..],
                _ => l,
            }
        })
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

impl ImageError {
    /// The errno systemd-sysext fails such an image with (`ENOPKG` when it recognises
    /// nothing, `EAFNOSUPPORT` for a partition without a known file system, …), or ours
    /// where systemd has no such failure.
    pub fn errno(&self) -> i32 {
        use libc::*;
        match self {
            ImageError::Unrecognised | ImageError::PartitionTable { .. } => ENOPKG,
            ImageError::NotAnImage { what, .. } if *what == "a directory" => EISDIR,
            ImageError::NotAnImage { .. } => EBADFD,
            ImageError::BlockDeviceRefused => EPERM,
            ImageError::PartitionSelection { source } => source.errno(),
            ImageError::NoFileSystem { .. } => EAFNOSUPPORT,
            ImageError::Truncated { .. } | ImageError::Verity { .. } => EBADMSG,
            ImageError::Signature { .. } => EBADMSG,
            ImageError::NeedsDeviceMapper { .. } => EOPNOTSUPP,
            ImageError::Policy(_) => ERFKILL,
            ImageError::Mount { source, .. } | ImageError::Io { source, .. } => {
                source.raw_os_error().unwrap_or(EIO)
            }
        }
    }

    /// Whether systemd-sysext 257 fails such an image too, with [`ImageError::errno`]
    /// (its only message is then "Failed to read metadata for image NAME: " and the
    /// errno's text). Where it does not (it merges a truncated squashfs, has no
    /// userspace verity, no block device rule for roots), front ends that speak
    /// systemd's language print our message instead.
    pub fn systemd_fails_alike(&self) -> bool {
        matches!(
            self,
            ImageError::Unrecognised
                | ImageError::PartitionTable { .. }
                | ImageError::PartitionSelection { .. }
                | ImageError::NoFileSystem { .. }
                | ImageError::NeedsDeviceMapper { .. }
        )
    }

    /// The part at fault, where one part is.
    pub fn part(&self) -> Option<&ImagePart> {
        match self {
            ImageError::NotAnImage { part, .. }
            | ImageError::NoFileSystem { part }
            | ImageError::Truncated { part, .. }
            | ImageError::Verity { part, .. }
            | ImageError::Signature { part, .. }
            | ImageError::NeedsDeviceMapper { part, .. }
            | ImageError::Mount { part, .. }
            | ImageError::Io { part, .. } => Some(part),
            ImageError::PartitionTable { .. } | ImageError::PartitionSelection { .. } => {
                Some(&ImagePart::PartitionTable)
            }
            ImageError::Unrecognised | ImageError::BlockDeviceRefused | ImageError::Policy(_) => {
                None
            }
        }
    }

    pub(crate) fn io(part: ImagePart, op: &'static str, source: impl Into<io::Error>) -> Self {
        ImageError::Io {
            part,
            op,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_fails_as_one_and_other_files_as_bad_descriptors() {
        let not = |what| ImageError::NotAnImage {
            part: ImagePart::File,
            what,
        };
        assert_eq!(not("a directory").errno(), libc::EISDIR);
        assert_eq!(not("a FIFO").errno(), libc::EBADFD);
        // systemd has no such refusal: ours is the message, not its errno text.
        assert!(!not("a FIFO").systemd_fails_alike());
        assert!(!ImageError::Policy("x".into()).systemd_fails_alike());
        assert!(ImageError::Unrecognised.systemd_fails_alike());
    }

    #[test]
    fn kernel_log_prefixes_are_stripped() {
        let raw = b"e squashfs: Unable to read page, block 1f0, size 3000\ne squashfs: Unable to read inode\nw erofs: odd\ni plain\nno prefix\n\n";
        assert_eq!(
            kernel_log_lines(raw),
            vec![
                "squashfs: Unable to read page, block 1f0, size 3000",
                "squashfs: Unable to read inode",
                "erofs: odd",
                "plain",
                "no prefix"
            ]
        );
    }

    #[test]
    fn messages_name_the_part_and_never_stand_on_a_bare_errno() {
        let d = PartitionDesignator::Root;
        let e = ImageError::Mount {
            part: ImagePart::PartitionSuperblock {
                number: 2,
                designator: d,
            },
            fstype: FsType::Squashfs,
            source: io::Error::from_raw_os_error(libc::EIO),
            kernel_log: vec!["squashfs: Unable to read inode".into()],
        };
        assert_eq!(
            e.to_string(),
            "file system superblock of partition 2 (root): the kernel refused to mount it as squashfs: \
             Input/output error; the kernel said: squashfs: Unable to read inode"
        );
        assert_eq!(e.errno(), libc::EIO);
        let e = ImageError::io(
            ImagePart::File,
            "read",
            io::Error::from_raw_os_error(libc::EBADMSG),
        );
        assert_eq!(e.to_string(), "file: cannot read: Bad message");
        let e = ImageError::PartitionTable {
            source: GptError::HeaderCrc {
                stored: 1,
                computed: 2,
            },
        };
        assert!(
            e.to_string()
                .starts_with("GPT partition table: GPT header: CRC32 mismatch"),
            "{e}"
        );
        assert_eq!(e.errno(), libc::ENOPKG);
        assert!(e.systemd_fails_alike());
        assert_eq!(e.part(), Some(&ImagePart::PartitionTable));
        assert_eq!(ImageError::Unrecognised.errno(), libc::ENOPKG);
        assert_eq!(
            ImageError::NoFileSystem {
                part: ImagePart::Partition {
                    number: 1,
                    designator: d
                }
            }
            .to_string(),
            "partition 1 (root): no file system superblock (erofs, squashfs, ext4, btrfs) found"
        );
        let e = ImageError::NeedsDeviceMapper {
            part: ImagePart::Partition {
                number: 1,
                designator: d,
            },
            designator: d,
            device_mapper: false,
        };
        assert!(
            e.to_string()
                .contains("no device-mapper; pass --image-policy=root=verity"),
            "{e}"
        );
    }
}
