//! Root tests of reliability and security (issue 8): fault injection over a realistic root
//! (two hierarchies, directory and image extensions), a soak run, a corpus of bad inputs,
//! and root confinement.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use sysext::{Context, ImageClass, MutableMode, Options};
use sysext_tests::{
    ephemeral_dirs, inject_everywhere, isolated, loops_of, mount_table, tree_snapshot, TestRoot,
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
    if !isolated("fault_injection_over_dirs_and_images") {
        return;
    }
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

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn soak_merge_refresh_unmerge() {
    if !isolated("soak_merge_refresh_unmerge") {
        return;
    }
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
    let all_mounts = || sysext::mountinfo::read_self().unwrap().len();
    let mut base = None;
    for i in 0..cycles + 20 {
        if i == 20 {
            base = Some((all_mounts(), loops_of(&r).len(), count_fds(), rss_kib()));
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
    let (m0, l0, f0, r0) = base.unwrap();
    let (m1, l1, f1, r1) = (all_mounts(), loops_of(&r).len(), count_fds(), rss_kib());
    println!(
        "soak: {cycles} cycles of merge/refresh/unmerge: mounts {m0} -> {m1}, loop devices {l0} -> {l1}, \
         open fds {f0} -> {f1}, RSS {r0} KiB -> {r1} KiB"
    );
    assert_eq!(
        (m0, l0, f0),
        (m1, l1, f1),
        "no growth in mounts, loop devices, fds"
    );
    // A few dozen KiB of allocator warm-up, the same after 200 or 2,000 cycles: no leak.
    assert!(r1 <= r0 + 1024, "memory grew from {r0} KiB to {r1} KiB");
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
fn bad_input_corpus() {
    if !isolated("bad_input_corpus") {
        return;
    }
    let outside = std::env::temp_dir().join(format!("sysext-outside-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&outside);
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
            Expect::Fails("File exists"),
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
            Expect::Fails("File exists"),
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
fn root_confinement() {
    if !isolated("root_confinement") {
        return;
    }
    // A decoy tree outside the root, reachable by every kind of crafted symlink.
    let outside = std::env::temp_dir().join(format!("sysext-decoy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&outside);
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
        sysext::mountinfo::read_self()
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
    if !isolated("private_dirs_read_only_meta_and_confext_flags") {
        return;
    }
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
            for e in std::fs::read_dir(sysext::state::EPHEMERAL_DIR)
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
        let mi = sysext::mountinfo::read_self().unwrap();
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
    if !isolated("an_unreadable_hierarchy_without_content_does_not_stop_a_merge") {
        return;
    }
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
