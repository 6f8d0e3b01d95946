//! Reading an image's metadata: its extension-release file(s) and forbidden content.

use crate::class::ImageClass;
use crate::discover::image_name_is_valid;
use crate::release::ReleaseData;
use crate::root::open_beneath;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags};
use std::io::Read;

/// Release files larger than this are refused (they would be read into memory).
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
    let mut f = std::fs::File::from(fd);
    // Room for a typical release file: read straight into it, no probing reads.
    let mut buf = Vec::with_capacity(1024);
    (&mut f)
        .take(MAX_RELEASE_FILE_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if buf.len() as u64 > MAX_RELEASE_FILE_SIZE {
        return Err(format!(
            "{what} is larger than {MAX_RELEASE_FILE_SIZE} bytes"
        ));
    }
    Ok(buf)
}

fn strict_xattr_is_false(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 64];
    match rustix::fs::fgetxattr(fd, "user.extension-release.strict", &mut buf[..]) {
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
    match open_beneath(tree, &exact, OFlags::RDONLY) {
        Ok(fd) => return parse_release_fd(fd, exact),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => {
            return ReleaseInfo {
                problem: Some(format!("cannot open {exact}: {e}")),
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
    let base = release_base_name(name);
    let mut accepted: Vec<String> = Vec::new();
    let mut rejected: Vec<String> = Vec::new();
    if let Ok(mut d) = rustix::fs::Dir::read_from(&dfd) {
        while let Some(Ok(ent)) = d.next() {
            let Ok(fname) = ent.file_name().to_str() else {
                continue;
            };
            let Some(x) = fname.strip_prefix("extension-release.") else {
                continue;
            };
            if !image_name_is_valid(x) {
                continue;
            }
            if !matches!(ent.file_type(), FileType::RegularFile | FileType::Unknown) {
                continue;
            }
            let Ok(ffd) = rustix::fs::openat(
                &dfd,
                fname,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            match rustix::fs::fstat(&ffd) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
                _ => continue,
            }
            if x == base || strict_xattr_is_false(ffd.as_fd()) {
                accepted.push(fname.to_string());
            } else {
                rejected.push(fname.to_string());
            }
        }
    }
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
        1 => {
            let rel = format!("{dir}/{}", accepted[0]);
            match rustix::fs::openat(
                &dfd,
                accepted[0].as_str(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => parse_release_fd(fd, rel),
                Err(e) => ReleaseInfo {
                    problem: Some(format!("cannot open {rel}: {e}")),
                    file: Some(rel),
                    ..Default::default()
                },
            }
        }
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
    fn base_names() {
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
