//! Loop devices, attached with a single `LOOP_CONFIGURE` ioctl.
//!
//! [`LoopDevice::attach`] asks `/dev/loop-control` for a free device, opens it and binds the
//! backing file with offset, size limit, flags and block size in one step. When another
//! process grabs the same device in between (`EBUSY`), the next free one is tried.
//!
//! Lifetime: devices are set up with `LO_FLAGS_AUTOCLEAR` by default, so the kernel unbinds
//! the device when its last opener goes away. [`LoopDevice::detach`] (and `Drop`) issue
//! `LOOP_CLR_FD` and close our descriptor: if nothing else holds the device it is released
//! right away; if a file system mounted from it still holds it, the device stays until that
//! mount is gone, then disappears on its own.
#![allow(unsafe_code)]

use linux_raw_sys::loop_device::{
    self as uapi, loop_config, loop_info64, LOOP_CLR_FD, LOOP_CONFIGURE, LOOP_CTL_GET_FREE,
    LOOP_GET_STATUS64,
};
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Getter, Ioctl, IoctlOutput, NoArg, Opcode, Setter};
use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `LO_FLAGS_READ_ONLY`.
pub const LO_FLAGS_READ_ONLY: u32 = uapi::LO_FLAGS_READ_ONLY as u32;
/// `LO_FLAGS_AUTOCLEAR`.
pub const LO_FLAGS_AUTOCLEAR: u32 = uapi::LO_FLAGS_AUTOCLEAR as u32;
/// `LO_FLAGS_PARTSCAN`.
pub const LO_FLAGS_PARTSCAN: u32 = uapi::LO_FLAGS_PARTSCAN as u32;
/// `LO_FLAGS_DIRECT_IO`.
pub const LO_FLAGS_DIRECT_IO: u32 = uapi::LO_FLAGS_DIRECT_IO as u32;

/// How many devices are tried before giving up on `EBUSY` races (or devices that vanish
/// because another tool removed them with `LOOP_CTL_REMOVE`, as systemd does).
const MAX_ATTEMPTS: u32 = 128;

// The layouts of <linux/loop.h> (the same on every architecture).
const _: () = assert!(std::mem::size_of::<loop_info64>() == 232);
const _: () = assert!(std::mem::size_of::<loop_config>() == 304);

/// A `struct loop_info64` of zeros.
const INFO_ZERO: loop_info64 = loop_info64 {
    lo_device: 0,
    lo_inode: 0,
    lo_rdevice: 0,
    lo_offset: 0,
    lo_sizelimit: 0,
    lo_number: 0,
    lo_encrypt_type: 0,
    lo_encrypt_key_size: 0,
    lo_flags: 0,
    lo_file_name: [0; uapi::LO_NAME_SIZE as usize],
    lo_crypt_name: [0; uapi::LO_NAME_SIZE as usize],
    lo_encrypt_key: [0; uapi::LO_KEY_SIZE as usize],
    lo_init: [0; 2],
};

/// Options for [`LoopDevice::attach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopOptions {
    /// `LO_FLAGS_READ_ONLY` (default on).
    pub read_only: bool,
    /// `LO_FLAGS_AUTOCLEAR` (default on).
    pub autoclear: bool,
    /// `LO_FLAGS_DIRECT_IO`; dropped where the backing file cannot be opened with `O_DIRECT`
    /// or the kernel refuses it with `EINVAL` (default off).
    pub direct_io: bool,
    /// `LO_FLAGS_PARTSCAN`: let the kernel create partition devices (default off).
    pub partscan: bool,
    /// Logical block size; 0 for the kernel default (512).
    pub block_size: u32,
}

impl Default for LoopOptions {
    fn default() -> LoopOptions {
        LoopOptions {
            read_only: true,
            autoclear: true,
            direct_io: false,
            partscan: false,
            block_size: 0,
        }
    }
}

impl LoopOptions {
    fn flags(&self) -> u32 {
        let mut f = 0;
        if self.read_only {
            f |= LO_FLAGS_READ_ONLY;
        }
        if self.autoclear {
            f |= LO_FLAGS_AUTOCLEAR;
        }
        if self.direct_io {
            f |= LO_FLAGS_DIRECT_IO;
        }
        if self.partscan {
            f |= LO_FLAGS_PARTSCAN;
        }
        f
    }
}

/// The kernel's view of a bound loop device (`LOOP_GET_STATUS64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopStatus {
    /// The loop device's number (`/dev/loopN`).
    pub number: u32,
    /// Byte offset into the backing file.
    pub offset: u64,
    /// 0: up to the end of the backing file.
    pub size_limit: u64,
    /// `LO_FLAGS_*`.
    pub flags: u32,
    /// Device and inode number of the backing file.
    pub backing_device: u64,
    /// Inode number of the backing file.
    pub backing_inode: u64,
    /// The name given at setup (at most 63 bytes, informational only).
    pub file_name: String,
}

/// `LOOP_CTL_GET_FREE`: no argument; the result is the number of a free device.
struct GetFree;

// SAFETY: LOOP_CTL_GET_FREE takes no argument (a null pointer is passed) and writes nothing
// to user memory; a successful call's result is the device number.
unsafe impl Ioctl for GetFree {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        LOOP_CTL_GET_FREE as Opcode
    }

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

fn get_free(control: BorrowedFd<'_>) -> io::Result<IoctlOutput> {
    // SAFETY: see `GetFree`.
    Ok(unsafe { rustix::ioctl::ioctl(control, GetFree) }?)
}

fn clear_fd(dev: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument.
    let ioctl = unsafe { NoArg::<{ LOOP_CLR_FD as Opcode }>::new() };
    // SAFETY: as above.
    Ok(unsafe { rustix::ioctl::ioctl(dev, ioctl) }?)
}

fn open_path(path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?)
}

/// The `LOOP_CONFIGURE` argument for `file` from `offset`, `size` bytes, with the file's
/// name for `losetup` to show.
fn config_for(
    file: BorrowedFd<'_>,
    offset: u64,
    size: u64,
    opts: &LoopOptions,
) -> io::Result<loop_config> {
    let mut cfg = loop_config {
        fd: u32::try_from(file.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
        block_size: opts.block_size,
        info: loop_info64 {
            lo_offset: offset,
            lo_sizelimit: size,
            lo_flags: opts.flags(),
            ..INFO_ZERO
        },
        __reserved: [0; 8],
    };
    if let Ok(target) = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        let name = target.as_os_str().as_encoded_bytes();
        let n = name.len().min(cfg.info.lo_file_name.len() - 1);
        cfg.info.lo_file_name[..n].copy_from_slice(&name[..n]);
    }
    // Direct I/O only where the backing file can be opened for it, as systemd checks
    // (by reopening it with O_DIRECT). The loop driver of Linux 6.1 trusts the file's
    // address space instead: a file on overlayfs (which passes O_DIRECT through) over
    // tmpfs (which has no direct I/O before 6.6) is accepted, and every read of the
    // device then fails with EIO.
    if opts.direct_io && !can_open_direct(file) {
        cfg.info.lo_flags &= !LO_FLAGS_DIRECT_IO;
    }
    Ok(cfg)
}

/// A short, growing, jittered pause before another attempt, so that racing allocators
/// spread out.
fn pause_before_retry(attempt: u32) {
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 500,
    );
    std::thread::sleep(Duration::from_micros(
        50 * u64::from(attempt.min(40)) + jitter,
    ));
}

/// The number of the device to try: the free one the kernel offers, or, when that one
/// was found taken in this call already, the next existing device above the busy ones.
fn pick_device(control: BorrowedFd<'_>, busy: &[u32]) -> io::Result<u32> {
    let free = get_free(control)?;
    let number = u32::try_from(free).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if busy.contains(&number) {
        // The kernel hands out the lowest unbound device, which is exactly the one
        // others keep grabbing.
        let next = busy.iter().max().map_or(number, |m| m.saturating_add(1));
        if Path::new(&format!("/dev/loop{next}")).exists() {
            return Ok(next);
        }
    }
    Ok(number)
}

/// `LOOP_CONFIGURE` on `dev`; when direct I/O was asked for and the backing file system
/// cannot do it (`EINVAL`), again without (and `cfg` keeps that for further attempts).
fn configure_backing(
    dev: BorrowedFd<'_>,
    cfg: &mut loop_config,
    direct_io: bool,
) -> io::Result<()> {
    let result = configure(dev, cfg);
    if direct_io && matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
        cfg.info.lo_flags &= !LO_FLAGS_DIRECT_IO;
        return configure(dev, cfg);
    }
    result
}

/// Whether the file open at `file` can be opened again with `O_DIRECT`.
fn can_open_direct(file: BorrowedFd<'_>) -> bool {
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    open_path(Path::new(&path), OFlags::RDONLY | OFlags::DIRECT).is_ok()
}

fn configure(dev: BorrowedFd<'_>, cfg: &loop_config) -> io::Result<()> {
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, the type given here, which it does
    // not write to.
    let ioctl = unsafe { Setter::<{ LOOP_CONFIGURE as Opcode }, loop_config>::new(*cfg) };
    // SAFETY: as above.
    Ok(unsafe { rustix::ioctl::ioctl(dev, ioctl) }?)
}

fn get_status(dev: BorrowedFd<'_>) -> io::Result<loop_info64> {
    // SAFETY: LOOP_GET_STATUS64 writes a `struct loop_info64`, the type given here.
    let ioctl = unsafe { Getter::<{ LOOP_GET_STATUS64 as Opcode }, loop_info64>::new() };
    // SAFETY: as above.
    Ok(unsafe { rustix::ioctl::ioctl(dev, ioctl) }?)
}

/// What a [`LoopDevice`] without its descriptor says (instead of a panic; it does not happen:
/// only the methods that consume the device give the descriptor up).
fn detached() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

/// A loop device we attached. Detached by [`LoopDevice::detach`] or on drop.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    fd: Option<OwnedFd>,
    number: u32,
}

impl LoopDevice {
    /// Attaches `file` (from `offset`, `size` bytes; `size == 0` means up to the end of the
    /// file) to a free loop device.
    ///
    /// The device is opened read-only when `opts.read_only` is set. On `EBUSY` (another
    /// allocator took the device between `LOOP_CTL_GET_FREE` and `LOOP_CONFIGURE`) another
    /// device is tried, up to a bounded number of times: the next free one, or, when the
    /// kernel keeps offering a device that was just taken, the next existing one above it.
    pub fn attach(
        file: impl AsFd,
        offset: u64,
        size: u64,
        opts: &LoopOptions,
    ) -> io::Result<LoopDevice> {
        let file = file.as_fd();
        let control = open_path(Path::new("/dev/loop-control"), OFlags::RDWR)?;
        let mut cfg = config_for(file, offset, size, opts)?;
        let access = if opts.read_only {
            OFlags::RDONLY
        } else {
            OFlags::RDWR
        };
        let mut last_err = io::Error::from_raw_os_error(libc::EBUSY);
        // Devices that turned out to be taken during this call.
        let mut busy: Vec<u32> = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                pause_before_retry(attempt);
            }
            let number = pick_device(control.as_fd(), &busy)?;
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let dev = match open_path(&path, access) {
                Ok(fd) => fd,
                // The node is not there (yet) or went away: another round.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENXIO)) => {
                    busy.push(number);
                    last_err = e;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match configure_backing(dev.as_fd(), &mut cfg, opts.direct_io) {
                Ok(()) => {
                    let device = LoopDevice {
                        path,
                        fd: Some(dev),
                        number,
                    };
                    return device.with_window(offset, size);
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    busy.push(number);
                    last_err = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err)
    }

    /// The device, once its window is checked: old kernels could ignore the offset and
    /// size of `LOOP_CONFIGURE`; then it is detached again and the call fails.
    fn with_window(self, offset: u64, size: u64) -> io::Result<LoopDevice> {
        let st = self.status()?;
        if st.offset != offset || st.size_limit != size {
            let _ = self.detach();
            return Err(io::Error::other(format!(
                "loop device ignored offset/size ({}/{} instead of {offset}/{size})",
                st.offset, st.size_limit
            )));
        }
        Ok(self)
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// N of `/dev/loopN`.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Our descriptor of the device, open while the `LoopDevice` lives. (The error, `EBADF`,
    /// does not happen: only the methods that consume the device give the descriptor up.)
    pub fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd).ok_or_else(detached)
    }

    /// The device number (`st_rdev`).
    pub fn devnum(&self) -> io::Result<u64> {
        let st = rustix::fs::fstat(self.fd()?)?;
        Ok(st.st_rdev)
    }

    /// The kernel's status of the device.
    pub fn status(&self) -> io::Result<LoopStatus> {
        let i = get_status(self.fd()?)?;
        let name_len = i
            .lo_file_name
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(i.lo_file_name.len());
        Ok(LoopStatus {
            number: i.lo_number,
            offset: i.lo_offset,
            size_limit: i.lo_sizelimit,
            flags: i.lo_flags,
            backing_device: i.lo_device,
            backing_inode: i.lo_inode,
            file_name: CStr::from_bytes_until_nul(&i.lo_file_name[..])
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_else(|_| {
                    String::from_utf8_lossy(&i.lo_file_name[..name_len]).into_owned()
                }),
        })
    }

    /// Unbinds the device (`LOOP_CLR_FD`) and closes our descriptor. The kernel releases the
    /// device once nothing else has it open (e.g. immediately, or when a mount of it goes).
    pub fn detach(mut self) -> io::Result<()> {
        self.clear()
    }

    fn clear(&mut self) -> io::Result<()> {
        let Some(fd) = self.fd.take() else {
            return Ok(());
        };
        let r = clear_fd(fd.as_fd());
        drop(fd);
        match r {
            Ok(()) => Ok(()),
            // Already unbound (e.g. autoclear raced us): nothing left to do.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives up ownership without detaching: the device stays bound until its last opener
    /// closes it (with autoclear) or someone detaches it. (The error, `EBADF`, does not
    /// happen, as for [`LoopDevice::fd`].)
    pub fn into_owned_fd(mut self) -> io::Result<OwnedFd> {
        self.fd.take().ok_or_else(detached)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = self.clear();
    }
}

#[cfg(any(test, feature = "testing"))]
/// The backing file of `/dev/loopN` from sysfs, `None` if the device is not bound (or does
/// not exist). The kernel appends ` (deleted)` for a deleted file.
pub fn backing_file(number: u32) -> Option<PathBuf> {
    let s = fs::read(format!("/sys/block/loop{number}/loop/backing_file")).ok()?;
    let s = s.strip_suffix(b"\n").unwrap_or(&s);
    if s.is_empty() {
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(s).into_owned()))
}

#[cfg(any(test, feature = "testing"))]
/// Numbers of all loop devices currently bound to `path`, from sysfs.
pub fn devices_backed_by(path: &Path) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut v: Vec<u32> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("loop")?.parse().ok())
        .filter(|&n| backing_file(n).as_deref() == Some(path))
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_io_is_asked_of_the_file() {
        // procfs has no direct I/O on any kernel: the loop device goes without it. (The case
        // this is for, overlayfs over tmpfs on 6.1, is in the VM tier's verity group.)
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!can_open_direct(f.as_fd()));
    }
}
