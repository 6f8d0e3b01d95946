//! Properties of the pure planner (`sysext::plan::plan`), on generated inputs.
//!
//! The expected outcome of every input is computed here by an independent oracle written from
//! the decision table of the spec (§4.5, §5.2, §5.3), not from `plan.rs`. Case count: proptest's
//! default scaled by `PROPTEST_CASES` (default here: 2048 per property).

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::BTreeSet;
use sysext::plan::{
    plan, DirInfo, ExtLayer, ExtensionInput, HierarchyInput, Layer, MutableDir, Plan, PlanInputs,
    Upper, WorkDir,
};
use sysext::testing::hierarchy::Hierarchy;
use sysext::testing::version::strverscmp_improved;
use sysext::{Compat, ImageClass, MutableMode};

const ROOT: &str = "/R";
const HIERS: [&str; 4] = ["/usr", "/opt", "/usr/local", "/etc"];
/// Includes names that compare equal (`foo_1`, `foo1`) and names whose version order differs
/// from byte order (`b-2` < `b-10`).
const NAMES: [&str; 8] = ["a", "b-2", "b-10", "foo_1", "foo1", "Z", "1.9", "1~rc1"];
const MODES: [u32; 4] = [0o755, 0o750, 0o700, 0o1777];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
}

fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Generators

#[derive(Debug, Clone)]
enum RoutingGen {
    Missing,
    Dangling,
    /// The host hierarchy itself (by path, or by device and inode under another path).
    SelfDir {
        by_path: bool,
    },
    /// A directory elsewhere; `mode: None` is the host hierarchy's mode (so that the mode
    /// check passes often enough for the later checks to be reached).
    Other {
        mode: Option<u32>,
        read_only: bool,
        cross_dev: bool,
        under_root: bool,
    },
    NotDir {
        mode: Option<u32>,
    },
}

#[derive(Debug, Clone)]
struct HierGen {
    idx: usize,
    host: Option<(u32, bool, bool, bool)>, // mode, empty, read_only, cross_dev
    routing: RoutingGen,
}

fn routing_mode() -> impl Strategy<Value = Option<u32>> {
    prop::option::weighted(0.4, prop::sample::select(MODES.to_vec()))
}

fn routing_gen() -> impl Strategy<Value = RoutingGen> {
    prop_oneof![
        2 => Just(RoutingGen::Missing),
        1 => Just(RoutingGen::Dangling),
        2 => any::<bool>().prop_map(|by_path| RoutingGen::SelfDir { by_path }),
        4 => (routing_mode(), prop::bool::weighted(0.1), prop::bool::weighted(0.1), prop::bool::weighted(0.8))
            .prop_map(|(mode, read_only, cross_dev, under_root)| RoutingGen::Other { mode, read_only, cross_dev, under_root }),
        2 => routing_mode().prop_map(|mode| RoutingGen::NotDir { mode }),
    ]
}

fn hier_gen() -> impl Strategy<Value = (Option<(u32, bool, bool, bool)>, RoutingGen)> {
    (
        prop::option::weighted(
            0.85,
            (
                prop::sample::select(MODES.to_vec()),
                prop::bool::weighted(0.2),
                prop::bool::weighted(0.08),
                prop::bool::weighted(0.08),
            ),
        ),
        routing_gen(),
    )
}

fn ext_layer_gen() -> impl Strategy<Value = u8> {
    // 0 absent, 1 empty, 2 content, 3 not a directory
    prop_oneof![4 => Just(0u8), 2 => Just(1u8), 6 => Just(2u8), 1 => Just(3u8)]
}

#[derive(Debug, Clone)]
struct Gen {
    compat: Compat,
    class: ImageClass,
    mode: MutableMode,
    noexec: Option<bool>,
    hiers: Vec<HierGen>,
    exts: Vec<(usize, Vec<u8>)>,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        prop::sample::select(vec![ImageClass::Sysext, ImageClass::Confext]),
        prop::sample::select(MutableMode::ALL.to_vec()),
        prop::option::of(any::<bool>()),
        prop::sample::subsequence((0..HIERS.len()).collect::<Vec<_>>(), 1..=3).prop_shuffle(),
        prop::sample::select(Compat::ALL.to_vec()),
    )
        .prop_flat_map(|(class, mode, noexec, idxs, compat)| {
            let n = idxs.len();
            (
                Just((class, mode, noexec, idxs, compat)),
                prop::collection::vec(hier_gen(), n),
                prop::collection::vec(
                    (0..NAMES.len(), prop::collection::vec(ext_layer_gen(), n)),
                    0..6,
                ),
            )
        })
        .prop_map(|((class, mode, noexec, idxs, compat), hs, exts)| {
            let mut seen = BTreeSet::new();
            let exts = exts.into_iter().filter(|(n, _)| seen.insert(*n)).collect();
            Gen {
                compat,
                class,
                mode,
                noexec,
                hiers: idxs
                    .into_iter()
                    .zip(hs)
                    .map(|(idx, (host, routing))| HierGen { idx, host, routing })
                    .collect(),
                exts,
            }
        })
}

fn build(g: &Gen) -> PlanInputs {
    let mut hierarchies = Vec::new();
    for (i, hg) in g.hiers.iter().enumerate() {
        let h = Hierarchy::new(HIERS[hg.idx]).unwrap();
        let rel = h.relative().to_string();
        let path = format!("{ROOT}/{rel}");
        let host = hg.host.map(|(mode, empty, read_only, cross)| DirInfo {
            path: path.clone(),
            rel: rel.clone(),
            mode,
            dev: 1,
            ino: 100 + i as u64,
            empty,
            read_only,
            parent_dev: Some(if cross { 2 } else { 1 }),
        });
        let host_mode = host.as_ref().map(|d| d.mode).unwrap_or(0o755);
        let routing_rel = h.mutable_dir();
        let mutable_dir_path = format!("{ROOT}/{routing_rel}");
        let routing = match &hg.routing {
            RoutingGen::Missing => MutableDir::Missing,
            RoutingGen::Dangling => MutableDir::Dangling,
            RoutingGen::SelfDir { by_path } => match &host {
                Some(d) if *by_path => MutableDir::Dir(d.clone()),
                // Same device and inode, seen under another path (a bind mount).
                Some(d) => MutableDir::Dir(DirInfo {
                    path: format!("{ROOT}/bind/{rel}"),
                    rel: format!("bind/{rel}"),
                    ..d.clone()
                }),
                // Without a host the link dangles.
                None => MutableDir::Dangling,
            },
            RoutingGen::Other {
                mode,
                read_only,
                cross_dev,
                under_root,
            } => {
                let (p, r) = if *under_root {
                    (mutable_dir_path.clone(), routing_rel.clone())
                } else {
                    (
                        format!("{ROOT}/elsewhere/{}", h.as_component()),
                        format!("elsewhere/{}", h.as_component()),
                    )
                };
                MutableDir::Dir(DirInfo {
                    path: p,
                    rel: r,
                    mode: mode.unwrap_or(host_mode),
                    dev: 1,
                    ino: 200 + i as u64,
                    empty: false,
                    read_only: *read_only,
                    parent_dev: Some(if *cross_dev { 3 } else { 1 }),
                })
            }
            RoutingGen::NotDir { mode } => MutableDir::NotDir {
                mode: mode.unwrap_or(host_mode),
            },
        };
        // A dangling link mostly names a target inside the root (which 262's `yes` creates).
        let mutable_dir_target = match (&routing, hg.idx % 2) {
            (MutableDir::Dangling, 0) => Some(format!("nonexistent/{}", h.as_component())),
            _ => None,
        };
        hierarchies.push(HierarchyInput {
            hierarchy: h,
            path,
            host,
            mutable_dir_path,
            mutable_dir: routing,
            mutable_dir_target,
        });
    }
    let extensions = g
        .exts
        .iter()
        .map(|(n, layers)| ExtensionInput {
            name: NAMES[*n].to_string(),
            layers: layers
                .iter()
                .zip(&g.hiers)
                .map(|(l, hg)| match l {
                    0 => ExtLayer::Absent,
                    1 => ExtLayer::Empty,
                    2 => ExtLayer::Content(format!("/E/{}{}", NAMES[*n], HIERS[hg.idx])),
                    _ => ExtLayer::NotDirectory,
                })
                .collect(),
        })
        .collect();
    PlanInputs {
        class: g.class,
        mode: g.mode,
        noexec: g.noexec,
        compat: g.compat,
        extensions,
        hierarchies,
    }
}

/// Whether the level looks at a hierarchy although no extension has content for it: 262
/// merges every hierarchy in every mutable mode but `no`; 257 never does.
fn merged_without_content(i: &PlanInputs) -> bool {
    i.compat == Compat::V262 && i.mode != MutableMode::Disabled
}

/// Whether hierarchy `idx` without extension content gets an overlay: where the level looks
/// at it, unless the overlay would be the meta layer alone, read-only (no upper dir, no
/// import layer, no host content), which systemd 262 fails to mount and libsysext skips.
fn overlay_without_content(i: &PlanInputs, idx: usize) -> bool {
    use MutableMode::*;
    if !merged_without_content(i) {
        return false;
    }
    let h = &i.hierarchies[idx];
    let dir = matches!(h.mutable_dir, MutableDir::Dir(_));
    let upper = match i.mode {
        Ephemeral | EphemeralImport => true,
        Disabled | Import => false,
        Auto => dir,
        Enabled => {
            dir || matches!(h.mutable_dir, MutableDir::Missing)
                || (matches!(h.mutable_dir, MutableDir::Dangling) && h.mutable_dir_target.is_some())
        }
    };
    let import = matches!(i.mode, Import | EphemeralImport) && dir;
    let host = h.host.as_ref().is_some_and(|d| !d.empty);
    upper || import || host
}

// ---------------------------------------------------------------------------------------
// The oracle: the decision table, written independently of plan.rs.

fn same(a: &DirInfo, b: &DirInfo) -> bool {
    a.path == b.path || (a.dev == b.dev && a.ino == b.ino)
}

/// Expected errno of planning `i`, or `Ok(())`.
fn oracle_errno(i: &PlanInputs) -> Result<(), i32> {
    use MutableMode::*;
    let mode = i.mode;
    for (idx, h) in i.hierarchies.iter().enumerate() {
        let layers: Vec<&ExtLayer> = i.extensions.iter().map(|e| &e.layers[idx]).collect();
        if layers.iter().any(|l| matches!(l, ExtLayer::NotDirectory)) {
            return Err(libc::ENOTDIR);
        }
        let content = layers
            .iter()
            .filter(|l| matches!(l, ExtLayer::Content(_)))
            .count();
        if content == 0 && !merged_without_content(i) {
            continue;
        }
        let hier_mode = h.host.as_ref().map(|d| d.mode & 0o777).unwrap_or(0o755);
        let is_self = |d: &DirInfo| h.host.as_ref().is_some_and(|host| same(host, d));
        if matches!(mode, Auto | Enabled) {
            let m = match &h.mutable_dir {
                MutableDir::Dir(d) => Some(d.mode & 0o777),
                MutableDir::NotDir { mode } => Some(mode & 0o777),
                _ => None,
            };
            if m.is_some_and(|m| m != hier_mode) {
                return Err(libc::EINVAL);
            }
        }
        if matches!(mode, Import | EphemeralImport) {
            match &h.mutable_dir {
                MutableDir::Dir(d) if is_self(d) => return Err(libc::ELOOP),
                MutableDir::NotDir { .. } => return Err(libc::EINVAL),
                _ => {}
            }
        }
        let creates_target = i.compat == Compat::V262 && h.mutable_dir_target.is_some();
        match (mode, &h.mutable_dir) {
            (Auto, MutableDir::NotDir { .. }) => return Err(libc::EINVAL),
            (Enabled, MutableDir::Dangling) if creates_target => {}
            (Enabled, MutableDir::NotDir { .. } | MutableDir::Dangling) => {
                return Err(libc::EEXIST)
            }
            (Auto | Enabled, MutableDir::Dir(d)) => {
                let upper = if is_self(d) {
                    h.host.as_ref().unwrap()
                } else {
                    d
                };
                if upper.read_only {
                    return Err(libc::EROFS);
                }
                if upper.parent_dev != Some(upper.dev) {
                    return Err(libc::EXDEV);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn sorted_names(i: &PlanInputs) -> Vec<String> {
    let mut v: Vec<String> = i.extensions.iter().map(|e| e.name.clone()).collect();
    v.sort_by(|a, b| strverscmp_improved(a, b).then_with(|| a.cmp(b)));
    v
}

fn check_plan(i: &PlanInputs, p: &Plan) -> Result<(), TestCaseError> {
    use MutableMode::*;
    let names = sorted_names(i);
    prop_assert_eq!(
        &p.extensions,
        &names,
        "extensions ascending in version order"
    );
    prop_assert_eq!(p.mode, i.mode);
    prop_assert_eq!(p.class, i.class);
    // Exactly the hierarchies with content (all of them where the level merges every
    // hierarchy), in configured order.
    let want: Vec<usize> = (0..i.hierarchies.len())
        .filter(|&idx| {
            overlay_without_content(i, idx)
                || i.extensions
                    .iter()
                    .any(|e| matches!(e.layers[idx], ExtLayer::Content(_)))
        })
        .collect();
    let got: Vec<usize> = p.hierarchies.iter().map(|h| h.index).collect();
    prop_assert_eq!(
        got,
        want,
        "one overlay per hierarchy with content, none for the others"
    );
    for hp in &p.hierarchies {
        let h = &i.hierarchies[hp.index];
        prop_assert_eq!(&hp.hierarchy, &h.hierarchy);
        prop_assert_eq!(&hp.target, &h.path);
        prop_assert_eq!(hp.create_target, h.host.is_none());
        prop_assert_eq!(
            hp.top_mode,
            h.host.as_ref().map(|d| d.mode & 0o777).unwrap_or(0o755)
        );
        // Parents of created upper/work dirs: 0700 at 257, 0755 at 262.
        let want_parent = match i.compat {
            Compat::V257 => 0o700,
            Compat::V262 => 0o755,
        };
        prop_assert_eq!(hp.parent_mode, want_parent);
        // Meta first, exactly once.
        prop_assert_eq!(hp.lower.first(), Some(&Layer::Meta));
        prop_assert_eq!(hp.lower.iter().filter(|l| **l == Layer::Meta).count(), 1);
        // No duplicate layer.
        let set: BTreeSet<String> = hp.lower.iter().map(|l| format!("{l:?}")).collect();
        prop_assert_eq!(
            set.len(),
            hp.lower.len(),
            "duplicate layer in {:?}",
            hp.lower
        );
        // Upper and work dir together, only in writable modes.
        prop_assert_eq!(hp.upper.is_some(), hp.work_dir.is_some());
        if hp.upper.is_some() {
            prop_assert!(i.mode.may_be_writable(), "upper dir in mode {}", i.mode);
        }
        prop_assert_eq!(hp.flags.read_only, hp.upper.is_none());
        prop_assert_eq!(hp.flags.noatime, hp.upper.is_some());
        prop_assert!(hp.flags.nodev);
        prop_assert_eq!(hp.flags.nosuid, i.class.info().nosuid);
        prop_assert_eq!(hp.flags.noexec, i.noexec.unwrap_or(i.class.info().noexec));
        // Ephemeral modes: tmpfs upper, always; no work_dir meta file.
        let ephemeral = matches!(i.mode, Ephemeral | EphemeralImport);
        prop_assert_eq!(ephemeral, matches!(hp.upper, Some(Upper::Ephemeral)));
        prop_assert_eq!(ephemeral, matches!(hp.work_dir, Some(WorkDir::Ephemeral)));
        match &hp.work_dir {
            Some(WorkDir::Beside { rel, .. }) => {
                prop_assert_eq!(hp.meta.work_dir.as_ref(), Some(rel))
            }
            _ => prop_assert_eq!(&hp.meta.work_dir, &None),
        }
        prop_assert_eq!(&hp.meta.extensions, &names);
        // Which upper: the table.
        let is_self = matches!(&h.mutable_dir, MutableDir::Dir(d) if h.host.as_ref().is_some_and(|host| same(host, d)));
        let want_upper = match (i.mode, &h.mutable_dir) {
            (Disabled | Import, _) => "none",
            (Ephemeral | EphemeralImport, _) => "ephemeral",
            (Auto | Enabled, MutableDir::Dir(_)) if is_self => "host",
            (Auto | Enabled, MutableDir::Dir(_)) => "routing",
            (Enabled, MutableDir::Missing) => "create",
            (Enabled, MutableDir::Dangling)
                if i.compat == Compat::V262 && h.mutable_dir_target.is_some() =>
            {
                "create"
            }
            (Auto, _) => "none",
            (Enabled, _) => unreachable!("yes with a dangling or non-dir routing dir fails"),
        };
        let got_upper = match &hp.upper {
            None => "none",
            Some(Upper::Ephemeral) => "ephemeral",
            Some(Upper::Host { .. }) => "host",
            Some(Upper::MutableDir { create: true, .. }) => "create",
            Some(Upper::MutableDir { create: false, .. }) => "routing",
        };
        prop_assert_eq!(got_upper, want_upper);
        // Work dir beside the upper, named after the hierarchy.
        let wname = format!(".systemd-{}-workdir", h.hierarchy.as_component());
        match (&hp.upper, &hp.work_dir) {
            (
                Some(Upper::MutableDir { rel, path, .. } | Upper::Host { rel, path }),
                Some(WorkDir::Beside { rel: w, path: wp }),
            ) => {
                let parent = rel.rsplit_once('/').map(|(p, _)| p.to_string());
                let want = match &parent {
                    Some(p) => format!("{p}/{wname}"),
                    None => wname.clone(),
                };
                prop_assert_eq!(w, &want);
                prop_assert_eq!(
                    wp,
                    &format!("{ROOT}/{want}"),
                    "display path of the work dir (upper {})",
                    path
                );
            }
            (Some(Upper::Ephemeral), Some(WorkDir::Ephemeral)) | (None, None) => {}
            (u, w) => prop_assert!(false, "upper {:?} with work dir {:?}", u, w),
        }
        // The symlink trick: the host hierarchy is the upper dir, named by the routing dir's
        // resolved path, as systemd does (`upper_dir = resolved_mutable_directory`; the same
        // path as the host's unless the routing dir reaches it otherwise, e.g. a bind mount).
        if let Some(Upper::Host { rel, path }) = &hp.upper {
            let MutableDir::Dir(d) = &h.mutable_dir else {
                unreachable!()
            };
            prop_assert_eq!((path, rel), (&d.path, &d.rel));
        }
        if let Some(Upper::MutableDir {
            create: true,
            rel,
            path,
        }) = &hp.upper
        {
            // The routing dir, or (262) the target of its dangling link.
            let want = h
                .mutable_dir_target
                .clone()
                .unwrap_or_else(|| h.hierarchy.mutable_dir());
            prop_assert_eq!(rel, &want);
            prop_assert_eq!(path, &format!("{ROOT}/{want}"));
        }
        // Import layer just below meta, exactly in the import modes with a routing dir.
        let want_import = matches!(i.mode, Import | EphemeralImport)
            && matches!(h.mutable_dir, MutableDir::Dir(_));
        let imports: Vec<usize> = hp
            .lower
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, Layer::Import(_)))
            .map(|(k, _)| k)
            .collect();
        prop_assert_eq!(imports, if want_import { vec![1] } else { vec![] });
        // Host hierarchy at the bottom unless it is the upper dir, empty or missing.
        let want_host = h.host.as_ref().is_some_and(|d| !d.empty)
            && !matches!(hp.upper, Some(Upper::Host { .. }));
        let hosts: Vec<usize> = hp
            .lower
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, Layer::Host(_)))
            .map(|(k, _)| k)
            .collect();
        prop_assert_eq!(
            hosts,
            if want_host {
                vec![hp.lower.len() - 1]
            } else {
                vec![]
            }
        );
        // Extension layers: those with content, highest version first.
        let mut want_ext: Vec<String> = i
            .extensions
            .iter()
            .filter(|e| matches!(e.layers[hp.index], ExtLayer::Content(_)))
            .map(|e| e.name.clone())
            .collect();
        want_ext.sort_by(|a, b| strverscmp_improved(b, a).then_with(|| b.cmp(a)));
        let got_ext: Vec<String> = hp
            .lower
            .iter()
            .filter_map(|l| match l {
                Layer::Extension { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(got_ext, want_ext);
        // The extension layers sit between meta/import and host.
        let first_ext = 1 + usize::from(want_import);
        for (k, l) in hp.lower.iter().enumerate() {
            if let Layer::Extension { .. } = l {
                prop_assert!(k >= first_ext && (!want_host || k < hp.lower.len() - 1));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// The plan (or its error) matches the decision table, layer by layer.
    #[test]
    fn plan_follows_the_table(g in gen()) {
        let i = build(&g);
        let got = plan(&i);
        let want = oracle_errno(&i);
        match (&got, want) {
            (Ok(p), Ok(())) => check_plan(&i, p)?,
            (Err(e), Err(errno)) => prop_assert_eq!(e.errno(), errno, "{}", e),
            (Ok(p), Err(errno)) => prop_assert!(false, "expected errno {} but planned {:?}", errno, p),
            (Err(e), Ok(())) => prop_assert!(false, "expected a plan but got {} (errno {})", e, e.errno()),
        }
    }

    /// The result does not depend on the order in which images were discovered.
    #[test]
    fn plan_is_independent_of_discovery_order(g in gen(), seed in any::<u64>()) {
        let i = build(&g);
        let mut j = i.clone();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for k in (1..j.extensions.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            j.extensions.swap(k, (s % (k as u64 + 1)) as usize);
        }
        match (plan(&i), plan(&j)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }

    /// Planning is a pure function: same inputs, same plan.
    #[test]
    fn plan_is_deterministic(g in gen()) {
        let i = build(&g);
        match (plan(&i), plan(&i.clone())) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => prop_assert!(false, "nondeterministic"),
        }
    }

    /// The levels differ only where a switch says so: for every hierarchy 257 merges, 262
    /// plans the same overlay (bar the mode of created parents) or fails the same way; 262
    /// adds overlays only for hierarchies without extension content in the mutable modes.
    #[test]
    fn levels_differ_only_by_their_switches(g in gen()) {
        let mut old = build(&g);
        old.compat = Compat::V257;
        let mut new = old.clone();
        new.compat = Compat::V262;
        match (plan(&old), plan(&new)) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(&a.extensions, &b.extensions);
                for ha in &a.hierarchies {
                    // (257 plans no hierarchy with a dangling routing link in `yes`: it fails.)
                    let hb = b.hierarchies.iter().find(|h| h.index == ha.index);
                    prop_assert!(hb.is_some(), "262 dropped {}", ha.hierarchy);
                    let mut hb = hb.unwrap().clone();
                    prop_assert_eq!((ha.parent_mode, hb.parent_mode), (0o700, 0o755));
                    hb.parent_mode = ha.parent_mode;
                    prop_assert_eq!(ha, &hb);
                }
                for hb in &b.hierarchies {
                    if !a.hierarchies.iter().any(|h| h.index == hb.index) {
                        prop_assert!(old.mode != MutableMode::Disabled);
                        let has_ext = hb.lower.iter().any(|l| matches!(l, Layer::Extension { .. }));
                        prop_assert!(!has_ext, "extension layer on a hierarchy without content");
                    }
                }
                if old.mode == MutableMode::Disabled {
                    prop_assert_eq!(a.hierarchies.len(), b.hierarchies.len());
                }
            }
            (Err(a), Err(b)) => {
                // 262 can fail earlier, on a hierarchy 257 does not look at.
                if old.mode == MutableMode::Disabled {
                    prop_assert_eq!(a.to_string(), b.to_string());
                }
            }
            (Err(a), Ok(_)) => {
                // Only a dangling routing link that 262's `yes` follows and creates.
                let creates = old.mode == MutableMode::Enabled
                    && old.hierarchies.iter().any(|h| matches!(h.mutable_dir, MutableDir::Dangling) && h.mutable_dir_target.is_some());
                prop_assert!(creates, "257 fails ({}) where 262 plans", a)
            }
            (Ok(_), Err(b)) => prop_assert!(old.mode != MutableMode::Disabled, "262 fails in mode no: {}", b),
        }
    }

    /// Only `auto` and `yes` look at the routing dir's mode: changing it never changes
    /// the outcome of the other modes.
    #[test]
    fn routing_mode_only_matters_for_auto_and_yes(
        g in gen(),
        m in prop::sample::select(MODES.to_vec()),
        mode in prop::sample::select(vec![MutableMode::Disabled, MutableMode::Import, MutableMode::Ephemeral, MutableMode::EphemeralImport]),
    ) {
        let mut i = build(&g);
        i.mode = mode;
        let mut j = i.clone();
        for h in &mut j.hierarchies {
            match &mut h.mutable_dir {
                MutableDir::Dir(d) if h.host.as_ref().is_none_or(|host| !same(host, d)) => d.mode = m,
                MutableDir::NotDir { mode } => *mode = m,
                _ => {}
            }
        }
        match (plan(&i), plan(&j)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.errno(), b.errno()),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }
}

/// The kernel's layer limit: 499 extensions + meta fit, one more does not (with an empty host).
#[test]
fn too_many_layers() {
    let mk = |n: usize| PlanInputs {
        class: ImageClass::Sysext,
        mode: MutableMode::Disabled,
        noexec: None,
        compat: Compat::NEWEST,
        extensions: (0..n)
            .map(|k| ExtensionInput {
                name: format!("e{k}"),
                layers: vec![ExtLayer::Content(format!("/E/e{k}/usr"))],
            })
            .collect(),
        hierarchies: vec![HierarchyInput {
            hierarchy: Hierarchy::new("/usr").unwrap(),
            path: "/R/usr".into(),
            host: None,
            mutable_dir_path: "/R/var/lib/extensions.mutable/usr".into(),
            mutable_dir: MutableDir::Missing,
            mutable_dir_target: None,
        }],
    };
    let p = plan(&mk(499)).unwrap();
    assert_eq!(p.hierarchies[0].lower.len(), 500);
    assert_eq!(plan(&mk(500)).unwrap_err().errno(), libc::E2BIG);
}
