//! The verity superblock at the start of a hash area.

use super::{HashAlgorithm, VerityError, MAX_SALT, SIGNATURE, SUPERBLOCK_SIZE};
use crate::image::dps::Guid;
use std::io;
use std::os::unix::fs::FileExt;

/// The verity superblock at the start of a hash partition (or `.verity` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeritySuperblock {
    /// Superblock version, 1.
    pub version: u32,
    /// Hash format: 1 normal, 0 Chrome OS.
    pub hash_type: u32,
    /// The UUID of the hash device.
    pub uuid: Guid,
    /// Hash algorithm name, e.g. `sha256`.
    pub algorithm: String,
    /// Size of a data block in bytes.
    pub data_block_size: u32,
    /// Size of a hash block in bytes.
    pub hash_block_size: u32,
    /// Number of data blocks the tree covers.
    pub data_blocks: u64,
    /// The salt hashed before each block.
    pub salt: Vec<u8>,
}

fn block_size_ok(x: u32) -> bool {
    (512..=512 * 1024).contains(&x) && x.is_power_of_two()
}

impl VeritySuperblock {
    /// Parses the 512-byte superblock.
    pub fn parse(b: &[u8]) -> Result<VeritySuperblock, VerityError> {
        let bad = |m: String| VerityError::BadSuperblock(m);
        if b.len() < SUPERBLOCK_SIZE {
            return Err(bad(format!("only {} bytes", b.len())));
        }
        if &b[0..8] != SIGNATURE {
            return Err(bad("no 'verity' signature".into()));
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let version = u32_at(8);
        if version != 1 {
            return Err(bad(format!("unsupported version {version}")));
        }
        let hash_type = u32_at(12);
        if hash_type > 1 {
            return Err(bad(format!("unsupported hash type {hash_type}")));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let alg = &b[32..64];
        let alg_len = alg.iter().position(|&c| c == 0).unwrap_or(alg.len());
        let algorithm = std::str::from_utf8(&alg[..alg_len])
            .map_err(|_| bad("algorithm name is not UTF-8".into()))?
            .to_ascii_lowercase();
        let data_block_size = u32_at(64);
        let hash_block_size = u32_at(68);
        if !block_size_ok(data_block_size) || !block_size_ok(hash_block_size) {
            return Err(bad(format!(
                "invalid block sizes (data {data_block_size}, hash {hash_block_size})"
            )));
        }
        let mut db = [0u8; 8];
        db.copy_from_slice(&b[72..80]);
        let data_blocks = u64::from_le_bytes(db);
        if data_blocks == 0 {
            return Err(bad("zero data blocks".into()));
        }
        let salt_size = usize::from(u16::from_le_bytes([b[80], b[81]]));
        if salt_size > MAX_SALT {
            return Err(bad(format!("salt of {salt_size} bytes is too long")));
        }
        Ok(VeritySuperblock {
            version,
            hash_type,
            uuid: Guid(uuid),
            algorithm,
            data_block_size,
            hash_block_size,
            data_blocks,
            salt: b[88..88 + salt_size].to_vec(),
        })
    }

    /// Reads and parses the superblock at `offset`.
    pub fn read(hash: &impl FileExt, offset: u64) -> Result<VeritySuperblock, VerityError> {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        match hash.read_exact_at(&mut b, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(VerityError::BadSuperblock(
                    "hash area is shorter than a superblock".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        VeritySuperblock::parse(&b)
    }

    /// The 512-byte on-disk form.
    pub fn to_bytes(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        b[0..8].copy_from_slice(SIGNATURE);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.hash_type.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid.0);
        // The field holds 32 bytes, NUL-terminated only when shorter (as cryptsetup reads it).
        let alg = self.algorithm.as_bytes();
        let n = alg.len().min(32);
        b[32..32 + n].copy_from_slice(&alg[..n]);
        b[64..68].copy_from_slice(&self.data_block_size.to_le_bytes());
        b[68..72].copy_from_slice(&self.hash_block_size.to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        let salt = &self.salt[..self.salt.len().min(MAX_SALT)];
        b[80..82].copy_from_slice(&(salt.len() as u16).to_le_bytes());
        b[88..88 + salt.len()].copy_from_slice(salt);
        b
    }

    pub(super) fn algorithm(&self) -> Result<HashAlgorithm, VerityError> {
        HashAlgorithm::from_name(&self.algorithm)
            .ok_or_else(|| VerityError::UnsupportedAlgorithm(self.algorithm.clone()))
    }
}
