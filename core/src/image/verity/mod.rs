//! dm-verity in userspace: the on-disk superblock, hash tree verification and building
//! (bit-identical to `veritysetup format`), and the DPS verity signature partition.
//!
//! Tree layout (hash format version 1, as written by veritysetup): the hash area starts with
//! a 512-byte superblock, padded to one hash block. The tree follows, top level first. Level
//! 0 holds one digest per data block, level `n + 1` one digest per hash block of level `n`,
//! up to a level that fits into a single block. Every digest is `hash(salt || block)` and
//! takes a power-of-two slot (a SHA-256 digest takes 32 bytes), each hash block holds a
//! power-of-two number of slots and is zero-padded at the end. The root hash is the digest
//! of the single top-level block (of the only data block when there is just one).
//! Format version 0 (Chrome OS) appends the salt instead and packs digests without padding.
//!
//! One file per job: the superblock (`superblock`), the hash tree and its verification
//! (`tree`), the tree builder for tests (`format`), the signature partition (`signature`).

#[cfg(any(test, feature = "testing"))]
mod format;
mod signature;
mod superblock;
#[cfg(test)]
mod tests;
mod tree;

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use std::io;

#[cfg(any(test, feature = "testing"))]
pub use format::{format, FormatParams};
#[cfg(any(test, feature = "testing"))]
pub use signature::{decode_base64, parse_signature};
pub use signature::{decode_hex, encode_hex, read_signature, VeritySignature};
pub use superblock::VeritySuperblock;
#[cfg(any(test, feature = "testing"))]
pub use tree::verify;
pub use tree::verify_with_superblock;

/// The superblock magic.
pub const SIGNATURE: &[u8; 8] = b"verity\0\0";
/// On-disk size of the superblock.
pub const SUPERBLOCK_SIZE: usize = 512;
/// Largest verity signature partition that is read (as systemd).
pub const MAX_SIGNATURE_SIZE: u64 = 4 << 20;
const MAX_SALT: usize = 256;

/// Verification failures.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    /// Reading the data or hash area failed.
    #[error("I/O error during verity verification: {0}")]
    Io(#[from] io::Error),
    /// The verity superblock is malformed (the reason).
    #[error("invalid verity superblock: {0}")]
    BadSuperblock(String),
    /// The hash algorithm named by the superblock is not supported.
    #[error("unsupported verity hash algorithm '{0}'")]
    UnsupportedAlgorithm(String),
    /// The data area is smaller than the hash tree covers.
    #[error(
        "data area too small: the hash tree covers {needed} bytes, only {available} available"
    )]
    DataTooSmall {
        /// Bytes the hash tree covers.
        needed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// The hash area ends before the hash tree does.
    #[error("hash area is truncated: block {block} of the hash tree is missing")]
    HashAreaTruncated {
        /// The first missing hash block.
        block: u64,
    },
    /// The root hash has the wrong length for the algorithm.
    #[error("root hash has {got} bytes, the {algorithm} digest has {expected}")]
    RootHashLength {
        /// The hash algorithm.
        algorithm: String,
        /// Its digest length in bytes.
        expected: usize,
        /// The root hash's length in bytes.
        got: usize,
    },
    /// The top of the hash tree does not match the root hash.
    #[error("root hash mismatch: the top of the hash tree does not match the root hash")]
    RootHashMismatch,
    /// A data block does not match its hash.
    #[error("verity mismatch: data block {block} does not match its hash")]
    DataBlockMismatch {
        /// The data block's index.
        block: u64,
    },
    /// A hash block does not match its hash one level up.
    #[error("verity mismatch: hash block {block} of tree level {level} does not match its hash")]
    HashBlockMismatch {
        /// The tree level (0: the hashes of the data blocks).
        level: usize,
        /// The block's index within its level.
        block: u64,
    },
    /// The signature data (JSON, base64, hex) is malformed.
    #[error("invalid verity signature data: {0}")]
    BadSignature(String),
}

/// A supported hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-224.
    Sha224,
    /// SHA-256 (veritysetup's default).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// By the name used in the superblock (`sha256`, …).
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        Some(match name {
            "sha224" => HashAlgorithm::Sha224,
            "sha256" => HashAlgorithm::Sha256,
            "sha384" => HashAlgorithm::Sha384,
            "sha512" => HashAlgorithm::Sha512,
            _ => return None,
        })
    }

    /// The name used in the superblock (`sha256`, …).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha224 => "sha224",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// Digest size in bytes.
    pub fn digest_size(self) -> usize {
        match self {
            HashAlgorithm::Sha224 => 28,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    fn digest_parts(self, parts: [&[u8]; 2]) -> Vec<u8> {
        fn run<D: Digest>(parts: [&[u8]; 2]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            HashAlgorithm::Sha224 => run::<Sha224>(parts),
            HashAlgorithm::Sha256 => run::<Sha256>(parts),
            HashAlgorithm::Sha384 => run::<Sha384>(parts),
            HashAlgorithm::Sha512 => run::<Sha512>(parts),
        }
    }
}
