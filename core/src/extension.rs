//! Reading an image's metadata: its extension-release file(s) and forbidden content.

use crate::class::ImageClass;
use crate::discover::image_name_is_valid;
use crate::release::ReleaseData;
use crate::root::open_beneath;
use crate::smallfile::{self, SmallFileError};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags};

/// Release files (extension-release and os-release) larger than this are refused: they are
/// read into memory, and reading stops one byte past this. systemd reads them with
/// `read_full_file()`, capped at 64 MiB; real ones have a few hundred bytes.
pub const MAX_RELEASE_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// The release data of one class found in an image, or why there is none.
#[derive(Debug, Clone, Default)]
pub struct ReleaseInfo {
    /// Parsed data; empty when there is no usable file.
    pub data: ReleaseData,
    /// Path of the file used, relative to the image root.
    pub file: Option<String>,
    /// Why no data was loaded (missing, misnamed, unreadable, ambiguous…).
    pub problem: Option<String>,
    /// The image is an OS tree (carries an os-release file): not used unless forced.
    pub os_tree: bool,
}

/// The base name used for the relaxed release-file match: the name without `.raw`
/// suffixes, cut at the first `_` or `+` (`foo_1.2` → `foo`).
pub fn release_base_name(name: &str) -> &str {
    let n = name
        .strip_suffix(".sysext.raw")
        .or_else(|| name.strip_suffix(".confext.raw"))
        .or_else(|| name.strip_suffix(".raw"))
        .unwrap_or(name);
    match n.find(['_', '+']) {
        Some(i) => &n[..i],
        None => n,
    }
}

fn read_limited(fd: OwnedFd, what: &str) -> Result<Vec<u8>, String> {
    smallfile::read_capped(fd, MAX_RELEASE_FILE_SIZE).map_err(|e| match e {
        SmallFileError::Io(e) => format!("cannot read {what}: {e}"),
        e => format!("{what} {e}"),
    })
}

/// Open a release file for reading: a regular file, or why not (see [`smallfile`]).
fn open_release(
    open: impl Fn(OFlags) -> std::io::Result<OwnedFd>,
    what: &str,
) -> Result<OwnedFd, (bool, String)> {
    smallfile::open_checked(open).map_err(|e| match e {
        e if e.is_not_found() => (true, format!("no release file {what}")),
        SmallFileError::Io(e) => (false, format!("cannot open {what}: {e}")),
        e => (false, format!("{what} {e}")),
    })
}

/// `fd` may be an `O_PATH` fd (its xattrs are read through its `/proc/self/fd` link).
fn strict_xattr_is_false(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 64];
    let path = crate::root::proc_fd_path(fd);
    match rustix::fs::getxattr(path.as_str(), "user.extension-release.strict", &mut buf[..]) {
        Ok(n) => std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(crate::release::parse_bool)
            .map(|b| !b)
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Find and parse the release file of `class` for image `name` inside `tree`
/// (strict mode: exact name, or the base name, or a single file marked with
/// `user.extension-release.strict=false`).
pub fn load_release(tree: BorrowedFd<'_>, class: ImageClass, name: &str) -> ReleaseInfo {
    let dir = class.info().release_dir;
    let exact = format!("{dir}/extension-release.{name}");
    match open_release(|flags| open_beneath(tree, &exact, flags), &exact) {
        Ok(fd) => return parse_release_fd(fd, exact),
        Err((true, _)) => {}
        Err((false, problem)) => {
            return ReleaseInfo {
                problem: Some(problem),
                file: Some(exact),
                ..Default::default()
            }
        }
    }
    let dfd = match open_beneath(tree, dir, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(_) => {
            return ReleaseInfo {
                problem: Some(format!("no release file {exact}")),
                ..Default::default()
            }
        }
    };
    let (mut accepted, mut rejected) = candidates(&dfd, release_base_name(name));
    match accepted.len() {
        0 => {
            let problem = if rejected.is_empty() {
                format!("no release file {exact}")
            } else {
                rejected.sort();
                format!(
                    "release file {dir}/{} does not match image name {name} (expected extension-release.{name}; \
                     set the xattr user.extension-release.strict=false to accept it)",
                    rejected[0]
                )
            };
            ReleaseInfo {
                problem: Some(problem),
                ..Default::default()
            }
        }
        1 => load_candidate(&dfd, dir, &accepted[0]),
        _ => {
            accepted.sort();
            ReleaseInfo {
                problem: Some(format!(
                    "more than one candidate release file in {dir}: {}",
                    accepted.join(", ")
                )),
                ..Default::default()
            }
        }
    }
}

/// The release files in the directory `dfd` other than the exact one: those accepted (named
/// after the image's base name `base`, or marked `user.extension-release.strict=false`) and
/// those rejected. Only regular files count (looked at `O_PATH`: a FIFO is never opened).
fn candidates(dfd: &OwnedFd, base: &str) -> (Vec<String>, Vec<String>) {
    let mut accepted: Vec<String> = Vec::new();
    let mut rejected: Vec<String> = Vec::new();
    let Ok(mut d) = rustix::fs::Dir::read_from(dfd) else {
        return (accepted, rejected);
    };
    while let Some(Ok(ent)) = d.next() {
        let Ok(fname) = ent.file_name().to_str() else {
            continue;
        };
        let Some(x) = fname.strip_prefix("extension-release.") else {
            continue;
        };
        if !image_name_is_valid(x)
            || !matches!(ent.file_type(), FileType::RegularFile | FileType::Unknown)
        {
            continue;
        }
        let Ok(ffd) = rustix::fs::openat(
            dfd,
            fname,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        if smallfile::check_regular(ffd.as_fd()).is_err() {
            continue;
        }
        if x == base || strict_xattr_is_false(ffd.as_fd()) {
            accepted.push(fname.to_string());
        } else {
            rejected.push(fname.to_string());
        }
    }
    (accepted, rejected)
}

/// Read the one accepted release file `fname` of the directory `dfd` (`dir` in the image).
fn load_candidate(dfd: &OwnedFd, dir: &str, fname: &str) -> ReleaseInfo {
    let rel = format!("{dir}/{fname}");
    let open = |flags| {
        rustix::fs::openat(dfd, fname, flags | OFlags::NOFOLLOW, Mode::empty()).map_err(Into::into)
    };
    match open_release(open, &rel) {
        Ok(fd) => parse_release_fd(fd, rel),
        Err((_, problem)) => ReleaseInfo {
            problem: Some(problem),
            file: Some(rel),
            ..Default::default()
        },
    }
}

fn parse_release_fd(fd: OwnedFd, rel: String) -> ReleaseInfo {
    // A directory fails the read with EISDIR.
    match read_limited(fd, &rel) {
        Ok(bytes) => match crate::release::parse(&bytes) {
            Ok(data) => {
                let problem = data.is_empty().then(|| format!("{rel} is empty"));
                ReleaseInfo {
                    data,
                    file: Some(rel),
                    problem,
                    os_tree: false,
                }
            }
            Err(e) => ReleaseInfo {
                problem: Some(format!("{rel}: {e}")),
                file: Some(rel),
                ..Default::default()
            },
        },
        Err(p) => ReleaseInfo {
            problem: Some(p),
            file: Some(rel),
            ..Default::default()
        },
    }
}

/// Whether a sysext tree carries `usr/lib/os-release` (forbidden: it would replace the host's).
pub fn has_forbidden_os_release(tree: BorrowedFd<'_>) -> bool {
    open_beneath(tree, "usr/lib/os-release", OFlags::PATH).is_ok()
}

/// Whether the tree has an os-release (`etc/os-release` or `usr/lib/os-release`), i.e. is an OS tree.
pub fn has_os_release(tree: BorrowedFd<'_>) -> bool {
    open_beneath(tree, "etc/os-release", OFlags::PATH).is_ok() || has_forbidden_os_release(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_name_drops_version_suffix_and_raw_extension() {
        for (n, b) in [
            ("foo_1.2", "foo"),
            ("bar+3", "bar"),
            ("baz_1+2", "baz"),
            ("qux-1", "qux-1"),
            ("foo_1.raw", "foo"),
            ("x.sysext.raw", "x"),
            ("plain", "plain"),
        ] {
            assert_eq!(release_base_name(n), b, "{n}");
        }
    }
}
