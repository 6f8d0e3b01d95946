//! Completing or undoing an interrupted call, from the intent record in the lock file.

use super::*;

impl Context {
    /// Repair what an interrupted call left, before doing anything else (under the lock).
    pub(super) fn recover(&self, held: &crate::lock::Lock) {
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
    pub(super) fn intent_lock<'a>(
        &self,
        lock: &'a crate::lock::Lock,
    ) -> Option<&'a crate::lock::Lock> {
        Some(lock).filter(|_| self.opts.intent_record)
    }

    /// The intent record of a merge or refresh about to replace what `probed` found with
    /// `plan`: the old merges, and what of theirs goes once the new ones are in place.
    pub(super) fn begin_intent(
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
}
