//! Root tests: refresh, selective merge/unmerge, status, rollback.

use sysext::{ImageClass, MutableMode};
use sysext_tests::{exists, isolated, TestRoot};

#[test]
fn refresh_picks_up_changes_and_unmerges_when_empty() {
    isolated!();
    let r = TestRoot::new("refresh");
    r.sysext("foo", &[("usr/bin/foo", "foo\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    // Refresh with nothing merged merges.
    ctx.refresh().unwrap();
    assert_eq!(r.read("usr/bin/foo").as_deref(), Some("foo\n"));
    r.sysext("bar", &[("usr/bin/bar", "bar\n"), ("opt/bar", "ob\n")]);
    ctx.refresh().unwrap();
    assert_eq!(r.read("usr/bin/bar").as_deref(), Some("bar\n"));
    assert_eq!(r.read("opt/bar").as_deref(), Some("ob\n"));
    assert_eq!(
        r.overlays_at("usr"),
        1,
        "the old overlay is gone, not stacked"
    );
    assert_eq!(
        r.read("usr/.systemd-sysext/extensions").as_deref(),
        Some("bar\nfoo\n")
    );
    std::fs::remove_dir_all(r.p("var/lib/extensions/bar")).unwrap();
    ctx.refresh().unwrap();
    assert_eq!(r.overlays_at("opt"), 0, "/opt lost its only extension");
    assert_eq!(r.read("usr/bin/bar"), None);
    std::fs::remove_dir_all(r.p("var/lib/extensions/foo")).unwrap();
    ctx.refresh().unwrap();
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn refresh_switches_modes_and_keeps_persistent_writes() {
    isolated!();
    let r = TestRoot::new("modeswitch");
    r.sysext("foo", &[("usr/bin/foo", "foo\n")]);
    r.ctx(ImageClass::Sysext, MutableMode::Enabled)
        .merge()
        .unwrap();
    r.try_write("usr/bin/p1", "1\n").unwrap();
    r.ctx(ImageClass::Sysext, MutableMode::Ephemeral)
        .refresh()
        .unwrap();
    assert_eq!(
        r.read("usr/bin/p1"),
        None,
        "routing dir invisible in ephemeral"
    );
    assert!(
        !exists(&r.p("var/lib/extensions.mutable/.systemd-usr-workdir")),
        "old work dir removed"
    );
    r.try_write("usr/bin/p2", "2\n").unwrap();
    r.ctx(ImageClass::Sysext, MutableMode::Enabled)
        .refresh()
        .unwrap();
    assert_eq!(r.read("usr/bin/p1").as_deref(), Some("1\n"));
    assert_eq!(
        r.read("usr/bin/p2"),
        None,
        "ephemeral writes are lost on refresh"
    );
    // yes -> yes refresh reuses the same upper and work dir.
    r.ctx(ImageClass::Sysext, MutableMode::Enabled)
        .refresh()
        .unwrap();
    r.try_write("usr/bin/p3", "3\n").unwrap();
    assert_eq!(r.overlays_at("usr"), 1);
    r.ctx(ImageClass::Sysext, MutableMode::Disabled)
        .unmerge()
        .unwrap();
    assert_eq!(
        r.read("var/lib/extensions.mutable/usr/bin/p3").as_deref(),
        Some("3\n")
    );
    assert!(!exists(
        &r.p("var/lib/extensions.mutable/.systemd-usr-workdir")
    ));
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn selective_merge_and_unmerge_keep_the_others() {
    isolated!();
    let r = TestRoot::new("selective");
    r.sysext("a", &[("usr/bin/a", "a\n")]);
    r.sysext("b", &[("usr/bin/b", "b\n")]);
    r.sysext_in(
        "var/lib/extensions",
        "c",
        "ID=fedora\n",
        &[("usr/bin/c", "c\n")],
    );
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Enabled);
    ctx.merge_names(&["a".to_string()]).unwrap();
    assert_eq!(r.read("usr/bin/a").as_deref(), Some("a\n"));
    assert_eq!(r.read("usr/bin/b"), None);
    r.try_write("usr/bin/w", "w\n").unwrap();
    // A context without an explicit mode keeps the recorded one.
    let mut o = sysext::Options::new(ImageClass::Sysext);
    o.root = Some(r.path.to_string_lossy().into_owned());
    o.hierarchies = Some(vec!["/usr".into(), "/opt".into()]);
    let plain = sysext::Context::new(o).unwrap();
    plain.merge_names(&["b".to_string()]).unwrap();
    assert_eq!(r.read("usr/bin/a").as_deref(), Some("a\n"));
    assert_eq!(r.read("usr/bin/b").as_deref(), Some("b\n"));
    assert_eq!(
        r.read("usr/bin/w").as_deref(),
        Some("w\n"),
        "upper layer kept"
    );
    r.try_write("usr/bin/w2", "w2\n").unwrap();
    let st = plain.status().unwrap();
    let usr = st.iter().find(|s| s.hierarchy == "/usr").unwrap();
    assert_eq!(
        usr.extensions.as_deref(),
        Some(&["a".to_string(), "b".to_string()][..])
    );
    assert_eq!(usr.mutable, Some(sysext::MutableMode::Enabled));
    let e = plain.merge_names(&["c".to_string()]).unwrap_err();
    assert!(e.to_string().contains("ID=fedora"), "{e}");
    let e = plain.merge_names(&["nope".to_string()]).unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT);
    let e = plain.unmerge_names(&["c".to_string()]).unwrap_err();
    assert_eq!(e.to_string(), "Extension 'c' is not merged.");
    plain.unmerge_names(&["a".to_string()]).unwrap();
    assert_eq!(r.read("usr/bin/a"), None);
    assert_eq!(r.read("usr/bin/b").as_deref(), Some("b\n"));
    plain.unmerge_names(&["b".to_string()]).unwrap();
    assert_eq!(r.mounts_below(), 0);
    assert_eq!(
        r.read("var/lib/extensions.mutable/usr/bin/w2").as_deref(),
        Some("w2\n")
    );
}

#[test]
fn failed_refresh_keeps_the_previous_merge() {
    isolated!();
    let r = TestRoot::new("failrefresh");
    r.sysext("foo", &[("usr/bin/foo", "foo\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    ctx.merge().unwrap();
    let before = r.read("usr/.systemd-sysext/dev");
    // A routing dir with the wrong mode makes an `auto` refresh fail before the swap.
    r.mkdir("var/lib/extensions.mutable/usr");
    std::fs::set_permissions(
        r.p("var/lib/extensions.mutable/usr"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let e = r
        .ctx(ImageClass::Sysext, MutableMode::Auto)
        .refresh()
        .unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert_eq!(
        r.read("usr/bin/foo").as_deref(),
        Some("foo\n"),
        "old merge intact"
    );
    assert_eq!(r.read("usr/.systemd-sysext/dev"), before);
    assert_eq!(r.overlays_at("usr"), 1);
    ctx.unmerge().unwrap();
}

/// The CLI on the root `r` (the environment's hierarchies and level left out): exit code,
/// stdout, stderr.
fn cli_in(r: &TestRoot, args: &[&str]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(sysext_tests::cli())
        .arg(format!("--root={}", r.path.display()))
        .args(args)
        .env_remove("SYSTEMD_SYSEXT_HIERARCHIES")
        .env_remove("LIBSYSEXT_COMPAT")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cli_status_and_list_json() {
    isolated!();
    let r = TestRoot::new("clijson");
    r.sysext("foo", &[("usr/bin/foo", "foo\n")]);
    let run = |args: &[&str]| cli_in(&r, args);
    let (rc, out, _) = run(&["status", "--json=short"]);
    assert_eq!(rc, Some(0));
    assert!(
        out.starts_with(r#"[{"hierarchy":"/opt","extensions":[],"since":null"#),
        "{out}"
    );
    let (rc, out, _) = run(&["--compat=257", "status", "--json=short"]);
    assert_eq!(rc, Some(0));
    assert!(
        out.starts_with(r#"[{"hierarchy":"/opt","extensions":"none","since":null"#),
        "{out}"
    );
    let (rc, _, err) = run(&["merge"]);
    assert_eq!(rc, Some(0), "{err}");
    assert!(err.contains("Using extensions 'foo'."), "{err}");
    let (_, out, _) = run(&["status", "--json=short"]);
    assert!(
        out.contains(r#"{"hierarchy":"/usr","extensions":["foo"],"since":"#),
        "{out}"
    );
    let (rc, _, err) = run(&["merge"]);
    assert_eq!(rc, Some(1));
    assert!(err.contains("Hierarchy '/usr' is already merged."), "{err}");
    let (rc, out, _) = run(&["list", "--json=short"]);
    assert_eq!(rc, Some(0));
    assert!(out.contains(r#""name":"foo","type":"directory""#), "{out}");
    let (rc, _, err) = run(&["bogus"]);
    assert_eq!(
        (rc, err.trim()),
        (
            Some(1),
            "Unknown command verb 'bogus', did you mean 'status'?"
        )
    );
    let (rc, _, err) = run(&["--mutable=enabled", "merge"]);
    assert_eq!(
        (rc, err.trim()),
        (Some(1), "Failed to parse argument to --mutable=: enabled")
    );
    let (rc, _, _) = run(&["unmerge"]);
    assert_eq!(rc, Some(0));
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn cli_refresh_of_unchanged_inputs_is_skipped_from_level_262() {
    isolated!();
    let r = TestRoot::new("cliskip");
    r.sysext("foo", &[("usr/bin/foo", "foo\n")]);
    let run = |args: &[&str]| {
        let (rc, _, err) = cli_in(&r, args);
        (rc, err)
    };
    let (rc, err) = run(&["merge"]);
    assert_eq!(rc, Some(0), "{err}");
    let skip = "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh.\n";
    let (rc, err) = run(&["refresh"]);
    assert_eq!((rc, err.as_str()), (Some(0), skip));
    // 257 always rebuilds, and says so.
    let (rc, err) = run(&["--compat=257", "refresh"]);
    assert_eq!(rc, Some(0), "{err}");
    assert!(!err.contains("Skipping"), "{err}");
    assert!(err.contains("Merged extensions into '"), "{err}");
    let (rc, err) = run(&["--always-refresh=yes", "refresh"]);
    assert_eq!(rc, Some(0), "{err}");
    assert!(!err.contains("Skipping"), "{err}");
    let (rc, _) = run(&["unmerge"]);
    assert_eq!(rc, Some(0));
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn submounts_stay_visible() {
    isolated!();
    submounts_stay_visible_in("submounts");
}

/// The same on a kernel without `listmount(2)`: sub-mounts come from mountinfo.
#[test]
fn submounts_stay_visible_without_listmount() {
    isolated!();
    // Single-threaded: this test runs alone in its own process (see `isolated`).
    std::env::set_var("LIBSYSEXT_KERNEL_DISABLE", "statmount");
    submounts_stay_visible_in("submounts-nolistmount");
}

/// Extension `foo` with `usr/share/foo/file`, and a tmpfs on `usr/share/sub` holding
/// `inside`; returns the sub-mount's path.
fn extension_and_submount(r: &TestRoot) -> std::path::PathBuf {
    r.sysext("foo", &[("usr/share/foo/file", "foo\n")]);
    r.mkdir("usr/share/sub");
    let sub = r.p("usr/share/sub");
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap()
        .success());
    std::fs::write(sub.join("inside"), "sub\n").unwrap();
    sub
}

fn submounts_stay_visible_in(name: &str) {
    let r = TestRoot::new(name);
    let sub = extension_and_submount(&r);
    for mode in [
        MutableMode::Disabled,
        MutableMode::Enabled,
        MutableMode::Ephemeral,
    ] {
        let mut o = sysext::Options::new(ImageClass::Sysext);
        o.root = Some(r.path.to_string_lossy().into_owned());
        o.mutable = Some(mode);
        o.always_refresh = true;
        o.hierarchies = Some(vec!["/usr".into(), "/opt".into()]);
        let ctx = sysext::Context::new(o).unwrap();
        ctx.merge().unwrap();
        assert_eq!(
            r.read("usr/share/foo/file").as_deref(),
            Some("foo\n"),
            "{mode}"
        );
        assert_eq!(
            r.read("usr/share/sub/inside").as_deref(),
            Some("sub\n"),
            "{mode}: sub-mount visible on the merge"
        );
        ctx.refresh().unwrap();
        assert_eq!(
            r.read("usr/share/sub/inside").as_deref(),
            Some("sub\n"),
            "{mode}: ... and after a refresh"
        );
        // Writes go to the sub-mount itself, as before the merge.
        std::fs::write(sub.join(format!("w-{mode}")), "w\n").unwrap();
        ctx.unmerge().unwrap();
        assert_eq!(
            r.read("usr/share/sub/inside").as_deref(),
            Some("sub\n"),
            "{mode}: ... and after unmerge"
        );
        assert_eq!(
            r.read(&format!("usr/share/sub/w-{mode}")).as_deref(),
            Some("w\n"),
            "{mode}"
        );
        assert_eq!(r.overlays_at("usr"), 0);
    }
    assert!(std::process::Command::new("umount")
        .arg(&sub)
        .status()
        .unwrap()
        .success());
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn refresh_over_a_foreign_mount_below_the_merge() {
    isolated!();
    refresh_over_a_foreign_mount_in("foreign-below");
}

/// The same where the kernel has no `statmount(2)`: the stack is read from mountinfo.
#[test]
fn refresh_over_a_foreign_mount_below_the_merge_without_statmount() {
    isolated!();
    // Single-threaded: this test runs alone in its own process (see `isolated`).
    std::env::set_var("LIBSYSEXT_KERNEL_DISABLE", "statmount");
    refresh_over_a_foreign_mount_in("foreign-below-nostatmount");
}

/// A foreign file system slipped in below our merge on /usr: a refresh cannot put the new
/// overlay beneath the old one over the same host directory, so it warns, unmerges and
/// merges again over what is now on /usr.
fn refresh_over_a_foreign_mount_in(name: &str) {
    use rustix::mount::*;
    use std::sync::{Arc, Mutex};
    let r = TestRoot::new(name);
    r.sysext("foo", &[("usr/share/foo/file", "foo\n")]);
    let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
    o.always_refresh = true;
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    o.sink = Arc::new(move |e: &sysext::Event| {
        if let sysext::Event::Message(_, m) = e {
            log.lock().unwrap().push(m.clone());
        }
    });
    let ctx = sysext::Context::new(o).unwrap();
    ctx.merge().unwrap();
    assert_eq!(r.overlays_at("usr"), 1);

    // A tmpfs with a marker file, slipped in between the host's /usr and the merge.
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).unwrap();
    fsconfig_create(&fs).unwrap();
    let m = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).unwrap();
    rustix::fs::mkdirat(&m, "share", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
    let f = rustix::fs::openat(
        &m,
        "share/foreign",
        rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&f, b"foreign\n").unwrap();
    drop(f);
    let usr = r.p("usr");
    match move_mount(
        &m,
        "",
        rustix::fs::CWD,
        &usr,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_BENEATH,
    ) {
        Ok(()) => {}
        // Before 6.5 there is no MOVE_MOUNT_BENEATH (an unknown flag: EINVAL). The same stack
        // (host /usr, the tmpfs, the merge on top) is built by moving the merge aside, putting
        // the tmpfs on /usr and moving the merge back on top of it.
        Err(rustix::io::Errno::INVAL) => {
            let aside = r.p("aside");
            std::fs::create_dir(&aside).unwrap();
            let here = rustix::fs::CWD;
            move_mount(here, &usr, here, &aside, MoveMountFlags::empty()).unwrap();
            move_mount(&m, "", here, &usr, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH).unwrap();
            move_mount(here, &aside, here, &usr, MoveMountFlags::empty()).unwrap();
            std::fs::remove_dir(&aside).unwrap();
        }
        Err(e) => panic!("move the tmpfs beneath the merge: {e}"),
    }
    drop(m);
    assert_eq!(r.read("usr/share/foreign"), None, "hidden by the merge");

    ctx.refresh().unwrap();
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("foreign mount lies below")),
        "{:?}",
        seen.lock().unwrap()
    );
    assert_eq!(r.overlays_at("usr"), 1, "one merge after the refresh");
    assert_eq!(r.read("usr/share/foo/file").as_deref(), Some("foo\n"));
    assert_eq!(
        r.read("usr/share/foreign").as_deref(),
        Some("foreign\n"),
        "merged over what is on /usr now"
    );
    ctx.unmerge().unwrap();
    assert_eq!(r.overlays_at("usr"), 0);
    assert_eq!(r.read("usr/share/foreign").as_deref(), Some("foreign\n"));
    rustix::mount::unmount(r.p("usr").to_str().unwrap(), UnmountFlags::empty()).unwrap();
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn a_killed_unmerge_never_loses_a_submount() {
    isolated!();
    let r = TestRoot::new("killunmerge");
    let sub = extension_and_submount(&r);
    let cli = sysext_tests::cli();
    let mut kills = 0;
    for n in 1.. {
        let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
        ctx.merge().unwrap();
        let st = std::process::Command::new(&cli)
            .arg(format!("--root={}", r.path.display()))
            .arg("unmerge")
            .env("SYSEXT_FAULT_KILL", n.to_string())
            .env_remove("SYSTEMD_SYSEXT_HIERARCHIES")
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        if st.success() {
            break;
        }
        kills += 1;
        // The next call repairs: the merge goes, the sub-mount stays with its data.
        ctx.unmerge().unwrap();
        assert_eq!(r.overlays_at("usr"), 0, "kill at step {n}");
        assert_eq!(
            r.read("usr/share/sub/inside").as_deref(),
            Some("sub\n"),
            "kill at step {n}: the sub-mount survived"
        );
        let again = std::fs::read_to_string(sub.join("inside"));
        assert_eq!(again.ok().as_deref(), Some("sub\n"));
    }
    assert!(kills >= 3, "killed at {kills} steps");
    assert_eq!(r.read("usr/share/sub/inside").as_deref(), Some("sub\n"));
}

/// `EXTENSION_RESTART_UNITS=` / `EXTENSION_RELOAD_OR_RESTART_UNITS=` of the merged extensions
/// are in the report of merge and of unmerge (for the reload hook); at level 262 they imply
/// a manager reload, which an explicit root withholds.
#[test]
fn restart_units_are_reported() {
    isolated!();
    use sysext::{Compat, ImageClass, MutableMode};
    for compat in Compat::ALL {
        let r = sysext_tests::TestRoot::new(&format!("units-{compat}"));
        r.sysext_in(
            "var/lib/extensions",
            "foo",
            "ID=_any\nEXTENSION_RESTART_UNITS=\"a.service b.service\"\nEXTENSION_RELOAD_OR_RESTART_UNITS=b.service c.service\n",
            &[("usr/bin/foo", "foo\n")],
        );
        let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
        o.compat = Some(compat);
        let ctx = sysext::Context::new(o).unwrap();
        let rep = ctx.merge().unwrap();
        assert_eq!(rep.units.restart, ["a.service", "b.service"], "{compat}");
        assert_eq!(rep.units.reload_or_restart, ["c.service"], "{compat}");
        assert!(!rep.needs_reload, "an explicit root withholds the reload");
        let un = ctx.unmerge().unwrap();
        assert_eq!(un.units, rep.units, "{compat}");
    }
}

/// Merge, refresh and unmerge leave nothing mounted outside the root (but an ephemeral
/// merge's upper tmpfs below /run/libsysext/ephemeral, while merged), in any mode and with
/// each kernel feature set.
#[test]
fn nothing_is_mounted_outside_the_root() {
    isolated!();
    let r = TestRoot::new("outside");
    r.sysext("a", &[("usr/bin/a", "a\n"), ("opt/a/f", "a\n")]);
    let prefix = format!("{}/", r.path.display());
    let outside = || {
        let mut m: Vec<(u64, String)> = sysext::testing::mountinfo::read_self()
            .unwrap()
            .into_iter()
            .filter(|m| !m.mount_point.starts_with(&prefix))
            // An ephemeral merge's upper layers, on tmpfs mounts of their own while merged.
            .filter(|m| !m.mount_point.starts_with("/run/libsysext/ephemeral/"))
            .map(|m| (m.id, m.mount_point))
            .collect();
        m.sort();
        m
    };
    let before = outside();
    for mode in [
        MutableMode::Disabled,
        MutableMode::Enabled,
        MutableMode::Ephemeral,
    ] {
        let ctx = r.ctx(ImageClass::Sysext, mode);
        ctx.merge().unwrap();
        assert_eq!(outside(), before, "{mode}: merge");
        r.sysext("b", &[("usr/bin/b", "b\n")]);
        ctx.refresh().unwrap();
        assert_eq!(r.read("usr/bin/b").as_deref(), Some("b\n"));
        assert_eq!(outside(), before, "{mode}: refresh");
        ctx.unmerge().unwrap();
        let _ = std::fs::remove_dir_all(r.p("var/lib/extensions/b"));
        assert_eq!(outside(), before, "{mode}: unmerge");
    }
}

/// The probes find each feature on the kernels that brought it, and not before: every
/// kernel of the VM tier (6.1, 6.12, 6.18, the newest) and this machine's. The library
/// never reads the version (it tries each feature), so this is the check that each try
/// tells what it means to. Debian's kernels carry no backport of these; a distribution
/// kernel that does would show here as a feature found before its version.
#[test]
fn the_probes_find_each_feature_from_the_version_that_brought_it() {
    isolated!();
    let (rel, have) = sysext_tests::kernel_release();
    let k = sysext::Kernel::new(sysext::KernelFeatures::all());
    for f in sysext::KernelFeatures::all().iter() {
        let (maj, min) = f.since().split_once('.').unwrap();
        let since = (maj.parse::<u32>().unwrap(), min.parse::<u32>().unwrap());
        if f == sysext::KernelFeatures::EROFS_FILE {
            // Tried per image at mount time (a loop device otherwise): always offered.
            assert!(k.has(f), "{f:?}");
            continue;
        }
        assert_eq!(
            k.has(f),
            have >= since,
            "{f:?} (since {}) on {rel}",
            f.since()
        );
    }
}
