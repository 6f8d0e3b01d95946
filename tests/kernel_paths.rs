//! The executor's kernel paths are equivalent (issue 22, item 2).
//!
//! Where the executor has more than one way to do a step (see `core/src/kernel.rs`: detached
//! or staged layers, `lowerdir+` or one `lowerdir=` option string, refresh beneath the old
//! overlay or in a window, statmount or mountinfo, erofs from the file or through a loop
//! device), the choice must not show. This property test generates random plans: an
//! extension set (directory, erofs and squashfs extensions with random files, directories
//! and symlinks, random modes, no whiteouts), routing dirs with or without content, and a
//! sequence of merges, writes, deletions, mode changes, extensions added or removed,
//! refreshes and unmerges in random mutable modes (ephemeral and import among them), always
//! ending in an unmerge. Each case runs, in a private mount namespace of its own (the test
//! binary re-executed under `unshare -m --propagation private`), once with every kernel
//! feature the running kernel has and once with each subset of them, on a fresh root at the
//! same path each time, and after every step compares what can be observed with the run
//! that may use everything:
//!
//! * the outcome of the step (merged/unmerged names, skipped images, or the error's errno
//!   and kind);
//! * the visible tree of every hierarchy: names, types, permission bits, file contents,
//!   symlink targets; the meta dir's files (`dev` compared as "equals the mount's st_dev");
//! * the mounts below the root: mount point, type, source, per-mount options (read-only or
//!   not, nodev, nosuid, noexec, atime), the number of overlay layers, the overlay's options
//!   (layer paths left out, they name fds); whether each hierarchy is writable;
//! * the routing dirs and work dirs below `var/lib/extensions.mutable` (where writes land;
//!   the overlay's private `work/` content left out), the base trees after an unmerge;
//! * `status` (extensions, mutable mode, upper, interrupted), the number of ephemeral dirs
//!   and of loop devices backed by files of the root after an unmerge (none while merged is
//!   not compared: erofs from a file needs none by design).
//!
//! Knobs: `SYSEXT_KERNEL_PATHS_CASES` (default 4 cases; every case runs every combination; not
//! `PROPTEST_CASES`, which scripts set for the core's property tests, where a case is cheap),
//! `PROPTEST_RNG_SEED` (otherwise a fixed seed, so the test command is deterministic;
//! `SYSEXT_KERNEL_PATHS_RANDOM=1` draws one), `SYSEXT_KERNEL_PATHS_TRACE=1` prints each
//! observation. `LIBSYSEXT_KERNEL_DISABLE` narrows the feature set whose subsets are run.
//! Failures shrink; the minimal case is printed as the file the child reads.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use sysext::{Context, ImageClass, KernelFeatures, MutableMode};
use sysext_tests::{is_root, settled_loops_of, sh, TestRoot};

/// Set in the child: the file holding the case to run.
const CASE_ENV: &str = "SYSEXT_KERNEL_PATHS_CASE";
/// Set in the child: where it writes its verdict.
const RESULT_ENV: &str = "SYSEXT_KERNEL_PATHS_RESULT";
const TEST_NAME: &str = "kernel_paths_are_equivalent";

// ---------------------------------------------------------------------------------------
// Cases

/// Paths below a hierarchy that extensions, routing dirs and writes use. Some exist in the
/// base (`bin/base`, `share/base/data`, `base.conf`), so that layers cover each other.
const SUB: [&str; 13] = [
    "bin/base",
    "bin/t",
    "share/base",
    "share/base/data",
    "share/p",
    "share/p/f",
    "share/p/q",
    "share/p/q/g",
    "t",
    "p",
    "p/f",
    "base.conf",
    "lib/x",
];

/// Relative symlink targets (never more `..` than an entry is deep: they stay in the root).
const TARGETS: [&str; 4] = ["t", "f", "../t", "missing"];
const DIR_MODES: [u32; 3] = [0o755, 0o700, 0o750];
const FILE_MODES: [u32; 4] = [0o644, 0o755, 0o600, 0o444];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir(u32),
    /// Mode and content tag.
    File(u32, u8),
    Symlink(usize),
}

/// One entry: hierarchy (index into the class's hierarchies), path (index into [`SUB`]), node.
type Entry = (usize, usize, Node);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtKind {
    Dir,
    Erofs,
    Squashfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ext {
    kind: ExtKind,
    present: bool,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Merge(MutableMode),
    /// Mode, `always_refresh`.
    Refresh(MutableMode, bool),
    Unmerge,
    Write(usize, usize, u8),
    Mkdir(usize, usize),
    Delete(usize, usize),
    Chmod(usize, usize, u32),
    /// Put extension N back in its search dir (no-op if there).
    Add(usize),
    /// Move extension N out of its search dir (no-op if gone).
    Remove(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Case {
    confext: bool,
    exts: Vec<Ext>,
    /// Per hierarchy: no routing dir, or one (mode right or wrong) with entries.
    routing: Vec<Option<(bool, Vec<Entry>)>>,
    ops: Vec<Op>,
}

impl Case {
    fn class(&self) -> ImageClass {
        if self.confext {
            ImageClass::Confext
        } else {
            ImageClass::Sysext
        }
    }
    fn hiers(&self) -> &'static [&'static str] {
        if self.confext {
            &["etc"]
        } else {
            &["usr", "opt"]
        }
    }
}

fn node_strategy() -> impl Strategy<Value = Node> {
    prop_oneof![
        2 => prop::sample::select(DIR_MODES.to_vec()).prop_map(Node::Dir),
        5 => (prop::sample::select(FILE_MODES.to_vec()), 0u8..3).prop_map(|(m, t)| Node::File(m, t)),
        1 => (0..TARGETS.len()).prop_map(Node::Symlink),
    ]
}

fn entries_strategy(hiers: usize, max: usize) -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec((0..hiers, 0..SUB.len(), node_strategy()), 0..max)
}

fn mode_strategy() -> impl Strategy<Value = MutableMode> {
    prop::sample::select(MutableMode::ALL.to_vec())
}

fn op_strategy(hiers: usize, exts: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => mode_strategy().prop_map(Op::Merge),
        3 => (mode_strategy(), any::<bool>()).prop_map(|(m, a)| Op::Refresh(m, a)),
        1 => Just(Op::Unmerge),
        4 => (0..hiers, 0..SUB.len(), 0u8..3).prop_map(|(h, p, t)| Op::Write(h, p, t)),
        1 => (0..hiers, 0..SUB.len()).prop_map(|(h, p)| Op::Mkdir(h, p)),
        2 => (0..hiers, 0..SUB.len()).prop_map(|(h, p)| Op::Delete(h, p)),
        1 => (0..hiers, 0..SUB.len(), prop::sample::select(FILE_MODES.to_vec()))
            .prop_map(|(h, p, m)| Op::Chmod(h, p, m)),
        1 => (0..exts).prop_map(Op::Add),
        1 => (0..exts).prop_map(Op::Remove),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    any::<bool>()
        .prop_flat_map(|confext| {
            let hiers = if confext { 1 } else { 2 };
            (
                Just(confext),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just(ExtKind::Dir),
                            Just(ExtKind::Erofs),
                            Just(ExtKind::Squashfs)
                        ],
                        prop::bool::weighted(0.8),
                        entries_strategy(hiers, 7),
                    )
                        .prop_map(|(kind, present, entries)| Ext {
                            kind,
                            present,
                            entries,
                        }),
                    1..4,
                ),
                prop::collection::vec(
                    prop::option::weighted(
                        0.6,
                        (prop::bool::weighted(0.9), entries_strategy(hiers, 4)),
                    ),
                    hiers,
                ),
                mode_strategy(),
            )
        })
        .prop_flat_map(|(confext, mut exts, routing, first)| {
            let hiers = routing.len();
            if !exts.iter().any(|e| e.present) {
                exts[0].present = true;
            }
            let n = exts.len();
            (
                Just(confext),
                Just(exts),
                Just(routing),
                Just(first),
                prop::collection::vec(op_strategy(hiers, n), 1..7),
            )
        })
        .prop_map(|(confext, exts, routing, first, mut ops)| {
            ops.insert(0, Op::Merge(first));
            ops.push(Op::Unmerge);
            Case {
                confext,
                exts,
                routing,
                ops,
            }
        })
}

// ---------------------------------------------------------------------------------------
// The case as a file (the child of each case reads it)

fn mode_name(m: MutableMode) -> &'static str {
    m.as_str()
}

fn mode_of(s: &str) -> MutableMode {
    *MutableMode::ALL
        .iter()
        .find(|m| m.as_str() == s)
        .unwrap_or_else(|| panic!("mode {s}"))
}

fn node_text(n: Node) -> String {
    match n {
        Node::Dir(m) => format!("dir {m:o}"),
        Node::File(m, t) => format!("file {m:o} {t}"),
        Node::Symlink(t) => format!("link {t}"),
    }
}

fn encode(c: &Case) -> String {
    let mut s = format!("class {}\n", if c.confext { "confext" } else { "sysext" });
    for (i, e) in c.exts.iter().enumerate() {
        s += &format!("ext {i} {:?} {}\n", e.kind, e.present);
        for (h, p, n) in &e.entries {
            s += &format!("entry {i} {h} {p} {}\n", node_text(*n));
        }
    }
    for (h, r) in c.routing.iter().enumerate() {
        if let Some((good, entries)) = r {
            s += &format!("routing {h} {good}\n");
            for (eh, p, n) in entries {
                s += &format!("rentry {h} {eh} {p} {}\n", node_text(*n));
            }
        }
    }
    for op in &c.ops {
        s += &match op {
            Op::Merge(m) => format!("op merge {}\n", mode_name(*m)),
            Op::Refresh(m, a) => format!("op refresh {} {a}\n", mode_name(*m)),
            Op::Unmerge => "op unmerge\n".to_string(),
            Op::Write(h, p, t) => format!("op write {h} {p} {t}\n"),
            Op::Mkdir(h, p) => format!("op mkdir {h} {p}\n"),
            Op::Delete(h, p) => format!("op delete {h} {p}\n"),
            Op::Chmod(h, p, m) => format!("op chmod {h} {p} {m:o}\n"),
            Op::Add(i) => format!("op add {i}\n"),
            Op::Remove(i) => format!("op remove {i}\n"),
        };
    }
    s
}

fn decode(text: &str) -> Case {
    fn num(s: &str) -> usize {
        s.parse().unwrap_or_else(|_| panic!("number {s}"))
    }
    fn oct(s: &str) -> u32 {
        u32::from_str_radix(s, 8).unwrap_or_else(|_| panic!("mode {s}"))
    }
    fn node(w: &[&str]) -> Node {
        match w[0] {
            "dir" => Node::Dir(oct(w[1])),
            "file" => Node::File(oct(w[1]), w[2].parse().unwrap()),
            "link" => Node::Symlink(num(w[1])),
            x => panic!("node {x}"),
        }
    }
    let mut c = Case {
        confext: false,
        exts: Vec::new(),
        routing: Vec::new(),
        ops: Vec::new(),
    };
    for line in text.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w[0] {
            "class" => {
                c.confext = w[1] == "confext";
                c.routing = vec![None; c.hiers().len()];
            }
            "ext" => c.exts.push(Ext {
                kind: match w[2] {
                    "Dir" => ExtKind::Dir,
                    "Erofs" => ExtKind::Erofs,
                    "Squashfs" => ExtKind::Squashfs,
                    x => panic!("kind {x}"),
                },
                present: w[3] == "true",
                entries: Vec::new(),
            }),
            "entry" => c.exts[num(w[1])]
                .entries
                .push((num(w[2]), num(w[3]), node(&w[4..]))),
            "routing" => c.routing[num(w[1])] = Some((w[2] == "true", Vec::new())),
            "rentry" => {
                c.routing[num(w[1])]
                    .as_mut()
                    .unwrap()
                    .1
                    .push((num(w[2]), num(w[3]), node(&w[4..])))
            }
            "op" => c.ops.push(match w[1] {
                "merge" => Op::Merge(mode_of(w[2])),
                "refresh" => Op::Refresh(mode_of(w[2]), w[3] == "true"),
                "unmerge" => Op::Unmerge,
                "write" => Op::Write(num(w[2]), num(w[3]), w[4].parse().unwrap()),
                "mkdir" => Op::Mkdir(num(w[2]), num(w[3])),
                "delete" => Op::Delete(num(w[2]), num(w[3])),
                "chmod" => Op::Chmod(num(w[2]), num(w[3]), oct(w[4])),
                "add" => Op::Add(num(w[2])),
                "remove" => Op::Remove(num(w[2])),
                x => panic!("op {x}"),
            }),
            "" => {}
            x => panic!("line {x}"),
        }
    }
    c
}

// ---------------------------------------------------------------------------------------
// Building a root

/// Write `entries` below `dir` (paths `HIER/SUB`); an entry under a non-directory, or on a
/// path taken already, is left out. Returns the entries written (for the routing dirs).
fn materialize(dir: &Path, hiers: &[&str], entries: &[Entry], tag: &str, prefix_hier: bool) {
    let mut taken: BTreeMap<String, bool> = BTreeMap::new(); // path -> is a directory
    for (h, p, n) in entries {
        let rel = if prefix_hier {
            format!("{}/{}", hiers[*h], SUB[*p])
        } else {
            SUB[*p].to_string()
        };
        let parts: Vec<&str> = rel.split('/').collect();
        let blocked = (1..parts.len()).any(|i| taken.get(&parts[..i].join("/")) == Some(&false));
        if blocked || taken.contains_key(&rel) {
            continue;
        }
        for i in 1..parts.len() {
            taken.insert(parts[..i].join("/"), true);
        }
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match n {
            Node::Dir(m) => {
                std::fs::create_dir_all(&path).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*m)).unwrap();
                taken.insert(rel, true);
            }
            Node::File(m, t) => {
                std::fs::write(&path, format!("{tag}-{t}\n")).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*m)).unwrap();
                taken.insert(rel, false);
            }
            Node::Symlink(t) => {
                std::os::unix::fs::symlink(TARGETS[*t], &path).unwrap();
                taken.insert(rel, false);
            }
        }
    }
}

fn ext_name(i: usize) -> String {
    format!("e{i}")
}

fn search_dir(c: &Case) -> &'static str {
    if c.confext {
        "var/lib/confexts"
    } else {
        "var/lib/extensions"
    }
}

fn ext_file(c: &Case, i: usize) -> String {
    match c.exts[i].kind {
        ExtKind::Dir => ext_name(i),
        _ => format!("{}.raw", ext_name(i)),
    }
}

/// The source tree of extension `i`: its entries and its extension-release file.
fn ext_tree(c: &Case, i: usize, dir: &Path) {
    let e = &c.exts[i];
    materialize(dir, c.hiers(), &e.entries, &ext_name(i), true);
    let rel = if c.confext {
        "etc/extension-release.d"
    } else {
        "usr/lib/extension-release.d"
    };
    let d = dir.join(rel);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join(format!("extension-release.{}", ext_name(i))),
        "ID=_any\n",
    )
    .unwrap();
}

/// Images of the case's image extensions, built once per case into `stage`.
fn build_images(c: &Case, stage: &Path) {
    for (i, e) in c.exts.iter().enumerate() {
        if e.kind == ExtKind::Dir {
            continue;
        }
        let src = stage.join(format!("src-{i}"));
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&src).unwrap();
        ext_tree(c, i, &src);
        let img = stage.join(ext_file(c, i));
        let _ = std::fs::remove_file(&img);
        match e.kind {
            ExtKind::Erofs => sh(Command::new("mkfs.erofs")
                .arg("--quiet")
                .arg(&img)
                .arg(&src)),
            ExtKind::Squashfs => sh(Command::new("mksquashfs").arg(&src).arg(&img).args([
                "-quiet",
                "-noappend",
                "-no-progress",
            ])),
            ExtKind::Dir => unreachable!(),
        }
    }
}

/// Where removed extensions wait (outside the search dirs).
const PARKED: &str = "var/lib/parked";

fn setup_root(c: &Case, stage: &Path) -> TestRoot {
    let r = TestRoot::new("kpaths");
    r.mkdir(PARKED);
    for (i, e) in c.exts.iter().enumerate() {
        let dest_dir = if e.present { search_dir(c) } else { PARKED };
        let dest = r.p(&format!("{dest_dir}/{}", ext_file(c, i)));
        match e.kind {
            ExtKind::Dir => ext_tree(c, i, &dest),
            _ => std::fs::hard_link(stage.join(ext_file(c, i)), &dest).unwrap(),
        }
    }
    for (h, routing) in c.routing.iter().enumerate() {
        let Some((good, entries)) = routing else {
            continue;
        };
        let d = r.p(&format!("var/lib/extensions.mutable/{}", c.hiers()[h]));
        std::fs::create_dir_all(&d).unwrap();
        let here: Vec<Entry> = entries.iter().filter(|e| e.0 == h).copied().collect();
        materialize(&d, c.hiers(), &here, "r", false);
        let mode = if *good { 0o755 } else { 0o700 };
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    r
}

// ---------------------------------------------------------------------------------------
// Running and observing

fn ctx(
    c: &Case,
    r: &TestRoot,
    mode: MutableMode,
    features: KernelFeatures,
    always: bool,
) -> Context {
    let mut o = r.options(c.class(), mode);
    o.kernel = features;
    o.always_refresh = always;
    Context::new(o).expect("context")
}

fn err_text(e: &sysext::Error) -> String {
    format!("error errno={} kind={:?}", e.errno(), e.kind())
}

fn report_text(r: &sysext::Result<sysext::Report>) -> String {
    match r {
        Ok(rep) => format!(
            "ok merged={:?} hierarchies={:?} unmerged={:?} skipped={:?}",
            rep.merged,
            rep.hierarchies,
            rep.unmerged,
            rep.skipped
                .iter()
                .map(|s| format!("{}: {}", s.name, s.reason))
                .collect::<Vec<_>>()
        ),
        Err(e) => err_text(e),
    }
}

fn errno_of(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(-1)),
    }
}

/// Apply one step; returns what it returned.
fn apply(
    c: &Case,
    r: &TestRoot,
    op: &Op,
    features: KernelFeatures,
    mode: &mut MutableMode,
) -> String {
    let p = |h: usize, s: usize| r.p(&format!("{}/{}", c.hiers()[h], SUB[s]));
    match op {
        Op::Merge(m) => {
            *mode = *m;
            report_text(&ctx(c, r, *m, features, false).merge())
        }
        Op::Refresh(m, a) => {
            *mode = *m;
            report_text(&ctx(c, r, *m, features, *a).refresh())
        }
        Op::Unmerge => report_text(&ctx(c, r, *mode, features, false).unmerge()),
        Op::Write(h, s, t) => errno_of(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p(*h, *s))
                .and_then(|mut f| std::io::Write::write_all(&mut f, format!("w{t}\n").as_bytes())),
        ),
        Op::Mkdir(h, s) => errno_of(std::fs::create_dir(p(*h, *s))),
        Op::Delete(h, s) => {
            let path = p(*h, *s);
            errno_of(std::fs::symlink_metadata(&path).and_then(|md| {
                if md.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
            }))
        }
        Op::Chmod(h, s, m) => {
            let path = p(*h, *s);
            errno_of(std::fs::symlink_metadata(&path).and_then(|md| {
                if md.file_type().is_symlink() {
                    Ok(())
                } else {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*m))
                }
            }))
        }
        Op::Add(i) | Op::Remove(i) => {
            let (from, to) = if matches!(op, Op::Add(_)) {
                (PARKED, search_dir(c))
            } else {
                (search_dir(c), PARKED)
            };
            let f = ext_file(c, *i);
            let src = r.p(&format!("{from}/{f}"));
            if src.symlink_metadata().is_err() {
                return "no-op".into();
            }
            errno_of(std::fs::rename(src, r.p(&format!("{to}/{f}"))))
        }
    }
}

/// One line per entry below `dir`: relative path, type, permission bits, content or target.
/// Inside a directory named `work` of a work dir (the overlay's own), only the names of its
/// first level.
fn walk(base: &Path, dir: &Path, dev: Option<u64>, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        out.push(format!(
            "{}: unreadable",
            dir.strip_prefix(base).unwrap().display()
        ));
        return;
    };
    let mut v: Vec<_> = rd.flatten().collect();
    v.sort_by_key(|e| e.file_name());
    for e in v {
        let path = e.path();
        let rel = path
            .strip_prefix(base)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let md = std::fs::symlink_metadata(&path).unwrap();
        let perm = md.mode() & 0o7777;
        let ft = md.file_type();
        if ft.is_dir() {
            out.push(format!("{rel}/ {perm:o}"));
            let overlay_private = rel.contains("-workdir/") || rel.ends_with("-workdir");
            if overlay_private {
                // The overlay's work dir: `work/`, `index/` are the kernel's.
                let mut names: Vec<String> = std::fs::read_dir(&path)
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                out.push(format!("{rel}/ holds {names:?}"));
            } else {
                walk(base, &path, dev, out);
            }
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&path).unwrap();
            out.push(format!("{rel} -> {}", t.display()));
        } else if ft.is_file() {
            let content = std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("<{e}>"));
            let content = match dev {
                // The meta dir's `dev` names the overlay's anonymous device: compared by
                // whether it is the mount's.
                Some(d)
                    if rel.ends_with(".systemd-sysext/dev")
                        || rel.ends_with(".systemd-confext/dev") =>
                {
                    let ours = format!("{}:{}", libc::major(d), libc::minor(d));
                    format!(
                        "<dev {}>",
                        if content.trim() == ours {
                            "of the mount"
                        } else {
                            "OTHER"
                        }
                    )
                }
                _ => content.trim_end().replace('\n', "\\n"),
            };
            out.push(format!("{rel} {perm:o} {content}"));
        } else {
            out.push(format!(
                "{rel} special {:o} rdev {:x}",
                md.mode(),
                md.rdev()
            ));
        }
    }
}

/// Overlay options without the paths of layers, upper and work dir (which name fds or
/// paths of the staging namespace).
fn overlay_options(super_options: &str) -> String {
    let mut v: Vec<String> = super_options
        .split(',')
        .filter(|o| !o.is_empty())
        .map(|o| match o.split_once('=') {
            // `lowerdir+=` (one per layer) or one `lowerdir=`: the layer count says the rest.
            Some((k, _)) if k.starts_with("lowerdir") => "lowerdir=…".to_string(),
            Some((k, _)) if k == "upperdir" || k == "workdir" => format!("{k}=…"),
            _ => o.to_string(),
        })
        .collect();
    v.sort();
    v.dedup();
    v.join(",")
}

fn observe(c: &Case, r: &TestRoot, features: KernelFeatures, unmerged: bool) -> Vec<String> {
    let mut out = Vec::new();
    let root = r.path.to_string_lossy().into_owned();
    let mounts = sysext::testing::mountinfo::read_self().unwrap();
    let mut below: Vec<String> = mounts
        .iter()
        .filter(|m| m.mount_point.starts_with(&format!("{root}/")))
        .map(|m| {
            // Per-mount options: ro/rw, nodev, nosuid, noexec, atime.
            let mut s = format!(
                "mount {} {} {} {}",
                &m.mount_point[root.len()..],
                m.fstype,
                m.source,
                m.options
            );
            if m.fstype == "overlay" {
                s += &format!(
                    " layers={} [{}]",
                    m.overlay_lower_count(),
                    overlay_options(&m.super_options)
                );
            }
            s
        })
        .collect();
    below.sort();
    out.extend(below);
    for h in c.hiers() {
        let hp = r.p(h);
        let dev = std::fs::metadata(&hp).ok().map(|m| m.dev());
        let writable = rustix::fs::statvfs(&hp)
            .map(|s| !s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
            .unwrap_or(false);
        out.push(format!(
            "{h}: {}",
            if writable { "writable" } else { "read-only" }
        ));
        walk(&r.path, &hp, dev, &mut out);
    }
    let mutable = r.p("var/lib/extensions.mutable");
    if mutable.exists() {
        out.push("var/lib/extensions.mutable/".into());
        walk(&r.path, &mutable, None, &mut out);
    }
    match ctx(c, r, MutableMode::Disabled, features, false).status() {
        Ok(st) => {
            for s in st {
                out.push(format!(
                    "status {} {:?} {:?} {:?} {:?}",
                    s.hierarchy, s.extensions, s.mutable, s.upper, s.interrupted
                ));
            }
        }
        Err(e) => out.push(format!("status {}", err_text(&e))),
    }
    out.push(format!(
        "ephemeral dirs {}",
        sysext_tests::ephemeral_dirs().len()
    ));
    if unmerged {
        out.push(format!("loop devices {:?}", settled_loops_of(r)));
    }
    out
}

/// Take down whatever a run left mounted below the root (the namespace is ours).
fn clear_mounts(r: &TestRoot) {
    let root = format!("{}/", r.path.to_string_lossy());
    for _ in 0..64 {
        let mut m: Vec<String> = sysext::testing::mountinfo::read_self()
            .unwrap()
            .into_iter()
            .filter(|m| m.mount_point.starts_with(&root))
            .map(|m| m.mount_point)
            .collect();
        if m.is_empty() {
            return;
        }
        m.sort();
        for p in m.iter().rev() {
            let _ = rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Runs the case with one feature set: one observation block per step.
fn run_case(c: &Case, stage: &Path, features: KernelFeatures) -> Vec<Vec<String>> {
    let r = setup_root(c, stage);
    let mut mode = MutableMode::Disabled;
    let mut blocks = vec![observe(c, &r, features, true)];
    for (i, op) in c.ops.iter().enumerate() {
        let res = apply(c, &r, op, features, &mut mode);
        let mut b = vec![format!("step {i}: {op:?} -> {res}")];
        let unmerged = matches!(op, Op::Unmerge) && res.starts_with("ok");
        b.extend(observe(c, &r, features, unmerged));
        blocks.push(b);
    }
    clear_mounts(&r);
    // The merge fingerprint hashes the inodes and times of the images, new in every run:
    // compared as the order in which distinct fingerprints first appeared.
    // Ephemeral dirs are named with the pid and a time stamp: kept are the index and the
    // hierarchy (`…-0-usr`).
    let mut seen: Vec<String> = Vec::new();
    for b in &mut blocks {
        for l in b.iter_mut() {
            let eph = format!("{}/", sysext::testing::state::EPHEMERAL_DIR);
            let mut from = 0;
            while let Some(at) = l[from..].find(&eph).map(|a| a + from + eph.len()) {
                let end = l[at..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
                    .map_or(l.len(), |e| at + e);
                let parts: Vec<&str> = l[at..end].rsplitn(3, '-').collect();
                let short = format!("<…>-{}-{}", parts.get(1).unwrap_or(&""), parts[0]);
                l.replace_range(at..end, &short);
                from = at + short.len();
            }
            let Some(at) = l.find("fingerprint=") else {
                continue;
            };
            let start = at + "fingerprint=".len();
            let end = l[start..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .map_or(l.len(), |e| start + e);
            let fp = l[start..end].to_string();
            let n = seen.iter().position(|s| *s == fp).unwrap_or_else(|| {
                seen.push(fp.clone());
                seen.len() - 1
            });
            l.replace_range(start..end, &format!("<#{n}>"));
        }
    }
    blocks
}

/// All subsets of `f`, `f` itself first.
fn subsets(f: KernelFeatures) -> Vec<KernelFeatures> {
    let bits: Vec<KernelFeatures> = f.iter().collect();
    let mut v: Vec<KernelFeatures> = (0..1u32 << bits.len())
        .map(|m| {
            bits.iter()
                .enumerate()
                .filter(|(i, _)| m & (1 << i) != 0)
                .fold(KernelFeatures::empty(), |a, (_, b)| a | *b)
        })
        .collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.bits().count_ones()));
    v
}

fn describe(f: KernelFeatures, all: KernelFeatures) -> String {
    let off = all - f;
    if off.is_empty() {
        "all features".into()
    } else {
        format!("without {}", off.names())
    }
}

/// The child: run the case with every feature set, compare with the first.
fn child(case_file: &str) -> Result<String, String> {
    let c = decode(&std::fs::read_to_string(case_file).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().to_path_buf();
    build_images(&c, &stage);
    let all = sysext::Kernel::new(sysext::Options::new(c.class()).kernel).features();
    let trace = std::env::var_os("SYSEXT_KERNEL_PATHS_TRACE").is_some();
    let mut reference: Option<Vec<Vec<String>>> = None;
    let sets = subsets(all);
    let t = Instant::now();
    for f in &sets {
        let got = run_case(&c, &stage, *f);
        if trace {
            println!("== {}", describe(*f, all));
            for b in &got {
                for l in b {
                    println!("  {l}");
                }
            }
        }
        let Some(want) = &reference else {
            reference = Some(got);
            continue;
        };
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            if w != g {
                let mut msg = format!(
                    "{} differs from all features ({}) after {}:\n",
                    describe(*f, all),
                    all.names(),
                    if i == 0 {
                        "set-up".to_string()
                    } else {
                        format!("step {}", i - 1)
                    }
                );
                for l in w.iter().filter(|l| !g.contains(l)) {
                    msg += &format!("  - {l}\n");
                }
                for l in g.iter().filter(|l| !w.contains(l)) {
                    msg += &format!("  + {l}\n");
                }
                msg += &format!("  (with all features: {})\n", w[0]);
                return Err(msg);
            }
        }
    }
    Ok(format!(
        "{} feature sets, {} steps, {} ms",
        sets.len(),
        c.ops.len(),
        t.elapsed().as_millis()
    ))
}

/// The parent's side of a case: run it in a private namespace of its own.
fn run_isolated(c: &Case, n: usize) -> Result<String, TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let case_file = tmp.path().join(format!("case-{n}"));
    let result_file = tmp.path().join(format!("result-{n}"));
    std::fs::write(&case_file, encode(c)).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CASE_ENV, &case_file)
        .env(RESULT_ENV, &result_file)
        .output()
        .expect("run unshare");
    let verdict = std::fs::read_to_string(&result_file).ok();
    let shown = encode(c);
    match verdict.as_deref().and_then(|v| v.split_once('\n')) {
        Some(("ok", msg)) => Ok(msg.to_string()),
        Some((_, msg)) => Err(TestCaseError::fail(format!("{msg}\ncase:\n{shown}"))),
        None => Err(TestCaseError::fail(format!(
            "the case's namespace ended without a verdict ({}):\n{}\n{}\ncase:\n{shown}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

#[test]
fn kernel_paths_are_equivalent() {
    if let Some(case_file) = std::env::var_os(CASE_ENV) {
        let res = child(&case_file.to_string_lossy());
        let text = match &res {
            Ok(m) => format!("ok\n{m}"),
            Err(m) => format!("fail\n{m}"),
        };
        std::fs::write(std::env::var_os(RESULT_ENV).unwrap(), text).unwrap();
        return;
    }
    if !is_root() {
        if std::env::var_os("SYSEXT_SKIP_ROOT_TESTS").is_some() {
            eprintln!("skipping {TEST_NAME}: needs root");
            return;
        }
        panic!("{TEST_NAME} needs root (run as root, or set SYSEXT_SKIP_ROOT_TESTS=1 to skip)");
    }
    let all = sysext::Kernel::new(sysext::Options::new(ImageClass::Sysext).kernel).features();
    if all.bits().count_ones() == 0 {
        println!("{TEST_NAME}: only one kernel path here (no feature to take away)");
        return;
    }
    let cases = std::env::var("SYSEXT_KERNEL_PATHS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed: u64 = match std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(s) => s,
        None if std::env::var_os("SYSEXT_KERNEL_PATHS_RANDOM").is_some() => rand_seed(),
        None => 22,
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 200,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let n = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    let res = runner.run(&case_strategy(), |c| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let msg = run_isolated(&c, i)?;
        println!("{TEST_NAME}: case {i}: {msg}");
        Ok(())
    });
    println!(
        "{TEST_NAME}: {} runs of cases (seed {seed}, features {}), {} s",
        n.into_inner(),
        all.names(),
        t.elapsed().as_secs()
    );
    if let Err(e) = res {
        panic!("{TEST_NAME} (seed {seed}): {e}");
    }
}

fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ u64::from(std::process::id())
}
