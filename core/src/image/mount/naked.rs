//! A naked file system image (erofs, squashfs, ext4, btrfs as the whole file), protected by
//! verity through its `NAME.roothash` and `NAME.verity` sidecars (and `NAME.roothash.p7s`).

use super::protect::{protection_note, VerityClaim, VerityParts};
use super::region::check_complete;
use super::{MountedImage, Opener, VerityCheck};
use crate::image::error::{ImageError, ImagePart};
use crate::image::policy::{PartitionDesignator, Protection};
use crate::image::superblock::FsType;
use crate::image::verity;
use std::fs::File;

impl Opener<'_> {
    /// Mount `file` (`size` bytes), whose superblock says it is `fstype`.
    pub(super) fn naked(
        &self,
        file: &File,
        size: u64,
        fstype: FsType,
        from_file: bool,
    ) -> Result<MountedImage, ImageError> {
        let d = PartitionDesignator::Root;
        let sb = ImagePart::Superblock;
        let parts = VerityParts {
            data: ImagePart::File,
            tree: ImagePart::VerityTree {
                number: None,
                designator: d,
            },
            sig: None,
        };
        let root_hash = self.roothash_sidecar();
        let tree_file = root_hash.as_ref().and_then(|_| self.sidecar_tree());
        let (protection, plan) = match (&root_hash, &tree_file) {
            (Some(rh), Some(tree_file)) => {
                let sig = self.sidecar_signature(rh);
                let claim = VerityClaim {
                    hash: Some((0, 0)),
                    root_hash: Some(rh),
                    sig: sig.as_ref(),
                };
                self.decide_verity(file, tree_file, d, (0, size), claim, &parts)?
            }
            _ => (Protection::Unprotected, None),
        };
        self.check_policy(d, protection)?;
        self.check_fstype(d, fstype)?;
        check_complete(file, (0, size), fstype, &sb)?;
        let tree = match &plan {
            Some(plan) => self.mount_dm_verity(file, (0, size), plan, fstype, &parts)?,
            None => self.mount_region(file, (0, 0), fstype, from_file, &sb)?,
        };
        Ok(MountedImage {
            tree,
            notes: protection_note(protection, plan.as_ref())
                .into_iter()
                .collect(),
            verity: VerityCheck::of(protection, plan.as_ref()),
        })
    }

    /// The hash tree of a naked image: `NAME.verity` beside it.
    fn sidecar_tree(&self) -> Option<File> {
        let vpath = format!("{}.verity", self.stem());
        crate::smallfile::open_checked(|f| crate::root::open_beneath(self.root, &vpath, f))
            .ok()
            .map(File::from)
    }

    /// A detached signature of the root hash (`NAME.roothash.p7s`, DER PKCS#7).
    fn sidecar_signature(&self, root_hash: &[u8]) -> Option<verity::VeritySignature> {
        let p7s = format!("{}.roothash.p7s", self.stem());
        crate::smallfile::read_beneath(self.root, &p7s, 1 << 20)
            .ok()
            .map(|der| verity::VeritySignature {
                root_hash: root_hash.to_vec(),
                signature: der,
                certificate_fingerprint: None,
            })
    }
}
