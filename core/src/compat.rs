//! Compatibility check between an extension's release data and the host.
//!
//! [`check`] runs systemd's validation steps in their exact order (scope, then
//! architecture, then `ID`, then the version fields) and reports either what made the
//! extension acceptable ([`Match`]) or the first check that failed ([`Reason`]).
//! An incompatible image is skipped ("ignored"), never an error.

use std::fmt;

use crate::release::ReleaseData;
use crate::ImageClass;

/// Scope value used when an extension does not declare its scope key.
const DEFAULT_SCOPES: &[&str] = &["system", "portable"];

/// Splits on systemd's whitespace set (space, tab, CR, LF), dropping empty words.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split([' ', '\t', '\n', '\r']).filter(|w| !w.is_empty())
}

/// The environment extensions are merged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A normally booted system.
    System,
    /// The initrd.
    Initrd,
}

impl Scope {
    /// The scope word used in `SYSEXT_SCOPE=`/`CONFEXT_SCOPE=` (`system`, `initrd`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Initrd => "initrd",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host properties the check compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Host `ID` (empty if the host os-release has none; callers treat that as fatal).
    pub id: String,
    /// Words of the host's `ID_LIKE`.
    pub id_like: Vec<String>,
    /// Host `VERSION_ID`, `None` if absent or empty.
    pub version_id: Option<String>,
    /// Host `SYSEXT_LEVEL` or `CONFEXT_LEVEL` (by class), `None` if absent or empty.
    pub level: Option<String>,
    /// Whether the host is a booted system or the initrd.
    pub scope: Scope,
    /// Host architecture name (as the `arch` module names it), e.g. `x86-64`.
    pub architecture: String,
}

impl Host {
    /// Builds the host description from its os-release data.
    ///
    /// Empty values count as absent.  The level is read from the class's level key
    /// (`SYSEXT_LEVEL` for sysext, `CONFEXT_LEVEL` for confext); the other class's key
    /// is ignored.
    pub fn from_os_release(
        data: &ReleaseData,
        class: ImageClass,
        scope: Scope,
        architecture: &str,
    ) -> Host {
        let nonempty = |key: &str| data.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
        Host {
            id: data.get("ID").unwrap_or_default().to_owned(),
            id_like: data
                .get("ID_LIKE")
                .map(|v| words(v).map(str::to_owned).collect())
                .unwrap_or_default(),
            version_id: nonempty("VERSION_ID"),
            level: nonempty(class.info().level_key),
            scope,
            architecture: architecture.to_owned(),
        }
    }
}

/// Outcome of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compatibility {
    /// The extension may be merged; the value tells which rule accepted it.
    Compatible(Match),
    /// The extension is skipped, for the given reason.
    Incompatible(Reason),
}

/// Which rule made an extension compatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Match {
    /// The extension declares `ID=_any`; no version checks were made.
    AnyOs,
    /// The version check passed: `VERSION_ID` equals the host's, or the host only has a
    /// level and the extension declares none.
    Version,
    /// Host and extension declare the same level (`SYSEXT_LEVEL`/`CONFEXT_LEVEL`).
    Level,
    /// The `ID` matched and the host has neither `VERSION_ID` nor a level (rolling
    /// release), so no version check applies.
    NoVersionInfo,
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Match::AnyOs => "matches any OS (ID=_any)",
            Match::Version => "version info matches the host",
            Match::Level => "level matches the host",
            Match::NoVersionInfo => "ID matches and the host has no version info",
        })
    }
}

/// Why an extension is not compatible with the host.
///
/// Each variant carries the values that were compared.  The [`Display`](fmt::Display)
/// text is a phrase meant to follow the extension's name (`Extension 'x' <text>`)
/// or stand on its own after a colon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The release file is missing, empty or unparsable.
    NoReleaseData,
    /// The host scope is not in the extension's scope list.
    Scope {
        /// `SYSEXT_SCOPE` or `CONFEXT_SCOPE`.
        key: &'static str,
        /// The declared value, `None` if the key is absent (default `system portable`).
        value: Option<String>,
        /// The host scope.
        host: Scope,
    },
    /// `ARCHITECTURE=` names a different architecture.
    Architecture {
        /// The declared architecture.
        value: String,
        /// The host architecture.
        host: String,
    },
    /// The extension has no `ID` or an empty one.
    NoId,
    /// The extension's `ID` is neither the host `ID` nor one of its `ID_LIKE` words.
    Id {
        /// The extension's `ID`.
        value: String,
        /// The host `ID`.
        host_id: String,
        /// The host `ID_LIKE` words.
        host_id_like: Vec<String>,
    },
    /// Both sides declare a level and they differ.
    Level {
        /// `SYSEXT_LEVEL` or `CONFEXT_LEVEL`.
        key: &'static str,
        /// The extension's level.
        value: String,
        /// The host's level.
        host: String,
    },
    /// The host has a `VERSION_ID` and the extension's is missing, empty or different.
    VersionId {
        /// The extension's `VERSION_ID`, `None` if absent or empty.
        value: Option<String>,
        /// The host's `VERSION_ID`.
        host: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoReleaseData => f.write_str("carries no release data"),
            Reason::Scope {
                key,
                value: Some(value),
                host,
            } => write!(f, "{key}={value} does not include the host scope '{host}'"),
            Reason::Scope {
                key,
                value: None,
                host,
            } => write!(
                f,
                "{key} is not set (default 'system portable'), which does not include the host scope '{host}'"
            ),
            Reason::Architecture { value, host } => {
                write!(f, "is for architecture '{value}', but the host is '{host}'")
            }
            Reason::NoId => f.write_str("has no ID (or an empty ID)"),
            Reason::Id {
                value,
                host_id,
                host_id_like,
            } => {
                write!(f, "ID={value} does not match the host's ID={host_id}")?;
                if !host_id_like.is_empty() {
                    write!(f, " (ID_LIKE={})", host_id_like.join(" "))?;
                }
                Ok(())
            }
            Reason::Level { key, value, host } => {
                write!(f, "{key}={value} does not match the host's {key}={host}")
            }
            Reason::VersionId {
                value: Some(value),
                host,
            } => write!(f, "VERSION_ID={value} does not match the host's VERSION_ID={host}"),
            Reason::VersionId { value: None, host } => {
                write!(f, "has no VERSION_ID, the host has VERSION_ID={host}")
            }
        }
    }
}

/// Decides whether extension `name` with release data `release` may be merged on
/// `host` as an image of `class`.
///
/// Steps, in order (the first failing one is reported):
///
/// 1. empty release data → [`Reason::NoReleaseData`];
/// 2. the class's scope key (`SYSEXT_SCOPE`/`CONFEXT_SCOPE`), split on whitespace, or
///    `system portable` if absent, must contain the host scope → [`Reason::Scope`];
/// 3. a non-empty `ARCHITECTURE` other than `_any` must equal the host's →
///    [`Reason::Architecture`];
/// 4. `ID` must be present and non-empty → [`Reason::NoId`];
/// 5. `ID=_any` accepts ([`Match::AnyOs`]);
/// 6. `ID` must equal the host `ID` or one of its `ID_LIKE` words → [`Reason::Id`];
/// 7. a host without `VERSION_ID` and level accepts ([`Match::NoVersionInfo`]);
/// 8. if both sides have a level, they must be equal ([`Match::Level`] /
///    [`Reason::Level`]);
/// 9. otherwise, if the host has a `VERSION_ID`, the extension's must equal it
///    ([`Match::Version`] / [`Reason::VersionId`]);
/// 10. otherwise accept ([`Match::Version`]).
///
/// All comparisons are exact and case-sensitive.  The other class's level and scope
/// keys are ignored.  `name` is not used for the decision.
pub fn check(name: &str, release: &ReleaseData, host: &Host, class: ImageClass) -> Compatibility {
    let _ = name;
    match check_inner(release, host, class) {
        Ok(m) => Compatibility::Compatible(m),
        Err(r) => Compatibility::Incompatible(r),
    }
}

fn check_inner(release: &ReleaseData, host: &Host, class: ImageClass) -> Result<Match, Reason> {
    let info = class.info();
    let nonempty = |key: &str| release.get(key).filter(|v| !v.is_empty());

    if release.is_empty() {
        return Err(Reason::NoReleaseData);
    }

    let scope_value = release.get(info.scope_key);
    let in_scope = match scope_value {
        Some(v) => words(v).any(|w| w == host.scope.as_str()),
        None => DEFAULT_SCOPES.contains(&host.scope.as_str()),
    };
    if !in_scope {
        return Err(Reason::Scope {
            key: info.scope_key,
            value: scope_value.map(str::to_owned),
            host: host.scope,
        });
    }

    if let Some(arch) = nonempty("ARCHITECTURE") {
        if arch != "_any" && arch != host.architecture {
            return Err(Reason::Architecture {
                value: arch.to_owned(),
                host: host.architecture.clone(),
            });
        }
    }

    let Some(id) = nonempty("ID") else {
        return Err(Reason::NoId);
    };
    if id == "_any" {
        return Ok(Match::AnyOs);
    }
    if id != host.id && !host.id_like.iter().any(|l| l == id) {
        return Err(Reason::Id {
            value: id.to_owned(),
            host_id: host.id.clone(),
            host_id_like: host.id_like.clone(),
        });
    }

    let host_version = host.version_id.as_deref().filter(|v| !v.is_empty());
    let host_level = host.level.as_deref().filter(|v| !v.is_empty());
    if host_version.is_none() && host_level.is_none() {
        return Ok(Match::NoVersionInfo);
    }

    if let (Some(hl), Some(el)) = (host_level, nonempty(info.level_key)) {
        return if hl == el {
            Ok(Match::Level)
        } else {
            Err(Reason::Level {
                key: info.level_key,
                value: el.to_owned(),
                host: hl.to_owned(),
            })
        };
    }

    if let Some(hv) = host_version {
        let ev = nonempty("VERSION_ID");
        if ev != Some(hv) {
            return Err(Reason::VersionId {
                value: ev.map(str::to_owned),
                host: hv.to_owned(),
            });
        }
    }

    Ok(Match::Version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::parse_str;
    use ImageClass::{Confext, Sysext};

    fn host_from(text: &str, class: ImageClass, scope: Scope) -> Host {
        Host::from_os_release(&parse_str(text).unwrap(), class, scope, "x86-64")
    }

    fn run(ext: &str, host: &Host, class: ImageClass) -> Compatibility {
        check("x", &parse_str(ext).unwrap(), host, class)
    }

    fn ok(m: Match) -> Compatibility {
        Compatibility::Compatible(m)
    }

    fn no(r: Reason) -> Compatibility {
        Compatibility::Incompatible(r)
    }

    fn version_id(value: Option<&str>, host: &str) -> Compatibility {
        no(Reason::VersionId {
            value: value.map(str::to_owned),
            host: host.to_owned(),
        })
    }

    fn level(key: &'static str, value: &str, host: &str) -> Compatibility {
        no(Reason::Level {
            key,
            value: value.to_owned(),
            host: host.to_owned(),
        })
    }

    fn id(value: &str, host_id: &str, like: &[&str]) -> Compatibility {
        no(Reason::Id {
            value: value.to_owned(),
            host_id: host_id.to_owned(),
            host_id_like: like.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    fn scope(key: &'static str, value: Option<&str>, host: Scope) -> Compatibility {
        no(Reason::Scope {
            key,
            value: value.map(str::to_owned),
            host,
        })
    }

    fn arch(value: &str) -> Compatibility {
        no(Reason::Architecture {
            value: value.to_owned(),
            host: "x86-64".to_owned(),
        })
    }

    fn table(host: &Host, class: ImageClass, cases: &[(&str, Compatibility)]) {
        for (ext, want) in cases {
            assert_eq!(&run(ext, host, class), want, "ext {ext:?} on host {host:?}");
        }
    }

    /// Spec §3.3, experiment E35: host `ID=testos VERSION_ID=1`.
    #[test]
    fn matrix_host_version_only() {
        let host = host_from("ID=testos\nVERSION_ID=1\n", Sysext, Scope::System);
        table(
            &host,
            Sysext,
            &[
                ("ID=testos\nVERSION_ID=1\n", ok(Match::Version)),
                ("ID=testos\nVERSION_ID=2\n", version_id(Some("2"), "1")),
                ("ID=testos\nVERSION_ID=1.0\n", version_id(Some("1.0"), "1")),
                ("ID=testos\n", version_id(None, "1")),
                ("ID=testos\nVERSION_ID=\n", version_id(None, "1")),
                (
                    "ID=testos\nVERSION_ID=\" 1\"\n",
                    version_id(Some(" 1"), "1"),
                ),
                ("ID=other\nVERSION_ID=1\n", id("other", "testos", &[])),
                ("ID=TESTOS\nVERSION_ID=1\n", id("TESTOS", "testos", &[])),
                ("ID=_any\n", ok(Match::AnyOs)),
                ("ID=_any\nVERSION_ID=7\n", ok(Match::AnyOs)),
                ("VERSION_ID=1\n", no(Reason::NoId)),
                ("ID=\nVERSION_ID=1\n", no(Reason::NoId)),
                // the extension's level is irrelevant when the host has none
                (
                    "ID=testos\nVERSION_ID=1\nSYSEXT_LEVEL=9\n",
                    ok(Match::Version),
                ),
                (
                    "ID=testos\nVERSION_ID=2\nSYSEXT_LEVEL=9\n",
                    version_id(Some("2"), "1"),
                ),
            ],
        );
    }

    /// Spec §3.3, E35: host `ID=testos VERSION_ID=1 SYSEXT_LEVEL=5`.
    #[test]
    fn matrix_host_version_and_level() {
        let host = host_from(
            "ID=testos\nVERSION_ID=1\nSYSEXT_LEVEL=5\n",
            Sysext,
            Scope::System,
        );
        table(
            &host,
            Sysext,
            &[
                ("ID=testos\nSYSEXT_LEVEL=5\n", ok(Match::Level)),
                (
                    "ID=testos\nSYSEXT_LEVEL=5\nVERSION_ID=1\n",
                    ok(Match::Level),
                ),
                (
                    "ID=testos\nSYSEXT_LEVEL=5\nVERSION_ID=9\n",
                    ok(Match::Level),
                ),
                (
                    "ID=testos\nSYSEXT_LEVEL=6\n",
                    level("SYSEXT_LEVEL", "6", "5"),
                ),
                (
                    "ID=testos\nSYSEXT_LEVEL=6\nVERSION_ID=1\n",
                    level("SYSEXT_LEVEL", "6", "5"),
                ),
                ("ID=testos\nVERSION_ID=1\n", ok(Match::Version)),
                ("ID=testos\nVERSION_ID=2\n", version_id(Some("2"), "1")),
                ("ID=testos\n", version_id(None, "1")),
                // empty extension level counts as absent
                (
                    "ID=testos\nSYSEXT_LEVEL=\nVERSION_ID=1\n",
                    ok(Match::Version),
                ),
                ("ID=testos\nSYSEXT_LEVEL=\n", version_id(None, "1")),
                // CONFEXT_LEVEL is ignored by sysext
                ("ID=testos\nCONFEXT_LEVEL=5\n", version_id(None, "1")),
                (
                    "ID=testos\nCONFEXT_LEVEL=6\nVERSION_ID=1\n",
                    ok(Match::Version),
                ),
                ("ID=_any\nSYSEXT_LEVEL=6\n", ok(Match::AnyOs)),
            ],
        );
    }

    /// Spec §3.3, E35: host `ID=testos SYSEXT_LEVEL=5` only.
    #[test]
    fn matrix_host_level_only() {
        let host = host_from("ID=testos\nSYSEXT_LEVEL=5\n", Sysext, Scope::System);
        table(
            &host,
            Sysext,
            &[
                ("ID=testos\n", ok(Match::Version)),
                ("ID=testos\nVERSION_ID=3\n", ok(Match::Version)),
                ("ID=testos\nSYSEXT_LEVEL=5\n", ok(Match::Level)),
                (
                    "ID=testos\nSYSEXT_LEVEL=4\n",
                    level("SYSEXT_LEVEL", "4", "5"),
                ),
                (
                    "ID=testos\nSYSEXT_LEVEL=5.0\n",
                    level("SYSEXT_LEVEL", "5.0", "5"),
                ),
                ("ID=other\n", id("other", "testos", &[])),
            ],
        );
    }

    /// Spec §3.3, E35: host `ID=testos` only: everything with the right ID merges.
    #[test]
    fn matrix_host_id_only() {
        let host = host_from("ID=testos\n", Sysext, Scope::System);
        table(
            &host,
            Sysext,
            &[
                ("ID=testos\n", ok(Match::NoVersionInfo)),
                ("ID=testos\nVERSION_ID=9\n", ok(Match::NoVersionInfo)),
                ("ID=testos\nSYSEXT_LEVEL=9\n", ok(Match::NoVersionInfo)),
                ("ID=other\n", id("other", "testos", &[])),
                ("ID=_any\n", ok(Match::AnyOs)),
            ],
        );
        // The host's CONFEXT_LEVEL does not count as a level for sysext.
        let host = host_from("ID=testos\nCONFEXT_LEVEL=5\n", Sysext, Scope::System);
        assert_eq!(host.level, None);
        assert_eq!(
            run("ID=testos\nSYSEXT_LEVEL=1\n", &host, Sysext),
            ok(Match::NoVersionInfo)
        );
    }

    /// Spec §3.3 step 6: host `ID_LIKE` (E36); the extension's own ID_LIKE is ignored.
    #[test]
    fn id_like_of_the_host_matches_an_extension_of_the_parent_os() {
        let host = host_from(
            "ID=derived\nID_LIKE=\"testos  debian\"\nVERSION_ID=1\n",
            Sysext,
            Scope::System,
        );
        assert_eq!(host.id_like, ["testos", "debian"]);
        table(
            &host,
            Sysext,
            &[
                ("ID=derived\nVERSION_ID=1\n", ok(Match::Version)),
                ("ID=testos\nVERSION_ID=1\n", ok(Match::Version)),
                ("ID=debian\nVERSION_ID=1\n", ok(Match::Version)),
                // version checks still apply after an ID_LIKE match
                ("ID=testos\nVERSION_ID=2\n", version_id(Some("2"), "1")),
                ("ID=testos\n", version_id(None, "1")),
                (
                    "ID=derived testos\nVERSION_ID=1\n",
                    id("derived testos", "derived", &["testos", "debian"]),
                ),
                (
                    "ID=deb\nVERSION_ID=1\n",
                    id("deb", "derived", &["testos", "debian"]),
                ),
                (
                    "ID=other\nID_LIKE=derived\nVERSION_ID=1\n",
                    id("other", "derived", &["testos", "debian"]),
                ),
            ],
        );
    }

    /// Spec §3.3 step 2 and E37 (scope values).
    #[test]
    fn on_a_system_extensions_of_other_scopes_are_refused() {
        let host = host_from("ID=testos\n", Sysext, Scope::System);
        table(
            &host,
            Sysext,
            &[
                ("ID=testos\n", ok(Match::NoVersionInfo)),
                (
                    "ID=testos\nSYSEXT_SCOPE=initrd\n",
                    scope("SYSEXT_SCOPE", Some("initrd"), Scope::System),
                ),
                (
                    "ID=testos\nSYSEXT_SCOPE=portable\n",
                    scope("SYSEXT_SCOPE", Some("portable"), Scope::System),
                ),
                (
                    "ID=testos\nSYSEXT_SCOPE=\n",
                    scope("SYSEXT_SCOPE", Some(""), Scope::System),
                ),
                (
                    "ID=testos\nSYSEXT_SCOPE=\"system portable\"\n",
                    ok(Match::NoVersionInfo),
                ),
                (
                    "ID=testos\nSYSEXT_SCOPE=\"initrd\tsystem\"\n",
                    ok(Match::NoVersionInfo),
                ),
                (
                    "ID=testos\nSYSEXT_SCOPE=System\n",
                    scope("SYSEXT_SCOPE", Some("System"), Scope::System),
                ),
                // CONFEXT_SCOPE in a sysext release file is not consulted
                (
                    "ID=testos\nCONFEXT_SCOPE=initrd\n",
                    ok(Match::NoVersionInfo),
                ),
                // scope is checked before ID
                (
                    "ID=other\nSYSEXT_SCOPE=initrd\n",
                    scope("SYSEXT_SCOPE", Some("initrd"), Scope::System),
                ),
                // and before the release data is looked at further
                (
                    "SYSEXT_SCOPE=initrd\n",
                    scope("SYSEXT_SCOPE", Some("initrd"), Scope::System),
                ),
            ],
        );
    }

    #[test]
    fn in_the_initrd_an_extension_must_name_the_initrd_scope() {
        let host = host_from("ID=testos\n", Sysext, Scope::Initrd);
        table(
            &host,
            Sysext,
            &[
                ("ID=testos\n", scope("SYSEXT_SCOPE", None, Scope::Initrd)),
                ("ID=testos\nSYSEXT_SCOPE=initrd\n", ok(Match::NoVersionInfo)),
                (
                    "ID=testos\nSYSEXT_SCOPE=\"system initrd\"\n",
                    ok(Match::NoVersionInfo),
                ),
                (
                    "ID=testos\nSYSEXT_SCOPE=\"system portable\"\n",
                    scope("SYSEXT_SCOPE", Some("system portable"), Scope::Initrd),
                ),
            ],
        );
    }

    /// Spec §3.3 step 3, §3.5 and E37 (architecture, and its place in the order).
    #[test]
    fn architecture_matches_only_the_host_architecture_or_any() {
        let host = host_from("ID=testos\nVERSION_ID=1\n", Sysext, Scope::System);
        table(
            &host,
            Sysext,
            &[
                (
                    "ID=testos\nVERSION_ID=1\nARCHITECTURE=x86-64\n",
                    ok(Match::Version),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nARCHITECTURE=_any\n",
                    ok(Match::Version),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nARCHITECTURE=\n",
                    ok(Match::Version),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nARCHITECTURE=x86_64\n",
                    arch("x86_64"),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nARCHITECTURE=native\n",
                    arch("native"),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nARCHITECTURE=arm64\n",
                    arch("arm64"),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nARCHITECTURE=X86-64\n",
                    arch("X86-64"),
                ),
                // architecture before any ID test
                ("ID=_any\nARCHITECTURE=arm64\n", arch("arm64")),
                ("ID=other\nARCHITECTURE=arm64\n", arch("arm64")),
                ("ARCHITECTURE=arm64\n", arch("arm64")),
                ("ARCHITECTURE=_any\n", no(Reason::NoId)),
                // scope before architecture
                (
                    "ID=testos\nSYSEXT_SCOPE=initrd\nARCHITECTURE=arm64\n",
                    scope("SYSEXT_SCOPE", Some("initrd"), Scope::System),
                ),
            ],
        );
    }

    #[test]
    fn empty_release_data_or_a_missing_id_is_refused() {
        let host = host_from("ID=testos\n", Sysext, Scope::System);
        table(
            &host,
            Sysext,
            &[
                ("", no(Reason::NoReleaseData)),
                ("# only a comment\n", no(Reason::NoReleaseData)),
                ("garbage\n", no(Reason::NoReleaseData)),
                // something assigned, but no ID
                ("FOO=\n", no(Reason::NoId)),
            ],
        );
        // Empty data from any source is "no release data", even for ID=_any hosts.
        assert_eq!(
            check("x", &ReleaseData::default(), &host, Confext),
            no(Reason::NoReleaseData)
        );
    }

    /// Confext uses CONFEXT_* keys and ignores SYSEXT_* ones, on both sides.
    #[test]
    fn confexts_are_judged_by_confext_keys_not_sysext_ones() {
        let host = host_from(
            "ID=testos\nVERSION_ID=1\nCONFEXT_LEVEL=5\nSYSEXT_LEVEL=7\n",
            Confext,
            Scope::System,
        );
        assert_eq!(host.level.as_deref(), Some("5"));
        table(
            &host,
            Confext,
            &[
                ("ID=testos\nCONFEXT_LEVEL=5\n", ok(Match::Level)),
                (
                    "ID=testos\nCONFEXT_LEVEL=7\n",
                    level("CONFEXT_LEVEL", "7", "5"),
                ),
                ("ID=testos\nSYSEXT_LEVEL=5\n", version_id(None, "1")),
                (
                    "ID=testos\nSYSEXT_LEVEL=7\nVERSION_ID=1\n",
                    ok(Match::Version),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nCONFEXT_SCOPE=initrd\n",
                    scope("CONFEXT_SCOPE", Some("initrd"), Scope::System),
                ),
                (
                    "ID=testos\nVERSION_ID=1\nSYSEXT_SCOPE=initrd\n",
                    ok(Match::Version),
                ),
            ],
        );
        let initrd = host_from("ID=testos\n", Confext, Scope::Initrd);
        assert_eq!(
            run("ID=testos\n", &initrd, Confext),
            scope("CONFEXT_SCOPE", None, Scope::Initrd)
        );
        assert_eq!(
            run("ID=testos\nCONFEXT_SCOPE=initrd\n", &initrd, Confext),
            ok(Match::NoVersionInfo)
        );
    }

    /// Values are compared exactly, after env-file unquoting.
    #[test]
    fn release_values_compare_exactly_after_unquoting() {
        let host = host_from("ID=\"testos\"\nVERSION_ID='13'\n", Sysext, Scope::System);
        assert_eq!(host.id, "testos");
        assert_eq!(host.version_id.as_deref(), Some("13"));
        table(
            &host,
            Sysext,
            &[
                ("ID=testos\nVERSION_ID=13\n", ok(Match::Version)),
                ("ID='testos'\nVERSION_ID=\"13\"\n", ok(Match::Version)),
                (
                    "ID=testos\nVERSION_ID=13.0\n",
                    version_id(Some("13.0"), "13"),
                ),
                (
                    "ID=testos\nVERSION_ID=\" 13\"\n",
                    version_id(Some(" 13"), "13"),
                ),
                ("id=testos\nVERSION_ID=13\n", no(Reason::NoId)),
                ("export ID=testos\nVERSION_ID=13\n", no(Reason::NoId)),
            ],
        );
    }

    #[test]
    fn host_from_os_release() {
        let data = parse_str(
            "ID=fedora\nID_LIKE=\"rhel  centos\tfedora\"\nVERSION_ID=\nSYSEXT_LEVEL=1.0\n",
        )
        .unwrap();
        let h = Host::from_os_release(&data, Sysext, Scope::Initrd, "arm64");
        assert_eq!(
            h,
            Host {
                id: "fedora".into(),
                id_like: vec!["rhel".into(), "centos".into(), "fedora".into()],
                version_id: None,
                level: Some("1.0".into()),
                scope: Scope::Initrd,
                architecture: "arm64".into(),
            }
        );
        let h = Host::from_os_release(&data, Confext, Scope::System, "x86-64");
        assert_eq!(h.level, None);
        let empty = Host::from_os_release(&ReleaseData::default(), Sysext, Scope::System, "x86");
        assert_eq!(empty.id, "");
        assert!(empty.id_like.is_empty());
        assert_eq!(empty.version_id, None);
        assert_eq!(empty.level, None);
        let like = parse_str("ID=a\nID_LIKE=\n").unwrap();
        assert!(Host::from_os_release(&like, Sysext, Scope::System, "x86")
            .id_like
            .is_empty());
    }

    /// A hand-built Host with empty strings in Option fields behaves like None.
    #[test]
    fn host_empty_options_count_as_absent() {
        let host = Host {
            id: "testos".into(),
            id_like: vec![],
            version_id: Some(String::new()),
            level: Some(String::new()),
            scope: Scope::System,
            architecture: "x86-64".into(),
        };
        assert_eq!(run("ID=testos\n", &host, Sysext), ok(Match::NoVersionInfo));
    }

    #[test]
    fn scopes_print_as_system_and_initrd() {
        assert_eq!(Scope::System.to_string(), "system");
        assert_eq!(Scope::Initrd.to_string(), "initrd");
    }

    #[test]
    fn incompatibility_reasons_display_in_systemds_words() {
        let cases: Vec<(Reason, &str)> = vec![
            (Reason::NoReleaseData, "carries no release data"),
            (
                Reason::Scope {
                    key: "SYSEXT_SCOPE",
                    value: Some("initrd".into()),
                    host: Scope::System,
                },
                "SYSEXT_SCOPE=initrd does not include the host scope 'system'",
            ),
            (
                Reason::Scope {
                    key: "CONFEXT_SCOPE",
                    value: None,
                    host: Scope::Initrd,
                },
                "CONFEXT_SCOPE is not set (default 'system portable'), which does not include the host scope 'initrd'",
            ),
            (
                Reason::Architecture {
                    value: "arm64".into(),
                    host: "x86-64".into(),
                },
                "is for architecture 'arm64', but the host is 'x86-64'",
            ),
            (Reason::NoId, "has no ID (or an empty ID)"),
            (
                Reason::Id {
                    value: "fedora".into(),
                    host_id: "debian".into(),
                    host_id_like: vec![],
                },
                "ID=fedora does not match the host's ID=debian",
            ),
            (
                Reason::Id {
                    value: "fedora".into(),
                    host_id: "ubuntu".into(),
                    host_id_like: vec!["debian".into(), "foo".into()],
                },
                "ID=fedora does not match the host's ID=ubuntu (ID_LIKE=debian foo)",
            ),
            (
                Reason::Level {
                    key: "SYSEXT_LEVEL",
                    value: "2".into(),
                    host: "1".into(),
                },
                "SYSEXT_LEVEL=2 does not match the host's SYSEXT_LEVEL=1",
            ),
            (
                Reason::VersionId {
                    value: Some("2".into()),
                    host: "1".into(),
                },
                "VERSION_ID=2 does not match the host's VERSION_ID=1",
            ),
            (
                Reason::VersionId {
                    value: None,
                    host: "1".into(),
                },
                "has no VERSION_ID, the host has VERSION_ID=1",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(r.to_string(), want);
        }
    }
}
