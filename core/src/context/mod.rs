//! The public entry point: a [`Context`] for one image class and root, with the verbs
//! `list`, `plan`, `merge`, `refresh`, `unmerge` and `status`.

use crate::class::ImageClass;
use crate::compat::{self, Compatibility, Host, Scope};
use crate::discover::{self, DiscoveredImage, ImageKind};
use crate::error::{Error, Result};
use crate::event::{Event, EventSink, Level, NullSink};
use crate::exec::{self, BuildInputs, FaultInjector, Journal};
use crate::extension::{self, ReleaseInfo};
use crate::hierarchy::Hierarchy;
use crate::kernel::{Kernel, KernelFeatures};
use crate::level::Compat;
use crate::mutable::MutableMode;
use crate::plan::{self, Plan};
use crate::probe::{self, ImageTree};
use crate::release::{self, ReleaseData};
use crate::root::Root;
use crate::state::{self, HierarchyStatus};
use rustix::fd::AsFd;
use rustix::fs::OFlags;
use std::sync::Arc;
use std::time::Duration;

mod images;
mod merge;
mod options;
mod recovery;
mod report;
mod status;
mod unmerge;

pub use options::Options;
pub use report::{Extension, ImageState, PlanReport, Report, Skipped};

/// The keys of the host's os-release that anything reads (see [`Host::from_os_release`]).
const HOST_RELEASE_KEYS: [&str; 5] = [
    "ID",
    "ID_LIKE",
    "VERSION_ID",
    "SYSEXT_LEVEL",
    "CONFEXT_LEVEL",
];

/// Extensions accepted for a merge.
struct Gathered {
    /// Each configured hierarchy as resolved when checking that none is merged yet (empty
    /// when not checked): probing starts from these instead of resolving again.
    hierarchies: Vec<Option<crate::root::Resolved>>,
    trees: Vec<ImageTree>,
    skipped: Vec<Skipped>,
    file_names: Vec<String>,
    needs_reload: bool,
    units: release::UnitRequests,
    found: usize,
}

/// A context for one image class and root.
#[derive(Debug)]
pub struct Context {
    opts: Options,
    policy: Option<crate::image::ImagePolicy>,
    root: Root,
    hierarchies: Vec<Hierarchy>,
    mode: MutableMode,
    compat: Compat,
    overlay_options: Option<crate::overlayopts::OverlayOptions>,
    faults: FaultInjector,
    initrd: bool,
    lock_path: std::sync::OnceLock<std::path::PathBuf>,
    kernel: std::sync::OnceLock<Kernel>,
}

fn has_cap_sys_admin() -> bool {
    rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::SYS_ADMIN)
        })
        .unwrap_or(false)
}
/// The compatibility level: the option, else `LIBSYSEXT_COMPAT` (a bad value is warned
/// about and ignored), else the newest.
fn level_of(opts: &Options) -> Compat {
    if let Some(c) = opts.compat {
        return c;
    }
    Compat::from_env()
        .unwrap_or_else(|v| {
            opts.sink.event(&Event::Message(
                Level::Warning,
                format!(
                    "Failed to parse {} environment variable value '{v}'. Ignoring.",
                    crate::level::ENV
                ),
            ));
            None
        })
        .unwrap_or(Compat::NEWEST)
}

/// The mutable mode: the option, else the class's environment variable (a bad value is
/// warned about and ignored), else the configuration files' `configured`, else `no`.
fn mutable_mode_of(opts: &Options, configured: Option<MutableMode>) -> MutableMode {
    if let Some(m) = opts.mutable {
        return m;
    }
    let env = opts.class.info().mutable_env;
    let Ok(v) = std::env::var(env) else {
        return configured.unwrap_or(MutableMode::Disabled);
    };
    MutableMode::parse_systemd(&v).unwrap_or_else(|| {
        opts.sink.event(&Event::Message(
            Level::Warning,
            format!("Failed to parse {env} environment variable value '{v}'. Ignoring."),
        ));
        configured.unwrap_or(MutableMode::Disabled)
    })
}

/// The image policy `p`, parsed as the level's systemd parses it (the file system type
/// flags and `encryptedwithintegrity` are newer than 257).
fn image_policy_of(p: &str, compat: Compat) -> Result<crate::image::ImagePolicy> {
    let parsed = crate::image::ImagePolicy::parse(p)
        .map_err(|e| Error::InvalidArgument(format!("Failed to parse image policy: {p}: {e}")))?;
    if parsed.uses_post_257_flags() && !compat.knows_policy_fs_flags() {
        return Err(Error::InvalidArgument(format!(
            "Failed to parse image policy: {p}: file system type flags and \
             'encryptedwithintegrity' are not known at level {compat}"
        )));
    }
    Ok(parsed)
}

impl Context {
    /// Open a context: resolves the root, the hierarchies and the mutable mode.
    pub fn new(opts: Options) -> Result<Context> {
        let root = Root::open(opts.root.as_deref())?;
        let hierarchies = match &opts.hierarchies {
            Some(list) => list
                .iter()
                .map(|h| Hierarchy::new(h))
                .collect::<Result<Vec<_>>>()?,
            None => Hierarchy::from_env(opts.class)?,
        };
        let compat = level_of(&opts);
        // The initrd scope: the option, else the root's `etc/initrd-release` (259+), else the
        // host (257).
        let initrd = match opts.initrd {
            Some(b) => b,
            None if compat.reads_initrd_release_in_root() => discover::root_is_initrd(&root),
            None => discover::in_initrd(),
        };
        // Configuration files below the root (262): under the environment and the options.
        let cfg = if compat.reads_config_files() {
            crate::config::load(&root, opts.class)
        } else {
            Default::default()
        };
        for w in &cfg.warnings {
            opts.sink.event(&Event::Message(Level::Warning, w.clone()));
        }
        let mode = mutable_mode_of(&opts, cfg.mutable);
        let policy = match opts.image_policy.as_ref().or(cfg.image_policy.as_ref()) {
            Some(p) => Some(image_policy_of(p, compat)?),
            None => None,
        };
        let overlay_options = match &opts.overlay_options {
            Some(s) => Some(crate::overlayopts::OverlayOptions::parse(s)?),
            None => None,
        };
        Ok(Context {
            opts,
            policy,
            root,
            hierarchies,
            mode,
            compat,
            overlay_options,
            faults: FaultInjector::from_env(),
            initrd,
            lock_path: std::sync::OnceLock::new(),
            kernel: std::sync::OnceLock::new(),
        })
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The compatibility level in effect.
    pub fn compat(&self) -> Compat {
        self.compat
    }

    /// The mutable mode in effect for `merge`/`refresh`.
    pub fn mutable_mode(&self) -> MutableMode {
        self.mode
    }

    /// The configured hierarchies.
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The root directory as messages show it: `/`, or the `--root=` path.
    pub fn root_path(&self) -> &str {
        self.root.display_root()
    }

    fn sink(&self) -> &dyn EventSink {
        &*self.opts.sink
    }

    fn initrd(&self) -> bool {
        self.initrd
    }

    fn require_privilege(&self) -> Result<()> {
        if has_cap_sys_admin() {
            Ok(())
        } else {
            Err(Error::NotPrivileged)
        }
    }

    /// The kernel features in use (probed on first use).
    pub fn kernel(&self) -> Kernel {
        *self.kernel.get_or_init(|| {
            let k = Kernel::new(self.opts.kernel);
            self.sink().event(&Event::Message(
                Level::Debug,
                format!("Kernel features in use: {}", k.features().names()),
            ));
            k
        })
    }

    /// What `merge` would do, without mounting anything and without privileges.
    ///
    /// ```
    /// # let root = std::env::temp_dir().join(format!("sysext-doc-{}-{}", std::process::id(), line!()));
    /// # let _ = std::fs::remove_dir_all(&root);
    /// # for (f, text) in [("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n"),
    /// #     ("var/lib/extensions/foo/usr/lib/extension-release.d/extension-release.foo", "ID=_any\n"),
    /// #     ("var/lib/extensions/foo/usr/bin/foo", "foo\n")] {
    /// #     let p = root.join(f);
    /// #     std::fs::create_dir_all(p.parent().unwrap())?;
    /// #     std::fs::write(p, text)?;
    /// # }
    /// # std::fs::create_dir_all(root.join("opt"))?;
    /// use sysext::{Context, ImageClass, Options};
    /// let mut opts = Options::new(ImageClass::Sysext);
    /// opts.root = Some(root.display().to_string()); // a root holding the extension "foo"
    /// let ctx = Context::new(opts)?;
    /// let report = ctx.plan()?;
    /// assert_eq!(report.plan.extensions, ["foo"]);
    /// let usr = &report.plan.hierarchies[0];
    /// assert_eq!(usr.hierarchy.to_string(), "/usr");
    /// use sysext::plan::Layer;
    /// assert!(matches!(usr.lower[..], [Layer::Meta, Layer::Extension { .. }, Layer::Host(_)]));
    /// assert!(usr.upper.is_none()); // read-only: the default mutable mode is "no"
    /// # std::fs::remove_dir_all(&root)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plan(&self) -> Result<PlanReport> {
        let g = self.gather(false, None, &[])?;
        let probed = self.probe(self.mode, &g.trees, Vec::new())?;
        let mut plan = plan::plan(&probed.inputs)?;
        if let Some(o) = &self.overlay_options {
            o.apply_to(&mut plan);
        }
        Ok(PlanReport {
            plan,
            skipped: g.skipped,
            using: g.file_names,
        })
    }

    fn lock(&self) -> Result<crate::lock::Lock> {
        // The root fd is the context's for its whole life: its lock file's name is found once.
        let path = match self.lock_path.get() {
            Some(p) => p.clone(),
            None => {
                let p = crate::lock::path_for(&self.root, self.opts.class)?;
                self.lock_path.get_or_init(|| p).clone()
            }
        };
        crate::lock::lock_at(path, &self.root, self.opts.lock_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("sysext-ctx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        for (dir, name, rel) in [
            (
                "var/lib/extensions",
                "sys",
                "ID=_any\nSYSEXT_SCOPE=system\n",
            ),
            (
                "var/lib/extensions",
                "ini",
                "ID=_any\nSYSEXT_SCOPE=initrd\n",
            ),
            (".extra/sysext", "xtra", "ID=_any\nSYSEXT_SCOPE=initrd\n"),
        ] {
            let d = p.join(dir).join(name).join("usr/lib/extension-release.d");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("extension-release.{name}")), rel).unwrap();
        }
        std::fs::create_dir_all(p.join("usr/lib")).unwrap();
        std::fs::write(p.join("usr/lib/os-release"), "ID=debian\n").unwrap();
        p
    }

    fn states(
        root: &std::path::Path,
        compat: Compat,
        initrd: Option<bool>,
    ) -> Vec<(String, ImageState)> {
        let mut o = Options::new(ImageClass::Sysext);
        o.root = Some(root.to_str().unwrap().to_string());
        o.compat = Some(compat);
        o.initrd = initrd;
        let mut v: Vec<_> = Context::new(o)
            .unwrap()
            .list()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.state))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn the_context_reports_what_it_was_given() {
        let p = scratch("given");
        let mut o = Options::new(ImageClass::Sysext);
        o.root = Some(p.to_str().unwrap().to_string());
        o.compat = Some(Compat::V257);
        o.mutable = Some(MutableMode::Import);
        o.hierarchies = Some(vec!["/usr".into(), "/srv/x/".into()]);
        let c = Context::new(o).unwrap();
        assert_eq!(c.compat(), Compat::V257);
        assert_eq!(c.mutable_mode(), MutableMode::Import);
        let h: Vec<&str> = c.hierarchies().iter().map(|h| h.as_str()).collect();
        assert_eq!(h, ["/usr", "/srv/x/"]);
        assert_eq!(c.root_path(), p.to_str().unwrap());
        // The other level and mode, so that neither is the default by chance.
        let mut o = Options::new(ImageClass::Sysext);
        o.root = Some(p.to_str().unwrap().to_string());
        o.compat = Some(Compat::V262);
        o.mutable = Some(MutableMode::EphemeralImport);
        let c = Context::new(o).unwrap();
        assert_eq!(c.compat(), Compat::V262);
        assert_eq!(c.mutable_mode(), MutableMode::EphemeralImport);
        std::fs::remove_dir_all(&p).unwrap();
    }

    /// Capabilities are a thread's own: a thread that drops CAP_SYS_ADMIN from its effective
    /// set is refused what needs it, and only that thread is.
    #[test]
    fn without_cap_sys_admin_privileged_verbs_are_refused() {
        use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
        let p = scratch("nopriv");
        let had = has_cap_sys_admin();
        let root = p.to_str().unwrap().to_string();
        let (before, after, merge) = std::thread::spawn(move || {
            let mut o = Options::new(ImageClass::Sysext);
            o.root = Some(root);
            let c = Context::new(o).unwrap();
            let before = c.require_privilege().is_ok();
            let mut caps = capabilities(None).unwrap();
            caps.effective.remove(CapabilitySet::SYS_ADMIN);
            set_capabilities(None, caps).unwrap();
            let after = (has_cap_sys_admin(), c.require_privilege());
            (before, after, c.merge())
        })
        .join()
        .unwrap();
        assert_eq!(before, had);
        assert!(!after.0);
        assert!(
            matches!(after.1, Err(Error::NotPrivileged)),
            "{:?}",
            after.1
        );
        assert!(matches!(merge, Err(Error::NotPrivileged)), "{merge:?}");
        // This thread keeps what it had.
        assert_eq!(has_cap_sys_admin(), had);
        std::fs::remove_dir_all(&p).unwrap();
    }

    #[test]
    fn initrd_scope_from_the_root() {
        use ImageState::{Incompatible as I, WouldMerge as W};
        let p = scratch("initrd");
        let s = |v: &[(&str, ImageState)]| -> Vec<(String, ImageState)> {
            v.iter().map(|(n, st)| (n.to_string(), *st)).collect()
        };
        let system = s(&[("ini", I), ("sys", W)]);
        let initrd = s(&[("ini", W), ("sys", I), ("xtra", W)]);
        // No initrd-release below the root: the system scope at 262.
        assert_eq!(states(&p, Compat::V262, None), system);
        std::fs::create_dir_all(p.join("etc")).unwrap();
        std::fs::write(p.join("etc/initrd-release"), "ID=debian\n").unwrap();
        // 262: the root's initrd-release makes the initrd scope (scope and /.extra/sysext).
        assert_eq!(states(&p, Compat::V262, None), initrd);
        // 257 asks the host, whatever the root (checked only where the host is no initrd).
        if std::env::var_os("SYSTEMD_IN_INITRD").is_none()
            && !std::path::Path::new("/etc/initrd-release").exists()
        {
            assert_eq!(states(&p, Compat::V257, None), system);
        }
        // The option wins at both levels.
        for c in Compat::ALL {
            assert_eq!(states(&p, c, Some(false)), system, "{c}");
            assert_eq!(states(&p, c, Some(true)), initrd, "{c}");
        }
        std::fs::remove_dir_all(&p).unwrap();
    }
}
