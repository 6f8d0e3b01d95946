//! The intent record: what a merge, refresh, selective merge or unmerge is about to do,
//! written before its first effect, so that the next call finds an interrupted operation
//! and completes or undoes it before doing its own work.
//!
//! The record is a file next to the lock (`/run/libsysext/<class>-<dev>-<ino>.intent`),
//! written under the lock: one line per fact, appended before the effect it describes
//! (tmpfs: a write is seen by every later reader as soon as it returns, also after a
//! SIGKILL; mounts do not outlive a reboot, so neither needs the record). The file is
//! opened, and the first lines written, with the first line that precedes an effect: a
//! call killed before its first effect leaves no record, and has nothing to repair. A call
//! that finishes, or fails and rolls back, empties it (the file stays: creating and
//! unlinking it cost more than the rest of the record on a small merge). A non-empty one
//! found under the lock belongs to a call that was killed.
//!
//! Lines (tab-separated):
//!
//! | line | meaning |
//! |---|---|
//! | `verb V` | `merge`, `refresh` or `unmerge` |
//! | `old R DEV` | hierarchy `R` (root-relative) carries a merge of ours on device `DEV` |
//! | `rmwork R` / `rmeph P` | the old merge's work dir / ephemeral dir, removed once done |
//! | `dir R 0/1` | a directory about to be made (1: a work dir, removed with its content) |
//! | `eph P` | an ephemeral dir about to be made |
//! | `new R DEV` | the new overlay for `R`, on device `DEV`, about to be attached |
//! | `sub R ID` | an original sub-mount (mount id `ID`) below `R`, hidden by the new overlay |
//! | `saved R P` | a copy of the old merge of `R`, attached at `P` before it is replaced |
//! | `commit` | every new overlay is in place: from here on, the operation is completed (written only when a line above names something to complete: `old`, `rmwork`, `rmeph`, `sub`, `saved`) |
//!
//! Recovery: an unmerge is always completed. A merge or refresh without `commit` is undone
//! (new overlays taken off — gap-free where the old merge is on top —, old ones put back
//! from `saved`, made directories removed); with `commit` it is completed (old overlays
//! above the new ones taken off, hidden sub-mounts detached, old work and ephemeral dirs
//! removed). Every step checks what it finds (device numbers, mount ids) and is idempotent,
//! so a recovery killed half-way is repaired by the next one.

use crate::class::ImageClass;
use crate::kernel::{Kernel, KernelFeatures};
use crate::root::{proc_fd_path, Root};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::mount::{MoveMountFlags, OpenTreeFlags, UnmountFlags};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// An intent record being written (or none, when `/run/libsysext` cannot hold one).
///
/// The file is opened at the first [`Intent::note`], which writes the first lines with it in
/// one call: a call that ends up changing nothing costs no write at all. Lines are appended
/// before the effect they describe, so the record is on disk before the first effect.
/// The file stays in place between calls: [`Intent::finish`] empties it, and an empty record
/// is no record ([`read`]). (Creating and unlinking a file on tmpfs cost about three times
/// what opening and truncating an existing one do: most of the record's price on a small
/// merge.)
#[derive(Debug, Default)]
pub struct Intent {
    path: Option<PathBuf>,
    lock: Option<PathBuf>,
    /// `verb V` and the lines given to [`Intent::begin`], written with the first note.
    first: String,
    /// The open file once the first note is written (`Some(None)`: opening failed, so
    /// there is no record this time).
    file: std::cell::OnceCell<Option<std::fs::File>>,
    /// Whether a line names something a recovery completes after `commit` (an old merge,
    /// a hidden sub-mount, a saved copy, an old work or ephemeral dir).
    completes: std::cell::Cell<bool>,
}

/// Whether `lines` name something that is completed after `commit`.
fn completes(lines: &str) -> bool {
    lines.lines().any(|l| {
        ["old\t", "rmwork\t", "rmeph\t", "sub\t", "saved\t"]
            .iter()
            .any(|p| l.starts_with(p))
    })
}

/// The record's path for the lock file `lock`.
pub fn path_for(lock: &Path) -> PathBuf {
    lock.with_extension("intent")
}

/// Format a device number.
pub fn dev(d: (u32, u32)) -> String {
    format!("{}:{}", d.0, d.1)
}

fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl Intent {
    /// No record (tests, or nowhere to write one).
    pub fn off() -> Intent {
        Intent::default()
    }

    /// Start a record for `verb` next to the lock `lock`, with the first lines `lines`
    /// (each ending in a newline). Nothing is written until the first [`Intent::note`]
    /// (or [`Intent::before_effect`]).
    pub fn begin(lock: Option<&Path>, verb: &str, lines: &str) -> Intent {
        let Some(lock) = lock else {
            return Intent::off();
        };
        let mut first = String::with_capacity(32 + lines.len());
        first.push_str("verb\t");
        first.push_str(verb);
        first.push('\n');
        first.push_str(lines);
        Intent {
            path: Some(path_for(lock)),
            lock: Some(lock.to_path_buf()),
            completes: std::cell::Cell::new(completes(lines)),
            first,
            file: std::cell::OnceCell::new(),
        }
    }

    /// Where a copy of the old merge of hierarchy number `index` is kept while it is
    /// replaced in a window (`None` without a record).
    pub fn saved_path(&self, index: usize) -> Option<PathBuf> {
        if !self.is_on() {
            return None;
        }
        Some(saved_path(self.lock.as_deref()?, index))
    }

    /// Whether a record is being written.
    pub fn is_on(&self) -> bool {
        self.path.is_some() && !matches!(self.file.get(), Some(None))
    }

    /// Append lines (each ending in a newline) before the effect they describe; the first
    /// call writes the record's first lines with them.
    pub fn note(&self, lines: &str) {
        let Some(path) = &self.path else {
            return;
        };
        if completes(lines) {
            self.completes.set(true);
        }
        match self.file.get() {
            Some(Some(f)) => {
                let _ = (&*f).write_all(lines.as_bytes());
            }
            Some(None) => {}
            None => {
                let mut text = String::with_capacity(self.first.len() + lines.len());
                text.push_str(&self.first);
                text.push_str(lines);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)
                    .ok()
                    .filter(|mut f| f.write_all(text.as_bytes()).is_ok());
                if f.is_none() {
                    let _ = std::fs::remove_file(path);
                }
                let _ = self.file.set(f);
            }
        }
    }

    /// Every new overlay is in place: from here on a kill is completed, not undone. Where
    /// nothing is left to complete (no old merge, hidden sub-mount or old dir), completing
    /// and undoing differ only in which consistent state the next call leaves: no line is
    /// written then, and a kill before [`Intent::finish`] is undone.
    pub fn commit(&self) {
        if self.completes.get() {
            self.note("commit\n");
        }
    }

    /// Write the record now (if not yet written): for an effect that has no line of its
    /// own, the first lines describe it.
    pub fn before_effect(&self) {
        self.note("");
    }

    /// The operation is done (or undone): empty the record (an empty record is none).
    pub fn finish(self) {
        if let (Some(path), Some(Some(f))) = (self.path, self.file.into_inner()) {
            if f.set_len(0).is_err() {
                drop(f);
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// A record found on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Record {
    /// The interrupted verb.
    pub verb: String,
    old: Vec<(String, (u32, u32))>,
    rmwork: Vec<String>,
    rmeph: Vec<String>,
    dirs: Vec<(String, bool)>,
    eph: Vec<String>,
    new: Vec<(String, (u32, u32))>,
    subs: Vec<(String, u64)>,
    saved: Vec<(String, String)>,
    /// Whether every new overlay was in place.
    pub committed: bool,
}

impl Record {
    /// Parse a record's text (unknown or torn lines are ignored).
    pub fn parse(text: &str) -> Record {
        let mut r = Record::default();
        // A line is complete once its newline is written (each is written whole, in one
        // call, but a record is never trusted further than its last newline).
        let whole = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => "",
        };
        for line in whole.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["verb", v] => r.verb = v.to_string(),
                ["old", rel, d] => {
                    if let Some(d) = parse_dev(d) {
                        r.old.push((rel.to_string(), d));
                    }
                }
                ["rmwork", rel] => r.rmwork.push(rel.to_string()),
                ["rmeph", p] => r.rmeph.push(p.to_string()),
                ["dir", rel, k] => r.dirs.push((rel.to_string(), *k == "1")),
                ["eph", p] => r.eph.push(p.to_string()),
                ["new", rel, d] => {
                    if let Some(d) = parse_dev(d) {
                        r.new.push((rel.to_string(), d));
                    }
                }
                ["sub", rel, id] => {
                    if let Ok(id) = id.parse() {
                        r.subs.push((rel.to_string(), id));
                    }
                }
                ["saved", rel, p] => r.saved.push((rel.to_string(), p.to_string())),
                ["commit"] => r.committed = true,
                _ => {}
            }
        }
        r
    }
}

/// The record left by an interrupted call, if any (`lock`: the lock file's path).
pub fn read(lock: &Path) -> Option<Record> {
    // Ours, in a directory only root can write to. Empty: the last call finished.
    let path = path_for(lock);
    if std::fs::metadata(&path).ok()?.len() == 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(Record::parse(&text))
}

/// What a recovery did, for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The interrupted verb.
    pub verb: String,
    /// Completed (`true`) or undone.
    pub completed: bool,
}

/// One of our overlays at a hierarchy, from the mount table: (device, mount id), top first.
fn stack(root: &Root, rel: &str) -> Vec<((u32, u32), u64)> {
    let rel = match root.resolve(rel, OFlags::PATH | OFlags::DIRECTORY) {
        Ok(Some(r)) => r.rel,
        _ => return Vec::new(),
    };
    let kpath = root.host_path(&rel).to_string_lossy().into_owned();
    let Ok(mounts) = crate::mountinfo::read_self() else {
        return Vec::new();
    };
    crate::mountinfo::stack_at(&mounts, &kpath)
        .into_iter()
        .map(|m| (m.dev, m.id))
        .collect()
}

/// The top of hierarchy `rel`, if it is a mount root on device `dev`.
fn top_on(root: &Root, rel: &str, dev: (u32, u32)) -> Option<OwnedFd> {
    let fd = root.open_in(rel, OFlags::PATH | OFlags::DIRECTORY).ok()?;
    let st = crate::state::dir_stat(fd.as_fd())?;
    (crate::state::is_mount_root(&st) && (st.stx_dev_major, st.stx_dev_minor) == dev).then_some(fd)
}

fn detach(fd: &OwnedFd) -> bool {
    rustix::mount::unmount(proc_fd_path(fd.as_fd()).as_str(), UnmountFlags::DETACH).is_ok()
}

fn clone_recursive(fd: &OwnedFd) -> Option<OwnedFd> {
    rustix::mount::open_tree(
        fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .ok()
}

fn attach_at(root: &Root, rel: &str, tree: &OwnedFd) -> bool {
    let Ok(t) = root.open_in(rel, OFlags::PATH | OFlags::DIRECTORY) else {
        return false;
    };
    rustix::mount::move_mount(
        tree,
        "",
        &t,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .is_ok()
}

/// Take a mount that is not the top of hierarchy `rel` off: the top (above it) is copied,
/// taken off, put back beneath it where the kernel can (no gap), and then it goes.
fn remove_below_top(root: &Root, rel: &str, top_dev: (u32, u32), gone: (u32, u32), kernel: Kernel) {
    let Some(top) = top_on(root, rel, top_dev) else {
        return;
    };
    let Some(copy) = clone_recursive(&top) else {
        return;
    };
    if !detach(&top) {
        return;
    }
    let Some(below) = top_on(root, rel, gone) else {
        // Not what was expected below: put the top back.
        attach_at(root, rel, &copy);
        return;
    };
    let beneath = kernel.has(KernelFeatures::MOVE_BENEATH)
        && rustix::mount::move_mount(
            &copy,
            "",
            &below,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH
                | MoveMountFlags::MOVE_MOUNT_BENEATH,
        )
        .is_ok();
    detach(&below);
    if !beneath {
        attach_at(root, rel, &copy);
    }
}

/// Drop a copy attached at `path` below the lock dir, and its directory.
pub fn drop_saved(path: &str) {
    if !path.starts_with(crate::lock::LOCK_DIR) || path.contains("/../") {
        return;
    }
    if let Ok(fd) = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        if crate::state::is_mount_point(fd.as_fd()) {
            detach(&fd);
        }
    }
    let _ = std::fs::remove_dir(path);
}

/// Detach the sub-mount originals (mount ids `subs`) that a completed first merge of `rel`
/// hides: the merge is copied, taken off (the originals show again and go), and the copy
/// put back. Readers see the bare hierarchy for these few calls; it only happens after a
/// kill in the short window between attaching a merge and detaching the originals.
fn detach_hidden(root: &Root, rel: &str, dev: (u32, u32), subs: &[u64]) {
    let Ok(mounts) = crate::mountinfo::read_self() else {
        return;
    };
    // Mount ids can be reused once freed: only a mount below the hierarchy counts.
    let Ok(Some(resolved)) = root.resolve(rel, OFlags::PATH | OFlags::DIRECTORY) else {
        return;
    };
    let prefix = format!("{}/", root.host_path(&resolved.rel).to_string_lossy());
    let alive: Vec<&crate::mountinfo::MountInfo> = mounts
        .iter()
        .filter(|m| subs.contains(&m.id) && m.mount_point.starts_with(&prefix))
        .collect();
    if alive.is_empty() {
        return;
    }
    let Some(top) = top_on(root, rel, dev) else {
        return;
    };
    // Only originals that the merge hides (their parent is what lies below the merge).
    let top_id = crate::state::mount_id(top.as_fd());
    if alive.iter().all(|m| Some(m.parent) == top_id) {
        return;
    }
    let Some(copy) = clone_recursive(&top) else {
        return;
    };
    if !detach(&top) {
        return;
    }
    for m in alive {
        if let Ok(fd) = rustix::fs::open(
            m.mount_point.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            if crate::state::mount_id(fd.as_fd()) == Some(m.id) {
                detach(&fd);
            }
        }
    }
    attach_at(root, rel, &copy);
}

/// Complete or undo the operation recorded next to `lock` (run under the lock, before a
/// verb does anything). `unmerge(rel)` takes every merge of ours off one hierarchy.
pub fn recover(
    root: &Root,
    class: ImageClass,
    lock: &Path,
    kernel: Kernel,
    unmerge: &mut dyn FnMut(&str),
) -> Option<Recovered> {
    let r = read(lock)?;
    let _ = class;
    let completed = r.verb == "unmerge" || r.committed;
    if r.verb == "unmerge" {
        for (rel, _) in &r.old {
            unmerge(rel);
        }
    } else if r.committed {
        for (rel, new) in &r.new {
            // Old overlays still above the new one go (each checked to be one of ours
            // recorded as old; the new one is below them).
            for _ in 0..16 {
                let st = stack(root, rel);
                let Some(pos) = st.iter().position(|(d, _)| d == new) else {
                    break;
                };
                if pos == 0 {
                    break;
                }
                let top = st[0].0;
                if !r.old.iter().any(|(orel, d)| orel == rel && *d == top) {
                    break;
                }
                match top_on(root, rel, top) {
                    Some(fd) if detach(&fd) => {}
                    _ => break,
                }
            }
            let subs: Vec<u64> = r
                .subs
                .iter()
                .filter(|(srel, _)| srel == rel)
                .map(|(_, id)| *id)
                .collect();
            if !subs.is_empty() {
                detach_hidden(root, rel, *new, &subs);
            }
        }
        // Old merges on hierarchies that got no new overlay.
        for (rel, _) in &r.old {
            if !r.new.iter().any(|(n, _)| n == rel) {
                unmerge(rel);
            }
        }
    } else {
        for (rel, new) in r.new.iter().rev() {
            let st = stack(root, rel);
            let Some(pos) = st.iter().position(|(d, _)| d == new) else {
                continue;
            };
            let saved = r.saved.iter().find(|(s, _)| s == rel).map(|(_, p)| p);
            if pos == 0 {
                let Some(top) = top_on(root, rel, *new) else {
                    continue;
                };
                match saved.and_then(|p| {
                    rustix::mount::open_tree(
                        rustix::fs::CWD,
                        p.as_str(),
                        OpenTreeFlags::OPEN_TREE_CLONE
                            | OpenTreeFlags::OPEN_TREE_CLOEXEC
                            | OpenTreeFlags::AT_RECURSIVE,
                    )
                    .ok()
                    .filter(|c| crate::state::is_mount_point(c.as_fd()))
                }) {
                    // The old merge was replaced in a window: it comes back from its copy.
                    Some(copy) => {
                        if detach(&top) {
                            attach_at(root, rel, &copy);
                        }
                    }
                    None => {
                        detach(&top);
                    }
                }
            } else {
                remove_below_top(root, rel, st[0].0, *new, kernel);
            }
        }
        for p in r.eph.iter().rev() {
            let _ = super::remove_ephemeral(p);
        }
        for (rel, recursive) in r.dirs.iter().rev() {
            if *recursive {
                let _ = super::remove_tree(root, rel);
            } else {
                let _ = super::rmdir(root, rel);
            }
        }
    }
    if completed {
        for w in &r.rmwork {
            let _ = super::remove_tree(root, w);
        }
        for p in &r.rmeph {
            let _ = super::remove_ephemeral(p);
        }
    }
    for (_, p) in &r.saved {
        drop_saved(p);
    }
    let _ = std::fs::remove_file(path_for(lock));
    Some(Recovered {
        verb: r.verb,
        completed,
    })
}

/// Where a copy of the old merge of hierarchy number `index` is kept while it is replaced.
pub fn saved_path(lock: &Path, index: usize) -> PathBuf {
    lock.with_extension(format!("saved-{index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_ignore_torn_lines() {
        let r = Record::parse(
            "verb\trefresh\nold\tusr\t0:55\nrmwork\tvar/lib/w\ndir\tvar/x\t1\neph\t/run/libsysext/ephemeral/a\nnew\tusr\t0:56\nsub\tusr\t77\nsaved\tusr\t/run/libsysext/x.saved-0\nnew\topt\t0:5",
        );
        assert_eq!(r.verb, "refresh");
        assert_eq!(r.old, vec![("usr".to_string(), (0, 55))]);
        assert_eq!(r.rmwork, vec!["var/lib/w".to_string()]);
        assert_eq!(r.dirs, vec![("var/x".to_string(), true)]);
        assert_eq!(r.eph.len(), 1);
        assert_eq!(r.subs, vec![("usr".to_string(), 77)]);
        assert_eq!(r.saved.len(), 1);
        // The last line has no newline: not trusted.
        assert_eq!(r.new, vec![("usr".to_string(), (0, 56))]);
        assert!(!r.committed);
        assert!(Record::parse("verb\tmerge\ncommit\n").committed);
        assert!(!Record::parse("verb\tmerge\ncommi").committed);
        assert_eq!(parse_dev("1:x"), None);
    }

    #[test]
    fn the_record_is_written_at_the_first_note_and_emptied_at_the_end() {
        let dir = std::env::temp_dir().join(format!("intent-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join("sysext-1-2.lock");
        let path = path_for(&lock);
        // Nothing happens: nothing is written.
        let i = Intent::begin(Some(&lock), "merge", "");
        assert!(i.is_on());
        i.finish();
        assert!(!path.exists());
        // The first note writes the first lines with it.
        let i = Intent::begin(Some(&lock), "merge", "");
        i.note("new\tusr\t0:44\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "verb\tmerge\nnew\tusr\t0:44\n");
        // Nothing to complete: no commit line (a kill now is undone).
        i.commit();
        let r = read(&lock).unwrap();
        assert_eq!((r.verb.as_str(), r.committed), ("merge", false));
        i.finish();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(read(&lock), None, "an empty record is none");
        // An old merge to take off: the commit line is written.
        let i = Intent::begin(Some(&lock), "refresh", "old\tusr\t0:40\n");
        i.note("new\tusr\t0:44\n");
        i.commit();
        assert!(read(&lock).unwrap().committed);
        i.finish();
        // An unmerge's lines are written before its first effect.
        let i = Intent::begin(Some(&lock), "unmerge", "old\tusr\t0:0\n");
        i.before_effect();
        assert_eq!(read(&lock).unwrap().verb, "unmerge");
        i.finish();
        assert_eq!(read(&lock), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
