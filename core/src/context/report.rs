//! What the verbs return: [`Report`], [`Extension`], [`PlanReport`], [`Skipped`].

use super::*;

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
