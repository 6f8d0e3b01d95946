//! The verity signature partition (`sysext::testing::image::verity::parse_signature`: JSON with hex
//! and base64 fields), the PKCS#7 / CMS signature in it and its check against trusted
//! certificates (`sysext::testing::image::signature::verify_signature`), and the certificate file
//! parser (`TrustedCert::parse_file`, PEM or DER).
//!
//! The first byte of the input picks what the rest is (modulo 3): 0 a signature partition,
//! 1 the DER of a PKCS#7 signature of the root hash [`ROOT_HASH`], 2 a `.crt` file. The
//! trusted certificates are the two in `fuzz/keys/` (RSA and P-256, made by `make-seeds`,
//! which also signs the seeds with their keys).
//!
//! Invariants: no panic; a parsed partition has a root hash and a signature, and its fields
//! written again as JSON (and padded with NULs) parse to the same; hex and base64 decode
//! what they encode; a signature that verifies was made by a trusted certificate (the one
//! the fingerprint names, if any), verifies the same with an uppercase root hash, fails for
//! any other root hash and without trusted certificates; a parsed certificate file holds at
//! least one certificate, whose DER parses again to the same fingerprint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use sysext::testing::image::signature::{verify_signature, TrustedCert};
use sysext::testing::image::verity::{
    decode_base64, decode_hex, encode_hex, parse_signature, VeritySignature,
};

/// The root hash the seed signatures sign (SHA-256 of "libsysext fuzz").
pub const ROOT_HASH: &str = include_str!("../keys/root-hash");

fn trusted() -> &'static [TrustedCert] {
    static T: OnceLock<Vec<TrustedCert>> = OnceLock::new();
    T.get_or_init(|| {
        let mut v = TrustedCert::parse_file(include_bytes!("../keys/verity-rsa.crt"), "rsa.crt")
            .expect("keys/verity-rsa.crt");
        v.extend(
            TrustedCert::parse_file(include_bytes!("../keys/verity-p256.crt"), "p256.crt")
                .expect("keys/verity-p256.crt"),
        );
        v
    })
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn check_verify(sig: &VeritySignature) {
    let trusted = trusted();
    let hex = encode_hex(&sig.root_hash);
    let r = verify_signature(sig, &hex, trusted);
    let upper = verify_signature(sig, &hex.to_ascii_uppercase(), trusted);
    assert_eq!(r.is_ok(), upper.is_ok(), "{r:?} / {upper:?}");
    let Ok(info) = r else { return };
    assert!(trusted.iter().any(|t| t.fingerprint() == info.fingerprint));
    if let Some(fp) = &sig.certificate_fingerprint {
        assert_eq!(
            fp[..],
            info.fingerprint[..],
            "verified by another certificate"
        );
    }
    assert!(
        verify_signature(sig, &hex, &[]).is_err(),
        "verified without trusted certificates"
    );
    let mut other = sig.clone();
    other.root_hash[0] ^= 1;
    let r = verify_signature(&other, &encode_hex(&other.root_hash), trusted);
    assert!(r.is_err(), "signature also verifies another root hash");
    // The root hash given must be the partition's.
    assert!(verify_signature(sig, &encode_hex(&other.root_hash), trusted).is_err());
}

fn partition(data: &[u8]) {
    let parsed = parse_signature(data);
    let mut padded = data.to_vec();
    padded.extend_from_slice(&[0; 16]);
    let p2 = parse_signature(&padded);
    assert_eq!(
        parsed.as_ref().ok(),
        p2.as_ref().ok(),
        "NUL padding changes the result"
    );
    let Ok(sig) = parsed else { return };
    assert!(!sig.root_hash.is_empty() && !sig.signature.is_empty());
    let mut json = serde_json::json!({
        "rootHash": encode_hex(&sig.root_hash),
        "signature": base64(&sig.signature),
    });
    if let Some(fp) = &sig.certificate_fingerprint {
        json["certificateFingerprint"] = encode_hex(fp).into();
    }
    let mut text = json.to_string().into_bytes();
    text.push(b'\n');
    text.resize(text.len() + 100, 0);
    let again = parse_signature(&text).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(again, sig);
    check_verify(&sig);
}

fn raw_signature(der: &[u8]) {
    let root_hash = decode_hex(ROOT_HASH.trim()).expect("keys/root-hash is hex");
    let mut sig = VeritySignature {
        root_hash,
        signature: der.to_vec(),
        certificate_fingerprint: None,
    };
    check_verify(&sig);
    for t in trusted() {
        sig.certificate_fingerprint = Some(t.fingerprint().to_vec());
        check_verify(&sig);
    }
}

fn cert_file(data: &[u8]) {
    let Ok(certs) = TrustedCert::parse_file(data, "fuzz.crt") else {
        return;
    };
    assert!(!certs.is_empty());
    for c in &certs {
        let again =
            TrustedCert::from_der(c.der(), "again.crt").expect("DER of a parsed certificate");
        assert_eq!(again.fingerprint(), c.fingerprint());
        let _ = c.subject();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Hex and base64 codecs, on any bytes.
    assert_eq!(decode_hex(&encode_hex(rest)).as_deref(), Some(rest));
    assert_eq!(decode_base64(&base64(rest)).as_deref(), Some(rest));
    let wrapped: String = base64(rest)
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(decode_base64(&wrapped).as_deref(), Some(rest));
    if let Ok(s) = std::str::from_utf8(rest) {
        let _ = decode_base64(s);
        let _ = decode_hex(s);
    }
    match mode % 3 {
        0 => partition(rest),
        1 => raw_signature(rest),
        _ => cert_file(rest),
    }
});
