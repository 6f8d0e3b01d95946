//! Overlayfs mount options chosen by the caller: what systemd 259's
//! `$SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS` / `$SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS` give
//! it. The library takes them as [`crate::Options::overlay_options`]; only the CLI reads the
//! environment. Pure: parsing and the split into mount flags and overlayfs options.
//!
//! The string is a comma-separated list, as `mount -o` takes it. Words that are mount flags
//! (`ro`, `nosuid`, `noatime`, … and their opposites) change the overlay's mount flags;
//! everything else is an overlayfs option (`key=value` or a bare `key`) handed to the kernel
//! after the layers. As in systemd, a list given (even an empty one) replaces the options a
//! writable merge gets by default (`redirect_dir=on,noatime,metacopy=off,index=off`);
//! read-only merges have none by default. The layer options (`lowerdir`, `lowerdir+`,
//! `datadir+`, `upperdir`, `workdir`) are refused: the layers are ours to choose.

use crate::plan::MountFlags;
use crate::Error;

/// The environment variable systemd reads the options of a class from (the CLI reads it at
/// level 262; the library never does).
pub fn env_name(class: crate::ImageClass) -> &'static str {
    match class {
        crate::ImageClass::Sysext => "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS",
        crate::ImageClass::Confext => "SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS",
    }
}

/// One overlayfs option: key and optional value.
pub type FsOption = (String, Option<String>);

/// A parsed option list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OverlayOptions {
    /// The list as given (for messages).
    pub raw: String,
    /// Mount-flag words, in order (applied to the default flags by [`OverlayOptions::apply_flags`]).
    pub flags: Vec<String>,
    /// Overlayfs options, in order.
    pub fs: Vec<FsOption>,
}

/// The options a writable merge gets when the caller gives none.
pub const WRITABLE_DEFAULTS: &str = "redirect_dir=on,noatime,metacopy=off,index=off";

/// Options only the library sets.
const LAYER_KEYS: [&str; 5] = ["lowerdir", "lowerdir+", "datadir+", "upperdir", "workdir"];

/// Words that are mount flags, and what they do.
fn flag_word(w: &str) -> Option<fn(&mut MountFlags)> {
    Some(match w {
        "ro" => |f| f.read_only = true,
        "rw" => |f| f.read_only = false,
        "nosuid" => |f| f.nosuid = true,
        "suid" => |f| f.nosuid = false,
        "nodev" => |f| f.nodev = true,
        "dev" => |f| f.nodev = false,
        "noexec" => |f| f.noexec = true,
        "exec" => |f| f.noexec = false,
        "noatime" => |f| {
            f.noatime = true;
            f.strictatime = false
        },
        "relatime" | "atime" => |f| {
            f.noatime = false;
            f.strictatime = false
        },
        "strictatime" => |f| {
            f.noatime = false;
            f.strictatime = true
        },
        "nodiratime" => |f| f.nodiratime = true,
        "diratime" => |f| f.nodiratime = false,
        _ => return None,
    })
}

impl OverlayOptions {
    /// Parse a comma-separated list (empty words are dropped).
    pub fn parse(s: &str) -> Result<OverlayOptions, Error> {
        let mut out = OverlayOptions {
            raw: s.to_string(),
            ..Default::default()
        };
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if flag_word(w).is_some() {
                out.flags.push(w.to_string());
                continue;
            }
            let (k, v) = match w.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (w, None),
            };
            if k.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "Invalid overlayfs mount option '{w}' (no name before '=')"
                )));
            }
            if LAYER_KEYS.contains(&k) {
                return Err(Error::InvalidArgument(format!(
                    "Overlayfs mount option '{k}' is set by libsysext itself and cannot be given"
                )));
            }
            out.fs.push((k.to_string(), v));
        }
        Ok(out)
    }

    /// The options of a merge: `given` when the caller chose some, else the defaults (those
    /// of [`WRITABLE_DEFAULTS`] for a writable merge, none for a read-only one).
    pub fn effective(given: Option<&OverlayOptions>, writable: bool) -> OverlayOptions {
        match given {
            Some(o) => o.clone(),
            None if writable => OverlayOptions::parse(WRITABLE_DEFAULTS).unwrap_or_default(),
            None => OverlayOptions::default(),
        }
    }

    /// Apply the mount-flag words, in order, to `flags`.
    pub fn apply_flags(&self, flags: &mut MountFlags) {
        for w in &self.flags {
            if let Some(f) = flag_word(w) {
                f(flags);
            }
        }
    }

    /// Put these options in place of the defaults in every overlay of `plan`: the default
    /// mount flags of the merge's kind without the writable default `noatime`, changed by the
    /// flag words; the overlayfs options replaced by those given.
    pub fn apply_to(&self, plan: &mut crate::plan::Plan) {
        for h in &mut plan.hierarchies {
            let defaults = OverlayOptions::effective(None, h.writable());
            // Take the default words off, then put the given ones on.
            for w in &defaults.flags {
                if w == "noatime" {
                    h.flags.noatime = false;
                }
            }
            self.apply_flags(&mut h.flags);
            h.fs_options = self.fs.clone();
        }
    }

    /// One option as the kernel's option string has it (`key` or `key=value`).
    pub fn render(o: &FsOption) -> String {
        match &o.1 {
            Some(v) => format!("{}={v}", o.0),
            None => o.0.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_into_flags_and_fs_options() {
        let o = OverlayOptions::parse("noatime, xino=off,,userxattr,nosuid").unwrap();
        assert_eq!(o.flags, ["noatime", "nosuid"]);
        assert_eq!(
            o.fs,
            [
                ("xino".to_string(), Some("off".to_string())),
                ("userxattr".to_string(), None)
            ]
        );
        let mut f = MountFlags::default();
        o.apply_flags(&mut f);
        assert!(f.noatime && f.nosuid && !f.read_only);
        let mut f = MountFlags {
            noatime: true,
            ..Default::default()
        };
        OverlayOptions::parse("strictatime")
            .unwrap()
            .apply_flags(&mut f);
        assert!(!f.noatime && f.strictatime);
        assert_eq!(OverlayOptions::render(&o.fs[0]), "xino=off");
        assert_eq!(OverlayOptions::render(&o.fs[1]), "userxattr");
    }

    #[test]
    fn a_given_option_list_replaces_the_writable_defaults() {
        let w = OverlayOptions::effective(None, true);
        assert_eq!(w.flags, ["noatime"]);
        assert_eq!(w.fs.len(), 3);
        assert_eq!(
            OverlayOptions::effective(None, false),
            OverlayOptions::default()
        );
        // A list given replaces the defaults, even an empty one (as systemd's variable).
        let empty = OverlayOptions::parse("").unwrap();
        assert!(OverlayOptions::effective(Some(&empty), true).fs.is_empty());
    }

    #[test]
    fn each_flag_word_sets_its_flag_from_either_side() {
        let none = MountFlags::default();
        let all = MountFlags {
            read_only: true,
            nodev: true,
            nosuid: true,
            noexec: true,
            noatime: true,
            strictatime: true,
            nodiratime: true,
        };
        // (word, what it makes of no flags, what it makes of all flags)
        type Case = (&'static str, fn(&mut MountFlags), fn(&mut MountFlags));
        let cases: [Case; 15] = [
            ("ro", |f| f.read_only = true, |_| ()),
            ("rw", |_| (), |f| f.read_only = false),
            ("nosuid", |f| f.nosuid = true, |_| ()),
            ("suid", |_| (), |f| f.nosuid = false),
            ("nodev", |f| f.nodev = true, |_| ()),
            ("dev", |_| (), |f| f.nodev = false),
            ("noexec", |f| f.noexec = true, |_| ()),
            ("exec", |_| (), |f| f.noexec = false),
            ("noatime", |f| f.noatime = true, |f| f.strictatime = false),
            (
                "relatime",
                |_| (),
                |f| (f.noatime, f.strictatime) = (false, false),
            ),
            (
                "atime",
                |_| (),
                |f| (f.noatime, f.strictatime) = (false, false),
            ),
            (
                "strictatime",
                |f| f.strictatime = true,
                |f| f.noatime = false,
            ),
            ("nodiratime", |f| f.nodiratime = true, |_| ()),
            ("diratime", |_| (), |f| f.nodiratime = false),
            // Not a flag word: an overlayfs option, which changes no flag.
            ("xino", |_| (), |_| ()),
        ];
        for (word, from_none, from_all) in cases {
            let o = OverlayOptions::parse(word).unwrap();
            assert_eq!(o.raw, word);
            assert_eq!(o.flags.is_empty(), word == "xino", "{word}");
            for (start, change) in [(none, from_none), (all, from_all)] {
                let (mut got, mut want) = (start, start);
                o.apply_flags(&mut got);
                change(&mut want);
                assert_eq!(got, want, "{word} on {start:?}");
            }
        }
        // Words apply in order: the last one wins.
        let mut f = none;
        OverlayOptions::parse("ro,rw,noexec,exec,nosuid")
            .unwrap()
            .apply_flags(&mut f);
        assert_eq!(
            f,
            MountFlags {
                nosuid: true,
                ..none
            }
        );
    }

    #[test]
    fn each_class_has_its_own_variable() {
        assert_eq!(
            env_name(crate::ImageClass::Sysext),
            "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS"
        );
        assert_eq!(
            env_name(crate::ImageClass::Confext),
            "SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS"
        );
        assert_eq!(
            OverlayOptions::parse(" noatime,xino=off ").unwrap().raw,
            " noatime,xino=off "
        );
    }

    #[test]
    fn overlay_options_naming_layers_are_refused() {
        for bad in [
            "=x",
            "lowerdir=/a",
            "upperdir=/u",
            "workdir=/w",
            "lowerdir+=/x",
        ] {
            assert!(OverlayOptions::parse(bad).is_err(), "{bad}");
        }
    }
}
