//! Opening image files for merging: detect the file system (naked erofs/squashfs/ext4/btrfs)
//! or the GPT disk image layout, apply the image policy, verify verity in userspace where
//! needed, and mount the result as a detached, read-only tree.
//!
//! erofs images are mounted straight from the file when the kernel supports it; everything
//! else goes through a read-only, auto-clearing loop device attached with one
//! `LOOP_CONFIGURE` (so the device disappears with the mount, and on every error path).

use crate::class::ImageClass;
use crate::fscontext::FsContext;
use crate::image::gpt::{self, SelectOptions};
use crate::image::policy::{ImagePolicy, PartitionDesignator, Protection};
use crate::image::superblock::{self, FsType};
use crate::image::verity;
use crate::sys::loopdev::{LoopDevice, LoopOptions};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountAttrFlags, MoveMountFlags};
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

fn mount_fs(
    fstype: FsType,
    source: &str,
    class: ImageClass,
    step: StepHook<'_>,
    part: &ImagePart,
) -> Result<OwnedFd, ImageError> {
    let io = |op, e: rustix::io::Errno| ImageError::io(part.clone(), op, e);
    step("fsopen image")
        .map_err(|e| ImageError::io(part.clone(), "open a file system context", e))?;
    let fs =
        FsContext::open(fstype.kernel_name()).map_err(|e| io("open a file system context", e))?;
    fs.set_string("source", source)
        .map_err(|e| io("set the source of the file system context", e))?;
    if fstype == FsType::Ext4 {
        // Never replay a journal on a read-only image.
        let _ = fs.set_flag("norecovery");
    }
    fs.set_flag("ro")
        .map_err(|e| io("make the file system context read-only", e))?;
    fs.create().map_err(|e| ImageError::Mount {
        part: part.clone(),
        fstype,
        source: e.into(),
        // The kernel's messages about the failure, drained from the context's log.
        kernel_log: crate::image::error::kernel_log_lines(fs.kernel_log().join("\n").as_bytes()),
    })?;
    let mut attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV;
    if class.info().nosuid {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
    }
    fs.mount(attrs).map_err(|e| io("mount the file system", e))
}

/// Refuse a squashfs whose superblock claims more bytes than the region holds (systemd
/// fails such images as a whole; the kernel would mount them and fail reads later).
fn check_complete(
    file: &File,
    offset: u64,
    size: u64,
    fstype: FsType,
    part: &ImagePart,
) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    if fstype == FsType::Squashfs {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, offset + 40)
            .map_err(|e| ImageError::io(part.clone(), "read", e))?;
        let used = u64::from_le_bytes(b);
        let avail = if size == 0 {
            file.metadata()
                .map(|m| m.len())
                .unwrap_or(0)
                .saturating_sub(offset)
        } else {
            size
        };
        if used > avail {
            return Err(ImageError::Truncated {
                part: part.clone(),
                fstype,
                claimed: used,
                available: avail,
            });
        }
    }
    Ok(())
}

/// Mount a file system that lies at `offset`/`size` of `file` (`path` names the file).
#[allow(clippy::too_many_arguments)]
fn mount_region(
    file: &File,
    offset: u64,
    size: u64,
    fstype: FsType,
    class: ImageClass,
    whole_regular: bool,
    step: StepHook<'_>,
    part: &ImagePart,
) -> Result<OwnedFd, ImageError> {
    if fstype == FsType::Erofs && whole_regular {
        // File-backed erofs (Linux 6.12+): no loop device at all. The path is opened by the
        // kernel; use our fd's /proc link so the lookup cannot be redirected.
        match mount_fs(
            fstype,
            &crate::root::proc_fd_path(file.as_fd()),
            class,
            step,
            part,
        ) {
            Ok(m) => return Ok(m),
            // Kernels without file-backed erofs refuse the file as source: use a loop device.
            Err(ImageError::Mount { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ENOTBLK | libc::EINVAL | libc::EOPNOTSUPP | libc::ENODEV)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let opts = LoopOptions {
        read_only: true,
        autoclear: true,
        direct_io: true,
        partscan: false,
        block_size: 0,
    };
    step("loop attach").map_err(|e| ImageError::io(part.clone(), "attach a loop device for", e))?;
    let dev = LoopDevice::attach(file, offset, size, &opts)
        .map_err(|e| ImageError::io(part.clone(), "attach a loop device for", e))?;
    let devpath = dev.path().to_string_lossy().into_owned();
    match mount_fs(fstype, &devpath, class, step, part) {
        // With autoclear, the device goes away when the file system is unmounted.
        Ok(m) => {
            drop(dev.into_owned_fd());
            Ok(m)
        }
        Err(e) => {
            let _ = dev.detach();
            Err(e)
        }
    }
}

fn read_roothash_sidecar(root: BorrowedFd<'_>, image_rel: &str) -> Option<Vec<u8>> {
    let stem = image_rel.strip_suffix(".raw").unwrap_or(image_rel);
    // A regular file of at most 4 KiB (a root hash is 64 to 128 hex digits).
    let bytes = crate::smallfile::read_beneath(root, &format!("{stem}.roothash"), 4096).ok()?;
    verity::decode_hex(std::str::from_utf8(&bytes).ok()?.trim())
}

/// A verity failure, blamed on the data (a data block that does not match) or on the tree.
fn verity_error(e: verity::VerityError, data: &ImagePart, tree: &ImagePart) -> ImageError {
    let part = match e {
        verity::VerityError::DataBlockMismatch { .. }
        | verity::VerityError::DataTooSmall { .. } => data.clone(),
        _ => tree.clone(),
    };
    ImageError::Verity { part, source: e }
}

/// Verify a verity-protected region in userspace (no device-mapper needed).
fn verify_userspace(
    file: &File,
    hash_file: &File,
    data: (u64, u64),
    hash: (u64, u64),
    root_hash: &[u8],
    parts: (&ImagePart, &ImagePart),
) -> Result<(), ImageError> {
    let bad = |e| verity_error(e, parts.0, parts.1);
    // The superblock says how much of the (possibly larger, aligned) partition is data.
    let sb = verity::VeritySuperblock::read(hash_file, hash.0).map_err(bad)?;
    let size = sb.data_blocks.saturating_mul(u64::from(sb.data_block_size));
    if size == 0 || size > data.1 {
        return Err(ImageError::Verity {
            part: parts.1.clone(),
            source: verity::VerityError::DataTooSmall {
                needed: size,
                available: data.1,
            },
        });
    }
    verity::verify_with_superblock(&sb, file, data.0, size, hash_file, hash.0, root_hash)
        .map_err(bad)
}

fn device_mapper_available() -> bool {
    crate::image::dmverity::available()
}

/// The verity parts of one data region: the data, its hash tree, its signature.
struct VerityParts {
    data: ImagePart,
    tree: ImagePart,
    sig: Option<ImagePart>,
}

/// A region to be mounted through dm-verity: the kernel checks every block on every read.
struct DmPlan<'a> {
    /// The file holding the hash tree (the image, or the `.verity` sidecar) and the tree's
    /// region in it.
    hash_file: &'a File,
    hash: (u64, u64),
    root_hash: Vec<u8>,
    /// The PKCS#7 signature for the kernel, and whether the kernel must accept it (it was
    /// not verified in userspace).
    signature: Option<(Vec<u8>, bool)>,
}

/// What protection a region gets, given a root hash and the policy, and (with
/// device-mapper) how to set up dm-verity for it. Without device-mapper the region is
/// verified once in userspace, where the caller's policy asks for verity explicitly.
#[allow(clippy::too_many_arguments)]
fn decide_verity<'a>(
    file: &File,
    hash_file: &'a File,
    d: PartitionDesignator,
    data: (u64, u64),
    hash: Option<(u64, u64)>,
    root_hash: Option<&[u8]>,
    sig: Option<&verity::VeritySignature>,
    policy: &ImagePolicy,
    explicit_policy: bool,
    parts: &VerityParts,
    trust: Trust<'_>,
) -> Result<(Protection, Option<DmPlan<'a>>), ImageError> {
    let (Some(hash), Some(rh)) = (hash, root_hash) else {
        // No root hash: verity cannot be set up; the region is used unprotected.
        return Ok((Protection::Unprotected, None));
    };
    let dm = device_mapper_available();
    if !dm && !explicit_policy {
        // systemd-sysext sets up dm-verity here and fails without device-mapper.
        return Err(ImageError::NeedsDeviceMapper {
            part: parts.data.clone(),
            designator: d,
            device_mapper: false,
        });
    }
    if !dm {
        verify_userspace(file, hash_file, data, hash, rh, (&parts.data, &parts.tree))?;
    }
    let plan = |signature| DmPlan {
        hash_file,
        hash,
        root_hash: rh.to_vec(),
        signature,
    };
    // With a signature partition, the PKCS#7 signature of the root hash is checked against
    // the trusted certificates (/etc/verity.d, …); without one the region counts as
    // verity-protected.
    let Some(sig) = sig else {
        return Ok((Protection::Verity, dm.then(|| plan(None))));
    };
    let trusted = match trust {
        Trust::Host => crate::image::signature::load_default_trusted(),
        Trust::Beneath(root) => {
            let shown = crate::root::fd_path(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            crate::image::signature::load_trusted_beneath(root, &shown).0
        }
    };
    let hex: String = rh.iter().map(|b| format!("{b:02x}")).collect();
    match crate::image::signature::verify_signature(sig, &hex, &trusted) {
        // Accepted: the kernel gets the signature too, where it can check it.
        Ok(_) => Ok((
            Protection::Signed,
            dm.then(|| plan(Some((sig.signature.clone(), false)))),
        )),
        // Without device-mapper (userspace check), a policy that takes plain verity takes
        // the image as verity-protected.
        Err(_) if !dm && policy.check(d, Protection::Verity).is_ok() => {
            Ok((Protection::Verity, None))
        }
        // Not trusted here: the kernel's keyring may still vouch for the signer, as
        // systemd lets it; if it does not, the image fails (as systemd's activation does,
        // whatever the policy).
        Err(_) if dm && sig.root_hash == rh => Ok((
            Protection::Signed,
            Some(plan(Some((sig.signature.clone(), true)))),
        )),
        Err(e) => Err(ImageError::Policy(format!(
            "partition '{d}': verity signature not accepted{}: {e}",
            match &parts.sig {
                Some(ImagePart::VeritySignature { number, .. }) => format!(" (partition {number})"),
                _ => String::new(),
            }
        ))),
    }
}

/// Where the trusted certificates for a signature check are read (see
/// [`crate::level::Compat::reads_verity_certs_in_root`]).
#[derive(Clone, Copy)]
enum Trust<'a> {
    /// The host's `verity.d` directories (systemd 257).
    Host,
    /// The `verity.d` directories below this root (systemd 259 and newer).
    Beneath(BorrowedFd<'a>),
}

/// Where verity is checked, for the debug log: by the kernel on every read (dm-verity), or
/// once, before mounting, in userspace (no device-mapper).
fn protection_note(p: Protection, plan: Option<&DmPlan<'_>>) -> Option<String> {
    match (p, plan) {
        (Protection::Verity | Protection::Signed, Some(_)) => Some(format!(
            "{p}: dm-verity, every block checked by the kernel on every read."
        )),
        (Protection::Verity | Protection::Signed, None) => Some(format!(
            "{p}: no device-mapper here, verified once in userspace before mounting (not dm-verity: later changes to the file are not caught)."
        )),
        _ => None,
    }
}

/// Mount the region `data` of `file` through a dm-verity device (set up, or shared with
/// another merge of the same image).
#[allow(clippy::too_many_arguments)]
fn mount_dm_verity(
    file: &File,
    data: (u64, u64),
    plan: &DmPlan<'_>,
    fstype: FsType,
    class: ImageClass,
    step: StepHook<'_>,
    parts: (&ImagePart, &ImagePart),
) -> Result<OwnedFd, ImageError> {
    let bad = |e| verity_error(e, parts.0, parts.1);
    let sb = verity::VeritySuperblock::read(plan.hash_file, plan.hash.0).map_err(bad)?;
    let size = sb.data_blocks.saturating_mul(u64::from(sb.data_block_size));
    let avail = if data.1 == 0 {
        file.metadata()
            .map(|m| m.len())
            .unwrap_or(0)
            .saturating_sub(data.0)
    } else {
        data.1
    };
    if size == 0 || size > avail {
        return Err(ImageError::Verity {
            part: parts.1.clone(),
            source: verity::VerityError::DataTooSmall {
                needed: size,
                available: avail,
            },
        });
    }
    if verity::HashAlgorithm::from_name(&sb.algorithm).is_none() {
        return Err(bad(verity::VerityError::UnsupportedAlgorithm(
            sb.algorithm.clone(),
        )));
    }
    if plan.root_hash.len()
        != verity::HashAlgorithm::from_name(&sb.algorithm).map_or(0, |a| a.digest_size())
    {
        return Err(bad(verity::VerityError::RootHashLength {
            algorithm: sb.algorithm.clone(),
            expected: verity::HashAlgorithm::from_name(&sb.algorithm)
                .map_or(0, |a| a.digest_size()),
            got: plan.root_hash.len(),
        }));
    }
    step("verity device")
        .map_err(|e| ImageError::io(parts.0.clone(), "set up dm-verity for", e))?;
    let dmv = crate::image::dmverity::activate(
        crate::image::dmverity::Region {
            file,
            offset: data.0,
            size: data.1,
        },
        crate::image::dmverity::Region {
            file: plan.hash_file,
            offset: plan.hash.0,
            size: plan.hash.1,
        },
        &sb,
        &plan.root_hash,
        plan.signature.as_ref().map(
            |(pkcs7, required)| crate::image::dmverity::KernelSignature {
                pkcs7,
                required: *required,
            },
        ),
    )
    .map_err(|e| {
        if e.signature_rejected {
            ImageError::Policy(format!(
                "{}: verity signature not accepted: no trusted certificate in verity.d matches, and the kernel's keyring does not vouch for the signer either ({})",
                parts.0,
                e.source
            ))
        } else {
            ImageError::Io {
                part: parts.0.clone(),
                op: e.op,
                source: e.source,
            }
        }
    })?;
    // The file system holds the device from here; our descriptor goes, and with it (once
    // unmounted) the device, by its deferred removal.
    mount_fs(
        fstype,
        &crate::root::proc_fd_path(dmv.node.as_fd()),
        class,
        step,
        parts.0,
    )
}

/// `SYSTEMD_DISSECT_VERITY_GUESS=0` (or another false value) turns the root hash discovery
/// from partition UUIDs off, as in systemd.
fn guess_enabled() -> bool {
    match std::env::var("SYSTEMD_DISSECT_VERITY_GUESS") {
        Ok(v) => !matches!(
            v.to_ascii_lowercase().as_str(),
            "0" | "no" | "n" | "false" | "f" | "off"
        ),
        Err(_) => true,
    }
}

fn check_policy(
    policy: &ImagePolicy,
    d: PartitionDesignator,
    p: Protection,
) -> Result<(), ImageError> {
    policy
        .check(d, p)
        .map_err(|v| ImageError::Policy(v.to_string()))
}

/// The file system type flags of the policy (systemd 259), checked before mounting.
fn check_fstype(
    policy: &ImagePolicy,
    d: PartitionDesignator,
    fstype: FsType,
) -> Result<(), ImageError> {
    policy
        .check_fstype(d, fstype.kernel_name())
        .map_err(|v| ImageError::Policy(v.to_string()))
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

/// Open and mount one image file or block device. `policy` is the effective image policy,
/// `explicit_policy` whether it was given by the caller; `allow_block` whether a block
/// device may be used.
#[cfg(any(test, feature = "testing"))]
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

/// [`open_image`] at a compatibility level (`open_image` is at 257): at 262 a DDI whose data
/// and verity partitions come without a root hash takes the two partition UUIDs as root hash
/// (systemd 258 and newer, see [`crate::level::Compat::discovers_verity_root_hash_in_image`]),
/// and the trusted certificates for signatures are read below `root` (systemd 259 and newer,
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
    let guess_root_hash = level.discovers_verity_root_hash_in_image();
    let trust = if level.reads_verity_certs_in_root() {
        Trust::Beneath(root)
    } else {
        Trust::Host
    };
    let (file, is_regular, size) = open_image_file(root, image_rel, allow_block)?;
    // erofs straight from the file is tried only where the caller allows it (see
    // [`crate::kernel::KernelFeatures::EROFS_FILE`]).
    let from_file = is_regular && kernel.has(crate::kernel::KernelFeatures::EROFS_FILE);

    // A naked file system?
    if let Some(fstype) = superblock::detect(&file, 0, size)
        .map_err(|e| ImageError::io(ImagePart::Superblock, "read", e))?
    {
        let sb = ImagePart::Superblock;
        let vparts = VerityParts {
            data: ImagePart::File,
            tree: ImagePart::VerityTree {
                number: None,
                designator: PartitionDesignator::Root,
            },
            sig: None,
        };
        let root_hash = read_roothash_sidecar(root, image_rel);
        let stem = image_rel.strip_suffix(".raw").unwrap_or(image_rel);
        let vf = root_hash.as_ref().and_then(|_| {
            let vpath = format!("{stem}.verity");
            crate::smallfile::open_checked(|f| crate::root::open_beneath(root, &vpath, f))
                .ok()
                .map(File::from)
        });
        let (protection, plan) = match (&root_hash, &vf) {
            (Some(rh), Some(vf)) => {
                // A detached signature of the root hash (`NAME.roothash.p7s`, DER PKCS#7).
                let sig =
                    crate::smallfile::read_beneath(root, &format!("{stem}.roothash.p7s"), 1 << 20)
                        .ok()
                        .map(|der| verity::VeritySignature {
                            root_hash: rh.clone(),
                            signature: der,
                            certificate_fingerprint: None,
                        });
                decide_verity(
                    &file,
                    vf,
                    PartitionDesignator::Root,
                    (0, size),
                    Some((0, 0)),
                    Some(rh),
                    sig.as_ref(),
                    policy,
                    explicit_policy,
                    &vparts,
                    trust,
                )?
            }
            _ => (Protection::Unprotected, None),
        };
        check_policy(policy, PartitionDesignator::Root, protection)?;
        check_fstype(policy, PartitionDesignator::Root, fstype)?;
        check_complete(&file, 0, size, fstype, &sb)?;
        let tree = match &plan {
            Some(plan) => mount_dm_verity(
                &file,
                (0, size),
                plan,
                fstype,
                class,
                step,
                (&vparts.data, &vparts.tree),
            )?,
            None => mount_region(&file, 0, 0, fstype, class, from_file, step, &sb)?,
        };
        let mut notes = Vec::new();
        if let Some(n) = protection_note(protection, plan.as_ref()) {
            notes.push(n);
        }
        return Ok(MountedImage {
            tree,
            notes,
            verity: VerityCheck::of(protection, plan.as_ref()),
        });
    }

    // A GPT disk image?
    let table_part = ImagePart::PartitionTable;
    if !gpt::is_gpt(&file, size).map_err(|e| ImageError::io(table_part.clone(), "read", e))? {
        return Err(ImageError::Unrecognised);
    }
    let table = gpt::read(&file, size).map_err(|e| match e {
        gpt::GptError::Io(e) => ImageError::io(table_part.clone(), "read", e),
        source => ImageError::PartitionTable { source },
    })?;
    let mut notes = Vec::new();
    if let Some(why) = &table.primary_broken {
        notes.push(format!(
            "The primary GPT header is broken ({why}); using the backup GPT header at the end of the image."
        ));
    }
    let arch = crate::arch::native();
    let mut opts = SelectOptions::new(arch);
    opts.policy = Some(policy);
    let sel = gpt::select_with(&table, &opts).map_err(|e| match e {
        gpt::SelectError::Policy(v) => ImageError::Policy(v.to_string()),
        source => ImageError::PartitionSelection { source },
    })?;

    // The same table without a policy, to find a signature partition whose root hash can
    // still serve for userspace verification when the policy ignores the signature itself.
    let unrestricted = gpt::select_with(
        &table,
        &SelectOptions {
            policy: None,
            ..opts
        },
    )
    .ok();
    let mount_part = |d: PartitionDesignator,
                      part: &gpt::Part|
     -> Result<
        (
            OwnedFd,
            FsType,
            Protection,
            Option<String>,
            Option<VerityCheck>,
        ),
        ImageError,
    > {
        let (vd, sd) = (
            d.verity().expect("data designator"),
            d.verity_sig().expect("data designator"),
        );
        let data_part = ImagePart::Partition {
            number: part.number,
            designator: d,
        };
        let hash_p = sel.get(vd);
        let hash = hash_p.map(|p| (p.offset, p.size));
        let sig_part = sel.get(sd).or_else(|| {
            if hash.is_some() {
                unrestricted.as_ref().and_then(|u| u.get(sd))
            } else {
                None
            }
        });
        let vparts = VerityParts {
            data: data_part.clone(),
            tree: ImagePart::VerityTree {
                number: hash_p.map(|p| p.number),
                designator: d,
            },
            sig: sig_part.map(|p| ImagePart::VeritySignature {
                number: p.number,
                designator: d,
            }),
        };
        let sig = match sig_part {
            Some(p) => Some(
                verity::read_signature(&file, p.offset, p.size).map_err(|e| {
                    ImageError::Signature {
                        part: ImagePart::VeritySignature {
                            number: p.number,
                            designator: d,
                        },
                        reason: e.to_string(),
                    }
                })?,
            ),
            None => None,
        };
        let sidecar = read_roothash_sidecar(root, image_rel);
        let guessed = match hash_p {
            Some(h) if guess_root_hash && guess_enabled() => Some([part.uuid.0, h.uuid.0].concat()),
            _ => None,
        };
        let root_hash = sig
            .as_ref()
            .map(|s| s.root_hash.clone())
            .or(sidecar)
            .or(guessed);
        // A signature partition the policy ignores may lend its root hash, but does not count.
        let sig_for_check = if sel.get(sd).is_some() {
            sig.as_ref()
        } else {
            None
        };
        let (protection, plan) = decide_verity(
            &file,
            &file,
            d,
            (part.offset, part.size),
            hash,
            root_hash.as_deref(),
            sig_for_check,
            policy,
            explicit_policy,
            &vparts,
            trust,
        )?;
        check_policy(policy, d, protection)?;
        policy
            .check_gpt_flags(d, part.flags)
            .map_err(|v| ImageError::Policy(v.to_string()))?;
        let sb_part = ImagePart::PartitionSuperblock {
            number: part.number,
            designator: d,
        };
        let fstype = superblock::detect(&file, part.offset, part.size)
            .map_err(|e| ImageError::io(sb_part.clone(), "read", e))?
            .ok_or_else(|| ImageError::NoFileSystem {
                part: data_part.clone(),
            })?;
        check_fstype(policy, d, fstype)?;
        check_complete(&file, part.offset, part.size, fstype, &sb_part)?;
        let m = match &plan {
            Some(plan) => mount_dm_verity(
                &file,
                (part.offset, part.size),
                plan,
                fstype,
                class,
                step,
                (&vparts.data, &vparts.tree),
            )?,
            None => mount_region(
                &file,
                part.offset,
                part.size,
                fstype,
                class,
                false,
                step,
                &sb_part,
            )?,
        };
        Ok((
            m,
            fstype,
            protection,
            protection_note(protection, plan.as_ref()),
            VerityCheck::of(protection, plan.as_ref()),
        ))
    };

    let root_part = sel.root.clone();
    let usr_part = sel.usr.clone();
    // Where verity is checked: the usr partition's where there is one (its protection is
    // the image's, below), else the root partition's.
    let mut verity = None;
    let mut take_note = |x: (
        OwnedFd,
        FsType,
        Protection,
        Option<String>,
        Option<VerityCheck>,
    )| {
        if let Some(n) = x.3 {
            notes.push(n);
        }
        verity = x.4;
        (x.0, x.1, x.2)
    };
    let rootm = match &root_part {
        Some(p) => Some(take_note(mount_part(PartitionDesignator::Root, p)?)),
        None => None,
    };
    let usrm = match &usr_part {
        Some(p) => Some(take_note(mount_part(PartitionDesignator::Usr, p)?)),
        None => None,
    };
    match (rootm, usrm) {
        (Some((r, _, _)), None) => Ok(MountedImage {
            tree: r,
            notes,
            verity,
        }),
        (root_m, Some((u, _, _))) => {
            let usr = ImagePart::Partition {
                number: usr_part.as_ref().map(|p| p.number).unwrap_or(0),
                designator: PartitionDesignator::Usr,
            };
            let io = |op, e: rustix::io::Errno| ImageError::io(usr.clone(), op, e);
            // /usr comes from the usr partition, everything else from root (if any).
            let tree = match root_m {
                Some((r, _, _)) => r,
                None => {
                    let op = "make the tmpfs root above";
                    let t =
                        crate::fscontext::detached_tmpfs("0755", MountAttrFlags::MOUNT_ATTR_NODEV)
                            .map_err(|e| io(op, e))?;
                    rustix::fs::mkdirat(&t, "usr", Mode::from_raw_mode(0o755))
                        .map_err(|e| io(op, e))?;
                    t
                }
            };
            step("attach usr partition")
                .map_err(|e| ImageError::io(usr.clone(), "attach at usr/", e))?;
            let tree = if kernel.has(crate::kernel::KernelFeatures::MOUNT_ON_DETACHED) {
                rustix::mount::move_mount(
                    &u,
                    "",
                    &tree,
                    "usr",
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )
                .map_err(|e| io("attach at usr/", e))?;
                tree
            } else {
                // Before 6.15 a mount cannot go inside a detached tree: compose it in a
                // private staging namespace and take a detached copy of the result.
                crate::exec::staged::compose(tree, vec![("usr".to_string(), u)])
                    .map_err(|e| ImageError::io(usr.clone(), "attach at usr/", e))?
            };
            Ok(MountedImage {
                tree,
                notes,
                verity,
            })
        }
        (None, None) => Err(ImageError::PartitionSelection {
            source: gpt::SelectError::NoRootOrUsr,
        }),
    }
}
