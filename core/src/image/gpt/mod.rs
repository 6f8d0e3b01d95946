//! GUID partition table parsing and partition selection by the Discoverable Partitions
//! Specification (DPS), as systemd 257 dissects extension images.
//!
//! [`read`] parses and validates the primary GPT (protective MBR, header and entry array
//! CRC32s, bounds, overlaps) and, when that is broken, the backup GPT at the end of the
//! disk, as libblkid does; it never panics on malformed input. `select` /
//! [`select_with`] then pick the root, usr, verity and signature partitions.
//! [`GptBuilder`] writes small GPT images (used by the tests, handy for building DDIs).
//! One file each: parsing (here), selection (`select.rs`), writing (`builder.rs`).
//!
//! Deliberate difference to libblkid: a partition outside the usable area or overlapping
//! another one makes the whole table invalid instead of being skipped.

use std::io;
use std::os::unix::fs::FileExt;

use super::dps::{self, Guid, PartitionKind};

#[cfg(any(test, feature = "testing"))]
mod builder;
mod select;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "testing"))]
pub use builder::{BuilderPartition, GptBuilder};
#[cfg(any(test, feature = "testing"))]
pub use select::{select, verity_uuids};
pub use select::{select_with, Part, SelectError, SelectOptions, Selection};

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
    let h = Header::check(&hdr, ss, at_lba, total_lbas)?;
    let array = read_region(reader, size, h.array_pos, h.array_len)?
        .ok_or(GptError::Truncated("partition entry array"))?;
    let stored = le_u32(&hdr, 88);
    let computed = crc32fast::hash(&array);
    if stored != computed {
        return Err(GptError::EntryArrayCrc { stored, computed });
    }
    let partitions = h.entries(&array, ss)?;
    check_no_overlap(&partitions)?;
    Ok(GptTable {
        sector_size,
        disk_guid: h.disk_guid,
        first_usable_lba: h.first_usable,
        last_usable_lba: h.last_usable,
        partitions,
        primary_broken: None,
    })
}

/// What a GPT header says, once checked: the usable area and where the entries are.
struct Header {
    disk_guid: Guid,
    first_usable: u64,
    last_usable: u64,
    entry_size: u32,
    /// The entry array's byte offset and length.
    array_pos: u64,
    array_len: u64,
}

impl Header {
    /// Check the header sector `hdr` read at `at_lba` of a disk of `total_lbas` sectors of
    /// `ss` bytes: its size and CRC, its own position, the usable area, the entry array.
    fn check(hdr: &[u8], ss: u64, at_lba: u64, total_lbas: u64) -> Result<Header, GptError> {
        let header_size = le_u32(hdr, 12);
        if header_size < MIN_HEADER_SIZE || u64::from(header_size) > ss {
            return Err(GptError::BadHeader(format!(
                "header size {header_size} out of range"
            )));
        }
        let stored = le_u32(hdr, 16);
        let mut h = hdr[..header_size as usize].to_vec();
        h[16..20].fill(0);
        let computed = crc32fast::hash(&h);
        if stored != computed {
            return Err(GptError::HeaderCrc { stored, computed });
        }
        let my_lba = le_u64(hdr, 24);
        if my_lba != at_lba {
            return Err(GptError::BadHeader(format!(
                "the header at LBA {at_lba} claims to be at LBA {my_lba}"
            )));
        }
        let first_usable = le_u64(hdr, 40);
        let last_usable = le_u64(hdr, 48);
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
        let mut header = Header {
            disk_guid: guid_at(hdr, 56),
            first_usable,
            last_usable,
            entry_size: le_u32(hdr, 84),
            array_pos: 0,
            array_len: 0,
        };
        header.check_entry_array(le_u64(hdr, 72), le_u32(hdr, 80), ss)?;
        Ok(header)
    }

    /// Check the entry array of `n_entries` entries at `entries_lba`: the entry size, the
    /// array's size, and that it lies neither on the header nor in the usable area.
    fn check_entry_array(
        &mut self,
        entries_lba: u64,
        n_entries: u32,
        ss: u64,
    ) -> Result<(), GptError> {
        let entry_size = self.entry_size;
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
        if array_len > 0 && entries_lba <= self.last_usable && array_end_lba > self.first_usable {
            return Err(GptError::BadHeader(
                "partition entry array overlaps the usable area".into(),
            ));
        }
        self.array_pos = array_pos;
        self.array_len = array_len;
        Ok(())
    }

    /// The used entries of the entry array, each inside the usable area.
    fn entries(&self, array: &[u8], ss: u64) -> Result<Vec<GptPartition>, GptError> {
        let mut partitions = Vec::new();
        for (i, e) in array.chunks_exact(self.entry_size as usize).enumerate() {
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
            if first < self.first_usable || last > self.last_usable {
                return Err(GptError::OutOfBounds {
                    number,
                    first,
                    last,
                    first_usable: self.first_usable,
                    last_usable: self.last_usable,
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
        Ok(partitions)
    }
}

/// No two partitions share a sector (the higher number is named as the overlapping one).
fn check_no_overlap(partitions: &[GptPartition]) -> Result<(), GptError> {
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
    Ok(())
}
