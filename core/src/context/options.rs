//! [`Options`]: the settings of a [`Context`].

use super::*;

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
    /// Taking one away forces its fallback, as on an older kernel (see [`KernelFeatures`](crate::KernelFeatures)).
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

/// All kernel features less those named in `LIBSYSEXT_KERNEL_DISABLE`.
fn kernel_features_from_env() -> KernelFeatures {
    features_less(std::env::var("LIBSYSEXT_KERNEL_DISABLE").ok().as_deref())
}

/// All kernel features less those in the comma-separated list `disable` (unknown names are
/// ignored).
fn features_less(disable: Option<&str>) -> KernelFeatures {
    let off = disable
        .map(|v| {
            v.split(',')
                .filter_map(|w| KernelFeatures::parse_list(w).ok())
                .fold(KernelFeatures::empty(), |a, b| a | b)
        })
        .unwrap_or(KernelFeatures::empty());
    KernelFeatures::all() - off
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_kernel_features_are_left_out() {
        let all = KernelFeatures::all();
        assert_eq!(features_less(None), all);
        assert_eq!(features_less(Some("")), all);
        assert_eq!(features_less(Some("all")), KernelFeatures::empty());
        // Names add up: one named again, or beside "all", still counts once.
        assert_eq!(
            features_less(Some("all,detached-layers")),
            KernelFeatures::empty()
        );
        let two = KernelFeatures::DETACHED_LAYERS | KernelFeatures::MOUNT_ON_DETACHED;
        assert_eq!(
            features_less(Some("detached-layers,mount-on-detached")),
            all - two
        );
        // An unknown name does not void the others.
        assert_eq!(
            features_less(Some("detached-layers,no-such-feature,mount-on-detached")),
            all - two
        );
    }

    #[test]
    fn options_debug_names_their_fields() {
        let mut o = Options::new(ImageClass::Confext);
        o.root = Some("/sysroot".into());
        let text = format!("{o:?}");
        for field in [
            "Options {",
            "class: Confext",
            "root: Some(\"/sysroot\")",
            "overlay_options: None",
        ] {
            assert!(text.contains(field), "{text}");
        }
        // The event sink is left out.
        assert!(!text.contains("sink") && text.ends_with(", .. }"), "{text}");
    }
}
