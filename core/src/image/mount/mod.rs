//! Opening image files for merging: detect the file system (naked erofs/squashfs/ext4/btrfs)
//! or the GPT disk image layout, apply the image policy, verify verity in userspace where
//! needed, and mount the result as a detached, read-only tree.
//!
//! erofs images are mounted straight from the file when the kernel supports it; everything
//! else goes through a read-only, auto-clearing loop device attached with one
//! `LOOP_CONFIGURE` (so the device disappears with the mount, and on every error path).
//!
//! One file per job: `region` puts a file system region on a detached mount, `protect`
//! decides and sets up verity, `naked` and `disk` open the two kinds of image.

mod disk;
mod naked;
mod protect;
mod region;

use crate::class::ImageClass;
use crate::image::policy::{ImagePolicy, PartitionDesignator, Protection};
use crate::image::superblock::{self, FsType};
use protect::{DmPlan, Trust};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::io;

pub use crate::image::error::{ImageError, ImagePart};

/// A mounted image.
#[derive(Debug)]
pub struct MountedImage {
    /// The detached, read-only tree (root of the image).
    pub tree: OwnedFd,
    /// Things worth a debug message (a broken primary GPT replaced by the backup one).
    pub notes: Vec<String>,
    /// Where verity is checked, for a verity-protected image (`None`: not protected).
    pub verity: Option<VerityCheck>,
}

/// Where the verity data of a mounted image is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerityCheck {
    /// By the kernel, every block on every read (a dm-verity device).
    Kernel,
    /// Once, in userspace, before mounting (no device-mapper here): later changes to the
    /// file are not caught.
    Userspace,
}

impl VerityCheck {
    /// `dm-verity` or `userspace` (as `list --long` and `list --json` show it).
    pub fn as_str(self) -> &'static str {
        match self {
            VerityCheck::Kernel => "dm-verity",
            VerityCheck::Userspace => "userspace",
        }
    }

    fn of(p: Protection, plan: Option<&DmPlan<'_>>) -> Option<VerityCheck> {
        match (p, plan) {
            (Protection::Verity | Protection::Signed, Some(_)) => Some(VerityCheck::Kernel),
            (Protection::Verity | Protection::Signed, None) => Some(VerityCheck::Userspace),
            _ => None,
        }
    }
}

/// Called before each mount-related step (fault injection in tests).
pub type StepHook<'a> = &'a dyn Fn(&str) -> io::Result<()>;

/// One image being opened: what every step needs to know about the request.
struct Opener<'a> {
    /// The root the image path is relative to (and, at 262, where `verity.d` is read).
    root: BorrowedFd<'a>,
    /// The image's path below the root.
    image_rel: &'a str,
    class: ImageClass,
    /// The effective image policy, and whether the caller gave it.
    policy: &'a ImagePolicy,
    explicit_policy: bool,
    kernel: crate::kernel::Kernel,
    step: StepHook<'a>,
    /// Where the trusted certificates for signatures are read.
    trust: Trust<'a>,
    /// Whether a DDI's data and verity partition UUIDs may stand in for its root hash.
    guess_root_hash: bool,
}

/// Open and mount one image file or block device. `policy` is the effective image policy,
/// `explicit_policy` whether it was given by the caller; `allow_block` whether a block
/// device may be used.
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::too_many_arguments)]
pub fn open_image(
    root: BorrowedFd<'_>,
    image_rel: &str,
    class: ImageClass,
    policy: &ImagePolicy,
    explicit_policy: bool,
    allow_block: bool,
    kernel: crate::kernel::Kernel,
    step: StepHook<'_>,
) -> Result<MountedImage, ImageError> {
    open_image_with(
        root,
        image_rel,
        class,
        policy,
        explicit_policy,
        allow_block,
        kernel,
        step,
        crate::level::Compat::V257,
    )
}

/// Open and mount one image file or block device at a compatibility level (`open_image` is
/// at 257): at 262 a DDI whose data and verity partitions come without a root hash takes the
/// two partition UUIDs as root hash (systemd 258 and newer, see
/// [`crate::level::Compat::discovers_verity_root_hash_in_image`]), and the trusted
/// certificates for signatures are read below `root` (systemd 259 and newer,
/// [`crate::level::Compat::reads_verity_certs_in_root`]).
#[allow(clippy::too_many_arguments)]
pub fn open_image_with(
    root: BorrowedFd<'_>,
    image_rel: &str,
    class: ImageClass,
    policy: &ImagePolicy,
    explicit_policy: bool,
    allow_block: bool,
    kernel: crate::kernel::Kernel,
    step: StepHook<'_>,
    level: crate::level::Compat,
) -> Result<MountedImage, ImageError> {
    let opener = Opener {
        root,
        image_rel,
        class,
        policy,
        explicit_policy,
        kernel,
        step,
        trust: if level.reads_verity_certs_in_root() {
            Trust::Beneath(root)
        } else {
            Trust::Host
        },
        guess_root_hash: level.discovers_verity_root_hash_in_image(),
    };
    let (file, is_regular, size) = open_image_file(root, image_rel, allow_block)?;
    match superblock::detect(&file, 0, size)
        .map_err(|e| ImageError::io(ImagePart::Superblock, "read", e))?
    {
        // erofs straight from the file is tried only where the caller allows it (see
        // [`crate::kernel::KernelFeatures::EROFS_FILE`]).
        Some(fstype) => {
            let from_file = is_regular && kernel.has(crate::kernel::KernelFeatures::EROFS_FILE);
            opener.naked(&file, size, fstype, from_file)
        }
        None => opener.disk(&file, size),
    }
}

/// Open an image file (or block device) for reading: looked at `O_PATH` first, so that
/// nothing but a regular file or (where allowed) a block device is ever opened.
fn open_image_file(
    root: BorrowedFd<'_>,
    image_rel: &str,
    allow_block: bool,
) -> Result<(File, bool, u64), ImageError> {
    let part = ImagePart::File;
    let p = crate::root::open_beneath(root, image_rel, OFlags::PATH)
        .map_err(|e| ImageError::io(part.clone(), "open", e))?;
    let st = rustix::fs::fstat(&p).map_err(|e| ImageError::io(part.clone(), "stat", e))?;
    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
    match ft {
        rustix::fs::FileType::RegularFile => {}
        rustix::fs::FileType::BlockDevice if allow_block => {}
        rustix::fs::FileType::BlockDevice => return Err(ImageError::BlockDeviceRefused),
        _ => {
            return Err(ImageError::NotAnImage {
                part,
                what: match crate::smallfile::check_regular(p.as_fd()) {
                    Err(crate::smallfile::SmallFileError::NotRegular { what }) => what,
                    _ => "not a regular file",
                },
            })
        }
    }
    let fd = rustix::fs::open(
        crate::root::proc_fd_path(p.as_fd()),
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::io(part.clone(), "open", e))?;
    let is_regular = ft == rustix::fs::FileType::RegularFile;
    // A block device's size is where its end is; a file's is in its stat.
    let size = if is_regular {
        st.st_size as u64
    } else {
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0))
            .map_err(|e| ImageError::io(part, "find the size of", e))?
    };
    Ok((File::from(fd), is_regular, size))
}

impl Opener<'_> {
    fn check_policy(&self, d: PartitionDesignator, p: Protection) -> Result<(), ImageError> {
        self.policy
            .check(d, p)
            .map_err(|v| ImageError::Policy(v.to_string()))
    }

    /// The file system type flags of the policy (systemd 259), checked before mounting.
    fn check_fstype(&self, d: PartitionDesignator, fstype: FsType) -> Result<(), ImageError> {
        self.policy
            .check_fstype(d, fstype.kernel_name())
            .map_err(|v| ImageError::Policy(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `list --json`'s "verity" field.
    #[test]
    fn verity_checks_have_their_names() {
        assert_eq!(VerityCheck::Kernel.as_str(), "dm-verity");
        assert_eq!(VerityCheck::Userspace.as_str(), "userspace");
    }
}
