//! The intent record: what a merge, refresh, selective merge or unmerge is about to do,
//! written before its first effect, so that the next call finds an interrupted operation
//! and completes or undoes it before doing its own work.
//!
//! The record is the content of the lock file (`/run/libsysext/<class>-<dev>-<ino>.lock`),
//! written through the lock's open file while it is held: one line per fact, appended
//! before the effect it describes (tmpfs: a write is seen by every later reader as soon as
//! it returns, also after a SIGKILL; mounts do not outlive a reboot, so neither needs the
//! record). The first lines are written with the first line that precedes an effect: a
//! call killed before its first effect leaves no record, and has nothing to repair. A call
//! that finishes, or fails and rolls back, empties the file (it is never removed: every
//! caller must lock the same file). A non-empty lock file found under the lock holds the
//! record of a call that was killed.
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
use std::path::{Path, PathBuf};

/// An intent record being written (or none, when `/run/libsysext` cannot hold one).
///
/// The record is the content of the lock file, written through the lock's own open file
/// (held for the whole call), so it costs no open, close, create or unlink: a write with
/// the first line that precedes an effect (with the first lines, in one call; a call that
/// changes nothing writes nothing), one per later line, and a truncation at the end. An
/// empty lock file is no record. (A record file of its own, created and unlinked per call,
/// cost a one-directory merge 17 % of its time; this costs about 5 %: see
/// `tests/crash/README.md`.)
#[derive(Debug, Default)]
pub struct Intent {
    /// The lock file, open for writing, and its path.
    file: Option<(std::sync::Arc<OwnedFd>, PathBuf)>,
    /// `verb V` and the lines given to [`Intent::begin`], written with the first note.
    first: String,
    /// Bytes written so far (lines go at this offset: the fd is shared with the lock).
    written: std::cell::Cell<u64>,
    /// A write failed: the record is off for the rest of the call.
    failed: std::cell::Cell<bool>,
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

/// Format a device number.
pub fn dev(d: (u32, u32)) -> String {
    format!("{}:{}", d.0, d.1)
}

fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Write all of `buf` at `offset` of `fd`.
fn pwrite_all(fd: &OwnedFd, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pwrite(fd, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Intent {
    /// No record (tests, or nowhere to write one).
    pub fn off() -> Intent {
        Intent::default()
    }

    /// Start a record for `verb` in the lock file of `lock` (held), with the first lines
    /// `lines` (each ending in a newline). Nothing is written until the first
    /// [`Intent::note`] (or [`Intent::before_effect`]).
    pub fn begin(lock: Option<&crate::lock::Lock>, verb: &str, lines: &str) -> Intent {
        let Some((lock, fd)) = lock.and_then(|l| Some((l, l.record_fd()?))) else {
            return Intent::off();
        };
        let mut first = String::with_capacity(32 + lines.len());
        first.push_str("verb\t");
        first.push_str(verb);
        first.push('\n');
        first.push_str(lines);
        Intent {
            file: Some((fd, lock.path.clone())),
            completes: std::cell::Cell::new(completes(lines)),
            first,
            ..Intent::default()
        }
    }

    /// Where a copy of the old merge of hierarchy number `index` is kept while it is
    /// replaced in a window (`None` without a record).
    pub fn saved_path(&self, index: usize) -> Option<PathBuf> {
        let (_, lock) = self.file.as_ref().filter(|_| self.is_on())?;
        Some(saved_path(lock, index))
    }

    /// Whether a record is being written.
    pub fn is_on(&self) -> bool {
        self.file.is_some() && !self.failed.get()
    }

    /// Append lines (each ending in a newline) before the effect they describe; the first
    /// call writes the record's first lines with them.
    pub fn note(&self, lines: &str) {
        let Some((fd, _)) = &self.file else {
            return;
        };
        if self.failed.get() {
            return;
        }
        if completes(lines) {
            self.completes.set(true);
        }
        let at = self.written.get();
        let text = if at == 0 {
            let mut t = String::with_capacity(self.first.len() + lines.len());
            t.push_str(&self.first);
            t.push_str(lines);
            std::borrow::Cow::Owned(t)
        } else {
            std::borrow::Cow::Borrowed(lines)
        };
        if pwrite_all(fd, text.as_bytes(), at).is_err() {
            // A torn record is never trusted further than its last whole line; without a
            // whole record there is none.
            self.failed.set(true);
            blank(fd, at + text.len() as u64);
            return;
        }
        self.written.set(at + text.len() as u64);
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

    /// The operation is done (or undone): the record is blanked (see [`blank`]).
    pub fn finish(self) {
        if let Some((fd, _)) = &self.file {
            blank(fd, self.written.get());
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

/// Blank the first `len` bytes of a record: overwritten with newlines, so that what is left
/// parses as no record (empty lines, no `verb`). The file keeps its size (the longest record
/// so far): shrinking and growing it again would free and allocate a page of tmpfs on every
/// call, which costs more than the rest of the record. A later, shorter record written over
/// it leaves blank lines after its own.
fn blank(fd: &OwnedFd, len: u64) {
    if len > 0 {
        let nl = vec![b'\n'; usize::try_from(len).unwrap_or(usize::MAX)];
        if pwrite_all(fd, &nl, 0).is_err() {
            let _ = rustix::fs::ftruncate(fd, 0);
        }
    }
}

/// A record's text: `None` when it holds none (empty or blanked).
fn parse_text(text: &str) -> Option<Record> {
    let r = Record::parse(text);
    (!r.verb.is_empty()).then_some(r)
}

/// The record left by an interrupted call, if any (`lock`: the lock file's path, which
/// holds it). For `status`; a caller holding the lock reads it with `read_held`.
pub fn read(lock: &Path) -> Option<Record> {
    // Ours, in a directory only root can write to.
    parse_text(&std::fs::read_to_string(lock).ok()?)
}

/// The record in the lock file of the held `lock` and its length, read through the lock's
/// open file (one `pread(2)` when there is none).
fn read_held(lock: &crate::lock::Lock) -> Option<(Record, u64)> {
    let fd = lock.record_fd()?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0usize;
    loop {
        match rustix::io::pread(&*fd, &mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                // The common case: blank or empty, seen in one read.
                if len < buf.len() && buf[..len].iter().all(|&b| b == b'\n') {
                    return None;
                }
                if len == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    let r = parse_text(&String::from_utf8_lossy(&buf[..len]))?;
    Some((r, len as u64))
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
    let Some(copy) = super::publish::clone_merge(&top).ok() else {
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
    let Some(copy) = super::publish::clone_merge(&top).ok() else {
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
    held: &crate::lock::Lock,
    kernel: Kernel,
    unmerge: &mut dyn FnMut(&str),
) -> Option<Recovered> {
    let (r, len) = read_held(held)?;
    let _ = class;
    let completed = r.verb == "unmerge" || r.committed;
    if r.verb == "unmerge" {
        for (rel, _) in &r.old {
            unmerge(rel);
        }
    } else if r.committed {
        complete_merge(root, &r, unmerge);
    } else {
        undo_merge(root, &r, kernel);
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
    if let Some(fd) = held.record_fd() {
        blank(&fd, len);
    }
    Some(Recovered {
        verb: r.verb,
        completed,
    })
}

/// Complete a merge or refresh that was committed: the old overlays still above each new
/// one go, then the hidden originals of the sub-mounts it carries, and old merges on
/// hierarchies that got no new overlay.
fn complete_merge(root: &Root, r: &Record, unmerge: &mut dyn FnMut(&str)) {
    for (rel, new) in &r.new {
        detach_old_above(root, r, rel, *new);
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
    for (rel, _) in &r.old {
        if !r.new.iter().any(|(n, _)| n == rel) {
            unmerge(rel);
        }
    }
}

/// Detach the overlays above the new one `new` on `rel`, each checked to be one of ours
/// recorded as old.
fn detach_old_above(root: &Root, r: &Record, rel: &str, new: (u32, u32)) {
    for _ in 0..16 {
        let st = stack(root, rel);
        let Some(pos) = st.iter().position(|(d, _)| *d == new) else {
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
}

/// Undo a merge or refresh that was not committed: each new overlay comes off again (the
/// old merge back from its saved copy where it was replaced in a window), then the
/// ephemeral dirs and the directories the merge made go, newest first.
fn undo_merge(root: &Root, r: &Record, kernel: Kernel) {
    for (rel, new) in r.new.iter().rev() {
        let st = stack(root, rel);
        let Some(pos) = st.iter().position(|(d, _)| d == new) else {
            continue;
        };
        if pos == 0 {
            let saved = r.saved.iter().find(|(s, _)| s == rel).map(|(_, p)| p);
            take_off_top(root, rel, *new, saved.map(String::as_str));
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
            let _ = super::remove::rmdir(root, rel);
        }
    }
}

/// Take the new overlay `new`, the top of `rel`, off; where the old merge was replaced in
/// a window and its copy was `saved`, that comes back.
fn take_off_top(root: &Root, rel: &str, new: (u32, u32), saved: Option<&str>) {
    let Some(top) = top_on(root, rel, new) else {
        return;
    };
    let copy = saved.and_then(|p| {
        rustix::mount::open_tree(
            rustix::fs::CWD,
            p,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .ok()
        .filter(|c| crate::state::is_mount_point(c.as_fd()))
    });
    match copy {
        Some(copy) => {
            if detach(&top) {
                attach_at(root, rel, &copy);
            }
        }
        None => {
            detach(&top);
        }
    }
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
        let path = dir.join("sysext-1-2.lock");
        let root = Root::open(Some(dir.to_str().unwrap())).unwrap();
        let lock = crate::lock::lock_at(path.clone(), &root, None).unwrap();
        let len = || {
            std::fs::read(&path)
                .unwrap()
                .iter()
                .filter(|&&b| b != b'\n')
                .count()
        };
        // Nothing happens: nothing is written.
        let i = Intent::begin(Some(&lock), "merge", "");
        assert!(i.is_on());
        i.finish();
        assert_eq!(len(), 0);
        // The first note writes the first lines with it.
        let i = Intent::begin(Some(&lock), "merge", "");
        i.note("new\tusr\t0:44\n");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "verb\tmerge\nnew\tusr\t0:44\n"
        );
        // Nothing to complete: no commit line (a kill now is undone).
        i.commit();
        let r = read(&path).unwrap();
        assert_eq!((r.verb.as_str(), r.committed), ("merge", false));
        i.finish();
        assert_eq!(len(), 0);
        assert_eq!(read(&path), None, "an empty record is none");
        // A second record under the same lock starts at the beginning of the file.
        let i = Intent::begin(Some(&lock), "refresh", "old\tusr\t0:40\n");
        i.note("new\tusr\t0:44\n");
        // An old merge to take off: the commit line is written.
        i.commit();
        let r = read(&path).unwrap();
        assert_eq!((r.verb.as_str(), r.committed), ("refresh", true));
        i.finish();
        // An unmerge's lines are written before its first effect.
        let i = Intent::begin(Some(&lock), "unmerge", "old\tusr\t0:0\n");
        i.before_effect();
        assert_eq!(read(&path).unwrap().verb, "unmerge");
        i.finish();
        assert_eq!(read(&path), None);
        // A killed call's record is found through the held lock; a shorter record written
        // over a longer blanked one is read alone.
        let i = Intent::begin(Some(&lock), "merge", "");
        i.note("dir\tx\t0\n");
        i.note("sub\tusr\t7\ncommit\n");
        drop(i);
        let (r, n) = read_held(&lock).unwrap();
        assert!(r.committed);
        blank(&lock.record_fd().unwrap(), n);
        assert_eq!(read(&path), None);
        assert!(read_held(&lock).is_none());
        let i = Intent::begin(Some(&lock), "merge", "");
        i.note("new\tusr\t0:44\n");
        drop(i);
        let (r, _) = read_held(&lock).unwrap();
        assert_eq!((r.new.len(), r.subs.len(), r.committed), (1, 0, false));
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A record longer than the first read (4 KiB) is read whole through the held lock.
    #[test]
    fn a_long_record_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysext-1-2.lock");
        let root = Root::open(Some(dir.path().to_str().unwrap())).unwrap();
        let lock = crate::lock::lock_at(path.clone(), &root, None).unwrap();
        let i = Intent::begin(Some(&lock), "merge", "");
        for n in 0..300 {
            i.note(&format!("eph\t/run/libsysext/ephemeral/usr.{n:040}\n"));
        }
        i.note("commit\n");
        drop(i);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size > 3 * 4096, "{size}");
        let (r, n) = read_held(&lock).unwrap();
        assert_eq!(n, size);
        assert_eq!(r.eph.len(), 300);
        assert!(r.eph[299].ends_with(&format!("{:040}", 299)));
        assert!(r.committed);
    }

    /// A write of the record that fails (here: the file is open read-only) switches the
    /// record off for the rest of the call: no saved copy of an old merge is promised where
    /// no record will say where it is.
    #[test]
    fn a_record_whose_write_failed_is_off_and_names_no_saved_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysext-1-2.lock");
        std::fs::write(&path, "").unwrap();
        let fd = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let i = Intent {
            file: Some((std::sync::Arc::new(fd), path.clone())),
            first: "verb\trefresh\n".to_string(),
            ..Intent::default()
        };
        assert!(i.is_on());
        assert_eq!(i.saved_path(1), Some(saved_path(&path, 1)));
        i.note("old\tusr\t0:40\n");
        assert!(!i.is_on());
        assert_eq!(i.saved_path(1), None);
        i.commit();
        i.finish();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
