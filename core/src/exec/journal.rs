//! The undo journal of a merge: effects done so far, undone in reverse on failure.

use super::ephemeral::remove_ephemeral;
use super::intent;
use super::publish::attach;
use super::remove::{remove_tree, rmdir};
use crate::root::{proc_fd_path, Root};
use crate::state;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::mount::UnmountFlags;

/// An effect to undo on failure.
#[derive(Debug)]
pub(super) enum Undo {
    /// A directory we created (root-relative). `recursive` for work dirs the kernel filled.
    Dir { rel: String, recursive: bool },
    /// A mount we attached (fd of its root).
    Mount(OwnedFd),
    /// An ephemeral dir we created below [`state::EPHEMERAL_DIR`].
    Ephemeral(String),
    /// A copy of an old merge kept in the lock dir while it is replaced in a window.
    Saved(String),
    /// A mount we put beneath an old merge: undone by detaching both and attaching a clone
    /// of the old merge (taken before the swap) at the hierarchy again.
    Beneath {
        /// Root of the new mount.
        new: OwnedFd,
        /// Detached copy of the old merge (same superblock, meta bind included).
        backup: OwnedFd,
        /// The hierarchy, root-relative.
        rel: String,
        /// Mount id of the old merge's top.
        old_id: Option<u64>,
    },
}

/// Effects done so far, undone in reverse order by [`Journal::rollback`].
#[derive(Debug, Default)]
pub struct Journal {
    pub(super) undo: Vec<Undo>,
    /// The intent record, written before each effect (see [`intent`]).
    pub intent: intent::Intent,
}

impl Journal {
    /// The overlay of the newest mount entry, if that is the newest entry.
    pub(super) fn newest_mount(&self) -> Option<BorrowedFd<'_>> {
        match self.undo.last()? {
            Undo::Mount(fd) | Undo::Beneath { new: fd, .. } => Some(fd.as_fd()),
            _ => None,
        }
    }

    pub(super) fn dirs(&mut self, rels: Vec<String>, recursive: bool) {
        for rel in rels {
            self.undo.push(Undo::Dir { rel, recursive });
        }
    }

    /// A journal writing to `intent`.
    pub fn with_intent(intent: intent::Intent) -> Journal {
        Journal {
            undo: Vec::new(),
            intent,
        }
    }

    /// Note in the intent record the directories of `rel` that do not exist yet, before
    /// they are made (the last one with its content if `recursive`).
    pub(super) fn note_missing(&self, root: &Root, rel: &str, recursive: bool) {
        if !self.intent.is_on() {
            return;
        }
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut lines = String::new();
        for i in 0..comps.len() {
            let sub = comps[..=i].join("/");
            if root.open_in(&sub, OFlags::PATH).is_ok() {
                continue;
            }
            let last = i + 1 == comps.len() && recursive;
            lines.push_str(&format!("dir\t{sub}\t{}\n", u8::from(last)));
        }
        if !lines.is_empty() {
            self.intent.note(&lines);
        }
    }

    /// Undo everything, newest first. Errors are ignored: this runs on a failure path.
    /// The intent record goes once all is undone.
    pub fn rollback(mut self, root: &Root) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Mount(fd) => {
                    let _ = rustix::mount::unmount(
                        proc_fd_path(fd.as_fd()).as_str(),
                        UnmountFlags::DETACH,
                    );
                }
                Undo::Ephemeral(path) => {
                    let _ = remove_ephemeral(&path);
                }
                Undo::Saved(path) => intent::drop_saved(&path),
                Undo::Beneath {
                    new,
                    backup,
                    rel,
                    old_id,
                } => {
                    // Take the old merge (on top) and the new overlay (just beneath it) off
                    // from the top, each checked to be the one expected: a path to a mount
                    // that has another on top may lead to the one on top.
                    let new_id = state::mount_id(new.as_fd());
                    for _ in 0..2 {
                        let Ok(t) = root.open_in(&rel, OFlags::PATH | OFlags::DIRECTORY) else {
                            break;
                        };
                        let top = state::mount_id(t.as_fd());
                        if top.is_none() || (top != new_id && top != old_id) {
                            break;
                        }
                        let _ = rustix::mount::unmount(
                            proc_fd_path(t.as_fd()).as_str(),
                            UnmountFlags::DETACH,
                        );
                        if top == new_id {
                            break;
                        }
                    }
                    if let Ok(t) = root.open_in(&rel, OFlags::PATH | OFlags::DIRECTORY) {
                        let _ = attach(&backup, t.as_fd());
                    }
                }
                Undo::Dir { rel, recursive } => {
                    if recursive {
                        let _ = remove_tree(root, &rel);
                    } else {
                        let _ = rmdir(root, &rel);
                    }
                }
            }
        }
        std::mem::take(&mut self.intent).finish();
    }

    /// Forget the journal: the effects stay. Returns the intent record (to be finished
    /// once the caller's last step is done).
    pub fn commit(self) -> intent::Intent {
        self.intent
    }
}
