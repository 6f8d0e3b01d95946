//! The hash tree: its shape, and the verification of a data region against it.

use super::{HashAlgorithm, VerityError, VeritySuperblock, SUPERBLOCK_SIZE};
use std::io;
use std::os::unix::fs::FileExt;

/// The shape of a hash tree.
#[derive(Debug, Clone)]
pub(super) struct Tree {
    pub(super) alg: HashAlgorithm,
    pub(super) salt: Vec<u8>,
    pub(super) salt_first: bool,
    pub(super) digest_size: usize,
    /// Bytes per digest slot.
    pub(super) slot: usize,
    pub(super) per_block: u64,
    pub(super) dbs: u64,
    pub(super) hbs: u64,
    pub(super) data_blocks: u64,
    /// Per level (0 = lowest): first hash block (counted from the superblock) and block count.
    pub(super) levels: Vec<(u64, u64)>,
}

impl Tree {
    pub(super) fn new(sb: &VeritySuperblock) -> Result<Tree, VerityError> {
        let alg = sb.algorithm()?;
        let digest_size = alg.digest_size();
        let slot = if sb.hash_type == 1 {
            digest_size.next_power_of_two()
        } else {
            digest_size
        };
        let hbs = u64::from(sb.hash_block_size);
        let fit = hbs / slot as u64;
        if fit < 2 {
            return Err(VerityError::BadSuperblock(format!(
                "hash block size {hbs} too small for {}",
                alg.name()
            )));
        }
        // Largest power of two not above `fit`.
        let bits = 63 - fit.leading_zeros();
        let per_block = 1u64 << bits;
        let data_blocks = sb.data_blocks;
        let mut n_levels = 0u32;
        while bits * n_levels < 64 && (data_blocks - 1) >> (bits * n_levels) != 0 {
            n_levels += 1;
        }
        let mut levels = vec![(0u64, 0u64); n_levels as usize];
        // The tree starts right after the superblock, rounded up to a hash block.
        let mut pos = (SUPERBLOCK_SIZE as u64).div_ceil(hbs);
        for i in (0..n_levels as usize).rev() {
            let shift = bits as u128 * (i as u128 + 1);
            let blocks = if shift >= 64 {
                1
            } else {
                ((u128::from(data_blocks) + (1u128 << shift) - 1) >> shift) as u64
            };
            levels[i] = (pos, blocks);
            pos = pos
                .checked_add(blocks)
                .ok_or_else(|| VerityError::BadSuperblock("hash tree too large".into()))?;
        }
        Ok(Tree {
            alg,
            salt: sb.salt.clone(),
            salt_first: sb.hash_type == 1,
            digest_size,
            slot,
            per_block,
            dbs: u64::from(sb.data_block_size),
            hbs,
            data_blocks,
            levels,
        })
    }

    pub(super) fn digest(&self, block: &[u8]) -> Vec<u8> {
        if self.salt_first {
            self.alg.digest_parts([&self.salt, block])
        } else {
            self.alg.digest_parts([block, &self.salt])
        }
    }

    /// Total size of the hash area (superblock and tree) in bytes.
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn hash_area_size(&self) -> u64 {
        let end = self
            .levels
            .iter()
            .map(|(start, n)| start + n)
            .max()
            .unwrap_or((SUPERBLOCK_SIZE as u64).div_ceil(self.hbs));
        end * self.hbs
    }
}

fn read_hash_block(
    hash: &impl FileExt,
    hash_offset: u64,
    tree: &Tree,
    block: u64,
    buf: &mut [u8],
) -> Result<(), VerityError> {
    let pos = block
        .checked_mul(tree.hbs)
        .and_then(|p| p.checked_add(hash_offset))
        .ok_or(VerityError::HashAreaTruncated { block })?;
    match hash.read_exact_at(buf, pos) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(VerityError::HashAreaTruncated { block })
        }
        Err(e) => Err(e.into()),
    }
}

/// Verifies the data region `[data_offset, data_offset + data_size)` against the hash tree
/// whose superblock is at `hash_offset` of `hash` and against `root_hash`.
///
/// Verification goes top-down, the way the kernel trusts it: the top block against the root
/// hash, then every level against the one above, finally every data block. The first mismatch
/// names the block that is wrong.
#[cfg(any(test, feature = "testing"))]
pub fn verify(
    data: &impl FileExt,
    data_offset: u64,
    data_size: u64,
    hash: &impl FileExt,
    hash_offset: u64,
    root_hash: &[u8],
) -> Result<(), VerityError> {
    let sb = VeritySuperblock::read(hash, hash_offset)?;
    verify_with_superblock(
        &sb,
        data,
        data_offset,
        data_size,
        hash,
        hash_offset,
        root_hash,
    )
}

/// Like [`verify`] with an already parsed superblock.
pub fn verify_with_superblock(
    sb: &VeritySuperblock,
    data: &impl FileExt,
    data_offset: u64,
    data_size: u64,
    hash: &impl FileExt,
    hash_offset: u64,
    root_hash: &[u8],
) -> Result<(), VerityError> {
    let tree = Tree::new(sb)?;
    if root_hash.len() != tree.digest_size {
        return Err(VerityError::RootHashLength {
            algorithm: tree.alg.name().into(),
            expected: tree.digest_size,
            got: root_hash.len(),
        });
    }
    let needed = u128::from(tree.data_blocks) * u128::from(tree.dbs);
    if needed > u128::from(data_size) {
        return Err(VerityError::DataTooSmall {
            needed: u64::try_from(needed).unwrap_or(u64::MAX),
            available: data_size,
        });
    }
    let v = Verifier {
        tree: &tree,
        data,
        data_offset,
        data_size,
        needed: u64::try_from(needed).unwrap_or(u64::MAX),
        hash,
        hash_offset,
    };
    if tree.levels.is_empty() {
        // A single data block: its digest is the root hash.
        let mut block = vec![0u8; tree.dbs as usize];
        v.read_data(0, &mut block)?;
        return if tree.digest(&block) == root_hash {
            Ok(())
        } else {
            Err(VerityError::RootHashMismatch)
        };
    }
    let top = tree.levels.len() - 1;
    let mut parent = vec![0u8; tree.hbs as usize];
    v.read_hash_block(tree.levels[top].0, &mut parent)?;
    if tree.digest(&parent) != root_hash {
        return Err(VerityError::RootHashMismatch);
    }
    for level in (0..=top).rev() {
        v.check_level(level, level == top, &mut parent)?;
    }
    Ok(())
}

/// A data region being verified against its hash tree.
struct Verifier<'a, D, H> {
    tree: &'a Tree,
    data: &'a D,
    data_offset: u64,
    data_size: u64,
    /// The bytes of data the tree covers.
    needed: u64,
    hash: &'a H,
    hash_offset: u64,
}

impl<D: FileExt, H: FileExt> Verifier<'_, D, H> {
    /// Data blocks from `first` on, into `buf`.
    fn read_data(&self, first: u64, buf: &mut [u8]) -> Result<(), VerityError> {
        let too_small = || VerityError::DataTooSmall {
            needed: self.needed,
            available: self.data_size,
        };
        let pos = self
            .data_offset
            .checked_add(first * self.tree.dbs)
            .ok_or_else(too_small)?;
        match self.data.read_exact_at(buf, pos) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(too_small()),
            Err(e) => Err(e.into()),
        }
    }

    /// The hash block at `index` of the hash area.
    fn read_hash_block(&self, index: u64, buf: &mut [u8]) -> Result<(), VerityError> {
        read_hash_block(self.hash, self.hash_offset, self.tree, index, buf)
    }

    /// Check every block below the hash blocks of `level` (hash blocks of the level below,
    /// or for level 0 the data blocks) against its digest there. `parent` holds the
    /// level's first block already when `loaded` (the top level: checked against the root
    /// hash).
    fn check_level(
        &self,
        level: usize,
        loaded: bool,
        parent: &mut [u8],
    ) -> Result<(), VerityError> {
        let tree = self.tree;
        let (dbs, hbs) = (tree.dbs as usize, tree.hbs as usize);
        let (parent_start, _) = tree.levels[level];
        let children = if level == 0 {
            tree.data_blocks
        } else {
            tree.levels[level - 1].1
        };
        let mut loaded: Option<u64> = loaded.then_some(0);
        let mut child = vec![0u8; hbs];
        // Data blocks are read in chunks to save system calls.
        const CHUNK_BLOCKS: u64 = 256;
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_first = 0u64;
        for c in 0..children {
            let pidx = c / tree.per_block;
            if loaded != Some(pidx) {
                self.read_hash_block(parent_start + pidx, parent)?;
                loaded = Some(pidx);
            }
            let entry = (c % tree.per_block) as usize * tree.slot;
            let expected = &parent[entry..entry + tree.digest_size];
            let got = if level == 0 {
                if c == chunk_first + (chunk.len() / dbs) as u64 || chunk.is_empty() {
                    let n = CHUNK_BLOCKS.min(children - c) as usize;
                    chunk.resize(n * dbs, 0);
                    self.read_data(c, &mut chunk)?;
                    chunk_first = c;
                }
                let at = (c - chunk_first) as usize * dbs;
                tree.digest(&chunk[at..at + dbs])
            } else {
                let (child_start, _) = tree.levels[level - 1];
                self.read_hash_block(child_start + c, &mut child)?;
                tree.digest(&child)
            };
            if got != expected {
                return Err(if level == 0 {
                    VerityError::DataBlockMismatch { block: c }
                } else {
                    VerityError::HashBlockMismatch {
                        level: level - 1,
                        block: c,
                    }
                });
            }
        }
        Ok(())
    }
}
