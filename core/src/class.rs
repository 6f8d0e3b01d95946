//! Image classes (`sysext`, `confext`) and their constant properties.

use std::fmt;

/// Which kind of extension images are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageClass {
    /// System extensions: merged onto `/usr` and `/opt`.
    #[doc(alias = "IMAGE_SYSEXT")]
    Sysext,
    /// Configuration extensions: merged onto `/etc`.
    #[doc(alias = "IMAGE_CONFEXT")]
    Confext,
}

/// Constant properties of an image class (systemd's `image_class_info[]`).
#[derive(Debug, Clone, Copy)]
pub struct ClassInfo {
    /// `sysext` or `confext`: overlay and tmpfs source string.
    pub short: &'static str,
    /// Program name used in messages (`systemd-sysext`).
    pub program: &'static str,
    /// Default hierarchies, in configured order.
    pub default_hierarchies: &'static [&'static str],
    /// Environment variable overriding the hierarchies.
    pub hierarchies_env: &'static str,
    /// Environment variable giving the default mutable mode.
    pub mutable_env: &'static str,
    /// Name of the meta directory inside the merged tree (`.systemd-sysext`).
    pub dot_dir: &'static str,
    /// Name of the file in the meta directory listing the merged images (`extensions`).
    pub list_file: &'static str,
    /// Plural used for workspace sub-directories (`extensions`/`confexts`).
    pub plural: &'static str,
    /// Key of the compatibility level in release files (`SYSEXT_LEVEL`).
    pub level_key: &'static str,
    /// Key of the scope list in release files (`SYSEXT_SCOPE`).
    pub scope_key: &'static str,
    /// Directory inside an image holding the release file.
    pub release_dir: &'static str,
    /// Search directories in precedence order (normal system).
    pub search_dirs: &'static [&'static str],
    /// Search directories in precedence order (initrd scope, systemd 257).
    pub search_dirs_initrd: &'static [&'static str],
    /// Search directories in precedence order (initrd scope, systemd 258 and later): those of
    /// 257 and, last, systemd-stub's global extensions.
    pub search_dirs_initrd_global: &'static [&'static str],
    /// File name suffix stripped from image names (`.sysext`).
    pub name_suffix: &'static str,
    /// Whether `nosuid` is a default mount flag.
    pub nosuid: bool,
    /// Whether `noexec` is a default mount flag.
    pub noexec: bool,
}

const SYSEXT: ClassInfo = ClassInfo {
    short: "sysext",
    program: "systemd-sysext",
    default_hierarchies: &["/usr", "/opt"],
    hierarchies_env: "SYSTEMD_SYSEXT_HIERARCHIES",
    mutable_env: "SYSTEMD_SYSEXT_MUTABLE_MODE",
    dot_dir: ".systemd-sysext",
    list_file: "extensions",
    plural: "extensions",
    level_key: "SYSEXT_LEVEL",
    scope_key: "SYSEXT_SCOPE",
    release_dir: "usr/lib/extension-release.d",
    search_dirs: &["/etc/extensions", "/run/extensions", "/var/lib/extensions"],
    search_dirs_initrd: &[
        "/etc/extensions",
        "/run/extensions",
        "/var/lib/extensions",
        "/.extra/sysext",
    ],
    search_dirs_initrd_global: &[
        "/etc/extensions",
        "/run/extensions",
        "/var/lib/extensions",
        "/.extra/sysext",
        "/.extra/global_sysext",
    ],
    name_suffix: ".sysext",
    nosuid: false,
    noexec: false,
};

const CONFEXT: ClassInfo = ClassInfo {
    short: "confext",
    program: "systemd-confext",
    default_hierarchies: &["/etc"],
    hierarchies_env: "SYSTEMD_CONFEXT_HIERARCHIES",
    mutable_env: "SYSTEMD_CONFEXT_MUTABLE_MODE",
    dot_dir: ".systemd-confext",
    list_file: "confexts",
    plural: "confexts",
    level_key: "CONFEXT_LEVEL",
    scope_key: "CONFEXT_SCOPE",
    release_dir: "etc/extension-release.d",
    search_dirs: &[
        "/run/confexts",
        "/var/lib/confexts",
        "/usr/local/lib/confexts",
        "/usr/lib/confexts",
    ],
    search_dirs_initrd: &[
        "/run/confexts",
        "/var/lib/confexts",
        "/usr/local/lib/confexts",
        "/.extra/confext",
    ],
    search_dirs_initrd_global: &[
        "/run/confexts",
        "/var/lib/confexts",
        "/usr/local/lib/confexts",
        "/.extra/confext",
        "/.extra/global_confext",
    ],
    name_suffix: ".confext",
    nosuid: true,
    noexec: true,
};

impl ImageClass {
    /// The constant properties of this class.
    pub const fn info(self) -> &'static ClassInfo {
        match self {
            ImageClass::Sysext => &SYSEXT,
            ImageClass::Confext => &CONFEXT,
        }
    }

    /// The other class.
    pub const fn other(self) -> ImageClass {
        match self {
            ImageClass::Sysext => ImageClass::Confext,
            ImageClass::Confext => ImageClass::Sysext,
        }
    }
}

impl fmt::Display for ImageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().short)
    }
}

impl std::str::FromStr for ImageClass {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "sysext" => Ok(ImageClass::Sysext),
            "confext" => Ok(ImageClass::Confext),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for c in [ImageClass::Sysext, ImageClass::Confext] {
            assert_eq!(c.to_string().parse::<ImageClass>(), Ok(c));
        }
        assert_eq!(ImageClass::Sysext.to_string(), "sysext");
        assert_eq!("confext".parse::<ImageClass>(), Ok(ImageClass::Confext));
        assert_eq!("portable".parse::<ImageClass>(), Err(()));
    }
}
