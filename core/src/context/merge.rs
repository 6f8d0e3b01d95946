//! `merge`, `refresh` and `add`: building and publishing the overlays.

use super::*;

impl Context {
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

    pub(super) fn reload_wanted(&self) -> bool {
        !self.opts.no_reload && !self.root.is_explicit()
    }

    /// Whether the merged extensions ask for a manager reload, and the units they ask to have
    /// restarted (read from the merged tree, before unmerging).
    pub(super) fn merged_needs_reload(&self) -> (bool, release::UnitRequests) {
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
                reload |= rel.data.asks_manager_reload();
                units.add(&rel.data);
            }
        }
        if !units.is_empty() && self.compat.restarts_extension_units() {
            reload = true;
        }
        (reload, units)
    }

    /// Merge, or with `refresh` replace the current merge, under `lock`: the extensions
    /// named in `filter` (all if `None`), of which `required` must be found and used.
    pub(super) fn merge_locked(
        &self,
        lock: &crate::lock::Lock,
        refresh: bool,
        filter: Option<&[String]>,
        required: &[String],
        mode: MutableMode,
    ) -> Result<Report> {
        let mut timer = PhaseTimer::start(self.sink());
        let mut g = self.gather(!refresh, filter, required)?;
        timer.phase_done("discovery and metadata");
        let mut report = self.first_report(&g);
        let proceed_empty = g.trees.is_empty()
            && mode != MutableMode::Disabled
            && self.compat.merges_every_hierarchy_when_mutable();
        if proceed_empty {
            self.sink().event(&Event::Message(
                Level::Info,
                "No extensions found, proceeding in mutable mode.".into(),
            ));
        } else if g.trees.is_empty() {
            return self.nothing_to_merge(lock, refresh, g.found, report);
        }
        let mut using = UsingLine::new(self, &g.file_names, proceed_empty);
        let may_skip =
            refresh && !self.opts.always_refresh && self.compat.skips_unchanged_refresh();
        if using.first && !may_skip {
            using.say();
        }
        let (probed, plan) = self.probe_and_plan(lock, mode, &mut g, &mut using, &mut report)?;
        timer.phase_done("probe and plan");
        report.merged = plan.extensions.clone();
        let fingerprint = fingerprint(&plan, &g.trees, &probed);
        if may_skip && unchanged(&plan, &probed, self.opts.class, fingerprint) {
            self.sink().event(&Event::Message(
                Level::Info,
                self.compat.refresh_skipped_message().into(),
            ));
            return Ok(report);
        }
        using.say();
        let new = NewMerge {
            lock,
            verb: if refresh { "refresh" } else { "merge" },
            plan: &plan,
            trees: &g.trees,
            fingerprint,
            ephemeral_reuse: ephemeral_reuse(&probed, filter, mode),
        };
        self.replace_merge(new, probed, report, &mut timer)
    }

    /// The report as gathering leaves it: the images skipped, the reload and the units
    /// the extensions ask for.
    fn first_report(&self, g: &Gathered) -> Report {
        Report {
            skipped: g.skipped.clone(),
            needs_reload: g.needs_reload && self.reload_wanted(),
            units: g.units.clone(),
            ..Default::default()
        }
    }

    /// No extension to merge (`found` were seen, none suitable): say so; a refresh then
    /// unmerges what is merged.
    fn nothing_to_merge(
        &self,
        lock: &crate::lock::Lock,
        refresh: bool,
        found: usize,
        mut report: Report,
    ) -> Result<Report> {
        if found == 0 {
            self.sink().event(&Event::NoExtensions);
        } else {
            self.sink().event(&Event::NoSuitable { ignored: found });
        }
        if refresh {
            let u = self.unmerge_locked(lock)?;
            report.unmerged = u.unmerged;
        }
        report.needs_reload = false;
        report.units = Default::default();
        Ok(report)
    }

    /// Probe the hierarchies and the extensions' trees and plan the merge. A foreign mount
    /// below the current merge makes it unmerge first (a refresh with a gap).
    fn probe_and_plan(
        &self,
        lock: &crate::lock::Lock,
        mode: MutableMode,
        g: &mut Gathered,
        using: &mut UsingLine<'_>,
        report: &mut Report,
    ) -> Result<(probe::Probed, Plan)> {
        let mut probed = match self.probe(mode, &g.trees, std::mem::take(&mut g.hierarchies)) {
            Ok(p) => p,
            Err(e) => {
                if using.first {
                    using.say();
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
            using.say();
            let u = self.unmerge_locked(lock)?;
            report.unmerged = u.unmerged;
            probed = self.probe(mode, &g.trees, Vec::new())?;
        }
        let mut plan = match plan::plan(&probed.inputs) {
            Ok(p) => p,
            Err(e) => return Err(self.plan_failed(e, &probed, using)),
        };
        if let Some(o) = &self.overlay_options {
            o.apply_to(&mut plan);
        }
        Ok((probed, plan))
    }

    /// A merge that cannot be planned: the "Using" line if systemd says it before this
    /// error, and what systemd does before its mount fails; gives back the error.
    fn plan_failed(&self, e: Error, probed: &probe::Probed, using: &mut UsingLine<'_>) -> Error {
        // Where the mount would fail, systemd has reached it and done a few things
        // first; errors of routing checks come before the list at 262.
        let routing_check = matches!(
            e,
            Error::MutableDirMode { .. }
                | Error::MutableDirCreate { .. }
                | Error::MutableDirChase { .. }
        );
        if using.first || !routing_check {
            using.say();
        }
        if let Some((rel, mode, wrel)) = plan::auto_link_to_non_dir_effects(&probed.inputs, &e) {
            self.auto_link_to_non_dir(&rel, mode, &wrel);
        }
        e
    }

    /// Build the new overlays and put them in place of the current merge, gap-free, then
    /// take the old merges off the hierarchies that get no new overlay.
    fn replace_merge(
        &self,
        new: NewMerge<'_>,
        mut probed: probe::Probed,
        mut report: Report,
        timer: &mut PhaseTimer<'_>,
    ) -> Result<Report> {
        // The intent record, before the first effect.
        let journal = Journal::with_intent(self.begin_intent(
            new.lock,
            new.verb,
            new.plan,
            &probed,
            &new.ephemeral_reuse,
        ));
        let inputs = BuildInputs {
            root: &self.root,
            probed: &probed,
            trees: new.trees,
            faults: &self.faults,
            fingerprint: Some(new.fingerprint),
            ephemeral_reuse: new.ephemeral_reuse,
            kernel: self.kernel(),
        };
        let (built, journal) =
            self.undo_on_error(journal, |j| exec::build(new.plan, &inputs, j))?;
        timer.phase_done("building the overlays");
        let targets: Vec<String> = built.iter().map(|b| b.plan.target.clone()).collect();
        let merged_hierarchies: Vec<String> =
            built.iter().map(|b| b.plan.hierarchy.to_string()).collect();
        self.say_unmerged_first(&probed);
        let ((replaced, hidden_submounts), journal) = self.undo_on_error(journal, |j| {
            exec::publish(
                &self.root,
                built,
                &mut probed,
                j,
                &self.faults,
                self.sink(),
                self.opts.class,
                self.kernel(),
            )
        })?;
        // Every new overlay is in place: from here on, a kill is completed, not undone.
        journal.intent.commit();
        let intent = journal.commit();
        report.hierarchies = merged_hierarchies;
        report.targets = targets;
        timer.phase_done("attaching");
        exec::finish_replace(&self.root, replaced, hidden_submounts, self.sink());
        self.unmerge_left_over(&mut probed, &mut report)?;
        intent.finish();
        Ok(report)
    }

    /// One journaled step of building or publishing a merge; if it fails, every effect
    /// the journal holds is undone.
    fn undo_on_error<T>(
        &self,
        mut journal: Journal,
        step: impl FnOnce(&mut Journal) -> Result<T>,
    ) -> Result<(T, Journal)> {
        match step(&mut journal) {
            Ok(t) => Ok((t, journal)),
            Err(e) => {
                journal.rollback(&self.root);
                Err(e)
            }
        }
    }

    /// The "Unmerged" line of every merged hierarchy, before the merge replaces it.
    fn say_unmerged_first(&self, probed: &probe::Probed) {
        // systemd's refresh unmerges every merged hierarchy, then merges, and says so: the
        // same lines here, first, though each merge is replaced at once, without the gap.
        for (i, hp) in probed.hierarchies.iter().enumerate() {
            if hp.current.is_some() {
                let path = self.root.display(self.hierarchies[i].relative());
                self.sink().event(&Event::Unmerged(path));
            }
        }
    }

    /// Unmerge the old merges on hierarchies that get no new overlay (publish took the
    /// others); their "Unmerged" lines were said before.
    fn unmerge_left_over(&self, probed: &mut probe::Probed, report: &mut Report) -> Result<()> {
        for (i, hp) in probed.hierarchies.iter_mut().enumerate() {
            let Some(c) = hp.current.take() else {
                continue;
            };
            let h = &self.hierarchies[i];
            drop(c);
            if exec::unmerge_hierarchy(
                &self.root,
                self.opts.class,
                h.relative(),
                &self.faults,
                &SaidUnmerged(self.sink()),
                self.kernel(),
            )? > 0
            {
                report.unmerged.push(h.to_string());
            }
        }
        Ok(())
    }

    /// systemd's steps before its overlay mount fails on a routing dir that is a symlink to
    /// a non-directory in `auto` mode: the work dir beside the target (0700) and the
    /// hierarchy's mode on the target. Both stay behind, as with systemd; inside the root.
    pub(super) fn auto_link_to_non_dir(&self, target_rel: &str, mode: u32, workdir_rel: &str) {
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
}

/// FNV-1a, 64 bit, as a [`std::hash::Hasher`]: a hash that is the same in every process
/// and build, for fingerprints stored in the meta dir.
pub(super) struct Fnv(u64);

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
pub(super) fn fingerprint(plan: &Plan, trees: &[ImageTree], probed: &probe::Probed) -> u64 {
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
pub(super) fn unchanged(plan: &Plan, probed: &probe::Probed, class: ImageClass, fp: u64) -> bool {
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
pub(super) fn smallfile_is_regular(fd: &rustix::fd::OwnedFd) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false)
}

/// A sink for the old merges a refresh takes off after publishing: their "Unmerged" lines
/// were said before (as systemd says them, ahead of the merge), so they are not said twice.
pub(super) struct SaidUnmerged<'a>(&'a dyn EventSink);

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

/// A merge that goes ahead: what building and publishing its overlays reads.
struct NewMerge<'a> {
    lock: &'a crate::lock::Lock,
    /// `merge` or `refresh`, for the intent record.
    verb: &'static str,
    plan: &'a Plan,
    trees: &'a [ImageTree],
    fingerprint: u64,
    /// Per hierarchy: the ephemeral upper layer to keep (see [`ephemeral_reuse`]).
    ephemeral_reuse: Vec<Option<String>>,
}

/// Per hierarchy, the ephemeral upper layer a merge keeps: a selective merge/unmerge keeps
/// the ephemeral upper layers; a plain refresh (as with systemd) starts from an empty one.
fn ephemeral_reuse(
    probed: &probe::Probed,
    filter: Option<&[String]>,
    mode: MutableMode,
) -> Vec<Option<String>> {
    probed
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
        .collect()
}

/// The debug lines that say how long each phase of a merge took.
struct PhaseTimer<'a> {
    /// When the current phase started.
    start: std::time::Instant,
    /// Whether debug lines are wanted at all.
    timed: bool,
    sink: &'a dyn EventSink,
}

impl<'a> PhaseTimer<'a> {
    /// Start timing the first phase.
    fn start(sink: &'a dyn EventSink) -> PhaseTimer<'a> {
        PhaseTimer {
            start: std::time::Instant::now(),
            timed: sink.enabled(Level::Debug),
            sink,
        }
    }

    /// Say how long the phase `what` took (at debug level); the next phase starts now.
    fn phase_done(&mut self, what: &str) {
        if self.timed {
            self.sink.event(&Event::Message(
                Level::Debug,
                format!("{what} took {} µs", self.start.elapsed().as_micros()),
            ));
        }
        self.start = std::time::Instant::now();
    }
}

/// The "Using extensions …" line, said once, where systemd says it: at 257 before anything
/// can fail, at 262 after the routing checks (an error of theirs comes alone) and after the
/// no-op check of a refresh (a skipped refresh says only that it skips).
struct UsingLine<'a> {
    sink: &'a dyn EventSink,
    using: Event,
    said: bool,
    /// Whether the level says it before anything can fail (257).
    first: bool,
}

impl<'a> UsingLine<'a> {
    /// The line for the extensions' `file_names`; `said`: no need to say it.
    fn new(ctx: &'a Context, file_names: &[String], said: bool) -> UsingLine<'a> {
        UsingLine {
            first: !ctx.compat.lists_after_routing_checks(),
            said,
            using: Event::Using(file_names.to_vec()),
            sink: ctx.sink(),
        }
    }

    /// Say the line, unless it was said.
    fn say(&mut self) {
        if !self.said {
            self.sink.event(&self.using);
            self.said = true;
        }
    }
}
