//! What each error names (path, hierarchy, extension) and says, as the C ABI and the Python
//! bindings hand them on (what the whole-core mutation run found untested in
//! `core/src/error.rs`: those front ends' tests are not run against its mutants).

use std::io;
use std::path::PathBuf;
use sysext::image::ImageError;
use sysext::Error;

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// An error with the path, hierarchy and extension it names.
type Sample = (
    Error,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// One error of each variant that names something, and a few that name nothing.
fn samples() -> Vec<Sample> {
    vec![
        (
            Error::Io {
                op: "open",
                path: PathBuf::from("/r/usr/lib/x"),
                source: os(libc::EACCES),
            },
            Some("/r/usr/lib/x"),
            None,
            None,
        ),
        (
            Error::Mount {
                op: "mount overlay on",
                target: "/r/usr".into(),
                source: os(libc::EINVAL),
                kernel_log: vec![],
            },
            Some("/r/usr"),
            None,
            None,
        ),
        (
            Error::AlreadyMerged {
                hierarchy: "/usr".into(),
                path: "/r/usr".into(),
            },
            Some("/r/usr"),
            Some("/usr"),
            None,
        ),
        (
            Error::NotMerged { name: "foo".into() },
            None,
            None,
            Some("foo"),
        ),
        (Error::NotPrivileged, None, None, None),
        (
            Error::Metadata {
                image: "bar".into(),
                reason: "no release file".into(),
                errno: libc::ENOENT,
            },
            None,
            None,
            Some("bar"),
        ),
        (
            Error::Incompatible {
                name: "baz".into(),
                reason: "other ID".into(),
            },
            None,
            None,
            Some("baz"),
        ),
        (
            Error::NotFound { name: "qux".into() },
            None,
            None,
            Some("qux"),
        ),
        (
            Error::Image {
                image: "/r/var/lib/extensions/img.raw".into(),
                name: "img".into(),
                source: Box::new(ImageError::Unrecognised),
            },
            Some("/r/var/lib/extensions/img.raw"),
            None,
            Some("img"),
        ),
        (
            Error::ImagePolicy {
                image: "/r/var/lib/extensions/p.raw".into(),
                reason: "root not signed".into(),
            },
            Some("/r/var/lib/extensions/p.raw"),
            None,
            None,
        ),
        (
            Error::MutableDirMode {
                dir: "/r/var/lib/extensions.mutable/usr".into(),
                mode: 0o700,
                expected: 0o755,
            },
            Some("/r/var/lib/extensions.mutable/usr"),
            None,
            None,
        ),
        (
            Error::MutableDirIsHierarchy {
                hierarchy: "/usr".into(),
            },
            None,
            Some("/usr"),
            None,
        ),
        (
            Error::MutableDirChase {
                dir: "/r/m/chase".into(),
                source: os(libc::ENOTDIR),
            },
            Some("/r/m/chase"),
            None,
            None,
        ),
        (
            Error::MutableDirCreate {
                dir: "/r/m/create".into(),
                source: os(libc::EEXIST),
            },
            Some("/r/m/create"),
            None,
            None,
        ),
        (
            Error::UpperDirReadOnly {
                dir: "/r/m/ro".into(),
            },
            Some("/r/m/ro"),
            None,
            None,
        ),
        (
            Error::WorkDirCrossDevice {
                upper: "/r/m/upper".into(),
                hierarchy: "/opt".into(),
            },
            Some("/r/m/upper"),
            Some("/opt"),
            None,
        ),
        (
            Error::HierarchyNotDirectory {
                hierarchy: "/usr".into(),
                image: "file-ext".into(),
            },
            None,
            None,
            Some("file-ext"),
        ),
        (
            Error::HierarchyCreate {
                path: "/r/opt".into(),
                source: os(libc::EROFS),
            },
            Some("/r/opt"),
            None,
            None,
        ),
        (
            Error::TooManyLayers {
                hierarchy: "/usr".into(),
                count: 600,
                max: 500,
            },
            None,
            Some("/usr"),
            None,
        ),
        (
            Error::LayerCountMismatch {
                hierarchy: "/opt".into(),
                expected: 3,
                found: 2,
            },
            None,
            Some("/opt"),
            None,
        ),
        (
            Error::MetaDev {
                dot_dir: ".systemd-sysext",
                path: "/r/usr".into(),
            },
            Some("/r/usr"),
            None,
            None,
        ),
        (Error::InvalidArgument("bad".into()), None, None, None),
        (
            Error::Busy {
                path: PathBuf::from("/run/systemd/sysext.lock"),
            },
            Some("/run/systemd/sysext.lock"),
            None,
            None,
        ),
    ]
}

#[test]
fn each_error_names_its_path_hierarchy_and_extension() {
    for (e, path, hierarchy, extension) in samples() {
        assert_eq!(e.path().as_deref(), path, "{e:?}");
        assert_eq!(e.hierarchy(), hierarchy, "{e:?}");
        assert_eq!(e.extension(), extension, "{e:?}");
    }
}

#[test]
fn a_mount_error_ends_with_the_kernels_log_lines_if_any() {
    let mount = |kernel_log: Vec<String>| Error::Mount {
        op: "mount overlay on",
        target: "/r/usr".into(),
        source: os(libc::EINVAL),
        kernel_log,
    };
    assert_eq!(
        mount(vec![]).to_string(),
        "Failed to mount overlay on /r/usr: Invalid argument"
    );
    assert_eq!(
        mount(vec![
            "overlay: Unknown parameter 'x'".into(),
            "overlay: second".into()
        ])
        .to_string(),
        "Failed to mount overlay on /r/usr: Invalid argument (kernel: overlay: Unknown parameter 'x'; overlay: second)"
    );
}
