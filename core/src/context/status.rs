//! `status`, and the current merge of each hierarchy.

use super::*;

impl Context {
    /// Names merged now (from the meta dirs), and the mode recorded by libsysext, if any.
    pub(super) fn current_merge(&self) -> Result<(Vec<String>, Option<MutableMode>)> {
        let mut names: Vec<String> = Vec::new();
        let mut mode = None;
        for st in self.status()? {
            if let Some(e) = st.extensions {
                for n in e {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                if mode.is_none() {
                    mode = st.mutable;
                }
            }
        }
        Ok((names, mode))
    }

    /// State of each configured hierarchy that exists (`status`), sorted by path.
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
    /// for h in ctx.status()? {
    ///     // Nothing is merged in this fresh root: /opt and /usr, both unmerged.
    ///     assert!(h.extensions.is_none() && h.mutable.is_none());
    /// }
    /// assert_eq!(ctx.status()?.len(), 2);
    /// # std::fs::remove_dir_all(&root)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self) -> Result<Vec<HierarchyStatus>> {
        let class = self.opts.class;
        let mut hs: Vec<&Hierarchy> = self.hierarchies.iter().collect();
        hs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut out = Vec::new();
        let mut first_err = None;
        let interrupted = self.interrupted();
        for h in hs {
            let r = match self
                .root
                .resolve(h.relative(), OFlags::PATH | OFlags::DIRECTORY)
            {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    first_err.get_or_insert(crate::root::resolve_err(&self.root, h.relative(), e));
                    continue;
                }
            };
            match state::merged_dev_at(r.fd.as_fd(), &r.path, class) {
                Ok(Some(dev)) => {
                    let m = state::read_meta(r.fd.as_fd(), &r.path, class, dev)?;
                    let note = state::read_note(r.fd.as_fd(), class);
                    out.push(HierarchyStatus {
                        hierarchy: h.to_string(),
                        extensions: Some(m.extensions),
                        since_usec: probe::mtime_usec(r.fd.as_fd()),
                        mutable: note.as_ref().map(|n| n.mutable),
                        upper: note.as_ref().map(|n| n.upper),
                        upper_dir: note.and_then(|n| n.upper_dir),
                        interrupted: interrupted.clone(),
                    });
                }
                Ok(None) => out.push(HierarchyStatus {
                    hierarchy: h.to_string(),
                    extensions: None,
                    since_usec: None,
                    mutable: None,
                    upper: None,
                    upper_dir: None,
                    interrupted: interrupted.clone(),
                }),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}
