//! Discovery and the verdict on each image: `list`, and the images a merge takes.

use super::*;

/// An image opened for its verdict ([`Context::verdict`]). Short-lived, one per image:
/// boxing the tree would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Opened {
    /// A block device below an explicit root, not opened: why it is refused.
    Refused(String),
    /// Its tree (mounted, for image files) and release data.
    Read(ImageTree, ReleaseInfo),
}

impl Context {
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
    pub(super) fn examine(
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
    pub(super) fn refused_block_device(&self, img: &DiscoveredImage) -> Option<String> {
        (img.kind == ImageKind::Block && !self.block_devices_allowed()).then(|| {
            format!(
                "is a block device below the root '{}': its data may lie outside the root, so block \
                 devices there are used only when allowed (allow_block_devices, --allow-block-devices)",
                self.root.display_root()
            )
        })
    }

    /// Whether block device nodes in the search dirs may be used as images.
    pub(super) fn block_devices_allowed(&self) -> bool {
        // `--root=/` is the host's own root too.
        self.root.prefix().is_empty() || self.opts.allow_block_devices
    }

    /// An image opened for its verdict: a refused block device is not opened; an image
    /// that cannot be read (a bad image, forbidden content) is an error.
    pub(super) fn open_image(&self, img: &DiscoveredImage) -> Result<Opened> {
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
    pub(super) fn verdict(
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
    pub(super) fn host_from(&self, os: &ReleaseData) -> Host {
        let scope = if self.initrd() {
            Scope::Initrd
        } else {
            Scope::System
        };
        Host::from_os_release(os, self.opts.class, scope, crate::arch::native())
    }

    pub(super) fn host_release(&self) -> Result<ReleaseData> {
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
    pub(super) fn gather(
        &self,
        check_merged: bool,
        filter: Option<&[String]>,
        required: &[String],
    ) -> Result<Gathered> {
        let images = self.discover_selected(filter, required)?;
        let opened = self.open_images(images)?;
        let resolved = match check_merged {
            true => self.resolve_unmerged()?,
            false => Vec::new(),
        };
        let host = self.merge_host()?;
        let (judged, found) = self.judge(opened, &host, required)?;
        let mut g = Gathered {
            hierarchies: resolved,
            trees: Vec::new(),
            skipped: Vec::new(),
            file_names: Vec::new(),
            needs_reload: false,
            units: release::UnitRequests::default(),
            found,
        };
        self.accept(judged, &mut g);
        Ok(g)
    }

    /// The images discovered, only those named in `filter` if given; each of `required`
    /// must be among them.
    fn discover_selected(
        &self,
        filter: Option<&[String]>,
        required: &[String],
    ) -> Result<Vec<DiscoveredImage>> {
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
        Ok(images)
    }

    /// Every image opened for its verdict (its metadata read, image files mounted), before
    /// anything is merged; errors are fatal.
    fn open_images(&self, images: Vec<DiscoveredImage>) -> Result<Vec<(DiscoveredImage, Opened)>> {
        let mut opened = Vec::with_capacity(images.len());
        for img in images {
            let o = self.open_image(&img)?;
            opened.push((img, o));
        }
        Ok(opened)
    }

    /// Each configured hierarchy, resolved and checked to carry no merge yet.
    fn resolve_unmerged(&self) -> Result<Vec<Option<crate::root::Resolved>>> {
        let class = self.opts.class;
        let mut resolved = Vec::new();
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
        Ok(resolved)
    }

    /// The host a merge judges the extensions by: its os-release must name an `ID`.
    fn merge_host(&self) -> Result<Host> {
        let os = self.host_release()?;
        let id_ok = os.get("ID").map(|v| !v.is_empty()).unwrap_or(false);
        if !id_ok {
            return Err(Error::HostOsReleaseNoId {
                root: self.root.display_root().to_string(),
            });
        }
        Ok(self.host_from(&os))
    }

    /// The verdict on each opened image, refused block devices first, then the others in
    /// discovery order, and how many were read; a `required` image a merge would not use
    /// is an error.
    fn judge(
        &self,
        opened: Vec<(DiscoveredImage, Opened)>,
        host: &Host,
        required: &[String],
    ) -> Result<(Vec<Judged>, usize)> {
        // Refused block devices are reported first, then the others in discovery order.
        let (refused, read): (Vec<_>, Vec<_>) = opened
            .into_iter()
            .partition(|(_, o)| matches!(o, Opened::Refused(_)));
        let found = read.len();
        let judged: Vec<_> = refused
            .into_iter()
            .chain(read)
            .map(|(img, opened)| {
                let (state, reason) = self.verdict(&img.name, &opened, Some(host));
                Judged {
                    img,
                    opened,
                    state,
                    reason,
                }
            })
            .collect();
        for j in &judged {
            if j.state != ImageState::WouldMerge && required.contains(&j.img.name) {
                return Err(Error::Incompatible {
                    name: j.img.name.clone(),
                    reason: j.reason.clone().unwrap_or_default(),
                });
            }
        }
        Ok((judged, found))
    }

    /// Take the extensions a merge uses into `g` (trees, file names, the reload and units
    /// they ask for); report the other images as skipped.
    fn accept(&self, judged: Vec<Judged>, g: &mut Gathered) {
        for Judged {
            img,
            opened,
            state,
            reason,
        } in judged
        {
            let Opened::Read(tree, rel) = opened else {
                // Refused: never used.
                let reason = reason.unwrap_or_default();
                self.skip(&mut g.skipped, img.name, reason);
                continue;
            };
            if state != ImageState::WouldMerge {
                self.skip(&mut g.skipped, img.name, reason.unwrap_or_default());
                continue;
            }
            g.needs_reload |= rel.data.asks_manager_reload();
            g.units.add(&rel.data);
            g.file_names.push(img.file_name().to_string());
            g.trees.push(tree);
        }
        g.file_names.sort();
        crate::version::sort_names(&mut g.file_names);
        g.needs_reload =
            g.needs_reload || (!g.units.is_empty() && self.compat.restarts_extension_units());
    }

    /// Report an image a merge does not use.
    pub(super) fn skip(&self, skipped: &mut Vec<Skipped>, name: String, reason: String) {
        self.sink().event(&Event::Skipped {
            name: name.clone(),
            reason: reason.clone(),
        });
        skipped.push(Skipped { name, reason });
    }

    /// Open an image's tree and read its release data.
    pub(super) fn read_metadata(&self, img: &DiscoveredImage) -> Result<(ImageTree, ReleaseInfo)> {
        match img.kind {
            ImageKind::Directory | ImageKind::Subvolume => self.read_dir_metadata(img),
            ImageKind::Raw | ImageKind::Block => self.read_image_file_metadata(img),
        }
    }

    /// A directory image's tree and release data; a sysext directory must carry no
    /// os-release file.
    fn read_dir_metadata(&self, img: &DiscoveredImage) -> Result<(ImageTree, ReleaseInfo)> {
        let class = self.opts.class;
        let fd = self
            .root
            .open_in(&img.rel, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| meta_err(img, e.to_string(), e.raw_os_error().unwrap_or(libc::EIO)))?;
        if class == ImageClass::Sysext && extension::has_forbidden_os_release(fd.as_fd()) {
            return Err(meta_err(img, "No medium found".into(), libc::ENOMEDIUM));
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

    /// An image file's (or block device's) tree, mounted, and its release data.
    fn read_image_file_metadata(&self, img: &DiscoveredImage) -> Result<(ImageTree, ReleaseInfo)> {
        let m = self.mount_image(img)?;
        let rel = self.image_release(img, m.tree.as_fd())?;
        Ok((
            ImageTree {
                name: img.name.clone(),
                path: img.path.clone(),
                fd: m.tree,
                is_mount: true,
                identity: img.identity,
                verity: m.verity,
            },
            rel,
        ))
    }

    /// Mount an image file (or block device) as its image policy allows, read-only and
    /// detached; what the mount notes becomes debug lines.
    fn mount_image(&self, img: &DiscoveredImage) -> Result<crate::image::mount::MountedImage> {
        let (policy, explicit) = self.policy_for(img);
        let step = |what: &str| self.faults.step(what);
        let m = crate::image::mount::open_image_with(
            self.root.fd(),
            &img.rel,
            self.opts.class,
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
        Ok(m)
    }

    /// The release data of a mounted image's `tree`: it must be an extension (a matching
    /// release file of either class) or an OS tree; an OS tree is then skipped (unless forced).
    fn image_release(
        &self,
        img: &DiscoveredImage,
        tree: rustix::fd::BorrowedFd<'_>,
    ) -> Result<ReleaseInfo> {
        let class = self.opts.class;
        // 257 checks an image picked from `NAME.raw.v/` against the picked file's
        // name (`NAME_3`), 262 against the image's.
        let check_name = match &img.picked_stem {
            Some(stem) if !self.compat.picked_image_release_named_after_base() => stem.as_str(),
            _ => img.name.as_str(),
        };
        let rel = extension::load_release(tree, class, check_name);
        let os_tree = extension::has_os_release(tree);
        // The other class's release file is looked for only when it decides.
        if !os_tree
            && rel.file.is_none()
            && extension::load_release(tree, class.other(), check_name)
                .file
                .is_none()
        {
            let why = rel.problem.clone().unwrap_or_default();
            return Err(meta_err(
                img,
                format!("No medium found ({why})"),
                libc::ENOMEDIUM,
            ));
        }
        let mut rel = rel;
        if os_tree {
            rel.os_tree = true;
        }
        Ok(rel)
    }

    /// The image policy for an image: the caller's, or systemd's defaults (stricter for
    /// `/.extra/` in the initrd).
    pub(super) fn policy_for(&self, img: &DiscoveredImage) -> (crate::image::ImagePolicy, bool) {
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
    pub(super) fn probe(
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
}

/// An opened image with its verdict, as a merge judged it.
struct Judged {
    img: DiscoveredImage,
    opened: Opened,
    state: ImageState,
    reason: Option<String>,
}

/// The error of an image whose metadata cannot be read: `reason`, with `errno`.
fn meta_err(img: &DiscoveredImage, reason: String, errno: i32) -> Error {
    Error::Metadata {
        image: img.name.clone(),
        reason,
        errno,
    }
}
