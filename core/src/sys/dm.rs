//! Device-mapper through the ioctls of `/dev/mapper/control` (`<linux/dm-ioctl.h>`), without
//! libdevmapper or libcryptsetup: create a device, load a table, resume it, query its status
//! and table, send a target message, remove it (at once or deferred to its last close).
//!
//! Every request is one buffer: a `struct dm_ioctl` header, followed (from `data_start`) by
//! the payload (target specs with their parameter strings for a table load, a message, or
//! room for what the kernel writes back). The kernel answers in the same buffer; when the
//! answer does not fit it sets `DM_BUFFER_FULL_FLAG` and the request is repeated with a
//! larger buffer.
//!
//! Nothing here opens `/dev/mapper/control` unless asked: [`Control::open`] fails with
//! `ENOENT` on a machine without device-mapper (no node), and callers check
//! [`available`] first.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Where the control node lives.
pub const CONTROL: &str = "/dev/mapper/control";

const DM_IOCTL: u32 = 0xfd;
const DM_DEV_CREATE_CMD: u32 = 3;
const DM_DEV_REMOVE_CMD: u32 = 4;
const DM_DEV_SUSPEND_CMD: u32 = 6;
const DM_DEV_STATUS_CMD: u32 = 7;
const DM_TABLE_LOAD_CMD: u32 = 9;
const DM_TABLE_STATUS_CMD: u32 = 12;
const DM_TARGET_MSG_CMD: u32 = 14;

/// `DM_READONLY_FLAG`.
pub const DM_READONLY_FLAG: u32 = 1 << 0;
/// `DM_SUSPEND_FLAG`.
pub const DM_SUSPEND_FLAG: u32 = 1 << 1;
/// `DM_STATUS_TABLE_FLAG`: DM_TABLE_STATUS returns the table, not the status.
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
/// `DM_ACTIVE_PRESENT_FLAG`.
pub const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
/// `DM_BUFFER_FULL_FLAG`.
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
/// `DM_DEFERRED_REMOVE`: remove on last close (or mark a device for that).
pub const DM_DEFERRED_REMOVE: u32 = 1 << 17;

const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
/// The interface version we speak (4.x; every kernel since 2.6 has it).
const VERSION: [u32; 3] = [4, 0, 0];

/// `struct dm_ioctl`.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

/// `struct dm_target_spec`.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; 16],
}

/// `struct dm_target_msg` without its flexible message.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmTargetMsg {
    sector: u64,
}

const HDR: usize = std::mem::size_of::<DmIoctl>();
const SPEC: usize = std::mem::size_of::<DmTargetSpec>();
const _: () = assert!(HDR == 312);
const _: () = assert!(SPEC == 40);

const fn iowr(nr: u32) -> libc::Ioctl {
    ((3u32 << 30) | ((HDR as u32) << 16) | (DM_IOCTL << 8) | nr) as libc::Ioctl
}

/// Whether this machine has device-mapper: the control node exists. Nothing is opened.
pub fn available() -> bool {
    std::path::Path::new(CONTROL).exists()
}

/// One target of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// First sector of the mapped device the target covers.
    pub start: u64,
    /// Length in sectors.
    pub length: u64,
    /// Target type (`verity`, `linear`, ...).
    pub kind: String,
    /// The target's parameter string.
    pub params: String,
}

/// What DM_DEV_STATUS tells about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device number (`makedev(major, minor)`).
    pub dev: u64,
    /// How many times the device is open.
    pub open_count: i32,
    /// `DM_*_FLAG` bits.
    pub flags: u32,
    /// Number of targets in the live table.
    pub target_count: u32,
}

impl DeviceInfo {
    /// The device's minor number.
    pub fn minor(&self) -> u32 {
        libc::minor(self.dev)
    }
    /// The kernel's name of the block device, `dm-N`.
    pub fn kernel_name(&self) -> String {
        format!("dm-{}", self.minor())
    }
    /// Whether the device is suspended.
    pub fn suspended(&self) -> bool {
        self.flags & DM_SUSPEND_FLAG != 0
    }
    /// Whether the device has a live table.
    pub fn has_table(&self) -> bool {
        self.flags & DM_ACTIVE_PRESENT_FLAG != 0
    }
    /// Whether the device is marked for deferred removal (it goes when it is closed last).
    pub fn deferred_remove(&self) -> bool {
        self.flags & DM_DEFERRED_REMOVE != 0
    }
}

/// The kernel's `huge_encode_dev` form of a device number, as dm-ioctl carries it.
fn decode_dev(x: u64) -> u64 {
    let major = ((x & 0xfff00) >> 8) as u32;
    let minor = ((x & 0xff) | ((x >> 12) & 0xfff00)) as u32;
    libc::makedev(major, minor)
}

/// An open `/dev/mapper/control`.
#[derive(Debug)]
pub struct Control {
    fd: OwnedFd,
}

/// A request buffer: header, then payload, 8-byte aligned.
struct Request {
    buf: Vec<u64>,
}

impl Request {
    fn new(
        name: &str,
        uuid: Option<&str>,
        flags: u32,
        payload: &[u8],
        room: usize,
    ) -> io::Result<Request> {
        if name.len() >= DM_NAME_LEN || name.contains('/') || name.is_empty() && uuid.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid device-mapper name '{name}'"),
            ));
        }
        if uuid.is_some_and(|u| u.len() >= DM_UUID_LEN) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "device-mapper uuid too long",
            ));
        }
        let size = HDR + payload.len().max(room);
        let size = size.div_ceil(8) * 8;
        let mut r = Request {
            buf: vec![0u64; size / 8],
        };
        let mut h = DmIoctl {
            version: VERSION,
            data_size: size as u32,
            data_start: HDR as u32,
            target_count: 0,
            open_count: 0,
            flags,
            event_nr: 0,
            padding: 0,
            dev: 0,
            name: [0; DM_NAME_LEN],
            uuid: [0; DM_UUID_LEN],
            data: [0; 7],
        };
        h.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(u) = uuid {
            h.uuid[..u.len()].copy_from_slice(u.as_bytes());
        }
        r.set_header(&h);
        r.bytes_mut()[HDR..HDR + payload.len()].copy_from_slice(payload);
        Ok(r)
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: a Vec<u64> is a valid, aligned byte buffer of 8 × its length.
        unsafe {
            std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<u8>(), self.buf.len() * 8)
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.buf.len() * 8) }
    }

    fn header(&self) -> DmIoctl {
        // SAFETY: the buffer is at least HDR bytes and 8-aligned; DmIoctl is plain data.
        unsafe { std::ptr::read(self.buf.as_ptr().cast::<DmIoctl>()) }
    }

    fn set_header(&mut self, h: &DmIoctl) {
        // SAFETY: as above.
        unsafe { std::ptr::write(self.buf.as_mut_ptr().cast::<DmIoctl>(), *h) }
    }

    fn set_target_count(&mut self, n: u32) {
        let mut h = self.header();
        h.target_count = n;
        self.set_header(&h);
    }

    /// The payload the kernel wrote back, from `data_start` to `data_size`.
    fn out(&self) -> &[u8] {
        let h = self.header();
        let start = (h.data_start as usize).min(self.bytes().len());
        let end = (h.data_size as usize).clamp(start, self.bytes().len());
        &self.bytes()[start..end]
    }
}

fn cstr(b: &[u8]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

impl Control {
    /// Opens the control node (`ENOENT` where there is no device-mapper).
    pub fn open() -> io::Result<Control> {
        let fd = rustix::fs::open(
            CONTROL,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(Control { fd })
    }

    fn ioctl(&self, cmd: u32, req: &mut Request) -> io::Result<()> {
        let buf = req.bytes_mut();
        // SAFETY: the buffer is a dm_ioctl header with data_size bytes behind it, as the
        // kernel expects for every DM command; it stays alive for the call.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), iowr(cmd), buf.as_mut_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A request that the kernel answers with data: repeated with more room while the
    /// answer does not fit.
    fn query(&self, cmd: u32, name: &str, flags: u32) -> io::Result<Request> {
        let mut room = 16 * 1024;
        loop {
            let mut req = Request::new(name, None, flags, &[], room)?;
            self.ioctl(cmd, &mut req)?;
            if req.header().flags & DM_BUFFER_FULL_FLAG == 0 {
                return Ok(req);
            }
            if room > 1 << 24 {
                return Err(io::Error::other("device-mapper answer too large"));
            }
            room *= 4;
        }
    }

    /// Creates a device without a table (DM_DEV_CREATE).
    pub fn create(&self, name: &str, uuid: &str, read_only: bool) -> io::Result<DeviceInfo> {
        let flags = if read_only { DM_READONLY_FLAG } else { 0 };
        let mut req = Request::new(name, Some(uuid), flags, &[], 0)?;
        self.ioctl(DM_DEV_CREATE_CMD, &mut req)?;
        Ok(info(&req.header()))
    }

    /// Loads the inactive table of `name` (DM_TABLE_LOAD).
    pub fn load(&self, name: &str, targets: &[Target], read_only: bool) -> io::Result<()> {
        let mut payload = Vec::new();
        for t in targets {
            let mut ty = [0u8; 16];
            if t.kind.len() >= ty.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "target type too long",
                ));
            }
            ty[..t.kind.len()].copy_from_slice(t.kind.as_bytes());
            let plen = (t.params.len() + 1).div_ceil(8) * 8;
            let spec = DmTargetSpec {
                sector_start: t.start,
                length: t.length,
                status: 0,
                next: (SPEC + plen) as u32,
                target_type: ty,
            };
            // SAFETY: DmTargetSpec is plain data without padding (asserted size 40).
            let raw: [u8; SPEC] = unsafe { std::mem::transmute(spec) };
            payload.extend_from_slice(&raw);
            let start = payload.len();
            payload.extend_from_slice(t.params.as_bytes());
            payload.resize(start + plen, 0);
        }
        let flags = if read_only { DM_READONLY_FLAG } else { 0 };
        let mut req = Request::new(name, None, flags, &payload, 0)?;
        req.set_target_count(targets.len() as u32);
        self.ioctl(DM_TABLE_LOAD_CMD, &mut req)
    }

    /// Resumes `name`, making its loaded table live (DM_DEV_SUSPEND without the suspend flag).
    pub fn resume(&self, name: &str) -> io::Result<DeviceInfo> {
        let mut req = Request::new(name, None, 0, &[], 0)?;
        self.ioctl(DM_DEV_SUSPEND_CMD, &mut req)?;
        Ok(info(&req.header()))
    }

    /// DM_DEV_STATUS of `name`.
    pub fn status(&self, name: &str) -> io::Result<DeviceInfo> {
        let mut req = Request::new(name, None, 0, &[], 0)?;
        self.ioctl(DM_DEV_STATUS_CMD, &mut req)?;
        Ok(info(&req.header()))
    }

    /// The live table (`table == true`) or the targets' status lines (DM_TABLE_STATUS).
    pub fn table(&self, name: &str, table: bool) -> io::Result<(DeviceInfo, Vec<Target>)> {
        let req = self.query(
            DM_TABLE_STATUS_CMD,
            name,
            if table { DM_STATUS_TABLE_FLAG } else { 0 },
        )?;
        let h = req.header();
        let out = req.out();
        let mut targets = Vec::new();
        let mut at = 0usize;
        for _ in 0..h.target_count {
            if at + SPEC > out.len() {
                break;
            }
            let mut raw = [0u8; SPEC];
            raw.copy_from_slice(&out[at..at + SPEC]);
            // SAFETY: any 40 bytes are a valid DmTargetSpec (integers and bytes).
            let spec: DmTargetSpec = unsafe { std::mem::transmute(raw) };
            let params = cstr(&out[at + SPEC..]);
            targets.push(Target {
                start: spec.sector_start,
                length: spec.length,
                kind: cstr(&spec.target_type),
                params,
            });
            // For the answer, `next` counts from the start of the data area.
            let next = spec.next as usize;
            if next <= at {
                break;
            }
            at = next;
        }
        Ok((info(&h), targets))
    }

    /// Sends a message to the device (DM_TARGET_MSG), e.g. `@cancel_deferred_remove`.
    pub fn message(&self, name: &str, msg: &str) -> io::Result<()> {
        let mut payload = vec![0u8; std::mem::size_of::<DmTargetMsg>()];
        payload.extend_from_slice(msg.as_bytes());
        payload.push(0);
        let mut req = Request::new(name, None, 0, &payload, 0)?;
        self.ioctl(DM_TARGET_MSG_CMD, &mut req)
    }

    /// Removes `name` (DM_DEV_REMOVE). With `deferred`, a device still open is marked and
    /// goes away on its last close (the call succeeds); without, an open device fails with
    /// `EBUSY`.
    pub fn remove(&self, name: &str, deferred: bool) -> io::Result<()> {
        let flags = if deferred { DM_DEFERRED_REMOVE } else { 0 };
        let mut req = Request::new(name, None, flags, &[], 0)?;
        self.ioctl(DM_DEV_REMOVE_CMD, &mut req)
    }
}

/// A `user` key in the calling thread's keyring (where the kernel's `request_key()` of a
/// table load made by this thread finds it): dm-verity's `root_hash_sig_key_desc` names it.
/// Unlinked (and so destroyed) on drop.
#[derive(Debug)]
pub struct ThreadKey {
    id: i32,
}

const KEY_SPEC_THREAD_KEYRING: i32 = -1;
const KEYCTL_UNLINK: libc::c_long = 9;

impl ThreadKey {
    /// `add_key("user", description, payload, KEY_SPEC_THREAD_KEYRING)`.
    pub fn add(description: &str, payload: &[u8]) -> io::Result<ThreadKey> {
        let ty = c"user";
        let desc = std::ffi::CString::new(description)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: both strings are NUL-terminated and the payload pointer/length describe a
        // live slice; add_key copies them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                ty.as_ptr(),
                desc.as_ptr(),
                payload.as_ptr(),
                payload.len(),
                KEY_SPEC_THREAD_KEYRING,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ThreadKey { id: r as i32 })
    }
}

impl Drop for ThreadKey {
    fn drop(&mut self) {
        // SAFETY: keyctl with integer arguments only.
        unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_UNLINK,
                libc::c_long::from(self.id),
                libc::c_long::from(KEY_SPEC_THREAD_KEYRING),
            );
        }
    }
}

fn info(h: &DmIoctl) -> DeviceInfo {
    DeviceInfo {
        dev: decode_dev(h.dev),
        open_count: h.open_count,
        flags: h.flags,
        target_count: h.target_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // No test here opens the control node: the host has no device-mapper. The ioctl path is
    // exercised in the VM tier's guests: mount_images' dm-verity tests (also each mutant's,
    // through tests/vm/runner) and tests/vm/verity.sh.

    #[test]
    fn ioctl_numbers_match_the_header() {
        // _IOWR(0xfd, 0, struct dm_ioctl) and friends, as <linux/dm-ioctl.h> computes them.
        assert_eq!(iowr(0) as u64, 0xc138_fd00); // DM_VERSION
        assert_eq!(iowr(DM_DEV_CREATE_CMD) as u64, 0xc138_fd03);
        assert_eq!(iowr(DM_TABLE_LOAD_CMD) as u64, 0xc138_fd09);
        assert_eq!(iowr(DM_TARGET_MSG_CMD) as u64, 0xc138_fd0e);
    }

    #[test]
    fn device_numbers_decode() {
        // 253:0 and 253:300 as huge_encode_dev writes them.
        assert_eq!(decode_dev(253 << 8), libc::makedev(253, 0));
        let enc = (300 & 0xff) | (253 << 8) | ((300 & !0xff) << 12);
        assert_eq!(decode_dev(enc), libc::makedev(253, 300));
    }

    #[test]
    fn requests_carry_name_payload_and_size() {
        let r = Request::new(
            "abc-verity",
            Some("CRYPT-VERITY-x"),
            DM_READONLY_FLAG,
            b"xyz",
            0,
        )
        .unwrap();
        let h = r.header();
        assert_eq!(h.version, VERSION);
        assert_eq!(h.data_start as usize, HDR);
        assert_eq!(h.data_size as usize % 8, 0);
        assert!(h.data_size as usize >= HDR + 3);
        assert_eq!(cstr(&h.name), "abc-verity");
        assert_eq!(cstr(&h.uuid), "CRYPT-VERITY-x");
        assert_eq!(&r.bytes()[HDR..HDR + 3], b"xyz");
        assert!(Request::new(&"x".repeat(128), None, 0, &[], 0).is_err());
        assert!(Request::new("a/b", None, 0, &[], 0).is_err());
    }

    #[test]
    fn device_info_reads_the_flags_and_names_the_block_device() {
        let at = |flags: u32| DeviceInfo {
            dev: libc::makedev(253, 7),
            open_count: 1,
            flags,
            target_count: 1,
        };
        let none = at(0);
        assert!(!none.suspended() && !none.has_table() && !none.deferred_remove());
        assert!(at(DM_SUSPEND_FLAG).suspended());
        assert!(at(DM_ACTIVE_PRESENT_FLAG).has_table());
        assert!(at(DM_DEFERRED_REMOVE).deferred_remove());
        let all = at(DM_SUSPEND_FLAG | DM_ACTIVE_PRESENT_FLAG | DM_DEFERRED_REMOVE);
        assert!(all.suspended() && all.has_table() && all.deferred_remove());
        // Each flag alone answers only its own question.
        assert!(!at(DM_ACTIVE_PRESENT_FLAG | DM_DEFERRED_REMOVE).suspended());
        assert!(!at(DM_SUSPEND_FLAG | DM_DEFERRED_REMOVE).has_table());
        assert!(!at(DM_SUSPEND_FLAG | DM_ACTIVE_PRESENT_FLAG).deferred_remove());
        assert_eq!(none.minor(), 7);
        assert_eq!(none.kernel_name(), "dm-7");
        let mut h = Request::new("a", None, DM_READONLY_FLAG, &[], 0)
            .unwrap()
            .header();
        (h.target_count, h.open_count, h.dev) = (3, 2, 253 << 8 | 9);
        let i = info(&h);
        assert_eq!(
            (i.dev, i.open_count, i.flags, i.target_count),
            (libc::makedev(253, 9), 2, DM_READONLY_FLAG, 3)
        );
    }

    #[test]
    fn requests_are_refused_for_bad_names_and_uuids_and_sized_for_the_answer() {
        // A nameless request is fine when it names the device by uuid.
        assert!(Request::new("", Some("CRYPT-VERITY-x"), 0, &[], 0).is_ok());
        assert!(Request::new("", None, 0, &[], 0).is_err());
        assert!(Request::new(&"x".repeat(DM_NAME_LEN - 1), None, 0, &[], 0).is_ok());
        assert!(Request::new("a", Some(&"u".repeat(DM_UUID_LEN - 1)), 0, &[], 0).is_ok());
        assert!(Request::new("a", Some(&"u".repeat(DM_UUID_LEN)), 0, &[], 0).is_err());
        // Room for the kernel's answer beyond the payload, 8-byte aligned.
        let r = Request::new("a", None, 0, b"abc", 1000).unwrap();
        assert_eq!(r.header().data_size as usize, (HDR + 1000).div_ceil(8) * 8);
        assert_eq!(r.bytes().len(), r.header().data_size as usize);
        let r = Request::new("a", None, 0, &[1; 20], 3).unwrap();
        assert_eq!(r.header().data_size as usize, (HDR + 20).div_ceil(8) * 8);
        let mut r = Request::new("a", None, 0, &[], 0).unwrap();
        r.set_target_count(2);
        assert_eq!(r.header().target_count, 2);
        assert_eq!(cstr(&r.header().name), "a");
    }

    #[test]
    fn the_answer_is_what_lies_between_data_start_and_data_size() {
        let mut r = Request::new("a", None, 0, b"0123456789", 64).unwrap();
        let mut h = r.header();
        h.data_start = (HDR + 2) as u32;
        h.data_size = (HDR + 6) as u32;
        r.set_header(&h);
        assert_eq!(r.out(), b"2345");
        // Bounds the kernel would never write are clamped to the buffer.
        h.data_size = u32::MAX;
        r.set_header(&h);
        assert_eq!(r.out().len(), r.bytes().len() - HDR - 2);
        h.data_start = u32::MAX;
        r.set_header(&h);
        assert!(r.out().is_empty());
        h.data_start = (HDR + 6) as u32;
        h.data_size = (HDR + 2) as u32;
        r.set_header(&h);
        assert!(r.out().is_empty());
    }

    #[test]
    fn c_strings_end_at_the_first_nul_or_the_buffer() {
        assert_eq!(cstr(b"abc\0def"), "abc");
        assert_eq!(cstr(b"abc"), "abc");
        assert_eq!(cstr(b"\0"), "");
    }

    #[test]
    fn the_control_node_is_absent_here_and_open_says_so() {
        // The host of the test suite has no device-mapper; where it has, say nothing.
        if !available() {
            assert_eq!(
                Control::open().unwrap_err().raw_os_error(),
                Some(libc::ENOENT)
            );
        }
    }
}
