//! Picking the partitions of a DDI by the Discoverable Partitions Specification, as systemd
//! 257 dissects extension images.

use std::cmp::Ordering;

use super::{
    dps, GptPartition, GptTable, Guid, PartitionKind, FLAG_GROWFS, FLAG_NO_AUTO,
    FLAG_NO_BLOCK_IO_PROTOCOL, FLAG_READ_ONLY,
};
use crate::image::policy::{ImagePolicy, PartitionDesignator, PolicyFlags, PolicyViolation};
use crate::version::strverscmp_improved;

/// A partition chosen by the partition selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Partition number (1-based).
    pub number: u32,
    /// What its type GUID stands for.
    pub kind: PartitionKind,
    /// The architecture of an architecture-specific DPS type.
    pub arch: Option<&'static str>,
    /// The unique partition GUID.
    pub uuid: Guid,
    /// The partition name (label).
    pub label: String,
    /// Byte offset in the image.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// GPT attribute bits.
    pub flags: u64,
}

impl Part {
    fn from_gpt(p: &GptPartition, kind: PartitionKind) -> Part {
        let arch = match kind {
            PartitionKind::Dps { arch, .. } => arch,
            PartitionKind::LinuxGeneric => None,
        };
        Part {
            number: p.number,
            kind,
            arch,
            uuid: p.uuid,
            label: p.name.clone(),
            offset: p.offset,
            size: p.size,
            flags: p.flags,
        }
    }

    /// The DPS read-only flag (bit 60) is set.
    pub fn read_only(&self) -> bool {
        self.flags & FLAG_READ_ONLY != 0
    }

    /// The DPS growfs flag (bit 59) is set.
    pub fn growfs(&self) -> bool {
        self.flags & FLAG_GROWFS != 0
    }

    /// Whether this is a generic Linux partition (used as root for lack of a DPS one).
    pub fn is_generic(&self) -> bool {
        self.kind == PartitionKind::LinuxGeneric
    }
}

/// The partitions to use from an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The root partition. A lone generic Linux partition is used as root when no DPS root
    /// or usr partition exists (then `root == generic`).
    pub root: Option<Part>,
    /// The usr partition.
    pub usr: Option<Part>,
    /// The verity hash tree of the root partition.
    pub root_verity: Option<Part>,
    /// The root hash signature of the root partition.
    pub root_verity_sig: Option<Part>,
    /// The verity hash tree of the usr partition.
    pub usr_verity: Option<Part>,
    /// The root hash signature of the usr partition.
    pub usr_verity_sig: Option<Part>,
    /// The generic Linux partition adopted as root, if that happened.
    pub generic: Option<Part>,
    /// Other DPS partitions found and allowed by the policy (home, srv, esp, …).
    pub other: Vec<(PartitionDesignator, Part)>,
    /// Designators of partitions that exist but are ignored by the policy.
    pub ignored: Vec<PartitionDesignator>,
}

impl Selection {
    /// The selected partition for a designator.
    pub fn get(&self, d: PartitionDesignator) -> Option<&Part> {
        use PartitionDesignator as D;
        match d {
            D::Root => self.root.as_ref(),
            D::Usr => self.usr.as_ref(),
            D::RootVerity => self.root_verity.as_ref(),
            D::RootVeritySig => self.root_verity_sig.as_ref(),
            D::UsrVerity => self.usr_verity.as_ref(),
            D::UsrVeritySig => self.usr_verity_sig.as_ref(),
            _ => self.other.iter().find(|(od, _)| *od == d).map(|(_, p)| p),
        }
    }

    fn slot(&mut self, d: PartitionDesignator) -> Option<&mut Option<Part>> {
        use PartitionDesignator as D;
        match d {
            D::Root => Some(&mut self.root),
            D::Usr => Some(&mut self.usr),
            D::RootVerity => Some(&mut self.root_verity),
            D::RootVeritySig => Some(&mut self.root_verity_sig),
            D::UsrVerity => Some(&mut self.usr_verity),
            D::UsrVeritySig => Some(&mut self.usr_verity_sig),
            _ => None,
        }
    }

    /// The protection state of a partition as the policy check sees it before file systems
    /// are probed: a data partition with verity is `verity` (plus a signature partition:
    /// `signed`), without it `encrypted` or `unprotected` (not known yet); an ignored one is
    /// `unused`, a missing one `absent`.
    pub fn protection(&self, d: PartitionDesignator) -> PolicyFlags {
        if self.get(d).is_some() {
            match d.verity() {
                Some(v) if self.get(v).is_some() => {
                    if d.verity_sig().is_some_and(|s| self.get(s).is_some()) {
                        PolicyFlags::SIGNED
                    } else {
                        PolicyFlags::VERITY
                    }
                }
                _ => PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED,
            }
        } else if self.ignored.contains(&d) {
            PolicyFlags::UNUSED
        } else {
            PolicyFlags::ABSENT
        }
    }
}

/// Why no usable set of partitions could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// A verity partition without the data partition it protects.
    #[error("a {designator} partition exists, but no matching {data} partition")]
    VerityWithoutData {
        /// The verity partition found.
        designator: PartitionDesignator,
        /// The data partition missing.
        data: PartitionDesignator,
    },
    /// A signature partition without the verity partition it signs.
    #[error("a {designator} partition exists, but no matching verity partition")]
    SignatureWithoutVerity {
        /// The signature partition found.
        designator: PartitionDesignator,
    },
    /// The root and usr partitions are for different CPU architectures.
    #[error(
        "the root partition ({root}) and the usr partition ({usr}) are for different architectures"
    )]
    ArchitectureMismatch {
        /// The root partition's architecture.
        root: &'static str,
        /// The usr partition's architecture.
        usr: &'static str,
    },
    /// Several generic Linux partitions, none of them designated.
    #[error("more than one generic Linux partition and no root or usr partition")]
    MultipleGeneric,
    /// Neither a root nor a usr partition.
    #[error("no root or usr partition found")]
    NoRootOrUsr,
    /// Verity partitions for both root and usr.
    #[error("verity partitions for both root and usr found")]
    MultipleVerity,
    /// A verity-protected root next to a usr partition.
    #[error("a verity-protected root partition cannot be combined with a usr partition")]
    VerityRootWithUsr,
    /// No partition that can be used at all.
    #[error("no usable partition found")]
    NoPartitions,
    /// The partitions do not satisfy the image policy.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
}

impl SelectError {
    /// The errno systemd reports in the same situation.
    pub fn errno(&self) -> i32 {
        match self {
            SelectError::VerityWithoutData { .. }
            | SelectError::SignatureWithoutVerity { .. }
            | SelectError::ArchitectureMismatch { .. }
            | SelectError::VerityRootWithUsr => libc::EADDRNOTAVAIL,
            SelectError::MultipleGeneric | SelectError::MultipleVerity => libc::ENOTUNIQ,
            SelectError::NoRootOrUsr => libc::ENXIO,
            SelectError::NoPartitions => libc::ENOMSG,
            SelectError::Policy(_) => libc::ERFKILL,
        }
    }
}

/// Options for the partition selection.
#[derive(Debug, Clone, Copy)]
pub struct SelectOptions<'a> {
    /// systemd's name of the native architecture (`x86-64`, `arm64`, …).
    pub native_arch: &'a str,
    /// The image policy; `None` allows everything (`*`).
    pub policy: Option<&'a ImagePolicy>,
    /// A known root hash and the partition it is for (root or usr): only the data partition
    /// whose UUID is its first 128 bits and the verity partition whose UUID is its last 128
    /// bits are considered (DPS UUID pairing).
    pub root_hash: Option<(&'a [u8], PartitionDesignator)>,
    /// Use a lone generic Linux partition as root when no root/usr partition exists.
    pub allow_generic: bool,
    /// Fail unless a root (or usr) partition is found.
    pub require_root: bool,
}

impl<'a> SelectOptions<'a> {
    /// What systemd-sysext uses: generic root allowed, root or usr required, no policy.
    pub fn new(native_arch: &'a str) -> SelectOptions<'a> {
        SelectOptions {
            native_arch,
            policy: None,
            root_hash: None,
            allow_generic: true,
            require_root: true,
        }
    }
}

/// The data and verity partition UUIDs a root hash pairs with (first and last 128 bits).
pub fn verity_uuids(root_hash: &[u8]) -> Option<(Guid, Guid)> {
    if root_hash.len() < 16 {
        return None;
    }
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(&root_hash[..16]);
    b.copy_from_slice(&root_hash[root_hash.len() - 16..]);
    Some((Guid(a), Guid(b)))
}

/// Architecture preference: native > secondary > any other (equal).
fn arch_rank(arch: Option<&str>, native: &str) -> u8 {
    match arch {
        Some(a) if a == native => 2,
        Some(a) if dps::secondary_arch(native) == Some(a) => 1,
        _ => 0,
    }
}

/// Selects root/usr/verity partitions with systemd-sysext's settings and no policy.
#[cfg(any(test, feature = "testing"))]
pub fn select(table: &GptTable, native_arch: &str) -> Result<Selection, SelectError> {
    select_with(table, &SelectOptions::new(native_arch))
}

/// Selects the partitions of a DDI.
///
/// Rules (systemd 257 dissection): partitions with the no-auto flag (bit 63) are skipped (for
/// the ESP: the no-block-IO-protocol flag); /var partitions are skipped (systemd only accepts
/// one whose UUID is derived from the machine ID). Per designator the native architecture beats
/// the secondary one, which beats any other (so a foreign-architecture root is used when it is
/// the only one); among equals, root/usr/verity partitions go by the newest label, others by
/// table order. Verity and signature partitions prefer the architecture of the selected data
/// partition. Partitions the policy says to ignore are recorded in `ignored`; one that must be
/// absent is an error. Finally the protection level of every designator is checked against the
/// policy.
pub fn select_with(table: &GptTable, opts: &SelectOptions<'_>) -> Result<Selection, SelectError> {
    let allow_all = ImagePolicy::allow_all();
    let policy = opts.policy.unwrap_or(&allow_all);
    let found = candidates(table, opts);
    let mut sel = choose(&found.parts, policy, opts.native_arch)?;
    check_pairs(&sel)?;
    let usr_hash = matches!(opts.root_hash, Some((_, PartitionDesignator::Usr)));
    if sel.root.is_none() && sel.usr.is_none() && opts.allow_generic && !usr_hash {
        use_generic(&mut sel, found.generic, policy)?;
    }
    check_complete(&sel, opts, policy)?;
    Ok(sel)
}

/// What the table offers: DPS partitions per designator in table order, and the generic
/// Linux partition.
struct Found {
    parts: Vec<(PartitionDesignator, Part)>,
    /// The first generic Linux partition (without no-auto), or an error if there are more.
    generic: Result<Option<Part>, SelectError>,
}

/// The partitions that may be selected: no-auto ones are skipped (for the ESP: those
/// without block-IO protocol), /var always (systemd only takes one whose UUID derives from
/// the machine ID), and with a root hash given, data and verity partitions of other UUIDs.
fn candidates(table: &GptTable, opts: &SelectOptions<'_>) -> Found {
    use PartitionDesignator as D;
    let pairing = opts
        .root_hash
        .and_then(|(h, d)| verity_uuids(h).map(|u| (u, d)));
    let wanted_uuid = |d: D| -> Option<Guid> {
        let ((data, verity), for_d) = pairing?;
        if d == for_d {
            Some(data)
        } else if Some(d) == for_d.verity() {
            Some(verity)
        } else {
            None
        }
    };
    let mut found = Found {
        parts: Vec::new(),
        generic: Ok(None),
    };
    for p in &table.partitions {
        let Some(kind) = dps::classify(p.type_guid) else {
            continue;
        };
        let d = match kind {
            PartitionKind::LinuxGeneric => {
                if p.flags & FLAG_NO_AUTO == 0 {
                    found.generic = match found.generic {
                        Ok(None) => Ok(Some(Part::from_gpt(p, kind))),
                        _ => Err(SelectError::MultipleGeneric),
                    };
                }
                continue;
            }
            PartitionKind::Dps { designator, .. } => designator,
        };
        let skipped = match d {
            D::Esp => p.flags & FLAG_NO_BLOCK_IO_PROTOCOL != 0,
            D::Var => true,
            _ => p.flags & FLAG_NO_AUTO != 0,
        };
        if skipped || wanted_uuid(d).is_some_and(|u| p.uuid != u) {
            continue;
        }
        found.parts.push((d, Part::from_gpt(p, kind)));
    }
    found
}

/// The partition per designator: data partitions first, so that verity partitions can
/// prefer their architecture; the native architecture before the secondary one before any
/// other; among equals the newest label for root, usr and their verity partitions, else the
/// first. Partitions the policy ignores are recorded as ignored.
fn choose(
    parts: &[(PartitionDesignator, Part)],
    policy: &ImagePolicy,
    native_arch: &str,
) -> Result<Selection, SelectError> {
    let mut sel = Selection::default();
    let is_protection =
        |d: PartitionDesignator| d.verity_data().is_some() || d.verity_sig_data().is_some();
    for pass in [false, true] {
        for (d, part) in parts.iter().filter(|(d, _)| is_protection(*d) == pass) {
            let d = *d;
            if !policy.may_use(d)? {
                if !sel.ignored.contains(&d) {
                    sel.ignored.push(d);
                }
                continue;
            }
            let data_arch = d
                .verity_data()
                .or(d.verity_sig_data())
                .and_then(|data| sel.get(data))
                .and_then(|p| p.arch);
            let better = |new: &Part, old: &Part| -> bool {
                let rank = |p: &Part| {
                    let same = data_arch.is_some() && p.arch == data_arch;
                    (same, arch_rank(p.arch, native_arch))
                };
                match rank(new).cmp(&rank(old)) {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    Ordering::Equal => {
                        d.is_versioned()
                            && strverscmp_improved(&new.label, &old.label) == Ordering::Greater
                    }
                }
            };
            if let Some(slot) = sel.slot(d) {
                match slot {
                    Some(old) if !better(part, old) => {}
                    _ => *slot = Some(part.clone()),
                }
            } else if !sel.other.iter().any(|(od, _)| *od == d) {
                // First one wins for everything else.
                sel.other.push((d, part.clone()));
            }
        }
    }
    // A partition that was ignored but also found (e.g. a second one) counts as found.
    let found: Vec<PartitionDesignator> = PartitionDesignator::ALL
        .into_iter()
        .filter(|d| sel.get(*d).is_some())
        .collect();
    sel.ignored.retain(|d| !found.contains(d));
    Ok(sel)
}

/// Verity and signature partitions come with their data (and a signature with its verity
/// partition); root and usr are of one architecture.
fn check_pairs(sel: &Selection) -> Result<(), SelectError> {
    use PartitionDesignator as D;
    for (data, verity, sig) in [
        (D::Root, D::RootVerity, D::RootVeritySig),
        (D::Usr, D::UsrVerity, D::UsrVeritySig),
    ] {
        if sel.get(data).is_none() {
            for v in [verity, sig] {
                if sel.get(v).is_some() {
                    return Err(SelectError::VerityWithoutData {
                        designator: v,
                        data,
                    });
                }
            }
        }
        if sel.get(sig).is_some() && sel.get(verity).is_none() {
            return Err(SelectError::SignatureWithoutVerity { designator: sig });
        }
    }
    if let (Some(r), Some(u)) = (&sel.root, &sel.usr) {
        if let (Some(ra), Some(ua)) = (r.arch, u.arch) {
            if ra != ua {
                return Err(SelectError::ArchitectureMismatch { root: ra, usr: ua });
            }
        }
    }
    Ok(())
}

/// Without DPS root or usr partition, a lone generic Linux partition serves as root (where
/// the policy lets the root be used).
fn use_generic(
    sel: &mut Selection,
    generic: Result<Option<Part>, SelectError>,
    policy: &ImagePolicy,
) -> Result<(), SelectError> {
    let Some(g) = generic? else {
        return Ok(());
    };
    if policy.may_use(PartitionDesignator::Root)? {
        sel.root = Some(g.clone());
        sel.generic = Some(g);
    } else if !sel.ignored.contains(&PartitionDesignator::Root) {
        sel.ignored.push(PartitionDesignator::Root);
    }
    Ok(())
}

/// The selection as a whole: root or usr where required, one verity partition (and not a
/// root one beside usr), each designator's protection and GPT flags as the policy wants,
/// and anything at all.
fn check_complete(
    sel: &Selection,
    opts: &SelectOptions<'_>,
    policy: &ImagePolicy,
) -> Result<(), SelectError> {
    if opts.require_root && sel.root.is_none() && sel.usr.is_none() {
        return Err(SelectError::NoRootOrUsr);
    }
    if sel.root_verity.is_some() {
        if sel.usr_verity.is_some() {
            return Err(SelectError::MultipleVerity);
        }
        if sel.usr.is_some() {
            return Err(SelectError::VerityRootWithUsr);
        }
    }
    let mut any = false;
    for d in PartitionDesignator::ALL {
        policy.check_found(d, sel.protection(d))?;
        if let Some(p) = sel.get(d) {
            any = true;
            policy.check_gpt_flags(d, p.flags)?;
        }
    }
    if !any {
        return Err(SelectError::NoPartitions);
    }
    Ok(())
}
