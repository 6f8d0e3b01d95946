//! The error type of libsysext.
//!
//! Every variant names the object it is about (hierarchy, image, path) and the cause.
//! [`Error::errno`] gives the errno that the C ABI returns (negated) and that the CLI
//! prints as the reason, [`Error::kind`] a stable classification for bindings.

use std::io;
use std::path::{Path, PathBuf};

/// Result type of libsysext.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable classification of [`Error`]s, one per exception class / C error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A hierarchy is already merged (`merge` without unmerging first).
    AlreadyMerged,
    /// The operation needs `CAP_SYS_ADMIN`.
    NotPrivileged,
    /// A release file (os-release or extension-release) is missing or unusable, or an
    /// image has none.
    ReleaseFile,
    /// An extension is not compatible with the host (only with `merge NAME`).
    IncompatibleExtension,
    /// The write-routing (mutable) directory cannot be used as requested.
    MutableDir,
    /// The image does not satisfy the image policy.
    ImagePolicy,
    /// An image file is malformed or cannot be used (a broken superblock, partition
    /// table or verity tree, no usable partition, a refused block device, …).
    Image,
    /// An argument (mode string, hierarchy list, name, …) is invalid.
    InvalidArgument,
    /// Another process holds the lock of this root and class.
    Busy,
    /// A system call failed.
    Os,
    /// A hierarchy is not merged (only with `unmerge NAME`).
    NotMerged,
}

/// Errors of libsysext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed.
    #[error("Failed to {op} '{}': {}", path.display(), strerror(source))]
    Io {
        /// What was being done ("open", "create directory", …).
        op: &'static str,
        /// The object.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A mount-related system call failed.
    #[error(
        "Failed to {op} {target}: {}{}",
        strerror(source),
        kernel_log_suffix(kernel_log)
    )]
    Mount {
        /// The step ("mount overlay", "attach", "unmount", …).
        op: &'static str,
        /// What was being mounted or where.
        target: String,
        /// The cause.
        #[source]
        source: io::Error,
        /// Messages the kernel left in the fs context log.
        kernel_log: Vec<String>,
    },
    /// `merge` found a hierarchy that is already merged.
    #[error("Hierarchy '{hierarchy}' is already merged.")]
    AlreadyMerged {
        /// The configured hierarchy (without the root prefix).
        hierarchy: String,
        /// The merged hierarchy's path, root prefix included.
        path: String,
    },
    /// The named extension is not part of the current merge.
    #[error("Extension '{name}' is not merged.")]
    NotMerged {
        /// The extension name.
        name: String,
    },
    /// The caller lacks `CAP_SYS_ADMIN`.
    #[error("Need to be privileged.")]
    NotPrivileged,
    /// The host os-release could not be read.
    #[error(
        "Failed to acquire 'os-release' data of OS tree '{root}': {}",
        strerror(source)
    )]
    HostOsRelease {
        /// The root as given.
        root: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The host os-release has no `ID`.
    #[error("'ID' field not found or empty in 'os-release' data of OS tree '{root}'")]
    HostOsReleaseNoId {
        /// The root as given.
        root: String,
    },
    /// Reading the metadata of an image failed (fatal for the whole merge).
    #[error("Failed to read metadata for image {image}: {reason}")]
    Metadata {
        /// Image name.
        image: String,
        /// Human-readable cause.
        reason: String,
        /// errno equivalent.
        errno: i32,
    },
    /// An image is incompatible with the host (selective merge by name).
    #[error("Extension '{name}' is not compatible with this system: {reason}")]
    Incompatible {
        /// Image name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A named extension was not found.
    #[error("Extension '{name}' not found.")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// An image file (or block device) is malformed or cannot be used: `source` says
    /// which part of it (superblock, GPT header, partition N, verity tree, …) and what is
    /// wrong.
    #[error("Image '{image}': {source}")]
    Image {
        /// The image's path (root-prefixed, as printed).
        image: String,
        /// The image's name (as systemd names it in "Failed to read metadata for image").
        name: String,
        /// What is wrong (boxed: it is large, and rare).
        #[source]
        source: Box<crate::image::ImageError>,
    },
    /// The image does not satisfy the policy.
    #[error("{image}: Image does not match image policy: {reason}")]
    ImagePolicy {
        /// Image path.
        image: String,
        /// Which partition and flags.
        reason: String,
    },
    /// The routing dir has a mode that differs from the hierarchy's.
    #[error("Mutable directory '{dir}' has mode {mode:04o}, ought to have mode {expected:04o}")]
    MutableDirMode {
        /// The routing dir (root-prefixed).
        dir: String,
        /// Its mode.
        mode: u32,
        /// The hierarchy's mode.
        expected: u32,
    },
    /// The routing dir points to the hierarchy itself in an import mode.
    #[error("Not importing mutable directory for hierarchy {hierarchy} as a lower dir, because it points to the hierarchy itself")]
    MutableDirIsHierarchy {
        /// The configured hierarchy.
        hierarchy: String,
    },
    /// The routing dir could not be looked up for creating it (262's wording).
    #[error("Failed to chase/create base directory '{dir}': {}", strerror(source))]
    MutableDirChase {
        /// The routing dir (root-prefixed).
        dir: String,
        /// The cause.
        source: io::Error,
    },
    /// The routing dir could not be created.
    #[error("Failed to create a directory '{dir}': {}", strerror(source))]
    MutableDirCreate {
        /// The routing dir (root-prefixed).
        dir: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The upper dir lies on a read-only file system.
    #[error("Can't use '{dir}' as an upperdir as it is read-only.")]
    UpperDirReadOnly {
        /// The upper dir.
        dir: String,
    },
    /// No workdir can be placed next to the upper dir.
    #[error("Unable to find a suitable workdir location for upperdir '{upper}' for host hierarchy '{hierarchy}' - parent directory of the upperdir is in a different filesystem")]
    WorkDirCrossDevice {
        /// The upper dir.
        upper: String,
        /// The configured hierarchy.
        hierarchy: String,
    },
    /// An image's hierarchy entry is not a directory.
    #[error("Failed to check if hierarchy '{hierarchy}' in extension '{image}' is empty: Not a directory")]
    HierarchyNotDirectory {
        /// The hierarchy.
        hierarchy: String,
        /// The image name.
        image: String,
    },
    /// The hierarchy could not be created or is not a directory.
    #[error(
        "Failed to create hierarchy mount point '{path}': {}",
        strerror(source)
    )]
    HierarchyCreate {
        /// Root-prefixed hierarchy path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// More layers than overlayfs accepts.
    #[error("Too many layers for hierarchy '{hierarchy}': {count} lower layers, the kernel accepts at most {max}")]
    TooManyLayers {
        /// The hierarchy.
        hierarchy: String,
        /// Layers requested.
        count: usize,
        /// Kernel limit.
        max: usize,
    },
    /// The mounted overlay does not have the expected number of layers.
    #[error("Overlay on '{hierarchy}' has {found} lower layers, {expected} were requested")]
    LayerCountMismatch {
        /// The hierarchy.
        hierarchy: String,
        /// Expected.
        expected: usize,
        /// Found.
        found: usize,
    },
    /// The `dev` file in a meta dir is garbage.
    #[error("Failed to parse device major/minor stored in '{dot_dir}/dev' file on '{path}': Invalid argument")]
    MetaDev {
        /// The meta dir name.
        dot_dir: &'static str,
        /// Root-prefixed hierarchy path.
        path: String,
    },
    /// Discovery of images failed as a whole.
    #[error("Failed to discover images: {}", strerror(source))]
    Discovery {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The lock of this root and class is held by another process.
    #[error("Another operation holds the lock '{}'", path.display())]
    Busy {
        /// Lock file.
        path: PathBuf,
    },
}

fn kernel_log_suffix(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

impl Error {
    /// The errno this error corresponds to (positive).
    pub fn errno(&self) -> i32 {
        use libc::*;
        match self {
            Error::Io { source, .. } | Error::Mount { source, .. } => {
                source.raw_os_error().unwrap_or(EIO)
            }
            Error::HostOsRelease { source, .. }
            | Error::MutableDirCreate { source, .. }
            | Error::MutableDirChase { source, .. }
            | Error::HierarchyCreate { source, .. }
            | Error::Discovery { source } => source.raw_os_error().unwrap_or(EIO),
            Error::AlreadyMerged { .. } => EBUSY,
            Error::NotMerged { .. } => ENOENT,
            Error::NotPrivileged => EPERM,
            Error::HostOsReleaseNoId { .. } => EINVAL,
            Error::Metadata { errno, .. } => *errno,
            Error::Image { source, .. } => source.errno(),
            Error::Incompatible { .. } => ENOMEDIUM,
            Error::NotFound { .. } => ENOENT,
            Error::ImagePolicy { .. } => ERFKILL,
            Error::MutableDirMode { .. } => EINVAL,
            Error::MutableDirIsHierarchy { .. } => ELOOP,
            Error::UpperDirReadOnly { .. } => EROFS,
            Error::WorkDirCrossDevice { .. } => EXDEV,
            Error::HierarchyNotDirectory { .. } => ENOTDIR,
            Error::TooManyLayers { .. } => E2BIG,
            Error::LayerCountMismatch { .. } => EIO,
            Error::MetaDev { .. } => EINVAL,
            Error::InvalidArgument(_) => EINVAL,
            Error::Busy { .. } => EWOULDBLOCK,
        }
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::AlreadyMerged { .. } => ErrorKind::AlreadyMerged,
            Error::NotMerged { .. } => ErrorKind::NotMerged,
            Error::NotPrivileged => ErrorKind::NotPrivileged,
            Error::HostOsRelease { .. } | Error::HostOsReleaseNoId { .. } => ErrorKind::ReleaseFile,
            Error::Metadata { .. } => ErrorKind::ReleaseFile,
            Error::Incompatible { .. } => ErrorKind::IncompatibleExtension,
            Error::ImagePolicy { .. } => ErrorKind::ImagePolicy,
            Error::Image { .. } | Error::HierarchyNotDirectory { .. } => ErrorKind::Image,
            Error::MutableDirMode { .. }
            | Error::MutableDirIsHierarchy { .. }
            | Error::MutableDirCreate { .. }
            | Error::MutableDirChase { .. }
            | Error::UpperDirReadOnly { .. }
            | Error::WorkDirCrossDevice { .. } => ErrorKind::MutableDir,
            Error::InvalidArgument(_) | Error::NotFound { .. } | Error::TooManyLayers { .. } => {
                ErrorKind::InvalidArgument
            }
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Io { .. }
            | Error::Mount { .. }
            | Error::HierarchyCreate { .. }
            | Error::LayerCountMismatch { .. }
            | Error::MetaDev { .. }
            | Error::Discovery { .. } => ErrorKind::Os,
        }
    }

    /// The path this error is about, where there is one.
    pub fn path(&self) -> Option<String> {
        match self {
            Error::Io { path, .. } => Some(path.display().to_string()),
            Error::Mount { target, .. } => Some(target.clone()),
            Error::MutableDirMode { dir, .. }
            | Error::MutableDirCreate { dir, .. }
            | Error::MutableDirChase { dir, .. }
            | Error::UpperDirReadOnly { dir } => Some(dir.clone()),
            Error::WorkDirCrossDevice { upper, .. } => Some(upper.clone()),
            Error::HierarchyCreate { path, .. } | Error::MetaDev { path, .. } => Some(path.clone()),
            Error::Image { image, .. } | Error::ImagePolicy { image, .. } => Some(image.clone()),
            Error::Busy { path } => Some(path.display().to_string()),
            Error::AlreadyMerged { path, .. } => Some(path.clone()),
            _ => None,
        }
    }

    /// The hierarchy (as configured, `/usr`, without the root prefix) this error is
    /// about, where it names one.
    pub fn hierarchy(&self) -> Option<&str> {
        match self {
            Error::AlreadyMerged { hierarchy, .. }
            | Error::MutableDirIsHierarchy { hierarchy }
            | Error::WorkDirCrossDevice { hierarchy, .. }
            | Error::TooManyLayers { hierarchy, .. }
            | Error::LayerCountMismatch { hierarchy, .. } => Some(hierarchy),
            _ => None,
        }
    }

    /// The extension (image name) this error is about, where it names one.
    pub fn extension(&self) -> Option<&str> {
        match self {
            Error::NotMerged { name }
            | Error::Incompatible { name, .. }
            | Error::NotFound { name }
            | Error::Image { name, .. } => Some(name),
            Error::Metadata { image, .. } | Error::HierarchyNotDirectory { image, .. } => {
                Some(image)
            }
            _ => None,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl AsRef<Path>,
        source: impl Into<io::Error>,
    ) -> Error {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source: source.into(),
        }
    }

    pub(crate) fn mount(
        op: &'static str,
        target: impl Into<String>,
        source: impl Into<io::Error>,
    ) -> Error {
        Error::Mount {
            op,
            target: target.into(),
            source: source.into(),
            kernel_log: Vec::new(),
        }
    }
}

/// Attach the object to an I/O result: `.ctx("open", path)?`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

/// An I/O error's text as systemd prints it (`strerror`: without Rust's " (os error N)").
pub(crate) fn strerror(e: &io::Error) -> String {
    let t = e.to_string();
    match t.find(" (os error ") {
        Some(i) => t[..i].to_string(),
        None => t,
    }
}
