//! Hierarchies (`/usr`, `/opt`, `/etc`, or those of `SYSTEMD_*_HIERARCHIES`).

use crate::class::ImageClass;
use crate::error::{Error, Result};
use std::fmt;

/// A validated hierarchy path: absolute, normalised, not `/`.
///
/// A trailing slash is kept verbatim (systemd prints `/usr/` as given).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hierarchy(String);

impl Hierarchy {
    /// Validate one hierarchy path.
    pub fn new(path: &str) -> Result<Hierarchy> {
        let bad = || Error::InvalidArgument(format!("Invalid hierarchy path '{path}'"));
        if !path.starts_with('/') {
            return Err(bad());
        }
        let inner = path.trim_end_matches('/');
        if inner.is_empty() {
            return Err(bad());
        }
        // A single trailing slash is fine; anything else must be normalised.
        let body = path.strip_suffix('/').unwrap_or(path);
        for comp in body[1..].split('/') {
            if comp.is_empty() || comp == "." || comp == ".." {
                return Err(bad());
            }
        }
        Ok(Hierarchy(path.to_string()))
    }

    /// The path as configured (`/usr`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path relative to the root, without leading or trailing slashes (`usr`, `usr/local`).
    pub fn relative(&self) -> &str {
        self.0.trim_matches('/')
    }

    /// The hierarchy as a single path component (`/usr/local` → `usr.local`).
    #[doc(alias = "hierarchy_as_single_path_component")]
    pub fn as_component(&self) -> String {
        self.relative().replace('/', ".")
    }

    /// The write-routing dir below the root (`var/lib/extensions.mutable/usr`).
    pub fn mutable_dir(&self) -> String {
        format!("{MUTABLE_EXTENSIONS_BASE_DIR}/{}", self.as_component())
    }

    /// Parse a colon-separated list as systemd does for `SYSTEMD_SYSEXT_HIERARCHIES`:
    /// empty elements are errors, an empty list is refused.
    pub fn parse_list(list: &str) -> Result<Vec<Hierarchy>> {
        if list.is_empty() {
            return Err(Error::InvalidArgument(
                "Failed to parse environment variable: Invalid argument".into(),
            ));
        }
        list.split(':')
            .map(|p| {
                Hierarchy::new(p).map_err(|_| {
                    Error::InvalidArgument(
                        "Failed to parse environment variable: Invalid argument".into(),
                    )
                })
            })
            .collect()
    }

    /// Default hierarchies of a class.
    pub fn defaults(class: ImageClass) -> Vec<Hierarchy> {
        class
            .info()
            .default_hierarchies
            .iter()
            .map(|h| Hierarchy(h.to_string()))
            .collect()
    }

    /// Hierarchies from the class's environment variable, or the defaults when unset.
    pub fn from_env(class: ImageClass) -> Result<Vec<Hierarchy>> {
        match std::env::var(class.info().hierarchies_env) {
            Ok(v) => Hierarchy::parse_list(&v),
            Err(std::env::VarError::NotPresent) => Ok(Hierarchy::defaults(class)),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidArgument(
                "Failed to parse environment variable: Invalid argument".into(),
            )),
        }
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the write-routing dirs live, relative to the root.
pub const MUTABLE_EXTENSIONS_BASE_DIR: &str = "var/lib/extensions.mutable";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_default_per_class_unless_the_environment_sets_them() {
        let names = |v: Vec<Hierarchy>| v.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(Hierarchy::defaults(ImageClass::Sysext)),
            ["/usr", "/opt"]
        );
        assert_eq!(names(Hierarchy::defaults(ImageClass::Confext)), ["/etc"]);
        // The variable is read only here, and no other test of core sets it.
        let var = ImageClass::Confext.info().hierarchies_env;
        std::env::remove_var(var);
        assert_eq!(
            names(Hierarchy::from_env(ImageClass::Confext).unwrap()),
            ["/etc"]
        );
        std::env::set_var(var, "/etc:/srv/x");
        assert_eq!(
            names(Hierarchy::from_env(ImageClass::Confext).unwrap()),
            ["/etc", "/srv/x"]
        );
        std::env::set_var(var, "etc");
        assert!(Hierarchy::from_env(ImageClass::Confext).is_err());
        std::env::remove_var(var);
    }

    #[test]
    fn hierarchies_must_be_absolute_and_not_the_root() {
        for ok in ["/usr", "/opt", "/usr/local", "/usr/", "/a,b"] {
            assert!(Hierarchy::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "usr",
            "/",
            "",
            "//",
            "/usr//x",
            "/usr/./x",
            "/usr/../opt",
            "opt",
            "//usr",
        ] {
            assert!(Hierarchy::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hierarchy_list_splits_on_colons_and_refuses_empty() {
        assert_eq!(Hierarchy::parse_list("/usr:/opt").unwrap().len(), 2);
        assert_eq!(Hierarchy::parse_list("/usr:/usr").unwrap().len(), 2);
        assert!(Hierarchy::parse_list("/usr::/opt").is_err());
        assert!(Hierarchy::parse_list("").is_err());
        assert!(Hierarchy::parse_list("/").is_err());
        assert_eq!(Hierarchy::parse_list("/usr/").unwrap()[0].as_str(), "/usr/");
    }

    #[test]
    fn hierarchy_component_joins_path_parts_with_dots() {
        let h = Hierarchy::new("/usr/local").unwrap();
        assert_eq!(h.as_component(), "usr.local");
        assert_eq!(h.mutable_dir(), "var/lib/extensions.mutable/usr.local");
        assert_eq!(Hierarchy::new("/usr/").unwrap().as_component(), "usr");
    }
}
