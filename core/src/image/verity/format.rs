//! Building a hash tree bit-identical to `veritysetup format` (for tests).

use super::tree::Tree;
use super::{HashAlgorithm, VerityError, VeritySuperblock, SUPERBLOCK_SIZE};
use crate::image::dps::Guid;
use std::os::unix::fs::FileExt;

/// Parameters for [`format`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg(any(test, feature = "testing"))]
pub struct FormatParams {
    /// The hash algorithm.
    pub algorithm: HashAlgorithm,
    /// Size of a data block in bytes.
    pub data_block_size: u32,
    /// Size of a hash block in bytes.
    pub hash_block_size: u32,
    /// The salt.
    pub salt: Vec<u8>,
    /// The UUID written to the superblock.
    pub uuid: Guid,
    /// 1 (normal) or 0 (Chrome OS).
    pub hash_type: u32,
}

#[cfg(any(test, feature = "testing"))]
impl Default for FormatParams {
    /// veritysetup's defaults (sha256, 4 KiB blocks, format 1) with an empty salt.
    fn default() -> FormatParams {
        FormatParams {
            algorithm: HashAlgorithm::Sha256,
            data_block_size: 4096,
            hash_block_size: 4096,
            salt: Vec::new(),
            uuid: Guid::NIL,
            hash_type: 1,
        }
    }
}

/// Builds the hash area (superblock plus tree, as `veritysetup format` writes it) for the
/// data region `[data_offset, data_offset + data_size)` in memory. The tree covers
/// `data_size / data_block_size` blocks. Returns the hash area and the root hash.
#[cfg(any(test, feature = "testing"))]
pub fn format(
    data: &impl FileExt,
    data_offset: u64,
    data_size: u64,
    params: &FormatParams,
) -> Result<(Vec<u8>, Vec<u8>), VerityError> {
    let sb = VeritySuperblock {
        version: 1,
        hash_type: params.hash_type,
        uuid: params.uuid,
        algorithm: params.algorithm.name().to_string(),
        data_block_size: params.data_block_size,
        hash_block_size: params.hash_block_size,
        data_blocks: data_size / u64::from(params.data_block_size.max(1)),
        salt: params.salt.clone(),
    };
    // Validate through the parser.
    let sb = VeritySuperblock::parse(&sb.to_bytes())?;
    let tree = Tree::new(&sb)?;
    let dbs = tree.dbs as usize;
    let hbs = tree.hbs as usize;
    let area_len = usize::try_from(tree.hash_area_size())
        .map_err(|_| VerityError::BadSuperblock("hash tree too large to build in memory".into()))?;
    let mut area = vec![0u8; area_len];
    area[..SUPERBLOCK_SIZE].copy_from_slice(&sb.to_bytes());

    // Digests of the level below, starting with the data blocks.
    let mut block = vec![0u8; dbs];
    let mut digests: Vec<Vec<u8>> = Vec::with_capacity(tree.data_blocks as usize);
    for i in 0..tree.data_blocks {
        data.read_exact_at(&mut block, data_offset + i * tree.dbs)?;
        digests.push(tree.digest(&block));
    }
    if tree.levels.is_empty() {
        return Ok((area, digests.swap_remove(0)));
    }
    for &(start, n) in &tree.levels {
        let mut next = Vec::with_capacity(n as usize);
        for b in 0..n as usize {
            let at = (start as usize + b) * hbs;
            let out = &mut area[at..at + hbs];
            let first = b * tree.per_block as usize;
            let last = (first + tree.per_block as usize).min(digests.len());
            for (k, d) in digests[first..last].iter().enumerate() {
                out[k * tree.slot..k * tree.slot + d.len()].copy_from_slice(d);
            }
            next.push(tree.digest(out));
        }
        digests = next;
    }
    Ok((area, digests.swap_remove(0)))
}
