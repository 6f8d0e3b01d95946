//! Reading small files that whoever prepared a root or an image controls: release files,
//! the host's os-release, verity sidecars, the meta files of a merge.
//!
//! Such a file may be a FIFO (an `open` for reading would wait for a writer forever, with
//! our lock held), a socket, a device node or a huge file. So it is looked up `O_PATH`,
//! checked with `fstat` to be a regular file, only then opened for reading (with
//! `O_NONBLOCK | O_NOCTTY`: nothing can block, no terminal becomes ours), and read only
//! up to a cap.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, OFlags};
use std::io::{self, Read};

/// The flags small files are opened with (plus `O_CLOEXEC`, which every open adds).
pub const OPEN_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Why a small file was not read.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    /// Not a regular file (a FIFO, socket, device node, directory, …).
    #[error("is {what}, not a regular file")]
    NotRegular {
        /// "a FIFO", "a socket", "a character device", …
        what: &'static str,
    },
    /// Larger than the cap; reading stopped at the cap.
    #[error("is larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl SmallFileError {
    /// errno equivalent (as systemd: `EISDIR` for a directory, `EBADFD` for other
    /// non-regular files, `E2BIG` past the cap).
    pub fn errno(&self) -> i32 {
        match self {
            SmallFileError::NotRegular { what } if *what == "a directory" => libc::EISDIR,
            SmallFileError::NotRegular { .. } => libc::EBADFD,
            SmallFileError::TooLarge { .. } => libc::E2BIG,
            SmallFileError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SmallFileError::Io(e) if e.raw_os_error() == Some(libc::ENOENT))
    }
}

impl From<SmallFileError> for io::Error {
    fn from(e: SmallFileError) -> io::Error {
        match e {
            SmallFileError::Io(e) => e,
            e => io::Error::from_raw_os_error(e.errno()),
        }
    }
}

fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

/// Refuse anything but a regular file.
pub fn check_regular(fd: BorrowedFd<'_>) -> Result<(), SmallFileError> {
    let st = rustix::fs::fstat(fd).map_err(io::Error::from)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        ft => Err(SmallFileError::NotRegular {
            what: type_name(ft),
        }),
    }
}

/// Open a small file with `open`, which is called with `O_PATH` first: the file must be a
/// regular file before it is opened for reading (opening a device node can have effects,
/// such as arming a watchdog or rewinding a tape, and a FIFO would block). It is then
/// reopened through `/proc/self/fd` with [`OPEN_FLAGS`].
pub fn open_checked(
    open: impl Fn(OFlags) -> io::Result<OwnedFd>,
) -> Result<OwnedFd, SmallFileError> {
    let p = open(OFlags::PATH | OFlags::CLOEXEC)?;
    check_regular(p.as_fd())?;
    Ok(rustix::fs::open(
        crate::root::proc_fd_path(p.as_fd()),
        OPEN_FLAGS,
        rustix::fs::Mode::empty(),
    )
    .map_err(io::Error::from)?)
}

/// Read the fd of a regular file (from [`open_checked`]) whole, refusing files of more
/// than `max` bytes: reading stops one byte past the cap, so memory stays at most
/// `max + 1` bytes whatever the file's size.
pub fn read_capped(fd: OwnedFd, max: u64) -> Result<Vec<u8>, SmallFileError> {
    let mut buf = Vec::with_capacity(1024);
    std::fs::File::from(fd)
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(SmallFileError::TooLarge { max });
    }
    Ok(buf)
}

/// Open `rel` beneath `dir` (resolved in it as in a root) and [`read_capped`] it.
pub fn read_beneath(dir: BorrowedFd<'_>, rel: &str, max: u64) -> Result<Vec<u8>, SmallFileError> {
    let fd = open_checked(|flags| crate::root::open_beneath(dir, rel, flags))?;
    read_capped(fd, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(
            d.path(),
            OFlags::PATH | OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        (d, fd)
    }

    #[test]
    fn the_first_open_is_o_path() {
        // Nothing is opened for reading before the file is known to be regular.
        let seen = std::cell::Cell::new(None);
        let e = open_checked(|f| {
            seen.set(Some(f));
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        })
        .unwrap_err();
        assert_eq!(seen.get(), Some(OFlags::PATH | OFlags::CLOEXEC));
        assert!(e.is_not_found());
        let e = open_checked(|_| Err(io::Error::from_raw_os_error(libc::EACCES))).unwrap_err();
        assert!(!e.is_not_found());
        assert!(!SmallFileError::TooLarge { max: 1 }.is_not_found());
    }

    #[test]
    fn fifo_socket_and_directory_are_refused_without_blocking() {
        let (d, fd) = dir();
        rustix::fs::mknodat(
            &fd,
            "fifo",
            FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.path().join("sock")).unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("file"), "ID=x\n").unwrap();
        std::fs::set_permissions(
            d.path().join("file"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        for (name, what) in [
            ("fifo", "a FIFO"),
            ("sock", "a socket"),
            ("dir", "a directory"),
        ] {
            let e = read_beneath(fd.as_fd(), name, 100).unwrap_err();
            assert!(
                matches!(&e, SmallFileError::NotRegular { what: w } if *w == what),
                "{name}: {e}"
            );
            assert_eq!(e.to_string(), format!("is {what}, not a regular file"));
        }
        let e = read_beneath(fd.as_fd(), "dir", 100).unwrap_err();
        assert_eq!(e.errno(), libc::EISDIR);
        assert_eq!(
            read_beneath(fd.as_fd(), "fifo", 100).unwrap_err().errno(),
            libc::EBADFD
        );
        assert!(read_beneath(fd.as_fd(), "missing", 100)
            .unwrap_err()
            .is_not_found());
        assert_eq!(read_beneath(fd.as_fd(), "file", 100).unwrap(), b"ID=x\n");
    }

    #[test]
    fn reading_stops_past_the_cap() {
        let (d, fd) = dir();
        std::fs::write(d.path().join("big"), vec![b'#'; 10_000]).unwrap();
        let e = read_beneath(fd.as_fd(), "big", 4096).unwrap_err();
        assert!(matches!(e, SmallFileError::TooLarge { max: 4096 }), "{e}");
        assert_eq!(e.to_string(), "is larger than 4096 bytes");
        assert_eq!(e.errno(), libc::E2BIG);
        assert_eq!(
            read_beneath(fd.as_fd(), "big", 10_000).unwrap().len(),
            10_000
        );
    }
}
