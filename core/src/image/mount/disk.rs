//! A GPT disk image (Discoverable Partitions Specification): the partitions chosen for this
//! architecture and policy, each mounted (through dm-verity where it has a root hash), the
//! usr partition on `usr/` of the root partition's tree (or of an empty tmpfs).

use super::protect::{guess_enabled, protection_note, VerityClaim, VerityParts};
use super::region::check_complete;
use super::{MountedImage, Opener, VerityCheck};
use crate::image::error::{ImageError, ImagePart};
use crate::image::gpt::{self, SelectOptions, Selection};
use crate::image::policy::PartitionDesignator;
use crate::image::superblock;
use crate::image::verity;
use rustix::fd::OwnedFd;
use rustix::fs::Mode;
use rustix::mount::{MountAttrFlags, MoveMountFlags};
use std::fs::File;

/// A data partition and its verity partitions' designators.
struct DataPartition<'p> {
    part: &'p gpt::Part,
    data: PartitionDesignator,
    tree: PartitionDesignator,
    sig: PartitionDesignator,
}

/// The partitions chosen, with and without the policy.
struct Chosen {
    sel: Selection,
    /// The same table selected without a policy, to find a signature partition whose root
    /// hash can still serve for userspace verification when the policy ignores the
    /// signature itself.
    unrestricted: Option<Selection>,
}

/// One mounted partition.
struct Mounted {
    tree: OwnedFd,
    note: Option<String>,
    verity: Option<VerityCheck>,
}

impl Opener<'_> {
    /// Mount the disk image `file` (`size` bytes), or fail if it is no GPT disk image.
    pub(super) fn disk(&self, file: &File, size: u64) -> Result<MountedImage, ImageError> {
        let table_part = ImagePart::PartitionTable;
        if !gpt::is_gpt(file, size).map_err(|e| ImageError::io(table_part.clone(), "read", e))? {
            return Err(ImageError::Unrecognised);
        }
        let table = gpt::read(file, size).map_err(|e| match e {
            gpt::GptError::Io(e) => ImageError::io(table_part.clone(), "read", e),
            source => ImageError::PartitionTable { source },
        })?;
        let mut notes = Vec::new();
        if let Some(why) = &table.primary_broken {
            notes.push(format!(
                "The primary GPT header is broken ({why}); using the backup GPT header at the end of the image."
            ));
        }
        let chosen = self.choose(&table)?;
        // Where verity is checked: the usr partition's where there is one (its protection
        // is the image's, below), else the root partition's.
        let mut verity = None;
        let mut mount = |m: Mounted| {
            notes.extend(m.note);
            verity = m.verity;
            m.tree
        };
        let root = match &chosen.sel.root {
            Some(part) => {
                let p = DataPartition {
                    part,
                    data: PartitionDesignator::Root,
                    tree: PartitionDesignator::RootVerity,
                    sig: PartitionDesignator::RootVeritySig,
                };
                Some(mount(self.mount_partition(file, &chosen, &p)?))
            }
            None => None,
        };
        let usr = match &chosen.sel.usr {
            Some(part) => {
                let p = DataPartition {
                    part,
                    data: PartitionDesignator::Usr,
                    tree: PartitionDesignator::UsrVerity,
                    sig: PartitionDesignator::UsrVeritySig,
                };
                Some((part.number, mount(self.mount_partition(file, &chosen, &p)?)))
            }
            None => None,
        };
        let tree = match (root, usr) {
            (Some(root), None) => root,
            (root, Some((number, usr))) => self.attach_usr(root, usr, number)?,
            (None, None) => {
                return Err(ImageError::PartitionSelection {
                    source: gpt::SelectError::NoRootOrUsr,
                })
            }
        };
        Ok(MountedImage {
            tree,
            notes,
            verity,
        })
    }

    /// The partitions of `table` chosen for this architecture and policy.
    fn choose(&self, table: &gpt::GptTable) -> Result<Chosen, ImageError> {
        let mut opts = SelectOptions::new(crate::arch::native());
        opts.policy = Some(self.policy);
        let sel = gpt::select_with(table, &opts).map_err(|e| match e {
            gpt::SelectError::Policy(v) => ImageError::Policy(v.to_string()),
            source => ImageError::PartitionSelection { source },
        })?;
        let unrestricted = gpt::select_with(
            table,
            &SelectOptions {
                policy: None,
                ..opts
            },
        )
        .ok();
        Ok(Chosen { sel, unrestricted })
    }

    /// Check and mount one data partition, through dm-verity where it has a root hash.
    fn mount_partition(
        &self,
        file: &File,
        chosen: &Chosen,
        p: &DataPartition<'_>,
    ) -> Result<Mounted, ImageError> {
        let (d, part) = (p.data, p.part);
        let data_part = ImagePart::Partition {
            number: part.number,
            designator: d,
        };
        let hash_p = chosen.sel.get(p.tree);
        let hash = hash_p.map(|h| (h.offset, h.size));
        // A signature partition the policy ignores may lend its root hash (to a region with
        // a hash tree), but does not count.
        let sig_part = chosen.sel.get(p.sig).or_else(|| {
            hash.and(chosen.unrestricted.as_ref())
                .and_then(|u| u.get(p.sig))
        });
        let parts = VerityParts {
            data: data_part.clone(),
            tree: ImagePart::VerityTree {
                number: hash_p.map(|h| h.number),
                designator: d,
            },
            sig: sig_part.map(|s| ImagePart::VeritySignature {
                number: s.number,
                designator: d,
            }),
        };
        let sig = match sig_part {
            Some(s) => Some(verity::read_signature(file, s.offset, s.size).map_err(|e| {
                ImageError::Signature {
                    part: ImagePart::VeritySignature {
                        number: s.number,
                        designator: d,
                    },
                    reason: e.to_string(),
                }
            })?),
            None => None,
        };
        let guessed = match hash_p {
            Some(h) if self.guess_root_hash && guess_enabled() => {
                Some([part.uuid.0, h.uuid.0].concat())
            }
            _ => None,
        };
        let root_hash = sig
            .as_ref()
            .map(|s| s.root_hash.clone())
            .or_else(|| self.roothash_sidecar())
            .or(guessed);
        let claim = VerityClaim {
            hash,
            root_hash: root_hash.as_deref(),
            sig: sig.as_ref().filter(|_| chosen.sel.get(p.sig).is_some()),
        };
        let span = (part.offset, part.size);
        let (protection, plan) = self.decide_verity(file, file, d, span, claim, &parts)?;
        self.check_policy(d, protection)?;
        self.policy
            .check_gpt_flags(d, part.flags)
            .map_err(|v| ImageError::Policy(v.to_string()))?;
        let sb_part = ImagePart::PartitionSuperblock {
            number: part.number,
            designator: d,
        };
        let fstype = superblock::detect(file, part.offset, part.size)
            .map_err(|e| ImageError::io(sb_part.clone(), "read", e))?
            .ok_or_else(|| ImageError::NoFileSystem {
                part: data_part.clone(),
            })?;
        self.check_fstype(d, fstype)?;
        check_complete(file, span, fstype, &sb_part)?;
        let tree = match &plan {
            Some(plan) => self.mount_dm_verity(file, span, plan, fstype, &parts)?,
            None => self.mount_region(file, span, fstype, false, &sb_part)?,
        };
        Ok(Mounted {
            tree,
            note: protection_note(protection, plan.as_ref()),
            verity: VerityCheck::of(protection, plan.as_ref()),
        })
    }

    /// The image's tree: the usr partition `usr` (number `number`) on `usr/` of the root
    /// partition's tree, or of an empty tmpfs when there is no root partition.
    fn attach_usr(
        &self,
        root: Option<OwnedFd>,
        usr: OwnedFd,
        number: u32,
    ) -> Result<OwnedFd, ImageError> {
        let part = ImagePart::Partition {
            number,
            designator: PartitionDesignator::Usr,
        };
        let io = |op, e: rustix::io::Errno| ImageError::io(part.clone(), op, e);
        // /usr comes from the usr partition, everything else from root (if any).
        let tree = match root {
            Some(r) => r,
            None => {
                let op = "make the tmpfs root above";
                let t = crate::fscontext::detached_tmpfs("0755", MountAttrFlags::MOUNT_ATTR_NODEV)
                    .map_err(|e| io(op, e))?;
                rustix::fs::mkdirat(&t, "usr", Mode::from_raw_mode(0o755))
                    .map_err(|e| io(op, e))?;
                t
            }
        };
        (self.step)("attach usr partition")
            .map_err(|e| ImageError::io(part.clone(), "attach at usr/", e))?;
        if self
            .kernel
            .has(crate::kernel::KernelFeatures::MOUNT_ON_DETACHED)
        {
            rustix::mount::move_mount(
                &usr,
                "",
                &tree,
                "usr",
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(|e| io("attach at usr/", e))?;
            Ok(tree)
        } else {
            // Before 6.15 a mount cannot go inside a detached tree: compose it in a private
            // staging namespace and take a detached copy of the result.
            crate::exec::staged::compose(tree, vec![("usr".to_string(), usr)])
                .map_err(|e| ImageError::io(part.clone(), "attach at usr/", e))
        }
    }
}
