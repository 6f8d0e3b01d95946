//! `unmerge` and `remove`.

use super::*;

impl Context {
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

    pub(super) fn unmerge_locked(&self, lock: &crate::lock::Lock) -> Result<Report> {
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
    pub(super) fn merged_work_dir(&self, h: &Hierarchy) -> Option<String> {
        let r = self
            .root
            .resolve(h.relative(), OFlags::PATH | OFlags::DIRECTORY)
            .ok()??;
        state::merged_dev_at(r.fd.as_fd(), &r.path, self.opts.class).ok()??;
        state::read_work_dir(r.fd.as_fd(), self.opts.class)
    }

    /// The configured hierarchies (`/usr`) of root-prefixed hierarchy paths.
    pub(super) fn hierarchy_names(&self, paths: Vec<String>) -> Vec<String> {
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
}
