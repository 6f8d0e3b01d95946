//! Image dissection policies (`--image-policy=`), in the syntax of systemd.image-policy(7).
//!
//! A policy is a `:`-separated list of rules `DESIGNATOR=FLAGS`, FLAGS being `+`-joined words.
//! An empty designator (`=FLAGS`) sets the default for every designator that has no rule.
//! Whole-policy shorthands: `*` (everything may be used in any way: `=open`), `-` or the empty
//! string (everything may exist but nothing is used: `=unused+absent`), `~` (nothing may
//! exist: `=absent`). Flag shorthands: `open` (all six use flags) and `ignore`
//! (`unused+absent`). A rule without any use flag means `open`; a policy string without a
//! default rule has the default `ignore`.
//!
//! Semantics follow systemd 257: verity and verity signature partitions without an explicit
//! rule derive theirs from the data partition they protect (a verity partition is usable
//! when the data partition allows `verity` or `signed`, its signature partition when it
//! allows `signed`); otherwise the default applies. Protection flags are masked off where
//! they make no sense (verity flags on designators without verity, all protection flags on
//! the verity/signature partitions themselves).
//!
//! Newer systemd (259) adds the file system type flags (`btrfs`, `erofs`, `ext4`, `f2fs`,
//! `squashfs`, `vfat`, `xfs`: the partition's file system must be one of those named; none
//! named means any) and the use flag `encryptedwithintegrity` (LUKS with integrity). They
//! parse at every level here; a context at level 257 refuses a policy that uses them, as
//! 257's parser does ([`ImagePolicy::uses_post_257_flags`]). The file system type is
//! enforced when the partition's file system is known, before it is mounted.

use std::fmt;
use std::str::FromStr;

use bitflags::bitflags;

/// The partition kinds of the Discoverable Partitions Specification that a policy can name,
/// independent of the CPU architecture. The order is the one used when printing policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartitionDesignator {
    /// The root file system partition.
    Root,
    /// The `/usr` partition.
    Usr,
    /// The `/home` partition.
    Home,
    /// The `/srv` partition.
    Srv,
    /// The EFI system partition.
    Esp,
    /// The extended boot loader partition.
    Xbootldr,
    /// A swap partition.
    Swap,
    /// The verity hash tree of the root partition.
    RootVerity,
    /// The verity hash tree of the usr partition.
    UsrVerity,
    /// The signature of the root partition's verity root hash.
    RootVeritySig,
    /// The signature of the usr partition's verity root hash.
    UsrVeritySig,
    /// The `/var/tmp` partition.
    Tmp,
    /// The `/var` partition.
    Var,
}

impl PartitionDesignator {
    /// Every designator, in printing order.
    pub const ALL: [PartitionDesignator; 13] = [
        PartitionDesignator::Root,
        PartitionDesignator::Usr,
        PartitionDesignator::Home,
        PartitionDesignator::Srv,
        PartitionDesignator::Esp,
        PartitionDesignator::Xbootldr,
        PartitionDesignator::Swap,
        PartitionDesignator::RootVerity,
        PartitionDesignator::UsrVerity,
        PartitionDesignator::RootVeritySig,
        PartitionDesignator::UsrVeritySig,
        PartitionDesignator::Tmp,
        PartitionDesignator::Var,
    ];

    /// The name used in policy strings.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionDesignator::Root => "root",
            PartitionDesignator::Usr => "usr",
            PartitionDesignator::Home => "home",
            PartitionDesignator::Srv => "srv",
            PartitionDesignator::Esp => "esp",
            PartitionDesignator::Xbootldr => "xbootldr",
            PartitionDesignator::Swap => "swap",
            PartitionDesignator::RootVerity => "root-verity",
            PartitionDesignator::UsrVerity => "usr-verity",
            PartitionDesignator::RootVeritySig => "root-verity-sig",
            PartitionDesignator::UsrVeritySig => "usr-verity-sig",
            PartitionDesignator::Tmp => "tmp",
            PartitionDesignator::Var => "var",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The verity hash partition protecting this data partition (root and usr only).
    pub fn verity(self) -> Option<PartitionDesignator> {
        match self {
            PartitionDesignator::Root => Some(PartitionDesignator::RootVerity),
            PartitionDesignator::Usr => Some(PartitionDesignator::UsrVerity),
            _ => None,
        }
    }

    /// The verity signature partition of this data partition (root and usr only).
    pub fn verity_sig(self) -> Option<PartitionDesignator> {
        match self {
            PartitionDesignator::Root => Some(PartitionDesignator::RootVeritySig),
            PartitionDesignator::Usr => Some(PartitionDesignator::UsrVeritySig),
            _ => None,
        }
    }

    /// For a verity hash partition: the data partition it protects.
    pub fn verity_data(self) -> Option<PartitionDesignator> {
        match self {
            PartitionDesignator::RootVerity => Some(PartitionDesignator::Root),
            PartitionDesignator::UsrVerity => Some(PartitionDesignator::Usr),
            _ => None,
        }
    }

    /// For a verity signature partition: the data partition it protects.
    pub fn verity_sig_data(self) -> Option<PartitionDesignator> {
        match self {
            PartitionDesignator::RootVeritySig => Some(PartitionDesignator::Root),
            PartitionDesignator::UsrVeritySig => Some(PartitionDesignator::Usr),
            _ => None,
        }
    }

    /// Partitions of which several versions may exist; the newest label wins.
    pub fn is_versioned(self) -> bool {
        matches!(
            self,
            PartitionDesignator::Root
                | PartitionDesignator::Usr
                | PartitionDesignator::RootVerity
                | PartitionDesignator::UsrVerity
                | PartitionDesignator::RootVeritySig
                | PartitionDesignator::UsrVeritySig
        )
    }
}

impl fmt::Display for PartitionDesignator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PartitionDesignator {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        PartitionDesignator::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or(())
    }
}

bitflags! {
    /// Per-partition policy flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PolicyFlags: u32 {
        /// Must exist, used with dm-verity.
        const VERITY = 1 << 0;
        /// Must exist, used with dm-verity and a signed root hash.
        const SIGNED = 1 << 1;
        /// Must exist, LUKS encrypted.
        const ENCRYPTED = 1 << 2;
        /// Must exist, used without verity or encryption.
        const UNPROTECTED = 1 << 3;
        /// May exist but is not used.
        const UNUSED = 1 << 4;
        /// Must not exist.
        const ABSENT = 1 << 5;
        /// The GPT read-only flag must be off.
        const READ_ONLY_OFF = 1 << 6;
        /// The GPT read-only flag must be on.
        const READ_ONLY_ON = 1 << 7;
        /// The GPT growfs flag must be off.
        const GROWFS_OFF = 1 << 8;
        /// The GPT growfs flag must be on.
        const GROWFS_ON = 1 << 9;
        /// The file system may be btrfs.
        const BTRFS = 1 << 10;
        /// The file system may be erofs.
        const EROFS = 1 << 11;
        /// The file system may be ext4.
        const EXT4 = 1 << 12;
        /// The file system may be f2fs.
        const F2FS = 1 << 13;
        /// The file system may be squashfs.
        const SQUASHFS = 1 << 14;
        /// The file system may be vfat.
        const VFAT = 1 << 15;
        /// The file system may be xfs.
        const XFS = 1 << 16;
        /// Must exist, LUKS encrypted with integrity protection (systemd 259).
        const ENCRYPTED_WITH_INTEGRITY = 1 << 17;
    }
}

impl PolicyFlags {
    /// All six use flags (`open`).
    pub const OPEN: PolicyFlags = PolicyFlags::VERITY
        .union(PolicyFlags::SIGNED)
        .union(PolicyFlags::ENCRYPTED)
        .union(PolicyFlags::UNPROTECTED)
        .union(PolicyFlags::UNUSED)
        .union(PolicyFlags::ABSENT);
    /// `unused+absent` (`ignore`).
    pub const IGNORE: PolicyFlags = PolicyFlags::UNUSED.union(PolicyFlags::ABSENT);
    /// The use flags (`encrypted` implies `encryptedwithintegrity`: any LUKS volume).
    pub const USE_MASK: PolicyFlags =
        PolicyFlags::OPEN.union(PolicyFlags::ENCRYPTED_WITH_INTEGRITY);
    /// Both read-only flags.
    pub const READ_ONLY_MASK: PolicyFlags =
        PolicyFlags::READ_ONLY_OFF.union(PolicyFlags::READ_ONLY_ON);
    /// Both growfs flags.
    pub const GROWFS_MASK: PolicyFlags = PolicyFlags::GROWFS_OFF.union(PolicyFlags::GROWFS_ON);
    /// The GPT partition flag requirements.
    pub const PFLAGS_MASK: PolicyFlags =
        PolicyFlags::READ_ONLY_MASK.union(PolicyFlags::GROWFS_MASK);
    /// The file system type flags.
    pub const FSTYPE_MASK: PolicyFlags = PolicyFlags::BTRFS
        .union(PolicyFlags::EROFS)
        .union(PolicyFlags::EXT4)
        .union(PolicyFlags::F2FS)
        .union(PolicyFlags::SQUASHFS)
        .union(PolicyFlags::VFAT)
        .union(PolicyFlags::XFS);
    /// The flags systemd 257 does not know.
    pub const POST_257: PolicyFlags =
        PolicyFlags::FSTYPE_MASK.union(PolicyFlags::ENCRYPTED_WITH_INTEGRITY);

    /// The file system type flag of a kernel file system name (`ext4`, …).
    pub fn for_fstype(name: &str) -> Option<PolicyFlags> {
        FSTYPE_WORDS
            .iter()
            .find(|(_, w)| *w == name)
            .map(|(f, _)| *f)
    }

    /// Fills in "don't care" for every unspecified part: no use flag means all use flags,
    /// no read-only (growfs) flag means both.
    pub fn extended(self) -> PolicyFlags {
        let mut f = self;
        if (f & PolicyFlags::USE_MASK).is_empty() {
            f |= PolicyFlags::OPEN;
        }
        if f.contains(PolicyFlags::ENCRYPTED) {
            f |= PolicyFlags::ENCRYPTED_WITH_INTEGRITY;
        }
        if (f & PolicyFlags::READ_ONLY_MASK).is_empty() {
            f |= PolicyFlags::READ_ONLY_MASK;
        }
        if (f & PolicyFlags::GROWFS_MASK).is_empty() {
            f |= PolicyFlags::GROWFS_MASK;
        }
        if (f & PolicyFlags::FSTYPE_MASK).is_empty() {
            f |= PolicyFlags::FSTYPE_MASK;
        }
        f
    }

    /// Parses `+`-joined flag words (empty or `-`: no flags).
    pub fn parse(s: &str) -> Result<PolicyFlags, String> {
        let s = s.trim();
        if s.is_empty() || s == "-" {
            return Ok(PolicyFlags::empty());
        }
        // A trailing `+` leaves an empty word, which systemd refuses as an unknown flag.
        let mut flags = PolicyFlags::empty();
        for w in s.split('+') {
            flags |= flag_from_word(w.trim()).ok_or_else(|| w.trim().to_string())?;
        }
        Ok(flags)
    }

    /// The flags as policy words. With `simplify`, the `open`/`ignore` shorthands are used
    /// and read-only/growfs pairs that allow both states are left out. No flag gives `-`.
    pub fn to_policy_string(self, simplify: bool) -> String {
        let mut words: Vec<&str> = Vec::new();
        let mut usage = self & PolicyFlags::USE_MASK;
        if usage.contains(PolicyFlags::ENCRYPTED) {
            // Implied.
            usage -= PolicyFlags::ENCRYPTED_WITH_INTEGRITY;
        }
        if simplify && usage == PolicyFlags::OPEN {
            words.push("open");
        } else if simplify && usage == PolicyFlags::IGNORE {
            words.push("ignore");
        } else {
            for (flag, word) in USE_WORDS {
                if usage.contains(flag) {
                    words.push(word);
                }
            }
        }
        let ro = self & PolicyFlags::READ_ONLY_MASK;
        if !simplify || (!ro.is_empty() && ro != PolicyFlags::READ_ONLY_MASK) {
            if self.contains(PolicyFlags::READ_ONLY_ON) {
                words.push("read-only-on");
            }
            if self.contains(PolicyFlags::READ_ONLY_OFF) {
                words.push("read-only-off");
            }
        }
        let gr = self & PolicyFlags::GROWFS_MASK;
        if !simplify || (!gr.is_empty() && gr != PolicyFlags::GROWFS_MASK) {
            if self.contains(PolicyFlags::GROWFS_OFF) {
                words.push("growfs-off");
            }
            if self.contains(PolicyFlags::GROWFS_ON) {
                words.push("growfs-on");
            }
        }
        let fs = self & PolicyFlags::FSTYPE_MASK;
        if !simplify || (!fs.is_empty() && fs != PolicyFlags::FSTYPE_MASK) {
            for (flag, word) in FSTYPE_WORDS {
                if self.contains(flag) {
                    words.push(word);
                }
            }
        }
        if words.is_empty() {
            "-".to_string()
        } else {
            words.join("+")
        }
    }
}

const USE_WORDS: [(PolicyFlags, &str); 7] = [
    (PolicyFlags::VERITY, "verity"),
    (PolicyFlags::SIGNED, "signed"),
    (PolicyFlags::ENCRYPTED, "encrypted"),
    (
        PolicyFlags::ENCRYPTED_WITH_INTEGRITY,
        "encryptedwithintegrity",
    ),
    (PolicyFlags::UNPROTECTED, "unprotected"),
    (PolicyFlags::UNUSED, "unused"),
    (PolicyFlags::ABSENT, "absent"),
];

const FSTYPE_WORDS: [(PolicyFlags, &str); 7] = [
    (PolicyFlags::BTRFS, "btrfs"),
    (PolicyFlags::EROFS, "erofs"),
    (PolicyFlags::EXT4, "ext4"),
    (PolicyFlags::F2FS, "f2fs"),
    (PolicyFlags::SQUASHFS, "squashfs"),
    (PolicyFlags::VFAT, "vfat"),
    (PolicyFlags::XFS, "xfs"),
];

fn flag_from_word(w: &str) -> Option<PolicyFlags> {
    Some(match w {
        "verity" => PolicyFlags::VERITY,
        "signed" => PolicyFlags::SIGNED,
        "encrypted" => PolicyFlags::ENCRYPTED,
        "unprotected" => PolicyFlags::UNPROTECTED,
        "unused" => PolicyFlags::UNUSED,
        "absent" => PolicyFlags::ABSENT,
        "open" => PolicyFlags::OPEN,
        "ignore" => PolicyFlags::IGNORE,
        "read-only-on" => PolicyFlags::READ_ONLY_ON,
        "read-only-off" => PolicyFlags::READ_ONLY_OFF,
        "growfs-on" => PolicyFlags::GROWFS_ON,
        "growfs-off" => PolicyFlags::GROWFS_OFF,
        "encryptedwithintegrity" => PolicyFlags::ENCRYPTED_WITH_INTEGRITY,
        _ => return PolicyFlags::for_fstype(w),
    })
}

/// What was found for a partition, to be checked against a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Present and used without verity or encryption.
    Unprotected,
    /// Present, with a verity hash partition.
    Verity,
    /// Present, with verity and a signature partition.
    Signed,
    /// Present and LUKS encrypted.
    Encrypted,
    /// Present, but ignored as the policy said so.
    Unused,
    /// Not present.
    Absent,
}

impl Protection {
    /// The policy flag matching this state.
    pub fn flag(self) -> PolicyFlags {
        match self {
            Protection::Unprotected => PolicyFlags::UNPROTECTED,
            Protection::Verity => PolicyFlags::VERITY,
            Protection::Signed => PolicyFlags::SIGNED,
            Protection::Encrypted => PolicyFlags::ENCRYPTED,
            Protection::Unused => PolicyFlags::UNUSED,
            Protection::Absent => PolicyFlags::ABSENT,
        }
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.flag().to_policy_string(false))
    }
}

/// An image does not satisfy an image policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// The partition's protection level is not among the allowed ones.
    #[error("partition '{designator}' was found {found}, but image policy '{policy}' allows only {allowed}")]
    Protection {
        /// The partition.
        designator: PartitionDesignator,
        /// What was found, as policy flag words (e.g. `unprotected`, `encrypted+unprotected`).
        found: String,
        /// What the policy allows for this partition, as policy flag words.
        allowed: String,
        /// The policy, as given.
        policy: String,
    },
    /// The partition exists, but the policy says it must be absent.
    #[error(
        "partition '{designator}' exists, but image policy '{policy}' requires it to be absent"
    )]
    MustBeAbsent {
        /// The partition.
        designator: PartitionDesignator,
        /// The policy, as given.
        policy: String,
    },
    /// The partition's file system is not among the file system types the policy allows.
    #[error("partition '{designator}' has a {fstype} file system, but image policy '{policy}' allows only {allowed}")]
    FileSystem {
        /// The partition.
        designator: PartitionDesignator,
        /// The file system found (the kernel's name).
        fstype: String,
        /// The file system types allowed, as policy flag words.
        allowed: String,
        /// The policy, as given.
        policy: String,
    },
    /// A GPT partition flag (`read-only` or `growfs`) has the wrong state.
    #[error("partition '{designator}' has the GPT '{flag}' flag {}, but image policy '{policy}' requires it {}",
            on_off(*is_set), on_off(!*is_set))]
    PartitionFlag {
        /// The partition.
        designator: PartitionDesignator,
        /// The flag: `read-only` or `growfs`.
        flag: &'static str,
        /// Whether the partition has the flag set.
        is_set: bool,
        /// The policy, as given.
        policy: String,
    },
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl PolicyViolation {
    /// The partition the violation is about.
    pub fn designator(&self) -> PartitionDesignator {
        match self {
            PolicyViolation::Protection { designator, .. }
            | PolicyViolation::MustBeAbsent { designator, .. }
            | PolicyViolation::PartitionFlag { designator, .. }
            | PolicyViolation::FileSystem { designator, .. } => *designator,
        }
    }
}

/// Why a policy string did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyParseErrorKind {
    /// A rule without `=`.
    MissingEquals(String),
    /// An unknown partition designator.
    UnknownDesignator(String),
    /// An unknown flag word.
    UnknownFlag(String),
    /// Two rules for the same designator.
    DuplicateDesignator(PartitionDesignator),
    /// Two default rules.
    DuplicateDefault,
}

/// A policy string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image policy '{policy}': {}", describe(kind))]
pub struct PolicyParseError {
    /// The policy string, as given.
    pub policy: String,
    /// What is wrong with it.
    pub kind: PolicyParseErrorKind,
}

fn describe(k: &PolicyParseErrorKind) -> String {
    match k {
        PolicyParseErrorKind::MissingEquals(r) => {
            format!("rule '{r}' is not of the form designator=flags")
        }
        PolicyParseErrorKind::UnknownDesignator(d) => format!("unknown partition designator '{d}'"),
        PolicyParseErrorKind::UnknownFlag(f) => format!("unknown partition policy flag '{f}'"),
        PolicyParseErrorKind::DuplicateDesignator(d) => {
            format!("more than one rule for partition designator '{d}'")
        }
        PolicyParseErrorKind::DuplicateDefault => "more than one default rule".to_string(),
    }
}

/// An image dissection policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImagePolicy {
    rules: [Option<PolicyFlags>; 13],
    default: PolicyFlags,
}

const DATA_ANY: PolicyFlags = PolicyFlags::VERITY
    .union(PolicyFlags::SIGNED)
    .union(PolicyFlags::ENCRYPTED)
    .union(PolicyFlags::UNPROTECTED)
    .union(PolicyFlags::ABSENT);
const SIGNED_OR_ABSENT: PolicyFlags = PolicyFlags::SIGNED.union(PolicyFlags::ABSENT);

impl ImagePolicy {
    fn with_default(default: PolicyFlags) -> ImagePolicy {
        ImagePolicy {
            rules: [None; 13],
            default,
        }
    }

    fn with_rules(
        rules: &[(PartitionDesignator, PolicyFlags)],
        default: PolicyFlags,
    ) -> ImagePolicy {
        let mut p = ImagePolicy::with_default(default);
        for &(d, f) in rules {
            p.rules[d.index()] = Some(f);
        }
        p
    }

    /// `*`: everything may be used, with any protection.
    pub fn allow_all() -> ImagePolicy {
        ImagePolicy::with_default(PolicyFlags::OPEN)
    }

    /// `-`: partitions may exist but none is used.
    pub fn ignore_all() -> ImagePolicy {
        ImagePolicy::with_default(PolicyFlags::IGNORE)
    }

    /// `~`: no partition may exist.
    pub fn deny_all() -> ImagePolicy {
        ImagePolicy::with_default(PolicyFlags::ABSENT)
    }

    /// The sysext default: root and usr with any protection or absent, everything else ignored.
    pub fn sysext_default() -> ImagePolicy {
        ImagePolicy::with_rules(
            &[
                (PartitionDesignator::Root, DATA_ANY),
                (PartitionDesignator::Usr, DATA_ANY),
            ],
            PolicyFlags::IGNORE,
        )
    }

    /// The confext default: root with any protection or absent, everything else ignored.
    pub fn confext_default() -> ImagePolicy {
        ImagePolicy::with_rules(
            &[(PartitionDesignator::Root, DATA_ANY)],
            PolicyFlags::IGNORE,
        )
    }

    /// For sysext images in `/.extra/sysext/` in the initrd: `root=signed+absent:usr=signed+absent`.
    pub fn initrd_sysext() -> ImagePolicy {
        ImagePolicy::with_rules(
            &[
                (PartitionDesignator::Root, SIGNED_OR_ABSENT),
                (PartitionDesignator::Usr, SIGNED_OR_ABSENT),
            ],
            PolicyFlags::IGNORE,
        )
    }

    /// For confext images in `/.extra/confext/` in the initrd: `root=signed+absent`.
    pub fn initrd_confext() -> ImagePolicy {
        ImagePolicy::with_rules(
            &[(PartitionDesignator::Root, SIGNED_OR_ABSENT)],
            PolicyFlags::IGNORE,
        )
    }

    /// Parses a policy string (`--image-policy=` syntax). Unknown designators and flags
    /// are errors, as on the command line.
    pub fn parse(s: &str) -> Result<ImagePolicy, PolicyParseError> {
        let err = |kind| PolicyParseError {
            policy: s.to_string(),
            kind,
        };
        match s {
            "" | "-" => return Ok(ImagePolicy::ignore_all()),
            "*" => return Ok(ImagePolicy::allow_all()),
            "~" => return Ok(ImagePolicy::deny_all()),
            _ => {}
        }
        let mut p = ImagePolicy::ignore_all();
        let mut default_seen = false;
        // Every separator separates two rules: a trailing one leaves an empty rule, which
        // systemd refuses (257 and 262: "Failed to parse image policy: root=verity:").
        for rule in s.split(':') {
            let Some((d, f)) = rule.split_once('=') else {
                return Err(err(PolicyParseErrorKind::MissingEquals(rule.to_string())));
            };
            let d = d.trim();
            let flags =
                PolicyFlags::parse(f).map_err(|w| err(PolicyParseErrorKind::UnknownFlag(w)))?;
            if d.is_empty() {
                if default_seen {
                    return Err(err(PolicyParseErrorKind::DuplicateDefault));
                }
                default_seen = true;
                p.default = flags;
            } else {
                let des: PartitionDesignator = d
                    .parse()
                    .map_err(|()| err(PolicyParseErrorKind::UnknownDesignator(d.to_string())))?;
                if p.rules[des.index()].is_some() {
                    return Err(err(PolicyParseErrorKind::DuplicateDesignator(des)));
                }
                p.rules[des.index()] = Some(flags);
            }
        }
        Ok(p)
    }

    /// The default flags (for designators without a rule), as written.
    pub fn default_flags(&self) -> PolicyFlags {
        self.default
    }

    /// The explicit rule for a designator, as written.
    pub fn rule(&self, designator: PartitionDesignator) -> Option<PolicyFlags> {
        self.rules[designator.index()]
    }

    /// Fills in don't-cares and masks off flags that make no sense for the designator.
    fn normalized(flags: PolicyFlags, d: PartitionDesignator) -> PolicyFlags {
        let mut f = flags.extended();
        if d.verity_data().is_some() || d.verity_sig_data().is_some() {
            // The verity partitions are the protection, they need none themselves.
            f &= !(PolicyFlags::VERITY
                | PolicyFlags::SIGNED
                | PolicyFlags::ENCRYPTED
                | PolicyFlags::ENCRYPTED_WITH_INTEGRITY);
        }
        if d.verity().is_none() {
            f &= !(PolicyFlags::VERITY | PolicyFlags::SIGNED);
        }
        if (f & PolicyFlags::USE_MASK) == PolicyFlags::ABSENT {
            f &= !(PolicyFlags::PFLAGS_MASK | PolicyFlags::FSTYPE_MASK);
        }
        f
    }

    /// Whether the policy uses a flag systemd 257 does not know (a file system type, or
    /// `encryptedwithintegrity`): 257 fails to parse such a policy.
    pub fn uses_post_257_flags(&self) -> bool {
        self.rules
            .iter()
            .flatten()
            .chain(std::iter::once(&self.default))
            .any(|f| f.intersects(PolicyFlags::POST_257))
    }

    /// Checks the file system found in a used partition (`fstype`: the kernel's name,
    /// `ext4`, `erofs`, …) against the file system type flags of the policy.
    pub fn check_fstype(
        &self,
        d: PartitionDesignator,
        fstype: &str,
    ) -> Result<(), PolicyViolation> {
        let allowed = self.effective(d) & PolicyFlags::FSTYPE_MASK;
        if allowed == PolicyFlags::FSTYPE_MASK {
            return Ok(());
        }
        match PolicyFlags::for_fstype(fstype) {
            Some(f) if allowed.contains(f) => Ok(()),
            _ => Err(PolicyViolation::FileSystem {
                designator: d,
                fstype: fstype.to_string(),
                allowed: allowed.to_policy_string(false),
                policy: self.to_string(),
            }),
        }
    }

    /// The rule for `d` (explicit or derived for verity partitions), `None` if only the
    /// default applies.
    fn get(&self, d: PartitionDesignator) -> Option<PolicyFlags> {
        if let Some(f) = self.rules[d.index()] {
            return Some(Self::normalized(f, d));
        }
        let (data, needed) = if let Some(data) = d.verity_data() {
            (data, PolicyFlags::VERITY | PolicyFlags::SIGNED)
        } else if let Some(data) = d.verity_sig_data() {
            (data, PolicyFlags::SIGNED)
        } else {
            return None;
        };
        let data_flags = self.get(data)?;
        if !data_flags.intersects(needed) {
            return None;
        }
        Some(Self::normalized(
            PolicyFlags::UNPROTECTED
                | (data_flags
                    & (PolicyFlags::UNUSED | PolicyFlags::ABSENT | PolicyFlags::PFLAGS_MASK)),
            d,
        ))
    }

    /// The effective (normalized) flags for a designator.
    pub fn effective(&self, d: PartitionDesignator) -> PolicyFlags {
        self.get(d)
            .unwrap_or_else(|| Self::normalized(self.default, d))
    }

    /// For a partition that exists: `Ok(true)` use it, `Ok(false)` ignore it (the policy
    /// allows only `unused`, possibly with `absent`), `Err` it must not exist.
    pub fn may_use(&self, d: PartitionDesignator) -> Result<bool, PolicyViolation> {
        let usage = self.effective(d) & PolicyFlags::USE_MASK;
        if usage == PolicyFlags::ABSENT {
            return Err(PolicyViolation::MustBeAbsent {
                designator: d,
                policy: self.to_string(),
            });
        }
        Ok((usage & !PolicyFlags::ABSENT) != PolicyFlags::UNUSED)
    }

    /// Checks that one of the `found` states is allowed for the partition. (`found` can
    /// hold several flags when the exact state is not known yet, e.g. `encrypted` or
    /// `unprotected` before the file system was probed.)
    pub fn check_found(
        &self,
        d: PartitionDesignator,
        found: PolicyFlags,
    ) -> Result<(), PolicyViolation> {
        let allowed = self.effective(d);
        if (found & allowed & PolicyFlags::USE_MASK).is_empty() {
            return Err(PolicyViolation::Protection {
                designator: d,
                found: found.to_policy_string(true),
                allowed: (allowed & PolicyFlags::USE_MASK).to_policy_string(false),
                policy: self.to_string(),
            });
        }
        Ok(())
    }

    /// Checks a partition's protection state against the policy.
    pub fn check(
        &self,
        d: PartitionDesignator,
        protection: Protection,
    ) -> Result<(), PolicyViolation> {
        self.check_found(d, protection.flag())
    }

    /// Checks the GPT attribute flags of a used partition (read-only: bit 60, growfs: bit 59).
    pub fn check_gpt_flags(
        &self,
        d: PartitionDesignator,
        gpt_flags: u64,
    ) -> Result<(), PolicyViolation> {
        let f = self.effective(d);
        let checks = [
            (
                "read-only",
                60,
                PolicyFlags::READ_ONLY_MASK,
                PolicyFlags::READ_ONLY_ON,
                PolicyFlags::READ_ONLY_OFF,
            ),
            (
                "growfs",
                59,
                PolicyFlags::GROWFS_MASK,
                PolicyFlags::GROWFS_ON,
                PolicyFlags::GROWFS_OFF,
            ),
        ];
        for (name, bit, mask, on, off) in checks {
            let is_set = gpt_flags & (1u64 << bit) != 0;
            // Only a policy that allows exactly the other state is violated.
            if (f & mask) == if is_set { off } else { on } {
                return Err(PolicyViolation::PartitionFlag {
                    designator: d,
                    flag: name,
                    is_set,
                    policy: self.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether every designator (and the default) behaves as `expected` would.
    fn all_match(&self, expected: PolicyFlags) -> bool {
        self.default.extended() == expected.extended()
            && PartitionDesignator::ALL
                .into_iter()
                .all(|d| self.effective(d) == Self::normalized(expected, d))
    }

    /// Whether both policies give the same result for every partition.
    pub fn equivalent(&self, other: &ImagePolicy) -> bool {
        self.default.extended() == other.default.extended()
            && PartitionDesignator::ALL
                .into_iter()
                .all(|d| self.effective(d) == other.effective(d))
    }
}

impl Default for ImagePolicy {
    /// No policy given: everything allowed (`*`).
    fn default() -> ImagePolicy {
        ImagePolicy::allow_all()
    }
}

impl FromStr for ImagePolicy {
    type Err = PolicyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImagePolicy::parse(s)
    }
}

impl fmt::Display for ImagePolicy {
    /// The canonical short form: `*`, `-` or `~` when the policy is equivalent to one of
    /// them; otherwise the rules in designator order, without rules that make no difference,
    /// followed by `=DEFAULT` unless the default is `ignore`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all_match(PolicyFlags::OPEN) {
            return f.write_str("*");
        }
        if self.all_match(PolicyFlags::IGNORE) {
            return f.write_str("-");
        }
        if self.all_match(PolicyFlags::ABSENT) {
            return f.write_str("~");
        }
        // Rules whose removal changes nothing are left out.
        let mut minimal = self.clone();
        for d in PartitionDesignator::ALL {
            let mut without = minimal.clone();
            without.rules[d.index()] = None;
            if without.equivalent(self) {
                minimal = without;
            }
        }
        let mut parts: Vec<String> = Vec::new();
        for d in PartitionDesignator::ALL {
            if let Some(flags) = minimal.rules[d.index()] {
                parts.push(format!("{d}={}", flags.to_policy_string(true)));
            }
        }
        if self.default.extended() != PolicyFlags::IGNORE.extended() {
            parts.push(format!("={}", self.default.to_policy_string(true)));
        }
        if parts.is_empty() {
            return f.write_str("-");
        }
        f.write_str(&parts.join(":"))
    }
}

#[cfg(test)]
mod tests {
    use super::PartitionDesignator as D;
    use super::*;

    fn p(s: &str) -> ImagePolicy {
        ImagePolicy::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn builtin_policies_print_as_documented() {
        let cases = [
            (ImagePolicy::sysext_default(), "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent"),
            (ImagePolicy::confext_default(), "root=verity+signed+encrypted+unprotected+absent"),
            (ImagePolicy::initrd_sysext(), "root=signed+absent:usr=signed+absent"),
            (ImagePolicy::initrd_confext(), "root=signed+absent"),
            (ImagePolicy::deny_all(), "~"),
            (ImagePolicy::allow_all(), "*"),
            (ImagePolicy::ignore_all(), "-"),
        ];
        for (pol, s) in cases {
            assert_eq!(pol.to_string(), s);
            assert_eq!(p(s), pol, "{s}");
        }
    }

    #[test]
    fn policy_shorthands_equal_their_long_forms() {
        assert_eq!(p("*").default_flags(), PolicyFlags::OPEN);
        assert_eq!(p("-").default_flags(), PolicyFlags::IGNORE);
        assert_eq!(p("").default_flags(), PolicyFlags::IGNORE);
        assert_eq!(p("~").default_flags(), PolicyFlags::ABSENT);
        // The long forms of the man page are equivalent and print as the shorthand.
        assert_eq!(
            p("=verity+signed+encrypted+unprotected+unused+absent").to_string(),
            "*"
        );
        assert_eq!(p("=unused+absent").to_string(), "-");
        assert_eq!(p("=absent").to_string(), "~");
        assert_eq!(p("=open").to_string(), "*");
        assert_eq!(p("=ignore").to_string(), "-");
        // A rule without use flags means "open".
        assert_eq!(p("root=").rule(D::Root), Some(PolicyFlags::empty()));
        assert_eq!(
            p("root=").effective(D::Root) & PolicyFlags::USE_MASK,
            PolicyFlags::OPEN | PolicyFlags::ENCRYPTED_WITH_INTEGRITY
        );
        assert_eq!(
            p("root=-").effective(D::Root) & PolicyFlags::USE_MASK,
            PolicyFlags::OPEN | PolicyFlags::ENCRYPTED_WITH_INTEGRITY
        );
    }

    #[test]
    fn empty_rules_and_words_are_refused_as_systemd_does() {
        // systemd 257 and 262 alike: "Failed to parse image policy: root=verity:" and
        // "Unknown partition policy flag in image policy: root=verity+".
        for (s, missing_equals) in [
            ("root=verity:", true),
            (":root=verity", true),
            ("root=verity::usr=unused", true),
            ("root=verity+", false),
            ("root=+verity", false),
            ("root=verity++signed", false),
        ] {
            let e = ImagePolicy::parse(s).unwrap_err();
            assert_eq!(
                matches!(e.kind, PolicyParseErrorKind::MissingEquals(_)),
                missing_equals,
                "{s}: {e}"
            );
            assert_eq!(
                matches!(e.kind, PolicyParseErrorKind::UnknownFlag(_)),
                !missing_equals,
                "{s}: {e}"
            );
        }
    }

    /// A partition's state prints as its policy word (the debug log's verity note starts
    /// with it).
    #[test]
    fn protection_states_print_as_their_policy_words() {
        let words = [
            (Protection::Unprotected, "unprotected"),
            (Protection::Verity, "verity"),
            (Protection::Signed, "signed"),
            (Protection::Encrypted, "encrypted"),
            (Protection::Unused, "unused"),
            (Protection::Absent, "absent"),
        ];
        for (p, w) in words {
            assert_eq!(p.to_string(), w);
        }
    }

    #[test]
    fn image_policies_print_back_as_they_parse() {
        let inputs = [
            "root=verity",
            "usr=verity+read-only-on:root=encrypted:swap=encrypted",
            "root=encrypted+read-only-off:srv=encrypted+absent:swap=absent",
            "root=unprotected+encrypted:swap=absent+unused:=unprotected+encrypted+absent",
            "root=signed+absent:usr=signed+absent",
            "root=unprotected+absent:usr=unprotected+absent",
            "home=open:=absent",
            "root=growfs-on+growfs-off+verity",
            "root=read-only-on+read-only-off",
            "var=unused",
            "tmp=-",
            " root = verity + signed : usr = verity ",
            "root-verity=unprotected:usr-verity-sig=absent",
            "xbootldr=unprotected:esp=unprotected+absent",
            "root=open:=ignore",
        ];
        for s in inputs {
            let a = p(s);
            let printed = a.to_string();
            let b = p(&printed);
            assert!(a.equivalent(&b), "{s} -> {printed}");
            assert_eq!(b.to_string(), printed, "printing is idempotent for {s}");
        }
        // Each policy as written, and its canonical short form.
        let canonical = [
            ("usr=verity:root=signed", "root=signed:usr=verity"),
            (" root = verity + signed ", "root=verity+signed"),
            ("root=verity+read-only-on", "root=verity+read-only-on"),
            // Both read-only states allowed: left out.
            ("root=verity+read-only-on+read-only-off", "root=verity"),
            // The growfs pair likewise: one state is kept, both are left out.
            ("root=verity+growfs-on", "root=verity+growfs-on"),
            ("root=verity+growfs-off", "root=verity+growfs-off"),
            ("root=verity+growfs-off+growfs-on", "root=verity"),
            // File system types: in their table's order; all of them is no limit.
            ("root=verity+squashfs+erofs", "root=verity+erofs+squashfs"),
            (
                "root=verity+btrfs+erofs+ext4+f2fs+squashfs+vfat+xfs",
                "root=verity",
            ),
            // A rule equal to the default is dropped.
            ("home=ignore:root=verity", "root=verity"),
            ("home=absent:=absent:root=verity", "root=verity:=absent"),
        ];
        for (written, short) in canonical {
            assert_eq!(p(written).to_string(), short, "{written}");
        }
        // str::parse reads a policy as ImagePolicy::parse does.
        let parsed: ImagePolicy = "usr=signed:=absent".parse().unwrap();
        assert_eq!(parsed.to_string(), "usr=signed:=absent");
        assert!("root=frob".parse::<ImagePolicy>().is_err());
    }

    #[test]
    fn bad_image_policies_are_refused_with_their_reason() {
        let cases: [(&str, PolicyParseErrorKind); 9] = [
            (
                "root=verity:foo=verity",
                PolicyParseErrorKind::UnknownDesignator("foo".into()),
            ),
            (
                "ROOT=verity",
                PolicyParseErrorKind::UnknownDesignator("ROOT".into()),
            ),
            (
                "root=verity+bogus",
                PolicyParseErrorKind::UnknownFlag("bogus".into()),
            ),
            ("root=zfs", PolicyParseErrorKind::UnknownFlag("zfs".into())),
            (
                "root=verity++signed",
                PolicyParseErrorKind::UnknownFlag("".into()),
            ),
            ("root", PolicyParseErrorKind::MissingEquals("root".into())),
            (
                "root=verity::usr=verity",
                PolicyParseErrorKind::MissingEquals("".into()),
            ),
            (
                "root=verity:root=signed",
                PolicyParseErrorKind::DuplicateDesignator(D::Root),
            ),
            ("=verity:=absent", PolicyParseErrorKind::DuplicateDefault),
        ];
        for (s, kind) in cases {
            let e = ImagePolicy::parse(s).unwrap_err();
            assert_eq!(e.kind, kind, "{s}");
            assert!(e.to_string().contains(s), "{e}");
        }
        assert_eq!(
            ImagePolicy::parse("root=frob").unwrap_err().to_string(),
            "invalid image policy 'root=frob': unknown partition policy flag 'frob'"
        );
    }

    #[test]
    fn verity_partitions_derive_from_data() {
        let sys = ImagePolicy::sysext_default();
        let use_of = |pol: &ImagePolicy, d| pol.effective(d) & PolicyFlags::USE_MASK;
        assert_eq!(
            use_of(&sys, D::RootVerity),
            PolicyFlags::UNPROTECTED | PolicyFlags::ABSENT
        );
        assert_eq!(
            use_of(&sys, D::RootVeritySig),
            PolicyFlags::UNPROTECTED | PolicyFlags::ABSENT
        );
        assert_eq!(
            use_of(&sys, D::UsrVerity),
            PolicyFlags::UNPROTECTED | PolicyFlags::ABSENT
        );
        assert_eq!(use_of(&sys, D::Home), PolicyFlags::IGNORE);
        // Only "verity": the signature partition falls back to the default (ignored).
        let v = p("root=verity");
        assert_eq!(use_of(&v, D::RootVerity), PolicyFlags::UNPROTECTED);
        assert_eq!(use_of(&v, D::RootVeritySig), PolicyFlags::IGNORE);
        assert!(!v.may_use(D::RootVeritySig).unwrap());
        // "unprotected": neither verity partition is used.
        let u = p("root=unprotected");
        assert!(!u.may_use(D::RootVerity).unwrap());
        assert!(!u.may_use(D::RootVeritySig).unwrap());
        // An explicit rule wins; protection flags are masked for the verity partition.
        let e = p("root=verity:root-verity=verity+absent");
        assert_eq!(use_of(&e, D::RootVerity), PolicyFlags::ABSENT);
        assert!(e.may_use(D::RootVerity).is_err());
        // Every protection flag is masked off for the verity and signature partitions
        // themselves (they are the protection).
        for d in [
            D::RootVerity,
            D::RootVeritySig,
            D::UsrVerity,
            D::UsrVeritySig,
        ] {
            for w in ["verity", "signed", "encrypted", "encryptedwithintegrity"] {
                let rule = format!("{d}={w}+unprotected");
                assert_eq!(use_of(&p(&rule), d), PolicyFlags::UNPROTECTED, "{rule}");
            }
        }
        // Verity flags make no sense for home: masked off.
        assert_eq!(
            use_of(&p("home=verity+unprotected"), D::Home),
            PolicyFlags::UNPROTECTED
        );
    }

    #[test]
    fn sysext_and_initrd_policies_allow_what_systemd_allows() {
        let sys = ImagePolicy::sysext_default();
        for prot in [
            Protection::Unprotected,
            Protection::Verity,
            Protection::Signed,
            Protection::Encrypted,
            Protection::Absent,
        ] {
            sys.check(D::Root, prot).unwrap();
            sys.check(D::Usr, prot).unwrap();
        }
        assert!(sys.check(D::Root, Protection::Unused).is_err());
        sys.check(D::Home, Protection::Unused).unwrap();
        sys.check(D::Home, Protection::Absent).unwrap();

        let initrd = ImagePolicy::initrd_sysext();
        initrd.check(D::Root, Protection::Signed).unwrap();
        initrd.check(D::Usr, Protection::Absent).unwrap();
        let e = initrd.check(D::Root, Protection::Unprotected).unwrap_err();
        assert_eq!(e.designator(), D::Root);
        let msg = e.to_string();
        assert_eq!(
            msg,
            "partition 'root' was found unprotected, but image policy 'root=signed+absent:usr=signed+absent' allows only signed+absent"
        );
        assert!(initrd.check(D::Root, Protection::Verity).is_err());

        let strict = p("root=verity+signed:usr=verity+signed");
        assert!(strict.check(D::Root, Protection::Unprotected).is_err());
        assert!(strict.check(D::Root, Protection::Absent).is_err());
        strict.check(D::Root, Protection::Signed).unwrap();

        // Several candidate states: one allowed is enough.
        p("root=encrypted")
            .check_found(D::Root, PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED)
            .unwrap();
        assert!(p("root=verity")
            .check_found(D::Root, PolicyFlags::ENCRYPTED | PolicyFlags::UNPROTECTED)
            .is_err());

        let deny = ImagePolicy::deny_all();
        let e = deny.may_use(D::Root).unwrap_err();
        assert_eq!(
            e.to_string(),
            "partition 'root' exists, but image policy '~' requires it to be absent"
        );
        deny.check(D::Root, Protection::Absent).unwrap();
        assert!(!ImagePolicy::ignore_all().may_use(D::Root).unwrap());
        assert!(ImagePolicy::allow_all().may_use(D::Swap).unwrap());
        assert!(sys.may_use(D::Root).unwrap());
        assert!(!sys.may_use(D::Esp).unwrap());
    }

    #[test]
    fn gpt_read_only_and_growfs_flags_must_match_the_policy() {
        const RO: u64 = 1 << 60;
        const GROW: u64 = 1 << 59;
        let sys = ImagePolicy::sysext_default();
        sys.check_gpt_flags(D::Root, 0).unwrap();
        sys.check_gpt_flags(D::Root, RO | GROW).unwrap();
        let ro = p("root=verity+read-only-on");
        ro.check_gpt_flags(D::Root, RO).unwrap();
        let e = ro.check_gpt_flags(D::Root, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "partition 'root' has the GPT 'read-only' flag off, but image policy 'root=verity+read-only-on' requires it on"
        );
        let g = p("root=growfs-off");
        assert!(g.check_gpt_flags(D::Root, GROW).is_err());
        g.check_gpt_flags(D::Root, RO).unwrap();
        // Absent-only policies do not care about partition flags.
        assert_eq!(
            p("root=absent").effective(D::Root) & PolicyFlags::PFLAGS_MASK,
            PolicyFlags::empty()
        );
    }

    #[test]
    fn file_system_flags_restrict_the_partition_file_system_type() {
        let pol = p("root=verity+erofs+squashfs:usr=ext4");
        assert_eq!(pol.to_string(), "root=verity+erofs+squashfs:usr=ext4");
        pol.check_fstype(D::Root, "erofs").unwrap();
        pol.check_fstype(D::Root, "squashfs").unwrap();
        let e = pol.check_fstype(D::Root, "ext4").unwrap_err();
        assert_eq!(e.designator(), D::Root);
        assert!(e.to_string().contains("has a ext4 file system"), "{e}");
        assert!(e.to_string().contains("allows only erofs+squashfs"), "{e}");
        pol.check_fstype(D::Usr, "ext4").unwrap();
        assert!(pol.check_fstype(D::Usr, "btrfs").is_err());
        // A file system no flag names (or an unknown one) fails where types are restricted,
        // and any type is fine where none is named.
        assert!(pol.check_fstype(D::Usr, "ntfs3").is_err());
        p("root=verity").check_fstype(D::Root, "ntfs3").unwrap();
        ImagePolicy::sysext_default()
            .check_fstype(D::Root, "xfs")
            .unwrap();
        // A rule with only file system flags allows every use.
        let only_fs = p("root=btrfs+f2fs+vfat+xfs");
        only_fs.check(D::Root, Protection::Unprotected).unwrap();
        assert_eq!(only_fs.to_string(), "root=btrfs+f2fs+vfat+xfs");
        // All seven named equals none named.
        assert!(
            p("root=btrfs+erofs+ext4+f2fs+squashfs+vfat+xfs+verity").equivalent(&p("root=verity"))
        );
        for pol in ["root=erofs", "=squashfs", "usr=encryptedwithintegrity"] {
            assert!(p(pol).uses_post_257_flags(), "{pol}");
        }
        assert!(!p("root=verity+signed:=absent").uses_post_257_flags());
        // Verity partitions inherit no file system requirement they could not meet.
        assert_eq!(
            p("root=verity+erofs").effective(D::RootVerity) & PolicyFlags::FSTYPE_MASK,
            PolicyFlags::FSTYPE_MASK
        );
    }

    #[test]
    fn encryptedwithintegrity_needs_integrity_and_encrypted_covers_it() {
        let pol = p("root=encryptedwithintegrity");
        assert_eq!(pol.to_string(), "root=encryptedwithintegrity");
        assert!(pol.check(D::Root, Protection::Encrypted).is_err());
        assert!(pol.check(D::Root, Protection::Unprotected).is_err());
        pol.check_found(D::Root, PolicyFlags::ENCRYPTED_WITH_INTEGRITY)
            .unwrap();
        // `encrypted` takes any LUKS volume, with integrity too.
        p("root=encrypted")
            .check_found(D::Root, PolicyFlags::ENCRYPTED_WITH_INTEGRITY)
            .unwrap();
        assert_eq!(
            p("root=encrypted+encryptedwithintegrity").to_string(),
            "root=encrypted"
        );
        assert_eq!(
            p("root=open+encryptedwithintegrity").to_string(),
            "root=open"
        );
        assert_eq!(p("=open+encryptedwithintegrity").to_string(), "*");
    }

    #[test]
    fn designator_names_round_trip() {
        for d in D::ALL {
            assert_eq!(d.as_str().parse::<D>(), Ok(d));
        }
        assert!("root-verity-signature".parse::<D>().is_err());
    }
}
