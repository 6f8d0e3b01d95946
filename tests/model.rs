//! Model-based state-machine test of merge/refresh/unmerge in all six mutable modes.
//!
//! A pure reference model (this file, independent of the planner's code) describes a root:
//! its base hierarchies, the extension images of both classes, the write-routing dirs
//! (`var/lib/extensions.mutable/<h>`: missing, a directory of the right or the wrong mode,
//! a symlink to the hierarchy itself, a dangling symlink) and, per merged hierarchy, the
//! layers of its overlay. From that it predicts, after every step: the visible tree of each
//! hierarchy (content of every file), the routing dirs' contents (where writes persist,
//! whiteouts left by deletions), the base trees (writes that went into the base through
//! the symlink trick), work dirs, the meta dir, mount state (merged, read-only) and
//! `status`, plus the outcome (errno) of every operation.
//!
//! proptest generates sequences of operations; each case runs on a fresh `TestRoot`, all
//! of them inside one private mount namespace (`isolated`). Failing cases shrink, and are
//! persisted in `regressions/model.txt`.
//!
//! * `SYSEXT_MODEL_CASES` (default 128) cases per test, `SYSEXT_MODEL_OPS` (default 16)
//!   operations at most per case (plus one or two initial extensions). The defaults take a
//!   few seconds; e.g. `SYSEXT_MODEL_CASES=20000 SYSEXT_MODEL_OPS=30` for a long run.
//! * `SYSEXT_MODEL_STATS=1` prints how often each operation had each outcome.
//! * `model_fixed_seed` always uses the same seed; `model_random_seed` a random one (or
//!   `PROPTEST_RNG_SEED=<u64>`).
//! * `SYSEXT_MODEL_TRACE=1` prints each step.

use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use sysext::{Context, ImageClass, MutableMode, Options};
use sysext_tests::{isolated, TestRoot};

// ---------------------------------------------------------------------------------------
// The universe

/// Hierarchies: sysext has `usr` and `opt`, confext has `etc`.
const HIERS: [&str; 3] = ["usr", "opt", "etc"];

/// Files that operations and extensions touch. Index 0 and 5 exist in the base.
const PATHS: [&str; 8] = [
    "usr/bin/base",
    "usr/bin/a",
    "usr/share/x/b",
    "opt/a",
    "opt/d/b",
    "etc/base.conf",
    "etc/a.conf",
    "etc/d/b.conf",
];

/// Extension names, in ascending version order (`strverscmp_improved`): byte order
/// would put `b-10` before `b-2`.
const NAMES: [&str; 4] = ["a", "b-2", "b-10", "c"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Sys,
    Conf,
}

impl Class {
    fn image_class(self) -> ImageClass {
        match self {
            Class::Sys => ImageClass::Sysext,
            Class::Conf => ImageClass::Confext,
        }
    }
    fn hiers(self) -> &'static [usize] {
        match self {
            Class::Sys => &[0, 1],
            Class::Conf => &[2],
        }
    }
    fn idx(self) -> usize {
        match self {
            Class::Sys => 0,
            Class::Conf => 1,
        }
    }
    fn dot(self) -> &'static str {
        match self {
            Class::Sys => ".systemd-sysext",
            Class::Conf => ".systemd-confext",
        }
    }
    fn other(self) -> Class {
        match self {
            Class::Sys => Class::Conf,
            Class::Conf => Class::Sys,
        }
    }
}

fn hier_of(path: &str) -> usize {
    let first = path.split('/').next().unwrap();
    HIERS
        .iter()
        .position(|h| *h == first)
        .expect("path in a hierarchy")
}

fn class_of_hier(h: usize) -> Class {
    if h == 2 {
        Class::Conf
    } else {
        Class::Sys
    }
}

/// Ancestors of `path` strictly below its hierarchy (`usr/share/x/b` → `usr/share`, `usr/share/x`).
fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (2..parts.len()).map(|i| parts[..i].join("/")).collect()
}

// ---------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoutingKind {
    /// Remove whatever is there.
    Remove,
    /// A directory with the hierarchy's mode (0755).
    Mkdir,
    /// A directory with the wrong mode (0700).
    MkdirBadMode,
    /// A symlink to the hierarchy itself (`../../../<h>`).
    SymlinkToHierarchy,
    /// A dangling symlink.
    Dangling,
}

#[derive(Debug, Clone)]
enum Op {
    Merge(MutableMode),
    Refresh(MutableMode),
    Unmerge,
    /// Selective merge (`merge NAME...`); `None`: no explicit mode (keep the current one).
    MergeNames {
        names: Vec<usize>,
        mode: Option<MutableMode>,
    },
    /// Selective unmerge (`unmerge NAME...`).
    UnmergeNames {
        names: Vec<usize>,
        mode: Option<MutableMode>,
    },
    SwitchClass,
    /// Write `w<tag>` to a path through the visible tree.
    Write {
        path: usize,
        tag: u8,
    },
    /// Delete a path through the visible tree.
    Delete {
        path: usize,
    },
    /// Add an extension image (no-op if one of that name exists).
    AddExt {
        class: Class,
        name: usize,
        files: Vec<(usize, u8)>,
    },
    /// Remove an extension image (moved away; no-op if absent).
    RemoveExt {
        class: Class,
        name: usize,
    },
    /// Change the routing dir of a hierarchy (no-op while it is merged).
    Routing {
        hier: usize,
        kind: RoutingKind,
    },
    /// Write `r<tag>` into the routing dir directly (no-op while merged, or if it is
    /// missing or dangling; through a symlink to the hierarchy it lands in the base).
    RoutingPut {
        path: usize,
        tag: u8,
    },
}

fn mode_strategy() -> impl Strategy<Value = MutableMode> {
    prop::sample::select(MutableMode::ALL.to_vec())
}

fn class_strategy() -> impl Strategy<Value = Class> {
    prop_oneof![3 => Just(Class::Sys), 1 => Just(Class::Conf)]
}

fn add_ext_strategy(class: BoxedStrategy<Class>) -> impl Strategy<Value = Op> {
    (
        class,
        0..NAMES.len(),
        prop::collection::vec((0..PATHS.len(), 0u8..3), 0..4),
    )
        .prop_map(|(class, name, files)| Op::AddExt { class, name, files })
}

fn routing_kind() -> impl Strategy<Value = RoutingKind> {
    prop_oneof![
        1 => Just(RoutingKind::Remove),
        3 => Just(RoutingKind::Mkdir),
        1 => Just(RoutingKind::MkdirBadMode),
        3 => Just(RoutingKind::SymlinkToHierarchy),
        1 => Just(RoutingKind::Dangling),
    ]
}

fn routing_op() -> impl Strategy<Value = Op> {
    (0..HIERS.len(), routing_kind()).prop_map(|(hier, kind)| Op::Routing { hier, kind })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => mode_strategy().prop_map(Op::Merge),
        3 => mode_strategy().prop_map(Op::Refresh),
        2 => Just(Op::Unmerge),
        1 => (prop::collection::vec(0..NAMES.len(), 1..3), prop::option::of(mode_strategy()))
            .prop_map(|(names, mode)| Op::MergeNames { names, mode }),
        1 => (prop::collection::vec(0..NAMES.len(), 0..3), prop::option::of(mode_strategy()))
            .prop_map(|(names, mode)| Op::UnmergeNames { names, mode }),
        1 => Just(Op::SwitchClass),
        5 => (0..PATHS.len(), 0u8..4).prop_map(|(path, tag)| Op::Write { path, tag }),
        3 => (0..PATHS.len()).prop_map(|path| Op::Delete { path }),
        2 => add_ext_strategy(class_strategy().boxed()),
        1 => (class_strategy(), 0..NAMES.len()).prop_map(|(class, name)| Op::RemoveExt { class, name }),
        3 => routing_op(),
        1 => (0..PATHS.len(), 0u8..4).prop_map(|(path, tag)| Op::RoutingPut { path, tag }),
    ]
}

/// A case: the class operated on first, a setup (initial extensions, routing dirs, usually a
/// merge), then the operations.
#[derive(Debug, Clone)]
struct Case {
    class: Class,
    setup: Vec<Op>,
    ops: Vec<Op>,
}

fn case_strategy(max_ops: usize) -> impl Strategy<Value = Case> {
    (
        class_strategy(),
        prop::collection::vec(add_ext_strategy(class_strategy().boxed()), 1..3),
        prop::collection::vec(routing_op(), 0..3),
        prop::option::weighted(0.8, mode_strategy()),
        prop::collection::vec(op_strategy(), 0..=max_ops),
    )
        .prop_map(|(class, exts, routing, merge, ops)| {
            let mut setup = exts;
            setup.extend(routing);
            setup.extend(merge.map(Op::Merge));
            Case { class, setup, ops }
        })
}

// ---------------------------------------------------------------------------------------
// The reference model

/// A node of a tree. Trees are keyed by root-relative paths below a hierarchy (`usr/bin/a`),
/// whatever layer they come from, so that layers align.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(String),
    /// An overlayfs whiteout (character device 0:0).
    Whiteout,
    Symlink(String),
    Other(String),
}

type Tree = BTreeMap<String, Node>;

fn put_file(t: &mut Tree, path: &str, content: &str) {
    for a in ancestors(path) {
        t.insert(a, Node::Dir);
    }
    t.insert(path.to_string(), Node::File(content.to_string()));
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Routing {
    Missing,
    Dir { good_mode: bool, tree: Tree },
    SelfLink,
    Dangling,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum UpperModel {
    None,
    /// The routing dir (`auto`/`yes`).
    Routing,
    /// The base hierarchy itself (symlink trick).
    Base,
    /// A private tmpfs.
    Ephemeral(Tree),
}

#[derive(Debug, Clone)]
struct MergedModel {
    mode: MutableMode,
    upper: UpperModel,
    /// Routing dir imported below the meta layer.
    import: bool,
    /// Extension layers, highest first.
    exts: Vec<Tree>,
    /// Whether the base is the bottom layer.
    base_layer: bool,
    /// All merged names, ascending.
    names: Vec<String>,
}

#[derive(Debug, Clone)]
struct Model {
    class: Class,
    /// The base trees of all hierarchies (as on disk when unmerged).
    base: Tree,
    /// Extension images per class, by name index.
    images: [[Option<Tree>; 4]; 2],
    /// `var/lib/extensions.mutable`: its mode, if it exists.
    routing_parent: Option<u32>,
    routing: [Routing; 3],
    merged: [Option<MergedModel>; 3],
}

/// What an operation returned: `Ok` or an errno.
type Outcome = Result<(), i32>;

/// What merge/refresh returned: merged names or an errno.
type MergeOutcome = Result<Vec<String>, i32>;

impl Model {
    fn new(class: Class, base: Tree) -> Model {
        Model {
            class,
            base,
            images: Default::default(),
            routing_parent: None,
            routing: [Routing::Missing, Routing::Missing, Routing::Missing],
            merged: [None, None, None],
        }
    }

    fn is_merged(&self, c: Class) -> bool {
        c.hiers().iter().any(|&h| self.merged[h].is_some())
    }

    fn routing_tree(&self, h: usize) -> &Tree {
        match &self.routing[h] {
            Routing::Dir { tree, .. } => tree,
            other => panic!(
                "model: routing dir of {} is {other:?}, not a directory",
                HIERS[h]
            ),
        }
    }

    /// Layers of merged hierarchy `h`, top first; `skip_upper` leaves the upper layer out.
    fn layers(&self, h: usize, skip_upper: bool) -> Vec<&Tree> {
        let m = self.merged[h].as_ref().expect("merged");
        let mut v = Vec::new();
        if !skip_upper {
            match &m.upper {
                UpperModel::None => {}
                UpperModel::Routing => v.push(self.routing_tree(h)),
                UpperModel::Base => v.push(&self.base),
                UpperModel::Ephemeral(t) => v.push(t),
            }
        }
        if m.import {
            v.push(self.routing_tree(h));
        }
        for e in &m.exts {
            v.push(e);
        }
        if m.base_layer {
            v.push(&self.base);
        }
        v
    }

    /// The visible tree of hierarchy `h`.
    fn view(&self, h: usize) -> Tree {
        let prefix = format!("{}/", HIERS[h]);
        match &self.merged[h] {
            None => self
                .base
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Some(_) => merged_view(&self.layers(h, false), &prefix),
        }
    }

    fn visible(&self, path: &str) -> Option<Node> {
        let h = hier_of(path);
        match &self.merged[h] {
            None => self.base.get(path).cloned(),
            Some(_) => {
                let layers = self.layers(h, false);
                for a in ancestors(path) {
                    if resolve(&layers, &a) != Some(Node::Dir) {
                        return None;
                    }
                }
                resolve(&layers, path)
            }
        }
    }

    /// The tree the writes to merged hierarchy `h` go to.
    fn upper_mut(&mut self, h: usize) -> Option<&mut Tree> {
        let kind = self.merged[h].as_ref().map(|m| m.upper.clone())?;
        match kind {
            UpperModel::None => None,
            UpperModel::Routing => match &mut self.routing[h] {
                Routing::Dir { tree, .. } => Some(tree),
                _ => panic!("model: upper routing dir is not a directory"),
            },
            UpperModel::Base => Some(&mut self.base),
            UpperModel::Ephemeral(_) => match &mut self.merged[h].as_mut().unwrap().upper {
                UpperModel::Ephemeral(t) => Some(t),
                _ => unreachable!(),
            },
        }
    }

    fn upper_kind(&self, h: usize) -> &'static str {
        match self.merged[h].as_ref().map(|m| &m.upper) {
            None => "unmerged base",
            Some(UpperModel::None) => "read-only merge",
            Some(UpperModel::Routing) => "routing dir",
            Some(UpperModel::Base) => "base (symlink trick)",
            Some(UpperModel::Ephemeral(_)) => "tmpfs",
        }
    }

    fn write(&mut self, path: &str, content: &str) -> Outcome {
        let h = hier_of(path);
        record(format!("model: write into {}", self.upper_kind(h)));
        if self.merged[h].is_none() {
            if self.base.get(path) == Some(&Node::Whiteout) {
                // Opening a character device 0:0 for writing: no such device.
                return Err(libc::ENXIO);
            }
            put_file(&mut self.base, path, content);
            return Ok(());
        }
        match self.upper_mut(h) {
            None => Err(libc::EROFS),
            Some(t) => {
                // Copy-up of every ancestor, then the file.
                put_file(t, path, content);
                Ok(())
            }
        }
    }

    fn delete(&mut self, path: &str) -> Outcome {
        let h = hier_of(path);
        let parent_ok = ancestors(path)
            .iter()
            .all(|a| self.visible(a) == Some(Node::Dir));
        if !parent_ok {
            return Err(libc::ENOENT);
        }
        let Some(m) = &self.merged[h] else {
            return match self.base.get(path) {
                Some(Node::Whiteout) => {
                    record("model: delete a whiteout left in the base".into());
                    self.base.remove(path);
                    Ok(())
                }
                Some(Node::File(_)) => {
                    self.base.remove(path);
                    Ok(())
                }
                _ => Err(libc::ENOENT),
            };
        };
        if m.upper == UpperModel::None {
            // unlink(2) asks for write access to the mount before looking the name up.
            return Err(libc::EROFS);
        }
        if !matches!(self.visible(path), Some(Node::File(_))) {
            return Err(libc::ENOENT);
        }
        // A whiteout is needed if the lower layers (without the upper) show the file.
        let lower = self.layers(h, true);
        let lower_positive = resolve(&lower, path).is_some();
        record(format!(
            "model: delete in {} {}",
            self.upper_kind(h),
            if lower_positive {
                "leaves a whiteout"
            } else {
                "unlinks"
            }
        ));
        let t = self.upper_mut(h).unwrap();
        if lower_positive {
            for a in ancestors(path) {
                t.insert(a, Node::Dir);
            }
            t.insert(path.to_string(), Node::Whiteout);
        } else {
            t.remove(path);
        }
        Ok(())
    }

    /// Accepted extension names of class `c`, ascending.
    fn names(&self, c: Class) -> Vec<usize> {
        (0..NAMES.len())
            .filter(|&i| self.images[c.idx()][i].is_some())
            .collect()
    }

    /// Plan a merge of class `c` in `mode`: the new merged state per hierarchy, what
    /// routing dirs `yes` creates, or the errno of the first failing check.
    fn plan(
        &self,
        c: Class,
        mode: MutableMode,
        names: &[usize],
    ) -> Result<Vec<(usize, MergedModel, bool)>, i32> {
        use MutableMode::*;
        let name_strs: Vec<String> = names.iter().map(|&i| NAMES[i].to_string()).collect();
        let mut out = Vec::new();
        for &h in c.hiers() {
            let prefix = format!("{}/", HIERS[h]);
            let exts: Vec<Tree> = names
                .iter()
                .rev()
                .map(|&i| self.images[c.idx()][i].clone().unwrap())
                .filter(|t| t.keys().any(|k| k.starts_with(&prefix)))
                .collect();
            if exts.is_empty() {
                continue;
            }
            let r = &self.routing[h];
            // Mode check (auto, yes): the routing dir (through symlinks) must have the
            // hierarchy's mode; the symlink to the hierarchy has it trivially.
            if matches!(mode, Auto | Enabled)
                && matches!(
                    r,
                    Routing::Dir {
                        good_mode: false,
                        ..
                    }
                )
            {
                return Err(libc::EINVAL);
            }
            let import = match mode {
                Import | EphemeralImport => match r {
                    Routing::SelfLink => return Err(libc::ELOOP),
                    Routing::Dir { .. } => true,
                    _ => false,
                },
                _ => false,
            };
            let mut create = false;
            let upper = match mode {
                Disabled | Import => UpperModel::None,
                Ephemeral | EphemeralImport => UpperModel::Ephemeral(Tree::new()),
                Auto => match r {
                    Routing::Dir { .. } => UpperModel::Routing,
                    Routing::SelfLink => UpperModel::Base,
                    Routing::Missing | Routing::Dangling => UpperModel::None,
                },
                Enabled => match r {
                    Routing::Dir { .. } => UpperModel::Routing,
                    Routing::SelfLink => UpperModel::Base,
                    Routing::Missing => {
                        create = true;
                        UpperModel::Routing
                    }
                    Routing::Dangling => return Err(libc::EEXIST),
                },
            };
            let base_empty = !self.base.keys().any(|k| k.starts_with(&prefix));
            let base_layer = !base_empty && upper != UpperModel::Base;
            out.push((
                h,
                MergedModel {
                    mode,
                    upper,
                    import,
                    exts,
                    base_layer,
                    names: name_strs.clone(),
                },
                create,
            ));
        }
        Ok(out)
    }

    fn apply_plan(&mut self, c: Class, planned: Vec<(usize, MergedModel, bool)>) {
        for &h in c.hiers() {
            self.merged[h] = None;
        }
        for (h, m, create) in planned {
            if create {
                if self.routing_parent.is_none() {
                    self.routing_parent = Some(0o700);
                }
                self.routing[h] = Routing::Dir {
                    good_mode: true,
                    tree: Tree::new(),
                };
            }
            self.merged[h] = Some(m);
        }
    }

    fn merge(&mut self, mode: MutableMode) -> MergeOutcome {
        let c = self.class;
        if self.is_merged(c) {
            return Err(libc::EBUSY);
        }
        let names = self.names(c);
        if names.is_empty() {
            return Ok(vec![]);
        }
        let planned = self.plan(c, mode, &names)?;
        self.apply_plan(c, planned);
        Ok(names.iter().map(|&i| NAMES[i].to_string()).collect())
    }

    /// Refresh; with `filter`, only images of those names are considered (selective merge).
    fn refresh(&mut self, mode: MutableMode, filter: Option<&[usize]>) -> MergeOutcome {
        let c = self.class;
        let names: Vec<usize> = self
            .names(c)
            .into_iter()
            .filter(|n| filter.is_none_or(|f| f.contains(n)))
            .collect();
        if names.is_empty() {
            self.unmerge();
            return Ok(vec![]);
        }
        let mut planned = self.plan(c, mode, &names)?;
        // An unchanged persistent merge is kept, a changed one rebuilt: either way the
        // model's state is the planned one. A plain refresh rebuilds ephemeral merges with a
        // fresh upper; a selective merge/unmerge keeps the upper of an ephemeral merge.
        if filter.is_some() {
            for (h, m, _) in &mut planned {
                if let (UpperModel::Ephemeral(new), Some(UpperModel::Ephemeral(old))) =
                    (&mut m.upper, self.merged[*h].as_ref().map(|o| &o.upper))
                {
                    *new = old.clone();
                }
            }
        }
        self.apply_plan(c, planned);
        Ok(names.iter().map(|&i| NAMES[i].to_string()).collect())
    }

    /// Names of the current merge of the current class, and its mode.
    fn current(&self) -> (Vec<usize>, Option<MutableMode>) {
        for &h in self.class.hiers() {
            if let Some(m) = &self.merged[h] {
                let idx = m
                    .names
                    .iter()
                    .map(|n| NAMES.iter().position(|x| x == n).unwrap())
                    .collect();
                return (idx, Some(m.mode));
            }
        }
        (vec![], None)
    }

    /// `merge NAME...`: add to the current merge, as a refresh.
    fn merge_names(&mut self, names: &[usize], mode: Option<MutableMode>) -> MergeOutcome {
        let (mut set, cur_mode) = self.current();
        if names
            .iter()
            .any(|&n| self.images[self.class.idx()][n].is_none())
        {
            return Err(libc::ENOENT);
        }
        for &n in names {
            if !set.contains(&n) {
                set.push(n);
            }
        }
        self.refresh(
            mode.or(cur_mode).unwrap_or(MutableMode::Disabled),
            Some(&set),
        )
    }

    /// `unmerge NAME...`: remove from the current merge, as a refresh (or an unmerge).
    fn unmerge_names(&mut self, names: &[usize], mode: Option<MutableMode>) -> MergeOutcome {
        let (set, cur_mode) = self.current();
        if names.iter().any(|n| !set.contains(n)) {
            return Err(libc::ENOENT);
        }
        let rest: Vec<usize> = set.into_iter().filter(|n| !names.contains(n)).collect();
        if rest.is_empty() {
            self.unmerge();
            return Ok(vec![]);
        }
        self.refresh(
            mode.or(cur_mode).unwrap_or(MutableMode::Disabled),
            Some(&rest),
        )
    }

    fn unmerge(&mut self) {
        for &h in self.class.hiers() {
            self.merged[h] = None;
        }
    }

    fn add_ext(
        &mut self,
        class: Class,
        name: usize,
        files: &[(usize, u8)],
    ) -> Option<Vec<(String, String)>> {
        if self.images[class.idx()][name].is_some() {
            return None;
        }
        let n = NAMES[name];
        let mut t = Tree::new();
        let rel = match class {
            Class::Sys => format!("usr/lib/extension-release.d/extension-release.{n}"),
            Class::Conf => format!("etc/extension-release.d/extension-release.{n}"),
        };
        put_file(&mut t, &rel, "ID=_any\n");
        let mut real = Vec::new();
        for &(p, tag) in files {
            let path = PATHS[p];
            if class_of_hier(hier_of(path)) != class {
                continue;
            }
            let content = format!("{n}:{tag}\n");
            put_file(&mut t, path, &content);
            real.push((path.to_string(), content));
        }
        self.images[class.idx()][name] = Some(t);
        Some(real)
    }

    // -- predictions ---------------------------------------------------------------------

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (h, name) in HIERS.iter().enumerate() {
            s.views.insert(name.to_string(), self.view(h));
            let (meta, mount) = match &self.merged[h] {
                None => (None, None),
                Some(m) => {
                    let list: String = m.names.iter().map(|n| format!("{n}\n")).collect();
                    let work = match m.upper {
                        UpperModel::Routing => Some(format!(
                            "var/lib/extensions.mutable/.systemd-{}-workdir\n",
                            name
                        )),
                        UpperModel::Base => Some(format!(".systemd-{}-workdir\n", name)),
                        _ => None,
                    };
                    (Some((list, work)), Some(m.upper == UpperModel::None))
                }
            };
            s.meta.insert(name.to_string(), meta);
            s.mounts.insert(name.to_string(), mount);
            let r = match &self.routing[h] {
                Routing::Missing => RoutingSnap::Missing,
                Routing::Dir { good_mode, tree } => {
                    RoutingSnap::Dir(if *good_mode { 0o755 } else { 0o700 }, tree.clone())
                }
                Routing::SelfLink => RoutingSnap::Symlink(format!("../../../{}", name)),
                Routing::Dangling => RoutingSnap::Symlink("../../../nonexistent".into()),
            };
            s.routing.insert(name.to_string(), r);
            if !matches!(self.routing[h], Routing::Missing) {
                s.routing_names.insert(name.to_string());
            }
            match self.merged[h].as_ref().map(|m| &m.upper) {
                Some(UpperModel::Routing) => {
                    s.routing_names.insert(format!(".systemd-{}-workdir", name));
                }
                Some(UpperModel::Base) => {
                    s.root_workdirs.insert(format!(".systemd-{}-workdir", name));
                }
                _ => {}
            }
        }
        s.routing_parent = self.routing_parent;
        for c in [Class::Sys, Class::Conf] {
            let mut hs: Vec<usize> = c.hiers().to_vec();
            hs.sort_by_key(|&h| HIERS[h]);
            let st: Vec<StatusSnap> = hs
                .iter()
                .map(|&h| StatusSnap {
                    hierarchy: format!("/{}", HIERS[h]),
                    extensions: self.merged[h].as_ref().map(|m| m.names.clone()),
                    mutable: self.merged[h].as_ref().map(|m| m.mode),
                })
                .collect();
            s.status.insert(format!("{c:?}"), st);
        }
        s
    }
}

/// The topmost entry at `path` decides; a whiteout hides it.
fn resolve(layers: &[&Tree], path: &str) -> Option<Node> {
    for l in layers {
        if let Some(n) = l.get(path) {
            return match n {
                Node::Whiteout => None,
                n => Some(n.clone()),
            };
        }
    }
    None
}

fn merged_view(layers: &[&Tree], prefix: &str) -> Tree {
    let keys: BTreeSet<&String> = layers
        .iter()
        .flat_map(|t| t.keys().filter(|k| k.starts_with(prefix)))
        .collect();
    let mut out = Tree::new();
    for k in keys {
        if ancestors(k)
            .iter()
            .any(|a| resolve(layers, a) != Some(Node::Dir))
        {
            continue;
        }
        if let Some(n) = resolve(layers, k) {
            out.insert(k.clone(), n);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Observations of the real root

#[derive(Debug, Clone, PartialEq, Eq)]
enum RoutingSnap {
    Missing,
    Dir(u32, Tree),
    Symlink(String),
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StatusSnap {
    hierarchy: String,
    extensions: Option<Vec<String>>,
    mutable: Option<MutableMode>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Snapshot {
    /// Visible tree per hierarchy (without the meta dir of a merge).
    views: BTreeMap<String, Tree>,
    /// Meta dir per hierarchy: `extensions` file and `work_dir` file.
    meta: BTreeMap<String, Option<(String, Option<String>)>>,
    /// Overlay mounted on the hierarchy: `Some(read_only)`.
    mounts: BTreeMap<String, Option<bool>>,
    /// Mode of `var/lib/extensions.mutable`.
    routing_parent: Option<u32>,
    /// Entries of `var/lib/extensions.mutable`.
    routing_names: BTreeSet<String>,
    /// Each routing dir.
    routing: BTreeMap<String, RoutingSnap>,
    /// `.systemd-*` entries in the root directory (work dirs of the symlink trick).
    root_workdirs: BTreeSet<String>,
    /// `status` per class.
    status: BTreeMap<String, Vec<StatusSnap>>,
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn walk(dir: &Path, key: &str, skip: &[&str], out: &mut Tree) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) {
            continue;
        }
        let k = format!("{key}/{name}");
        let p = e.path();
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let node = if ft.is_dir() {
            walk(&p, &k, &[], out);
            Node::Dir
        } else if ft.is_file() {
            Node::File(std::fs::read_to_string(&p).unwrap_or_else(|e| format!("<unreadable: {e}>")))
        } else if ft.is_char_device() && md.rdev() == 0 {
            Node::Whiteout
        } else if ft.is_symlink() {
            Node::Symlink(
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            Node::Other(format!("{ft:?}"))
        };
        out.insert(k, node);
    }
}

fn context(r: &TestRoot, c: Class, mode: Option<MutableMode>) -> Context {
    let mut o = Options::new(c.image_class());
    o.root = Some(r.path.to_string_lossy().into_owned());
    o.mutable = mode;
    // The model is of systemd 257's behaviour (262 merges every hierarchy in the mutable
    // modes, which the model does not predict).
    o.compat = Some(sysext::Compat::V257);
    o.hierarchies = Some(
        c.image_class()
            .info()
            .default_hierarchies
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    o.lock_timeout = Some(std::time::Duration::from_secs(10));
    Context::new(o).expect("context")
}

fn observe(r: &TestRoot, model: &Model) -> Snapshot {
    let mut s = Snapshot::default();
    let mounts = sysext::testing::mountinfo::read_self().unwrap();
    for (h, name) in HIERS.iter().enumerate() {
        let c = class_of_hier(h);
        let mut view = Tree::new();
        // The meta dir of a merge is checked on its own; an unmerged hierarchy must not have one.
        let skip: &[&str] = if model.merged[h].is_some() {
            &[c.dot()]
        } else {
            &[]
        };
        walk(&r.p(name), name, skip, &mut view);
        s.views.insert(name.to_string(), view);
        let dot = r.p(&format!("{name}/{}", c.dot()));
        let meta = if dot.is_dir() {
            let list = std::fs::read_to_string(dot.join(c.image_class().info().list_file))
                .unwrap_or_else(|e| format!("<{e}>"));
            Some((list, std::fs::read_to_string(dot.join("work_dir")).ok()))
        } else {
            None
        };
        s.meta.insert(name.to_string(), meta);
        let target = r.p(name).to_string_lossy().into_owned();
        let ov: Vec<_> = mounts.iter().filter(|m| m.mount_point == target).collect();
        let mount = match ov.len() {
            0 => None,
            1 if ov[0].fstype == "overlay" => Some(ov[0].has_option("ro")),
            _ => {
                // Stacked or foreign mounts: never expected; make it show in the diff.
                s.routing_names
                    .insert(format!("<{} mounts on {name}>", ov.len()));
                Some(ov.last().unwrap().has_option("ro"))
            }
        };
        s.mounts.insert(name.to_string(), mount);
        let d = r.p(&format!("var/lib/extensions.mutable/{name}"));
        let rs = match std::fs::symlink_metadata(&d) {
            Err(_) => RoutingSnap::Missing,
            Ok(md) if md.file_type().is_symlink() => RoutingSnap::Symlink(
                std::fs::read_link(&d)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ),
            Ok(md) if md.is_dir() => {
                let mut t = Tree::new();
                walk(&d, name, &[], &mut t);
                RoutingSnap::Dir(md.permissions().mode() & 0o7777, t)
            }
            Ok(md) => RoutingSnap::Other(format!("{:?}", md.file_type())),
        };
        s.routing.insert(name.to_string(), rs);
    }
    let parent = r.p("var/lib/extensions.mutable");
    if let Ok(md) = std::fs::symlink_metadata(&parent) {
        s.routing_parent = Some(md.permissions().mode() & 0o7777);
        for e in std::fs::read_dir(&parent).unwrap().flatten() {
            s.routing_names
                .insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    for e in std::fs::read_dir(&r.path).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(".systemd-") {
            s.root_workdirs.insert(n);
        }
    }
    for c in [Class::Sys, Class::Conf] {
        let st = match context(r, c, Some(MutableMode::Disabled)).status() {
            Ok(v) => v
                .into_iter()
                .map(|h| StatusSnap {
                    hierarchy: h.hierarchy,
                    extensions: h.extensions,
                    mutable: h.mutable,
                })
                .collect(),
            Err(e) => vec![StatusSnap {
                hierarchy: format!("<status failed: {e}>"),
                extensions: None,
                mutable: None,
            }],
        };
        s.status.insert(format!("{c:?}"), st);
    }
    s
}

/// A readable list of differences.
fn diff(real: &Snapshot, want: &Snapshot) -> String {
    let mut out = String::new();
    for (h, wt) in &want.views {
        let rt = real.views.get(h).cloned().unwrap_or_default();
        let keys: BTreeSet<&String> = wt.keys().chain(rt.keys()).collect();
        for k in keys {
            if wt.get(k) != rt.get(k) {
                out += &format!("  view {k}: real {:?}, model {:?}\n", rt.get(k), wt.get(k));
            }
        }
    }
    for (h, w) in &want.routing {
        let r = real.routing.get(h);
        if r != Some(w) {
            match (r, w) {
                (Some(RoutingSnap::Dir(rm, rt)), RoutingSnap::Dir(wm, wt)) => {
                    if rm != wm {
                        out += &format!("  routing dir {h}: mode real {rm:o}, model {wm:o}\n");
                    }
                    let keys: BTreeSet<&String> = wt.keys().chain(rt.keys()).collect();
                    for k in keys {
                        if wt.get(k) != rt.get(k) {
                            out += &format!(
                                "  routing {h} entry {k}: real {:?}, model {:?}\n",
                                rt.get(k),
                                wt.get(k)
                            );
                        }
                    }
                }
                _ => out += &format!("  routing dir {h}: real {r:?}, model {w:?}\n"),
            }
        }
    }
    macro_rules! field {
        ($f:ident) => {
            if real.$f != want.$f {
                out += &format!(
                    "  {}: real {:?}, model {:?}\n",
                    stringify!($f),
                    real.$f,
                    want.$f
                );
            }
        };
    }
    field!(meta);
    field!(mounts);
    field!(routing_parent);
    field!(routing_names);
    field!(root_workdirs);
    field!(status);
    out
}

// ---------------------------------------------------------------------------------------
// Running a case

static CASE_NO: AtomicUsize = AtomicUsize::new(0);

/// A fresh root; on drop everything mounted below it is detached and it is removed.
struct CaseRoot {
    root: Option<TestRoot>,
}

impl CaseRoot {
    fn new() -> CaseRoot {
        let n = CASE_NO.fetch_add(1, AtomicOrdering::Relaxed);
        CaseRoot {
            root: Some(TestRoot::new(&format!("model{n}"))),
        }
    }
    fn r(&self) -> &TestRoot {
        self.root.as_ref().unwrap()
    }
}

impl Drop for CaseRoot {
    fn drop(&mut self) {
        let r = self.root.take().unwrap();
        for c in [Class::Sys, Class::Conf] {
            let _ = context(&r, c, Some(MutableMode::Disabled)).unmerge();
        }
        let base = r.path.to_string_lossy().into_owned();
        for _ in 0..16 {
            let mut below: Vec<String> = sysext::testing::mountinfo::read_self()
                .unwrap()
                .into_iter()
                .map(|m| m.mount_point)
                .filter(|p| p.starts_with(&base))
                .collect();
            if below.is_empty() {
                break;
            }
            below.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in below {
                let _ = rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH);
            }
        }
        if let Ok(st) = std::fs::metadata(&r.path) {
            for c in ["sysext", "confext"] {
                let _ = std::fs::remove_file(format!(
                    "/run/libsysext/{c}-{}-{}.lock",
                    st.dev(),
                    st.ino()
                ));
            }
        }
        drop(r);
    }
}

fn real_write(r: &TestRoot, path: &str, content: &str) -> Outcome {
    let p = r.p(path);
    std::fs::create_dir_all(p.parent().unwrap()).map_err(errno)?;
    std::fs::write(&p, content).map_err(errno)
}

fn real_routing(r: &TestRoot, h: usize, kind: RoutingKind) {
    let d = r.p(&format!("var/lib/extensions.mutable/{}", HIERS[h]));
    match std::fs::symlink_metadata(&d) {
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(&d).unwrap(),
        Ok(_) => std::fs::remove_file(&d).unwrap(),
        Err(_) => {}
    }
    if kind != RoutingKind::Remove {
        std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    }
    match kind {
        RoutingKind::Remove => {}
        RoutingKind::Mkdir | RoutingKind::MkdirBadMode => {
            std::fs::create_dir(&d).unwrap();
            let mode = if kind == RoutingKind::Mkdir {
                0o755
            } else {
                0o700
            };
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        RoutingKind::SymlinkToHierarchy => {
            std::os::unix::fs::symlink(format!("../../../{}", HIERS[h]), &d).unwrap()
        }
        RoutingKind::Dangling => std::os::unix::fs::symlink("../../../nonexistent", &d).unwrap(),
    }
}

fn merge_outcome(res: sysext::Result<sysext::Report>) -> MergeOutcome {
    res.map(|rep| rep.merged).map_err(|e| {
        if trace() {
            eprintln!("  -> error: {e} (errno {})", e.errno());
        }
        e.errno()
    })
}

/// Apply one operation to the model and the real root; returns a description of a
/// mismatch in the operation's outcome.
fn step(r: &TestRoot, m: &mut Model, op: &Op, attic: &mut usize) -> Result<(), String> {
    let check = |what: &str, real: String, want: String| {
        record(format!("{} -> {}", op_label(op), outcome_label(&real)));
        if real == want {
            Ok(())
        } else {
            Err(format!("{what}: real {real}, model {want}"))
        }
    };
    match op {
        Op::Merge(mode) => {
            let real = merge_outcome(context(r, m.class, Some(*mode)).merge());
            let want = m.merge(*mode);
            check("merge outcome", format!("{real:?}"), format!("{want:?}"))
        }
        Op::Refresh(mode) => {
            let real = merge_outcome(context(r, m.class, Some(*mode)).refresh());
            let want = m.refresh(*mode, None);
            check("refresh outcome", format!("{real:?}"), format!("{want:?}"))
        }
        Op::MergeNames { names, mode } => {
            let strs: Vec<String> = names.iter().map(|&n| NAMES[n].to_string()).collect();
            let real = merge_outcome(context(r, m.class, *mode).merge_names(&strs));
            let want = m.merge_names(names, *mode);
            check(
                "merge_names outcome",
                format!("{real:?}"),
                format!("{want:?}"),
            )
        }
        Op::UnmergeNames { names, mode } => {
            let strs: Vec<String> = names.iter().map(|&n| NAMES[n].to_string()).collect();
            let real = merge_outcome(context(r, m.class, *mode).unmerge_names(&strs));
            let want = m.unmerge_names(names, *mode);
            check(
                "unmerge_names outcome",
                format!("{real:?}"),
                format!("{want:?}"),
            )
        }
        Op::Unmerge => {
            let real = context(r, m.class, None)
                .unmerge()
                .map(|_| ())
                .map_err(|e| e.errno());
            m.unmerge();
            check("unmerge outcome", format!("{real:?}"), "Ok(())".into())
        }
        Op::SwitchClass => {
            m.class = m.class.other();
            Ok(())
        }
        Op::Write { path, tag } => {
            let content = format!("w{tag}\n");
            let real = real_write(r, PATHS[*path], &content);
            let want = m.write(PATHS[*path], &content);
            check("write outcome", format!("{real:?}"), format!("{want:?}"))
        }
        Op::Delete { path } => {
            let real = std::fs::remove_file(r.p(PATHS[*path])).map_err(errno);
            let want = m.delete(PATHS[*path]);
            check("delete outcome", format!("{real:?}"), format!("{want:?}"))
        }
        Op::AddExt { class, name, files } => {
            if let Some(real_files) = m.add_ext(*class, *name, files) {
                let files: Vec<(&str, &str)> = real_files
                    .iter()
                    .map(|(p, c)| (p.as_str(), c.as_str()))
                    .collect();
                match class {
                    Class::Sys => r.sysext(NAMES[*name], &files),
                    Class::Conf => r.confext(NAMES[*name], &files),
                }
            }
            Ok(())
        }
        Op::RemoveExt { class, name } => {
            if m.images[class.idx()][*name].take().is_some() {
                let dir = match class {
                    Class::Sys => "var/lib/extensions",
                    Class::Conf => "var/lib/confexts",
                };
                *attic += 1;
                std::fs::create_dir_all(r.p("attic")).unwrap();
                std::fs::rename(
                    r.p(&format!("{dir}/{}", NAMES[*name])),
                    r.p(&format!("attic/{attic}")),
                )
                .unwrap();
            }
            Ok(())
        }
        Op::Routing { hier, kind } => {
            if m.merged[*hier].is_some() {
                return Ok(());
            }
            real_routing(r, *hier, *kind);
            if *kind != RoutingKind::Remove && m.routing_parent.is_none() {
                m.routing_parent = Some(0o755);
            }
            m.routing[*hier] = match kind {
                RoutingKind::Remove => Routing::Missing,
                RoutingKind::Mkdir => Routing::Dir {
                    good_mode: true,
                    tree: Tree::new(),
                },
                RoutingKind::MkdirBadMode => Routing::Dir {
                    good_mode: false,
                    tree: Tree::new(),
                },
                RoutingKind::SymlinkToHierarchy => Routing::SelfLink,
                RoutingKind::Dangling => Routing::Dangling,
            };
            Ok(())
        }
        Op::RoutingPut { path, tag } => {
            let p = PATHS[*path];
            let h = hier_of(p);
            if m.merged[h].is_some() {
                return Ok(());
            }
            let content = format!("r{tag}\n");
            let rel = p.split_once('/').unwrap().1;
            let target = r.p(&format!("var/lib/extensions.mutable/{}/{rel}", HIERS[h]));
            match &mut m.routing[h] {
                Routing::Dir { tree, .. } => put_file(tree, p, &content),
                Routing::SelfLink => put_file(&mut m.base, p, &content),
                Routing::Missing | Routing::Dangling => return Ok(()),
            }
            // Replace whatever is there (a whiteout cannot be opened for writing).
            let _ = std::fs::remove_file(&target);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, content).unwrap();
            Ok(())
        }
    }
}

/// Coverage: how often each (operation, outcome) pair was seen.
static STATS: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

fn record(key: String) {
    *STATS.lock().unwrap().entry(key).or_default() += 1;
}

fn op_label(op: &Op) -> String {
    match op {
        Op::Merge(m) => format!("merge({m})"),
        Op::Refresh(m) => format!("refresh({m})"),
        Op::MergeNames { mode, .. } => {
            format!("merge_names({})", mode.map(|m| m.as_str()).unwrap_or("-"))
        }
        Op::UnmergeNames { mode, .. } => {
            format!("unmerge_names({})", mode.map(|m| m.as_str()).unwrap_or("-"))
        }
        Op::Write { .. } => "write".into(),
        Op::Delete { .. } => "delete".into(),
        other => format!("{other:?}")
            .split([' ', '('])
            .next()
            .unwrap()
            .to_string(),
    }
}

fn outcome_label(s: &str) -> String {
    if s.starts_with("Ok") {
        return "ok".into();
    }
    let n: i32 = s
        .trim_start_matches("Err(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(-1);
    std::io::Error::from_raw_os_error(n)
        .kind()
        .to_string()
        .replace(' ', "_")
        + &format!("({n})")
}

fn trace() -> bool {
    std::env::var_os("SYSEXT_MODEL_TRACE").is_some()
}

/// Run one case on a fresh root; `Err` describes the first divergence.
fn run_case(case: &Case) -> Result<(), String> {
    let cr = CaseRoot::new();
    let r = cr.r();
    let mut base = Tree::new();
    for h in HIERS {
        walk(&r.p(h), h, &[], &mut base);
    }
    let mut m = Model::new(case.class, base);
    let mut attic = 0;
    let initial = observe(r, &m);
    let want = m.snapshot();
    if initial != want {
        return Err(format!("initial state differs:\n{}", diff(&initial, &want)));
    }
    for (i, op) in case.setup.iter().chain(case.ops.iter()).enumerate() {
        if trace() {
            eprintln!("step {i}: {:?} {op:?}", m.class);
        }
        step(r, &mut m, op, &mut attic)
            .map_err(|e| format!("step {i} ({op:?}, class {:?}): {e}", m.class))?;
        let real = observe(r, &m);
        let want = m.snapshot();
        if real != want {
            return Err(format!(
                "after step {i} ({op:?}, class {:?}):\n{}",
                m.class,
                diff(&real, &want)
            ));
        }
    }
    Ok(())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config() -> Config {
    Config {
        cases: env_usize("SYSEXT_MODEL_CASES", 128) as u32,
        max_shrink_iters: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "regressions/model.txt",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    }
}

fn run_model(mut runner: TestRunner, label: &str) {
    // SAFETY-free: umask is process-wide; the model assumes the usual 022.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let max_ops = env_usize("SYSEXT_MODEL_OPS", 16);
    for v in [
        "SYSTEMD_SYSEXT_MUTABLE_MODE",
        "SYSTEMD_CONFEXT_MUTABLE_MODE",
        "SYSTEMD_SYSEXT_HIERARCHIES",
        "SYSTEMD_CONFEXT_HIERARCHIES",
    ] {
        std::env::remove_var(v);
    }
    let start = std::time::Instant::now();
    let runs = AtomicUsize::new(0);
    let res = runner.run(&case_strategy(max_ops), |case| {
        runs.fetch_add(1, AtomicOrdering::Relaxed);
        run_case(&case).map_err(TestCaseError::fail)
    });
    println!(
        "{label}: {} executions (cases incl. shrinking) in {:.1}s",
        runs.load(AtomicOrdering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    if std::env::var_os("SYSEXT_MODEL_STATS").is_some() {
        for (k, v) in STATS.lock().unwrap().iter() {
            println!("  {v:6}  {k}");
        }
    }
    if let Err(e) = res {
        panic!("{label}: {e}");
    }
}

#[test]
fn model_fixed_seed() {
    isolated!();
    let seed = [0x5e; 32];
    run_model(
        TestRunner::new_with_rng(config(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed)),
        "model_fixed_seed",
    );
}

#[test]
fn model_random_seed() {
    isolated!();
    run_model(TestRunner::new(config()), "model_random_seed");
}

// ---------------------------------------------------------------------------------------
// Regressions: minimal sequences found by the state machine, kept as plain tests.

fn regression(name: &str, case: Case) {
    if !isolated(name) {
        return;
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    if let Err(e) = run_case(&case) {
        panic!("{name}: {e}\n{case:#?}");
    }
}

fn sysext_with(name: usize, files: &[usize]) -> Op {
    Op::AddExt {
        class: Class::Sys,
        name,
        files: files.iter().map(|&p| (p, 0)).collect(),
    }
}

/// Refreshing a read-only merge into `yes` while the routing dir of /usr links to /usr.
/// Was bug 1 (fixed in 914d3a5): failed with EINVAL, the host upper dir coming from a private
/// clone of its mount and the work dir from the root's mount.
#[test]
fn regression_refresh_into_symlink_trick() {
    regression(
        "regression_refresh_into_symlink_trick",
        Case {
            class: Class::Sys,
            setup: vec![sysext_with(0, &[3])],
            ops: vec![
                Op::Routing {
                    hier: 0,
                    kind: RoutingKind::SymlinkToHierarchy,
                },
                Op::Refresh(MutableMode::Disabled),
                Op::Refresh(MutableMode::Enabled),
            ],
        },
    );
}

/// Refreshing a merge that uses the symlink trick after the image set changed.
/// Was bug 1 (fixed in 914d3a5): failed with EINVAL, the host upper dir coming from a private
/// clone of its mount and the work dir from the root's mount.
#[test]
fn regression_refresh_symlink_trick_with_new_extension() {
    regression(
        "regression_refresh_symlink_trick_with_new_extension",
        Case {
            class: Class::Sys,
            setup: vec![sysext_with(0, &[1])],
            ops: vec![
                Op::Routing {
                    hier: 0,
                    kind: RoutingKind::SymlinkToHierarchy,
                },
                Op::Merge(MutableMode::Auto),
                sysext_with(1, &[2]),
                Op::Refresh(MutableMode::Auto),
            ],
        },
    );
}

/// `unmerge NAME...` with no names on an ephemeral merge: a selective refresh in the
/// recorded mode, which keeps the ephemeral upper layer and so the writes (a plain refresh
/// would drop them). Found when the model still expected them dropped.
#[test]
fn regression_unmerge_no_names_on_ephemeral_merge() {
    regression(
        "regression_unmerge_no_names_on_ephemeral_merge",
        Case {
            class: Class::Sys,
            setup: vec![sysext_with(2, &[])],
            ops: vec![
                Op::Merge(MutableMode::Ephemeral),
                Op::Write { path: 0, tag: 0 },
                Op::UnmergeNames {
                    names: vec![],
                    mode: None,
                },
            ],
        },
    );
}
