//! dm-verity devices for verity-protected images, set up with the device-mapper ioctls
//! ([`crate::sys::dm`]), the way systemd's image dissection does it:
//!
//! - the device is named after the root hash, `<hex root hash>-verity`, so that every merge
//!   of the same image (a refresh, sysext and confext, another process) shares one device;
//!   a device of that name is reused when its live table is the same verity mapping (root
//!   hash, algorithm, block sizes and count, salt), else a device named after the data loop
//!   device (`loopN-verity`) is made, as systemd falls back to a unique name;
//! - data and hash tree come from read-only loop devices over the image's regions (they go
//!   away with the mapping: auto-clear);
//! - the root hash signature, if any, is handed to the kernel through a `user` key in the
//!   thread keyring (`root_hash_sig_key_desc`); where the kernel refuses it (no
//!   `CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG`, or the signer is not in its keyring) the mapping
//!   is made without it, provided the signature was verified in userspace before;
//! - while the device is in use it is marked for deferred removal: it disappears with its
//!   last opener (the mounted file system), on unmerge or when a merge fails, with no
//!   cleanup of ours needed. A reused device's mark is cancelled while it is taken over
//!   (`@cancel_deferred_remove`) and set again once it is open. A device of that name that
//!   is not marked (one made to last, e.g. by `veritysetup open`) is neither marked nor, when
//!   its table is another, removed: it is reused as it is, or left alone.
//!
//! The block device node: devtmpfs's `/dev/dm-N` (checked against the device number), else
//! a node made with `mknod` in the private `/run/libsysext/dm` and unlinked once open (no
//! udev needed).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags};

use crate::image::verity::{encode_hex, VeritySuperblock};
use crate::sys::dm::{self, Control, Target, ThreadKey};
use crate::sys::loopdev::{LoopDevice, LoopOptions};

/// A region of a file: the data or the hash tree of a verity mapping.
#[derive(Debug, Clone, Copy)]
pub struct Region<'a> {
    /// The file holding the region.
    pub file: &'a File,
    /// Byte offset of the region in the file.
    pub offset: u64,
    /// Bytes; 0 means up to the end of the file.
    pub size: u64,
}

/// What to do with a root hash signature.
#[derive(Debug, Clone, Copy)]
pub struct KernelSignature<'a> {
    /// The PKCS#7 signature (DER).
    pub pkcs7: &'a [u8],
    /// Whether the kernel must accept it (it was not verified in userspace).
    pub required: bool,
}

/// An active verity mapping, open.
#[derive(Debug)]
pub struct Activated {
    /// The open block device (read-only). Closing it (after the mount holds the device)
    /// leaves the device to the deferred removal.
    pub node: OwnedFd,
}

/// A failed step.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op}: {source}")]
pub struct DmError {
    /// What was being done.
    pub op: &'static str,
    /// The cause.
    #[source]
    pub source: io::Error,
    /// The kernel refused a root hash signature it had to accept.
    pub signature_rejected: bool,
}

fn err(op: &'static str) -> impl FnOnce(io::Error) -> DmError {
    move |source| DmError {
        op,
        source,
        signature_rejected: false,
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// The name systemd gives a shared verity device.
pub fn shared_name(root_hash: &[u8]) -> String {
    format!("{}-verity", encode_hex(root_hash))
}

/// The verity target's parameters (without optional arguments).
fn table_params(sb: &VeritySuperblock, data_dev: u64, hash_dev: u64, root_hash: &[u8]) -> String {
    // The tree starts at the first hash block after the superblock.
    let hash_start =
        (crate::image::verity::SUPERBLOCK_SIZE as u64).div_ceil(u64::from(sb.hash_block_size));
    format!(
        "{} {}:{} {}:{} {} {} {} {} {} {} {}",
        sb.hash_type,
        libc::major(data_dev),
        libc::minor(data_dev),
        libc::major(hash_dev),
        libc::minor(hash_dev),
        sb.data_block_size,
        sb.hash_block_size,
        sb.data_blocks,
        hash_start,
        sb.algorithm,
        encode_hex(root_hash),
        if sb.salt.is_empty() {
            "-".to_string()
        } else {
            encode_hex(&sb.salt)
        },
    )
}

/// Whether a live table is the mapping we would make (devices aside).
fn same_mapping(targets: &[Target], sb: &VeritySuperblock, root_hash: &[u8]) -> bool {
    let [t] = targets else { return false };
    if t.kind != "verity" {
        return false;
    }
    let w: Vec<&str> = t.params.split_ascii_whitespace().collect();
    if w.len() < 10 {
        return false;
    }
    let salt = if sb.salt.is_empty() {
        "-".to_string()
    } else {
        encode_hex(&sb.salt)
    };
    w[0] == sb.hash_type.to_string()
        && w[3] == sb.data_block_size.to_string()
        && w[4] == sb.hash_block_size.to_string()
        && w[5] == sb.data_blocks.to_string()
        && w[7].eq_ignore_ascii_case(&sb.algorithm)
        && w[8].eq_ignore_ascii_case(&encode_hex(root_hash))
        && w[9].eq_ignore_ascii_case(&salt)
}

/// Opens the block device `dev` (named `dm-N` by the kernel) read-only.
fn open_node(dev: u64, kernel_name: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    let is_it = |fd: &OwnedFd| {
        rustix::fs::fstat(fd).is_ok_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::BlockDevice && st.st_rdev == dev
        })
    };
    if let Ok(fd) = rustix::fs::open(format!("/dev/{kernel_name}"), flags, Mode::empty()) {
        if is_it(&fd) {
            return Ok(fd);
        }
    }
    // No devtmpfs node (or another device's): a node of our own, in a private directory.
    let dir = "/run/libsysext/dm";
    for d in ["/run/libsysext", dir] {
        match rustix::fs::mkdir(d, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let node = format!(
        "{dir}/{kernel_name}.{}.{}",
        std::process::id(),
        rustix::thread::gettid().as_raw_nonzero()
    );
    let _ = rustix::fs::unlink(&node);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        FileType::BlockDevice,
        Mode::from_raw_mode(0o600),
        dev,
    )?;
    let fd = rustix::fs::open(&node, flags, Mode::empty());
    let _ = rustix::fs::unlink(&node);
    let fd = fd?;
    if !is_it(&fd) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    Ok(fd)
}

/// Sets up (or reuses) the dm-verity device for `data` with the hash tree whose superblock
/// starts `hash`, and opens it. The superblock must have been read from `hash` (and the data
/// region checked to hold its data blocks).
pub fn activate(
    data: Region<'_>,
    hash: Region<'_>,
    sb: &VeritySuperblock,
    root_hash: &[u8],
    signature: Option<KernelSignature<'_>>,
) -> Result<Activated, DmError> {
    let ctl = Control::open().map_err(err("open the device-mapper control node"))?;
    let name = shared_name(root_hash);
    if name.len() < 128 {
        for _ in 0..8 {
            match try_reuse(&ctl, &name, sb, root_hash, signature)? {
                Reuse::Done(a) => return Ok(a),
                Reuse::Conflict => break,
                Reuse::Absent => {
                    match create(&ctl, Some(&name), data, hash, sb, root_hash, signature) {
                        Ok(a) => return Ok(a),
                        // Another process made it in between: take that one.
                        Err(e) if matches!(errno(&e.source), libc::EEXIST | libc::EBUSY) => {}
                        Err(e) => return Err(e),
                    }
                }
                Reuse::Retry => {}
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    // A different mapping holds the name (or it is too long): a device of our own.
    create(&ctl, None, data, hash, sb, root_hash, signature)
}

enum Reuse {
    Done(Activated),
    Absent,
    Conflict,
    Retry,
}

fn try_reuse(
    ctl: &Control,
    name: &str,
    sb: &VeritySuperblock,
    root_hash: &[u8],
    signature: Option<KernelSignature<'_>>,
) -> Result<Reuse, DmError> {
    // Only a device marked for deferred removal (as every one of ours and systemd's is while
    // in use) has its mark cancelled while we look, and put back after; a device someone made
    // to last (veritysetup open) is left as it is, whatever we find in it.
    let marked = match ctl.status(name) {
        Ok(info) => info.deferred_remove(),
        Err(e) if errno(&e) == libc::ENXIO => return Ok(Reuse::Absent),
        Err(e) => return Err(err("query a verity device")(e)),
    };
    // Keep it from going away while we take it over.
    if marked {
        match ctl.message(name, "@cancel_deferred_remove") {
            Ok(()) => {}
            Err(e) if matches!(errno(&e), libc::ENXIO | libc::EBUSY) => return Ok(Reuse::Retry),
            Err(e) => return Err(err("cancel the deferred removal of a verity device")(e)),
        }
    }
    // Puts the mark back where there was one: the device goes with its last opener again, as
    // before we looked.
    let put_back = |ctl: &Control| {
        if marked {
            ctl.remove(name, true)
        } else {
            Ok(())
        }
    };
    let (info, targets) = match ctl.table(name, true) {
        Ok(x) => x,
        Err(e) if errno(&e) == libc::ENXIO => return Ok(Reuse::Retry),
        Err(e) => {
            let _ = put_back(ctl);
            return Err(err("read the table of a verity device")(e));
        }
    };
    if !info.has_table() || info.suspended() {
        // Being set up by someone else right now.
        let _ = put_back(ctl);
        return Ok(Reuse::Retry);
    }
    if !same_mapping(&targets, sb, root_hash) {
        let _ = put_back(ctl);
        return Ok(Reuse::Conflict);
    }
    let has_sig = targets[0].params.contains("root_hash_sig_key_desc");
    if signature.is_some_and(|s| s.required) && !has_sig {
        // The kernel must vouch for the signature, and this device's was not checked.
        let _ = put_back(ctl);
        return Ok(Reuse::Conflict);
    }
    let node = match open_node(info.dev, &info.kernel_name()) {
        Ok(fd) => fd,
        Err(e) if matches!(errno(&e), libc::ENOENT | libc::ENXIO | libc::ENODEV) => {
            let _ = put_back(ctl);
            return Ok(Reuse::Retry);
        }
        Err(e) => {
            let _ = put_back(ctl);
            return Err(err("open a verity device")(e));
        }
    };
    put_back(ctl).map_err(err("mark a verity device for deferred removal"))?;
    Ok(Reuse::Done(Activated { node }))
}

fn create(
    ctl: &Control,
    name: Option<&str>,
    data: Region<'_>,
    hash: Region<'_>,
    sb: &VeritySuperblock,
    root_hash: &[u8],
    signature: Option<KernelSignature<'_>>,
) -> Result<Activated, DmError> {
    let opts = LoopOptions {
        read_only: true,
        autoclear: true,
        direct_io: true,
        partscan: false,
        block_size: 0,
    };
    let data_loop = LoopDevice::attach(data.file.as_fd(), data.offset, data.size, &opts)
        .map_err(err("attach a loop device for the verity data"))?;
    let hash_loop = LoopDevice::attach(hash.file.as_fd(), hash.offset, hash.size, &opts)
        .map_err(err("attach a loop device for the verity hash tree"))?;
    let data_dev = data_loop.devnum().map_err(err("stat a loop device"))?;
    let hash_dev = hash_loop.devnum().map_err(err("stat a loop device"))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => format!("loop{}-verity", data_loop.number()),
    };
    let uuid = format!("CRYPT-VERITY-{}-{}", encode_hex(&sb.uuid.0), name);
    let info = ctl
        .create(&name, &uuid, true)
        .map_err(err("create a verity device"))?;
    let fail = |op: &'static str, e: io::Error| {
        let _ = ctl.remove(&name, false);
        DmError {
            op,
            source: e,
            signature_rejected: false,
        }
    };
    let params = table_params(sb, data_dev, hash_dev, root_hash);
    let target = |params: String| Target {
        start: 0,
        length: sb.data_blocks * u64::from(sb.data_block_size) / 512,
        kind: "verity".into(),
        params,
    };
    let mut loaded = false;
    if let Some(sig) = signature {
        let desc = format!("libsysext:{name}");
        let key = ThreadKey::add(&desc, sig.pkcs7);
        let r = match &key {
            Ok(_) => ctl.load(
                &name,
                &[target(format!("{params} 2 root_hash_sig_key_desc {desc}"))],
                true,
            ),
            Err(e) => Err(io::Error::from_raw_os_error(errno(e))),
        };
        drop(key);
        match r {
            Ok(()) => loaded = true,
            Err(e) if sig.required => {
                return Err(DmError {
                    signature_rejected: true,
                    ..fail("have the kernel check the root hash signature of", e)
                })
            }
            // Checked in userspace already: go on without the kernel's check.
            Err(_) => {}
        }
    }
    if !loaded {
        ctl.load(&name, &[target(params)], true)
            .map_err(|e| fail("load the verity table of", e))?;
    }
    ctl.resume(&name)
        .map_err(|e| fail("resume a verity device", e))?;
    let node =
        open_node(info.dev, &info.kernel_name()).map_err(|e| fail("open a verity device", e))?;
    // From here on the device lives as long as someone has it open.
    ctl.remove(&name, true)
        .map_err(|e| fail("mark a verity device for deferred removal", e))?;
    // The mapping holds the loop devices now; they go with it (auto-clear).
    drop(data_loop.into_owned_fd());
    drop(hash_loop.into_owned_fd());
    Ok(Activated { node })
}

/// Whether dm-verity can be set up here (the control node exists; nothing is opened).
pub fn available() -> bool {
    dm::available()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::dps::Guid;

    fn sb() -> VeritySuperblock {
        VeritySuperblock {
            version: 1,
            hash_type: 1,
            uuid: Guid([7; 16]),
            algorithm: "sha256".into(),
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: 300,
            salt: vec![0xab, 0xcd],
        }
    }

    #[test]
    fn the_table_is_what_veritysetup_loads() {
        let rh = [0x11u8; 32];
        let p = table_params(&sb(), libc::makedev(7, 3), libc::makedev(7, 4), &rh);
        assert_eq!(
            p,
            format!("1 7:3 7:4 4096 4096 300 1 sha256 {} abcd", "11".repeat(32))
        );
        let t = Target {
            start: 0,
            length: 2400,
            kind: "verity".into(),
            params: p,
        };
        assert!(same_mapping(std::slice::from_ref(&t), &sb(), &rh));
        assert!(!same_mapping(
            std::slice::from_ref(&t),
            &sb(),
            &[0x12u8; 32]
        ));
        let mut other = sb();
        other.salt.clear();
        assert!(!same_mapping(&[t], &other, &rh));
    }

    #[test]
    fn a_live_table_is_the_same_mapping_only_when_every_verity_field_matches() {
        let rh = [0x11u8; 32];
        let params = table_params(&sb(), libc::makedev(7, 3), libc::makedev(7, 4), &rh);
        let t = |kind: &str, params: &str| Target {
            start: 0,
            length: 2400,
            kind: kind.into(),
            params: params.into(),
        };
        let same = |targets: &[Target]| same_mapping(targets, &sb(), &rh);
        assert!(same(&[t("verity", &params)]));
        // Other devices, upper-case hex and optional arguments after the ten fields: the same.
        let upper = format!(
            "1 8:1 8:2 4096 4096 300 1 SHA256 {} ABCD 1 ignore_corruption",
            "11".repeat(32)
        );
        assert!(same(&[t("verity", &upper)]));
        // Each field that matters, changed.
        let words: Vec<&str> = params.split(' ').collect();
        for (i, other) in [
            (0, "0"),
            (3, "512"),
            (4, "1024"),
            (5, "301"),
            (7, "sha1"),
            (8, "22"),
            (9, "-"),
        ] {
            let mut w = words.clone();
            w[i] = other;
            assert!(!same(&[t("verity", &w.join(" "))]), "field {i} as {other}");
        }
        // The hash start (field 6) and the devices are ours to choose: not compared.
        let mut w = words.clone();
        w[6] = "2";
        assert!(same(&[t("verity", &w.join(" "))]));
        // Not one verity target of ten fields or more.
        assert!(!same(&[]));
        assert!(!same(&[t("verity", &params), t("verity", &params)]));
        assert!(!same(&[t("linear", &params)]));
        assert!(!same(&[t("verity", &words[..9].join(" "))]));
        // An empty salt is written as "-" and compared as such.
        let mut unsalted = sb();
        unsalted.salt.clear();
        let p = table_params(&unsalted, 1, 2, &rh);
        assert!(p.ends_with(" -"), "{p}");
        assert!(same_mapping(&[t("verity", &p)], &unsalted, &rh));
    }

    #[test]
    fn the_hash_tree_starts_at_the_first_hash_block_after_the_superblock() {
        let mut s = sb();
        for (block, start) in [(4096, "1"), (512, "1"), (1024, "1"), (256, "2")] {
            s.hash_block_size = block;
            let p = table_params(&s, 1, 2, &[1]);
            assert_eq!(p.split(' ').nth(6), Some(start), "{block}: {p}");
        }
    }

    #[test]
    fn errors_name_the_step_and_keep_the_errno() {
        let e = err("load the verity table of")(io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(errno(&e.source), libc::EINVAL);
        assert!(!e.signature_rejected);
        assert!(
            e.to_string()
                .starts_with("cannot load the verity table of: "),
            "{e}"
        );
        assert_eq!(errno(&io::Error::other("no errno")), 0);
    }

    #[test]
    fn shared_names_follow_systemd() {
        assert_eq!(shared_name(&[0xab, 0x01]), "ab01-verity");
    }
}
