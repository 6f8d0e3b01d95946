//! Root tests: interrupted operations (the CLI killed by `SYSEXT_FAULT_KILL` at every step)
//! are reported by `status` and completed or undone by the next call; ephemeral upper
//! layers live on a tmpfs of their own, not on `/run`.

use sysext::{ImageClass, MutableMode};
use sysext_tests::{isolated, TestRoot};

/// Mounts at `rel` below the root (a hidden one counts too).
fn mounts_at(r: &TestRoot, rel: &str) -> usize {
    let p = r.p(rel);
    let t = p.to_string_lossy();
    sysext::testing::mountinfo::read_self()
        .unwrap()
        .iter()
        .filter(|m| m.mount_point == t)
        .count()
}

fn submount(r: &TestRoot) {
    r.mkdir("usr/share/sub");
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(r.p("usr/share/sub"))
        .status()
        .unwrap()
        .success());
    r.put("usr/share/sub/inside", "sub\n");
}

/// A /run of this namespace's own (the lock dir, intent records and ephemeral dirs of
/// other tests and users stay out of the counts).
fn private_run(size: &str) {
    assert!(std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "test-run",
            "/run"
        ])
        .status()
        .unwrap()
        .success());
}

fn intent_files() -> usize {
    std::fs::read_dir("/run/libsysext")
        .map(|d| {
            d.flatten()
                // The record is the lock file's content; blank: the last call finished
                .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
                // (blanked with newlines, not truncated: see core/src/exec/intent.rs).
                .filter(|e| std::fs::read(e.path()).is_ok_and(|t| t.iter().any(|&b| b != b'\n')))
                .count()
        })
        .unwrap_or(0)
}

/// Kill `verb` (CLI arguments) at every step; after each kill `status` reports the
/// interrupted operation, the next call of `repair` repairs it, and `check` holds.
/// `repair` is told whether the kill left a record (a kill before the first effect leaves
/// none, and nothing was changed).
fn kill_everywhere(
    r: &TestRoot,
    mode: MutableMode,
    prepare: &dyn Fn(&sysext::Context),
    verb: &[&str],
    repair: &dyn Fn(&sysext::Context, bool),
    check: &dyn Fn(u64),
) -> u64 {
    let cli = sysext_tests::cli();
    let mut kills = 0;
    let mut recorded = 0;
    for n in 1.. {
        let ctx = r.ctx(ImageClass::Sysext, mode);
        prepare(&ctx);
        let st = std::process::Command::new(&cli)
            .arg(format!("--root={}", r.path.display()))
            .arg(format!("--mutable={mode}"))
            .args(["--no-reload"])
            .args(verb)
            .env("SYSEXT_FAULT_KILL", n.to_string())
            .env_remove("SYSTEMD_SYSEXT_HIERARCHIES")
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        if st.success() {
            repair(&ctx, false);
            check(n);
            break;
        }
        kills += 1;
        // The record is written before the first effect (not before the first step): a
        // kill before it left nothing to repair and no record. Otherwise status reports
        // the interrupted operation until it is repaired.
        let rows = ctx.status().unwrap();
        let left_record = intent_files() > 0;
        if left_record {
            assert!(
                rows.iter()
                    .all(|s| s.interrupted.as_deref() == Some(verb[0])),
                "kill at step {n}: {rows:?}"
            );
            assert_eq!(ctx.interrupted().as_deref(), Some(verb[0]));
            recorded += 1;
        } else {
            assert!(
                rows.iter().all(|s| s.interrupted.is_none()),
                "kill at step {n} without a record: {rows:?}"
            );
        }
        repair(&ctx, left_record);
        assert_eq!(ctx.interrupted(), None, "kill at step {n}: repaired");
        assert!(ctx
            .status()
            .unwrap()
            .iter()
            .all(|s| s.interrupted.is_none()));
        check(n);
    }
    assert_eq!(intent_files(), 0);
    // Kills after the first effect were among them.
    assert!(recorded > 0, "none of {kills} kills left a record");
    kills
}

/// The extensions a hierarchy's merge shows (its meta dir).
fn shown(r: &TestRoot, h: &str) -> Option<String> {
    r.read(&format!("{h}/.systemd-sysext/extensions"))
}

fn one_merge_everywhere(r: &TestRoot, n: u64, names: &str) {
    assert_eq!(r.overlays_at("usr"), 1, "kill at step {n}");
    assert_eq!(r.overlays_at("opt"), 1, "kill at step {n}");
    assert_eq!(
        mounts_at(r, "usr/share/sub"),
        1,
        "kill at step {n}: sub-mount once"
    );
    assert_eq!(r.read("usr/share/sub/inside").as_deref(), Some("sub\n"));
    for h in ["usr", "opt"] {
        assert_eq!(
            shown(r, h).as_deref(),
            Some(names),
            "kill at step {n}: /{h} has the same extensions as the other hierarchy"
        );
    }
}

#[test]
fn a_killed_merge_is_undone_and_reported() {
    isolated!();
    private_run("16m");
    let r = TestRoot::new("killmerge");
    r.sysext("a", &[("usr/bin/a", "a\n"), ("opt/a/f", "a\n")]);
    submount(&r);
    for mode in [
        MutableMode::Disabled,
        MutableMode::Enabled,
        MutableMode::Ephemeral,
    ] {
        let kills = kill_everywhere(
            &r,
            mode,
            &|ctx| {
                ctx.unmerge().unwrap();
            },
            &["merge"],
            &|ctx, _| {
                // The next merge undoes the half-made one first, then merges (or completes
                // it, when the kill came after every overlay was in place).
                match ctx.merge() {
                    Ok(_) | Err(sysext::Error::AlreadyMerged { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            },
            &|n| {
                one_merge_everywhere(&r, n, "a\n");
                assert_eq!(r.read("opt/a/f").as_deref(), Some("a\n"));
            },
        );
        assert!(kills >= 5, "{mode}: killed at {kills} steps");
        r.ctx(ImageClass::Sysext, mode).unmerge().unwrap();
        assert_eq!(mounts_at(&r, "usr/share/sub"), 1);
        let eph = std::fs::read_dir("/run/libsysext/ephemeral").map(|d| d.count());
        assert!(
            matches!(eph, Ok(0) | Err(_)),
            "{mode}: no ephemeral dir left"
        );
        let mutable = std::fs::read_dir(r.p("var/lib/extensions.mutable"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with("-workdir"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(mutable, 0, "{mode}: no work dir left");
    }
}

/// Before a refresh: extension `a` merged alone, and `c` put there for the refresh to add.
fn merged_a_with_c_to_add(r: &TestRoot, ctx: &sysext::Context) {
    let _ = std::fs::remove_dir_all(r.p("var/lib/extensions/c"));
    ctx.unmerge().unwrap();
    ctx.merge().unwrap();
    r.sysext("c", &[("usr/bin/c", "c\n"), ("opt/c/f", "c\n")]);
}

#[test]
fn a_killed_refresh_leaves_every_hierarchy_consistent() {
    isolated!();
    private_run("16m");
    let r = TestRoot::new("killrefresh");
    r.sysext("a", &[("usr/bin/a", "a\n"), ("opt/a/f", "a\n")]);
    submount(&r);
    for mode in [MutableMode::Disabled, MutableMode::Ephemeral] {
        kill_everywhere(
            &r,
            mode,
            &|ctx| merged_a_with_c_to_add(&r, ctx),
            &["refresh"],
            &|ctx, _| {
                // A call of another verb repairs too: status before, then a refresh.
                ctx.refresh().unwrap();
            },
            &|n| one_merge_everywhere(&r, n, "a\nc\n"),
        );
        r.ctx(ImageClass::Sysext, mode).unmerge().unwrap();
    }
}

/// A call that only repairs: it names an extension that is not merged, so once the
/// interrupted call is completed or undone it changes nothing.
fn repair_only(ctx: &sysext::Context) {
    match ctx.unmerge_names(&["not-merged".to_string()]) {
        Err(sysext::Error::NotMerged { .. }) => {}
        Err(e) => panic!("repair: {e}"),
        Ok(r) => panic!("repair changed the merge: {r:?}"),
    }
}

/// A killed refresh is completed or undone by the repair alone, with no later merge or
/// refresh to tidy up after it: one overlay on each hierarchy, both with the same
/// extensions (the old set or the new one). A refresh beneath the old merge, killed between
/// attaching the new overlay below it and the commit, leaves two overlays: the repair takes
/// the new one from under the old merge.
#[test]
fn a_killed_refresh_is_repaired_before_anything_else() {
    isolated!();
    private_run("16m");
    let r = TestRoot::new("killrefresh2");
    r.sysext("a", &[("usr/bin/a", "a\n"), ("opt/a/f", "a\n")]);
    submount(&r);
    let beneath = r
        .ctx(ImageClass::Sysext, MutableMode::Disabled)
        .kernel()
        .has(sysext::KernelFeatures::MOVE_BENEATH);
    for mode in [MutableMode::Disabled, MutableMode::Ephemeral] {
        let stacked = std::cell::Cell::new(0);
        kill_everywhere(
            &r,
            mode,
            &|ctx| merged_a_with_c_to_add(&r, ctx),
            &["refresh"],
            &|ctx, _| {
                if r.overlays_at("usr") == 2 {
                    stacked.set(stacked.get() + 1);
                }
                repair_only(ctx);
            },
            &|n| {
                let names = shown(&r, "usr");
                assert!(
                    matches!(names.as_deref(), Some("a\n" | "a\nc\n")),
                    "kill at step {n}: {names:?}"
                );
                one_merge_everywhere(&r, n, names.as_deref().unwrap());
            },
        );
        if beneath {
            assert!(
                stacked.get() > 0,
                "{mode}: no kill left the new overlay beneath"
            );
        }
        r.ctx(ImageClass::Sysext, mode).unmerge().unwrap();
    }
}

/// A mount made over a hierarchy after a refresh beneath was killed there (the old merge
/// on top, the uncommitted new overlay below it) stays where it is, and so does what it
/// covers: the repair does not reach under a mount that is not ours.
#[test]
fn a_repair_leaves_a_later_mount_and_what_it_covers() {
    isolated!();
    private_run("16m");
    let r = TestRoot::new("killforeign");
    r.sysext("a", &[("usr/bin/a", "a\n"), ("opt/a/f", "a\n")]);
    submount(&r);
    let ctx0 = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    if !ctx0.kernel().has(sysext::KernelFeatures::MOVE_BENEATH) {
        // Without MOVE_MOUNT_BENEATH a refresh replaces the merge; it never stacks two.
        return;
    }
    let covered = std::cell::Cell::new(0);
    kill_everywhere(
        &r,
        MutableMode::Disabled,
        &|ctx| merged_a_with_c_to_add(&r, ctx),
        &["refresh"],
        &|ctx, recorded| {
            if recorded && r.overlays_at("usr") == 2 {
                covered.set(covered.get() + 1);
                let run = |args: &[&str]| {
                    assert!(std::process::Command::new(args[0])
                        .args(&args[1..])
                        .arg(r.p("usr"))
                        .status()
                        .unwrap()
                        .success())
                };
                run(&["mount", "-t", "tmpfs", "-o", "size=1m", "later"]);
                r.put("usr/later", "later\n");
                repair_only(ctx);
                assert_eq!(r.read("usr/later").as_deref(), Some("later\n"));
                run(&["umount"]);
                // Below it, the old merge, on both hierarchies alike.
                assert_eq!(shown(&r, "usr"), shown(&r, "opt"));
                assert_eq!(shown(&r, "usr").as_deref(), Some("a\n"));
                // The overlay the repair could not reach goes with the next unmerge.
                ctx.unmerge().unwrap();
                assert_eq!(r.overlays_at("usr"), 0);
            }
            ctx.refresh().unwrap();
        },
        &|n| one_merge_everywhere(&r, n, "a\nc\n"),
    );
    assert!(covered.get() > 0, "no kill left the new overlay beneath");
    ctx0.unmerge().unwrap();
}

#[test]
fn a_killed_unmerge_is_completed_by_a_merge() {
    isolated!();
    private_run("16m");
    let r = TestRoot::new("killunmerge2");
    r.sysext("a", &[("usr/bin/a", "a\n"), ("opt/a/f", "a\n")]);
    submount(&r);
    kill_everywhere(
        &r,
        MutableMode::Enabled,
        &|ctx| {
            ctx.unmerge().unwrap();
            ctx.merge().unwrap();
        },
        &["unmerge"],
        &|ctx, recorded| {
            // The merge first completes the unmerge (the hierarchies end unmerged), then
            // merges anew. Killed before its first effect, the unmerge left the merge as it
            // was: a merge finds it in place.
            match ctx.merge() {
                Ok(_) => {}
                Err(sysext::Error::AlreadyMerged { .. }) if !recorded => {}
                Err(e) => panic!("repairing merge: {e}"),
            }
        },
        &|n| one_merge_everywhere(&r, n, "a\n"),
    );
    r.ctx(ImageClass::Sysext, MutableMode::Enabled)
        .unmerge()
        .unwrap();
    let left: Vec<String> = std::fs::read_dir(r.p("var/lib/extensions.mutable"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.ends_with("-workdir")), "{left:?}");
}

/// Work dirs (`.systemd-*-workdir` below the routing dirs) and ephemeral dirs left.
fn leftovers(r: &TestRoot) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(r.p("var/lib/extensions.mutable"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with("-workdir"))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(d) = std::fs::read_dir("/run/libsysext/ephemeral") {
        v.extend(d.flatten().map(|e| e.path().display().to_string()));
    }
    v
}

/// A killed unmerge is completed by the repair alone, work dir and ephemeral dir included:
/// the record names them before the merge goes (a kill between taking the overlay off and
/// removing them would leave them to no one otherwise).
#[test]
fn a_killed_unmerge_is_completed_by_the_repair_alone() {
    isolated!();
    private_run("16m");
    let r = TestRoot::new("killunmerge3");
    r.sysext("a", &[("usr/bin/a", "a\n"), ("opt/a/f", "a\n")]);
    submount(&r);
    for mode in [MutableMode::Enabled, MutableMode::Ephemeral] {
        let completed = std::cell::Cell::new(0);
        kill_everywhere(
            &r,
            mode,
            &|ctx| {
                let _ = ctx.unmerge();
                ctx.merge().unwrap();
                assert!(
                    !leftovers(&r).is_empty(),
                    "{mode}: the merge has a work dir"
                );
            },
            &["unmerge"],
            &|ctx, _| repair_only(ctx),
            &|n| {
                if r.overlays_at("usr") == 0 {
                    completed.set(completed.get() + 1);
                    assert_eq!(r.overlays_at("opt"), 0, "kill at step {n}");
                    assert_eq!(
                        leftovers(&r),
                        Vec::<String>::new(),
                        "{mode}: kill at step {n}"
                    );
                    assert_eq!(r.read("usr/share/sub/inside").as_deref(), Some("sub\n"));
                } else {
                    one_merge_everywhere(&r, n, "a\n");
                }
            },
        );
        assert!(
            completed.get() > 0,
            "{mode}: no kill left an unmerge to complete"
        );
    }
}

#[test]
fn ephemeral_writes_fill_their_own_tmpfs_not_run() {
    isolated!();
    // A small /run of our own (this namespace only).
    private_run("1m");
    let r = TestRoot::new("ephfill");
    r.sysext("a", &[("usr/bin/a", "a\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Ephemeral);
    ctx.merge().unwrap();
    // 4 MiB into the merged /usr: four times what /run holds.
    let chunk = vec![b'x'; 1 << 20];
    {
        use std::io::Write;
        let mut f = std::fs::File::create(r.p("usr/big")).unwrap();
        for _ in 0..4 {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    assert_eq!(std::fs::metadata(r.p("usr/big")).unwrap().len(), 4 << 20);
    std::fs::write("/run/other.pid", "1\n").expect("/run stays writable");
    // A selective merge keeps the upper layer (its tmpfs), with what was written.
    r.sysext("b", &[("usr/bin/b", "b\n")]);
    ctx.merge_names(&["b".to_string()]).unwrap();
    assert_eq!(r.read("usr/bin/b").as_deref(), Some("b\n"));
    assert_eq!(std::fs::metadata(r.p("usr/big")).unwrap().len(), 4 << 20);
    std::fs::write("/run/other2.pid", "1\n").expect("/run stays writable");
    ctx.unmerge().unwrap();
    assert!(!r.p("usr/big").exists());
    let left = std::fs::read_dir("/run/libsysext/ephemeral")
        .unwrap()
        .count();
    assert_eq!(left, 0, "the ephemeral tmpfs and its dir are gone");
}
