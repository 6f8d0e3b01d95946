//! What the running kernel offers, found out once per process by trying (never by parsing
//! `uname`), and the one place where the executor's choices between ways of doing a step
//! are made.
//!
//! | feature | since | without it |
//! |---|---|---|
//! | [`KernelFeatures::LOWERDIR_APPEND`] | 6.8 | all layers go in one `lowerdir=` option of `mount(2)` (one page) |
//! | [`KernelFeatures::DETACHED_LAYERS`] | 6.15 | layers are attached in a private staging namespace first |
//! | [`KernelFeatures::MOUNT_ON_DETACHED`] | 6.15 | likewise (meta bind and sub-mounts go in while staged) |
//! | [`KernelFeatures::MOVE_BENEATH`] | 6.5 | refresh stacks the new overlay on top of the old one |
//! | [`KernelFeatures::STATMOUNT`] | 6.8 (options 6.10) | `/proc/self/mountinfo` is read |
//! | [`KernelFeatures::EROFS_FILE`] | 6.12 | erofs images go through a loop device |
//!
//! Callers (and tests, on the newest kernel) can forbid any feature through
//! [`crate::Options::kernel`], which forces the fallback.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use std::sync::OnceLock;

bitflags::bitflags! {
    /// Kernel features the executor can use.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct KernelFeatures: u32 {
        /// overlayfs `lowerdir+` (Linux 6.8): one layer per `fsconfig` call, no length limit.
        const LOWERDIR_APPEND = 1 << 0;
        /// Detached mounts as overlayfs layers (Linux 6.15).
        const DETACHED_LAYERS = 1 << 1;
        /// Attaching a mount inside a detached tree (Linux 6.15).
        const MOUNT_ON_DETACHED = 1 << 2;
        /// `MOVE_MOUNT_BENEATH` (Linux 6.5): gap-free replacement of a mount.
        const MOVE_BENEATH = 1 << 3;
        /// `statmount(2)`/`listmount(2)` (Linux 6.8; mount options since 6.10).
        const STATMOUNT = 1 << 4;
        /// erofs mounted straight from an image file (Linux 6.12; tried per image, since
        /// the file's own file system must allow it too).
        const EROFS_FILE = 1 << 5;
    }
}

/// Names of the features, as [`KernelFeatures::parse_list`] takes them and as messages
/// print them, with the kernel version that brought each.
const NAMES: &[(KernelFeatures, &str, &str)] = &[
    (KernelFeatures::LOWERDIR_APPEND, "lowerdir-append", "6.8"),
    (KernelFeatures::DETACHED_LAYERS, "detached-layers", "6.15"),
    (
        KernelFeatures::MOUNT_ON_DETACHED,
        "mount-on-detached",
        "6.15",
    ),
    (KernelFeatures::MOVE_BENEATH, "move-beneath", "6.5"),
    (KernelFeatures::STATMOUNT, "statmount", "6.8"),
    (KernelFeatures::EROFS_FILE, "erofs-file", "6.12"),
];

impl KernelFeatures {
    /// Parse a comma-separated list of feature names (`lowerdir-append`, `detached-layers`,
    /// `mount-on-detached`, `move-beneath`, `statmount`, `erofs-file`, or `all`).
    pub fn parse_list(s: &str) -> Result<KernelFeatures, String> {
        let mut out = KernelFeatures::empty();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                out = KernelFeatures::all();
                continue;
            }
            match NAMES.iter().find(|(_, n, _)| *n == w) {
                Some((f, _, _)) => out |= *f,
                None => return Err(format!("unknown kernel feature '{w}'")),
            }
        }
        Ok(out)
    }

    /// The names of the features set, comma-separated.
    pub fn names(self) -> String {
        NAMES
            .iter()
            .filter(|(f, _, _)| self.contains(*f))
            .map(|(_, n, _)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The kernel version that brought a single feature.
    pub fn since(self) -> &'static str {
        NAMES
            .iter()
            .find(|(f, _, _)| *f == self)
            .map(|(_, _, v)| *v)
            .unwrap_or("?")
    }
}

/// The features the executor may use: what the running kernel has, less what the caller
/// forbade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    features: KernelFeatures,
}

impl Kernel {
    /// The running kernel's features (probed once per process), restricted to `allowed`.
    pub fn new(allowed: KernelFeatures) -> Kernel {
        Kernel {
            features: detected() & allowed,
        }
    }

    /// A kernel with exactly these features (for tests and planning; nothing is probed).
    pub fn with(features: KernelFeatures) -> Kernel {
        Kernel { features }
    }

    /// The features in use.
    pub fn features(self) -> KernelFeatures {
        self.features
    }

    /// Whether a feature may be used.
    pub fn has(self, f: KernelFeatures) -> bool {
        self.features.contains(f)
    }

    /// Whether overlays must be built from layers attached in a staging namespace (before
    /// 6.15) rather than from detached mounts.
    pub fn staged_layers(self) -> bool {
        !self.has(KernelFeatures::DETACHED_LAYERS | KernelFeatures::MOUNT_ON_DETACHED)
    }
}

/// What the running kernel offers, probed on first use.
pub fn detected() -> KernelFeatures {
    static DETECTED: OnceLock<KernelFeatures> = OnceLock::new();
    *DETECTED.get_or_init(probe)
}

fn probe() -> KernelFeatures {
    let mut f = KernelFeatures::EROFS_FILE;
    if crate::sys::ns::move_mount_knows_beneath() {
        f |= KernelFeatures::MOVE_BENEATH;
    }
    if crate::sys::statmount::available() {
        f |= KernelFeatures::STATMOUNT;
    }
    if probe_lowerdir_append() {
        f |= KernelFeatures::LOWERDIR_APPEND;
    }
    // Both came in 6.15, and the executor uses detached layers only together with mounting
    // on a detached tree. The mount probe fails quietly, the layer probe does not (before
    // 6.15 overlayfs prints "failed to clone lowerpath" into the kernel log), so the layer
    // probe runs only where the mount probe already succeeded.
    if probe_mount_on_detached() {
        f |= KernelFeatures::MOUNT_ON_DETACHED;
        if probe_detached_layers(f.contains(KernelFeatures::LOWERDIR_APPEND)) {
            f |= KernelFeatures::DETACHED_LAYERS;
        }
    }
    f
}

/// `lowerdir+` (6.8+) takes an existing directory at `fsconfig` time. Older overlayfs
/// refuses the key (6.5-6.7: EINVAL), and the legacy option parser (before 6.5) takes any
/// key without looking, so a second, made-up key tells the two parsers apart. Neither call
/// writes to the kernel log: the new parser's complaints go to the fs context's own log.
/// (A path that cannot exist would tell too, but overlayfs prints every failed lookup.)
fn probe_lowerdir_append() -> bool {
    let Ok(fs) = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) else {
        return false;
    };
    rustix::mount::fsconfig_set_string(&fs, "lowerdir+", "/").is_ok()
        && rustix::mount::fsconfig_set_string(&fs, "libsysext-probe", "1").is_err()
}

/// A private detached tmpfs with two directories.
fn scratch_tmpfs() -> Option<OwnedFd> {
    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).ok()?;
    rustix::mount::fsconfig_set_string(&fs, "mode", "0700").ok()?;
    rustix::mount::fsconfig_create(&fs).ok()?;
    let mnt = rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
    )
    .ok()?;
    for d in ["a", "b"] {
        rustix::fs::mkdirat(&mnt, d, Mode::from_raw_mode(0o700)).ok()?;
    }
    Some(mnt)
}

/// Try an overlay whose two layers are directories of a detached tmpfs (6.15+; before,
/// overlayfs fails to clone a layer that is not in the caller's mount namespace).
fn probe_detached_layers(append: bool) -> bool {
    let Some(t) = scratch_tmpfs() else {
        return false;
    };
    let open = |d: &str| {
        rustix::fs::openat(
            &t,
            d,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
    };
    let (Some(a), Some(b)) = (open("a"), open("b")) else {
        return false;
    };
    let Ok(fs) = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) else {
        return false;
    };
    let (pa, pb) = (
        crate::root::proc_fd_path(a.as_fd()),
        crate::root::proc_fd_path(b.as_fd()),
    );
    let configured = if append {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", pa.as_str()).is_ok()
            && rustix::mount::fsconfig_set_string(&fs, "lowerdir+", pb.as_str()).is_ok()
    } else {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir", format!("{pa}:{pb}").as_str()).is_ok()
    };
    configured && rustix::mount::fsconfig_create(&fs).is_ok()
}

/// Try to attach a detached tmpfs inside another detached tmpfs (6.15+).
fn probe_mount_on_detached() -> bool {
    let (Some(outer), Some(inner)) = (scratch_tmpfs(), scratch_tmpfs()) else {
        return false;
    };
    rustix::mount::move_mount(
        &inner,
        "",
        &outer,
        "a",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let all = KernelFeatures::all();
        assert_eq!(KernelFeatures::parse_list(&all.names()), Ok(all));
        assert_eq!(KernelFeatures::parse_list("all"), Ok(all));
        assert_eq!(
            KernelFeatures::parse_list("move-beneath, statmount"),
            Ok(KernelFeatures::MOVE_BENEATH | KernelFeatures::STATMOUNT)
        );
        assert!(KernelFeatures::parse_list("beneath").is_err());
        assert_eq!(KernelFeatures::DETACHED_LAYERS.since(), "6.15");
    }

    #[test]
    fn restricted_kernel_stages_layers() {
        let k = Kernel::with(KernelFeatures::all());
        assert!(!k.staged_layers());
        let k = Kernel::with(KernelFeatures::all() - KernelFeatures::MOUNT_ON_DETACHED);
        assert!(k.staged_layers());
        assert!(!k.has(KernelFeatures::MOUNT_ON_DETACHED));
    }
}
