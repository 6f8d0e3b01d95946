//! Verity for one data region: what protection it gets (given its root hash, signature and
//! the policy), its check in userspace where there is no device-mapper, and its mount
//! through a dm-verity device where there is.

use super::region::{available, Span};
use super::Opener;
use crate::image::error::{ImageError, ImagePart};
use crate::image::policy::{PartitionDesignator, Protection};
use crate::image::superblock::FsType;
use crate::image::verity;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::fs::File;

/// The verity parts of one data region: the data, its hash tree, its signature.
pub(super) struct VerityParts {
    pub(super) data: ImagePart,
    pub(super) tree: ImagePart,
    pub(super) sig: Option<ImagePart>,
}

/// What an image offers to protect one data region: the hash tree's place, the root hash
/// and a signature of it (each may be missing).
pub(super) struct VerityClaim<'a> {
    pub(super) hash: Option<Span>,
    pub(super) root_hash: Option<&'a [u8]>,
    pub(super) sig: Option<&'a verity::VeritySignature>,
}

/// A region to be mounted through dm-verity: the kernel checks every block on every read.
pub(super) struct DmPlan<'a> {
    /// The file holding the hash tree (the image, or the `.verity` sidecar) and the tree's
    /// region in it.
    hash_file: &'a File,
    hash: Span,
    root_hash: Vec<u8>,
    /// The PKCS#7 signature for the kernel, and whether the kernel must accept it (it was
    /// not verified in userspace).
    signature: Option<(Vec<u8>, bool)>,
}

/// Where the trusted certificates for a signature check are read (see
/// [`crate::level::Compat::reads_verity_certs_in_root`]).
#[derive(Clone, Copy)]
pub(super) enum Trust<'a> {
    /// The host's `verity.d` directories (systemd 257).
    Host,
    /// The `verity.d` directories below this root (systemd 259 and newer).
    Beneath(BorrowedFd<'a>),
}

impl Opener<'_> {
    /// What protection the region `data` of `file` gets, given what the image claims and the
    /// policy, and (with device-mapper) how to set up dm-verity for it. Without
    /// device-mapper the region is verified once in userspace, where the caller's policy asks
    /// for verity explicitly.
    pub(super) fn decide_verity<'f>(
        &self,
        file: &File,
        hash_file: &'f File,
        d: PartitionDesignator,
        data: Span,
        claim: VerityClaim<'_>,
        parts: &VerityParts,
    ) -> Result<(Protection, Option<DmPlan<'f>>), ImageError> {
        let (Some(hash), Some(rh)) = (claim.hash, claim.root_hash) else {
            // No root hash: verity cannot be set up; the region is used unprotected.
            return Ok((Protection::Unprotected, None));
        };
        let dm = crate::image::dmverity::available();
        if !dm && !self.explicit_policy {
            // systemd-sysext sets up dm-verity here and fails without device-mapper.
            return Err(ImageError::NeedsDeviceMapper {
                part: parts.data.clone(),
                designator: d,
                device_mapper: false,
            });
        }
        if !dm {
            verify_userspace(file, hash_file, data, hash, rh, parts)?;
        }
        let plan = |signature| DmPlan {
            hash_file,
            hash,
            root_hash: rh.to_vec(),
            signature,
        };
        // With a signature partition, the PKCS#7 signature of the root hash is checked
        // against the trusted certificates (/etc/verity.d, …); without one the region counts
        // as verity-protected.
        let Some(sig) = claim.sig else {
            return Ok((Protection::Verity, dm.then(|| plan(None))));
        };
        let hex: String = rh.iter().map(|b| format!("{b:02x}")).collect();
        match crate::image::signature::verify_signature(sig, &hex, &self.trusted()) {
            // Accepted: the kernel gets the signature too, where it can check it.
            Ok(_) => Ok((
                Protection::Signed,
                dm.then(|| plan(Some((sig.signature.clone(), false)))),
            )),
            // Without device-mapper (userspace check), a policy that takes plain verity
            // takes the image as verity-protected.
            Err(_) if !dm && self.policy.check(d, Protection::Verity).is_ok() => {
                Ok((Protection::Verity, None))
            }
            // Not trusted here: the kernel's keyring may still vouch for the signer, as
            // systemd lets it; if it does not, the image fails (as systemd's activation
            // does, whatever the policy).
            Err(_) if dm && sig.root_hash == rh => Ok((
                Protection::Signed,
                Some(plan(Some((sig.signature.clone(), true)))),
            )),
            Err(e) => Err(ImageError::Policy(format!(
                "partition '{d}': verity signature not accepted{}: {e}",
                match &parts.sig {
                    Some(ImagePart::VeritySignature { number, .. }) => {
                        format!(" (partition {number})")
                    }
                    _ => String::new(),
                }
            ))),
        }
    }

    /// The trusted certificates for signature checks.
    fn trusted(&self) -> Vec<crate::image::signature::TrustedCert> {
        match self.trust {
            Trust::Host => crate::image::signature::load_default_trusted(),
            Trust::Beneath(root) => {
                let shown = crate::root::fd_path(root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                crate::image::signature::load_trusted_beneath(root, &shown).0
            }
        }
    }

    /// The root hash of a naked image from its `NAME.roothash` sidecar (hex).
    pub(super) fn roothash_sidecar(&self) -> Option<Vec<u8>> {
        let stem = self.stem();
        // A regular file of at most 4 KiB (a root hash is 64 to 128 hex digits).
        let bytes =
            crate::smallfile::read_beneath(self.root, &format!("{stem}.roothash"), 4096).ok()?;
        verity::decode_hex(std::str::from_utf8(&bytes).ok()?.trim())
    }

    /// The image path without `.raw`: the sidecar files are named after it.
    pub(super) fn stem(&self) -> &str {
        self.image_rel
            .strip_suffix(".raw")
            .unwrap_or(self.image_rel)
    }

    /// Mount the region `data` of `file` through a dm-verity device (set up, or shared with
    /// another merge of the same image).
    pub(super) fn mount_dm_verity(
        &self,
        file: &File,
        data: Span,
        plan: &DmPlan<'_>,
        fstype: FsType,
        parts: &VerityParts,
    ) -> Result<OwnedFd, ImageError> {
        let bad = |e| verity_error(e, parts);
        let sb = verity::VeritySuperblock::read(plan.hash_file, plan.hash.0).map_err(bad)?;
        let size = sb.data_blocks.saturating_mul(u64::from(sb.data_block_size));
        let avail = available(file, data);
        if size == 0 || size > avail {
            return Err(ImageError::Verity {
                part: parts.tree.clone(),
                source: verity::VerityError::DataTooSmall {
                    needed: size,
                    available: avail,
                },
            });
        }
        let Some(algorithm) = verity::HashAlgorithm::from_name(&sb.algorithm) else {
            return Err(bad(verity::VerityError::UnsupportedAlgorithm(
                sb.algorithm.clone(),
            )));
        };
        if plan.root_hash.len() != algorithm.digest_size() {
            return Err(bad(verity::VerityError::RootHashLength {
                algorithm: sb.algorithm.clone(),
                expected: algorithm.digest_size(),
                got: plan.root_hash.len(),
            }));
        }
        (self.step)("verity device")
            .map_err(|e| ImageError::io(parts.data.clone(), "set up dm-verity for", e))?;
        let dmv = crate::image::dmverity::activate(
            crate::image::dmverity::Region {
                file,
                offset: data.0,
                size: data.1,
            },
            crate::image::dmverity::Region {
                file: plan.hash_file,
                offset: plan.hash.0,
                size: plan.hash.1,
            },
            &sb,
            &plan.root_hash,
            plan.signature.as_ref().map(
                |(pkcs7, required)| crate::image::dmverity::KernelSignature {
                    pkcs7,
                    required: *required,
                },
            ),
        )
        .map_err(|e| {
            if e.signature_rejected {
                ImageError::Policy(format!(
                    "{}: verity signature not accepted: no trusted certificate in verity.d matches, and the kernel's keyring does not vouch for the signer either ({})",
                    parts.data,
                    e.source
                ))
            } else {
                ImageError::io(parts.data.clone(), e.op, e.source)
            }
        })?;
        // The file system holds the device from here; our descriptor goes, and with it
        // (once unmounted) the device, by its deferred removal.
        self.mount_fs(
            fstype,
            &crate::root::proc_fd_path(dmv.node.as_fd()),
            &parts.data,
        )
    }
}

/// A verity failure, blamed on the data (a data block that does not match) or on the tree.
fn verity_error(e: verity::VerityError, parts: &VerityParts) -> ImageError {
    let part = match e {
        verity::VerityError::DataBlockMismatch { .. }
        | verity::VerityError::DataTooSmall { .. } => parts.data.clone(),
        _ => parts.tree.clone(),
    };
    ImageError::Verity { part, source: e }
}

/// Verify a verity-protected region in userspace (no device-mapper needed).
fn verify_userspace(
    file: &File,
    hash_file: &File,
    data: Span,
    hash: Span,
    root_hash: &[u8],
    parts: &VerityParts,
) -> Result<(), ImageError> {
    let bad = |e| verity_error(e, parts);
    // The superblock says how much of the (possibly larger, aligned) partition is data.
    let sb = verity::VeritySuperblock::read(hash_file, hash.0).map_err(bad)?;
    let size = sb.data_blocks.saturating_mul(u64::from(sb.data_block_size));
    if size == 0 || size > data.1 {
        return Err(ImageError::Verity {
            part: parts.tree.clone(),
            source: verity::VerityError::DataTooSmall {
                needed: size,
                available: data.1,
            },
        });
    }
    verity::verify_with_superblock(&sb, file, data.0, size, hash_file, hash.0, root_hash)
        .map_err(bad)
}

/// Where verity is checked, for the debug log: by the kernel on every read (dm-verity), or
/// once, before mounting, in userspace (no device-mapper).
pub(super) fn protection_note(p: Protection, plan: Option<&DmPlan<'_>>) -> Option<String> {
    match (p, plan) {
        (Protection::Verity | Protection::Signed, Some(_)) => Some(format!(
            "{p}: dm-verity, every block checked by the kernel on every read."
        )),
        (Protection::Verity | Protection::Signed, None) => Some(format!(
            "{p}: no device-mapper here, verified once in userspace before mounting (not dm-verity: later changes to the file are not caught)."
        )),
        _ => None,
    }
}

/// `SYSTEMD_DISSECT_VERITY_GUESS=0` (or another false value) turns the root hash discovery
/// from partition UUIDs off, as in systemd.
pub(super) fn guess_enabled() -> bool {
    match std::env::var("SYSTEMD_DISSECT_VERITY_GUESS") {
        Ok(v) => !matches!(
            v.to_ascii_lowercase().as_str(),
            "0" | "no" | "n" | "false" | "f" | "off"
        ),
        Err(_) => true,
    }
}
