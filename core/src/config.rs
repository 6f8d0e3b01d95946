//! `sysext.conf` / `confext.conf` and their `.conf.d/` drop-ins (systemd 259), read below the
//! root: the default mutable mode (`Mutable=`) and image policy (`ImagePolicy=`) of a class.
//! The environment and the caller's options win over them; level 257 does not read them.
//!
//! Precedence (systemd's usual one for configuration files): the first main file found in
//! `etc/systemd/`, `run/systemd/`, `usr/local/lib/systemd/`, `usr/lib/systemd/`; then every
//! drop-in `*.conf` of the `NAME.conf.d/` directories there, in the order of their file names,
//! where a file in an earlier directory hides one of the same name in a later one. Later
//! assignments win.

use crate::class::ImageClass;
use crate::mutable::MutableMode;
use crate::root::Root;
use rustix::fs::OFlags;

/// Directories searched, highest priority first.
const DIRS: [&str; 4] = [
    "etc/systemd",
    "run/systemd",
    "usr/local/lib/systemd",
    "usr/lib/systemd",
];

/// Larger configuration files are refused (they are read into memory).
const MAX_SIZE: u64 = 1 << 20;

/// What the configuration files of a class set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassConfig {
    /// `Mutable=`.
    pub mutable: Option<MutableMode>,
    /// `ImagePolicy=` (the string, parsed by the caller).
    pub image_policy: Option<String>,
    /// Problems found, as systemd words them (the caller logs them as warnings).
    pub warnings: Vec<String>,
    /// The files read, in the order applied (root-relative, with a leading slash).
    pub files: Vec<String>,
}

fn names(class: ImageClass) -> (&'static str, &'static str) {
    match class {
        ImageClass::Sysext => ("sysext", "SysExt"),
        ImageClass::Confext => ("confext", "ConfExt"),
    }
}

fn read(root: &Root, rel: &str) -> Option<String> {
    let fd = crate::smallfile::open_checked(|f| root.open_in(rel, f)).ok()?;
    let bytes = crate::smallfile::read_capped(fd, MAX_SIZE).ok()?;
    String::from_utf8(bytes).ok()
}

/// Read the configuration of `class` below `root`.
pub fn load(root: &Root, class: ImageClass) -> ClassConfig {
    let (base, _) = names(class);
    let mut cfg = ClassConfig::default();
    let main = format!("{base}.conf");
    let mut files: Vec<String> = Vec::new();
    if let Some(d) = DIRS
        .iter()
        .find(|d| read(root, &format!("{d}/{main}")).is_some())
    {
        files.push(format!("{d}/{main}"));
    }
    // Drop-ins: by file name; the first directory holding a name wins.
    let mut dropins: std::collections::BTreeMap<String, String> = Default::default();
    for d in DIRS {
        let dir = format!("{d}/{main}.d");
        let Ok(fd) = root.open_in(&dir, OFlags::RDONLY | OFlags::DIRECTORY) else {
            continue;
        };
        let Ok(entries) = rustix::fs::Dir::read_from(&fd) else {
            continue;
        };
        for ent in entries.flatten() {
            let Ok(n) = ent.file_name().to_str() else {
                continue;
            };
            if n.ends_with(".conf") && !n.starts_with('.') {
                dropins
                    .entry(n.to_string())
                    .or_insert_with(|| format!("{dir}/{n}"));
            }
        }
    }
    files.extend(dropins.into_values());
    for f in files {
        if let Some(text) = read(root, &f) {
            let shown = format!("/{f}");
            parse_into(&mut cfg, class, &shown, &text);
            cfg.files.push(shown);
        }
    }
    cfg
}

/// Apply one file's assignments (`shown`: its name in messages).
pub fn parse_into(cfg: &mut ClassConfig, class: ImageClass, shown: &str, text: &str) {
    let (_, section_name) = names(class);
    let mut section: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = i + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if s != section_name {
                cfg.warnings
                    .push(format!("{shown}:{n}: Unknown section '{s}'. Ignoring."));
            }
            section = Some(s.to_string());
            continue;
        }
        if section.as_deref() != Some(section_name) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            cfg.warnings
                .push(format!("{shown}:{n}: Missing '=', ignoring line."));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "Mutable" => {
                if value.is_empty() {
                    cfg.mutable = None;
                } else {
                    match MutableMode::parse_systemd(value) {
                        Some(m) => cfg.mutable = Some(m),
                        None => cfg.warnings.push(format!(
                            "{shown}:{n}: Failed to parse {key}= setting, ignoring: {value}"
                        )),
                    }
                }
            }
            "ImagePolicy" => {
                if value.is_empty() {
                    cfg.image_policy = None;
                } else {
                    match crate::image::ImagePolicy::parse(value) {
                        Ok(_) => cfg.image_policy = Some(value.to_string()),
                        Err(_) => cfg.warnings.push(format!(
                            "{shown}:{n}: Failed to parse {key}= setting, ignoring: {value}"
                        )),
                    }
                }
            }
            _ => cfg.warnings.push(format!(
                "{shown}:{n}: Unknown key '{key}' in section [{section_name}], ignoring."
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn files_are_found_in_systemds_order() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let root = Root::open(Some(t.to_str().unwrap())).unwrap();
        assert_eq!(load(&root, ImageClass::Sysext), ClassConfig::default());
        // The main file: the first directory that has one; the later ones are not read.
        put(
            t,
            "usr/lib/systemd/sysext.conf",
            "[SysExt]\nMutable=import\n",
        );
        put(t, "run/systemd/sysext.conf", "[SysExt]\nMutable=auto\n");
        let c = load(&root, ImageClass::Sysext);
        assert_eq!(c.mutable, Some(MutableMode::Auto));
        assert_eq!(c.files, ["/run/systemd/sysext.conf"]);
        // Drop-ins after it, by file name over all directories; a name in an earlier
        // directory hides the same name in a later one; only visible `*.conf` files.
        put(
            t,
            "usr/lib/systemd/sysext.conf.d/10-a.conf",
            "[SysExt]\nMutable=yes\n",
        );
        put(
            t,
            "etc/systemd/sysext.conf.d/10-a.conf",
            "[SysExt]\nImagePolicy=root=absent\n",
        );
        put(
            t,
            "usr/lib/systemd/sysext.conf.d/20-b.conf",
            "[SysExt]\n; c\n\n# d\nMutable=ephemeral\n",
        );
        put(
            t,
            "etc/systemd/sysext.conf.d/.30-hidden.conf",
            "[SysExt]\nMutable=no\n",
        );
        put(
            t,
            "etc/systemd/sysext.conf.d/40-c.txt",
            "[SysExt]\nMutable=no\n",
        );
        let c = load(&root, ImageClass::Sysext);
        assert_eq!(
            c.files,
            [
                "/run/systemd/sysext.conf",
                "/etc/systemd/sysext.conf.d/10-a.conf",
                "/usr/lib/systemd/sysext.conf.d/20-b.conf",
            ]
        );
        assert_eq!(c.mutable, Some(MutableMode::Ephemeral));
        assert_eq!(c.image_policy.as_deref(), Some("root=absent"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // The other class reads its own files only.
        assert_eq!(load(&root, ImageClass::Confext), ClassConfig::default());
        // A file past the size cap is not read.
        put(
            t,
            "etc/systemd/sysext.conf",
            &format!("[SysExt]\nMutable=no\n#{}\n", "x".repeat(1 << 20)),
        );
        assert_eq!(
            load(&root, ImageClass::Sysext).files[0],
            "/run/systemd/sysext.conf"
        );
    }

    #[test]
    fn sections_keys_and_overrides() {
        let mut c = ClassConfig::default();
        parse_into(
            &mut c,
            ImageClass::Sysext,
            "/etc/systemd/sysext.conf",
            "# c\n[SysExt]\nMutable=yes\nImagePolicy=root=absent:usr=absent\n[ConfExt]\nMutable=no\n",
        );
        assert_eq!(c.mutable, Some(MutableMode::Enabled));
        assert_eq!(c.image_policy.as_deref(), Some("root=absent:usr=absent"));
        assert_eq!(
            c.warnings,
            ["/etc/systemd/sysext.conf:5: Unknown section 'ConfExt'. Ignoring."]
        );
        parse_into(
            &mut c,
            ImageClass::Sysext,
            "/x.conf",
            "[SysExt]\nMutable=bogus\nFoo=1\nMutable=ephemeral-import\n",
        );
        assert_eq!(c.mutable, Some(MutableMode::EphemeralImport));
        assert_eq!(c.warnings.len(), 3);
        parse_into(
            &mut c,
            ImageClass::Sysext,
            "/y.conf",
            "[SysExt]\nMutable=\n",
        );
        assert_eq!(c.mutable, None);
        let mut d = ClassConfig::default();
        parse_into(
            &mut d,
            ImageClass::Confext,
            "/z",
            "[ConfExt]\nMutable=auto\n[SysExt]\nMutable=yes\n",
        );
        assert_eq!(d.mutable, Some(MutableMode::Auto));
    }
}
