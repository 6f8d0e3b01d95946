//! The GPT reader and the DPS partition selection, on an in-memory image.
//! Invariants: no panic, no allocation beyond the image size; partitions of an accepted
//! table lie within the image's usable area and do not overlap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysext::testing::image::gpt;

#[path = "common/mem.rs"]
mod mem;
use mem::Mem;

fuzz_target!(|data: &[u8]| {
    let mem = Mem(data);
    let size = data.len() as u64;
    let _ = gpt::is_gpt(&mem, size);
    for ss in [512u32, 4096] {
        let _ = gpt::read_with_sector_size(&mem, size, ss);
    }
    let Ok(table) = gpt::read(&mem, size) else { return };
    let ss = u64::from(table.sector_size);
    let mut ranges = Vec::new();
    for p in &table.partitions {
        assert!(p.first_lba <= p.last_lba);
        assert!(p.first_lba >= table.first_usable_lba && p.last_lba <= table.last_usable_lba);
        assert_eq!(p.offset, p.first_lba * ss);
        assert_eq!(p.size, (p.last_lba - p.first_lba + 1) * ss);
        ranges.push((p.first_lba, p.last_lba));
    }
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "overlap accepted: {ranges:?}");
    }
    for arch in ["x86-64", "arm64", "x86"] {
        let _ = gpt::select(&table, arch);
    }
});
