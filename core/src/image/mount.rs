//! Opening image files for merging: detect the file system (naked erofs/squashfs/ext4/btrfs)
//! or the GPT disk image layout, apply the image policy, verify verity in userspace where
//! needed, and mount the result as a detached, read-only tree.
//!
//! erofs images are mounted straight from the file when the kernel supports it; everything
//! else goes through a read-only, auto-clearing loop device attached with one
//! `LOOP_CONFIGURE` (so the device disappears with the mount, and on every error path).

use crate::class::ImageClass;
use crate::image::gpt::{self, SelectOptions};
use crate::image::policy::{ImagePolicy, PartitionDesignator, Protection};
use crate::image::superblock::{self, FsType};
use crate::image::verity;
use crate::sys::loopdev::{LoopDevice, LoopOptions};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use std::fs::File;
use std::io;

/// Why an image cannot be used. `errno` follows systemd where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageError {
    /// The reason, for humans.
    pub reason: String,
    /// errno equivalent.
    pub errno: i32,
    /// Whether this is an image policy violation.
    pub policy: bool,
}

impl ImageError {
    fn new(errno: i32, reason: impl Into<String>) -> ImageError {
        ImageError {
            reason: reason.into(),
            errno,
            policy: false,
        }
    }
    fn policy(reason: impl Into<String>) -> ImageError {
        ImageError {
            reason: reason.into(),
            errno: libc::ERFKILL,
            policy: true,
        }
    }
    fn io(what: &str, e: io::Error) -> ImageError {
        ImageError::new(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("{what}: {e}"),
        )
    }
}

/// A mounted image.
#[derive(Debug)]
pub struct MountedImage {
    /// The detached, read-only tree (root of the image).
    pub tree: OwnedFd,
    /// File system type of the root (or usr) partition.
    pub fstype: FsType,
    /// How it is protected.
    pub protection: Protection,
    /// Whether it is a GPT disk image.
    pub disk_image: bool,
}

/// Called before each mount-related step (fault injection in tests).
pub type StepHook<'a> = &'a dyn Fn(&str) -> io::Result<()>;

fn mount_fs(
    fstype: FsType,
    source: &str,
    class: ImageClass,
    step: StepHook<'_>,
) -> io::Result<OwnedFd> {
    step("fsopen image")?;
    let fs = rustix::mount::fsopen(fstype.kernel_name(), FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "source", source)?;
    if fstype == FsType::Ext4 {
        // Never replay a journal on a read-only image.
        let _ = rustix::mount::fsconfig_set_flag(&fs, "norecovery");
    }
    rustix::mount::fsconfig_set_flag(&fs, "ro")?;
    rustix::mount::fsconfig_create(&fs).map_err(|e| {
        let mut msg = String::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = rustix::io::read(&fs, &mut buf) {
            if n == 0 {
                break;
            }
            msg.push_str(String::from_utf8_lossy(&buf[..n]).trim_end());
            msg.push_str("; ");
        }
        if msg.is_empty() {
            io::Error::from(e)
        } else {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{} ({})", io::Error::from(e), msg.trim_end_matches("; ")),
            )
        }
    })?;
    let mut attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV;
    if class.info().nosuid {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
    }
    Ok(rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        attrs,
    )?)
}

/// Refuse a squashfs whose superblock claims more bytes than the region holds (systemd
/// fails such images as a whole; the kernel would mount them and fail reads later).
fn check_complete(file: &File, offset: u64, size: u64, fstype: FsType) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    if fstype == FsType::Squashfs {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, offset + 40)
            .map_err(|e| ImageError::io("read", e))?;
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
            return Err(ImageError::new(
                libc::EBADMSG,
                format!("truncated squashfs image: the superblock says {used} bytes, only {avail} are there"),
            ));
        }
    }
    Ok(())
}

/// Mount a file system that lies at `offset`/`size` of `file` (`path` names the file).
fn mount_region(
    file: &File,
    path: &str,
    offset: u64,
    size: u64,
    fstype: FsType,
    class: ImageClass,
    whole_regular: bool,
    step: StepHook<'_>,
) -> io::Result<OwnedFd> {
    if fstype == FsType::Erofs && whole_regular {
        // File-backed erofs (Linux 6.12+): no loop device at all. The path is opened by the
        // kernel; use our fd's /proc link so the lookup cannot be redirected.
        match mount_fs(
            fstype,
            &crate::root::proc_fd_path(file.as_fd()),
            class,
            step,
        ) {
            Ok(m) => return Ok(m),
            // Kernels without file-backed erofs refuse the file as source: use a loop device.
            Err(e)
                if matches!(
                    e.raw_os_error(),
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
    step("loop attach")?;
    let dev = LoopDevice::attach(file, offset, size, &opts)
        .map_err(|e| io::Error::new(e.kind(), format!("attach loop device for {path}: {e}")))?;
    let devpath = dev.path().to_string_lossy().into_owned();
    match mount_fs(fstype, &devpath, class, step) {
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
    let fd = crate::root::open_beneath(root, &format!("{stem}.roothash"), OFlags::RDONLY).ok()?;
    let text = crate::exec::read_to_string(fd).ok()?;
    verity::decode_hex(text.trim())
}

/// Verify a verity-protected region in userspace (no device-mapper needed).
fn verify_userspace(
    file: &File,
    data: (u64, u64),
    hash: (u64, u64),
    root_hash: &[u8],
) -> Result<(), ImageError> {
    let bad = |e: verity::VerityError| {
        ImageError::new(libc::EBADMSG, format!("verity verification failed: {e}"))
    };
    // The superblock says how much of the (possibly larger, aligned) partition is data.
    let sb = verity::VeritySuperblock::read(file, hash.0).map_err(bad)?;
    let size = sb.data_blocks.saturating_mul(u64::from(sb.data_block_size));
    if size == 0 || size > data.1 {
        return Err(ImageError::new(
            libc::EBADMSG,
            format!(
                "verity superblock claims {size} bytes of data, the partition has {}",
                data.1
            ),
        ));
    }
    verity::verify_with_superblock(&sb, file, data.0, size, file, hash.0, root_hash).map_err(bad)
}

fn device_mapper_available() -> bool {
    std::path::Path::new("/dev/mapper/control").exists()
}

/// What protection a region gets, given a root hash and the policy.
fn decide_verity(
    file: &File,
    d: PartitionDesignator,
    data: (u64, u64),
    hash: Option<(u64, u64)>,
    root_hash: Option<&[u8]>,
    sig: Option<&verity::VeritySignature>,
    policy: &ImagePolicy,
    explicit_policy: bool,
) -> Result<Protection, ImageError> {
    let (Some(hash), Some(rh)) = (hash, root_hash) else {
        // No root hash: verity cannot be set up; the region is used unprotected.
        return Ok(Protection::Unprotected);
    };
    if !explicit_policy {
        // systemd-sysext 257 sets up dm-verity here and fails without device-mapper.
        if !device_mapper_available() {
            return Err(ImageError::new(
                libc::EOPNOTSUPP,
                format!(
                    "partition '{d}' has verity data (root hash known), which needs dm-verity, but this kernel has no \
                     device-mapper; pass --image-policy={d}=verity to verify it in userspace instead"
                ),
            ));
        }
        return Err(ImageError::new(
            libc::EOPNOTSUPP,
            "dm-verity set-up is not implemented; verify in userspace with --image-policy",
        ));
    }
    verify_userspace(file, data, hash, rh)?;
    // The hash tree matches the root hash. With a signature partition, the PKCS#7
    // signature of the root hash is checked against the trusted certificates
    // (/etc/verity.d, …); without one, or if it is not accepted but the policy allows plain
    // verity, the region counts as verity-protected.
    let Some(sig) = sig else {
        return Ok(Protection::Verity);
    };
    let trusted = crate::image::signature::load_default_trusted();
    let hex: String = rh.iter().map(|b| format!("{b:02x}")).collect();
    match crate::image::signature::verify_signature(sig, &hex, &trusted) {
        Ok(_) => Ok(Protection::Signed),
        Err(_) if policy.check(d, Protection::Verity).is_ok() => Ok(Protection::Verity),
        Err(e) => Err(ImageError::policy(format!(
            "partition '{d}': verity signature not accepted: {e}"
        ))),
    }
}

fn check_policy(
    policy: &ImagePolicy,
    d: PartitionDesignator,
    p: Protection,
) -> Result<(), ImageError> {
    policy
        .check(d, p)
        .map_err(|v| ImageError::policy(v.to_string()))
}

/// Open and mount one image file or block device. `policy` is the effective image policy,
/// `explicit_policy` whether it was given by the caller.
pub fn open_image(
    root: BorrowedFd<'_>,
    image_rel: &str,
    image_path: &str,
    class: ImageClass,
    policy: &ImagePolicy,
    explicit_policy: bool,
    step: StepHook<'_>,
) -> Result<MountedImage, ImageError> {
    let fd = crate::root::open_beneath(root, image_rel, OFlags::RDONLY)
        .map_err(|e| ImageError::io("open", e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ImageError::io("stat", e.into()))?;
    let is_regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    // A block device's size is where its end is; a file's is in its stat.
    let size = if is_regular {
        st.st_size as u64
    } else {
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0))
            .map_err(|e| ImageError::io("size", e.into()))?
    };
    let file = File::from(fd);

    // A naked file system?
    if let Some(fstype) =
        superblock::detect(&file, 0, size).map_err(|e| ImageError::io("read", e))?
    {
        let root_hash = read_roothash_sidecar(root, image_rel);
        let protection = match &root_hash {
            Some(rh) => {
                let stem = image_rel.strip_suffix(".raw").unwrap_or(image_rel);
                let vfd =
                    crate::root::open_beneath(root, &format!("{stem}.verity"), OFlags::RDONLY)
                        .ok()
                        .map(File::from);
                match vfd {
                    Some(vf) => {
                        if !explicit_policy {
                            decide_verity(
                                &file,
                                PartitionDesignator::Root,
                                (0, size),
                                Some((0, 0)),
                                Some(rh),
                                None,
                                policy,
                                false,
                            )?
                        } else {
                            verity::verify(&file, 0, size, &vf, 0, rh).map_err(|e| {
                                ImageError::new(
                                    libc::EBADMSG,
                                    format!("verity verification failed: {e}"),
                                )
                            })?;
                            Protection::Verity
                        }
                    }
                    None => Protection::Unprotected,
                }
            }
            None => Protection::Unprotected,
        };
        check_policy(policy, PartitionDesignator::Root, protection)?;
        check_complete(&file, 0, size, fstype)?;
        let tree = mount_region(&file, image_path, 0, 0, fstype, class, is_regular, step)
            .map_err(|e| ImageError::io(&format!("mount {fstype}"), e))?;
        return Ok(MountedImage {
            tree,
            fstype,
            protection,
            disk_image: false,
        });
    }

    // A GPT disk image?
    if !gpt::is_gpt(&file, size).map_err(|e| ImageError::io("read", e))? {
        return Err(ImageError::new(
            libc::ENOPKG,
            "Package not installed (no file system or partition table recognised)",
        ));
    }
    let table = gpt::read(&file, size)
        .map_err(|e| ImageError::new(libc::EBADMSG, format!("bad GPT: {e}")))?;
    let arch = crate::arch::native();
    let mut opts = SelectOptions::new(arch);
    opts.policy = Some(policy);
    opts.label_cmp = crate::version::strverscmp_improved;
    let sel = gpt::select_with(&table, &opts).map_err(|e| {
        let errno = e.errno();
        if errno == libc::ERFKILL {
            ImageError::policy(e.to_string())
        } else {
            ImageError::new(errno, e.to_string())
        }
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
     -> Result<(OwnedFd, FsType, Protection), ImageError> {
        let (vd, sd) = (
            d.verity().expect("data designator"),
            d.verity_sig().expect("data designator"),
        );
        let hash = sel.get(vd).map(|p| (p.offset, p.size));
        let sig_part = sel.get(sd).or_else(|| {
            if hash.is_some() {
                unrestricted.as_ref().and_then(|u| u.get(sd))
            } else {
                None
            }
        });
        let sig = match sig_part {
            Some(p) => Some(
                verity::read_signature(&file, p.offset, p.size)
                    .map_err(|e| ImageError::new(libc::EBADMSG, format!("{sd} partition: {e}")))?,
            ),
            None => None,
        };
        let sidecar = read_roothash_sidecar(root, image_rel);
        let root_hash = sig.as_ref().map(|s| s.root_hash.clone()).or(sidecar);
        // A signature partition the policy ignores may lend its root hash, but does not count.
        let sig_for_check = if sel.get(sd).is_some() {
            sig.as_ref()
        } else {
            None
        };
        let protection = decide_verity(
            &file,
            d,
            (part.offset, part.size),
            hash,
            root_hash.as_deref(),
            sig_for_check,
            policy,
            explicit_policy,
        )?;
        check_policy(policy, d, protection)?;
        policy
            .check_gpt_flags(d, part.flags)
            .map_err(|v| ImageError::policy(v.to_string()))?;
        let fstype = superblock::detect(&file, part.offset, part.size)
            .map_err(|e| ImageError::io("read", e))?
            .ok_or_else(|| {
                ImageError::new(
                    libc::ENOPKG,
                    format!("partition {} ({d}) holds no known file system", part.number),
                )
            })?;
        check_complete(&file, part.offset, part.size, fstype)?;
        let m = mount_region(
            &file,
            image_path,
            part.offset,
            part.size,
            fstype,
            class,
            false,
            step,
        )
        .map_err(|e| {
            ImageError::io(&format!("mount {fstype} from partition {}", part.number), e)
        })?;
        Ok((m, fstype, protection))
    };

    let root_part = sel.root.clone();
    let usr_part = sel.usr.clone();
    let rootm = match &root_part {
        Some(p) => Some(mount_part(PartitionDesignator::Root, p)?),
        None => None,
    };
    let usrm = match &usr_part {
        Some(p) => Some(mount_part(PartitionDesignator::Usr, p)?),
        None => None,
    };
    match (rootm, usrm) {
        (Some((r, fstype, protection)), None) => Ok(MountedImage {
            tree: r,
            fstype,
            protection,
            disk_image: true,
        }),
        (root_m, Some((u, fstype, protection))) => {
            // /usr comes from the usr partition, everything else from root (if any).
            let tree = match root_m {
                Some((r, _, _)) => r,
                None => {
                    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
                        .map_err(|e| ImageError::io("tmpfs", e.into()))?;
                    rustix::mount::fsconfig_set_string(&fs, "mode", "0755")
                        .map_err(|e| ImageError::io("tmpfs", e.into()))?;
                    rustix::mount::fsconfig_create(&fs)
                        .map_err(|e| ImageError::io("tmpfs", e.into()))?;
                    let t = rustix::mount::fsmount(
                        &fs,
                        FsMountFlags::FSMOUNT_CLOEXEC,
                        MountAttrFlags::MOUNT_ATTR_NODEV,
                    )
                    .map_err(|e| ImageError::io("tmpfs", e.into()))?;
                    rustix::fs::mkdirat(&t, "usr", Mode::from_raw_mode(0o755))
                        .map_err(|e| ImageError::io("mkdir usr", e.into()))?;
                    t
                }
            };
            step("attach usr partition")
                .map_err(|e| ImageError::io("attach the usr partition", e))?;
            rustix::mount::move_mount(
                &u,
                "",
                &tree,
                "usr",
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(|e| ImageError::io("attach the usr partition", e.into()))?;
            Ok(MountedImage {
                tree,
                fstype,
                protection,
                disk_image: true,
            })
        }
        (None, None) => Err(ImageError::new(
            libc::ENXIO,
            "no root or usr partition found",
        )),
    }
}
