//! GUID partition table parsing and partition selection by the Discoverable Partitions
//! Specification (DPS), as systemd 257 dissects extension images.
//!
//! [`read`] parses and validates the primary GPT (protective MBR, header and entry array
//! CRC32s, bounds, overlaps) and, when that is broken, the backup GPT at the end of the
//! disk, as libblkid does; it never panics on malformed input. [`select`] /
//! [`select_with`] then pick the root, usr, verity and signature partitions.
//! [`GptBuilder`] writes small GPT images (used by the tests, handy for building DDIs).
//!
//! Deliberate difference to libblkid: a partition outside the usable area or overlapping
//! another one makes the whole table invalid instead of being skipped.

use std::cmp::Ordering;
use std::io;
use std::os::unix::fs::FileExt;

use super::dps::{self, Guid, PartitionKind};
use super::policy::{ImagePolicy, PartitionDesignator, PolicyFlags, PolicyViolation};

/// Sector sizes probed for the GPT header, in this order.
pub const SECTOR_SIZES: [u32; 4] = [512, 1024, 2048, 4096];

/// GPT attribute bit 63: do not auto-discover this partition.
pub const FLAG_NO_AUTO: u64 = 1 << 63;
/// GPT attribute bit 60: mount read-only.
pub const FLAG_READ_ONLY: u64 = 1 << 60;
/// GPT attribute bit 59: grow the file system to the partition size.
pub const FLAG_GROWFS: u64 = 1 << 59;
/// UEFI attribute bit 1 (ESP only): no block I/O protocol, i.e. not to be used.
pub const FLAG_NO_BLOCK_IO_PROTOCOL: u64 = 1 << 1;

const SIGNATURE: &[u8; 8] = b"EFI PART";
const MIN_HEADER_SIZE: u32 = 92;
/// Upper bound for the partition entry array, far above anything real (128 × 128 bytes).
const MAX_ENTRY_ARRAY: u64 = 16 << 20;

/// Why a partition table was rejected. Each message names the part: the GPT header, the
/// partition entry array, or partition N.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GptError {
    /// Reading the table failed.
    #[error("cannot read the partition table: {0}")]
    Io(#[from] io::Error),
    /// No GPT header signature.
    #[error("no GPT header found")]
    NotGpt,
    /// A GPT header without a protective MBR in front of it.
    #[error("GPT header found, but no protective MBR in the first sector")]
    NoProtectiveMbr,
    /// The image ends before a part of the table.
    #[error("the GPT {0} lies past the end of the image (truncated image)")]
    Truncated(&'static str),
    /// A field of the header is out of range.
    #[error("GPT header: {0}")]
    BadHeader(String),
    /// The header's CRC32 does not match.
    #[error("GPT header: CRC32 mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    HeaderCrc {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the header's bytes.
        computed: u32,
    },
    /// The entry array's CRC32 does not match.
    #[error(
        "GPT partition entry array: CRC32 mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    EntryArrayCrc {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the array's bytes.
        computed: u32,
    },
    /// An entry ends before it starts.
    #[error("GPT entry of partition {number}: first LBA {first} is after last LBA {last}")]
    InvalidRange {
        /// Partition number.
        number: u32,
        /// First LBA.
        first: u64,
        /// Last LBA.
        last: u64,
    },
    /// An entry lies outside the usable area.
    #[error("GPT entry of partition {number}: LBA {first}..={last} lies outside the usable area (LBA {first_usable}..={last_usable})")]
    OutOfBounds {
        /// Partition number.
        number: u32,
        /// First LBA.
        first: u64,
        /// Last LBA.
        last: u64,
        /// First usable LBA of the header.
        first_usable: u64,
        /// Last usable LBA of the header.
        last_usable: u64,
    },
    /// Two entries overlap.
    #[error("GPT entry of partition {number}: overlaps partition {other}")]
    Overlap {
        /// The later partition.
        number: u32,
        /// The one it overlaps.
        other: u32,
    },
    /// Neither the primary nor the backup table is usable.
    #[error("primary table: {primary}; backup table: {backup}")]
    BothBroken {
        /// Why the primary table was rejected.
        primary: Box<GptError>,
        /// Why the backup table was rejected.
        backup: Box<GptError>,
    },
}

/// One used entry of the partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based index in the entry array (the kernel's partition number).
    pub number: u32,
    /// The partition type GUID (what the partition is for).
    pub type_guid: Guid,
    /// The unique partition GUID.
    pub uuid: Guid,
    /// First sector (LBA) of the partition.
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    /// Attribute bits.
    pub flags: u64,
    /// The partition name (label), decoded from UTF-16LE up to the first NUL.
    pub name: String,
    /// Byte offset from the start of the disk.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A validated GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptTable {
    /// Sector size in bytes (512 or 4096), as detected from the header's position.
    pub sector_size: u32,
    /// The disk GUID.
    pub disk_guid: Guid,
    /// First sector partitions may use.
    pub first_usable_lba: u64,
    /// Last sector partitions may use (inclusive).
    pub last_usable_lba: u64,
    /// The used entries, in entry-array order.
    pub partitions: Vec<GptPartition>,
    /// Set when the primary table was broken and the backup one (at the end of the disk)
    /// was used instead, as libblkid does: why the primary was rejected.
    pub primary_broken: Option<String>,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Guid::from_gpt_bytes(a)
}

/// Reads `len` bytes at `pos`; `Ok(None)` if the image (of `size` bytes) ends before.
fn read_region(
    reader: &impl FileExt,
    size: u64,
    pos: u64,
    len: u64,
) -> io::Result<Option<Vec<u8>>> {
    match pos.checked_add(len) {
        Some(end) if end <= size => {}
        _ => return Ok(None),
    }
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; len];
    match reader.read_exact_at(&mut buf, pos) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// The sector size at which a GPT header signature sits at LBA 1, if any.
pub fn probe_sector_size(reader: &impl FileExt, size: u64) -> io::Result<Option<u32>> {
    for ss in SECTOR_SIZES {
        if read_region(reader, size, u64::from(ss), 8)?.as_deref() == Some(&SIGNATURE[..]) {
            return Ok(Some(ss));
        }
    }
    Ok(None)
}

/// The sector size at which a backup GPT header signature sits in the last sector behind a
/// protective MBR, if any (for a disk whose primary header is gone).
fn probe_backup_sector_size(reader: &impl FileExt, size: u64) -> io::Result<Option<u32>> {
    match read_region(reader, size, 0, 512)? {
        Some(mbr) if has_protective_mbr(&mbr) => {}
        _ => return Ok(None),
    }
    for ss in SECTOR_SIZES {
        let ss64 = u64::from(ss);
        let last = size / ss64;
        if last < 3 {
            continue;
        }
        if read_region(reader, size, (last - 1) * ss64, 8)?.as_deref() == Some(&SIGNATURE[..]) {
            return Ok(Some(ss));
        }
    }
    Ok(None)
}

/// Whether the image carries a GPT header signature (at LBA 1 for any probed sector size,
/// or a backup one in the last sector behind a protective MBR). This does not validate
/// the table; use [`read`] for that.
pub fn is_gpt(reader: &impl FileExt, size: u64) -> io::Result<bool> {
    Ok(probe_sector_size(reader, size)?.is_some()
        || probe_backup_sector_size(reader, size)?.is_some())
}

fn has_protective_mbr(mbr: &[u8]) -> bool {
    if mbr[510] != 0x55 || mbr[511] != 0xAA {
        return false;
    }
    (0..4).any(|i| mbr[446 + 16 * i + 4] == 0xEE)
}

/// Reads and validates the GPT of an image of `size` bytes, probing the sector size. A
/// broken primary table is replaced by the backup one at the end of the disk when that is
/// intact (see [`GptTable::primary_broken`]).
pub fn read(reader: &impl FileExt, size: u64) -> Result<GptTable, GptError> {
    match probe_sector_size(reader, size)? {
        Some(ss) => read_with_sector_size(reader, size, ss),
        None => match probe_backup_sector_size(reader, size)? {
            Some(ss) => match read_header_at(reader, size, ss, Which::Backup) {
                Ok(mut t) => {
                    t.primary_broken = Some(GptError::NotGpt.to_string());
                    Ok(t)
                }
                Err(GptError::Io(e)) => Err(GptError::Io(e)),
                Err(backup) => Err(GptError::BothBroken {
                    primary: Box::new(GptError::NotGpt),
                    backup: Box::new(backup),
                }),
            },
            None => Err(GptError::NotGpt),
        },
    }
}

/// Reads and validates the GPT of an image of `size` bytes with a known sector size, the
/// primary table or, when that is broken, the backup one.
pub fn read_with_sector_size(
    reader: &impl FileExt,
    size: u64,
    sector_size: u32,
) -> Result<GptTable, GptError> {
    match read_header_at(reader, size, sector_size, Which::Primary) {
        Ok(t) => Ok(t),
        Err(GptError::Io(e)) => Err(GptError::Io(e)),
        Err(primary) => match read_header_at(reader, size, sector_size, Which::Backup) {
            Ok(mut t) => {
                t.primary_broken = Some(primary.to_string());
                Ok(t)
            }
            Err(GptError::Io(e)) => Err(GptError::Io(e)),
            Err(backup) => Err(GptError::BothBroken {
                primary: Box::new(primary),
                backup: Box::new(backup),
            }),
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Primary,
    Backup,
}

fn read_header_at(
    reader: &impl FileExt,
    size: u64,
    sector_size: u32,
    which: Which,
) -> Result<GptTable, GptError> {
    if !sector_size.is_power_of_two() || !(512..=65536).contains(&sector_size) {
        return Err(GptError::BadHeader(format!(
            "unsupported sector size {sector_size}"
        )));
    }
    let ss = u64::from(sector_size);
    let total_lbas = size / ss;
    let at_lba = match which {
        Which::Primary => 1,
        Which::Backup if total_lbas >= 3 => total_lbas - 1,
        Which::Backup => return Err(GptError::Truncated("backup header")),
    };
    let mbr = read_region(reader, size, 0, 512)?.ok_or(GptError::NotGpt)?;
    let hdr = read_region(reader, size, at_lba * ss, ss)?.ok_or(GptError::Truncated("header"))?;
    if &hdr[0..8] != SIGNATURE {
        return Err(GptError::NotGpt);
    }
    if !has_protective_mbr(&mbr) {
        return Err(GptError::NoProtectiveMbr);
    }

    let header_size = le_u32(&hdr, 12);
    if header_size < MIN_HEADER_SIZE || u64::from(header_size) > ss {
        return Err(GptError::BadHeader(format!(
            "header size {header_size} out of range"
        )));
    }
    let stored = le_u32(&hdr, 16);
    let mut h = hdr[..header_size as usize].to_vec();
    h[16..20].fill(0);
    let computed = crc32fast::hash(&h);
    if stored != computed {
        return Err(GptError::HeaderCrc { stored, computed });
    }

    let my_lba = le_u64(&hdr, 24);
    if my_lba != at_lba {
        return Err(GptError::BadHeader(format!(
            "the header at LBA {at_lba} claims to be at LBA {my_lba}"
        )));
    }
    let first_usable = le_u64(&hdr, 40);
    let last_usable = le_u64(&hdr, 48);
    if first_usable > last_usable {
        return Err(GptError::BadHeader(format!(
            "first usable LBA {first_usable} is after last usable LBA {last_usable}"
        )));
    }
    if first_usable < 2 {
        return Err(GptError::BadHeader(format!(
            "first usable LBA {first_usable} overlaps the header"
        )));
    }
    if last_usable >= total_lbas {
        return Err(GptError::Truncated("usable area"));
    }
    let disk_guid = guid_at(&hdr, 56);
    let entries_lba = le_u64(&hdr, 72);
    let n_entries = le_u32(&hdr, 80);
    let entry_size = le_u32(&hdr, 84);
    if entry_size < 128 || !entry_size.is_power_of_two() {
        return Err(GptError::BadHeader(format!(
            "partition entry size {entry_size} is invalid"
        )));
    }
    let array_len = u64::from(n_entries) * u64::from(entry_size);
    if array_len > MAX_ENTRY_ARRAY {
        return Err(GptError::BadHeader(format!(
            "{n_entries} partition entries are too many"
        )));
    }
    if entries_lba < 2 {
        return Err(GptError::BadHeader(format!(
            "partition entries at LBA {entries_lba} overlap the header"
        )));
    }
    let array_pos = entries_lba.checked_mul(ss).ok_or_else(|| {
        GptError::BadHeader(format!("partition entry LBA {entries_lba} out of range"))
    })?;
    let array_sectors = array_len.div_ceil(ss);
    let array_end_lba = entries_lba.saturating_add(array_sectors); // exclusive
    if array_len > 0 && entries_lba <= last_usable && array_end_lba > first_usable {
        return Err(GptError::BadHeader(
            "partition entry array overlaps the usable area".into(),
        ));
    }
    let array = read_region(reader, size, array_pos, array_len)?
        .ok_or(GptError::Truncated("partition entry array"))?;
    let stored = le_u32(&hdr, 88);
    let computed = crc32fast::hash(&array);
    if stored != computed {
        return Err(GptError::EntryArrayCrc { stored, computed });
    }

    let mut partitions = Vec::new();
    for (i, e) in array.chunks_exact(entry_size as usize).enumerate() {
        let type_guid = guid_at(e, 0);
        if type_guid.is_nil() {
            continue;
        }
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let first = le_u64(e, 32);
        let last = le_u64(e, 40);
        if first > last {
            return Err(GptError::InvalidRange {
                number,
                first,
                last,
            });
        }
        if first < first_usable || last > last_usable {
            return Err(GptError::OutOfBounds {
                number,
                first,
                last,
                first_usable,
                last_usable,
            });
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        // Bounded by last_usable < size / ss, so no overflow.
        partitions.push(GptPartition {
            number,
            type_guid,
            uuid: guid_at(e, 16),
            first_lba: first,
            last_lba: last,
            flags: le_u64(e, 48),
            name: String::from_utf16_lossy(&units),
            offset: first * ss,
            size: (last - first + 1) * ss,
        });
    }

    let mut order: Vec<&GptPartition> = partitions.iter().collect();
    order.sort_by_key(|p| (p.first_lba, p.number));
    let mut reach: Option<&GptPartition> = None; // the partition reaching furthest so far
    for p in order {
        if let Some(r) = reach {
            if p.first_lba <= r.last_lba {
                return Err(GptError::Overlap {
                    number: p.number.max(r.number),
                    other: p.number.min(r.number),
                });
            }
        }
        if reach.is_none_or(|r| p.last_lba > r.last_lba) {
            reach = Some(p);
        }
    }

    Ok(GptTable {
        sector_size,
        disk_guid,
        first_usable_lba: first_usable,
        last_usable_lba: last_usable,
        partitions,
        primary_broken: None,
    })
}

// ---------------------------------------------------------------------------------------
// DPS selection
// ---------------------------------------------------------------------------------------

/// A partition chosen by [`select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Partition number (1-based).
    pub number: u32,
    /// What its type GUID stands for.
    pub kind: PartitionKind,
    /// The architecture of an architecture-specific DPS type.
    pub arch: Option<&'static str>,
    /// The unique partition GUID.
    pub uuid: Guid,
    /// The partition name (label).
    pub label: String,
    /// Byte offset in the image.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// GPT attribute bits.
    pub flags: u64,
}

impl Part {
    fn from_gpt(p: &GptPartition, kind: PartitionKind) -> Part {
        let arch = match kind {
            PartitionKind::Dps { arch, .. } => arch,
            PartitionKind::LinuxGeneric => None,
        };
        Part {
            number: p.number,
            kind,
            arch,
            uuid: p.uuid,
            label: p.name.clone(),
            offset: p.offset,
            size: p.size,
            flags: p.flags,
        }
    }

    /// The DPS read-only flag (bit 60) is set.
    pub fn read_only(&self) -> bool {
        self.flags & FLAG_READ_ONLY != 0
    }

    /// The DPS growfs flag (bit 59) is set.
    pub fn growfs(&self) -> bool {
        self.flags & FLAG_GROWFS != 0
    }

    /// Whether this is a generic Linux partition (used as root for lack of a DPS one).
    pub fn is_generic(&self) -> bool {
        self.kind == PartitionKind::LinuxGeneric
    }
}

/// The partitions to use from an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The root partition. A lone generic Linux partition is used as root when no DPS root
    /// or usr partition exists (then `root == generic`).
    pub root: Option<Part>,
    /// The usr partition.
    pub usr: Option<Part>,
    /// The verity hash tree of the root partition.
    pub root_verity: Option<Part>,
    /// The root hash signature of the root partition.
    pub root_verity_sig: Option<Part>,
    /// The verity hash tree of the usr partition.
    pub usr_verity: Option<Part>,
    /// The root hash signature of the usr partition.
    pub usr_verity_sig: Option<Part>,
    /// The generic Linux partition adopted as root, if that happened.
    pub generic: Option<Part>,
    /// Other DPS partitions found and allowed by the policy (home, srv, esp, …).
    pub other: Vec<(PartitionDesignator, Part)>,
    /// Designators of partitions that exist but are ignored by the policy.
    pub ignored: Vec<PartitionDesignator>,
}

impl Selection {
    /// The selected partition for a designator.
    pub fn get(&self, d: PartitionDesignator) -> Option<&Part> {
        use PartitionDesignator as D;
        match d {
            D::Root => self.root.as_ref(),
            D::Usr => self.usr.as_ref(),
            D::RootVerity => self.root_verity.as_ref(),
            D::RootVeritySig => self.root_verity_sig.as_ref(),
            D::UsrVerity => self.usr_verity.as_ref(),
            D::UsrVeritySig => self.usr_verity_sig.as_ref(),
            _ => self.other.iter().find(|(od, _)| *od == d).map(|(_, p)| p),
        }
    }

    fn slot(&mut self, d: PartitionDesignator) -> Option<&mut Option<Part>> {
        use PartitionDesignator as D;
        match d {
            D::Root => Some(&mut self.root),
            D::Usr => Some(&mut self.usr),
            D::RootVerity => Some(&mut self.root_verity),
            D::RootVeritySig => Some(&mut self.root_verity_sig),
            D::UsrVerity => Some(&mut self.usr_verity),
            D::UsrVeritySig => Some(&mut self.usr_verity_sig),
            _ => None,
        }
    }

    /// The protection state of a partition as the policy check sees it before file systems
    /// are probed: a data partition with verity is `verity` (plus a signature partition:
    /// `signed`), without it `encrypted` or `unprotected` (not known yet); an ignored one is
    /// `unused`, a missing one `absent`.
    pub fn protection(&self, d: PartitionDesignator) -> PolicyFlags {
        if self.get(d).is_some() {
            match d.verity() {
                Some(v) if self.get(v).is_some() => {
                    if d.verity_sig().is_some_and(|s| self.get(s).is_some()) {
                        PolicyFlags::SIGNED
                    } else {
                        PolicyFlags::VERITY
                    }
                }
                _ => PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED,
            }
        } else if self.ignored.contains(&d) {
            PolicyFlags::UNUSED
        } else {
            PolicyFlags::ABSENT
        }
    }
}

/// Why no usable set of partitions could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// A verity partition without the data partition it protects.
    #[error("a {designator} partition exists, but no matching {data} partition")]
    VerityWithoutData {
        /// The verity partition found.
        designator: PartitionDesignator,
        /// The data partition missing.
        data: PartitionDesignator,
    },
    /// A signature partition without the verity partition it signs.
    #[error("a {designator} partition exists, but no matching verity partition")]
    SignatureWithoutVerity {
        /// The signature partition found.
        designator: PartitionDesignator,
    },
    /// The root and usr partitions are for different CPU architectures.
    #[error(
        "the root partition ({root}) and the usr partition ({usr}) are for different architectures"
    )]
    ArchitectureMismatch {
        /// The root partition's architecture.
        root: &'static str,
        /// The usr partition's architecture.
        usr: &'static str,
    },
    /// Several generic Linux partitions, none of them designated.
    #[error("more than one generic Linux partition and no root or usr partition")]
    MultipleGeneric,
    /// Neither a root nor a usr partition.
    #[error("no root or usr partition found")]
    NoRootOrUsr,
    /// Verity partitions for both root and usr.
    #[error("verity partitions for both root and usr found")]
    MultipleVerity,
    /// A verity-protected root next to a usr partition.
    #[error("a verity-protected root partition cannot be combined with a usr partition")]
    VerityRootWithUsr,
    /// No partition that can be used at all.
    #[error("no usable partition found")]
    NoPartitions,
    /// The partitions do not satisfy the image policy.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
}

impl SelectError {
    /// The errno systemd reports in the same situation.
    pub fn errno(&self) -> i32 {
        match self {
            SelectError::VerityWithoutData { .. }
            | SelectError::SignatureWithoutVerity { .. }
            | SelectError::ArchitectureMismatch { .. }
            | SelectError::VerityRootWithUsr => libc::EADDRNOTAVAIL,
            SelectError::MultipleGeneric | SelectError::MultipleVerity => libc::ENOTUNIQ,
            SelectError::NoRootOrUsr => libc::ENXIO,
            SelectError::NoPartitions => libc::ENOMSG,
            SelectError::Policy(_) => libc::ERFKILL,
        }
    }
}

/// Options for [`select_with`].
#[derive(Debug, Clone, Copy)]
pub struct SelectOptions<'a> {
    /// systemd's name of the native architecture (`x86-64`, `arm64`, …).
    pub native_arch: &'a str,
    /// The image policy; `None` allows everything (`*`).
    pub policy: Option<&'a ImagePolicy>,
    /// A known root hash and the partition it is for (root or usr): only the data partition
    /// whose UUID is its first 128 bits and the verity partition whose UUID is its last 128
    /// bits are considered (DPS UUID pairing).
    pub root_hash: Option<(&'a [u8], PartitionDesignator)>,
    /// Use a lone generic Linux partition as root when no root/usr partition exists.
    pub allow_generic: bool,
    /// Fail unless a root (or usr) partition is found.
    pub require_root: bool,
    /// Orders partition labels of the same type and architecture; the greatest wins.
    /// Defaults to a simple version comparison.
    pub label_cmp: fn(&str, &str) -> Ordering,
}

impl<'a> SelectOptions<'a> {
    /// What systemd-sysext uses: generic root allowed, root or usr required, no policy.
    pub fn new(native_arch: &'a str) -> SelectOptions<'a> {
        SelectOptions {
            native_arch,
            policy: None,
            root_hash: None,
            allow_generic: true,
            require_root: true,
            label_cmp: version_cmp,
        }
    }
}

/// A small version comparison for partition labels: digit runs compare numerically, other
/// bytes bytewise; a longer string wins when one is a prefix of the other.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = trim_zeros(&a[si..i]);
            let nb = trim_zeros(&b[sj..j]);
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = a[i].cmp(&b[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let k = d.iter().position(|&c| c != b'0').unwrap_or(d.len());
    &d[k..]
}

/// The data and verity partition UUIDs a root hash pairs with (first and last 128 bits).
pub fn verity_uuids(root_hash: &[u8]) -> Option<(Guid, Guid)> {
    if root_hash.len() < 16 {
        return None;
    }
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(&root_hash[..16]);
    b.copy_from_slice(&root_hash[root_hash.len() - 16..]);
    Some((Guid(a), Guid(b)))
}

/// Architecture preference: native > secondary > any other (equal).
fn arch_rank(arch: Option<&str>, native: &str) -> u8 {
    match arch {
        Some(a) if a == native => 2,
        Some(a) if dps::secondary_arch(native) == Some(a) => 1,
        _ => 0,
    }
}

/// Selects root/usr/verity partitions with systemd-sysext's settings and no policy.
pub fn select(table: &GptTable, native_arch: &str) -> Result<Selection, SelectError> {
    select_with(table, &SelectOptions::new(native_arch))
}

/// Selects the partitions of a DDI.
///
/// Rules (systemd 257 dissection): partitions with the no-auto flag (bit 63) are skipped (for
/// the ESP: the no-block-IO-protocol flag); /var partitions are skipped (systemd only accepts
/// one whose UUID is derived from the machine ID). Per designator the native architecture beats
/// the secondary one, which beats any other (so a foreign-architecture root is used when it is
/// the only one); among equals, root/usr/verity partitions go by the newest label, others by
/// table order. Verity and signature partitions prefer the architecture of the selected data
/// partition. Partitions the policy says to ignore are recorded in `ignored`; one that must be
/// absent is an error. Finally the protection level of every designator is checked against the
/// policy.
pub fn select_with(table: &GptTable, opts: &SelectOptions<'_>) -> Result<Selection, SelectError> {
    use PartitionDesignator as D;

    let allow_all = ImagePolicy::allow_all();
    let policy = opts.policy.unwrap_or(&allow_all);
    let pairing = opts
        .root_hash
        .and_then(|(h, d)| verity_uuids(h).map(|u| (u, d)));
    let wanted_uuid = |d: D| -> Option<Guid> {
        let ((data, verity), for_d) = pairing?;
        if d == for_d {
            Some(data)
        } else if Some(d) == for_d.verity() {
            Some(verity)
        } else {
            None
        }
    };

    let mut sel = Selection::default();
    let mut generic: Option<Part> = None;
    let mut multiple_generic = false;

    // Candidates per designator, in table order.
    let mut candidates: Vec<(D, Part)> = Vec::new();
    for p in &table.partitions {
        let Some(kind) = dps::classify(p.type_guid) else {
            continue;
        };
        let d = match kind {
            PartitionKind::LinuxGeneric => {
                if p.flags & FLAG_NO_AUTO != 0 {
                    continue;
                }
                if generic.is_some() {
                    multiple_generic = true;
                } else {
                    generic = Some(Part::from_gpt(p, kind));
                }
                continue;
            }
            PartitionKind::Dps { designator, .. } => designator,
        };
        match d {
            D::Esp => {
                if p.flags & FLAG_NO_BLOCK_IO_PROTOCOL != 0 {
                    continue;
                }
            }
            D::Var => continue,
            _ => {
                if p.flags & FLAG_NO_AUTO != 0 {
                    continue;
                }
            }
        }
        if let Some(u) = wanted_uuid(d) {
            if p.uuid != u {
                continue;
            }
        }
        candidates.push((d, Part::from_gpt(p, kind)));
    }

    let is_protection = |d: D| d.verity_data().is_some() || d.verity_sig_data().is_some();
    // Data partitions first, so that verity partitions can prefer their architecture.
    for pass in [false, true] {
        for (d, part) in candidates.iter().filter(|(d, _)| is_protection(*d) == pass) {
            let (d, part) = (*d, part.clone());
            if !policy.may_use(d)? {
                if !sel.ignored.contains(&d) {
                    sel.ignored.push(d);
                }
                continue;
            }
            let data_arch = d
                .verity_data()
                .or(d.verity_sig_data())
                .and_then(|data| sel.get(data))
                .and_then(|p| p.arch);
            let better = |new: &Part, old: &Part| -> bool {
                let rank = |p: &Part| {
                    let same = data_arch.is_some() && p.arch == data_arch;
                    (same, arch_rank(p.arch, opts.native_arch))
                };
                match rank(new).cmp(&rank(old)) {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    Ordering::Equal => {
                        d.is_versioned()
                            && (opts.label_cmp)(&new.label, &old.label) == Ordering::Greater
                    }
                }
            };
            if let Some(slot) = sel.slot(d) {
                match slot {
                    Some(old) if !better(&part, old) => {}
                    _ => *slot = Some(part),
                }
            } else if !sel.other.iter().any(|(od, _)| *od == d) {
                // First one wins for everything else.
                sel.other.push((d, part));
            }
        }
    }
    // A partition that was ignored but also found (e.g. a second one) counts as found.
    let found: Vec<D> = D::ALL
        .into_iter()
        .filter(|d| sel.get(*d).is_some())
        .collect();
    sel.ignored.retain(|d| !found.contains(d));

    for (data, verity, sig) in [
        (D::Root, D::RootVerity, D::RootVeritySig),
        (D::Usr, D::UsrVerity, D::UsrVeritySig),
    ] {
        if sel.get(data).is_none() {
            for v in [verity, sig] {
                if sel.get(v).is_some() {
                    return Err(SelectError::VerityWithoutData {
                        designator: v,
                        data,
                    });
                }
            }
        }
        if sel.get(sig).is_some() && sel.get(verity).is_none() {
            return Err(SelectError::SignatureWithoutVerity { designator: sig });
        }
    }
    if let (Some(r), Some(u)) = (&sel.root, &sel.usr) {
        if let (Some(ra), Some(ua)) = (r.arch, u.arch) {
            if ra != ua {
                return Err(SelectError::ArchitectureMismatch { root: ra, usr: ua });
            }
        }
    }

    let usr_hash = matches!(opts.root_hash, Some((_, D::Usr)));
    if sel.root.is_none() && sel.usr.is_none() && opts.allow_generic && !usr_hash {
        if multiple_generic {
            return Err(SelectError::MultipleGeneric);
        }
        if let Some(g) = generic {
            if policy.may_use(D::Root)? {
                sel.root = Some(g.clone());
                sel.generic = Some(g);
            } else if !sel.ignored.contains(&D::Root) {
                sel.ignored.push(D::Root);
            }
        }
    }

    if opts.require_root && sel.root.is_none() && sel.usr.is_none() {
        return Err(SelectError::NoRootOrUsr);
    }
    if sel.root_verity.is_some() {
        if sel.usr_verity.is_some() {
            return Err(SelectError::MultipleVerity);
        }
        if sel.usr.is_some() {
            return Err(SelectError::VerityRootWithUsr);
        }
    }

    let mut any = false;
    for d in D::ALL {
        policy.check_found(d, sel.protection(d))?;
        if let Some(p) = sel.get(d) {
            any = true;
            policy.check_gpt_flags(d, p.flags)?;
        }
    }
    if !any {
        return Err(SelectError::NoPartitions);
    }
    Ok(sel)
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// A partition for [`GptBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderPartition {
    /// The partition type GUID.
    pub type_guid: Guid,
    /// The unique partition GUID.
    pub uuid: Guid,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub flags: u64,
    /// The partition name (label).
    pub name: String,
    /// Written at the partition's start (truncated to the partition size).
    pub contents: Vec<u8>,
}

/// Writes GPT disk images in memory: protective MBR, primary and backup headers and entry
/// arrays with correct CRCs (128 entries of 128 bytes). No validation is done, so broken
/// tables (overlaps, out-of-range entries) can be written on purpose.
#[derive(Debug, Clone)]
pub struct GptBuilder {
    /// Sector size in bytes.
    pub sector_size: u32,
    /// Size of the disk image in bytes.
    pub disk_size: u64,
    /// The disk GUID.
    pub disk_guid: Guid,
    /// The partitions, in entry-array order.
    pub partitions: Vec<BuilderPartition>,
    /// Where [`GptBuilder::append`] places the next partition.
    next_lba: u64,
}

const BUILDER_ENTRIES: u64 = 128;
const BUILDER_ENTRY_SIZE: u64 = 128;

impl GptBuilder {
    /// An empty table for a disk of `disk_size` bytes (a multiple of the sector size).
    pub fn new(sector_size: u32, disk_size: u64) -> GptBuilder {
        let mut b = GptBuilder {
            sector_size,
            disk_size,
            disk_guid: Guid::must("6f0c2a4e-0000-4000-8000-00000000d15c"),
            partitions: Vec::new(),
            next_lba: 0,
        };
        b.next_lba = b.first_usable_lba().next_multiple_of(b.align_lbas());
        b
    }

    fn ss(&self) -> u64 {
        u64::from(self.sector_size)
    }

    fn align_lbas(&self) -> u64 {
        (4096 / self.ss()).max(1)
    }

    fn array_sectors(&self) -> u64 {
        (BUILDER_ENTRIES * BUILDER_ENTRY_SIZE).div_ceil(self.ss())
    }

    /// First usable LBA: after the header and the entry array.
    pub fn first_usable_lba(&self) -> u64 {
        2 + self.array_sectors()
    }

    /// Last usable LBA: before the backup entry array and header.
    pub fn last_usable_lba(&self) -> u64 {
        self.disk_size / self.ss() - 2 - self.array_sectors()
    }

    /// Adds a partition with explicit LBAs.
    pub fn partition(mut self, p: BuilderPartition) -> GptBuilder {
        self.partitions.push(p);
        self
    }

    /// Adds a partition of `size` bytes (rounded up to sectors, at least one) after the
    /// previously appended one, 4 KiB aligned. The partition UUID is derived from its number.
    pub fn append(
        self,
        type_guid: Guid,
        size: u64,
        name: &str,
        flags: u64,
        contents: Vec<u8>,
    ) -> GptBuilder {
        let n = self.partitions.len() as u8 + 1;
        let mut uuid = Guid::must("00000000-0000-4000-8000-000000000000");
        uuid.0[15] = n;
        uuid.0[0] = 0x5a;
        self.append_with_uuid(type_guid, uuid, size, name, flags, contents)
    }

    /// Like [`GptBuilder::append`] with an explicit partition UUID.
    pub fn append_with_uuid(
        mut self,
        type_guid: Guid,
        uuid: Guid,
        size: u64,
        name: &str,
        flags: u64,
        contents: Vec<u8>,
    ) -> GptBuilder {
        let sectors = size.div_ceil(self.ss()).max(1);
        let first = self.next_lba;
        let last = first + sectors - 1;
        self.next_lba = (last + 1).next_multiple_of(self.align_lbas());
        self.partitions.push(BuilderPartition {
            type_guid,
            uuid,
            first_lba: first,
            last_lba: last,
            flags,
            name: name.to_string(),
            contents,
        });
        self
    }

    fn entry_array(&self) -> Vec<u8> {
        let mut a = vec![0u8; (BUILDER_ENTRIES * BUILDER_ENTRY_SIZE) as usize];
        for (i, p) in self
            .partitions
            .iter()
            .enumerate()
            .take(BUILDER_ENTRIES as usize)
        {
            let e = &mut a[i * 128..(i + 1) * 128];
            e[0..16].copy_from_slice(&p.type_guid.to_gpt_bytes());
            e[16..32].copy_from_slice(&p.uuid.to_gpt_bytes());
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            e[48..56].copy_from_slice(&p.flags.to_le_bytes());
            for (k, u) in p.name.encode_utf16().take(36).enumerate() {
                e[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
            }
        }
        a
    }

    fn header(&self, my_lba: u64, alt_lba: u64, entries_lba: u64, array_crc: u32) -> Vec<u8> {
        let mut h = vec![0u8; self.ss() as usize];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&MIN_HEADER_SIZE.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alt_lba.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable_lba().to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable_lba().to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.to_gpt_bytes());
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(BUILDER_ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(BUILDER_ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..MIN_HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The disk image.
    pub fn build(&self) -> Vec<u8> {
        let ss = self.ss();
        let total = self.disk_size / ss;
        let mut img = vec![0u8; (total * ss) as usize];
        // Protective MBR: one 0xEE partition covering the disk.
        let e = &mut img[446..462];
        e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
        e[4] = 0xEE;
        e[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        e[12..16].copy_from_slice(&u32::try_from(total - 1).unwrap_or(u32::MAX).to_le_bytes());
        img[510] = 0x55;
        img[511] = 0xAA;

        let array = self.entry_array();
        let crc = crc32fast::hash(&array);
        let last = total - 1;
        let backup_array_lba = last - self.array_sectors();
        let put = |img: &mut Vec<u8>, lba: u64, data: &[u8]| {
            let at = (lba * ss) as usize;
            img[at..at + data.len()].copy_from_slice(data);
        };
        put(&mut img, 1, &self.header(1, last, 2, crc));
        put(&mut img, 2, &array);
        put(&mut img, backup_array_lba, &array);
        put(&mut img, last, &self.header(last, 1, backup_array_lba, crc));
        for p in &self.partitions {
            if p.contents.is_empty() || p.last_lba < p.first_lba {
                continue;
            }
            let at = (p.first_lba * ss) as usize;
            let room = ((p.last_lba - p.first_lba + 1) * ss) as usize;
            let n = p.contents.len().min(room).min(img.len().saturating_sub(at));
            img[at..at + n].copy_from_slice(&p.contents[..n]);
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::dps::{type_guid, LINUX_GENERIC};
    use crate::image::testutil::{pseudo_random, Mem};
    use PartitionDesignator as D;

    const MIB: u64 = 1 << 20;

    fn t(d: D, arch: &str) -> Guid {
        type_guid(d, Some(arch)).unwrap()
    }

    /// The primary table only (the checks of one header and its entries).
    fn parse(img: Vec<u8>) -> Result<GptTable, GptError> {
        let n = img.len() as u64;
        let mem = Mem(img);
        match probe_sector_size(&mem, n).unwrap() {
            Some(ss) => read_header_at(&mem, n, ss, Which::Primary),
            None => Err(GptError::NotGpt),
        }
    }

    /// What [`read`] makes of an image: the primary table, else the backup one.
    fn read_any(img: Vec<u8>) -> Result<GptTable, GptError> {
        let n = img.len() as u64;
        read(&Mem(img), n)
    }

    #[test]
    fn a_broken_primary_table_is_replaced_by_the_backup() {
        let good = GptBuilder::new(512, 4 * MIB)
            .append(t(D::Root, "x86-64"), 65536, "root", 0, vec![])
            .append(t(D::Usr, "x86-64"), 65536, "usr", 0, vec![]);
        let img = good.build();
        let want = read_any(img.clone()).unwrap();
        assert_eq!(want.primary_broken, None);
        let n = img.len();
        // Primary header CRC, primary entry array CRC, primary header zeroed (no signature
        // at LBA 1 at all): the backup gives the same partitions, and says why.
        let mut crc = img.clone();
        crc[512 + 40] ^= 1;
        let mut entries = img.clone();
        entries[1024 + 60] ^= 1;
        let mut zeroed = img.clone();
        zeroed[512..1024].fill(0);
        for (what, bad, why) in [
            ("header CRC", crc, "GPT header: CRC32 mismatch"),
            (
                "entry CRC",
                entries,
                "GPT partition entry array: CRC32 mismatch",
            ),
            ("zeroed header", zeroed, "no GPT header found"),
        ] {
            let t = read_any(bad.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(t.partitions, want.partitions, "{what}");
            let p = t
                .primary_broken
                .unwrap_or_else(|| panic!("{what}: not noted"));
            assert!(p.starts_with(why), "{what}: {p}");
            // Broken at both ends: both reasons are given.
            let mut both = bad;
            both[n - 512 + 40] ^= 1;
            let e = read_any(both).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, GptError::BothBroken { .. }), "{what}: {msg}");
            assert!(
                msg.starts_with(&format!("primary table: {why}"))
                    && msg.contains("; backup table: GPT header: CRC32 mismatch"),
                "{what}: {msg}"
            );
        }
        // A backup header that claims another place is not taken.
        let mut moved = img.clone();
        moved[512 + 40] ^= 1;
        moved[n - 512 + 24..n - 512 + 32].copy_from_slice(&5u64.to_le_bytes());
        let e = read_any(moved).unwrap_err();
        assert!(e.to_string().contains("backup table: GPT header"), "{e}");
    }

    fn table(b: GptBuilder) -> GptTable {
        parse(b.build()).unwrap()
    }

    /// Recomputes both CRCs of the primary header after a test edited it or the array.
    fn fix_crcs(img: &mut [u8], ss: usize) {
        let n = u32::from_le_bytes(img[ss + 80..ss + 84].try_into().unwrap()) as usize;
        let es = u32::from_le_bytes(img[ss + 84..ss + 88].try_into().unwrap()) as usize;
        let lba = u64::from_le_bytes(img[ss + 72..ss + 80].try_into().unwrap()) as usize;
        let range = lba
            .checked_mul(ss)
            .and_then(|a| Some((a, a.checked_add(n.checked_mul(es)?)?)))
            .filter(|&(_, b)| b <= img.len());
        if let Some((a, b)) = range {
            let crc = crc32fast::hash(&img[a..b]);
            img[ss + 88..ss + 92].copy_from_slice(&crc.to_le_bytes());
        }
        img[ss + 16..ss + 20].fill(0);
        let crc = crc32fast::hash(&img[ss..ss + 92]);
        img[ss + 16..ss + 20].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn parses_512_and_4096() {
        for ss in [512u32, 4096] {
            let b = GptBuilder::new(ss, 8 * MIB)
                .append(
                    t(D::Root, "x86-64"),
                    100_000,
                    "root-x86-64",
                    0,
                    b"hello".to_vec(),
                )
                .append(
                    t(D::RootVerity, "x86-64"),
                    8192,
                    "verity",
                    FLAG_READ_ONLY,
                    vec![],
                );
            let img = b.build();
            let tab = parse(img.clone()).unwrap();
            assert_eq!(tab.sector_size, ss);
            assert_eq!(tab.partitions.len(), 2);
            let p = &tab.partitions[0];
            assert_eq!(p.number, 1);
            assert_eq!(p.type_guid, t(D::Root, "x86-64"));
            assert_eq!(p.name, "root-x86-64");
            assert_eq!(p.offset % 4096, 0);
            assert!(p.size >= 100_000 && p.size < 100_000 + u64::from(ss));
            assert_eq!(&img[p.offset as usize..p.offset as usize + 5], b"hello");
            let v = &tab.partitions[1];
            assert_eq!(v.number, 2);
            assert_eq!(v.flags, FLAG_READ_ONLY);
            assert!(v.offset >= p.offset + p.size);
            assert_eq!(tab.disk_guid, b.disk_guid);
            assert!(is_gpt(&Mem(img.clone()), img.len() as u64).unwrap());
            assert_eq!(
                probe_sector_size(&Mem(img.clone()), img.len() as u64).unwrap(),
                Some(ss)
            );
        }
    }

    #[test]
    fn empty_slots_keep_numbers() {
        let mut b = GptBuilder::new(512, 4 * MIB)
            .append(t(D::Root, "x86-64"), 4096, "a", 0, vec![])
            .append(t(D::Usr, "x86-64"), 4096, "b", 0, vec![]);
        b.partitions[0].type_guid = Guid::NIL;
        let tab = table(b);
        assert_eq!(tab.partitions.len(), 1);
        assert_eq!(tab.partitions[0].number, 2);
    }

    #[test]
    fn rejects_corruption() {
        let good = GptBuilder::new(512, 4 * MIB)
            .append(t(D::Root, "x86-64"), 65536, "root", 0, vec![])
            .append(t(D::Usr, "x86-64"), 65536, "usr", 0, vec![]);
        let img = good.build();
        parse(img.clone()).unwrap();

        // Header CRC.
        let mut bad = img.clone();
        bad[512 + 40] ^= 1;
        assert!(matches!(parse(bad), Err(GptError::HeaderCrc { .. })));
        // Entry array CRC.
        let mut bad = img.clone();
        bad[1024 + 60] ^= 1;
        let e = parse(bad).unwrap_err();
        assert!(matches!(e, GptError::EntryArrayCrc { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with("GPT partition entry array: CRC32 mismatch"));
        // No protective MBR.
        let mut bad = img.clone();
        bad[446 + 4] = 0x83;
        assert!(matches!(parse(bad), Err(GptError::NoProtectiveMbr)));
        let mut bad = img.clone();
        bad[511] = 0;
        assert!(matches!(parse(bad), Err(GptError::NoProtectiveMbr)));
        // Truncated files.
        assert!(matches!(
            parse(img[..600].to_vec()),
            Err(GptError::Truncated("header"))
        ));
        assert!(matches!(
            parse(img[..4096].to_vec()),
            Err(GptError::Truncated("usable area"))
        ));
        assert!(matches!(
            parse(img[..2 * MIB as usize].to_vec()),
            Err(GptError::Truncated("usable area"))
        ));
        assert!(matches!(parse(img[..100].to_vec()), Err(GptError::NotGpt)));
        assert!(matches!(parse(Vec::new()), Err(GptError::NotGpt)));
        // Garbage appended is fine.
        let mut longer = img.clone();
        longer.extend_from_slice(&[0xAB; 8192]);
        parse(longer).unwrap();
        // Not a GPT at all.
        assert!(matches!(parse(vec![0; 65536]), Err(GptError::NotGpt)));
        // Bad header size, with a correct CRC.
        let mut bad = img.clone();
        bad[512 + 12..512 + 16].copy_from_slice(&600u32.to_le_bytes());
        assert!(matches!(parse(bad), Err(GptError::BadHeader(_))));
        // Absurd entry count, with correct CRCs.
        let mut bad = img.clone();
        bad[512 + 80..512 + 84].copy_from_slice(&u32::MAX.to_le_bytes());
        bad[512 + 16..512 + 20].fill(0);
        let c = crc32fast::hash(&bad[512..512 + 92]);
        bad[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
        assert!(matches!(parse(bad), Err(GptError::BadHeader(_))));
    }

    #[test]
    fn rejects_bad_partitions() {
        let base = || GptBuilder::new(4096, 4 * MIB);
        let part = |first, last| BuilderPartition {
            type_guid: LINUX_GENERIC,
            uuid: Guid::must("11111111-2222-4333-8444-555555555555"),
            first_lba: first,
            last_lba: last,
            flags: 0,
            name: String::new(),
            contents: vec![],
        };
        let fu = base().first_usable_lba();
        let lu = base().last_usable_lba();

        let e = parse(
            base()
                .partition(part(fu, fu + 10))
                .partition(part(fu + 5, fu + 20))
                .build(),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                GptError::Overlap {
                    number: 2,
                    other: 1
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "GPT entry of partition 2: overlaps partition 1"
        );
        // Contained in another, not adjacent in start order.
        let e = parse(
            base()
                .partition(part(fu + 50, fu + 60))
                .partition(part(fu, fu + 100))
                .partition(part(fu + 20, fu + 30))
                .build(),
        )
        .unwrap_err();
        assert!(matches!(e, GptError::Overlap { .. }), "{e}");
        // Touching is fine.
        parse(
            base()
                .partition(part(fu, fu + 10))
                .partition(part(fu + 11, fu + 20))
                .build(),
        )
        .unwrap();
        // Past the end of the disk / usable area.
        let e = parse(base().partition(part(fu, lu + 1)).build()).unwrap_err();
        assert!(matches!(e, GptError::OutOfBounds { number: 1, .. }), "{e}");
        let e = parse(base().partition(part(lu + 100, lu + 1000)).build()).unwrap_err();
        assert!(matches!(e, GptError::OutOfBounds { .. }), "{e}");
        // Inside the header area.
        let e = parse(base().partition(part(1, 3)).build()).unwrap_err();
        assert!(matches!(e, GptError::OutOfBounds { .. }), "{e}");
        // first > last.
        let e = parse(base().partition(part(fu + 10, fu + 5)).build()).unwrap_err();
        assert!(matches!(e, GptError::InvalidRange { number: 1, .. }), "{e}");
        // Usable area past the end of the disk (with valid CRCs).
        let mut img = base().build();
        img[4096 + 48..4096 + 56].copy_from_slice(&10_000u64.to_le_bytes());
        fix_crcs(&mut img, 4096);
        assert!(matches!(
            parse(img),
            Err(GptError::Truncated("usable area"))
        ));
    }

    #[test]
    fn never_panics_on_mutations() {
        let img = GptBuilder::new(512, MIB)
            .append(t(D::Root, "x86-64"), 4096, "root", 0, vec![])
            .append(t(D::RootVerity, "x86-64"), 4096, "v", 0, vec![])
            .build();
        // Flip bytes all over the metadata area; re-fix CRCs half of the time, so that the
        // semantic checks get exercised too.
        let noise = pseudo_random(40_000, 7);
        for i in 0..20_000 {
            let mut m = img.clone();
            let pos = (usize::from(noise[2 * i]) << 8 | usize::from(noise[2 * i + 1])) % (512 * 34);
            m[pos] ^= noise[(i * 3) % noise.len()] | 1;
            if i % 2 == 0 {
                fix_crcs(&mut m, 512);
            }
            let n = m.len() as u64;
            let _ = read(&Mem(m.clone()), n);
            let _ = read(&Mem(m), n / 2);
        }
        for seed in 0..200 {
            let junk = pseudo_random(70_000, seed);
            let _ = parse(junk);
        }
    }

    #[test]
    fn sfdisk_cross_check() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        if Command::new("sfdisk").arg("--version").output().is_err() {
            eprintln!("sfdisk not available, skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(16 * MIB).unwrap();
        drop(f);
        let script = format!(
            "label: gpt\nfirst-lba: 2048\n\
             start=2048, size=4096, type={}, name=\"usr-a\", attrs=\"GUID:60\"\n\
             start=8192, size=2048, type={}, uuid=11112222-3333-4444-5555-666677778888\n\
             size=1024, type={}, attrs=\"GUID:63\"\n",
            t(D::Usr, "arm64"),
            t(D::UsrVerity, "arm64"),
            LINUX_GENERIC
        );
        let mut child = Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        let file = std::fs::File::open(&path).unwrap();
        let tab = read(&file, 16 * MIB).unwrap();
        assert_eq!(tab.sector_size, 512);
        assert_eq!(tab.partitions.len(), 3);
        let p = &tab.partitions[0];
        assert_eq!(
            (p.type_guid, p.offset, p.size, p.flags, p.name.as_str()),
            (
                t(D::Usr, "arm64"),
                2048 * 512,
                4096 * 512,
                FLAG_READ_ONLY,
                "usr-a"
            )
        );
        assert_eq!(
            tab.partitions[1].uuid.to_string(),
            "11112222-3333-4444-5555-666677778888"
        );
        assert_eq!(tab.partitions[2].flags, FLAG_NO_AUTO);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!(sel.usr.as_ref().unwrap().number, 1);
        assert_eq!(sel.usr.as_ref().unwrap().arch, Some("arm64"));
        assert_eq!(sel.usr_verity.as_ref().unwrap().number, 2);
        assert!(sel.generic.is_none());
    }

    // --- selection -----------------------------------------------------------------------

    fn ddi(parts: &[(Guid, &str, u64)]) -> GptTable {
        let mut b = GptBuilder::new(512, 8 * MIB);
        for (g, name, flags) in parts {
            b = b.append(*g, 65536, name, *flags, vec![]);
        }
        table(b)
    }

    fn num(p: &Option<Part>) -> Option<u32> {
        p.as_ref().map(|p| p.number)
    }

    #[test]
    fn selects_native_root_and_verity() {
        let tab = ddi(&[
            (t(D::Root, "x86-64"), "root", 0),
            (t(D::RootVerity, "x86-64"), "v", 0),
            (t(D::RootVeritySig, "x86-64"), "s", 0),
        ]);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!(
            (
                num(&sel.root),
                num(&sel.root_verity),
                num(&sel.root_verity_sig)
            ),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(sel.root.as_ref().unwrap().arch, Some("x86-64"));
        assert_eq!(sel.protection(D::Root), PolicyFlags::SIGNED);
        assert_eq!(sel.protection(D::Usr), PolicyFlags::ABSENT);
    }

    #[test]
    fn prefers_native_over_foreign_and_uses_foreign_alone() {
        let dual = ddi(&[
            (t(D::Root, "arm64"), "a", 0),
            (t(D::RootVerity, "arm64"), "av", 0),
            (t(D::Root, "x86-64"), "x", 0),
            (t(D::RootVerity, "x86-64"), "xv", 0),
        ]);
        let sel = select(&dual, "x86-64").unwrap();
        assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(3), Some(4)));
        let sel = select(&dual, "arm64").unwrap();
        assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(1), Some(2)));
        // Only foreign: used.
        let foreign = ddi(&[(t(D::Root, "arm64"), "a", 0)]);
        let sel = select(&foreign, "x86-64").unwrap();
        assert_eq!(sel.root.as_ref().unwrap().arch, Some("arm64"));
        // Secondary beats other foreign architectures.
        let tab = ddi(&[(t(D::Root, "arm64"), "a", 0), (t(D::Root, "x86"), "b", 0)]);
        assert_eq!(num(&select(&tab, "x86-64").unwrap().root), Some(2));
    }

    #[test]
    fn verity_follows_data_architecture() {
        // Native root-verity without native root: the verity partition of the root's arch wins.
        let tab = ddi(&[
            (t(D::Root, "arm64"), "a", 0),
            (t(D::RootVerity, "x86-64"), "xv", 0),
            (t(D::RootVerity, "arm64"), "av", 0),
        ]);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(1), Some(3)));
    }

    #[test]
    fn newest_label_wins() {
        let tab = ddi(&[
            (t(D::Usr, "x86-64"), "foo_1.9", 0),
            (t(D::Usr, "x86-64"), "foo_1.10", 0),
            (t(D::Usr, "x86-64"), "foo_1.2", 0),
        ]);
        assert_eq!(num(&select(&tab, "x86-64").unwrap().usr), Some(2));
        assert_eq!(version_cmp("foo_1.10", "foo_1.9"), Ordering::Greater);
        assert_eq!(version_cmp("a", "a"), Ordering::Equal);
        assert_eq!(version_cmp("a1", "a01"), Ordering::Equal);
        assert_eq!(version_cmp("a1b", "a1"), Ordering::Greater);
        // Equal labels: the first one stays.
        let tab = ddi(&[
            (t(D::Usr, "x86-64"), "same", 0),
            (t(D::Usr, "x86-64"), "same", 0),
        ]);
        assert_eq!(num(&select(&tab, "x86-64").unwrap().usr), Some(1));
    }

    #[test]
    fn generic_partition() {
        let tab = ddi(&[(LINUX_GENERIC, "data", 0)]);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!(num(&sel.root), Some(1));
        assert!(sel.root.as_ref().unwrap().is_generic());
        assert_eq!(num(&sel.generic), Some(1));
        // Two generic partitions and nothing else: ambiguous.
        let tab = ddi(&[(LINUX_GENERIC, "a", 0), (LINUX_GENERIC, "b", 0)]);
        let e = select(&tab, "x86-64").unwrap_err();
        assert_eq!(e, SelectError::MultipleGeneric);
        assert_eq!(e.errno(), libc::ENOTUNIQ);
        // A DPS root wins over generic partitions.
        let tab = ddi(&[
            (LINUX_GENERIC, "a", 0),
            (LINUX_GENERIC, "b", 0),
            (t(D::Root, "x86-64"), "r", 0),
        ]);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!(num(&sel.root), Some(3));
        assert!(sel.generic.is_none());
        // Not allowed by the options.
        let tab = ddi(&[(LINUX_GENERIC, "data", 0)]);
        let opts = SelectOptions {
            allow_generic: false,
            ..SelectOptions::new("x86-64")
        };
        assert_eq!(
            select_with(&tab, &opts).unwrap_err(),
            SelectError::NoRootOrUsr
        );
    }

    #[test]
    fn root_and_usr() {
        let tab = ddi(&[
            (t(D::Root, "x86-64"), "r", 0),
            (t(D::Usr, "x86-64"), "u", 0),
            (t(D::Home, "x86-64"), "h", 0),
        ]);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!((num(&sel.root), num(&sel.usr)), (Some(1), Some(2)));
        assert_eq!(sel.other.len(), 1);
        assert_eq!(sel.other[0].0, D::Home);
        // Different architectures.
        let tab = ddi(&[(t(D::Root, "x86-64"), "r", 0), (t(D::Usr, "arm64"), "u", 0)]);
        assert!(matches!(
            select(&tab, "x86-64"),
            Err(SelectError::ArchitectureMismatch {
                root: "x86-64",
                usr: "arm64"
            })
        ));
        // Verity root with a separate usr.
        let tab = ddi(&[
            (t(D::Root, "x86-64"), "r", 0),
            (t(D::RootVerity, "x86-64"), "rv", 0),
            (t(D::Usr, "x86-64"), "u", 0),
        ]);
        assert_eq!(
            select(&tab, "x86-64").unwrap_err(),
            SelectError::VerityRootWithUsr
        );
        let tab = ddi(&[
            (t(D::Root, "x86-64"), "r", 0),
            (t(D::RootVerity, "x86-64"), "rv", 0),
            (t(D::Usr, "x86-64"), "u", 0),
            (t(D::UsrVerity, "x86-64"), "uv", 0),
        ]);
        assert_eq!(
            select(&tab, "x86-64").unwrap_err(),
            SelectError::MultipleVerity
        );
        // Unprotected root with a verity usr is fine.
        let tab = ddi(&[
            (t(D::Root, "x86-64"), "r", 0),
            (t(D::Usr, "x86-64"), "u", 0),
            (t(D::UsrVerity, "x86-64"), "uv", 0),
        ]);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!(num(&sel.usr_verity), Some(3));
        assert_eq!(sel.protection(D::Usr), PolicyFlags::VERITY);
        assert_eq!(
            sel.protection(D::Root),
            PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED
        );
    }

    #[test]
    fn orphaned_verity_is_an_error() {
        let tab = ddi(&[
            (t(D::Usr, "x86-64"), "u", 0),
            (t(D::RootVerity, "x86-64"), "rv", 0),
        ]);
        let e = select(&tab, "x86-64").unwrap_err();
        assert_eq!(
            e,
            SelectError::VerityWithoutData {
                designator: D::RootVerity,
                data: D::Root
            }
        );
        assert_eq!(e.errno(), libc::EADDRNOTAVAIL);
        let tab = ddi(&[
            (t(D::Root, "x86-64"), "r", 0),
            (t(D::RootVeritySig, "x86-64"), "s", 0),
        ]);
        assert_eq!(
            select(&tab, "x86-64").unwrap_err(),
            SelectError::SignatureWithoutVerity {
                designator: D::RootVeritySig
            }
        );
    }

    #[test]
    fn nothing_usable() {
        let tab = ddi(&[(t(D::Home, "x86-64"), "h", 0)]);
        assert_eq!(
            select(&tab, "x86-64").unwrap_err(),
            SelectError::NoRootOrUsr
        );
        let tab = ddi(&[]);
        assert_eq!(
            select(&tab, "x86-64").unwrap_err(),
            SelectError::NoRootOrUsr
        );
        let opts = SelectOptions {
            require_root: false,
            ..SelectOptions::new("x86-64")
        };
        assert_eq!(
            select_with(&tab, &opts).unwrap_err(),
            SelectError::NoPartitions
        );
    }

    #[test]
    fn no_auto_flag_is_honoured() {
        let tab = ddi(&[
            (t(D::Root, "x86-64"), "hidden", FLAG_NO_AUTO),
            (t(D::Root, "arm64"), "shown", 0),
        ]);
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!(num(&sel.root), Some(2));
        let tab = ddi(&[(t(D::Root, "x86-64"), "hidden", FLAG_NO_AUTO)]);
        assert_eq!(
            select(&tab, "x86-64").unwrap_err(),
            SelectError::NoRootOrUsr
        );
        let tab = ddi(&[(LINUX_GENERIC, "g", FLAG_NO_AUTO)]);
        assert_eq!(
            select(&tab, "x86-64").unwrap_err(),
            SelectError::NoRootOrUsr
        );
        // Read-only and growfs are reported, not acted upon.
        let tab = ddi(&[(t(D::Usr, "x86-64"), "u", FLAG_READ_ONLY | FLAG_GROWFS)]);
        let sel = select(&tab, "x86-64").unwrap();
        assert!(sel.usr.as_ref().unwrap().read_only());
        assert!(sel.usr.as_ref().unwrap().growfs());
    }

    #[test]
    fn uuid_pairing() {
        let hash: Vec<u8> = (1..=32).collect();
        let (data_uuid, verity_uuid) = verity_uuids(&hash).unwrap();
        assert_eq!(
            data_uuid.to_string(),
            "01020304-0506-0708-090a-0b0c0d0e0f10"
        );
        assert_eq!(
            verity_uuid.to_string(),
            "11121314-1516-1718-191a-1b1c1d1e1f20"
        );
        let b = GptBuilder::new(512, 8 * MIB)
            .append(t(D::Root, "x86-64"), 65536, "r_2", 0, vec![])
            .append(t(D::RootVerity, "x86-64"), 65536, "v_2", 0, vec![])
            .append_with_uuid(t(D::Root, "x86-64"), data_uuid, 65536, "r_1", 0, vec![])
            .append_with_uuid(
                t(D::RootVerity, "x86-64"),
                verity_uuid,
                65536,
                "v_1",
                0,
                vec![],
            );
        let tab = table(b);
        // Without a hash, the newest label wins.
        let sel = select(&tab, "x86-64").unwrap();
        assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(1), Some(2)));
        let opts = SelectOptions {
            root_hash: Some((&hash, D::Root)),
            ..SelectOptions::new("x86-64")
        };
        let sel = select_with(&tab, &opts).unwrap();
        assert_eq!((num(&sel.root), num(&sel.root_verity)), (Some(3), Some(4)));
    }

    #[test]
    fn policy_during_selection() {
        let signed = ddi(&[
            (t(D::Root, "x86-64"), "r", 0),
            (t(D::RootVerity, "x86-64"), "v", 0),
            (t(D::RootVeritySig, "x86-64"), "s", 0),
            (t(D::Home, "x86-64"), "h", 0),
            (t(D::Esp, "x86-64"), "esp", 0),
        ]);
        let with = |pol: &str| {
            let p = ImagePolicy::parse(pol).unwrap();
            select_with(
                &signed,
                &SelectOptions {
                    policy: Some(&p),
                    ..SelectOptions::new("x86-64")
                },
            )
        };
        let sel = with("root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent").unwrap();
        assert_eq!(sel.protection(D::Root), PolicyFlags::SIGNED);
        assert!(sel.ignored.contains(&D::Home) && sel.ignored.contains(&D::Esp));
        assert!(sel.other.is_empty());
        // root=verity: the signature partition is ignored, verity used.
        let sel = with("root=verity").unwrap();
        assert!(sel.root_verity_sig.is_none());
        assert!(sel.ignored.contains(&D::RootVeritySig));
        assert_eq!(sel.protection(D::Root), PolicyFlags::VERITY);
        // root=unprotected: both verity partitions are ignored.
        let sel = with("root=unprotected").unwrap();
        assert!(sel.root_verity.is_none() && sel.root_verity_sig.is_none());
        assert_eq!(
            sel.protection(D::Root),
            PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED
        );
        // root=signed is satisfied; usr=signed is satisfied by absence? No: absent not allowed.
        with("root=signed").unwrap();
        let e = with("root=signed:usr=signed").unwrap_err();
        assert!(
            matches!(
                e,
                SelectError::Policy(PolicyViolation::Protection {
                    designator: D::Usr,
                    ..
                })
            ),
            "{e}"
        );
        assert_eq!(e.errno(), libc::ERFKILL);
        // Home must be absent.
        let e = with("root=open:home=absent").unwrap_err();
        assert!(
            matches!(
                e,
                SelectError::Policy(PolicyViolation::MustBeAbsent {
                    designator: D::Home,
                    ..
                })
            ),
            "{e}"
        );
        // Deny everything.
        assert!(with("~").is_err());
        // Ignore root (and so its verity partitions): nothing left.
        assert_eq!(with("root=ignore").unwrap_err(), SelectError::NoRootOrUsr);
        // Read-only flag required.
        assert!(matches!(
            with("root=open+read-only-on").unwrap_err(),
            SelectError::Policy(PolicyViolation::PartitionFlag { .. })
        ));

        // An unprotected image fails a verity-only policy.
        let plain = ddi(&[(t(D::Root, "x86-64"), "r", 0)]);
        let p = ImagePolicy::parse("root=verity+signed:usr=verity+signed").unwrap();
        let e = select_with(
            &plain,
            &SelectOptions {
                policy: Some(&p),
                ..SelectOptions::new("x86-64")
            },
        )
        .unwrap_err();
        assert!(matches!(e, SelectError::Policy(_)));
        let p = ImagePolicy::initrd_sysext();
        assert!(select_with(
            &plain,
            &SelectOptions {
                policy: Some(&p),
                ..SelectOptions::new("x86-64")
            }
        )
        .is_err());
        let p = ImagePolicy::sysext_default();
        select_with(
            &plain,
            &SelectOptions {
                policy: Some(&p),
                ..SelectOptions::new("x86-64")
            },
        )
        .unwrap();

        // Generic partition under a policy that ignores root.
        let generic = ddi(&[(LINUX_GENERIC, "g", 0)]);
        let p = ImagePolicy::parse("usr=open").unwrap();
        let e = select_with(
            &generic,
            &SelectOptions {
                policy: Some(&p),
                ..SelectOptions::new("x86-64")
            },
        )
        .unwrap_err();
        assert_eq!(e, SelectError::NoRootOrUsr);
    }
}
