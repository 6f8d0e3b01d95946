//! Compatibility levels: which systemd release libsysext follows where releases differ.
//!
//! systemd-sysext changed behaviour between 257 (Debian 13) and 262 (Debian sid, Fedora,
//! Arch). The default is the newest level, [`Compat::V262`]; [`Compat::V257`] reproduces 257.
//! Every difference is one method of [`Compat`] below, and only those methods decide by the
//! level: the planner, the probe, discovery, status and the front ends ask them.
//!
//! The level is chosen by [`crate::Options::compat`], else by `LIBSYSEXT_COMPAT=257|262` in
//! the environment (the CLI's `--compat=` wins over both), else it is the newest.

use std::fmt;
use std::str::FromStr;

/// Environment variable naming the level (`257` or `262`).
pub const ENV: &str = "LIBSYSEXT_COMPAT";

/// A compatibility level: the systemd release whose observable behaviour is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Compat {
    /// systemd 257 (Debian 13 "trixie").
    V257,
    /// systemd 262 (the newest release; the default).
    #[default]
    V262,
}

impl Compat {
    /// Every level, oldest first.
    pub const ALL: [Compat; 2] = [Compat::V257, Compat::V262];
    /// The newest level (the default).
    pub const NEWEST: Compat = Compat::V262;

    /// The systemd version number (`257`, `262`).
    pub fn version(self) -> u32 {
        match self {
            Compat::V257 => 257,
            Compat::V262 => 262,
        }
    }

    /// Parse `257` or `262` (as `--compat=` and `LIBSYSEXT_COMPAT` take them).
    pub fn parse(s: &str) -> Option<Compat> {
        match s {
            "257" => Some(Compat::V257),
            "262" => Some(Compat::V262),
            _ => None,
        }
    }

    /// The level named by `LIBSYSEXT_COMPAT`: `Ok(None)` when unset, `Err(value)` when it
    /// names no level.
    pub fn from_env() -> Result<Option<Compat>, String> {
        match std::env::var(ENV) {
            Ok(v) => Compat::parse(&v).map(Some).ok_or(v),
            Err(_) => Ok(None),
        }
    }

    // ---- The switches. One per behavioural difference; each says which release changed it.

    /// The trusted certificates for verity signatures (`verity.d`) are read below `--root`
    /// (systemd 259, PR 39991 "sysext: Get verity user certs from given --root="); 257 reads
    /// the host's, whatever the root.
    pub fn reads_verity_certs_in_root(self) -> bool {
        self >= Compat::V262
    }

    /// `status`: a hierarchy without a merge reports an empty list of extensions (`[]` in
    /// JSON, `-` in the table) instead of the string `none` (262; 257 prints `none`).
    pub fn status_lists_unmerged_as_empty(self) -> bool {
        self >= Compat::V262
    }

    /// In every mutable mode but `no`, every configured hierarchy is merged, also one no
    /// extension has content for, and a merge goes ahead with zero extensions ("No extensions
    /// found, proceeding in mutable mode."). 257 merges only hierarchies with extension
    /// content and does nothing without extensions. (262)
    pub fn merges_every_hierarchy_when_mutable(self) -> bool {
        self >= Compat::V262
    }

    /// Mode of the parents (`var/`, `var/lib/`, `var/lib/extensions.mutable/`) that
    /// `--mutable=yes` creates for a routing dir: 0755 (262), 0700 (257). The routing dir itself
    /// gets the hierarchy's mode and the work dir 0700 at every level.
    pub fn created_parent_mode(self) -> u32 {
        match self {
            Compat::V257 => 0o700,
            Compat::V262 => 0o755,
        }
    }

    /// A routing dir that is a dangling symlink is created (its target, inside `--root`) by
    /// `--mutable=yes` (262); 257 fails with "File exists".
    pub fn creates_dangling_routing_target(self) -> bool {
        self >= Compat::V262
    }

    /// With an explicit `--root`, symlinks in the search directories (to image directories
    /// or files, and a `NAME.v` that is a symlink) are followed, resolved inside the root, a
    /// dangling one passed over, and the image's path is what they lead to (262); 257 skips
    /// them. Inside `NAME.v/` (both levels follow its symlinks): 262 looks at every candidate,
    /// passes over the wrong type and gives up on the directory when one dangles; 257 takes
    /// the newest name, follows it only while it stays beneath the root, and gives up when it
    /// does not resolve or has the wrong type. (262)
    pub fn follows_search_symlinks_in_root(self) -> bool {
        self >= Compat::V262
    }

    /// The release file of an image picked from `NAME.raw.v/` must be named after `NAME`
    /// (`extension-release.NAME`); one named after the picked file (`NAME_3`) fails the
    /// merge ("No medium found") (262). 257 checks against the picked file's name, so it
    /// accepts either. Directories picked from `NAME.v/` are checked against `NAME` at both.
    pub fn picked_image_release_named_after_base(self) -> bool {
        self >= Compat::V262
    }

    /// A `refresh` whose inputs are unchanged is skipped (262, from 260), in every mode, so
    /// that ephemeral writes survive it; 257 always rebuilds (and says "Unmerged" and
    /// "Merged" for it), which level 257 does too (gap-free, as every refresh of ours).
    pub fn skips_unchanged_refresh(self) -> bool {
        self >= Compat::V262
    }

    /// The message of a refresh that is skipped because nothing changed.
    pub fn refresh_skipped_message(self) -> &'static str {
        match self {
            // Never said by 257's refresh, which always rebuilds; kept for the level's
            // completeness (a skip at 257 is not made).
            Compat::V257 => "Nothing changed since the last merge, not refreshing.",
            Compat::V262 => "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh.",
        }
    }

    /// A DDI with a data and a verity partition but no root hash (no signature partition, no
    /// `.roothash` sidecar) gets one from the image itself: the data partition's UUID followed
    /// by the verity partition's (as systemd-repart makes them), so dm-verity is set up (258,
    /// `dissected_image_guess_verity_roothash()`; `SYSTEMD_DISSECT_VERITY_GUESS=0` turns it
    /// off). 257 uses such a partition unprotected.
    pub fn discovers_verity_root_hash_in_image(self) -> bool {
        self >= Compat::V262
    }

    /// `yes` with a routing dir that is a symlink to a non-directory fails while looking it
    /// up for creation ("Failed to chase/create base directory …: Not a directory") (262);
    /// 257 fails creating it ("Failed to create a directory …: File exists").
    pub fn chases_routing_dir_on_create(self) -> bool {
        self >= Compat::V262
    }

    /// "Using extensions …" is printed after the routing dirs were checked (a mode or
    /// creation error comes without it) (262); 257 prints it first.
    pub fn lists_after_routing_checks(self) -> bool {
        self >= Compat::V262
    }

    /// `unmerge` refuses a hierarchy whose meta dir's `work_dir` is absolute or not
    /// normalized ("Invalid work directory path '…'."): it stays merged, the others are
    /// unmerged, and the unmerge fails (262). 257 unmerges it. (At both levels libsysext
    /// removes a work dir only when it is named as one of that hierarchy.)
    pub fn refuses_malformed_work_dir(self) -> bool {
        self >= Compat::V262
    }

    /// Units listed in `EXTENSION_RESTART_UNITS=` / `EXTENSION_RELOAD_OR_RESTART_UNITS=` imply
    /// a manager reload, and the CLI restarts them after it (262, from 259); 257 ignores both
    /// keys. (The library reports the units at every level.)
    pub fn restarts_extension_units(self) -> bool {
        self >= Compat::V262
    }

    /// `sysext.conf`/`confext.conf` and their `.conf.d/` drop-ins below the root are read for
    /// the default mutable mode and image policy (262, from 259); 257 reads no configuration
    /// file, so a root carrying one would merge differently.
    pub fn reads_config_files(self) -> bool {
        self >= Compat::V262
    }

    /// The CLI reads `$SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS` /
    /// `$SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS` into [`crate::Options::overlay_options`]
    /// (259); 257 ignores both. (The library option works at every level.)
    pub fn reads_overlayfs_mount_options_env(self) -> bool {
        self >= Compat::V262
    }

    /// Image policies may use the file system type flags (`btrfs`, `erofs`, `ext4`, `f2fs`,
    /// `squashfs`, `vfat`, `xfs`: a used partition's file system must be one of them) and
    /// `encryptedwithintegrity` (259); 257 fails to parse a policy with them.
    pub fn knows_policy_fs_flags(self) -> bool {
        self >= Compat::V262
    }

    /// Whether the initrd scope applies (`SYSEXT_SCOPE=`/`CONFEXT_SCOPE=` checked against
    /// `initrd`, the initrd's search directories) is decided by `etc/initrd-release` below the
    /// root, resolved inside it (systemd 259, PR 39473 "sysext: Check for /etc/initrd-release in
    /// given --root= tree"; `SYSTEMD_IN_INITRD` no longer counts there); 257 asks the host
    /// (`SYSTEMD_IN_INITRD`, else the host's `/etc/initrd-release`), whatever `--root`.
    pub fn reads_initrd_release_in_root(self) -> bool {
        self >= Compat::V262
    }

    /// In the initrd scope, the global extensions systemd-stub passes from the ESP's
    /// `loader/extensions/` are searched too, after the per-UKI ones: `/.extra/global_sysext`
    /// resp. `/.extra/global_confext`, last (systemd 258, PR 38113 "Support global
    /// sysext/confext in systemd-stub/systemd-sysext"); 257 searches only `/.extra/sysext`
    /// resp. `/.extra/confext` there.
    pub fn searches_global_extra_dirs(self) -> bool {
        self >= Compat::V262
    }

    /// `--mutable=help` lists the modes ("Known mutability modes:" and one per line) (262);
    /// 257 fails to parse `help` like any unknown mode.
    pub fn has_mutable_help(self) -> bool {
        self >= Compat::V262
    }

    /// `list` with a `--root` that does not exist fails ("Failed to discover images: No such
    /// file or directory") (262); 257 finds no images there ("No OS extensions found.").
    pub fn fails_list_of_missing_root(self) -> bool {
        self >= Compat::V262
    }

    /// With colours on, the grey of "nothing here" cells (`-`, `none`) in 256-colour style is
    /// written after the 16-colour code (262); 257 writes only the 256-colour code.
    pub fn writes_grey_twice(self) -> bool {
        self >= Compat::V262
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.version())
    }
}

impl FromStr for Compat {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Compat> {
        Compat::parse(s).ok_or_else(|| {
            crate::Error::InvalidArgument(format!(
                "Unknown compatibility level '{s}' (known: 257, 262)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for c in Compat::ALL {
            assert_eq!(Compat::parse(&c.to_string()), Some(c));
            assert_eq!(c.to_string().parse::<Compat>().unwrap(), c);
        }
        for bad in ["", "258", "v262", "262 ", "newest"] {
            assert_eq!(Compat::parse(bad), None, "{bad:?}");
            assert!(bad.parse::<Compat>().is_err());
        }
        assert_eq!(Compat::default(), Compat::NEWEST);
        assert_eq!(Compat::NEWEST, Compat::V262);
    }

    #[test]
    fn switches_differ_exactly_between_levels() {
        let a = Compat::V257;
        let b = Compat::V262;
        assert!(!a.status_lists_unmerged_as_empty() && b.status_lists_unmerged_as_empty());
        assert!(
            !a.merges_every_hierarchy_when_mutable() && b.merges_every_hierarchy_when_mutable()
        );
        assert_eq!(
            (a.created_parent_mode(), b.created_parent_mode()),
            (0o700, 0o755)
        );
        assert!(!a.creates_dangling_routing_target() && b.creates_dangling_routing_target());
        assert!(!a.follows_search_symlinks_in_root() && b.follows_search_symlinks_in_root());
        assert!(
            !a.picked_image_release_named_after_base() && b.picked_image_release_named_after_base()
        );
        assert!(!a.skips_unchanged_refresh() && b.skips_unchanged_refresh());
        assert!(!a.has_mutable_help() && b.has_mutable_help());
        assert!(!a.chases_routing_dir_on_create() && b.chases_routing_dir_on_create());
        assert!(!a.lists_after_routing_checks() && b.lists_after_routing_checks());
        assert!(!a.refuses_malformed_work_dir() && b.refuses_malformed_work_dir());
        assert!(!a.restarts_extension_units() && b.restarts_extension_units());
        assert!(!a.reads_config_files() && b.reads_config_files());
        assert!(!a.reads_verity_certs_in_root() && b.reads_verity_certs_in_root());
        assert!(!a.reads_overlayfs_mount_options_env() && b.reads_overlayfs_mount_options_env());
        assert!(!a.knows_policy_fs_flags() && b.knows_policy_fs_flags());
        assert!(!a.reads_initrd_release_in_root() && b.reads_initrd_release_in_root());
        assert!(!a.searches_global_extra_dirs() && b.searches_global_extra_dirs());
    }
}
