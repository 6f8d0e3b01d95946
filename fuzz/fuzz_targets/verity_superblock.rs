//! The dm-verity superblock and hash tree (`sysext::testing::image::verity`): parsing the superblock of
//! a hash partition, and verifying a data area against a hash tree, both untrusted.
//!
//! The first byte of the input picks the mode:
//! - even: the rest is a hash area (superblock first) that also serves as the data area; it
//!   is parsed and verified against a root hash taken from its last bytes. Invariants: no
//!   panic, no huge allocation; an accepted superblock is within the limits and its on-disk
//!   form (`to_bytes`) parses back to the same superblock.
//! - odd: the next bytes choose the tree's parameters (algorithm, block sizes, format, salt),
//!   the rest is the data. A tree is built with `format` and must verify; a bit flipped in the
//!   covered data or in the tree must make verification fail, one in the data after the
//!   covered blocks must not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysext::testing::image::dps::Guid;
use sysext::testing::image::verity::{
    self, FormatParams, HashAlgorithm, VerityError, VeritySuperblock, SUPERBLOCK_SIZE,
};

#[path = "common/mem.rs"]
mod mem;
use mem::Mem;

fn check_superblock(sb: &VeritySuperblock) {
    assert_eq!(sb.version, 1);
    assert!(sb.hash_type <= 1);
    for bs in [sb.data_block_size, sb.hash_block_size] {
        assert!(
            bs.is_power_of_two() && (512..=512 * 1024).contains(&bs),
            "{sb:?}"
        );
    }
    assert!(sb.data_blocks > 0 && sb.salt.len() <= 256);
    let again = VeritySuperblock::parse(&sb.to_bytes())
        .unwrap_or_else(|e| panic!("to_bytes of {sb:?} does not parse: {e}"));
    assert_eq!(&again, sb, "superblock round trip");
}

fn raw(data: &[u8]) {
    let Ok(sb) = VeritySuperblock::parse(data) else {
        return;
    };
    check_superblock(&sb);
    let m = Mem(data);
    let read = VeritySuperblock::read(&m, 0).expect("read after parse");
    assert_eq!(read, sb);
    let Some(alg) = HashAlgorithm::from_name(&sb.algorithm) else {
        return;
    };
    // Keep the work per input small: the data area is the input, so the tree can only cover
    // a few blocks before the data runs out (checked before anything is hashed).
    let n = alg.digest_size();
    let root = &data[data.len() - n.min(data.len() - SUPERBLOCK_SIZE)..];
    let size = data.len() as u64;
    for root in [root, &data[SUPERBLOCK_SIZE - n..SUPERBLOCK_SIZE]] {
        let r = verity::verify_with_superblock(&sb, &m, 0, size, &m, 0, root);
        if root.len() != n {
            assert!(
                matches!(
                    r,
                    Err(VerityError::RootHashLength { .. } | VerityError::BadSuperblock(_))
                ),
                "{r:?}"
            );
        }
    }
    let _ = verity::verify(&m, 0, size, &m, SUPERBLOCK_SIZE as u64, &data[..n]);
}

fn built(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let (p, rest) = data.split_at(6);
    let algorithm = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha224,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ][usize::from(p[0] & 3)];
    let data_block_size = 512u32 << (p[0] >> 2 & 3);
    let hash_block_size = 512u32 << (p[0] >> 4 & 3);
    let hash_type = u32::from(p[0] >> 6 & 1);
    let salt_len = usize::from(p[1] & 63).min(rest.len());
    let (salt, data) = rest.split_at(salt_len);
    let params = FormatParams {
        algorithm,
        data_block_size,
        hash_block_size,
        salt: salt.to_vec(),
        uuid: Guid([p[1]; 16]),
        hash_type,
    };
    let dbs = data_block_size as usize;
    let blocks = data.len() / dbs;
    let covered = blocks * dbs;
    let r = verity::format(&Mem(data), 0, data.len() as u64, &params);
    if blocks == 0 {
        assert!(r.is_err(), "a tree of no data blocks was built");
        return;
    }
    let (area, root) = r.unwrap_or_else(|e| panic!("format {params:?}: {e}"));
    assert_eq!(root.len(), algorithm.digest_size());
    let sb = VeritySuperblock::parse(&area).expect("format's superblock parses");
    check_superblock(&sb);
    assert_eq!(sb.data_blocks, blocks as u64);
    assert_eq!(area.len() % hash_block_size as usize, 0);
    let size = data.len() as u64;
    verity::verify(&Mem(data), 0, size, &Mem(&area), 0, &root).unwrap_or_else(|e| {
        panic!("fresh tree does not verify ({params:?}, {blocks} blocks): {e}")
    });

    // One flipped bit, where the input says.
    let pick = usize::from(u16::from_le_bytes([p[2], p[3]]));
    let bit = 1u8 << (p[4] & 7);
    let mut d = data.to_vec();
    let at = pick % d.len();
    d[at] ^= bit;
    let r = verity::verify(&Mem(&d), 0, size, &Mem(&area), 0, &root);
    if at < covered {
        assert!(
            r.is_err(),
            "flip in data byte {at} (covered {covered}) not detected"
        );
    } else {
        assert!(r.is_ok(), "flip in uncovered byte {at}: {r:?}");
    }
    // The tree: everything after the superblock's block.
    let hbs = hash_block_size as usize;
    if area.len() > hbs {
        let mut a = area.clone();
        let at = hbs + pick % (area.len() - hbs);
        a[at] ^= bit;
        let r = verity::verify(&Mem(data), 0, size, &Mem(&a), 0, &root);
        assert!(r.is_err(), "flip in tree byte {at} not detected");
    }
    let mut r2 = root.clone();
    r2[usize::from(p[5]) % root.len()] ^= bit;
    assert!(verity::verify(&Mem(data), 0, size, &Mem(&area), 0, &r2).is_err());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(rest);
    } else {
        built(&rest[..rest.len().min(64 * 1024)]);
    }
});
