//! Mutable modes: whether a merged hierarchy gets an upper layer, and which.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The six `--mutable=` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MutableMode {
    /// `no`: read-only merge (the default).
    #[doc(alias = "MUTABLE_NO")]
    #[default]
    Disabled,
    /// `yes`: the write-routing dir is created if missing and used as upper dir.
    #[doc(alias = "MUTABLE_YES")]
    Enabled,
    /// `auto`: the write-routing dir is the upper dir if it exists.
    #[doc(alias = "MUTABLE_AUTO")]
    Auto,
    /// `import`: the write-routing dir is a read-only layer above the extensions.
    #[doc(alias = "MUTABLE_IMPORT")]
    Import,
    /// `ephemeral`: writes go to a tmpfs and vanish on unmerge.
    #[doc(alias = "MUTABLE_EPHEMERAL")]
    Ephemeral,
    /// `ephemeral-import`: `ephemeral` plus the routing dir as a read-only layer.
    #[doc(alias = "MUTABLE_EPHEMERAL_IMPORT")]
    EphemeralImport,
}

impl MutableMode {
    /// All modes, in systemd's order.
    pub const ALL: [MutableMode; 6] = [
        MutableMode::Disabled,
        MutableMode::Enabled,
        MutableMode::Auto,
        MutableMode::Import,
        MutableMode::Ephemeral,
        MutableMode::EphemeralImport,
    ];

    /// systemd's spelling (`no`, `yes`, `auto`, `import`, `ephemeral`, `ephemeral-import`).
    pub fn as_str(self) -> &'static str {
        match self {
            MutableMode::Disabled => "no",
            MutableMode::Enabled => "yes",
            MutableMode::Auto => "auto",
            MutableMode::Import => "import",
            MutableMode::Ephemeral => "ephemeral",
            MutableMode::EphemeralImport => "ephemeral-import",
        }
    }

    /// Parse exactly as systemd-sysext 257 does: booleans (any case) or one of the
    /// lowercase words. `disabled`/`enabled` are *not* accepted here; see
    /// [`MutableMode::parse_extended`].
    pub fn parse_systemd(s: &str) -> Option<MutableMode> {
        if let Some(b) = crate::release::parse_bool(s) {
            return Some(if b {
                MutableMode::Enabled
            } else {
                MutableMode::Disabled
            });
        }
        match s {
            "auto" => Some(MutableMode::Auto),
            "import" => Some(MutableMode::Import),
            "ephemeral" => Some(MutableMode::Ephemeral),
            "ephemeral-import" => Some(MutableMode::EphemeralImport),
            _ => None,
        }
    }

    /// Like [`MutableMode::parse_systemd`], plus the man page's names `disabled` and
    /// `enabled` (the library and bindings accept them; the CLI stays with 257's set).
    pub fn parse_extended(s: &str) -> Option<MutableMode> {
        match s {
            "disabled" => Some(MutableMode::Disabled),
            "enabled" => Some(MutableMode::Enabled),
            _ => MutableMode::parse_systemd(s),
        }
    }

    /// Whether the merged hierarchy may get an upper dir in this mode.
    pub fn may_be_writable(self) -> bool {
        !matches!(self, MutableMode::Disabled | MutableMode::Import)
    }

    /// Whether the routing dir is imported as a lower layer.
    pub fn imports(self) -> bool {
        matches!(self, MutableMode::Import | MutableMode::EphemeralImport)
    }

    /// Whether the write-routing dir matters at all: as the upper dir (`auto`, `yes`) or as
    /// an imported layer (`import`, `ephemeral-import`).
    pub fn uses_mutable_dir(self) -> bool {
        !matches!(self, MutableMode::Disabled | MutableMode::Ephemeral)
    }

    /// Whether the upper dir lives on the private tmpfs.
    pub fn is_ephemeral(self) -> bool {
        matches!(self, MutableMode::Ephemeral | MutableMode::EphemeralImport)
    }
}

impl fmt::Display for MutableMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MutableMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        MutableMode::parse_extended(s)
            .ok_or_else(|| Error::InvalidArgument(format!("Failed to parse mutable mode: {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_modes_use_the_routing_dir() {
        use MutableMode as M;
        for (m, uses) in [
            (M::Disabled, false),
            (M::Ephemeral, false),
            (M::Auto, true),
            (M::Enabled, true),
            (M::Import, true),
            (M::EphemeralImport, true),
        ] {
            assert_eq!(m.uses_mutable_dir(), uses, "{m}");
        }
    }

    #[test]
    fn parsing_matches_257() {
        let table: &[(&str, Option<MutableMode>)] = &[
            ("no", Some(MutableMode::Disabled)),
            ("yes", Some(MutableMode::Enabled)),
            ("TRUE", Some(MutableMode::Enabled)),
            ("On", Some(MutableMode::Enabled)),
            ("Y", Some(MutableMode::Enabled)),
            ("1", Some(MutableMode::Enabled)),
            ("off", Some(MutableMode::Disabled)),
            ("0", Some(MutableMode::Disabled)),
            ("auto", Some(MutableMode::Auto)),
            ("import", Some(MutableMode::Import)),
            ("ephemeral", Some(MutableMode::Ephemeral)),
            ("ephemeral-import", Some(MutableMode::EphemeralImport)),
            ("AUTO", None),
            ("Auto", None),
            ("ephemeral_import", None),
            ("", None),
            ("enabled", None),
            ("disabled", None),
            ("help", None),
            ("bogus", None),
        ];
        for (s, want) in table {
            assert_eq!(MutableMode::parse_systemd(s), *want, "{s:?}");
        }
        assert_eq!(
            MutableMode::parse_extended("enabled"),
            Some(MutableMode::Enabled)
        );
        assert_eq!(
            MutableMode::parse_extended("disabled"),
            Some(MutableMode::Disabled)
        );
    }

    #[test]
    fn display_round_trips() {
        for m in MutableMode::ALL {
            assert_eq!(MutableMode::parse_systemd(m.as_str()), Some(m));
        }
    }
}
