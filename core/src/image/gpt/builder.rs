//! Writing small GPT disk images in memory (tests, and handy for building DDIs).

use super::{Guid, MIN_HEADER_SIZE, SIGNATURE};

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
