//! Planning a merge: a pure function from what was found on disk ([`PlanInputs`]) to the
//! overlays to build ([`Plan`]). No I/O happens here, so every rule of the mutable modes
//! can be tested on hand-made inputs.

use crate::class::ImageClass;
use crate::error::{Error, Result};
use crate::hierarchy::Hierarchy;
use crate::level::Compat;
pub use crate::meta::MetaDir;
use crate::mutable::MutableMode;
use std::io;

/// The kernel's limit of lower layers per overlay.
pub const MAX_LOWER_LAYERS: usize = 500;

/// Facts about a directory, gathered by the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirInfo {
    /// Path as printed (root prefix included).
    pub path: String,
    /// Path relative to the root.
    pub rel: String,
    /// Permission bits (`& 0o7777` of `st_mode`).
    pub mode: u32,
    /// Device of the file system.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Whether it has no entries.
    pub empty: bool,
    /// Whether its file system (or mount) is read-only.
    pub read_only: bool,
    /// Device of its parent directory (`None` for the root itself).
    pub parent_dev: Option<u64>,
}

/// What the write-routing dir `var/lib/extensions.mutable/<h>` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutableDir {
    /// Nothing there.
    Missing,
    /// A symlink whose target does not exist under the root.
    Dangling,
    /// A directory (possibly through a symlink).
    Dir(DirInfo),
    /// Something that is not a directory, with its permission bits.
    NotDir {
        /// Permission bits.
        mode: u32,
    },
    /// A symlink to something that is not a directory (a regular file, say). systemd checks
    /// no mode on it; `auto` makes the work dir beside the target and gives the target the
    /// hierarchy's mode before the overlay mount fails (EINVAL), `yes` fails to create it.
    LinkToNonDir {
        /// Permission bits of the target.
        mode: u32,
        /// The target, root-relative.
        rel: String,
        /// The target as printed.
        path: String,
    },
}

/// What one extension holds for one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtLayer {
    /// Nothing at that path.
    Absent,
    /// An empty directory (contributes nothing).
    Empty,
    /// Not a directory: a fatal error when merging.
    NotDirectory,
    /// A non-empty directory; the path is for display.
    Content(String),
}

/// One accepted extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionInput {
    /// Image name.
    pub name: String,
    /// One entry per configured hierarchy, same order as [`PlanInputs::hierarchies`].
    pub layers: Vec<ExtLayer>,
}

/// One configured hierarchy as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyInput {
    /// The configured hierarchy.
    pub hierarchy: Hierarchy,
    /// Path of the hierarchy as printed (`/sbv/usr`), resolved if it exists.
    pub path: String,
    /// The host directory (underneath any merge of ours), if it exists.
    pub host: Option<DirInfo>,
    /// The routing dir as printed (`/sbv/var/lib/extensions.mutable/usr`).
    pub mutable_dir_path: String,
    /// What the routing dir resolves to.
    pub mutable_dir: MutableDir,
    /// For a routing dir that is a dangling symlink: the root-relative path it points at
    /// (resolved inside the root), which `--mutable=yes` creates where the level does so
    /// ([`Compat::creates_dangling_routing_target`]).
    pub mutable_dir_target: Option<String>,
}

/// Everything planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInputs {
    /// Image class.
    pub class: ImageClass,
    /// Mutable mode requested.
    pub mode: MutableMode,
    /// `--noexec=`: `None` keeps the class default.
    pub noexec: Option<bool>,
    /// The compatibility level (its switches decide where systemd releases differ).
    pub compat: Compat,
    /// Accepted extensions, in any order.
    pub extensions: Vec<ExtensionInput>,
    /// Hierarchies in configured order.
    pub hierarchies: Vec<HierarchyInput>,
}

/// A lower layer, top to bottom in [`HierarchyPlan::lower`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The synthetic meta layer carrying `.systemd-sysext`.
    Meta,
    /// The write-routing dir imported read-only (`import`, `ephemeral-import`).
    Import(String),
    /// An extension's hierarchy directory.
    Extension {
        /// Image name.
        name: String,
        /// Path (display).
        path: String,
    },
    /// The host hierarchy.
    Host(String),
}

/// The upper dir of a writable merge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upper {
    /// The routing dir (or its target); `create` when `--mutable=yes` must create it.
    MutableDir {
        /// Display path.
        path: String,
        /// Root-relative path.
        rel: String,
        /// Whether it is created first.
        create: bool,
    },
    /// The host hierarchy itself (routing dir is a symlink to it).
    Host {
        /// Display path.
        path: String,
        /// Root-relative path.
        rel: String,
    },
    /// A private tmpfs (ephemeral modes).
    Ephemeral,
}

/// Where writes to a merged hierarchy go, without the paths: what `status` reports
/// ([`HierarchyStatus::upper`](crate::HierarchyStatus::upper)) and [`Upper::kind`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UpperKind {
    /// Nowhere: the merge is read-only.
    #[default]
    None,
    /// The hierarchy's mutable directory (or the directory its symlink points to).
    MutableDir,
    /// The host hierarchy itself: the mutable directory is a symlink to it.
    Host,
    /// A private tmpfs, gone on unmerge (the ephemeral modes).
    Ephemeral,
}

impl UpperKind {
    /// Stable name (`none`, `mutable-dir`, `host`, `ephemeral`), as C and Python spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            UpperKind::None => "none",
            UpperKind::MutableDir => "mutable-dir",
            UpperKind::Host => "host",
            UpperKind::Ephemeral => "ephemeral",
        }
    }
}

impl std::fmt::Display for UpperKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Upper {
    /// Which kind of upper layer this is.
    pub fn kind(&self) -> UpperKind {
        match self {
            Upper::MutableDir { .. } => UpperKind::MutableDir,
            Upper::Host { .. } => UpperKind::Host,
            Upper::Ephemeral => UpperKind::Ephemeral,
        }
    }

    /// Short description for status: the dir, `ephemeral` or `host`.
    pub fn describe(&self) -> String {
        match self {
            Upper::MutableDir { path, .. } => path.clone(),
            Upper::Host { .. } => "host".into(),
            Upper::Ephemeral => "ephemeral".into(),
        }
    }
}

/// Where the overlay's work dir goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkDir {
    /// `.systemd-<h>-workdir` next to the upper dir, under the root.
    Beside {
        /// Display path.
        path: String,
        /// Root-relative path.
        rel: String,
    },
    /// On the private tmpfs.
    Ephemeral,
}

/// Mount flags of a merged hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MountFlags {
    /// `ro`.
    pub read_only: bool,
    /// `nodev` (always).
    pub nodev: bool,
    /// `nosuid`.
    pub nosuid: bool,
    /// `noexec`.
    pub noexec: bool,
    /// `noatime` (writable merges).
    pub noatime: bool,
    /// `strictatime` (only from the caller's overlay options).
    pub strictatime: bool,
    /// `nodiratime` (only from the caller's overlay options).
    pub nodiratime: bool,
}

/// The overlay for one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HierarchyPlan {
    /// The hierarchy.
    pub hierarchy: Hierarchy,
    /// Index in the configured hierarchies.
    pub index: usize,
    /// Where the overlay goes (display path).
    pub target: String,
    /// Whether the hierarchy directory must be created first.
    pub create_target: bool,
    /// Lower layers, top first.
    pub lower: Vec<Layer>,
    /// Upper dir, if writable.
    pub upper: Option<Upper>,
    /// Work dir, exactly when there is an upper dir.
    pub work_dir: Option<WorkDir>,
    /// Mode the top layer is given (the hierarchy's permission bits).
    pub top_mode: u32,
    /// Mode of the parent directories created above the upper and work dirs under the root
    /// ([`Compat::created_parent_mode`]).
    pub parent_mode: u32,
    /// Mount flags.
    pub flags: MountFlags,
    /// Overlayfs options after the layers (`redirect_dir=on`, …): the defaults of the merge's
    /// kind, or those the caller gave ([`crate::overlayopts`]).
    pub fs_options: Vec<crate::overlayopts::FsOption>,
    /// Contents of the meta dir (the `dev` is filled in after mounting).
    pub meta: MetaDir,
}

impl HierarchyPlan {
    /// Whether the merge is writable.
    pub fn writable(&self) -> bool {
        self.upper.is_some()
    }
}

/// The result of planning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    /// Image class.
    pub class: ImageClass,
    /// Mode requested.
    pub mode: MutableMode,
    /// All accepted extension names, ascending (systemd's version order).
    pub extensions: Vec<String>,
    /// Overlays to build, in configured order (hierarchies without extension content are
    /// absent, unless the level merges every hierarchy in the mode).
    pub hierarchies: Vec<HierarchyPlan>,
}

fn same(a: &DirInfo, b: &DirInfo) -> bool {
    a.path == b.path || (a.dev == b.dev && a.ino == b.ino)
}

fn overlay_einval(h: &HierarchyInput, what: &str) -> Error {
    Error::Mount {
        op: "mount overlay on",
        target: h.path.clone(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
        kernel_log: vec![format!(
            "{what} '{}' is not a directory",
            h.mutable_dir_path
        )],
    }
}

fn dirname(rel: &str) -> &str {
    match rel.rfind('/') {
        Some(i) => &rel[..i],
        None => "",
    }
}

fn join_display(prefix_of: &str, rel_parent: &str, name: &str, rel: &str) -> String {
    // prefix_of is a display path whose root-relative part is `rel`; strip it to get the prefix.
    let prefix = prefix_of
        .strip_suffix(rel)
        .unwrap_or("")
        .trim_end_matches('/');
    if rel_parent.is_empty() {
        format!("{prefix}/{name}")
    } else {
        format!("{prefix}/{rel_parent}/{name}")
    }
}

/// An upper dir under the root must be writable and on the same mount as its parent (where
/// the work dir goes).
fn check_upper(d: &DirInfo, path: &str, h: &HierarchyInput) -> Result<()> {
    if d.read_only {
        return Err(Error::UpperDirReadOnly {
            dir: path.to_string(),
        });
    }
    if d.parent_dev != Some(d.dev) {
        return Err(Error::WorkDirCrossDevice {
            upper: path.to_string(),
            hierarchy: h.hierarchy.to_string(),
        });
    }
    Ok(())
}

/// `.systemd-<h>-workdir` next to the upper dir `rel` (display path `path`).
fn work_dir_beside(path: &str, rel: &str, workdir_name: &str) -> WorkDir {
    let parent = dirname(rel);
    let wrel = if parent.is_empty() {
        workdir_name.to_string()
    } else {
        format!("{parent}/{workdir_name}")
    };
    WorkDir::Beside {
        path: join_display(path, parent, workdir_name, rel),
        rel: wrel,
    }
}

/// What systemd does in `auto` mode to a routing dir that is a symlink to a non-directory
/// before its overlay mount fails: the target gets the hierarchy's mode and a work dir is made
/// beside it. For the first hierarchy (in merge order) where that happens, if `err` is the
/// failure [`plan`] reported for it: (target rel, mode, work dir rel).
pub fn auto_link_to_non_dir_effects(
    inputs: &PlanInputs,
    err: &Error,
) -> Option<(String, u32, String)> {
    if inputs.mode != MutableMode::Auto {
        return None;
    }
    let Error::Mount { target, .. } = err else {
        return None;
    };
    let h = inputs.hierarchies.iter().find(|h| &h.path == target)?;
    let MutableDir::LinkToNonDir { rel, .. } = &h.mutable_dir else {
        return None;
    };
    let hier_mode = h.host.as_ref().map(|d| d.mode & 0o777).unwrap_or(0o755);
    let workdir_name = format!(".systemd-{}-workdir", h.hierarchy.as_component());
    let WorkDir::Beside { rel: wrel, .. } = work_dir_beside("", rel, &workdir_name) else {
        return None;
    };
    Some((rel.clone(), hier_mode, wrel))
}

/// Plan the overlays.
pub fn plan(inputs: &PlanInputs) -> Result<Plan> {
    // Version order, ties (`foo_1`, `foo1`) broken bytewise so the result does not depend on
    // discovery order.
    let mut sorted: Vec<&ExtensionInput> = inputs.extensions.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    crate::version::sort_by_version(&mut sorted, |e| e.name.as_str());
    let names: Vec<String> = sorted.iter().map(|e| e.name.clone()).collect();
    // Highest-sorted first: the ascending order, reversed.
    sorted.reverse();
    let mut out = Vec::new();
    for (idx, h) in inputs.hierarchies.iter().enumerate() {
        if let Some(hp) = plan_hierarchy(inputs, idx, h, &sorted, &names)? {
            out.push(hp);
        }
    }
    Ok(Plan {
        class: inputs.class,
        mode: inputs.mode,
        extensions: names,
        hierarchies: out,
    })
}

/// The overlay of one hierarchy; `None` when it is left unmerged.
fn plan_hierarchy(
    inputs: &PlanInputs,
    idx: usize,
    h: &HierarchyInput,
    sorted: &[&ExtensionInput],
    names: &[String],
) -> Result<Option<HierarchyPlan>> {
    let mode = inputs.mode;
    let ext_layers = extension_layers(sorted, idx, h)?;
    // Without extension content a hierarchy is merged only where the level merges every
    // hierarchy in the mutable modes.
    if ext_layers.is_empty()
        && !(inputs.compat.merges_every_hierarchy_when_mutable() && mode != MutableMode::Disabled)
    {
        return Ok(None);
    }
    let ext_layers_empty = ext_layers.is_empty();
    let hier_mode = h.host.as_ref().map(|d| d.mode & 0o777).unwrap_or(0o755);
    let workdir_name = format!(".systemd-{}-workdir", h.hierarchy.as_component());
    check_routing_dir_mode(mode, h, hier_mode)?;
    let import = import_layer(mode, h)?;
    let upper = upper_dir(inputs, h)?;
    let work_dir = work_dir_for(upper.as_ref(), h, &workdir_name)?;
    let upper_is_host = matches!(upper, Some(Upper::Host { .. }));

    // Lower layers, top to bottom.
    let mut lower = vec![Layer::Meta];
    if let Some(d) = &import {
        lower.push(Layer::Import(d.path.clone()));
    }
    lower.extend(ext_layers);
    if let Some(host) = &h.host {
        if !host.empty && !upper_is_host {
            lower.push(Layer::Host(host.path.clone()));
        }
    }
    // A hierarchy merged only because the level merges every hierarchy, whose overlay would
    // be the meta layer alone, read-only: systemd 262 tries to mount that and fails the
    // whole merge (overlayfs needs two lower layers without an upper one). It would show
    // nothing, so it is left unmerged instead (a deliberate difference).
    if ext_layers_empty && upper.is_none() && lower.len() == 1 {
        return Ok(None);
    }
    if lower.len() > MAX_LOWER_LAYERS {
        return Err(Error::TooManyLayers {
            hierarchy: h.hierarchy.to_string(),
            count: lower.len(),
            max: MAX_LOWER_LAYERS,
        });
    }

    let info = inputs.class.info();
    let writable = upper.is_some();
    let meta_work_dir = match &work_dir {
        Some(WorkDir::Beside { rel, .. }) => Some(rel.clone()),
        _ => None,
    };
    Ok(Some(HierarchyPlan {
        hierarchy: h.hierarchy.clone(),
        index: idx,
        target: h.path.clone(),
        create_target: h.host.is_none(),
        lower,
        upper,
        work_dir,
        top_mode: hier_mode,
        parent_mode: inputs.compat.created_parent_mode(),
        flags: MountFlags {
            read_only: !writable,
            nodev: true,
            nosuid: info.nosuid,
            noexec: inputs.noexec.unwrap_or(info.noexec),
            noatime: writable,
            strictatime: false,
            nodiratime: false,
        },
        fs_options: crate::overlayopts::OverlayOptions::effective(None, writable).fs,
        meta: MetaDir {
            extensions: names.to_vec(),
            dev: None,
            work_dir: meta_work_dir,
        },
    }))
}

/// The extensions' layers of hierarchy `idx`, highest-sorted first.
fn extension_layers(
    sorted: &[&ExtensionInput],
    idx: usize,
    h: &HierarchyInput,
) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for e in sorted {
        match e.layers.get(idx) {
            Some(ExtLayer::Content(p)) => layers.push(Layer::Extension {
                name: e.name.clone(),
                path: p.clone(),
            }),
            Some(ExtLayer::NotDirectory) => {
                return Err(Error::HierarchyNotDirectory {
                    hierarchy: format!("{}/{}", e.name, h.hierarchy.relative()),
                    image: e.name.clone(),
                })
            }
            _ => {}
        }
    }
    Ok(layers)
}

/// In `auto` and `yes`, a routing dir must have the hierarchy's mode.
fn check_routing_dir_mode(mode: MutableMode, h: &HierarchyInput, hier_mode: u32) -> Result<()> {
    if !matches!(mode, MutableMode::Auto | MutableMode::Enabled) {
        return Ok(());
    }
    let found = match &h.mutable_dir {
        MutableDir::Dir(d) => Some(d.mode & 0o777),
        MutableDir::NotDir { mode } => Some(mode & 0o777),
        _ => None,
    };
    match found {
        Some(m) if m != hier_mode => Err(Error::MutableDirMode {
            dir: h.mutable_dir_path.clone(),
            mode: m,
            expected: hier_mode,
        }),
        _ => Ok(()),
    }
}

/// Whether `d` is the hierarchy itself (the symlink trick).
fn is_host(h: &HierarchyInput, d: &DirInfo) -> bool {
    h.host.as_ref().map(|host| same(host, d)).unwrap_or(false)
}

/// The routing dir as an imported lower layer (`import`, `ephemeral-import`).
fn import_layer(mode: MutableMode, h: &HierarchyInput) -> Result<Option<DirInfo>> {
    if !mode.imports() {
        return Ok(None);
    }
    match &h.mutable_dir {
        MutableDir::Dir(d) if is_host(h, d) => Err(Error::MutableDirIsHierarchy {
            hierarchy: h.hierarchy.to_string(),
        }),
        MutableDir::Dir(d) => Ok(Some(d.clone())),
        MutableDir::NotDir { .. } | MutableDir::LinkToNonDir { .. } => {
            Err(overlay_einval(h, "lower dir"))
        }
        _ => Ok(None),
    }
}

/// The upper dir of the mode, and the faults of the routing dir that stop it.
fn upper_dir(inputs: &PlanInputs, h: &HierarchyInput) -> Result<Option<Upper>> {
    let mode = inputs.mode;
    // `yes` with a dangling routing symlink: at 262 its target is created inside the root.
    if let (MutableDir::Dangling, Some(rel)) = (&h.mutable_dir, &h.mutable_dir_target) {
        if mode == MutableMode::Enabled && inputs.compat.creates_dangling_routing_target() {
            let routing_rel = h.hierarchy.mutable_dir();
            return Ok(Some(Upper::MutableDir {
                path: join_display(&h.mutable_dir_path, "", rel, &routing_rel),
                rel: rel.clone(),
                create: true,
            }));
        }
    }
    Ok(match mode {
        MutableMode::Disabled | MutableMode::Import => None,
        MutableMode::Ephemeral | MutableMode::EphemeralImport => Some(Upper::Ephemeral),
        MutableMode::Auto | MutableMode::Enabled => match &h.mutable_dir {
            MutableDir::Dir(d) if is_host(h, d) => Some(Upper::Host {
                path: d.path.clone(),
                rel: d.rel.clone(),
            }),
            MutableDir::Dir(d) => Some(Upper::MutableDir {
                path: d.path.clone(),
                rel: d.rel.clone(),
                create: false,
            }),
            MutableDir::NotDir { .. } | MutableDir::LinkToNonDir { .. }
                if mode == MutableMode::Auto =>
            {
                return Err(overlay_einval(h, "upper dir"))
            }
            MutableDir::LinkToNonDir { .. }
                if mode == MutableMode::Enabled && inputs.compat.chases_routing_dir_on_create() =>
            {
                return Err(Error::MutableDirChase {
                    dir: h.mutable_dir_path.clone(),
                    source: io::Error::from_raw_os_error(libc::ENOTDIR),
                })
            }
            MutableDir::NotDir { .. } | MutableDir::LinkToNonDir { .. } | MutableDir::Dangling
                if mode == MutableMode::Enabled =>
            {
                return Err(Error::MutableDirCreate {
                    dir: h.mutable_dir_path.clone(),
                    source: io::Error::from_raw_os_error(libc::EEXIST),
                })
            }
            MutableDir::Missing if mode == MutableMode::Enabled => Some(Upper::MutableDir {
                path: h.mutable_dir_path.clone(),
                rel: h.hierarchy.mutable_dir(),
                create: true,
            }),
            _ => None,
        },
    })
}

/// Where the work dir goes, after checking that the upper dir is writable.
fn work_dir_for(
    upper: Option<&Upper>,
    h: &HierarchyInput,
    workdir_name: &str,
) -> Result<Option<WorkDir>> {
    Ok(match upper {
        None => None,
        Some(Upper::Ephemeral) => Some(WorkDir::Ephemeral),
        Some(Upper::MutableDir { path, rel, create }) => {
            if !create {
                if let MutableDir::Dir(d) = &h.mutable_dir {
                    check_upper(d, path, h)?;
                }
            }
            Some(work_dir_beside(path, rel, workdir_name))
        }
        Some(Upper::Host { path, rel }) => {
            // The host is the upper dir only where there is one (upper_dir).
            if let Some(host) = &h.host {
                check_upper(host, path, h)?;
            }
            Some(work_dir_beside(path, rel, workdir_name))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str, rel: &str, mode: u32, dev: u64, ino: u64) -> DirInfo {
        DirInfo {
            path: path.into(),
            rel: rel.into(),
            mode,
            dev,
            ino,
            empty: false,
            read_only: false,
            parent_dev: Some(dev),
        }
    }

    fn inputs(mode: MutableMode, routing: MutableDir) -> PlanInputs {
        PlanInputs {
            class: ImageClass::Sysext,
            mode,
            noexec: None,
            compat: Compat::V257,
            extensions: vec![
                ExtensionInput {
                    name: "foo".into(),
                    layers: vec![ExtLayer::Content("E/foo/usr".into()), ExtLayer::Absent],
                },
                ExtensionInput {
                    name: "bar".into(),
                    layers: vec![ExtLayer::Content("E/bar/usr".into()), ExtLayer::Empty],
                },
            ],
            hierarchies: vec![
                HierarchyInput {
                    hierarchy: Hierarchy::new("/usr").unwrap(),
                    path: "/R/usr".into(),
                    host: Some(dir("/R/usr", "usr", 0o755, 1, 10)),
                    mutable_dir_path: "/R/var/lib/extensions.mutable/usr".into(),
                    mutable_dir: routing,
                    mutable_dir_target: None,
                },
                HierarchyInput {
                    hierarchy: Hierarchy::new("/opt").unwrap(),
                    path: "/R/opt".into(),
                    host: Some(dir("/R/opt", "opt", 0o755, 1, 11)),
                    mutable_dir_path: "/R/var/lib/extensions.mutable/opt".into(),
                    mutable_dir: MutableDir::Missing,
                    mutable_dir_target: None,
                },
            ],
        }
    }

    fn mutable_dir() -> MutableDir {
        MutableDir::Dir(dir(
            "/R/var/lib/extensions.mutable/usr",
            "var/lib/extensions.mutable/usr",
            0o755,
            1,
            20,
        ))
    }

    #[test]
    fn disabled_mode_stacks_extensions_read_only_over_the_host() {
        let p = plan(&inputs(MutableMode::Disabled, mutable_dir())).unwrap();
        assert_eq!(p.extensions, vec!["bar", "foo"]);
        assert_eq!(p.hierarchies.len(), 1, "/opt has no content");
        let h = &p.hierarchies[0];
        assert_eq!(
            h.lower,
            vec![
                Layer::Meta,
                Layer::Extension {
                    name: "foo".into(),
                    path: "E/foo/usr".into()
                },
                Layer::Extension {
                    name: "bar".into(),
                    path: "E/bar/usr".into()
                },
                Layer::Host("/R/usr".into())
            ]
        );
        assert!(h.upper.is_none() && h.work_dir.is_none());
        assert!(h.flags.read_only && h.flags.nodev && !h.flags.nosuid && !h.flags.noexec);
        assert_eq!(h.meta.work_dir, None);
    }

    #[test]
    fn auto_uses_routing_dir() {
        let p = plan(&inputs(MutableMode::Auto, mutable_dir())).unwrap();
        let h = &p.hierarchies[0];
        assert!(matches!(
            &h.upper,
            Some(Upper::MutableDir { create: false, .. })
        ));
        assert_eq!(
            h.work_dir,
            Some(WorkDir::Beside {
                path: "/R/var/lib/extensions.mutable/.systemd-usr-workdir".into(),
                rel: "var/lib/extensions.mutable/.systemd-usr-workdir".into()
            })
        );
        assert_eq!(
            h.meta.work_dir.as_deref(),
            Some("var/lib/extensions.mutable/.systemd-usr-workdir")
        );
        assert!(!h.flags.read_only && h.flags.noatime);
        let p = plan(&inputs(MutableMode::Auto, MutableDir::Missing)).unwrap();
        assert!(p.hierarchies[0].upper.is_none());
    }

    #[test]
    fn yes_creates_a_missing_routing_dir_and_refuses_dangling() {
        let p = plan(&inputs(MutableMode::Enabled, MutableDir::Missing)).unwrap();
        assert!(matches!(
            &p.hierarchies[0].upper,
            Some(Upper::MutableDir { create: true, .. })
        ));
        let e = plan(&inputs(MutableMode::Enabled, MutableDir::Dangling)).unwrap_err();
        assert_eq!(e.errno(), libc::EEXIST);
    }

    #[test]
    fn auto_and_yes_refuse_a_routing_dir_not_of_mode_0755() {
        let mut d = dir(
            "/R/var/lib/extensions.mutable/usr",
            "var/lib/extensions.mutable/usr",
            0o700,
            1,
            20,
        );
        d.mode = 0o700;
        for m in [MutableMode::Auto, MutableMode::Enabled] {
            let e = plan(&inputs(m, MutableDir::Dir(d.clone()))).unwrap_err();
            assert_eq!(e.to_string(), "Mutable directory '/R/var/lib/extensions.mutable/usr' has mode 0700, ought to have mode 0755");
        }
        for m in [
            MutableMode::Import,
            MutableMode::EphemeralImport,
            MutableMode::Ephemeral,
            MutableMode::Disabled,
        ] {
            assert!(plan(&inputs(m, MutableDir::Dir(d.clone()))).is_ok(), "{m}");
        }
    }

    #[test]
    fn routing_symlink_to_the_hierarchy_makes_host_the_upper() {
        let selfdir = MutableDir::Dir(dir("/R/usr", "usr", 0o755, 1, 10));
        for m in [MutableMode::Auto, MutableMode::Enabled] {
            let p = plan(&inputs(m, selfdir.clone())).unwrap();
            let h = &p.hierarchies[0];
            assert!(matches!(&h.upper, Some(Upper::Host { .. })));
            assert!(!h.lower.iter().any(|l| matches!(l, Layer::Host(_))));
            assert_eq!(h.meta.work_dir.as_deref(), Some(".systemd-usr-workdir"));
        }
        for m in [MutableMode::Import, MutableMode::EphemeralImport] {
            assert_eq!(
                plan(&inputs(m, selfdir.clone())).unwrap_err().errno(),
                libc::ELOOP
            );
        }
        let p = plan(&inputs(MutableMode::Ephemeral, selfdir)).unwrap();
        assert!(p.hierarchies[0]
            .lower
            .iter()
            .any(|l| matches!(l, Layer::Host(_))));
    }

    #[test]
    fn import_layer_below_meta() {
        for m in [MutableMode::Import, MutableMode::EphemeralImport] {
            let p = plan(&inputs(m, mutable_dir())).unwrap();
            let h = &p.hierarchies[0];
            assert_eq!(
                h.lower[1],
                Layer::Import("/R/var/lib/extensions.mutable/usr".into())
            );
            assert_eq!(h.upper.is_some(), m == MutableMode::EphemeralImport);
            assert_eq!(h.meta.work_dir, None);
        }
    }

    #[test]
    fn upper_dir_on_a_read_only_or_other_device_is_refused() {
        let mut d = dir(
            "/R/var/lib/extensions.mutable/usr",
            "var/lib/extensions.mutable/usr",
            0o755,
            1,
            20,
        );
        d.read_only = true;
        assert_eq!(
            plan(&inputs(MutableMode::Auto, MutableDir::Dir(d.clone())))
                .unwrap_err()
                .errno(),
            libc::EROFS
        );
        d.read_only = false;
        d.parent_dev = Some(2);
        assert_eq!(
            plan(&inputs(MutableMode::Auto, MutableDir::Dir(d)))
                .unwrap_err()
                .errno(),
            libc::EXDEV
        );
    }

    #[test]
    fn empty_host_is_not_a_layer() {
        let mut i = inputs(MutableMode::Disabled, MutableDir::Missing);
        i.hierarchies[0].host.as_mut().unwrap().empty = true;
        let p = plan(&i).unwrap();
        assert!(!p.hierarchies[0]
            .lower
            .iter()
            .any(|l| matches!(l, Layer::Host(_))));
        i.hierarchies[0].host = None;
        let p = plan(&i).unwrap();
        assert!(p.hierarchies[0].create_target);
        assert_eq!(p.hierarchies[0].top_mode, 0o755);
    }

    #[test]
    fn confext_overlays_are_nosuid_noexec_nodev_unless_told() {
        let mut i = inputs(MutableMode::Disabled, MutableDir::Missing);
        i.class = ImageClass::Confext;
        let p = plan(&i).unwrap();
        let f = p.hierarchies[0].flags;
        assert!(f.nosuid && f.noexec && f.nodev);
        i.noexec = Some(false);
        assert!(!plan(&i).unwrap().hierarchies[0].flags.noexec);
    }

    #[test]
    fn not_a_directory_is_fatal() {
        let mut i = inputs(MutableMode::Disabled, MutableDir::Missing);
        i.extensions[0].layers[1] = ExtLayer::NotDirectory;
        assert_eq!(plan(&i).unwrap_err().errno(), libc::ENOTDIR);
    }
}
