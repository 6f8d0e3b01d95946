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

use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::dps::Guid;

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

    fn algorithm(&self) -> Result<HashAlgorithm, VerityError> {
        HashAlgorithm::from_name(&self.algorithm)
            .ok_or_else(|| VerityError::UnsupportedAlgorithm(self.algorithm.clone()))
    }
}

/// The shape of a hash tree.
#[derive(Debug, Clone)]
struct Tree {
    alg: HashAlgorithm,
    salt: Vec<u8>,
    salt_first: bool,
    digest_size: usize,
    /// Bytes per digest slot.
    slot: usize,
    per_block: u64,
    dbs: u64,
    hbs: u64,
    data_blocks: u64,
    /// Per level (0 = lowest): first hash block (counted from the superblock) and block count.
    levels: Vec<(u64, u64)>,
}

impl Tree {
    fn new(sb: &VeritySuperblock) -> Result<Tree, VerityError> {
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

    fn digest(&self, block: &[u8]) -> Vec<u8> {
        if self.salt_first {
            self.alg.digest_parts([&self.salt, block])
        } else {
            self.alg.digest_parts([block, &self.salt])
        }
    }

    /// Total size of the hash area (superblock and tree) in bytes.
    #[cfg(any(test, feature = "testing"))]
    fn hash_area_size(&self) -> u64 {
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
    let dbs = tree.dbs as usize;
    let hbs = tree.hbs as usize;

    let read_data = |first: u64, buf: &mut [u8]| -> Result<(), VerityError> {
        let too_small = || VerityError::DataTooSmall {
            needed: u64::try_from(needed).unwrap_or(u64::MAX),
            available: data_size,
        };
        let pos = data_offset
            .checked_add(first * tree.dbs)
            .ok_or_else(too_small)?;
        match data.read_exact_at(buf, pos) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(VerityError::DataTooSmall {
                needed: u64::try_from(needed).unwrap_or(u64::MAX),
                available: data_size,
            }),
            Err(e) => Err(e.into()),
        }
    };

    if tree.levels.is_empty() {
        // A single data block: its digest is the root hash.
        let mut block = vec![0u8; dbs];
        read_data(0, &mut block)?;
        return if tree.digest(&block) == root_hash {
            Ok(())
        } else {
            Err(VerityError::RootHashMismatch)
        };
    }

    let top = tree.levels.len() - 1;
    let mut parent = vec![0u8; hbs];
    read_hash_block(hash, hash_offset, &tree, tree.levels[top].0, &mut parent)?;
    if tree.digest(&parent) != root_hash {
        return Err(VerityError::RootHashMismatch);
    }

    let mut child = vec![0u8; hbs.max(dbs)];
    for level in (0..=top).rev() {
        let (parent_start, _) = tree.levels[level];
        let children = if level == 0 {
            tree.data_blocks
        } else {
            tree.levels[level - 1].1
        };
        let mut loaded: Option<u64> = if level == top { Some(0) } else { None };
        // Data blocks are read in chunks to save system calls.
        const CHUNK_BLOCKS: u64 = 256;
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_first = 0u64;
        for c in 0..children {
            let pidx = c / tree.per_block;
            if loaded != Some(pidx) {
                read_hash_block(hash, hash_offset, &tree, parent_start + pidx, &mut parent)?;
                loaded = Some(pidx);
            }
            let entry = (c % tree.per_block) as usize * tree.slot;
            let expected = &parent[entry..entry + tree.digest_size];
            let got = if level == 0 {
                if c == chunk_first + (chunk.len() / dbs) as u64 || chunk.is_empty() {
                    let n = CHUNK_BLOCKS.min(children - c) as usize;
                    chunk.resize(n * dbs, 0);
                    read_data(c, &mut chunk)?;
                    chunk_first = c;
                }
                let at = (c - chunk_first) as usize * dbs;
                tree.digest(&chunk[at..at + dbs])
            } else {
                let (child_start, _) = tree.levels[level - 1];
                read_hash_block(hash, hash_offset, &tree, child_start + c, &mut child[..hbs])?;
                tree.digest(&child[..hbs])
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
    }
    Ok(())
}

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

// ---------------------------------------------------------------------------------------
// Signature partition
// ---------------------------------------------------------------------------------------

/// The contents of a DPS verity signature partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeritySignature {
    /// The root hash (`rootHash`, hex in the JSON).
    pub root_hash: Vec<u8>,
    /// The PKCS#7 signature of the root hash's hex string (`signature`, base64 DER).
    pub signature: Vec<u8>,
    /// SHA-256 fingerprint of the signing certificate (`certificateFingerprint`), if given.
    pub certificate_fingerprint: Option<Vec<u8>>,
}

/// Decodes lowercase or uppercase hex.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    base16ct::mixed::decode_vec(s).ok()
}

/// Lowercase hex.
pub fn encode_hex(b: &[u8]) -> String {
    base16ct::lower::encode_string(b)
}

/// Decodes standard base64 (RFC 4648 alphabet, `=` padding optional, whitespace ignored).
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64ct::{Base64, Base64Unpadded, Encoding};
    let s: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if s.ends_with('=') {
        Base64::decode_vec(&s).ok()
    } else {
        Base64Unpadded::decode_vec(&s).ok()
    }
}

/// Parses the JSON of a verity signature partition (NUL padding after the JSON is ignored).
pub fn parse_signature(bytes: &[u8]) -> Result<VeritySignature, VerityError> {
    let bad = |m: &str| VerityError::BadSignature(m.to_string());
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..end]).map_err(|_| bad("not UTF-8"))?;
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| VerityError::BadSignature(format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let root_hash = obj
        .get("rootHash")
        .and_then(|x| x.as_str())
        .ok_or_else(|| bad("'rootHash' missing or not a string"))?;
    let root_hash = decode_hex(root_hash)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("'rootHash' is not a hex string"))?;
    let signature = obj
        .get("signature")
        .and_then(|x| x.as_str())
        .ok_or_else(|| bad("'signature' missing or not a string"))?;
    let signature = decode_base64(signature)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("'signature' is not base64"))?;
    let certificate_fingerprint = match obj.get("certificateFingerprint") {
        None | Some(serde_json::Value::Null) => None,
        Some(x) => Some(
            x.as_str()
                .and_then(decode_hex)
                .ok_or_else(|| bad("'certificateFingerprint' is not a hex string"))?,
        ),
    };
    Ok(VeritySignature {
        root_hash,
        signature,
        certificate_fingerprint,
    })
}

/// Reads and parses a verity signature partition at `[offset, offset + size)`.
pub fn read_signature(
    reader: &impl FileExt,
    offset: u64,
    size: u64,
) -> Result<VeritySignature, VerityError> {
    if size > MAX_SIGNATURE_SIZE {
        return Err(VerityError::BadSignature(format!(
            "partition of {size} bytes is too large"
        )));
    }
    let mut buf = vec![0u8; size as usize];
    reader.read_exact_at(&mut buf, offset)?;
    parse_signature(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::{pseudo_random, Mem};

    fn salt() -> Vec<u8> {
        (0u8..32).map(|i| i.wrapping_mul(37)).collect()
    }

    fn params() -> FormatParams {
        FormatParams {
            salt: salt(),
            ..FormatParams::default()
        }
    }

    /// An independent, naive implementation of the veritysetup layout (hash type 1) used to
    /// check `format` and `verify`.
    fn naive_tree(data: &[u8], dbs: usize, hbs: usize, salt: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let h = |b: &[u8]| {
            let mut d = Sha256::new();
            d.update(salt);
            d.update(b);
            d.finalize().to_vec()
        };
        let mut cur: Vec<Vec<u8>> = data.chunks(dbs).map(h).collect();
        let mut levels: Vec<Vec<u8>> = Vec::new();
        while cur.len() > 1 {
            let mut level = Vec::new();
            let mut next = Vec::new();
            for group in cur.chunks(hbs / 32) {
                let mut blk: Vec<u8> = group.concat();
                blk.resize(hbs, 0);
                next.push(h(&blk));
                level.extend_from_slice(&blk);
            }
            levels.push(level);
            cur = next;
        }
        let mut area = Vec::new();
        for l in levels.iter().rev() {
            area.extend_from_slice(l);
        }
        (area, cur.remove(0))
    }

    #[test]
    fn superblock_round_trip() {
        let sb = VeritySuperblock {
            version: 1,
            hash_type: 1,
            uuid: Guid::must("6f0c2a4e-0000-4000-8000-0000000000ee"),
            algorithm: "sha256".into(),
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: 12345,
            salt: salt(),
        };
        let b = sb.to_bytes();
        assert_eq!(&b[0..8], b"verity\0\0");
        assert_eq!(VeritySuperblock::parse(&b).unwrap(), sb);
        let mut bad = b;
        bad[0] = b'V';
        assert!(matches!(
            VeritySuperblock::parse(&bad),
            Err(VerityError::BadSuperblock(_))
        ));
        let mut bad = b;
        bad[8] = 2;
        assert!(VeritySuperblock::parse(&bad).is_err());
        let mut bad = b;
        bad[64..68].copy_from_slice(&1000u32.to_le_bytes());
        assert!(VeritySuperblock::parse(&bad).is_err());
        let mut bad = b;
        bad[80..82].copy_from_slice(&300u16.to_le_bytes());
        assert!(VeritySuperblock::parse(&bad).is_err());
        assert!(VeritySuperblock::parse(&b[..100]).is_err());
        // An algorithm name of the field's full 32 bytes has no NUL and round-trips (found
        // by the verity_superblock fuzz target).
        let long = VeritySuperblock {
            algorithm: "a".repeat(32),
            ..sb.clone()
        };
        assert_eq!(VeritySuperblock::parse(&long.to_bytes()).unwrap(), long);
    }

    #[test]
    fn format_matches_naive_and_verifies() {
        // 1 block (no tree), a partial and a full level-0 block, two levels; with 512-byte
        // hash blocks (16 digests each) also three and four levels.
        for (blocks, hbs) in [
            (1usize, 4096usize),
            (2, 4096),
            (7, 4096),
            (128, 4096),
            (129, 4096),
            (300, 4096),
            (16, 512),
            (17, 512),
            (257, 512),
            (300, 512),
            (4097, 512),
        ] {
            let data = pseudo_random(blocks * 4096, blocks as u64);
            let p = FormatParams {
                hash_block_size: hbs as u32,
                ..params()
            };
            let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
            let (naive_area, naive_root) = naive_tree(&data, 4096, hbs, &salt());
            assert_eq!(root, naive_root, "{blocks} blocks");
            assert_eq!(&area[hbs..], &naive_area[..], "{blocks} blocks");
            verify(
                &Mem(data.clone()),
                0,
                data.len() as u64,
                &Mem(area.clone()),
                0,
                &root,
            )
            .unwrap();
            // The last data block and a block in the middle are checked too.
            for b in [blocks - 1, blocks / 2] {
                let mut d = data.clone();
                d[b * 4096 + 4095] ^= 0x80;
                match verify(&Mem(d), 0, data.len() as u64, &Mem(area.clone()), 0, &root) {
                    Err(VerityError::DataBlockMismatch { block }) => assert_eq!(block, b as u64),
                    Err(VerityError::RootHashMismatch) if blocks == 1 => {}
                    other => panic!("{blocks} blocks, flip in {b}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn verify_rejects_flips() {
        let blocks = 300u64;
        let data = pseudo_random(blocks as usize * 4096, 99);
        let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &params()).unwrap();
        let ok = |d: &[u8], a: &[u8], r: &[u8]| {
            verify(&Mem(d.to_vec()), 0, d.len() as u64, &Mem(a.to_vec()), 0, r)
        };
        ok(&data, &area, &root).unwrap();

        for block in [0u64, 1, 127, 128, 299] {
            let mut d = data.clone();
            d[block as usize * 4096 + 17] ^= 0x40;
            match ok(&d, &area, &root) {
                Err(VerityError::DataBlockMismatch { block: b }) => assert_eq!(b, block),
                other => panic!("flip in block {block}: {other:?}"),
            }
        }
        // Tree: levels are [top (1 block) at 1, level 0 (3 blocks) at 2..5].
        let mut a = area.clone();
        a[3 * 4096 + 5] ^= 1; // level-0 hash block 1
        match ok(&data, &a, &root) {
            Err(VerityError::HashBlockMismatch { level: 0, block: 1 }) => {}
            other => panic!("{other:?}"),
        }
        let mut a = area.clone();
        a[4096 + 3] ^= 1; // top block
        assert!(matches!(
            ok(&data, &a, &root),
            Err(VerityError::RootHashMismatch)
        ));
        let mut r = root.clone();
        r[0] ^= 1;
        assert!(matches!(
            ok(&data, &area, &r),
            Err(VerityError::RootHashMismatch)
        ));
        assert!(matches!(
            ok(&data, &area, &root[..20]),
            Err(VerityError::RootHashLength { .. })
        ));
        // Truncated data or hash area.
        assert!(matches!(
            verify(
                &Mem(data.clone()),
                0,
                data.len() as u64 - 1,
                &Mem(area.clone()),
                0,
                &root
            ),
            Err(VerityError::DataTooSmall { .. })
        ));
        assert!(matches!(
            ok(&data[..4096 * 10], &area, &root),
            Err(VerityError::DataTooSmall { .. })
        ));
        assert!(matches!(
            ok(&data, &area[..3 * 4096], &root),
            Err(VerityError::HashAreaTruncated { .. })
        ));
        // Extra data after the covered blocks is not covered.
        let mut longer = data.clone();
        longer.extend_from_slice(b"trailing garbage");
        ok(&longer, &area, &root).unwrap();
    }

    #[test]
    fn offsets_and_single_block() {
        // Data and hash area inside bigger files, as partitions of one image.
        let data = pseudo_random(3 * 4096, 5);
        let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &params()).unwrap();
        let mut img = vec![0xEEu8; 8192];
        img.extend_from_slice(&data);
        let hash_at = img.len() as u64 + 4096;
        img.extend_from_slice(&[0u8; 4096]);
        img.extend_from_slice(&area);
        let m = Mem(img);
        verify(&m, 8192, data.len() as u64, &m, hash_at, &root).unwrap();
        let (area2, root2) = format(&m, 8192, data.len() as u64, &params()).unwrap();
        assert_eq!((area2, root2.clone()), (area, root));
        assert!(verify(&m, 8191, data.len() as u64, &m, hash_at, &root2).is_err());

        let one = pseudo_random(4096, 6);
        let (area, root) = format(&Mem(one.clone()), 0, 4096, &params()).unwrap();
        assert_eq!(area.len(), 4096); // superblock only
        let mut d = Sha256::new();
        d.update(salt());
        d.update(&one);
        assert_eq!(root, d.finalize().to_vec());
        verify(&Mem(one.clone()), 0, 4096, &Mem(area.clone()), 0, &root).unwrap();
        let mut bad = one;
        bad[0] ^= 1;
        assert!(matches!(
            verify(&Mem(bad), 0, 4096, &Mem(area), 0, &root),
            Err(VerityError::RootHashMismatch)
        ));
    }

    #[test]
    fn other_algorithms_and_sizes() {
        let data = pseudo_random(40 * 1024, 11);
        for (alg, dbs, hbs) in [
            (HashAlgorithm::Sha512, 4096, 4096),
            (HashAlgorithm::Sha224, 1024, 512),
            (HashAlgorithm::Sha256, 512, 1024),
            (HashAlgorithm::Sha384, 4096, 512),
        ] {
            let p = FormatParams {
                algorithm: alg,
                data_block_size: dbs,
                hash_block_size: hbs,
                ..params()
            };
            let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
            assert_eq!(root.len(), alg.digest_size());
            verify(
                &Mem(data.clone()),
                0,
                data.len() as u64,
                &Mem(area.clone()),
                0,
                &root,
            )
            .unwrap();
            let mut d = data.clone();
            d[dbs as usize * 3] ^= 1;
            assert!(matches!(
                verify(&Mem(d), 0, data.len() as u64, &Mem(area), 0, &root),
                Err(VerityError::DataBlockMismatch { block: 3 })
            ));
        }
        let mut sb =
            VeritySuperblock::parse(&format(&Mem(data.clone()), 0, 4096, &params()).unwrap().0)
                .unwrap();
        sb.algorithm = "md5".into();
        assert!(matches!(
            verify_with_superblock(&sb, &Mem(data.clone()), 0, 4096, &Mem(vec![]), 0, &[0; 16]),
            Err(VerityError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn chrome_os_format() {
        let data = pseudo_random(5 * 4096, 12);
        let p = FormatParams {
            hash_type: 0,
            ..params()
        };
        let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
        // Salt appended: the digest of block 0 is at the start of the only tree block.
        let mut d = Sha256::new();
        d.update(&data[..4096]);
        d.update(salt());
        assert_eq!(&area[4096..4096 + 32], &d.finalize()[..]);
        verify(
            &Mem(data.clone()),
            0,
            data.len() as u64,
            &Mem(area),
            0,
            &root,
        )
        .unwrap();
    }

    /// Cross-check with the real `veritysetup format` (only `format`: it works on plain
    /// files and sets up no device).
    #[test]
    fn veritysetup_cross_check() {
        use std::process::Command;
        if Command::new("veritysetup")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("veritysetup not available, skipping");
            return;
        }
        let dir = std::env::temp_dir().join(format!("sysext-verity-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data_path = dir.join("data");
        let hash_path = dir.join("hash");
        let blocks = 1000;
        let data = pseudo_random(blocks * 4096, 77);
        std::fs::write(&data_path, &data).unwrap();
        let salt_hex = encode_hex(&salt());
        let out = Command::new("veritysetup")
            .arg("format")
            .arg(format!("--salt={salt_hex}"))
            .arg("--uuid=6f0c2a4e-0000-4000-8000-0000000000ee")
            .arg(&data_path)
            .arg(&hash_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let root_hex = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Root hash:"))
            .expect("root hash in veritysetup output")
            .trim()
            .to_string();
        let hash_file = std::fs::read(&hash_path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let p = FormatParams {
            uuid: Guid::must("6f0c2a4e-0000-4000-8000-0000000000ee"),
            ..params()
        };
        let (area, root) = format(&Mem(data.clone()), 0, data.len() as u64, &p).unwrap();
        assert_eq!(encode_hex(&root), root_hex);
        assert_eq!(&hash_file[..area.len()], &area[..]);
        assert!(hash_file[area.len()..].iter().all(|&b| b == 0));
        verify(
            &Mem(data),
            0,
            (blocks * 4096) as u64,
            &Mem(hash_file),
            0,
            &root,
        )
        .unwrap();
    }

    #[test]
    fn base64_and_hex() {
        let cases: [(&str, &[u8]); 7] = [
            ("", b""),
            ("Zg==", b"f"),
            ("Zm8=", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9vYg==", b"foob"),
            ("Zm9vYmE=", b"fooba"),
            ("Zm9v\nYmFy", b"foobar"),
        ];
        for (s, want) in cases {
            assert_eq!(decode_base64(s).as_deref(), Some(want), "{s}");
        }
        assert_eq!(decode_base64("Zm9vYg").as_deref(), Some(&b"foob"[..]));
        assert_eq!(decode_base64("Zm9v!"), None);
        assert_eq!(decode_base64("Z"), None);
        assert_eq!(decode_base64("Zg==Zg=="), None);
        assert_eq!(decode_base64("+/+/"), Some(vec![0xfb, 0xff, 0xbf]));
        // Bits left over after the last byte must be zero, as systemd's unbase64mem() wants.
        assert_eq!(decode_base64("Zh=="), None);
        assert_eq!(decode_base64("Zm9vYg==\n"), Some(b"foob".to_vec()));
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(encode_hex(&[0, 255, 16]), "00ff10");
    }

    #[test]
    fn signature_json() {
        let mut part =
            br#"{"rootHash":"00ff10ab","certificateFingerprint":"abcd","signature":"Zm9vYmFy"}"#
                .to_vec();
        part.push(b'\n');
        part.resize(16384, 0);
        let s = parse_signature(&part).unwrap();
        assert_eq!(s.root_hash, vec![0, 255, 16, 171]);
        assert_eq!(s.signature, b"foobar");
        assert_eq!(s.certificate_fingerprint, Some(vec![0xab, 0xcd]));
        let m = Mem(part.clone());
        assert_eq!(read_signature(&m, 0, part.len() as u64).unwrap(), s);
        assert!(read_signature(&m, 0, MAX_SIGNATURE_SIZE + 1).is_err());

        let s = parse_signature(br#"{"signature":"Zg==","rootHash":"AB"}"#).unwrap();
        assert_eq!(
            (s.root_hash, s.signature, s.certificate_fingerprint),
            (vec![0xab], b"f".to_vec(), None)
        );
        for bad in [
            &br#"{"rootHash":"xyz","signature":"Zg=="}"#[..],
            br#"{"rootHash":"ab"}"#,
            br#"{"signature":"Zg=="}"#,
            br#"{"rootHash":"ab","signature":"!!"}"#,
            br#"{"rootHash":1,"signature":"Zg=="}"#,
            br#"["rootHash"]"#,
            b"not json",
            b"",
            b"\0\0\0",
            b"{\"rootHash\":\"ab\",\"signature\":\"Zg==\"\xff}",
        ] {
            assert!(
                matches!(parse_signature(bad), Err(VerityError::BadSignature(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
