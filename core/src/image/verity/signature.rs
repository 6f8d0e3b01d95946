//! The DPS verity signature partition: JSON with the root hash (hex) and its PKCS#7
//! signature (base64).

use super::{VerityError, MAX_SIGNATURE_SIZE};
use std::os::unix::fs::FileExt;

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
