//! Verification of DPS verity signatures (the `*-verity-sig` partition): the PKCS#7 / CMS
//! `SignedData` in its `signature` field, checked against trusted X.509 certificates.
//!
//! This follows systemd's userspace check (`PKCS7_verify()` with `PKCS7_NOINTERN |
//! PKCS7_NOVERIFY`): the signer must be one of the trusted certificates from the
//! `verity.d` directories (certificates embedded in the signature are never trusted, the
//! chain and validity period are not checked), and the signed content is the root hash as
//! a lowercase hex string (detached). The signature is `openssl smime -sign -nocerts -noattr
//! -binary` output; signed attributes are accepted too (then the signature covers their
//! DER encoding, and their message digest must match the content).
//!
//! Supported: RSA PKCS#1 v1.5 and ECDSA on P-256 / P-384, each with SHA-256, SHA-384 or
//! SHA-512. Everything else (RSA-PSS, Ed25519, SHA-1, …) is reported as unsupported.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;

use super::verity::{decode_hex, encode_hex, VeritySignature};

/// Where trusted verity certificates (`*.crt`) live, highest priority first. systemd 257
/// reads them from the host even for images under `--root`; systemd 259 and newer (PR 39991,
/// "sysext: Get verity user certs from given --root=") below the root (see
/// [`load_trusted_beneath`] and [`crate::level::Compat::reads_verity_certs_in_root`]).
pub const TRUST_DIRS: &[&str] = &[
    "/etc/verity.d",
    "/run/verity.d",
    "/usr/local/lib/verity.d",
    "/usr/lib/verity.d",
];

/// Largest certificate file that is read.
const MAX_CERT_FILE: u64 = 1 << 20;

mod oid {
    use der::asn1::ObjectIdentifier as O;

    pub const SIGNED_DATA: O = O::new_unwrap("1.2.840.113549.1.7.2");
    pub const DATA: O = O::new_unwrap("1.2.840.113549.1.7.1");
    pub const ATTR_CONTENT_TYPE: O = O::new_unwrap("1.2.840.113549.1.9.3");
    pub const ATTR_MESSAGE_DIGEST: O = O::new_unwrap("1.2.840.113549.1.9.4");

    pub const SHA256: O = O::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: O = O::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: O = O::new_unwrap("2.16.840.1.101.3.4.2.3");

    pub const RSA_ENCRYPTION: O = O::new_unwrap("1.2.840.113549.1.1.1");
    pub const SHA256_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.11");
    pub const SHA384_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.12");
    pub const SHA512_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.13");

    pub const EC_PUBLIC_KEY: O = O::new_unwrap("1.2.840.10045.2.1");
    pub const ECDSA_SHA256: O = O::new_unwrap("1.2.840.10045.4.3.2");
    pub const ECDSA_SHA384: O = O::new_unwrap("1.2.840.10045.4.3.3");
    pub const ECDSA_SHA512: O = O::new_unwrap("1.2.840.10045.4.3.4");
    pub const P256: O = O::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: O = O::new_unwrap("1.3.132.0.34");
}

/// Why a verity signature is not accepted (or a certificate not loaded).
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The PKCS#7 (CMS) signature does not parse (the reason).
    #[error("malformed PKCS#7 signature: {0}")]
    MalformedCms(String),
    /// The signature uses an algorithm that is not supported.
    #[error("unsupported {kind} algorithm {oid} in verity signature")]
    UnsupportedAlgorithm {
        /// `digest`, `signature`, `public key` or `elliptic curve`.
        kind: &'static str,
        /// The dotted OID.
        oid: String,
    },
    /// No trusted certificate is installed.
    #[error("no trusted verity certificates are installed (looked for *.crt in {})", TRUST_DIRS.join(", "))]
    NoTrustedCertificates,
    /// No trusted certificate is the signer's.
    #[error(
        "no trusted certificate matches the signer ({signer}); {trusted} trusted certificate(s) checked"
    )]
    NoMatchingCertificate {
        /// The signer (issuer and serial number).
        signer: String,
        /// How many trusted certificates were checked.
        trusted: usize,
    },
    /// The signature's `certificateFingerprint` names no trusted certificate.
    #[error("certificateFingerprint {0} names no trusted certificate")]
    FingerprintNotTrusted(String),
    /// The signer is not the certificate the fingerprint names.
    #[error("the signer ({signer}) is not the certificate named by certificateFingerprint {fingerprint}")]
    FingerprintMismatch {
        /// The signer (issuer and serial number).
        signer: String,
        /// The fingerprint given.
        fingerprint: String,
    },
    /// The signed root hash is not the image's.
    #[error(
        "root hash mismatch: the signature partition names {signed}, the image uses {expected}"
    )]
    RootHashMismatch {
        /// The root hash in the signature partition (hex).
        signed: String,
        /// The root hash the image uses (hex).
        expected: String,
    },
    /// The signature does not verify (the reason).
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// A trusted certificate file cannot be used.
    #[error("certificate {path}: {reason}")]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl SignatureError {
    /// Reading `path` failed (the one way I/O errors get their context here).
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> SignatureError {
        SignatureError::Io {
            path: path.into(),
            source,
        }
    }
}

fn malformed(what: &str, e: impl fmt::Display) -> SignatureError {
    SignatureError::MalformedCms(format!("{what}: {e}"))
}

/// A certificate trusted to sign verity root hashes.
#[derive(Clone)]
pub struct TrustedCert {
    path: PathBuf,
    #[cfg(any(test, feature = "testing"))]
    der: Vec<u8>,
    fingerprint: [u8; 32],
    cert: Certificate,
}

impl fmt::Debug for TrustedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCert")
            .field("path", &self.path)
            .field("subject", &self.subject())
            .field("fingerprint", &encode_hex(&self.fingerprint))
            .finish()
    }
}

impl TrustedCert {
    /// One DER-encoded certificate; `path` names where it came from (for messages).
    pub fn from_der(der: &[u8], path: impl Into<PathBuf>) -> Result<TrustedCert, SignatureError> {
        let path = path.into();
        let cert = Certificate::from_der(der).map_err(|e| SignatureError::BadCertificate {
            path: path.clone(),
            reason: format!("not a DER X.509 certificate: {e}"),
        })?;
        Ok(TrustedCert {
            path,
            #[cfg(any(test, feature = "testing"))]
            der: der.to_vec(),
            fingerprint: Sha256::digest(der).into(),
            cert,
        })
    }

    /// The certificates of a `.crt` file: PEM (every `CERTIFICATE` block) or one DER
    /// certificate.
    pub fn parse_file(
        bytes: &[u8],
        path: impl Into<PathBuf>,
    ) -> Result<Vec<TrustedCert>, SignatureError> {
        let path = path.into();
        let bad = |reason: String| SignatureError::BadCertificate {
            path: path.clone(),
            reason,
        };
        if bytes.first() == Some(&0x30) {
            return Ok(vec![TrustedCert::from_der(bytes, path.clone())?]);
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| bad("neither DER nor PEM (not UTF-8)".into()))?;
        let mut out = Vec::new();
        let mut rest = text;
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        while let Some(start) = rest.find(BEGIN) {
            let after = &rest[start..];
            let end = after
                .find(END)
                .ok_or_else(|| bad("PEM block without END line".into()))?;
            let block = &after[..end + END.len()];
            let (label, der) =
                der::pem::decode_vec(block.as_bytes()).map_err(|e| bad(format!("bad PEM: {e}")))?;
            debug_assert_eq!(label, "CERTIFICATE");
            out.push(TrustedCert::from_der(&der, path.clone())?);
            rest = &after[end + END.len()..];
        }
        if out.is_empty() {
            return Err(bad("no PEM CERTIFICATE block and not DER".into()));
        }
        Ok(out)
    }

    /// Reads a `.crt` file (see [`TrustedCert::parse_file`]).
    pub fn read_file(path: &Path) -> Result<Vec<TrustedCert>, SignatureError> {
        let io_err = |source| SignatureError::io(path, source);
        let meta = fs::metadata(path).map_err(io_err)?;
        if meta.len() > MAX_CERT_FILE {
            return Err(SignatureError::BadCertificate {
                path: path.to_path_buf(),
                reason: format!("file of {} bytes is too large", meta.len()),
            });
        }
        let bytes = fs::read(path).map_err(io_err)?;
        TrustedCert::parse_file(&bytes, path)
    }

    /// The file the certificate was read from.
    #[cfg(any(test, feature = "testing"))]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The DER encoding.
    #[cfg(any(test, feature = "testing"))]
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the DER encoding (what `certificateFingerprint` names).
    #[cfg(any(test, feature = "testing"))]
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The subject name (RFC 4514 form, e.g. `CN=test`).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    fn issuer_der(&self) -> Option<Vec<u8>> {
        self.cert.tbs_certificate().issuer().to_der().ok()
    }

    fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate().serial_number().as_bytes()
    }

    fn subject_key_id(&self) -> Option<Vec<u8>> {
        match self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
        {
            Ok(Some((_, ski))) => Some(ski.0.as_bytes().to_vec()),
            _ => None,
        }
    }

    fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        self.cert.tbs_certificate().subject_public_key_info()
    }

    fn matches(&self, sid: &SignerIdentifier) -> bool {
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                isn.serial_number.as_bytes() == self.serial()
                    && isn
                        .issuer
                        .to_der()
                        .ok()
                        .is_some_and(|i| Some(i) == self.issuer_der())
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                self.subject_key_id().as_deref() == Some(ski.0.as_bytes())
            }
        }
    }
}

/// The certificate a signature was verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCertInfo {
    /// The `.crt` file it was loaded from.
    pub path: PathBuf,
    /// Its subject name (RFC 4514 form).
    pub subject: String,
    /// SHA-256 of its DER encoding.
    pub fingerprint: [u8; 32],
    /// The signature algorithm that was verified, e.g. `rsa-pkcs1v15-sha256`,
    /// `ecdsa-p256-sha256`.
    pub algorithm: String,
    /// Whether the signature covered signed attributes (not just the root hash).
    pub signed_attributes: bool,
}

impl TrustedCertInfo {
    /// The fingerprint as lowercase hex.
    #[cfg(any(test, feature = "testing"))]
    pub fn fingerprint_hex(&self) -> String {
        encode_hex(&self.fingerprint)
    }
}

/// Loads the trusted certificates (`*.crt`, PEM or DER) from `dirs`, highest priority
/// first, the way systemd lists configuration files: a file name found in an earlier
/// directory hides the same name in later ones, a symlink to `/dev/null` (any character
/// device) or an empty file masks it, and the result is ordered by file name. Unreadable or invalid files are
/// skipped (see [`load_trusted_with_errors`] to learn about them); missing directories are
/// fine.
pub fn load_trusted(dirs: &[&Path]) -> Vec<TrustedCert> {
    load_trusted_with_errors(dirs).0
}

/// [`load_trusted`] from [`TRUST_DIRS`].
pub fn load_default_trusted() -> Vec<TrustedCert> {
    let dirs: Vec<&Path> = TRUST_DIRS.iter().map(Path::new).collect();
    load_trusted(&dirs)
}

/// [`load_trusted`] from the [`TRUST_DIRS`] below the directory `root` (each path resolved
/// inside it, symlinks too, as systemd's `conf_files_list_nulstr()` with a root does);
/// `shown` is the root's path for messages (`""` for the host's `/`). Also returns why files
/// were skipped.
pub fn load_trusted_beneath(
    root: std::os::fd::BorrowedFd<'_>,
    shown: &str,
) -> (Vec<TrustedCert>, Vec<SignatureError>) {
    use rustix::fs::{FileType, OFlags};
    let shown = shown.trim_end_matches('/');
    let mut chosen: std::collections::BTreeMap<std::ffi::OsString, Option<String>> =
        Default::default();
    let mut errors = Vec::new();
    let io_err = |path: String, source: io::Error| SignatureError::io(path, source);
    for dir in TRUST_DIRS {
        let dfd = match crate::root::open_beneath(root, dir, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => continue,
            Err(e) => {
                errors.push(io_err(format!("{shown}{dir}"), e));
                continue;
            }
        };
        let names = match fs::read_dir(crate::root::proc_fd_path(std::os::fd::AsFd::as_fd(&dfd))) {
            Ok(rd) => rd.flatten().map(|e| e.file_name()).collect::<Vec<_>>(),
            Err(e) => {
                errors.push(io_err(format!("{shown}{dir}"), e));
                continue;
            }
        };
        for name in names {
            let bytes = name.as_encoded_bytes();
            if !bytes.ends_with(b".crt") || bytes.starts_with(b".") || chosen.contains_key(&name) {
                continue;
            }
            let rel = format!("{dir}/{}", name.to_string_lossy());
            // Followed inside the root; what is neither a regular file nor a mask (a
            // directory, a dangling symlink) is skipped and hides nothing.
            let st = crate::root::open_beneath(root, &rel, OFlags::PATH)
                .and_then(|fd| rustix::fs::fstat(&fd).map_err(io::Error::from));
            match st {
                Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                    FileType::CharacterDevice => {
                        chosen.insert(name, None);
                    }
                    FileType::RegularFile if st.st_size == 0 => {
                        chosen.insert(name, None);
                    }
                    FileType::RegularFile => {
                        chosen.insert(name, Some(rel));
                    }
                    _ => {}
                },
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => errors.push(io_err(format!("{shown}{rel}"), e)),
            }
        }
    }
    let mut out = Vec::new();
    for rel in chosen.into_values().flatten() {
        let path = format!("{shown}{rel}");
        match crate::smallfile::read_beneath(root, &rel, MAX_CERT_FILE) {
            Ok(bytes) => match TrustedCert::parse_file(&bytes, &path) {
                Ok(certs) => out.extend(certs),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(SignatureError::BadCertificate {
                path: PathBuf::from(path),
                reason: e.to_string(),
            }),
        }
    }
    (out, errors)
}

/// Like [`load_trusted`], also returning why files were skipped.
pub fn load_trusted_with_errors(dirs: &[&Path]) -> (Vec<TrustedCert>, Vec<SignatureError>) {
    use std::os::unix::fs::FileTypeExt;
    // File name -> the file to read, or None when masked.
    let mut chosen: std::collections::BTreeMap<std::ffi::OsString, Option<PathBuf>> =
        Default::default();
    let mut errors = Vec::new();
    for dir in dirs {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
            Err(source) => {
                errors.push(SignatureError::io(dir, source));
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let bytes = name.as_encoded_bytes();
            if !bytes.ends_with(b".crt") || bytes.starts_with(b".") || chosen.contains_key(&name) {
                continue;
            }
            let path = entry.path();
            // Following symlinks; entries that are neither regular files nor masks (a
            // directory, a dangling symlink) are skipped and hide nothing.
            match fs::metadata(&path) {
                Ok(m) if m.file_type().is_char_device() || (m.is_file() && m.len() == 0) => {
                    chosen.insert(name, None);
                }
                Ok(m) if m.is_file() => {
                    chosen.insert(name, Some(path));
                }
                Ok(_) => {}
                Err(source) => errors.push(SignatureError::io(path, source)),
            }
        }
    }
    let mut out = Vec::new();
    for path in chosen.into_values().flatten() {
        match TrustedCert::read_file(&path) {
            Ok(certs) => out.extend(certs),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(o: &ObjectIdentifier) -> Option<Hash> {
        Some(match *o {
            oid::SHA256 => Hash::Sha256,
            oid::SHA384 => Hash::Sha384,
            oid::SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec,
}

/// The key family a `signatureAlgorithm` asks for, and the hash it names (if any).
fn signature_algorithm(o: &ObjectIdentifier) -> Option<(KeyKind, Option<Hash>)> {
    Some(match *o {
        oid::RSA_ENCRYPTION => (KeyKind::Rsa, None),
        oid::SHA256_WITH_RSA => (KeyKind::Rsa, Some(Hash::Sha256)),
        oid::SHA384_WITH_RSA => (KeyKind::Rsa, Some(Hash::Sha384)),
        oid::SHA512_WITH_RSA => (KeyKind::Rsa, Some(Hash::Sha512)),
        oid::EC_PUBLIC_KEY => (KeyKind::Ec, None),
        oid::ECDSA_SHA256 => (KeyKind::Ec, Some(Hash::Sha256)),
        oid::ECDSA_SHA384 => (KeyKind::Ec, Some(Hash::Sha384)),
        oid::ECDSA_SHA512 => (KeyKind::Ec, Some(Hash::Sha512)),
        _ => return None,
    })
}

fn describe_signer(sid: &SignerIdentifier) -> String {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => format!(
            "issuer {}, serial {}",
            isn.issuer,
            encode_hex(isn.serial_number.as_bytes())
        ),
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("subject key identifier {}", encode_hex(ski.0.as_bytes()))
        }
    }
}

/// Verifies a verity signature: `sig.signature` must be a PKCS#7 / CMS signature, by one of
/// `trusted`, of `root_hash_hex` (the root hash the image is verified with, as hex; it is
/// lowercased, as the signed content is). `sig.root_hash` must be that same root hash, and
/// if `sig.certificate_fingerprint` is set, only the trusted certificate with that SHA-256
/// fingerprint may be the signer. Every SignerInfo must verify (as with OpenSSL).
///
/// Returns the certificate that verified the (first) signer.
pub fn verify_signature(
    sig: &VeritySignature,
    root_hash_hex: &str,
    trusted: &[TrustedCert],
) -> Result<TrustedCertInfo, SignatureError> {
    let content = root_hash_hex.trim().to_ascii_lowercase();
    match decode_hex(&content) {
        Some(rh) if rh == sig.root_hash => {}
        _ => {
            return Err(SignatureError::RootHashMismatch {
                signed: encode_hex(&sig.root_hash),
                expected: content,
            })
        }
    }

    let signed_data = parse_signed_data(&sig.signature)?;
    if signed_data.encap_content_info.econtent_type != oid::DATA {
        return Err(SignatureError::MalformedCms(format!(
            "content type is {}, not data",
            signed_data.encap_content_info.econtent_type
        )));
    }
    if let Some(embedded) = &signed_data.encap_content_info.econtent {
        // Not detached: the embedded content must be the root hash itself.
        let os: OctetString = embedded
            .decode_as()
            .map_err(|e| malformed("embedded content", e))?;
        if !os.as_bytes().eq_ignore_ascii_case(content.as_bytes()) {
            return Err(SignatureError::BadSignature(
                "the signature embeds content other than the root hash".into(),
            ));
        }
    }

    if trusted.is_empty() {
        return Err(SignatureError::NoTrustedCertificates);
    }
    // The certificateFingerprint restricts which trusted certificate may be the signer.
    let candidates: Vec<&TrustedCert> = match &sig.certificate_fingerprint {
        Some(fp) => {
            let c: Vec<&TrustedCert> = trusted
                .iter()
                .filter(|t| t.fingerprint[..] == fp[..])
                .collect();
            if c.is_empty() {
                return Err(SignatureError::FingerprintNotTrusted(encode_hex(fp)));
            }
            c
        }
        None => trusted.iter().collect(),
    };

    let mut first = None;
    for si in signed_data.signer_infos.0.iter() {
        // Normally one certificate matches; should several (same issuer and serial, or
        // subject key identifier), any of them may verify.
        let matching: Vec<&TrustedCert> = candidates
            .iter()
            .copied()
            .filter(|c| c.matches(&si.sid))
            .collect();
        let Some((head, rest)) = matching.split_first() else {
            let signer = describe_signer(&si.sid);
            if let Some(fp) = &sig.certificate_fingerprint {
                if trusted.iter().any(|t| t.matches(&si.sid)) {
                    return Err(SignatureError::FingerprintMismatch {
                        signer,
                        fingerprint: encode_hex(fp),
                    });
                }
            }
            return Err(SignatureError::NoMatchingCertificate {
                signer,
                trusted: trusted.len(),
            });
        };
        // The first that verifies, else the first certificate's error.
        let mut result = verify_signer(si, &signed_data, content.as_bytes(), head);
        for cert in rest {
            if result.is_ok() {
                break;
            }
            if let Ok(info) = verify_signer(si, &signed_data, content.as_bytes(), cert) {
                result = Ok(info);
            }
        }
        first.get_or_insert(result?);
    }
    // No signer at all: nothing was verified.
    first.ok_or_else(|| SignatureError::MalformedCms("no SignerInfo".into()))
}

fn parse_signed_data(der: &[u8]) -> Result<SignedData, SignatureError> {
    if der.is_empty() {
        return Err(SignatureError::MalformedCms("empty signature".into()));
    }
    let ci = ContentInfo::from_der(der).map_err(|e| malformed("ContentInfo", e))?;
    if ci.content_type != oid::SIGNED_DATA {
        return Err(SignatureError::MalformedCms(format!(
            "content type is {}, not signedData",
            ci.content_type
        )));
    }
    ci.content
        .decode_as::<SignedData>()
        .map_err(|e| malformed("SignedData", e))
}

fn verify_signer(
    si: &SignerInfo,
    sd: &SignedData,
    content: &[u8],
    cert: &TrustedCert,
) -> Result<TrustedCertInfo, SignatureError> {
    let (hash, kind) = signer_algorithms(si)?;
    let message = signed_message(si, sd, content, hash)?;
    let digest = hash.digest(&message);
    let signature = si.signature.as_bytes();
    let spki = cert.spki();
    let algorithm = match (kind, spki.algorithm.oid) {
        (KeyKind::Rsa, oid::RSA_ENCRYPTION) => verify_rsa(cert, hash, &digest, signature)?,
        (KeyKind::Ec, oid::EC_PUBLIC_KEY) => verify_ec(cert, hash, &digest, signature)?,
        (_, key_oid) if signature_algorithm(&key_oid).is_some() => {
            return Err(SignatureError::BadSignature(format!(
                "signature algorithm {} does not fit the {} key of {}",
                si.signature_algorithm.oid,
                if key_oid == oid::RSA_ENCRYPTION {
                    "RSA"
                } else {
                    "EC"
                },
                cert.path.display()
            )))
        }
        (_, key_oid) => {
            return Err(SignatureError::UnsupportedAlgorithm {
                kind: "public key",
                oid: key_oid.to_string(),
            })
        }
    };
    Ok(TrustedCertInfo {
        path: cert.path.clone(),
        subject: cert.subject(),
        fingerprint: cert.fingerprint,
        algorithm,
        signed_attributes: si.signed_attrs.is_some(),
    })
}

/// The digest algorithm of a signer and the key kind of its signature algorithm, which
/// must agree where the signature algorithm names a digest too.
fn signer_algorithms(si: &SignerInfo) -> Result<(Hash, KeyKind), SignatureError> {
    let hash =
        Hash::from_oid(&si.digest_alg.oid).ok_or_else(|| SignatureError::UnsupportedAlgorithm {
            kind: "digest",
            oid: si.digest_alg.oid.to_string(),
        })?;
    let (kind, sig_hash) = signature_algorithm(&si.signature_algorithm.oid).ok_or_else(|| {
        SignatureError::UnsupportedAlgorithm {
            kind: "signature",
            oid: si.signature_algorithm.oid.to_string(),
        }
    })?;
    if sig_hash.is_some_and(|h| h != hash) {
        return Err(SignatureError::MalformedCms(format!(
            "signature algorithm {} does not match digest algorithm {}",
            si.signature_algorithm.oid,
            hash.name()
        )));
    }

    Ok((hash, kind))
}

/// What the signature covers: the content, or the DER of the signed attributes (as a SET
/// OF, not the [0] IMPLICIT form they are stored in), whose message digest must be the
/// content's and whose content type the content's.
fn signed_message(
    si: &SignerInfo,
    sd: &SignedData,
    content: &[u8],
    hash: Hash,
) -> Result<Vec<u8>, SignatureError> {
    Ok(match &si.signed_attrs {
        None => content.to_vec(),
        Some(attrs) => {
            let mut digest_seen = false;
            for attr in attrs.iter() {
                if attr.oid == oid::ATTR_MESSAGE_DIGEST {
                    let (false, [value]) = (digest_seen, attr.values.as_slice()) else {
                        return Err(SignatureError::MalformedCms(
                            "message-digest attribute must occur once with one value".into(),
                        ));
                    };
                    digest_seen = true;
                    let v: OctetString = value
                        .decode_as()
                        .map_err(|e| malformed("message-digest attribute", e))?;
                    if v.as_bytes() != hash.digest(content) {
                        return Err(SignatureError::BadSignature(
                            "message digest does not match the root hash".into(),
                        ));
                    }
                } else if attr.oid == oid::ATTR_CONTENT_TYPE {
                    let ok = attr.values.len() == 1
                        && attr
                            .values
                            .get(0)
                            .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
                            == Some(sd.encap_content_info.econtent_type);
                    if !ok {
                        return Err(SignatureError::MalformedCms(
                            "content-type attribute does not match the content".into(),
                        ));
                    }
                }
            }
            if !digest_seen {
                return Err(SignatureError::MalformedCms(
                    "signed attributes without message-digest".into(),
                ));
            }
            attrs
                .to_der()
                .map_err(|e| malformed("signed attributes", e))?
        }
    })
}

/// An RSA PKCS#1 v1.5 signature of `digest` by the key of `cert`.
fn verify_rsa(
    cert: &TrustedCert,
    hash: Hash,
    digest: &[u8],
    signature: &[u8],
) -> Result<String, SignatureError> {
    let spki = cert.spki();
    let bad = |e: &dyn fmt::Display| SignatureError::BadSignature(format!("{e}"));
    let spki_der = spki
        .to_der()
        .map_err(|e| cert_error(cert, format!("public key: {e}")))?;
    let spki_ref = spki::SubjectPublicKeyInfoRef::from_der(&spki_der)
        .map_err(|e| cert_error(cert, format!("public key: {e}")))?;
    let key = rsa::PublicKey::try_from(spki_ref)
        .map_err(|e| cert_error(cert, format!("RSA public key: {e}")))?;
    let scheme = match hash {
        Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
        Hash::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
        Hash::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
    };
    key.verify(scheme, digest, signature).map_err(|e| bad(&e))?;
    Ok(format!("rsa-pkcs1v15-{}", hash.name()))
}

/// An ECDSA signature (P-256 or P-384) of `digest` by the key of `cert`.
fn verify_ec(
    cert: &TrustedCert,
    hash: Hash,
    digest: &[u8],
    signature: &[u8],
) -> Result<String, SignatureError> {
    let spki = cert.spki();
    let bad = |e: &dyn fmt::Display| SignatureError::BadSignature(format!("{e}"));
    use ecdsa::signature::hazmat::PrehashVerifier;
    let curve: ObjectIdentifier = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as().ok())
        .ok_or_else(|| cert_error(cert, "EC key without a named curve".into()))?;
    let point = spki.subject_public_key.raw_bytes();
    Ok(match curve {
        oid::P256 => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|e| cert_error(cert, format!("P-256 public key: {e}")))?;
            let s = p256::ecdsa::DerSignature::from_bytes(signature)
                .map_err(|e| bad(&format_args!("not a DER ECDSA signature: {e}")))?;
            key.verify_prehash(digest, &s).map_err(|e| bad(&e))?;
            format!("ecdsa-p256-{}", hash.name())
        }
        oid::P384 => {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|e| cert_error(cert, format!("P-384 public key: {e}")))?;
            let s = p384::ecdsa::DerSignature::from_bytes(signature)
                .map_err(|e| bad(&format_args!("not a DER ECDSA signature: {e}")))?;
            key.verify_prehash(digest, &s).map_err(|e| bad(&e))?;
            format!("ecdsa-p384-{}", hash.name())
        }
        other => {
            return Err(SignatureError::UnsupportedAlgorithm {
                kind: "elliptic curve",
                oid: other.to_string(),
            })
        }
    })
}

fn cert_error(cert: &TrustedCert, reason: String) -> SignatureError {
    SignatureError::BadCertificate {
        path: cert.path.clone(),
        reason,
    }
}
