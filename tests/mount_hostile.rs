//! Root tests of reliability and security (issue 8): fault injection over a realistic root
//! (two hierarchies, directory and image extensions), a soak run, a corpus of bad inputs,
//! and root confinement.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use sysext::{Context, ImageClass, MutableMode, Options};
use sysext_tests::{
    ephemeral_dirs, inject_everywhere, isolated, loops_of, mount_table, settled_loops_of,
    tree_snapshot, wait_until, TestRoot,
};

fn opts(r: &TestRoot, class: ImageClass, mode: MutableMode) -> Options {
    r.options(class, mode)
}

fn raw(r: &TestRoot, fs: &str, name: &str, files: &[(&str, &str)]) {
    let src = r.p(&format!("stage/{name}"));
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(src.join("usr/lib/extension-release.d")).unwrap();
    std::fs::write(
        src.join(format!(
            "usr/lib/extension-release.d/extension-release.{name}"
        )),
        "ID=_any\n",
    )
    .unwrap();
    for (f, c) in files {
        let p = src.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    let img = r.p(&format!("var/lib/extensions/{name}.raw"));
    let st = match fs {
        "erofs" => Command::new("mkfs.erofs")
            .arg("--quiet")
            .arg(&img)
            .arg(&src)
            .status(),
        _ => Command::new("mksquashfs")
            .arg(&src)
            .arg(&img)
            .args(["-quiet", "-noappend", "-all-root"])
            .status(),
    };
    assert!(st.unwrap().success());
}

fn realistic(tag: &str) -> TestRoot {
    let r = TestRoot::new(tag);
    r.sysext("dir1", &[("usr/bin/dir1", "d\n"), ("opt/dir1/f", "o\n")]);
    raw(
        &r,
        "erofs",
        "er",
        &[("usr/bin/er", "e\n"), ("opt/er/f", "o\n")],
    );
    raw(&r, "squashfs", "sq", &[("usr/bin/sq", "s\n")]);
    r
}

#[test]
fn fault_injection_over_dirs_and_images() {
    isolated!();
    let r = realistic("faultimg");
    let o = |m| {
        let mut o = opts(&r, ImageClass::Sysext, m);
        o.always_refresh = true;
        o
    };
    let mut total = 0;
    total += inject_everywhere(&r, "merge yes", &|c| c.merge(), &o, MutableMode::Enabled);
    r.try_write("usr/bin/written", "w\n").unwrap();
    raw(&r, "erofs", "er2", &[("usr/bin/er2", "2\n")]);
    total += inject_everywhere(
        &r,
        "refresh ephemeral-import",
        &|c| c.refresh(),
        &o,
        MutableMode::EphemeralImport,
    );
    total += inject_everywhere(
        &r,
        "merge NAME",
        &|c| c.merge_names(&["dir1".to_string()]),
        &o,
        MutableMode::EphemeralImport,
    );
    total += inject_everywhere(&r, "refresh auto", &|c| c.refresh(), &o, MutableMode::Auto);
    total += inject_everywhere(&r, "unmerge", &|c| c.unmerge(), &o, MutableMode::Disabled);
    println!(
        "fault injection: {total} faults injected in total, each left the previous state intact"
    );
    assert_eq!(r.mounts_below(), 0);
    assert!(loops_of(&r).is_empty());
    assert!(ephemeral_dirs().is_empty());
    assert_eq!(
        r.read("var/lib/extensions.mutable/usr/bin/written")
            .as_deref(),
        Some("w\n")
    );
}

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A field of /proc/self/status in KiB (`VmRSS`, `RssAnon`, `RssFile`).
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_thousand_merge_refresh_unmerge_cycles_leak_nothing() {
    isolated!();
    let cycles: usize = std::env::var("SYSEXT_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let r = realistic("soak");
    r.mkdir("var/lib/extensions.mutable/usr");
    std::fs::set_permissions(
        r.p("var/lib/extensions.mutable/usr"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let all_mounts = || sysext::testing::mountinfo::read_self().unwrap().len();
    let mut base = None;
    for i in 0..cycles + 20 {
        if i == 20 {
            base = Some((
                all_mounts(),
                settled_loops_of(&r).len(),
                count_fds(),
                status_kib("RssAnon"),
                status_kib("RssFile"),
            ));
        }
        let mode = MutableMode::ALL[i % 6];
        let mut o = opts(&r, ImageClass::Sysext, mode);
        o.always_refresh = true;
        let c = Context::new(o).unwrap();
        c.merge()
            .unwrap_or_else(|e| panic!("cycle {i} {mode}: {e}"));
        c.refresh()
            .unwrap_or_else(|e| panic!("cycle {i} {mode}: {e}"));
        c.unmerge()
            .unwrap_or_else(|e| panic!("cycle {i} {mode}: {e}"));
    }
    let (m0, l0, f0, r0, p0) = base.unwrap();
    let (m1, l1, f1, r1, p1) = (
        all_mounts(),
        settled_loops_of(&r).len(),
        count_fds(),
        status_kib("RssAnon"),
        status_kib("RssFile"),
    );
    println!(
        "soak: {cycles} cycles of merge/refresh/unmerge: mounts {m0} -> {m1}, loop devices {l0} -> {l1}, \
         open fds {f0} -> {f1}, anonymous memory (RssAnon) {r0} KiB -> {r1} KiB, \
         file pages mapped (RssFile) {p0} KiB -> {p1} KiB"
    );
    assert_eq!(
        (m0, l0, f0),
        (m1, l1, f1),
        "no growth in mounts, loop devices, fds"
    );
    // A leak grows the anonymous memory (heap, thread stacks): a few dozen KiB of allocator
    // warm-up, the same after 200 or 2,000 cycles, is no leak. VmRSS also counts the pages of
    // the (38 MB, debug) test binary and its libraries as they are first executed; in the 6.1
    // guest, whose binaries come over 9p, those grew by 1.7 MiB in 100 cycles and by as much in
    // 200 (RssAnon stayed at about 540 KiB), which says nothing about the library.
    assert!(
        r1 <= r0 + 1024,
        "anonymous memory grew from {r0} KiB to {r1} KiB"
    );
    assert!(ephemeral_dirs().is_empty());
}

/// One bad input and what must happen.
enum Expect {
    /// Merge succeeds; the named image is skipped with a reason containing the text.
    Skipped(&'static str, &'static str),
    /// Merge fails with an error containing the text.
    Fails(&'static str),
    /// Merge succeeds and the named image is merged.
    Merged(&'static str),
    /// Merge succeeds; the image does not show up at all.
    Absent(&'static str),
}

#[test]
fn bad_inputs_are_skipped_or_refused_and_leave_nothing_behind() {
    isolated!();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().to_path_buf();
    std::fs::create_dir_all(outside.join("img/usr/lib/extension-release.d")).unwrap();
    std::fs::write(
        outside.join("img/usr/lib/extension-release.d/extension-release.esc"),
        "ID=_any\n",
    )
    .unwrap();
    std::fs::write(outside.join("release"), "ID=_any\n").unwrap();
    let out_s = outside.to_string_lossy().into_owned();
    let outside_before = snapshot(&outside);

    type Setup = Box<dyn Fn(&TestRoot)>;
    let rel = |r: &TestRoot, name: &str, bytes: &[u8]| {
        r.sysext(name, &[("usr/bin/x", "x\n")]);
        std::fs::write(
            r.p(&format!(
                "var/lib/extensions/{name}/usr/lib/extension-release.d/extension-release.{name}"
            )),
            bytes,
        )
        .unwrap();
    };
    let cases: Vec<(&str, Setup, Expect)> = vec![
        (
            "huge release file",
            Box::new(move |r| rel(r, "huge", &vec![b'#'; 5 << 20])),
            Expect::Skipped("huge", "larger than"),
        ),
        (
            "binary release file",
            Box::new(move |r| rel(r, "bin", &[0x7f, b'E', b'L', b'F', 0, 1, 2])),
            Expect::Skipped("bin", "NUL"),
        ),
        (
            "invalid UTF-8",
            Box::new(move |r| rel(r, "utf", b"ID=_any\nX=\xff\xfe\n")),
            Expect::Skipped("utf", "UTF-8"),
        ),
        (
            "unterminated quote",
            Box::new(move |r| rel(r, "quote", b"ID=\"_any")),
            Expect::Merged("quote"),
        ),
        (
            "NUL byte",
            Box::new(move |r| rel(r, "nul", b"ID=_any\0\n")),
            Expect::Skipped("nul", "NUL"),
        ),
        (
            "release file symlink to an absolute path outside",
            Box::new({
                let o = out_s.clone();
                move |r: &TestRoot| {
                    r.sysext("abs", &[("usr/bin/x", "x\n")]);
                    let p = r.p(
                        "var/lib/extensions/abs/usr/lib/extension-release.d/extension-release.abs",
                    );
                    std::fs::remove_file(&p).unwrap();
                    symlink(format!("{o}/release"), &p).unwrap();
                }
            }),
            Expect::Skipped("abs", "no release data"),
        ),
        (
            "release file symlink with .. outside",
            Box::new(|r: &TestRoot| {
                r.sysext("dots", &[("usr/bin/x", "x\n")]);
                let p = r.p(
                    "var/lib/extensions/dots/usr/lib/extension-release.d/extension-release.dots",
                );
                std::fs::remove_file(&p).unwrap();
                symlink("../../../../../../../../../../../../etc/os-release", &p).unwrap();
            }),
            Expect::Skipped("dots", "no release data"),
        ),
        (
            "release file symlink loop",
            Box::new(|r: &TestRoot| {
                r.sysext("loop", &[("usr/bin/x", "x\n")]);
                let p = r.p(
                    "var/lib/extensions/loop/usr/lib/extension-release.d/extension-release.loop",
                );
                std::fs::remove_file(&p).unwrap();
                symlink("extension-release.loop", &p).unwrap();
            }),
            Expect::Skipped("loop", "no release data"),
        ),
        (
            "image entry symlink to a directory outside",
            Box::new({
                let o = out_s.clone();
                move |r: &TestRoot| {
                    symlink(format!("{o}/img"), r.p("var/lib/extensions/esc")).unwrap()
                }
            }),
            Expect::Absent("esc"),
        ),
        (
            "sysext carrying usr/lib/os-release",
            Box::new(|r: &TestRoot| r.sysext("osrel", &[("usr/lib/os-release", "ID=evil\n")])),
            Expect::Fails("Failed to read metadata for image osrel: No medium found"),
        ),
        (
            "name with a control character",
            Box::new(|r: &TestRoot| r.sysext("bad\u{7}name", &[("usr/bin/x", "x\n")])),
            Expect::Absent("bad\u{7}name"),
        ),
        (
            "name starting with .#",
            Box::new(|r: &TestRoot| r.sysext(".#tmp", &[("usr/bin/x", "x\n")])),
            Expect::Absent(".#tmp"),
        ),
        (
            "routing dir is a file",
            Box::new(|r: &TestRoot| r.put("var/lib/extensions.mutable/usr", "not a dir\n")),
            Expect::Fails("ought to have mode"),
        ),
        (
            "routing dir is a dangling symlink",
            Box::new(|r: &TestRoot| {
                r.mkdir("var/lib/extensions.mutable");
                symlink("/nonexistent-target", r.p("var/lib/extensions.mutable/usr")).unwrap();
            }),
            // Level 262 (the default): `yes` creates the link's target, inside the root (257
            // fails with "File exists").
            Expect::Merged("good"),
        ),
        (
            "routing dir symlink out of the root",
            Box::new({
                let o = out_s.clone();
                move |r: &TestRoot| {
                    r.mkdir("var/lib/extensions.mutable");
                    symlink(format!("{o}/routed"), r.p("var/lib/extensions.mutable/usr")).unwrap();
                }
            }),
            // Level 262: the absolute target is re-rooted and created below the root, never
            // outside it (checked at the end); 257 fails with "File exists".
            Expect::Merged("good"),
        ),
        (
            "routing dir on a read-only file system",
            Box::new(|r: &TestRoot| {
                r.mkdir("var/lib/extensions.mutable/usr");
                std::fs::set_permissions(
                    r.p("var/lib/extensions.mutable/usr"),
                    std::fs::Permissions::from_mode(0o755),
                )
                .unwrap();
                let d = r.p("var/lib/extensions.mutable");
                assert!(Command::new("mount")
                    .arg("--bind")
                    .arg(&d)
                    .arg(&d)
                    .status()
                    .unwrap()
                    .success());
                assert!(Command::new("mount")
                    .args(["-o", "remount,bind,ro"])
                    .arg(&d)
                    .status()
                    .unwrap()
                    .success());
            }),
            Expect::Fails("as an upperdir as it is read-only"),
        ),
        (
            "hierarchy is a symlink",
            Box::new(|r: &TestRoot| {
                std::fs::remove_dir_all(r.p("opt")).unwrap();
                r.mkdir("srv/opt");
                symlink("srv/opt", r.p("opt")).unwrap();
                r.sysext("o", &[("opt/o/f", "o\n")]);
            }),
            Expect::Merged("o"),
        ),
        (
            "hierarchy missing",
            Box::new(|r: &TestRoot| {
                std::fs::remove_dir_all(r.p("opt")).unwrap();
                r.sysext("o2", &[("opt/o2/f", "o\n")]);
            }),
            Expect::Merged("o2"),
        ),
    ];
    for (what, setup, expect) in cases {
        let r = TestRoot::new("corpus");
        r.sysext("good", &[("usr/bin/good", "g\n")]);
        setup(&r);
        let mode = if what.starts_with("routing") {
            MutableMode::Enabled
        } else {
            MutableMode::Disabled
        };
        let before = tree_snapshot(&r);
        let setup_mounts = mount_table(&r);
        let c = Context::new(opts(&r, ImageClass::Sysext, mode)).unwrap();
        let res = c.merge();
        match (&expect, &res) {
            (Expect::Skipped(name, text), Ok(rep)) => {
                let s = rep
                    .skipped
                    .iter()
                    .find(|s| s.name == *name)
                    .unwrap_or_else(|| panic!("{what}: {name} not skipped: {rep:?}"));
                assert!(
                    s.reason.contains(text),
                    "{what}: reason {:?} lacks {text:?}",
                    s.reason
                );
                assert!(rep.merged.contains(&"good".to_string()), "{what}");
            }
            (Expect::Merged(name), Ok(rep)) => {
                assert!(rep.merged.contains(&name.to_string()), "{what}: {rep:?}")
            }
            (Expect::Absent(name), Ok(rep)) => {
                assert!(
                    !rep.merged.contains(&name.to_string())
                        && !rep.skipped.iter().any(|s| s.name == *name),
                    "{what}: {rep:?}"
                );
                assert!(
                    !c.list().unwrap().iter().any(|i| i.name == *name),
                    "{what}: listed"
                );
            }
            (Expect::Fails(text), Err(e)) => {
                assert!(
                    e.to_string().contains(text),
                    "{what}: error {e} lacks {text:?}"
                );
                assert_eq!(mount_table(&r), setup_mounts, "{what}: nothing mounted");
                assert_eq!(tree_snapshot(&r), before, "{what}: nothing created");
            }
            (_, res) => panic!("{what}: unexpected outcome {res:?}"),
        }
        c.unmerge().unwrap();
        assert_eq!(mount_table(&r), setup_mounts, "{what}");
        if !setup_mounts.is_empty() {
            let _ = Command::new("umount")
                .arg("-R")
                .arg(r.p("var/lib/extensions.mutable"))
                .status();
        }
        assert_eq!(
            snapshot(&outside),
            outside_before,
            "{what}: something outside the root changed"
        );
    }
    // An image that changes while being merged: a directory image removed between
    // discovery and mounting makes the merge fail cleanly (no partial merge).
    let r = TestRoot::new("racing");
    r.sysext("racer", &[("usr/bin/racer", "r\n")]);
    let c = Context::new(opts(&r, ImageClass::Sysext, MutableMode::Disabled)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = {
        let (stop, p) = (stop.clone(), r.p("var/lib/extensions/racer"));
        let q = r.p("var/lib/extensions/.racer-away");
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(&p, &q);
                let _ = std::fs::rename(&q, &p);
            }
        })
    };
    for _ in 0..50 {
        match c.merge() {
            Ok(rep) => {
                // The image may have been away during discovery: then nothing is merged.
                assert_eq!(r.overlays_at("usr"), usize::from(!rep.merged.is_empty()));
                c.unmerge().unwrap();
            }
            Err(e) => assert_eq!(r.mounts_below(), 0, "failed merge ({e}) left mounts"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    t.join().unwrap();
    assert_eq!(r.mounts_below(), 0);
    let _ = std::fs::remove_dir_all(&outside);
}

fn snapshot(p: &Path) -> Vec<String> {
    let mut v = Vec::new();
    fn walk(b: &Path, p: &Path, v: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let md = std::fs::symlink_metadata(e.path()).unwrap();
                v.push(format!(
                    "{} {:o} {}",
                    e.path().strip_prefix(b).unwrap().display(),
                    md.mode(),
                    md.mtime()
                ));
                if md.is_dir() {
                    walk(b, &e.path(), v);
                }
            }
        }
    }
    walk(p, p, &mut v);
    v.sort();
    v
}

#[test]
fn no_crafted_symlink_reaches_outside_the_root() {
    isolated!();
    // A decoy tree outside the root, reachable by every kind of crafted symlink.
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().to_path_buf();
    std::fs::create_dir_all(outside.join("usr/bin")).unwrap();
    std::fs::create_dir_all(outside.join("extensions/evil/usr/lib/extension-release.d")).unwrap();
    std::fs::write(
        outside.join("extensions/evil/usr/lib/extension-release.d/extension-release.evil"),
        "ID=_any\n",
    )
    .unwrap();
    std::fs::write(outside.join("usr/bin/decoy"), "decoy\n").unwrap();
    std::fs::create_dir_all(outside.join("var/lib/extensions.mutable/usr")).unwrap();
    let before = snapshot(&outside);
    let o = outside.to_string_lossy().into_owned();
    let mounts_outside = || {
        sysext::testing::mountinfo::read_self()
            .unwrap()
            .iter()
            .filter(|m| m.mount_point.starts_with(&o))
            .count()
    };

    let r = TestRoot::new("confine");
    r.sysext("ok", &[("usr/bin/ok", "ok\n")]);
    // An image whose `usr` is an absolute symlink naming the decoy's path: followed inside
    // the image, never out to the decoy.
    let inner = format!("var/lib/extensions/linked{o}/usr");
    r.put(
        &format!("{inner}/lib/extension-release.d/extension-release.linked"),
        "ID=_any\n",
    );
    r.put(&format!("{inner}/bin/linked"), "inside\n");
    symlink(format!("{o}/usr"), r.p("var/lib/extensions/linked/usr")).unwrap();
    // Search dir symlinked out of the root (absolute): re-rooted, so it resolves inside.
    symlink(format!("{o}/extensions"), r.p("run/extensions")).unwrap_or_else(|_| {
        r.mkdir("run");
        symlink(format!("{o}/extensions"), r.p("run/extensions")).unwrap()
    });
    // Routing dir parents symlinked out, relative and absolute.
    r.mkdir("var/lib");
    symlink(
        format!("{o}/var/lib/extensions.mutable"),
        r.p("var/lib/extensions.mutable"),
    )
    .unwrap();
    // The os-release pointing outside through ..
    std::fs::remove_file(r.p("usr/lib/os-release")).unwrap();
    std::fs::write(r.p("usr/lib/os-release.real"), "ID=debian\nVERSION_ID=12\n").unwrap();
    symlink(
        "../../../../../../../usr/lib/os-release.real",
        r.p("usr/lib/os-release"),
    )
    .unwrap();
    for mode in MutableMode::ALL {
        let c = Context::new(opts(&r, ImageClass::Sysext, mode)).unwrap();
        match c.merge() {
            Ok(rep) => {
                assert!(
                    !rep.merged.contains(&"evil".to_string()),
                    "{mode}: an image outside the root was merged"
                );
                assert_eq!(r.read("usr/bin/decoy"), None, "{mode}");
                assert!(rep.merged.contains(&"linked".to_string()), "{mode}");
                assert_eq!(
                    r.read("usr/bin/linked").as_deref(),
                    Some("inside\n"),
                    "{mode}"
                );
                if mode.may_be_writable() {
                    let _ = r.try_write("usr/bin/written", "w\n");
                }
                c.unmerge().unwrap();
            }
            Err(e) => assert_eq!(r.mounts_below(), 0, "{mode}: {e}"),
        }
        assert_eq!(
            mounts_outside(),
            0,
            "{mode}: something was mounted outside the root"
        );
        assert_eq!(
            snapshot(&outside),
            before,
            "{mode}: something outside the root changed"
        );
    }
    let _ = std::fs::remove_dir_all(&outside);
}

#[test]
fn private_dirs_read_only_meta_and_confext_flags() {
    isolated!();
    let r = TestRoot::new("secprops");
    r.sysext("foo", &[("usr/bin/foo", "f\n")]);
    for mode in [
        MutableMode::Enabled,
        MutableMode::Ephemeral,
        MutableMode::EphemeralImport,
    ] {
        let c = Context::new(opts(&r, ImageClass::Sysext, mode)).unwrap();
        c.merge().unwrap();
        // The meta dir is read-only even though the hierarchy is writable.
        r.try_write("usr/probe", "p").unwrap();
        assert_eq!(
            r.try_write("usr/.systemd-sysext/extensions", "evil"),
            Err(libc::EROFS),
            "{mode}"
        );
        assert_eq!(
            std::fs::remove_file(r.p("usr/.systemd-sysext/dev")).map_err(|e| e.raw_os_error()),
            Err(Some(libc::EROFS)),
            "{mode}"
        );
        if mode == MutableMode::Enabled {
            let md =
                std::fs::metadata(r.p("var/lib/extensions.mutable/.systemd-usr-workdir")).unwrap();
            assert_eq!(md.mode() & 0o7777, 0o700, "work dir is private");
        } else {
            for e in std::fs::read_dir(sysext::testing::state::EPHEMERAL_DIR)
                .unwrap()
                .flatten()
            {
                assert_eq!(
                    e.metadata().unwrap().mode() & 0o777,
                    0o700,
                    "ephemeral dir is private"
                );
            }
            assert_eq!(
                std::fs::metadata("/run/libsysext").unwrap().mode() & 0o777,
                0o700
            );
        }
        c.unmerge().unwrap();
    }
    r.put("etc/os-release", "ID=debian\nVERSION_ID=12\n");
    r.confext("c", &[("etc/tool.sh", "#!/bin/sh\necho hi\n")]);
    std::fs::set_permissions(
        r.p("var/lib/confexts/c/etc/tool.sh"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    for (noexec, want) in [(None, true), (Some(false), false)] {
        let mut o = opts(&r, ImageClass::Confext, MutableMode::Disabled);
        o.noexec = noexec;
        let c = Context::new(o).unwrap();
        c.merge().unwrap();
        let t = r.p("etc").to_string_lossy().into_owned();
        let mi = sysext::testing::mountinfo::read_self().unwrap();
        let m = mi
            .iter()
            .find(|m| m.mount_point == t && m.fstype == "overlay")
            .unwrap();
        assert!(
            m.has_option("nosuid") && m.has_option("nodev"),
            "{}",
            m.options
        );
        assert_eq!(m.has_option("noexec"), want, "{}", m.options);
        let run = Command::new(r.p("etc/tool.sh")).output();
        assert_eq!(
            run.is_err(),
            want,
            "exec through confext with noexec={want}"
        );
        c.unmerge().unwrap();
    }
}

#[test]
fn an_unreadable_hierarchy_without_content_does_not_stop_a_merge() {
    isolated!();
    // Hierarchies are opened for reading (their entries are read through the same fd); one
    // the caller may not read is opened O_PATH instead. Here /opt (no extension has content
    // for it) belongs to someone else, mode 0311, and the process keeps CAP_SYS_ADMIN but
    // drops the capabilities that bypass read permission (it runs alone in its own process).
    let r = TestRoot::new("unreadable-opt");
    r.sysext("foo", &[("usr/bin/foo", "from foo\n")]);
    r.mkdir("opt/secret");
    std::os::unix::fs::chown(r.p("opt"), Some(12345), Some(12345)).unwrap();
    std::fs::set_permissions(r.p("opt"), std::fs::Permissions::from_mode(0o311)).unwrap();
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    let mut caps = capabilities(None).unwrap();
    caps.effective
        .remove(CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH);
    set_capabilities(None, caps).unwrap();
    assert!(
        std::fs::read_dir(r.p("opt")).is_err(),
        "/opt is unreadable now"
    );
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    let rep = ctx.merge().unwrap();
    assert_eq!(rep.merged, vec!["foo"]);
    assert_eq!(r.read("usr/bin/foo").as_deref(), Some("from foo\n"));
    assert_eq!(ctx.status().unwrap().len(), 2);
    ctx.unmerge().unwrap();
    assert_eq!(r.read("usr/bin/foo"), None);
    caps.effective
        .insert(CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH);
    set_capabilities(None, caps).unwrap();
}

/// Runs `f` on another thread and waits at most `secs` for it: a call that blocks (on a
/// FIFO, say) fails the test instead of hanging it.
fn within<T: Send + 'static>(what: &str, secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: still blocked after {secs} s"))
}

fn mkfifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

fn mknod_char(p: &Path, major: u32, minor: u32) {
    let _ = std::fs::remove_file(p);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o644),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
}

/// Peak RSS since the last [`reset_peak_rss`], in KiB.
fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

#[test]
fn fifos_sockets_and_device_nodes_as_release_files_never_block() {
    isolated!();
    let r = TestRoot::new("fifo");
    r.sysext("good", &[("usr/bin/good", "g\n")]);
    let rel = |name: &str| {
        r.sysext(name, &[("usr/bin/x", "x\n")]);
        r.p(&format!(
            "var/lib/extensions/{name}/usr/lib/extension-release.d/extension-release.{name}"
        ))
    };
    mkfifo(&rel("fifo"));
    let sock = rel("sock");
    std::fs::remove_file(&sock).unwrap();
    // Bound by a relative name: the full path can be longer than a socket address takes
    // (this test runs alone in its process, see `isolated`).
    let cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(sock.parent().unwrap()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(sock.file_name().unwrap()).unwrap();
    std::env::set_current_dir(cwd).unwrap();
    mknod_char(&rel("chr"), 1, 3);
    // A FIFO that only matches by the relaxed rule (base name): never opened either.
    let relaxed = rel("relax_1");
    std::fs::remove_file(&relaxed).unwrap();
    mkfifo(&relaxed.with_file_name("extension-release.relax"));
    let opts = r.options(ImageClass::Sysext, MutableMode::Disabled);
    let t = std::time::Instant::now();
    let rep = within("merge with FIFO release files", 20, {
        let o = opts.clone();
        move || Context::new(o).unwrap().merge().map_err(|e| e.to_string())
    })
    .unwrap();
    println!(
        "merge with a FIFO, a socket, a device node as release files: {:?}",
        t.elapsed()
    );
    assert_eq!(rep.merged, vec!["good".to_string()], "{rep:?}");
    for (name, what) in [
        ("fifo", "is a FIFO, not a regular file"),
        ("sock", "is a socket, not a regular file"),
        ("chr", "is a character device, not a regular file"),
        ("relax_1", "no release file"),
    ] {
        let s = rep
            .skipped
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not skipped: {rep:?}"));
        assert!(s.reason.contains(what), "{name}: {}", s.reason);
        if name != "relax_1" {
            assert!(
                s.reason.contains(&format!("extension-release.{name}")),
                "{name}: the reason names the file: {}",
                s.reason
            );
        }
    }
    Context::new(opts.clone()).unwrap().unmerge().unwrap();

    // The host's os-release a FIFO, then a character device: a clear error naming the
    // file, and the lock is free again at once (a second caller that does not wait for
    // it gets through).
    for (kind, what) in [("fifo", "is a FIFO"), ("char", "is a character device")] {
        let osrel = r.p("usr/lib/os-release");
        if kind == "fifo" {
            mkfifo(&osrel);
        } else {
            mknod_char(&osrel, 1, 5);
        }
        let t = std::time::Instant::now();
        let err = within("merge with a FIFO os-release", 20, {
            let o = opts.clone();
            move || {
                Context::new(o)
                    .unwrap()
                    .merge()
                    .map_err(|e| (e.kind(), e.to_string()))
            }
        })
        .unwrap_err();
        println!(
            "merge with a {kind} as os-release: {:?}: {}",
            t.elapsed(),
            err.1
        );
        assert_eq!(err.0, sysext::ErrorKind::ReleaseFile);
        assert!(
            err.1.contains(what) && err.1.contains(&osrel.to_string_lossy().into_owned()),
            "{}",
            err.1
        );
        // list works without the host's os-release, and says why.
        let listed = within("list with a FIFO os-release", 20, {
            let o = opts.clone();
            move || Context::new(o).unwrap().list().unwrap()
        });
        assert!(listed.iter().any(|i| i.name == "good"));
        let mut o = opts.clone();
        o.lock_timeout = Some(std::time::Duration::ZERO);
        let again = Context::new(o).unwrap().merge().unwrap_err();
        assert_eq!(again.kind(), sysext::ErrorKind::ReleaseFile, "{again}");
        assert_eq!(r.mounts_below(), 0);
    }
}

#[test]
fn huge_release_files_are_refused_with_memory_bounded() {
    isolated!();
    use std::io::Write;
    let r = TestRoot::new("hugerel");
    r.sysext("good", &[("usr/bin/good", "g\n")]);
    // Written in pieces: the test itself must not need the memory it checks for.
    let write_keys = |p: &Path, head: &str, keys: usize, width: usize| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
        f.write_all(head.as_bytes()).unwrap();
        for i in 0..keys {
            writeln!(f, "K{i:0width$}=v").unwrap();
        }
        f.flush().unwrap();
        std::fs::metadata(p).unwrap().len()
    };
    let osrel = r.p("usr/lib/os-release");
    let opts = r.options(ImageClass::Sysext, MutableMode::Disabled);
    let measure = |what: &str| {
        reset_peak_rss();
        let before = peak_rss_kib();
        let t = std::time::Instant::now();
        let res = Context::new(opts.clone()).unwrap().merge();
        let (el, grew) = (t.elapsed(), peak_rss_kib().saturating_sub(before));
        println!(
            "{what}: {el:?}, peak RSS +{grew} KiB: {:?}",
            res.as_ref().map(|r| &r.merged)
        );
        if res.is_ok() {
            Context::new(opts.clone()).unwrap().unmerge().unwrap();
        }
        // Bounded by the 4 MiB cap and what the parser keeps, not by the file.
        assert!(grew < 24 * 1024, "{what}: peak RSS grew by {grew} KiB");
        res
    };

    // 20 MB os-release with 2 M keys: reading stops at the cap.
    let n = write_keys(&osrel, "ID=debian\n", 2_000_000, 7);
    let e = measure(&format!("os-release of {n} bytes, 2M keys")).unwrap_err();
    assert_eq!(e.kind(), sysext::ErrorKind::ReleaseFile);
    assert!(
        e.to_string().contains("is larger than 4194304 bytes"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&osrel.to_string_lossy().into_owned()),
        "{e}"
    );
    // Just under the cap with 400 k keys: used, and only the keys we need are kept.
    let n = write_keys(&osrel, "ID=debian\nVERSION_ID=12\n", 400_000, 6);
    assert!(n < 4 << 20);
    let rep = measure(&format!("os-release of {n} bytes, 400k keys")).unwrap();
    assert_eq!(rep.merged, vec!["good".to_string()]);
    r.put("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n");

    // An extension-release of 3.8 MB with 400 k keys: skipped, with the reason.
    r.sysext("many", &[("usr/bin/many", "m\n")]);
    let p = r.p("var/lib/extensions/many/usr/lib/extension-release.d/extension-release.many");
    let n = write_keys(&p, "ID=_any\n", 400_000, 6);
    let rep = measure(&format!("extension-release of {n} bytes, 400k keys")).unwrap();
    let s = rep.skipped.iter().find(|s| s.name == "many").unwrap();
    assert!(
        s.reason.contains("more than 4096 distinct keys"),
        "{}",
        s.reason
    );
    // And one over the cap.
    let n = write_keys(&p, "ID=_any\n", 1_000_000, 7);
    let rep = measure(&format!("extension-release of {n} bytes")).unwrap();
    let s = rep.skipped.iter().find(|s| s.name == "many").unwrap();
    assert!(
        s.reason.contains("is larger than 4194304 bytes"),
        "{}",
        s.reason
    );
}

fn losetup(file: &Path) -> String {
    let out = Command::new("losetup")
        .args(["--show", "-f", "-r"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn block_devices_below_a_root_need_an_opt_in() {
    isolated!();
    // An erofs image outside the root, on a loop device; its node inside the root.
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().to_path_buf();
    let src = outside.join("src");
    std::fs::create_dir_all(src.join("usr/lib/extension-release.d")).unwrap();
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::write(
        src.join("usr/lib/extension-release.d/extension-release.blk"),
        "ID=_any\n",
    )
    .unwrap();
    std::fs::write(src.join("usr/bin/blk"), "from outside the root\n").unwrap();
    let img = outside.join("img.erofs");
    assert!(Command::new("mkfs.erofs")
        .arg("--quiet")
        .arg(&img)
        .arg(&src)
        .status()
        .unwrap()
        .success());
    let dev = losetup(&img);
    let st = std::fs::metadata(&dev).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(st.file_type().is_block_device());
    let r = TestRoot::new("blk");
    r.sysext("good", &[("usr/bin/good", "g\n")]);
    let node = r.p("var/lib/extensions/blk");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        st.rdev(),
    )
    .unwrap();
    let run = || -> Result<(), String> {
        // Refused by default: skipped with the reason, listed so, and named merges fail.
        let c = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
        let rep = c.merge().map_err(|e| e.to_string())?;
        assert_eq!(rep.merged, vec!["good".to_string()]);
        let s = rep
            .skipped
            .iter()
            .find(|s| s.name == "blk")
            .expect("blk skipped");
        assert!(
            s.reason.contains("is a block device below the root"),
            "{}",
            s.reason
        );
        assert_eq!(r.read("usr/bin/blk"), None);
        c.unmerge().unwrap();
        let l = c.list().unwrap();
        let b = l.iter().find(|i| i.name == "blk").unwrap();
        assert_eq!(b.kind, sysext::ImageKind::Block);
        assert_eq!(b.state, sysext::ImageState::Incompatible);
        assert!(b
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("allow_block_devices"));
        let e = c.merge_names(&["blk".to_string()]).unwrap_err();
        assert_eq!(e.kind(), sysext::ErrorKind::IncompatibleExtension, "{e}");
        // Below discovery too: the image opener refuses the device (a file swapped for a
        // node after discovery).
        let root_fd = std::fs::File::open(&r.path).unwrap();
        let e = sysext::testing::image::mount::open_image(
            std::os::fd::AsFd::as_fd(&root_fd),
            "var/lib/extensions/blk",
            ImageClass::Sysext,
            &sysext::image::ImagePolicy::sysext_default(),
            false,
            false,
            sysext::Kernel::new(sysext::KernelFeatures::all()),
            &|_| Ok(()),
        )
        .unwrap_err();
        assert!(
            matches!(e, sysext::image::ImageError::BlockDeviceRefused),
            "{e}"
        );
        // Opted in: merged.
        let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
        o.allow_block_devices = true;
        let c = Context::new(o).unwrap();
        let rep = c.merge().map_err(|e| e.to_string())?;
        assert_eq!(rep.merged, vec!["blk".to_string(), "good".to_string()]);
        assert_eq!(
            r.read("usr/bin/blk").as_deref(),
            Some("from outside the root\n")
        );
        c.unmerge().unwrap();
        Ok(())
    };
    let res = run();
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    let _ = std::fs::remove_dir_all(&outside);
    res.unwrap();
    assert_eq!(r.mounts_below(), 0);
}

/// A GPT disk image with one root partition holding `fs` (and, with `verity`, its verity
/// hash partition); the data partition's byte offset.
fn disk_image(fs: &[u8], verity: bool) -> (Vec<u8>, u64) {
    use sysext::image::PartitionDesignator as D;
    use sysext::testing::image::gpt::GptBuilder;
    use sysext::testing::image::{dps, verity as v};
    let arch = sysext::testing::arch::native();
    let mut data = fs.to_vec();
    data.resize(data.len().div_ceil(4096) * 4096, 0);
    let dsize = data.len() as u64;
    let mut b = GptBuilder::new(512, dsize + 4 * 1024 * 1024);
    // The first partition starts 4 KiB aligned after the table.
    let off = b.first_usable_lba().next_multiple_of(8) * 512;
    let hash = if verity {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = tmp.path().join("data");
        std::fs::write(&scratch, &data).unwrap();
        let f = std::fs::File::open(&scratch).unwrap();
        let (hash, root_hash) = v::format(&f, 0, dsize, &v::FormatParams::default()).unwrap();
        std::fs::remove_file(&scratch).unwrap();
        Some((hash, root_hash))
    } else {
        None
    };
    b = b.append(
        dps::type_guid(D::Root, Some(arch)).unwrap(),
        dsize,
        "root",
        0,
        data,
    );
    let mut root_hash = Vec::new();
    if let Some((h, rh)) = hash {
        let hsize = (h.len() as u64).div_ceil(4096) * 4096;
        b = b.append(
            dps::type_guid(D::RootVerity, Some(arch)).unwrap(),
            hsize,
            "root-verity",
            0,
            h,
        );
        root_hash = rh;
    }
    let img = b.build();
    if !root_hash.is_empty() {
        // The root hash travels as the .roothash sidecar.
        std::fs::write(
            std::env::temp_dir().join(format!("sysext-corpus-rh-{}", std::process::id())),
            root_hash
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>(),
        )
        .unwrap();
    }
    (img, off)
}

#[test]
fn corrupt_image_corpus_names_the_path_and_the_part() {
    isolated!();
    let r = TestRoot::new("corpus-img");
    r.sysext("good", &[("usr/bin/good", "g\n")]);
    let stage = r.p("stage");
    let src = stage.join("src");
    std::fs::create_dir_all(src.join("usr/lib/extension-release.d")).unwrap();
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::write(
        src.join("usr/lib/extension-release.d/extension-release.bad"),
        "ID=_any\n",
    )
    .unwrap();
    for i in 0..8 {
        // Several blocks of data that does not compress away.
        let data: Vec<u8> = (0..40_000u32)
            .map(|k| (k.wrapping_mul(2654435761).wrapping_add(i) >> 11) as u8)
            .collect();
        std::fs::write(src.join(format!("usr/bin/f{i}")), data).unwrap();
    }
    let erofs_p = stage.join("good.erofs");
    let sq_p = stage.join("good.sq");
    assert!(Command::new("mkfs.erofs")
        .arg("--quiet")
        .arg(&erofs_p)
        .arg(&src)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("mksquashfs")
        .arg(&src)
        .arg(&sq_p)
        .args(["-quiet", "-noappend", "-all-root"])
        .status()
        .unwrap()
        .success());
    let erofs = std::fs::read(&erofs_p).unwrap();
    let sq = std::fs::read(&sq_p).unwrap();
    let (ddi, data_off) = disk_image(&erofs, false);
    let (vddi, vdata_off) = disk_image(&erofs, true);
    // The hash partition follows the data (whole 4 KiB blocks); its first block is the
    // verity superblock, the tree follows.
    let vhash_off = vdata_off as usize + erofs.len().div_ceil(4096) * 4096;
    let rh_file = std::env::temp_dir().join(format!("sysext-corpus-rh-{}", std::process::id()));
    let roothash = std::fs::read_to_string(&rh_file).unwrap();
    let n = ddi.len();
    let flip = |mut b: Vec<u8>, at: &[usize]| {
        for &i in at {
            b[i] ^= 0x5a;
        }
        b
    };
    let garbage: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 17) as u8)
        .collect();
    let mut zero_sb = erofs.clone();
    zero_sb[1024..2048].fill(0);
    let mut sq_bad = sq.clone();
    sq_bad[12..16].fill(0xff); // the block size
    let mut entries_bad = ddi.clone();
    {
        // Partition 1's last LBA before its first, in both tables, CRCs kept right.
        let fix = |img: &mut Vec<u8>, hdr: usize| {
            let lba = |b: &[u8], at: usize| {
                u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
            };
            let arr = lba(img, hdr + 72) * 512;
            img[arr + 40..arr + 48].copy_from_slice(&1u64.to_le_bytes());
            let crc = crc32fast::hash(&img[arr..arr + 128 * 128]);
            img[hdr + 88..hdr + 92].copy_from_slice(&crc.to_le_bytes());
            img[hdr + 16..hdr + 20].fill(0);
            let hcrc = crc32fast::hash(&img[hdr..hdr + 92]);
            img[hdr + 16..hdr + 20].copy_from_slice(&hcrc.to_le_bytes());
        };
        fix(&mut entries_bad, 512);
        fix(&mut entries_bad, n - 512);
    }
    let mut part_zeroed = ddi.clone();
    part_zeroed[data_off as usize..data_off as usize + 8192].fill(0);
    // With device-mapper (the VM guests) an image with a known root hash goes through
    // dm-verity, as systemd's: nothing is checked before the merge, the kernel checks each
    // block when it is read. A changed data block then merges and fails its reads with EIO
    // (below); a changed hash tree fails the mount (its top block no longer matches the root
    // hash), with the kernel's EIO. Without device-mapper both are refused at merge by the
    // userspace check, naming the block or the tree.
    let dm = sysext::testing::sys::dm::available();
    let data_block_changed = flip(vddi.clone(), &[vdata_off as usize + 5 * 4096 + 9]);
    // (what, bytes, policy, texts the message must contain, errno)
    type Case = (
        &'static str,
        Vec<u8>,
        Option<&'static str>,
        Vec<&'static str>,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "random garbage",
            garbage,
            None,
            vec![
                "neither a file system superblock",
                "nor a GPT partition table",
            ],
            libc::ENOPKG,
        ),
        (
            "empty file",
            Vec::new(),
            None,
            vec!["neither a file system superblock"],
            libc::ENOPKG,
        ),
        (
            "truncated erofs",
            erofs[..1000].to_vec(),
            None,
            vec!["neither a file system superblock"],
            libc::ENOPKG,
        ),
        (
            "zeroed erofs superblock",
            zero_sb,
            None,
            vec!["neither a file system superblock"],
            libc::ENOPKG,
        ),
        (
            "truncated squashfs",
            sq[..sq.len() / 2].to_vec(),
            None,
            vec![
                "file system superblock:",
                "squashfs superblock says",
                "truncated image",
            ],
            libc::EBADMSG,
        ),
        (
            "squashfs superblock garbage",
            sq_bad,
            None,
            vec![
                "file system superblock:",
                "the kernel refused to mount it as squashfs",
            ],
            0,
        ),
        (
            "bad GPT header CRCs",
            flip(ddi.clone(), &[512 + 90, n - 512 + 90]),
            None,
            vec![
                "GPT partition table:",
                "primary table: GPT header: CRC32 mismatch",
                "backup table: GPT header: CRC32 mismatch",
            ],
            libc::ENOPKG,
        ),
        (
            "bad GPT entry CRCs",
            flip(ddi.clone(), &[1024 + 40, n - 512 - 128 * 128 + 40]),
            None,
            vec![
                "GPT partition table:",
                "GPT partition entry array: CRC32 mismatch",
            ],
            libc::ENOPKG,
        ),
        (
            "bad partition entries",
            entries_bad,
            None,
            vec![
                "GPT partition table:",
                "GPT entry of partition 1: first LBA",
            ],
            libc::ENOPKG,
        ),
        (
            "truncated disk image",
            ddi[..n / 2].to_vec(),
            None,
            vec!["GPT partition table:", "truncated image"],
            libc::ENOPKG,
        ),
        (
            "partition without a file system",
            part_zeroed,
            None,
            vec!["partition 1 (root): no file system superblock"],
            libc::EAFNOSUPPORT,
        ),
    ];
    let mut cases = cases;
    if !dm {
        cases.push((
            "verity: a data block changed",
            data_block_changed.clone(),
            Some("root=verity"),
            vec!["partition 1 (root): verity mismatch: data block 5"],
            libc::EBADMSG,
        ));
    }
    cases.push(if dm {
        (
            "verity: hash tree changed",
            flip(vddi.clone(), &[vhash_off + 4096 + 3]),
            Some("root=verity"),
            vec!["partition 1 (root)"],
            libc::EIO,
        )
    } else {
        (
            "verity: hash tree changed",
            flip(vddi.clone(), &[vhash_off + 4096 + 3]),
            Some("root=verity"),
            vec!["verity tree (partition 2) of root"],
            libc::EBADMSG,
        )
    });
    let img = r.p("var/lib/extensions/bad.raw");
    let img_s = img.to_string_lossy().into_owned();
    let mut results = Vec::new();
    for (what, bytes, policy, texts, errno) in cases {
        std::fs::write(&img, &bytes).unwrap();
        let rh = r.p("var/lib/extensions/bad.roothash");
        if policy.is_some() {
            std::fs::write(&rh, &roothash).unwrap();
        } else {
            let _ = std::fs::remove_file(&rh);
        }
        let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
        o.image_policy = policy.map(str::to_string);
        let t = std::time::Instant::now();
        let e = Context::new(o).unwrap().merge().expect_err(what);
        let el = t.elapsed();
        let msg = e.to_string();
        results.push(format!("{what} ({el:?}): {msg}"));
        assert_eq!(e.kind(), sysext::ErrorKind::Image, "{what}: {msg}");
        assert_eq!(e.path().as_deref(), Some(img_s.as_str()), "{what}");
        assert!(
            msg.starts_with(&format!("Image '{img_s}': ")),
            "{what}: names the path: {msg}"
        );
        for t in texts {
            assert!(msg.contains(t), "{what}: {msg} lacks {t:?}");
        }
        if errno != 0 {
            assert_eq!(e.errno(), errno, "{what}: {msg}");
        }
        assert!(
            !msg.contains("(e ") && !msg.contains(": e "),
            "{what}: kernel log prefix in {msg}"
        );
        let sysext::Error::Image { source, .. } = &e else {
            panic!("{what}: {e:?}");
        };
        assert!(
            source.part().is_some() || matches!(**source, sysext::image::ImageError::Unrecognised),
            "{what}"
        );
        assert_eq!(r.mounts_below(), 0, "{what}");
        // The loop devices under a dm-verity device go with its deferred removal, a moment
        // after the failed mount.
        wait_until(|| loops_of(&r).is_empty(), what);
    }
    for l in &results {
        println!("{l}");
    }
    if dm {
        // dm-verity: the image with a changed data block merges (the default policy sets up
        // dm-verity for a known root hash), and the read that reaches block 5 fails with EIO.
        std::fs::write(&img, &data_block_changed).unwrap();
        std::fs::write(r.p("var/lib/extensions/bad.roothash"), &roothash).unwrap();
        let c = Context::new(r.options(ImageClass::Sysext, MutableMode::Disabled)).unwrap();
        let rep = c
            .merge()
            .expect("dm-verity merges an image with a changed data block");
        assert_eq!(rep.merged, vec!["bad".to_string(), "good".to_string()]);
        let mut eio = Vec::new();
        for i in 0..8 {
            let p = r.p(&format!("usr/bin/f{i}"));
            match std::fs::read(&p) {
                Ok(b) => assert_eq!(b.len(), 40_000, "f{i}"),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => eio.push(i),
                Err(e) => panic!("f{i}: {e}"),
            }
        }
        println!("dm-verity: reads of f{eio:?} failed with EIO");
        assert!(
            !eio.is_empty(),
            "no read failed: the changed block was not caught"
        );
        c.unmerge().unwrap();
        assert_eq!(r.mounts_below(), 0);
        wait_until(
            || loops_of(&r).is_empty(),
            "loop devices of the dm-verity device",
        );
    }

    // A broken primary GPT with an intact backup is used, as blkid does, and said so in a
    // debug event.
    let _ = std::fs::remove_file(r.p("var/lib/extensions/bad.roothash"));
    std::fs::write(&img, flip(ddi.clone(), &[512 + 90])).unwrap();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
    o.sink = {
        let ev = events.clone();
        std::sync::Arc::new(move |e: &sysext::Event| ev.lock().unwrap().push(e.to_string()))
    };
    let c = Context::new(o).unwrap();
    let rep = c.merge().unwrap();
    assert_eq!(rep.merged, vec!["bad".to_string(), "good".to_string()]);
    assert_eq!(std::fs::read(r.p("usr/bin/f3")).unwrap().len(), 40_000);
    c.unmerge().unwrap();
    let ev = events.lock().unwrap();
    assert!(
        ev.iter().any(|e| e.contains(&img_s)
            && e.contains("primary GPT header is broken (GPT header: CRC32 mismatch")
            && e.contains("backup GPT header")),
        "{ev:?}"
    );

    // The CLI says what systemd says where systemd fails alike, and more with -v.
    std::fs::write(
        &img,
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let cli = sysext_tests::cli();
    let out = Command::new(&cli)
        .arg(format!("--root={}", r.path.display()))
        .arg("merge")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Failed to read metadata for image bad: Package not installed\n"
    );
    let out = Command::new(&cli)
        .arg(format!("--root={}", r.path.display()))
        .args(["-v", "merge"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Image '{img_s}': neither a file system superblock"
        )),
        "{err}"
    );
    assert!(
        err.ends_with("Failed to read metadata for image bad: Package not installed\n"),
        "{err}"
    );
    let _ = std::fs::remove_file(&rh_file);
}
