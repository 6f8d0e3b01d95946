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

/// The keys of the host's os-release that anything reads (see [`Host::from_os_release`]).
const HOST_RELEASE_KEYS: [&str; 5] = [
    "ID",
    "ID_LIKE",
    "VERSION_ID",
    "SYSEXT_LEVEL",
    "CONFEXT_LEVEL",
];

/// Settings of a [`Context`].
#[derive(Clone)]
pub struct Options {
    /// Image class.
    pub class: ImageClass,
    /// `--root`; `None` for the host's `/`.
    pub root: Option<String>,
    /// `--mutable=`; `None` reads `SYSTEMD_*_MUTABLE_MODE`, then defaults to `no`.
    pub mutable: Option<MutableMode>,
    /// `--force`: skip the compatibility checks.
    pub force: bool,
    /// `--noexec=`; `None` keeps the class default.
    pub noexec: Option<bool>,
    /// `--image-policy=`.
    pub image_policy: Option<String>,
    /// Hierarchies; `None` reads `SYSTEMD_*_HIERARCHIES`, then the class defaults.
    pub hierarchies: Option<Vec<String>>,
    /// Whether the initrd scope applies (`SYSEXT_SCOPE=initrd`, the initrd's search directories
    /// with `/.extra/`); `None` detects it once, when the [`Context`] is created: at level 262
    /// from `etc/initrd-release` below the root (as systemd 259 and later), at 257 from the host
    /// (`SYSTEMD_IN_INITRD`, else the host's `/etc/initrd-release`).
    pub initrd: Option<bool>,
    /// How long to wait for the lock of the root: `None` forever, `Some(0)` not at all.
    pub lock_timeout: Option<Duration>,
    /// Rebuild on `refresh` even when nothing changed (systemd 260's `--always-refresh`).
    pub always_refresh: bool,
    /// Do not work out whether the service manager needs a reload (`--no-reload`; also
    /// implied by an explicit root, as in systemd). [`Report::needs_reload`] is then false.
    pub no_reload: bool,
    /// Use block device nodes found in the search dirs of an explicit root (`--root`). They
    /// are refused there by default: a device node below a root can name any disk of the
    /// machine, so its content comes from outside the root. On the host's own root they
    /// are always used, as systemd does. See SECURITY.md.
    pub allow_block_devices: bool,
    /// Write the intent record that lets the next call repair a killed merge, refresh or
    /// unmerge (default `true`). Only for measuring what it costs (`sysext-bench
    /// --intent-cost`): without it, a killed call is not repaired.
    #[doc(hidden)]
    pub intent_record: bool,
    /// The kernel features the library may use (default: all the running kernel has).
    /// Taking one away forces its fallback, as on an older kernel (see [`crate::kernel`]).
    /// [`Options::new`] takes away those named in `LIBSYSEXT_KERNEL_DISABLE`
    /// (comma-separated, e.g. `detached-layers,lowerdir-append`), a testing aid.
    pub kernel: KernelFeatures,
    /// The compatibility level (which systemd release to follow where they differ); `None`
    /// reads `LIBSYSEXT_COMPAT` (`257`, `262`), then takes the newest ([`Compat::NEWEST`]).
    pub compat: Option<Compat>,
    /// Overlayfs mount options for every overlay, comma-separated as `mount -o` takes them
    /// (what systemd 259 reads from `$SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS`; the library
    /// never reads that variable, the CLI does). `None`: the defaults (a writable merge gets
    /// `redirect_dir=on,noatime,metacopy=off,index=off`, a read-only one nothing); a list,
    /// even an empty one, replaces them. Mount-flag words (`noatime`, `nosuid`, …) become
    /// mount flags. See [`crate::overlayopts`].
    pub overlay_options: Option<String>,
    /// Receives progress events.
    pub sink: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("class", &self.class)
            .field("root", &self.root)
            .field("mutable", &self.mutable)
            .field("force", &self.force)
            .field("noexec", &self.noexec)
            .field("image_policy", &self.image_policy)
            .field("hierarchies", &self.hierarchies)
            .field("initrd", &self.initrd)
            .field("lock_timeout", &self.lock_timeout)
            .field("always_refresh", &self.always_refresh)
            .field("no_reload", &self.no_reload)
            .field("allow_block_devices", &self.allow_block_devices)
            .field("kernel", &self.kernel)
            .field("compat", &self.compat)
            .field("overlay_options", &self.overlay_options)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Defaults for a class: host root, mode from the environment, no force.
    pub fn new(class: ImageClass) -> Options {
        Options {
            class,
            root: None,
            mutable: None,
            force: false,
            noexec: None,
            image_policy: None,
            hierarchies: None,
            initrd: None,
            lock_timeout: None,
            always_refresh: false,
            no_reload: false,
            allow_block_devices: false,
            intent_record: true,
            kernel: kernel_features_from_env(),
            compat: None,
            overlay_options: None,
            sink: Arc::new(NullSink),
        }
    }
}

/// All kernel features less those named in `LIBSYSEXT_KERNEL_DISABLE` (unknown names are
/// ignored).
fn kernel_features_from_env() -> KernelFeatures {
    let off = std::env::var("LIBSYSEXT_KERNEL_DISABLE")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|w| KernelFeatures::parse_list(w).ok())
                .fold(KernelFeatures::empty(), |a, b| a | b)
        })
        .unwrap_or(KernelFeatures::empty());
    KernelFeatures::all() - off
}

/// An image not used for a merge, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Image name.
    pub name: String,
    /// Why (names the field and values).
    pub reason: String,
}

/// What a `merge` or `refresh` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Names of the merged extensions, ascending.
    pub merged: Vec<String>,
    /// Hierarchies that got an overlay, as configured (`/usr`, without the root prefix).
    pub hierarchies: Vec<String>,
    /// Where those overlays were mounted (root prefix included), in the same order as
    /// [`Report::hierarchies`].
    pub targets: Vec<String>,
    /// Hierarchies whose old merge was removed, as configured (`/usr`).
    pub unmerged: Vec<String>,
    /// Images not used.
    pub skipped: Vec<Skipped>,
    /// Whether an extension asks for a service manager reload (`EXTENSION_RELOAD_MANAGER=1`,
    /// or, at level 262, any unit listed in `units`). False with an explicit root or
    /// `no_reload`.
    pub needs_reload: bool,
    /// Units the merged (or, on unmerge, the unmerged) extensions ask to have restarted or
    /// reloaded-or-restarted (`EXTENSION_RESTART_UNITS=`, `EXTENSION_RELOAD_OR_RESTART_UNITS=`):
    /// for the caller's reload hook, after the manager reload. Collected at every level
    /// (systemd 257 ignores the keys), also with an explicit root or `no_reload` (the CLI
    /// acts on them only where it reloads the manager, at level 262).
    pub units: release::UnitRequests,
}

/// What would happen to an image on `merge` (shown by `list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageState {
    /// Part of the current merge.
    Merged,
    /// Compatible; a merge would use it.
    WouldMerge,
    /// An empty directory hiding images of the same name in lower-precedence directories.
    Masked,
    /// Skipped by a merge: not compatible with the host (or no release data).
    Incompatible,
    /// A merge would fail on it (bad image, forbidden content).
    Invalid,
    /// Not determined (image files need privileges to be inspected).
    Unknown,
}

impl ImageState {
    /// Stable name (`merged`, `would-merge`, `masked`, `incompatible`, `invalid`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Merged => "merged",
            ImageState::WouldMerge => "would-merge",
            ImageState::Masked => "masked",
            ImageState::Incompatible => "incompatible",
            ImageState::Invalid => "invalid",
            ImageState::Unknown => "unknown",
        }
    }
}

/// An image as listed by `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Image name.
    pub name: String,
    /// Kind.
    pub kind: ImageKind,
    /// Path as printed.
    pub path: String,
    /// mtime (files) or birth time (directories), µs.
    pub time_usec: u64,
    /// Paths of lower-precedence images of the same name, which this one shadows.
    pub shadows: Vec<String>,
    /// What a merge does with it.
    pub state: ImageState,
    /// Why, for states other than merged / would-merge (names the field and values).
    pub reason: Option<String>,
    /// The fields of its extension-release file, as the verdict read them. Empty when it
    /// has none, when it was not inspected ([`ImageState::Unknown`], refused block
    /// devices) and for image files of the current merge (not mounted again).
    pub release: ReleaseData,
    /// Where a merge checks its verity data (image files with verity): by the kernel's
    /// dm-verity, or once in userspace where there is no device-mapper. `None` for
    /// directories, unprotected images, merged ones (not opened again) and images that
    /// could not be opened.
    pub verity: Option<crate::image::mount::VerityCheck>,
}

/// A dry run of `merge`: what would be merged and how.
#[derive(Debug, Clone)]
pub struct PlanReport {
    /// The overlays that would be built.
    pub plan: Plan,
    /// Images that would not be used.
    pub skipped: Vec<Skipped>,
    /// Image file names that would be used.
    pub using: Vec<String>,
}

/// An image opened for its verdict ([`Context::verdict`]).
enum Opened {
    /// A block device below an explicit root, not opened: why it is refused.
    Refused(String),
    /// Its tree (mounted, for image files) and release data.
    Read(ImageTree, ReleaseInfo),
}

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
        let compat = match opts.compat {
            Some(c) => c,
            None => Compat::from_env()
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
                .unwrap_or(Compat::NEWEST),
        };
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
        let mode = match opts.mutable {
            Some(m) => m,
            None => match std::env::var(opts.class.info().mutable_env) {
                Ok(v) => MutableMode::parse_systemd(&v).unwrap_or_else(|| {
                    opts.sink.event(&Event::Message(
                        Level::Warning,
                        format!(
                            "Failed to parse {} environment variable value '{v}'. Ignoring.",
                            opts.class.info().mutable_env
                        ),
                    ));
                    cfg.mutable.unwrap_or(MutableMode::Disabled)
                }),
                Err(_) => cfg.mutable.unwrap_or(MutableMode::Disabled),
            },
        };
        let policy = match opts.image_policy.as_ref().or(cfg.image_policy.as_ref()) {
            Some(p) => {
                let parsed = crate::image::ImagePolicy::parse(p).map_err(|e| {
                    Error::InvalidArgument(format!("Failed to parse image policy: {p}: {e}"))
                })?;
                if parsed.uses_post_257_flags() && !compat.knows_policy_fs_flags() {
                    return Err(Error::InvalidArgument(format!(
                        "Failed to parse image policy: {p}: file system type flags and \
                         'encryptedwithintegrity' are not known at level {compat}"
                    )));
                }
                Some(parsed)
            }
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

    /// The root.
    pub fn root(&self) -> &Root {
        &self.root
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

    /// Discover images (`list`), with what a merge would do to each. Needs no privilege
    /// for directory images.
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
    /// let found = ctx.list()?;
    /// assert_eq!(found.len(), 1);
    /// assert_eq!((found[0].name.as_str(), found[0].state), ("foo", sysext::ImageState::WouldMerge));
    /// # std::fs::remove_dir_all(&root)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list(&self) -> Result<Vec<Extension>> {
        let found = discover::discover_at(&self.root, self.opts.class, self.initrd(), self.compat)?;
        let merged: Vec<String> = self.current_merge().map(|(n, _)| n).unwrap_or_default();
        // Without the host's os-release `list` still lists: the verdict says so per image.
        let host = self.host_release().ok().map(|os| self.host_from(&os));
        let mut v = Vec::new();
        for d in found {
            let (state, reason, release, verity) =
                self.examine(&d, host.as_ref(), merged.contains(&d.name));
            v.push(Extension {
                name: d.name,
                kind: d.kind,
                path: d.path,
                time_usec: d.time_usec,
                shadows: d.shadows,
                state,
                reason,
                release,
                verity,
            });
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// What `list` shows for an image: the [verdict](Context::verdict), and before it what
    /// only `list` tells (part of the current merge, not inspectable without privileges,
    /// unreadable, an empty directory that masks others); with its release data and where
    /// its verity data is checked.
    fn examine(
        &self,
        d: &DiscoveredImage,
        host: Option<&Host>,
        merged: bool,
    ) -> (
        ImageState,
        Option<String>,
        ReleaseData,
        Option<crate::image::mount::VerityCheck>,
    ) {
        if merged {
            // Directories are read again for their release data; image files are not
            // mounted a second time.
            let release = match d.kind.is_tree() {
                true => self
                    .read_metadata(d)
                    .map(|(_, rel)| rel.data)
                    .unwrap_or_default(),
                false => ReleaseData::new(),
            };
            return (ImageState::Merged, None, release, None);
        }
        if !d.kind.is_tree() && self.refused_block_device(d).is_none() && !has_cap_sys_admin() {
            return (
                ImageState::Unknown,
                Some("image files can only be inspected with privileges".into()),
                ReleaseData::new(),
                None,
            );
        }
        let opened = match self.open_image(d) {
            Ok(o) => o,
            Err(e) => {
                return (
                    ImageState::Invalid,
                    Some(e.to_string()),
                    ReleaseData::new(),
                    None,
                )
            }
        };
        let verity = match &opened {
            Opened::Read(tree, _) => tree.verity,
            Opened::Refused(_) => None,
        };
        if let Opened::Read(tree, rel) = &opened {
            if d.kind.is_tree()
                && !d.shadows.is_empty()
                && crate::root::dir_is_empty(tree.fd.as_fd()).unwrap_or(false)
            {
                let why = format!("empty directory, masks {}", d.shadows.join(", "));
                return (ImageState::Masked, Some(why), rel.data.clone(), verity);
            }
        }
        let (state, reason) = self.verdict(&d.name, &opened, host);
        let release = match opened {
            Opened::Read(_, rel) => rel.data,
            Opened::Refused(_) => ReleaseData::new(),
        };
        (state, reason, release, verity)
    }

    /// Why a block device image is not used: below an explicit root unless allowed.
    fn refused_block_device(&self, img: &DiscoveredImage) -> Option<String> {
        (img.kind == ImageKind::Block && !self.block_devices_allowed()).then(|| {
            format!(
                "is a block device below the root '{}': its data may lie outside the root, so block \
                 devices there are used only when allowed (allow_block_devices, --allow-block-devices)",
                self.root.display_root()
            )
        })
    }

    /// Whether block device nodes in the search dirs may be used as images.
    fn block_devices_allowed(&self) -> bool {
        // `--root=/` is the host's own root too.
        self.root.prefix().is_empty() || self.opts.allow_block_devices
    }

    /// An image opened for its verdict: a refused block device is not opened; an image
    /// that cannot be read (a bad image, forbidden content) is an error.
    fn open_image(&self, img: &DiscoveredImage) -> Result<Opened> {
        if let Some(reason) = self.refused_block_device(img) {
            return Ok(Opened::Refused(reason));
        }
        let (tree, rel) = self.read_metadata(img)?;
        Ok(Opened::Read(tree, rel))
    }

    /// The one verdict on an opened image: [`ImageState::WouldMerge`] (a merge uses it),
    /// or why not: [`ImageState::Incompatible`] (skipped, not an error) or
    /// [`ImageState::Invalid`] (no host os-release to judge it by; a merge fails before).
    /// `merge`, `refresh`, `plan`, `list` and the name-selected merges all read this.
    fn verdict(
        &self,
        name: &str,
        opened: &Opened,
        host: Option<&Host>,
    ) -> (ImageState, Option<String>) {
        let rel = match opened {
            Opened::Refused(reason) => return (ImageState::Incompatible, Some(reason.clone())),
            Opened::Read(_, rel) => rel,
        };
        if self.opts.force {
            return (ImageState::WouldMerge, None);
        }
        if rel.os_tree {
            return (
                ImageState::Incompatible,
                Some("is an OS image (it carries an os-release file), not an extension".into()),
            );
        }
        let Some(host) = host else {
            return (
                ImageState::Invalid,
                Some(format!("no os-release in {}", self.root.display_root())),
            );
        };
        match compat::check(name, &rel.data, host, self.opts.class) {
            Compatibility::Compatible(_) => (ImageState::WouldMerge, None),
            Compatibility::Incompatible(reason) => {
                let text = match (&reason, &rel.problem) {
                    (compat::Reason::NoReleaseData, Some(p)) => format!("{reason} ({p})"),
                    _ => reason.to_string(),
                };
                (ImageState::Incompatible, Some(text))
            }
        }
    }

    /// The host as the verdict sees it, from its os-release.
    fn host_from(&self, os: &ReleaseData) -> Host {
        let scope = if self.initrd() {
            Scope::Initrd
        } else {
            Scope::System
        };
        Host::from_os_release(os, self.opts.class, scope, crate::arch::native())
    }

    fn host_release(&self) -> Result<ReleaseData> {
        let candidates: Vec<String> = match std::env::var("SYSTEMD_OS_RELEASE") {
            Ok(p) => vec![p],
            Err(_) => vec!["/etc/os-release".into(), "/usr/lib/os-release".into()],
        };
        let root_s = self.root.display_root().to_string();
        for c in &candidates {
            // A regular file, read up to the cap, and only the keys that matter are kept:
            // a FIFO, a device node or a huge file below the root cannot stall or swell us.
            let err = |source: std::io::Error| Error::HostOsRelease {
                root: root_s.clone(),
                source,
            };
            let named = |e: crate::smallfile::SmallFileError| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("'{}' {e}", self.root.display(c)),
                )
            };
            let fd = match crate::smallfile::open_checked(|flags| self.root.open_in(c, flags)) {
                Ok(fd) => fd,
                Err(e) if e.is_not_found() => continue,
                Err(crate::smallfile::SmallFileError::Io(e)) => return Err(err(e)),
                Err(e) => return Err(err(named(e))),
            };
            let bytes = crate::smallfile::read_capped(fd, extension::MAX_RELEASE_FILE_SIZE)
                .map_err(|e| match e {
                    crate::smallfile::SmallFileError::Io(e) => err(e),
                    e => err(named(e)),
                })?;
            return release::parse_only(&bytes, &HOST_RELEASE_KEYS).map_err(|e| {
                err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("'{}': {e}", self.root.display(c)),
                ))
            });
        }
        Err(Error::HostOsRelease {
            root: root_s,
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        })
    }

    /// Discovery, metadata, the verdict on each image: the images a merge would use.
    /// `filter`: only these names; `required`: names that must be found and used (an
    /// error otherwise, before anything is reported).
    fn gather(
        &self,
        check_merged: bool,
        filter: Option<&[String]>,
        required: &[String],
    ) -> Result<Gathered> {
        let class = self.opts.class;
        let mut images = discover::discover_at(&self.root, class, self.initrd(), self.compat)?;
        if let Some(f) = filter {
            images.retain(|i| f.contains(&i.name));
        }
        if let Some(n) = required
            .iter()
            .find(|n| !images.iter().any(|i| &i.name == *n))
        {
            return Err(Error::NotFound { name: n.clone() });
        }

        // Metadata of every image, before anything is mounted; errors are fatal.
        let mut opened = Vec::with_capacity(images.len());
        for img in images {
            let o = self.open_image(&img)?;
            opened.push((img, o));
        }

        let mut resolved = Vec::new();
        if check_merged {
            for h in &self.hierarchies {
                // Opened for reading: probing reads its entries through it.
                let r = self
                    .root
                    .resolve_dir(h.relative())
                    .map_err(|e| crate::root::resolve_err(&self.root, h.relative(), e))?;
                let mut r = r;
                if let Some(r) = &mut r {
                    // Kept: probing and building need the same facts.
                    r.stat = state::dir_stat(r.fd.as_fd());
                    if state::is_ours_stat(r.fd.as_fd(), r.stat.as_ref(), &r.path, class)? {
                        return Err(Error::AlreadyMerged {
                            hierarchy: h.to_string(),
                            path: r.path.clone(),
                        });
                    }
                }
                resolved.push(r);
            }
        }

        let os = self.host_release()?;
        let id_ok = os.get("ID").map(|v| !v.is_empty()).unwrap_or(false);
        if !id_ok {
            return Err(Error::HostOsReleaseNoId {
                root: self.root.display_root().to_string(),
            });
        }
        let host = self.host_from(&os);

        // Refused block devices are reported first, then the others in discovery order.
        let (refused, read): (Vec<_>, Vec<_>) = opened
            .into_iter()
            .partition(|(_, o)| matches!(o, Opened::Refused(_)));
        let found = read.len();
        let judged: Vec<_> = refused
            .into_iter()
            .chain(read)
            .map(|(img, o)| {
                let (state, reason) = self.verdict(&img.name, &o, Some(&host));
                (img, o, state, reason)
            })
            .collect();
        for (img, _, state, reason) in &judged {
            if *state != ImageState::WouldMerge && required.contains(&img.name) {
                return Err(Error::Incompatible {
                    name: img.name.clone(),
                    reason: reason.clone().unwrap_or_default(),
                });
            }
        }
        let mut trees = Vec::new();
        let mut skipped = Vec::new();
        let mut file_names = Vec::new();
        let mut needs_reload = false;
        let mut units = release::UnitRequests::default();
        for (img, opened, state, reason) in judged {
            let Opened::Read(tree, rel) = opened else {
                // Refused: never used.
                let reason = reason.unwrap_or_default();
                self.skip(&mut skipped, img.name, reason);
                continue;
            };
            if state != ImageState::WouldMerge {
                self.skip(&mut skipped, img.name, reason.unwrap_or_default());
                continue;
            }
            if rel
                .data
                .get("EXTENSION_RELOAD_MANAGER")
                .and_then(release::parse_bool)
                == Some(true)
            {
                needs_reload = true;
            }
            units.add(&rel.data);
            file_names.push(img.file_name().to_string());
            trees.push(tree);
        }
        file_names.sort();
        crate::version::sort_names(&mut file_names);
        Ok(Gathered {
            hierarchies: resolved,
            trees,
            skipped,
            file_names,
            needs_reload: needs_reload
                || (!units.is_empty() && self.compat.restarts_extension_units()),
            units,
            found,
        })
    }

    /// Report an image a merge does not use.
    fn skip(&self, skipped: &mut Vec<Skipped>, name: String, reason: String) {
        self.sink().event(&Event::Skipped {
            name: name.clone(),
            reason: reason.clone(),
        });
        skipped.push(Skipped { name, reason });
    }

    /// Open an image's tree and read its release data.
    fn read_metadata(&self, img: &DiscoveredImage) -> Result<(ImageTree, ReleaseInfo)> {
        let class = self.opts.class;
        let meta_err = |reason: String, errno: i32| Error::Metadata {
            image: img.name.clone(),
            reason,
            errno,
        };
        match img.kind {
            ImageKind::Directory | ImageKind::Subvolume => {
                let fd = self
                    .root
                    .open_in(&img.rel, OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(|e| meta_err(e.to_string(), e.raw_os_error().unwrap_or(libc::EIO)))?;
                if class == ImageClass::Sysext && extension::has_forbidden_os_release(fd.as_fd()) {
                    return Err(meta_err("No medium found".into(), libc::ENOMEDIUM));
                }
                let rel = extension::load_release(fd.as_fd(), class, &img.name);
                Ok((
                    ImageTree {
                        name: img.name.clone(),
                        path: img.path.clone(),
                        fd,
                        is_mount: false,
                        identity: img.identity,
                        verity: None,
                    },
                    rel,
                ))
            }
            ImageKind::Raw | ImageKind::Block => {
                let (policy, explicit) = self.policy_for(img);
                let step = |what: &str| self.faults.step(what);
                let m = crate::image::mount::open_image_with(
                    self.root.fd(),
                    &img.rel,
                    class,
                    &policy,
                    explicit,
                    self.block_devices_allowed(),
                    self.kernel(),
                    &step,
                    self.compat(),
                )
                .map_err(|e| match e {
                    crate::image::ImageError::Policy(reason) => Error::ImagePolicy {
                        image: img.path.clone(),
                        reason,
                    },
                    source => Error::Image {
                        image: img.path.clone(),
                        name: img.name.clone(),
                        source: Box::new(source),
                    },
                })?;
                for note in &m.notes {
                    self.sink().event(&Event::Message(
                        Level::Debug,
                        format!("{}: {note}", img.path),
                    ));
                }
                let tree = m.tree;
                // It must be an extension (a matching release file of either class) or an
                // OS tree; an OS tree is then skipped (unless forced).
                // 257 checks an image picked from `NAME.raw.v/` against the picked file's
                // name (`NAME_3`), 262 against the image's.
                let check_name = match &img.picked_stem {
                    Some(stem) if !self.compat.picked_image_release_named_after_base() => {
                        stem.as_str()
                    }
                    _ => img.name.as_str(),
                };
                let rel = extension::load_release(tree.as_fd(), class, check_name);
                let os_tree = extension::has_os_release(tree.as_fd());
                // The other class's release file is looked for only when it decides.
                if !os_tree
                    && rel.file.is_none()
                    && extension::load_release(tree.as_fd(), class.other(), check_name)
                        .file
                        .is_none()
                {
                    let why = rel.problem.clone().unwrap_or_default();
                    return Err(meta_err(
                        format!("No medium found ({why})"),
                        libc::ENOMEDIUM,
                    ));
                }
                let mut rel = rel;
                if os_tree {
                    rel.os_tree = true;
                }
                Ok((
                    ImageTree {
                        name: img.name.clone(),
                        path: img.path.clone(),
                        fd: tree,
                        is_mount: true,
                        identity: img.identity,
                        verity: m.verity,
                    },
                    rel,
                ))
            }
        }
    }

    /// The image policy for an image: the caller's, or systemd's defaults (stricter for
    /// `/.extra/` in the initrd).
    fn policy_for(&self, img: &DiscoveredImage) -> (crate::image::ImagePolicy, bool) {
        use crate::image::ImagePolicy;
        if let Some(p) = &self.policy {
            return (p.clone(), true);
        }
        let class = self.opts.class;
        if self.initrd() && !self.root.is_explicit() {
            if img.rel.starts_with(".extra/sysext/") && class == ImageClass::Sysext {
                return (ImagePolicy::initrd_sysext(), false);
            }
            if img.rel.starts_with(".extra/confext/") && class == ImageClass::Confext {
                return (ImagePolicy::initrd_confext(), false);
            }
            if img.rel.starts_with(".extra/") {
                return (ImagePolicy::deny_all(), false);
            }
        }
        let p = match class {
            ImageClass::Sysext => ImagePolicy::sysext_default(),
            ImageClass::Confext => ImagePolicy::confext_default(),
        };
        (p, false)
    }

    /// Probe the configured hierarchies and `trees` for a merge in `mode`; `resolved`: the
    /// hierarchies as the already-merged check resolved them (or empty).
    fn probe(
        &self,
        mode: MutableMode,
        trees: &[ImageTree],
        resolved: Vec<Option<crate::root::Resolved>>,
    ) -> Result<probe::Probed> {
        probe::probe(
            &self.root,
            self.opts.class,
            &self.hierarchies,
            mode,
            self.compat,
            self.opts.noexec,
            trees,
            resolved,
            self.kernel(),
        )
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

    /// Merge the extensions (`merge`). Fails if a hierarchy is already merged.
    ///
    /// ```no_run
    /// use sysext::{Context, ImageClass, MutableMode, Options};
    /// let mut opts = Options::new(ImageClass::Sysext);
    /// opts.mutable = Some(MutableMode::Ephemeral);
    /// let ctx = Context::new(opts)?; // the host's /usr and /opt; needs CAP_SYS_ADMIN
    /// match ctx.merge() {
    ///     Ok(report) => println!("merged {:?} onto {:?}", report.merged, report.hierarchies),
    ///     Err(e) => eprintln!("{e} (hierarchy {:?}, extension {:?})", e.hierarchy(), e.extension()),
    /// }
    /// # Ok::<(), sysext::Error>(())
    /// ```
    pub fn merge(&self) -> Result<Report> {
        self.require_privilege()?;
        let lock = self.lock()?;
        self.recover(&lock);
        self.merge_locked(&lock, false, None, &[], self.mode)
    }

    /// Rebuild the merge from the current set of images (`refresh`), replacing the old
    /// overlays without a moment in which the hierarchy shows neither.
    ///
    /// ```no_run
    /// use sysext::{Context, ImageClass, MutableMode, Options};
    /// let mut opts = Options::new(ImageClass::Sysext);
    /// opts.mutable = Some(MutableMode::Ephemeral);
    /// let ctx = Context::new(opts)?; // the host's /usr and /opt; needs CAP_SYS_ADMIN
    /// let report = ctx.refresh()?; // merges if nothing is merged; a no-op if nothing changed
    /// println!("{:?} merged, {:?} unmerged", report.merged, report.unmerged);
    /// # Ok::<(), sysext::Error>(())
    /// ```
    pub fn refresh(&self) -> Result<Report> {
        self.require_privilege()?;
        let lock = self.lock()?;
        self.recover(&lock);
        self.merge_locked(&lock, true, None, &[], self.mode)
    }

    /// Remove the merge (`unmerge`).
    ///
    /// ```no_run
    /// use sysext::{Context, ImageClass, MutableMode, Options};
    /// let mut opts = Options::new(ImageClass::Sysext);
    /// opts.mutable = Some(MutableMode::Ephemeral);
    /// let ctx = Context::new(opts)?; // the host's /usr and /opt; needs CAP_SYS_ADMIN
    /// let report = ctx.unmerge()?;
    /// for h in &report.unmerged {
    ///     println!("unmerged {h}"); // "/usr", as configured
    /// }
    /// # Ok::<(), sysext::Error>(())
    /// ```
    pub fn unmerge(&self) -> Result<Report> {
        self.require_privilege()?;
        let lock = self.lock()?;
        self.recover(&lock);
        self.unmerge_locked(&lock)
    }

    /// Repair what an interrupted call left, before doing anything else (under the lock).
    fn recover(&self, held: &crate::lock::Lock) {
        // The lock's name gives the rescue directory's.
        let lock = &held.path;
        let n = exec::rescue::recover(&self.root, self.opts.class, lock);
        if n > 0 {
            self.sink().event(&Event::Message(
                Level::Info,
                format!("Put back {n} mount(s) an interrupted unmerge had moved aside."),
            ));
        }
        let class = self.opts.class;
        let r = exec::intent::recover(&self.root, class, held, self.kernel(), &mut |rel| {
            let _ = exec::unmerge_hierarchy(
                &self.root,
                class,
                rel,
                &self.faults,
                self.sink(),
                self.kernel(),
            );
        });
        if let Some(r) = r {
            self.sink().event(&Event::Message(
                Level::Warning,
                format!(
                    "An interrupted {} was found and {}.",
                    r.verb,
                    if r.completed { "completed" } else { "undone" }
                ),
            ));
        }
    }

    /// The verb of an operation that was interrupted (the process was killed) and not yet
    /// repaired: `merge`, `refresh` or `unmerge`. The next merge, refresh or unmerge
    /// completes or undoes it first. `None` also while one is running.
    pub fn interrupted(&self) -> Option<String> {
        let path = match self.lock_path.get() {
            Some(p) => p.clone(),
            None => crate::lock::path_for(&self.root, self.opts.class).ok()?,
        };
        let r = exec::intent::read(&path)?;
        // Running now (the lock is held) is not interrupted.
        let _held = crate::lock::lock_at(path, &self.root, Some(Duration::ZERO)).ok()?;
        Some(r.verb)
    }

    /// The held lock whose file takes the intent record (`None`: no record).
    fn intent_lock<'a>(&self, lock: &'a crate::lock::Lock) -> Option<&'a crate::lock::Lock> {
        Some(lock).filter(|_| self.opts.intent_record)
    }

    /// The intent record of a merge or refresh about to replace what `probed` found with
    /// `plan`: the old merges, and what of theirs goes once the new ones are in place.
    fn begin_intent(
        &self,
        lock: &crate::lock::Lock,
        verb: &str,
        plan: &Plan,
        probed: &probe::Probed,
        ephemeral_reuse: &[Option<String>],
    ) -> exec::intent::Intent {
        let mut lines = String::new();
        for (i, hp) in probed.hierarchies.iter().enumerate() {
            let Some(c) = &hp.current else {
                continue;
            };
            let rel = self.hierarchies[i].relative();
            if let Some(d) = c.meta.dev {
                lines.push_str(&format!("old\t{rel}\t{}\n", exec::intent::dev(d)));
            }
            let planned = plan.hierarchies.iter().find(|h| h.index == i);
            if let Some(w) = &c.meta.work_dir {
                if planned.and_then(|h| h.meta.work_dir.as_ref()) != Some(w) {
                    lines.push_str(&format!("rmwork\t{w}\n"));
                }
            }
            if let Some(e) = c.note.as_ref().and_then(|n| n.ephemeral.as_ref()) {
                if ephemeral_reuse.get(i).and_then(|r| r.as_ref()) != Some(e) {
                    lines.push_str(&format!("rmeph\t{e}\n"));
                }
            }
        }
        exec::intent::Intent::begin(self.intent_lock(lock), verb, &lines)
    }

    fn unmerge_locked(&self, lock: &crate::lock::Lock) -> Result<Report> {
        // Reload decision before unmerging: read the merged release files.
        let (reload, units) = self.merged_needs_reload();
        let mut report = Report {
            needs_reload: self.reload_wanted() && reload,
            units,
            ..Default::default()
        };
        // All hierarchies come off, or none does (but for those 262 refuses outright); a kill half-way is completed by the next
        // call (the intent record names every hierarchy).
        let mut lines = String::new();
        for h in &self.hierarchies {
            lines.push_str(&format!("old\t{}\t0:0\n", h.relative()));
        }
        let intent = exec::intent::Intent::begin(self.intent_lock(lock), "unmerge", &lines);
        let mut detached = Vec::new();
        let mounts = exec::MountTable::default();
        let mut refused: Option<Error> = None;
        for h in &self.hierarchies {
            if let Some(w) = self.merged_work_dir(h) {
                if !crate::meta::work_dir_is_well_formed(&w)
                    && self.compat.refuses_malformed_work_dir()
                {
                    refused = Some(Error::InvalidArgument(format!(
                        "Invalid work directory path '{w}'."
                    )));
                    continue;
                }
                if !crate::meta::work_dir_removable(&w, h.relative()) {
                    self.sink().event(&Event::Message(
                        Level::Warning,
                        format!(
                            "Not removing work directory '{w}' named by the merge on '{}': it is \
                             not a work directory of that hierarchy.",
                            self.root.display(h.relative())
                        ),
                    ));
                }
            }
            if let Err(e) = exec::detach_hierarchy(
                &self.root,
                self.opts.class,
                h.relative(),
                &mounts,
                &self.faults,
                self.kernel(),
                &intent,
                &mut detached,
            ) {
                exec::restore(&self.root, detached);
                intent.finish();
                return Err(e);
            }
        }
        let r = exec::finish_unmerge(&self.root, detached, self.sink());
        intent.finish();
        report.unmerged = self.hierarchy_names(r?);
        match refused {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The `work_dir` named by the meta dir of our merge on `h`, if any.
    fn merged_work_dir(&self, h: &Hierarchy) -> Option<String> {
        let r = self
            .root
            .resolve(h.relative(), OFlags::PATH | OFlags::DIRECTORY)
            .ok()??;
        state::merged_dev_at(r.fd.as_fd(), &r.path, self.opts.class).ok()??;
        state::read_work_dir(r.fd.as_fd(), self.opts.class)
    }

    /// The configured hierarchies (`/usr`) of root-prefixed hierarchy paths.
    fn hierarchy_names(&self, paths: Vec<String>) -> Vec<String> {
        paths
            .into_iter()
            .map(|p| {
                self.hierarchies
                    .iter()
                    .find(|h| self.root.display(h.relative()) == p)
                    .map_or(p, |h| h.to_string())
            })
            .collect()
    }

    fn reload_wanted(&self) -> bool {
        !self.opts.no_reload && !self.root.is_explicit()
    }

    /// Whether the merged extensions ask for a manager reload, and the units they ask to have
    /// restarted (read from the merged tree, before unmerging).
    fn merged_needs_reload(&self) -> (bool, release::UnitRequests) {
        let class = self.opts.class;
        let mut reload = false;
        let mut units = release::UnitRequests::default();
        for h in &self.hierarchies {
            let Ok(Some(r)) = self
                .root
                .resolve(h.relative(), OFlags::PATH | OFlags::DIRECTORY)
            else {
                continue;
            };
            let Ok(Some(dev)) = state::merged_dev_at(r.fd.as_fd(), &r.path, class) else {
                continue;
            };
            let Ok(m) = state::read_meta(r.fd.as_fd(), &r.path, class, dev) else {
                continue;
            };
            for name in m.extensions {
                // Relaxed lookup in the merged tree.
                let rel = extension::load_release(self.root.fd(), class, &name);
                if rel
                    .data
                    .get("EXTENSION_RELOAD_MANAGER")
                    .and_then(release::parse_bool)
                    == Some(true)
                {
                    reload = true;
                }
                units.add(&rel.data);
            }
        }
        if !units.is_empty() && self.compat.restarts_extension_units() {
            reload = true;
        }
        (reload, units)
    }

    fn merge_locked(
        &self,
        lock: &crate::lock::Lock,
        refresh: bool,
        filter: Option<&[String]>,
        required: &[String],
        mode: MutableMode,
    ) -> Result<Report> {
        let class = self.opts.class;
        let t0 = std::time::Instant::now();
        let timed = self.sink().enabled(Level::Debug);
        let phase = |what: &str, t: std::time::Instant| {
            if timed {
                self.sink().event(&Event::Message(
                    Level::Debug,
                    format!("{what} took {} µs", t.elapsed().as_micros()),
                ));
            }
        };
        let mut g = self.gather(!refresh, filter, required)?;
        phase("discovery and metadata", t0);
        let t1 = std::time::Instant::now();
        let mut report = Report {
            skipped: g.skipped.clone(),
            needs_reload: g.needs_reload && self.reload_wanted(),
            units: g.units.clone(),
            ..Default::default()
        };
        let proceed_empty = g.trees.is_empty()
            && mode != MutableMode::Disabled
            && self.compat.merges_every_hierarchy_when_mutable();
        if proceed_empty {
            self.sink().event(&Event::Message(
                Level::Info,
                "No extensions found, proceeding in mutable mode.".into(),
            ));
        } else if g.trees.is_empty() {
            if g.found == 0 {
                self.sink().event(&Event::NoExtensions);
            } else {
                self.sink().event(&Event::NoSuitable { ignored: g.found });
            }
            if refresh {
                let u = self.unmerge_locked(&lock)?;
                report.unmerged = u.unmerged;
            }
            report.needs_reload = false;
            report.units = Default::default();
            return Ok(report);
        }
        // "Using extensions …" as systemd says it: at 257 before anything can fail, at 262
        // after the routing checks (an error of theirs comes alone) and after the no-op
        // check of a refresh (a skipped refresh says only that it skips).
        let list_first = !self.compat.lists_after_routing_checks();
        let mut using_said = proceed_empty;
        let using = Event::Using(g.file_names.clone());
        let say_using = |said: &mut bool| {
            if !*said {
                self.sink().event(&using);
                *said = true;
            }
        };
        let may_skip =
            refresh && !self.opts.always_refresh && self.compat.skips_unchanged_refresh();
        if list_first && !may_skip {
            say_using(&mut using_said);
        }

        let mut probed = match self.probe(mode, &g.trees, std::mem::take(&mut g.hierarchies)) {
            Ok(p) => p,
            Err(e) => {
                if list_first {
                    say_using(&mut using_said);
                }
                return Err(e);
            }
        };
        if probed
            .hierarchies
            .iter()
            .any(|h| h.current.is_some() && h.host.is_err())
        {
            // A foreign mount hides the host directory below our merge: no gap-free
            // replacement is possible. Do what systemd does: unmerge, then merge.
            self.sink().event(&Event::Message(
                Level::Warning,
                "A foreign mount lies below the current merge; refreshing with a gap.".into(),
            ));
            say_using(&mut using_said);
            let u = self.unmerge_locked(&lock)?;
            report.unmerged = u.unmerged;
            probed = self.probe(mode, &g.trees, Vec::new())?;
        }
        let mut plan = match plan::plan(&probed.inputs) {
            Ok(p) => p,
            Err(e) => {
                // Where the mount would fail, systemd has reached it and done a few things
                // first; errors of routing checks come before the list at 262.
                let routing_check = matches!(
                    e,
                    Error::MutableDirMode { .. }
                        | Error::MutableDirCreate { .. }
                        | Error::MutableDirChase { .. }
                );
                if list_first || !routing_check {
                    say_using(&mut using_said);
                }
                if let Some((rel, mode, wrel)) =
                    plan::auto_link_to_non_dir_effects(&probed.inputs, &e)
                {
                    self.auto_link_to_non_dir(&rel, mode, &wrel);
                }
                return Err(e);
            }
        };
        if let Some(o) = &self.overlay_options {
            o.apply_to(&mut plan);
        }
        phase("probe and plan", t1);
        let t2 = std::time::Instant::now();
        report.merged = plan.extensions.clone();
        let fingerprint = fingerprint(&plan, &g.trees, &probed);
        if may_skip && unchanged(&plan, &probed, class, fingerprint) {
            self.sink().event(&Event::Message(
                Level::Info,
                self.compat.refresh_skipped_message().into(),
            ));
            return Ok(report);
        }
        say_using(&mut using_said);

        // A selective merge/unmerge keeps the ephemeral upper layers; a plain refresh (as
        // with systemd) starts from an empty one.
        let ephemeral_reuse: Vec<Option<String>> = probed
            .hierarchies
            .iter()
            .map(|hp| {
                if filter.is_none() || !mode.is_ephemeral() {
                    return None;
                }
                let c = hp.current.as_ref()?;
                let n = c.note.as_ref()?;
                if n.mutable.is_ephemeral() {
                    n.ephemeral.clone()
                } else {
                    None
                }
            })
            .collect();
        // The intent record, before the first effect.
        let mut journal = Journal::with_intent(self.begin_intent(
            lock,
            if refresh { "refresh" } else { "merge" },
            &plan,
            &probed,
            &ephemeral_reuse,
        ));
        let inputs = BuildInputs {
            root: &self.root,
            probed: &probed,
            trees: &g.trees,
            faults: &self.faults,
            fingerprint: Some(fingerprint),
            ephemeral_reuse,
            kernel: self.kernel(),
        };
        let built = match exec::build(&plan, &inputs, &mut journal) {
            Ok(b) => b,
            Err(e) => {
                journal.rollback(&self.root);
                return Err(e);
            }
        };
        phase("building the overlays", t2);
        let t3 = std::time::Instant::now();
        let mut probed = probed;
        let targets: Vec<String> = built.iter().map(|b| b.plan.target.clone()).collect();
        let merged_hierarchies: Vec<String> =
            built.iter().map(|b| b.plan.hierarchy.to_string()).collect();
        // systemd's refresh unmerges every merged hierarchy, then merges, and says so: the
        // same lines here, first, though each merge is replaced at once, without the gap.
        for (i, hp) in probed.hierarchies.iter().enumerate() {
            if hp.current.is_some() {
                let path = self.root.display(self.hierarchies[i].relative());
                self.sink().event(&Event::Unmerged(path));
            }
        }
        let (replaced, hidden_submounts) = match exec::publish(
            &self.root,
            built,
            &mut probed,
            &mut journal,
            &self.faults,
            self.sink(),
            class,
            self.kernel(),
        ) {
            Ok(r) => r,
            Err(e) => {
                journal.rollback(&self.root);
                return Err(e);
            }
        };
        // Every new overlay is in place: from here on, a kill is completed, not undone.
        journal.intent.commit();
        let intent = journal.commit();
        report.hierarchies = merged_hierarchies;
        report.targets = targets;
        phase("attaching", t3);
        exec::finish_replace(&self.root, replaced, hidden_submounts, self.sink());
        // Old merges on hierarchies that get no new overlay (publish took the others).
        for (i, hp) in probed.hierarchies.iter_mut().enumerate() {
            let Some(c) = hp.current.take() else {
                continue;
            };
            let h = &self.hierarchies[i];
            drop(c);
            if exec::unmerge_hierarchy(
                &self.root,
                class,
                h.relative(),
                &self.faults,
                &SaidUnmerged(self.sink()),
                self.kernel(),
            )? > 0
            {
                report.unmerged.push(h.to_string());
            }
        }
        intent.finish();
        Ok(report)
    }

    /// systemd's steps before its overlay mount fails on a routing dir that is a symlink to
    /// a non-directory in `auto` mode: the work dir beside the target (0700) and the
    /// hierarchy's mode on the target. Both stay behind, as with systemd; inside the root.
    fn auto_link_to_non_dir(&self, target_rel: &str, mode: u32, workdir_rel: &str) {
        let _ = self.root.mkdir_p_exact(workdir_rel, 0o755, 0o700);
        // Looked at O_PATH (a FIFO is never opened), changed through its /proc link.
        if let Ok(fd) = self
            .root
            .open_in(target_rel, OFlags::PATH | OFlags::NOFOLLOW)
        {
            if smallfile_is_regular(&fd) {
                let p = crate::root::proc_fd_path(rustix::fd::AsFd::as_fd(&fd));
                let _ = rustix::fs::chmod(p.as_str(), rustix::fs::Mode::from_raw_mode(mode));
            }
        }
    }

    /// Names merged now (from the meta dirs), and the mode recorded by libsysext, if any.
    fn current_merge(&self) -> Result<(Vec<String>, Option<MutableMode>)> {
        let mut names: Vec<String> = Vec::new();
        let mut mode = None;
        for st in self.status()? {
            if let Some(e) = st.extensions {
                for n in e {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                if mode.is_none() {
                    mode = st.mutable;
                }
            }
        }
        Ok((names, mode))
    }

    /// Add the named extensions to the current merge, keeping the others, the mutable mode
    /// (unless one was given explicitly) and the upper layers; done as a gap-free refresh.
    /// Without a current merge, merges just these.
    pub fn merge_names(&self, names: &[String]) -> Result<Report> {
        self.require_privilege()?;
        let lock = self.lock()?;
        self.recover(&lock);
        let (mut set, cur_mode) = self.current_merge()?;
        for n in names {
            if !set.contains(n) {
                set.push(n.clone());
            }
        }
        let mode = self.opts.mutable.or(cur_mode).unwrap_or(self.mode);
        self.merge_locked(&lock, true, Some(&set), names, mode)
    }

    /// Remove the named extensions from the current merge, keeping the others (a gap-free
    /// refresh with a smaller set); removing the last one unmerges.
    pub fn unmerge_names(&self, names: &[String]) -> Result<Report> {
        self.require_privilege()?;
        let lock = self.lock()?;
        self.recover(&lock);
        let (set, cur_mode) = self.current_merge()?;
        for n in names {
            if !set.contains(n) {
                return Err(Error::NotMerged { name: n.clone() });
            }
        }
        let rest: Vec<String> = set.into_iter().filter(|n| !names.contains(n)).collect();
        if rest.is_empty() {
            return self.unmerge_locked(&lock);
        }
        let mode = self.opts.mutable.or(cur_mode).unwrap_or(self.mode);
        self.merge_locked(&lock, true, Some(&rest), &[], mode)
    }

    /// State of each configured hierarchy that exists (`status`), sorted by path.
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
    /// for h in ctx.status()? {
    ///     // Nothing is merged in this fresh root: /opt and /usr, both unmerged.
    ///     assert!(h.extensions.is_none() && h.mutable.is_none());
    /// }
    /// assert_eq!(ctx.status()?.len(), 2);
    /// # std::fs::remove_dir_all(&root)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self) -> Result<Vec<HierarchyStatus>> {
        let class = self.opts.class;
        let mut hs: Vec<&Hierarchy> = self.hierarchies.iter().collect();
        hs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut out = Vec::new();
        let mut first_err = None;
        let interrupted = self.interrupted();
        for h in hs {
            let r = match self
                .root
                .resolve(h.relative(), OFlags::PATH | OFlags::DIRECTORY)
            {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    first_err.get_or_insert(crate::root::resolve_err(&self.root, h.relative(), e));
                    continue;
                }
            };
            match state::merged_dev_at(r.fd.as_fd(), &r.path, class) {
                Ok(Some(dev)) => {
                    let m = state::read_meta(r.fd.as_fd(), &r.path, class, dev)?;
                    let note = state::read_note(r.fd.as_fd(), class);
                    out.push(HierarchyStatus {
                        hierarchy: h.to_string(),
                        extensions: Some(m.extensions),
                        since_usec: probe::mtime_usec(r.fd.as_fd()),
                        mutable: note.as_ref().map(|n| n.mutable),
                        upper: note.as_ref().map(|n| n.upper),
                        upper_dir: note.and_then(|n| n.upper_dir),
                        interrupted: interrupted.clone(),
                    });
                }
                Ok(None) => out.push(HierarchyStatus {
                    hierarchy: h.to_string(),
                    extensions: None,
                    since_usec: None,
                    mutable: None,
                    upper: None,
                    upper_dir: None,
                    interrupted: interrupted.clone(),
                }),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// FNV-1a, 64 bit, as a [`std::hash::Hasher`]: a hash that is the same in every process
/// and build, for fingerprints stored in the meta dir.
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A fingerprint of what a merge consists of: the plan (layers, upper, work dir, flags,
/// mode) and the identity of every image (device, inode, mtime and ctime of the image
/// file or directory as discovered) and of every host hierarchy.
fn fingerprint(plan: &Plan, trees: &[ImageTree], probed: &probe::Probed) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    plan.class.hash(&mut h);
    plan.mode.hash(&mut h);
    plan.extensions.hash(&mut h);
    for hp in &plan.hierarchies {
        // Whether a directory had to be created first does not change the result.
        hp.hierarchy.hash(&mut h);
        hp.index.hash(&mut h);
        hp.target.hash(&mut h);
        hp.lower.hash(&mut h);
        match &hp.upper {
            Some(plan::Upper::MutableDir { path, rel, .. }) => (1u8, path, rel).hash(&mut h),
            other => (0u8, other).hash(&mut h),
        }
        hp.work_dir.hash(&mut h);
        hp.top_mode.hash(&mut h);
        hp.flags.hash(&mut h);
        hp.fs_options.hash(&mut h);
        hp.meta.hash(&mut h);
    }
    for t in trees {
        (&t.name, &t.path, t.identity).hash(&mut h);
    }
    for hi in &probed.inputs.hierarchies {
        if let Some(d) = &hi.host {
            (&d.path, d.dev, d.ino).hash(&mut h);
        }
    }
    h.finish()
}

/// Whether the current merge already is what `plan` would build.
fn unchanged(plan: &Plan, probed: &probe::Probed, class: ImageClass, fp: u64) -> bool {
    for (i, hp) in probed.hierarchies.iter().enumerate() {
        // Stale merges hidden below the top are never kept.
        if matches!(&hp.host, Ok(Some(hh)) if hh.stacked > 1) {
            return false;
        }
        let planned = plan.hierarchies.iter().any(|h| h.index == i);
        match (&hp.current, planned) {
            (None, false) => {}
            (Some(c), true) => match state::read_note(c.fd.as_fd(), class) {
                Some(n) if n.fingerprint == Some(fp) => {}
                _ => return false,
            },
            _ => return false,
        }
    }
    !plan.hierarchies.is_empty()
}

/// Whether an open file is a regular file (never chmod anything else through a link).
fn smallfile_is_regular(fd: &rustix::fd::OwnedFd) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false)
}

/// A sink for the old merges a refresh takes off after publishing: their "Unmerged" lines
/// were said before (as systemd says them, ahead of the merge), so they are not said twice.
struct SaidUnmerged<'a>(&'a dyn EventSink);

impl EventSink for SaidUnmerged<'_> {
    fn event(&self, e: &Event) {
        if !matches!(e, Event::Unmerged(_)) {
            self.0.event(e)
        }
    }

    fn enabled(&self, level: Level) -> bool {
        self.0.enabled(level)
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
