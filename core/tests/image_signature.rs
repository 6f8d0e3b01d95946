//! Verity signature verification against signatures made by the `openssl` CLI, exactly as
//! systemd's tooling makes them (`openssl smime -sign -nocerts -noattr -binary … -outform
//! der` over the root hash's hex string), plus variants with signed attributes, other
//! digests and curves, and subject-key-identifier signers. Skipped without `openssl`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sysext::testing::image::signature::{
    load_trusted, load_trusted_with_errors, verify_signature, SignatureError, TrustedCert,
    TRUST_DIRS,
};
use sysext::testing::image::verity::{self, VerityError, VeritySignature};

const ROOT_HASH: &str = "a8ae6e6ee929abea3afcfc5258c8ccd6f85273e0d4626d26c7279f3250f77c8e";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sysext-sig-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("openssl not available, skipping");
    }
    ok
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Clone, Copy)]
enum Key {
    Rsa2048,
    P256,
    P384,
}

/// A self-signed signing certificate.
struct Signer {
    key: PathBuf,
    cert: PathBuf,
}

impl Signer {
    fn new(dir: &TempDir, name: &str, key: Key, serial: Option<&str>) -> Signer {
        let keyp = dir.path(&format!("{name}.key"));
        let certp = dir.path(&format!("{name}.pem"));
        let newkey: &[&str] = match key {
            Key::Rsa2048 => &["-newkey", "rsa:2048"],
            Key::P256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            Key::P384 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"],
        };
        let mut args = vec![
            "req",
            "-x509",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=sysext test signer",
        ];
        args.extend_from_slice(newkey);
        if let Some(s) = serial {
            args.extend_from_slice(&["-set_serial", s]);
        }
        let (k, c) = (keyp.to_str().unwrap(), certp.to_str().unwrap());
        args.extend_from_slice(&["-keyout", k, "-out", c]);
        openssl(&args);
        Signer {
            key: keyp,
            cert: certp,
        }
    }

    /// DER of the certificate.
    fn der(&self) -> Vec<u8> {
        openssl(&[
            "x509",
            "-in",
            self.cert.to_str().unwrap(),
            "-outform",
            "der",
        ])
    }

    /// SHA-256 fingerprint as reported by openssl, lowercase hex.
    fn fingerprint_hex(&self) -> String {
        let out = openssl(&[
            "x509",
            "-in",
            self.cert.to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        let s = String::from_utf8(out).unwrap();
        s.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_ascii_lowercase()
    }

    fn trusted(&self) -> TrustedCert {
        let pem = fs::read(&self.cert).unwrap();
        let mut v = TrustedCert::parse_file(&pem, &self.cert).unwrap();
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    /// Signs `content` like systemd's tooling; `extra` adds flags (`-md sha512`, `-keyid`),
    /// `attrs` keeps the signed attributes (no `-noattr`).
    fn sign(&self, dir: &TempDir, content: &str, attrs: bool, extra: &[&str]) -> Vec<u8> {
        let input = dir.path("content");
        fs::write(&input, content).unwrap();
        // `smime` knows no -keyid (and exits 0 on unknown options): use `cms` for that.
        let tool = if extra.contains(&"-keyid") {
            "cms"
        } else {
            "smime"
        };
        let mut args = vec![tool, "-sign", "-nocerts"];
        if !attrs {
            args.push("-noattr");
        }
        args.push("-binary");
        args.extend_from_slice(extra);
        let (i, k, c) = (
            input.to_str().unwrap(),
            self.key.to_str().unwrap(),
            self.cert.to_str().unwrap(),
        );
        args.extend_from_slice(&["-in", i, "-inkey", k, "-signer", c, "-outform", "der"]);
        let der = openssl(&args);
        assert!(!der.is_empty(), "openssl {args:?} wrote no signature");
        der
    }
}

fn openssl_sha256(text: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .args([
            "-c",
            "printf %s \"$0\" | openssl dgst -sha256 -binary",
            text,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 32);
    out.stdout
}

fn base64(der: &[u8], dir: &TempDir) -> String {
    let p = dir.path("sig.der");
    fs::write(&p, der).unwrap();
    String::from_utf8(openssl(&["base64", "-A", "-in", p.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string()
}

/// The JSON of a signature partition, parsed the way the image code does.
fn partition(root_hash: &str, sig_b64: &str, fingerprint: Option<&str>) -> VeritySignature {
    let json = match fingerprint {
        Some(fp) => format!(
            r#"{{"rootHash":"{root_hash}","signature":"{sig_b64}","certificateFingerprint":"{fp}"}}"#
        ),
        None => format!(r#"{{"rootHash":"{root_hash}","signature":"{sig_b64}"}}"#),
    };
    let mut bytes = json.into_bytes();
    bytes.push(b'\n');
    bytes.resize(4096, 0);
    verity::parse_signature(&bytes).unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            String::from_utf8_lossy(&bytes).trim_end_matches('\0')
        )
    })
}

fn signed_partition(
    dir: &TempDir,
    signer: &Signer,
    attrs: bool,
    extra: &[&str],
    with_fingerprint: bool,
) -> VeritySignature {
    let der = signer.sign(dir, ROOT_HASH, attrs, extra);
    let fp = signer.fingerprint_hex();
    partition(
        ROOT_HASH,
        &base64(&der, dir),
        with_fingerprint.then_some(fp.as_str()),
    )
}

#[test]
fn rsa_noattr_verifies() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("rsa");
    let s = Signer::new(&dir, "rsa", Key::Rsa2048, None);
    let trusted = [s.trusted()];
    assert_eq!(
        trusted[0].fingerprint().to_vec(),
        verity::decode_hex(&s.fingerprint_hex()).unwrap()
    );
    assert_eq!(trusted[0].der(), &s.der()[..]);
    for with_fp in [false, true] {
        let sig = signed_partition(&dir, &s, false, &[], with_fp);
        let info = verify_signature(&sig, ROOT_HASH, &trusted).unwrap();
        assert_eq!(info.algorithm, "rsa-pkcs1v15-sha256");
        assert!(!info.signed_attributes);
        assert_eq!(info.path, s.cert);
        assert_eq!(info.subject, "CN=sysext test signer");
        assert_eq!(info.fingerprint_hex(), s.fingerprint_hex());
        // The root hash is compared case-insensitively; the signed text is lowercase.
        verify_signature(&sig, &ROOT_HASH.to_ascii_uppercase(), &trusted).unwrap();
    }
}

#[test]
fn ec_p256_noattr_verifies() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("p256");
    let s = Signer::new(&dir, "p256", Key::P256, None);
    let sig = signed_partition(&dir, &s, false, &[], true);
    let info = verify_signature(&sig, ROOT_HASH, &[s.trusted()]).unwrap();
    assert_eq!(info.algorithm, "ecdsa-p256-sha256");
}

#[test]
fn signed_attributes_verify() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("attrs");
    for (name, key) in [("rsa", Key::Rsa2048), ("p256", Key::P256)] {
        let s = Signer::new(&dir, name, key, None);
        let sig = signed_partition(&dir, &s, true, &[], false);
        let info = verify_signature(&sig, ROOT_HASH, &[s.trusted()]).unwrap();
        assert!(info.signed_attributes, "{name}");
        // The message digest binds the root hash: another one is refused even though the
        // signature over the attributes themselves is intact.
        let other = ROOT_HASH.replace('a', "b");
        let forged = VeritySignature {
            root_hash: verity::decode_hex(&other).unwrap(),
            ..sig.clone()
        };
        let e = verify_signature(&forged, &other, &[s.trusted()]).unwrap_err();
        assert!(matches!(e, SignatureError::BadSignature(_)), "{name}: {e}");
    }
}

#[test]
fn other_digests_curves_and_key_ids() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("algs");
    let rsa = Signer::new(&dir, "rsa", Key::Rsa2048, None);
    let p256 = Signer::new(&dir, "p256", Key::P256, None);
    let p384 = Signer::new(&dir, "p384", Key::P384, None);
    let trusted = [rsa.trusted(), p256.trusted(), p384.trusted()];
    let cases: [(&Signer, &[&str], bool, &str); 8] = [
        (&rsa, &["-md", "sha384"], false, "rsa-pkcs1v15-sha384"),
        (&rsa, &["-md", "sha512"], true, "rsa-pkcs1v15-sha512"),
        (&p256, &["-md", "sha384"], false, "ecdsa-p256-sha384"),
        (&p256, &["-md", "sha512"], true, "ecdsa-p256-sha512"),
        (&p384, &[], false, "ecdsa-p384-sha256"),
        (&p384, &["-md", "sha384"], true, "ecdsa-p384-sha384"),
        // Signer named by subject key identifier instead of issuer and serial (CMS v3).
        (&rsa, &["-keyid"], false, "rsa-pkcs1v15-sha256"),
        (&p256, &["-keyid"], true, "ecdsa-p256-sha256"),
    ];
    for (s, extra, attrs, alg) in cases {
        let sig = signed_partition(&dir, s, attrs, extra, false);
        let info = verify_signature(&sig, ROOT_HASH, &trusted)
            .unwrap_or_else(|e| panic!("{alg} {extra:?}: {e}"));
        assert_eq!(info.algorithm, alg, "{extra:?}");
        assert_eq!(info.path, s.cert);
    }
    // SHA-1 is not accepted.
    let sig = signed_partition(&dir, &rsa, false, &["-md", "sha1"], false);
    let e = verify_signature(&sig, ROOT_HASH, &trusted).unwrap_err();
    assert!(
        matches!(
            e,
            SignatureError::UnsupportedAlgorithm { kind: "digest", .. }
        ),
        "{e}"
    );
}

#[test]
fn untrusted_signer_is_rejected() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("untrusted");
    let signer = Signer::new(&dir, "signer", Key::Rsa2048, None);
    let other = Signer::new(&dir, "other", Key::Rsa2048, None);
    let sig = signed_partition(&dir, &signer, false, &[], false);
    let e = verify_signature(&sig, ROOT_HASH, &[other.trusted()]).unwrap_err();
    assert!(
        matches!(e, SignatureError::NoMatchingCertificate { trusted: 1, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("no trusted certificate matches"),
        "{e}"
    );

    let e = verify_signature(&sig, ROOT_HASH, &[]).unwrap_err();
    assert!(matches!(e, SignatureError::NoTrustedCertificates), "{e}");

    // Same issuer name and serial number, different key: it matches, but the signature
    // does not verify.
    let a = Signer::new(&dir, "a", Key::Rsa2048, Some("4242"));
    let b = Signer::new(&dir, "b", Key::Rsa2048, Some("4242"));
    let ec_b = Signer::new(&dir, "ec-b", Key::P256, Some("4242"));
    let sig = signed_partition(&dir, &a, false, &[], false);
    verify_signature(&sig, ROOT_HASH, &[a.trusted()]).unwrap();
    let e = verify_signature(&sig, ROOT_HASH, &[b.trusted()]).unwrap_err();
    assert!(matches!(e, SignatureError::BadSignature(_)), "{e}");
    let e = verify_signature(&sig, ROOT_HASH, &[ec_b.trusted()]).unwrap_err();
    assert!(matches!(e, SignatureError::BadSignature(_)), "{e}");
    // With both trusted, whichever matching certificate verifies is used.
    let info =
        verify_signature(&sig, ROOT_HASH, &[b.trusted(), ec_b.trusted(), a.trusted()]).unwrap();
    assert_eq!(info.path, a.cert);
    let ec_a = Signer::new(&dir, "ec-a", Key::P256, Some("4343"));
    let ec_c = Signer::new(&dir, "ec-c", Key::P256, Some("4343"));
    let sig = signed_partition(&dir, &ec_a, true, &[], false);
    let e = verify_signature(&sig, ROOT_HASH, &[ec_c.trusted()]).unwrap_err();
    assert!(matches!(e, SignatureError::BadSignature(_)), "{e}");
}

#[test]
fn embedded_certificates_are_not_trusted() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("embedded");
    let signer = Signer::new(&dir, "signer", Key::P256, None);
    let other = Signer::new(&dir, "other", Key::P256, None);
    // Without -nocerts the signer certificate travels inside the signature.
    let input = dir.path("content");
    fs::write(&input, ROOT_HASH).unwrap();
    let der = openssl(&[
        "smime",
        "-sign",
        "-noattr",
        "-binary",
        "-in",
        input.to_str().unwrap(),
        "-inkey",
        signer.key.to_str().unwrap(),
        "-signer",
        signer.cert.to_str().unwrap(),
        "-outform",
        "der",
    ]);
    let sig = partition(ROOT_HASH, &base64(&der, &dir), None);
    verify_signature(&sig, ROOT_HASH, &[signer.trusted()]).unwrap();
    let e = verify_signature(&sig, ROOT_HASH, &[other.trusted()]).unwrap_err();
    assert!(
        matches!(e, SignatureError::NoMatchingCertificate { .. }),
        "{e}"
    );
}

#[test]
fn tampered_root_hash_is_rejected() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("tamper");
    for (name, key) in [("rsa", Key::Rsa2048), ("p256", Key::P256)] {
        let s = Signer::new(&dir, name, key, None);
        let trusted = [s.trusted()];
        let der = s.sign(&dir, ROOT_HASH, false, &[]);
        let b64 = base64(&der, &dir);
        let mut tampered = ROOT_HASH.to_string();
        tampered.replace_range(0..2, "ff");
        // The partition's rootHash was changed, the signature kept.
        let sig = partition(&tampered, &b64, None);
        let e = verify_signature(&sig, &tampered, &trusted).unwrap_err();
        assert!(matches!(e, SignatureError::BadSignature(_)), "{name}: {e}");
        // The image's root hash differs from the one in the partition.
        let sig = partition(ROOT_HASH, &b64, None);
        let e = verify_signature(&sig, &tampered, &trusted).unwrap_err();
        assert!(
            matches!(e, SignatureError::RootHashMismatch { .. }),
            "{name}: {e}"
        );
        // A corrupted signature value.
        let mut bad = der.clone();
        let n = bad.len();
        bad[n - 5] ^= 0x40;
        let sig = partition(ROOT_HASH, &base64(&bad, &dir), None);
        let e = verify_signature(&sig, ROOT_HASH, &trusted).unwrap_err();
        assert!(matches!(e, SignatureError::BadSignature(_)), "{name}: {e}");
    }
}

#[test]
fn wrong_fingerprint_is_rejected() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("fp");
    let signer = Signer::new(&dir, "signer", Key::P256, None);
    let other = Signer::new(&dir, "other", Key::Rsa2048, None);
    let der = signer.sign(&dir, ROOT_HASH, false, &[]);
    let b64 = base64(&der, &dir);
    let trusted = [signer.trusted(), other.trusted()];
    verify_signature(
        &partition(ROOT_HASH, &b64, Some(&signer.fingerprint_hex())),
        ROOT_HASH,
        &trusted,
    )
    .unwrap();
    // A fingerprint that names no trusted certificate.
    let e = verify_signature(
        &partition(ROOT_HASH, &b64, Some(&"00".repeat(32))),
        ROOT_HASH,
        &trusted,
    )
    .unwrap_err();
    assert!(matches!(e, SignatureError::FingerprintNotTrusted(_)), "{e}");
    // A fingerprint of another trusted certificate than the signer's.
    let e = verify_signature(
        &partition(ROOT_HASH, &b64, Some(&other.fingerprint_hex())),
        ROOT_HASH,
        &trusted,
    )
    .unwrap_err();
    assert!(
        matches!(e, SignatureError::FingerprintMismatch { .. }),
        "{e}"
    );
    // The signer's fingerprint, but the signer is not trusted.
    let e = verify_signature(
        &partition(ROOT_HASH, &b64, Some(&signer.fingerprint_hex())),
        ROOT_HASH,
        &[other.trusted()],
    )
    .unwrap_err();
    assert!(matches!(e, SignatureError::FingerprintNotTrusted(_)), "{e}");
}

#[test]
fn malformed_signatures_give_clean_errors() {
    // Needs no openssl for most of it: garbage must never panic.
    for bad_b64 in ["!!!!", "Zm9v!", "Z"] {
        let json = format!(r#"{{"rootHash":"{ROOT_HASH}","signature":"{bad_b64}"}}"#);
        assert!(matches!(
            verity::parse_signature(json.as_bytes()),
            Err(VerityError::BadSignature(_))
        ));
    }
    let dummy_dir = TempDir::new("malformed");
    // A trusted certificate is needed to get past the "no trusted certificates" check.
    let trusted: Vec<TrustedCert> = if have_openssl() {
        vec![Signer::new(&dummy_dir, "t", Key::P256, None).trusted()]
    } else {
        Vec::new()
    };
    let mk = |sig: Vec<u8>| VeritySignature {
        root_hash: verity::decode_hex(ROOT_HASH).unwrap(),
        signature: sig,
        certificate_fingerprint: None,
    };
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        b"foobar".to_vec(),
        vec![0x30],
        vec![0x30, 0x80, 0, 0],
        vec![0x30, 0x03, 0x02, 0x01, 0x01],
        vec![0xff; 64],
        // ContentInfo of type data instead of signedData.
        vec![
            0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
        ],
    ];
    if have_openssl() {
        let s = Signer::new(&dummy_dir, "s", Key::Rsa2048, None);
        let der = s.sign(&dummy_dir, ROOT_HASH, true, &[]);
        for cut in [1, 10, 50, der.len() / 2, der.len() - 1] {
            garbage.push(der[..cut].to_vec());
        }
        let mut trailing = der.clone();
        trailing.push(0);
        garbage.push(trailing);
        // Flip every byte: never a panic. Flips in AlgorithmIdentifier parameters or in the
        // SignedData digestAlgorithms set are harmless, but flips in the signature value or
        // in the message digest (or anywhere in the signed attributes) must be caught.
        let digest = openssl_sha256(ROOT_HASH);
        let md_at = der
            .windows(32)
            .position(|w| w == &digest[..])
            .expect("message digest in the signed attributes");
        let must_fail = (md_at..md_at + 32).chain(der.len() - 256..der.len());
        let must_fail: Vec<usize> = must_fail.collect();
        let trusted_s = [s.trusted()];
        for i in 0..der.len() {
            let mut d = der.clone();
            d[i] ^= 0xa5;
            let r = verify_signature(&mk(d), ROOT_HASH, &trusted_s);
            if must_fail.contains(&i) {
                assert!(r.is_err(), "flipping byte {i} went unnoticed");
            }
        }
    }
    for g in garbage {
        let r = verify_signature(&mk(g.clone()), ROOT_HASH, &trusted);
        let e = r.expect_err(&format!("{g:02x?} verified"));
        let _ = e.to_string();
        if trusted.is_empty() {
            continue;
        }
        if g.len() < 16 {
            assert!(
                matches!(e, SignatureError::MalformedCms(_)),
                "{g:02x?}: {e}"
            );
        }
    }
    // Not a root hash at all.
    let e = verify_signature(&mk(vec![0x30]), "xyz", &trusted).unwrap_err();
    assert!(matches!(e, SignatureError::RootHashMismatch { .. }), "{e}");
}

#[test]
fn loading_trusted_certificates() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("load");
    let keys = TempDir::new("load-keys");
    let a = Signer::new(&keys, "a", Key::Rsa2048, None);
    let b = Signer::new(&keys, "b", Key::P256, None);
    let c = Signer::new(&keys, "c", Key::P384, None);
    let (etc, usr) = (dir.path("etc"), dir.path("usr"));
    fs::create_dir_all(&etc).unwrap();
    fs::create_dir_all(&usr).unwrap();
    // PEM in /usr, overridden by a DER file of another certificate under the same name.
    fs::copy(&a.cert, usr.join("10-a.crt")).unwrap();
    fs::write(etc.join("10-a.crt"), c.der()).unwrap();
    // PEM with text around it and CRLF line ends.
    let pem = fs::read_to_string(&b.cert).unwrap().replace('\n', "\r\n");
    fs::write(usr.join("20-b.crt"), format!("subject=CN=b\r\n{pem}\r\n")).unwrap();
    // A directory does not hide a certificate of the same name.
    fs::create_dir(etc.join("20-b.crt")).unwrap();
    // Masked by an empty file and by a /dev/null symlink.
    fs::copy(&a.cert, usr.join("30-masked.crt")).unwrap();
    fs::write(etc.join("30-masked.crt"), b"").unwrap();
    fs::copy(&a.cert, usr.join("31-masked.crt")).unwrap();
    std::os::unix::fs::symlink("/dev/null", etc.join("31-masked.crt")).unwrap();
    // Wrong suffix, garbage.
    fs::copy(&a.cert, usr.join("40-ignored.pem")).unwrap();
    fs::write(usr.join("50-garbage.crt"), b"hello").unwrap();
    fs::write(usr.join("51-bad-der.crt"), [0x30, 0x03, 1, 2, 3]).unwrap();

    let missing = dir.path("missing");
    let dirs: [&Path; 3] = [&etc, &missing, &usr];
    let certs = load_trusted(&dirs);
    let names: Vec<_> = certs.iter().map(|c| c.path().to_path_buf()).collect();
    assert_eq!(names, vec![etc.join("10-a.crt"), usr.join("20-b.crt")]);
    assert_eq!(certs[0].der(), &c.der()[..]);
    assert_eq!(certs[1].der(), &b.der()[..]);
    let (_, errors) = load_trusted_with_errors(&dirs);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors
        .iter()
        .all(|e| matches!(e, SignatureError::BadCertificate { .. })));

    // What was loaded verifies; the overridden certificate does not.
    let sig = signed_partition(&keys, &c, false, &[], false);
    verify_signature(&sig, ROOT_HASH, &certs).unwrap();
    let sig = signed_partition(&keys, &a, false, &[], false);
    assert!(verify_signature(&sig, ROOT_HASH, &certs).is_err());

    assert_eq!(
        TRUST_DIRS,
        [
            "/etc/verity.d",
            "/run/verity.d",
            "/usr/local/lib/verity.d",
            "/usr/lib/verity.d"
        ]
    );
}
