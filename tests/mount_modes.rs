//! Root tests: every mutable mode, the symlink trick, masking, precedence and confext.
//! Each test runs in its own private mount namespace (see `support::isolated`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use sysext::{ImageClass, MutableMode};
use sysext_tests::{exists, isolated, TestRoot};

const EROFS: i32 = libc::EROFS;

fn std_root(tag: &str) -> TestRoot {
    let r = TestRoot::new(tag);
    r.sysext(
        "foo",
        &[("usr/bin/foo", "from foo\n"), ("opt/foo/tool", "tool\n")],
    );
    r
}

fn routing(r: &TestRoot, content: &[(&str, &str)]) {
    r.mkdir("var/lib/extensions.mutable/usr");
    std::fs::set_permissions(
        r.p("var/lib/extensions.mutable/usr"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for (f, c) in content {
        r.put(&format!("var/lib/extensions.mutable/usr/{f}"), c);
    }
}

#[test]
fn mode_no_is_read_only() {
    isolated!();
    let r = std_root("no");
    routing(&r, &[("bin/routed", "r\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    let rep = ctx.merge().unwrap();
    assert_eq!(rep.merged, vec!["foo"]);
    assert_eq!(r.read("usr/bin/foo").as_deref(), Some("from foo\n"));
    assert_eq!(r.read("usr/bin/base").as_deref(), Some("base\n"));
    assert_eq!(
        r.read("usr/bin/routed"),
        None,
        "routing dir unused in mode no"
    );
    assert_eq!(r.read("opt/foo/tool").as_deref(), Some("tool\n"));
    assert_eq!(r.try_write("usr/bin/new", "x"), Err(EROFS));
    assert_eq!(
        r.read("usr/.systemd-sysext/extensions").as_deref(),
        Some("foo\n")
    );
    let dev = r.read("usr/.systemd-sysext/dev").unwrap();
    let st = std::fs::metadata(r.p("usr")).unwrap().dev();
    assert_eq!(dev, format!("{}:{}\n", libc::major(st), libc::minor(st)));
    assert!(!exists(&r.p("usr/.systemd-sysext/work_dir")));
    assert_eq!(r.overlays_at("usr"), 1);
    assert_eq!(r.overlays_at("opt"), 1);
    ctx.unmerge().unwrap();
    assert_eq!(r.read("usr/bin/foo"), None);
    assert!(!exists(&r.p("usr/.systemd-sysext")));
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn mode_auto_without_routing_dir_is_read_only() {
    isolated!();
    let r = std_root("auto-none");
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Auto);
    ctx.merge().unwrap();
    assert_eq!(r.try_write("usr/bin/new", "x"), Err(EROFS));
    assert!(!exists(&r.p("var/lib/extensions.mutable")));
    ctx.unmerge().unwrap();
}

#[test]
fn mode_auto_writes_into_routing_dir() {
    isolated!();
    let r = std_root("auto");
    routing(&r, &[("bin/routed", "r\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Auto);
    ctx.merge().unwrap();
    assert_eq!(r.read("usr/bin/routed").as_deref(), Some("r\n"));
    r.try_write("usr/bin/new", "new\n").unwrap();
    assert_eq!(
        r.read("var/lib/extensions.mutable/usr/bin/new").as_deref(),
        Some("new\n")
    );
    assert!(exists(
        &r.p("var/lib/extensions.mutable/.systemd-usr-workdir")
    ));
    assert_eq!(
        r.read("usr/.systemd-sysext/work_dir").as_deref(),
        Some("var/lib/extensions.mutable/.systemd-usr-workdir\n")
    );
    // The meta dir stays read-only in writable modes.
    assert_eq!(r.try_write("usr/.systemd-sysext/x", "x"), Err(EROFS));
    // /opt has no routing dir: read-only.
    assert_eq!(r.try_write("opt/new", "x"), Err(EROFS));
    ctx.unmerge().unwrap();
    assert_eq!(
        r.read("var/lib/extensions.mutable/usr/bin/new").as_deref(),
        Some("new\n")
    );
    assert!(!exists(
        &r.p("var/lib/extensions.mutable/.systemd-usr-workdir")
    ));
    assert_eq!(r.read("usr/bin/new"), None);
}

#[test]
fn mode_yes_creates_routing_dirs() {
    isolated!();
    // 262 makes the parents 0755 (under any umask); 257 makes them 0700.
    let r = std_root("yes262");
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Enabled);
    ctx.merge().unwrap();
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let md = |p: &str| std::fs::metadata(r.p(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(md("var/lib/extensions.mutable"), 0o755);
    assert_eq!(md("var/lib/extensions.mutable/.systemd-usr-workdir"), 0o700);
    ctx.unmerge().unwrap();
    let r = std_root("yes");
    let mut o = r.options(ImageClass::Sysext, MutableMode::Enabled);
    o.compat = Some(sysext::Compat::V257);
    let ctx = sysext::Context::new(o).unwrap();
    ctx.merge().unwrap();
    let md = |p: &str| std::fs::metadata(r.p(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(md("var/lib/extensions.mutable"), 0o700);
    assert_eq!(md("var/lib/extensions.mutable/usr"), 0o755);
    assert_eq!(md("var/lib/extensions.mutable/opt"), 0o755);
    assert_eq!(md("var/lib/extensions.mutable/.systemd-usr-workdir"), 0o700);
    r.try_write("usr/bin/new", "u\n").unwrap();
    r.try_write("opt/new", "o\n").unwrap();
    std::fs::remove_file(r.p("usr/bin/base")).unwrap();
    ctx.unmerge().unwrap();
    assert_eq!(
        r.read("var/lib/extensions.mutable/usr/bin/new").as_deref(),
        Some("u\n")
    );
    assert_eq!(
        r.read("var/lib/extensions.mutable/opt/new").as_deref(),
        Some("o\n")
    );
    // The deletion left a whiteout (char device 0:0) in the routing dir.
    let wh = std::fs::symlink_metadata(r.p("var/lib/extensions.mutable/usr/bin/base")).unwrap();
    assert_eq!(wh.rdev(), 0);
    assert_eq!(
        r.read("usr/bin/base").as_deref(),
        Some("base\n"),
        "the base is untouched"
    );
    // import honours the whiteout and shows the writes, read-only.
    let imp = r.ctx(ImageClass::Sysext, MutableMode::Import);
    imp.merge().unwrap();
    assert_eq!(r.read("usr/bin/new").as_deref(), Some("u\n"));
    assert_eq!(r.read("usr/bin/base"), None);
    assert_eq!(r.try_write("usr/bin/x", "x"), Err(EROFS));
    imp.unmerge().unwrap();
}

#[test]
fn mode_import_is_read_only_layer_above_extensions() {
    isolated!();
    let r = std_root("import");
    routing(&r, &[("bin/foo", "imported\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Import);
    ctx.merge().unwrap();
    assert_eq!(
        r.read("usr/bin/foo").as_deref(),
        Some("imported\n"),
        "import beats extensions"
    );
    assert_eq!(r.try_write("usr/bin/new", "x"), Err(EROFS));
    assert!(!exists(&r.p("usr/.systemd-sysext/work_dir")));
    ctx.unmerge().unwrap();
}

#[test]
fn mode_ephemeral_discards_writes() {
    isolated!();
    let r = std_root("ephemeral");
    routing(&r, &[("bin/routed", "r\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Ephemeral);
    ctx.merge().unwrap();
    assert_eq!(r.read("usr/bin/routed"), None, "routing dir ignored");
    r.try_write("usr/bin/new", "e\n").unwrap();
    assert_eq!(r.read("usr/bin/new").as_deref(), Some("e\n"));
    assert!(!exists(&r.p("usr/.systemd-sysext/work_dir")));
    ctx.unmerge().unwrap();
    assert_eq!(r.read("usr/bin/new"), None);
    assert!(!exists(&r.p("var/lib/extensions.mutable/usr/bin/new")));
}

#[test]
fn mode_ephemeral_import_shows_routing_dir_and_discards_writes() {
    isolated!();
    let r = std_root("ephimport");
    routing(&r, &[("bin/routed", "r\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::EphemeralImport);
    ctx.merge().unwrap();
    assert_eq!(r.read("usr/bin/routed").as_deref(), Some("r\n"));
    r.try_write("usr/bin/new", "e\n").unwrap();
    ctx.unmerge().unwrap();
    assert_eq!(r.read("usr/bin/new"), None);
    assert!(!exists(&r.p("var/lib/extensions.mutable/usr/bin/new")));
}

#[test]
fn symlink_trick_writes_into_the_base() {
    isolated!();
    let r = std_root("trick");
    r.put("usr/bin/foo", "host wins\n");
    r.mkdir("var/lib/extensions.mutable");
    std::os::unix::fs::symlink("../../../usr", r.p("var/lib/extensions.mutable/usr")).unwrap();
    for mode in [MutableMode::Auto, MutableMode::Enabled] {
        let ctx = r.ctx(ImageClass::Sysext, mode);
        ctx.merge().unwrap();
        assert_eq!(
            r.read("usr/bin/foo").as_deref(),
            Some("host wins\n"),
            "the base is the upper layer"
        );
        assert_eq!(r.read("opt/foo/tool").as_deref(), Some("tool\n"));
        r.try_write(&format!("usr/bin/written-{mode}"), "w\n")
            .unwrap();
        assert_eq!(
            r.read("usr/.systemd-sysext/work_dir").as_deref(),
            Some(".systemd-usr-workdir\n")
        );
        ctx.unmerge().unwrap();
        assert_eq!(
            r.read(&format!("usr/bin/written-{mode}")).as_deref(),
            Some("w\n"),
            "write landed in the base"
        );
        assert!(!exists(&r.p(".systemd-usr-workdir")));
    }
    for mode in [MutableMode::Import, MutableMode::EphemeralImport] {
        let e = r.ctx(ImageClass::Sysext, mode).merge().unwrap_err();
        assert_eq!(e.errno(), libc::ELOOP, "{e}");
        assert_eq!(r.mounts_below(), 0, "nothing left after a failed merge");
    }
}

#[test]
fn routing_dir_with_wrong_mode_fails_and_leaves_nothing() {
    isolated!();
    let r = std_root("badmode");
    r.mkdir("var/lib/extensions.mutable/opt");
    std::fs::set_permissions(
        r.p("var/lib/extensions.mutable/opt"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    for mode in [MutableMode::Auto, MutableMode::Enabled] {
        let e = r.ctx(ImageClass::Sysext, mode).merge().unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(
            e.to_string()
                .contains("has mode 0700, ought to have mode 0755"),
            "{e}"
        );
        assert_eq!(r.mounts_below(), 0, "the /usr overlay must not stay behind");
        assert!(
            !exists(&r.p("var/lib/extensions.mutable/usr")),
            "no stray routing dir"
        );
    }
}

#[test]
fn already_merged_and_double_unmerge() {
    isolated!();
    let r = std_root("double");
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    ctx.merge().unwrap();
    let e = ctx.merge().unwrap_err();
    assert_eq!(e.to_string(), "Hierarchy '/usr' is already merged.");
    assert_eq!(e.errno(), libc::EBUSY);
    assert_eq!(r.overlays_at("usr"), 1);
    ctx.unmerge().unwrap();
    ctx.unmerge().unwrap();
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn masking_and_precedence() {
    isolated!();
    let r = TestRoot::new("mask");
    r.sysext_in(
        "etc/extensions",
        "dup",
        "ID=_any\n",
        &[("usr/bin/dup", "etc\n")],
    );
    r.sysext_in(
        "run/extensions",
        "dup",
        "ID=_any\n",
        &[("usr/bin/dup", "run\n")],
    );
    r.sysext_in(
        "var/lib/extensions",
        "dup",
        "ID=_any\n",
        &[("usr/bin/dup", "var\n")],
    );
    r.sysext("masked", &[("usr/bin/masked", "m\n")]);
    r.mkdir("etc/extensions/masked");
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    let list = ctx.list().unwrap();
    let names: Vec<_> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["dup", "masked"]);
    assert!(list[0].path.ends_with("/etc/extensions/dup"));
    assert_eq!(list[0].shadows.len(), 2);
    let rep = ctx.merge().unwrap();
    assert_eq!(rep.merged, vec!["dup"]);
    assert_eq!(rep.skipped.len(), 1);
    assert_eq!(r.read("usr/bin/dup").as_deref(), Some("etc\n"));
    assert_eq!(r.read("usr/bin/masked"), None);
    ctx.unmerge().unwrap();
}

#[test]
fn confext_mount_flags() {
    isolated!();
    let r = TestRoot::new("confext");
    r.put("etc/os-release", "ID=debian\nVERSION_ID=12\n");
    r.confext("c", &[("etc/app.conf", "app\n")]);
    let ctx = r.ctx(ImageClass::Confext, MutableMode::Disabled);
    ctx.merge().unwrap();
    assert_eq!(r.read("etc/app.conf").as_deref(), Some("app\n"));
    assert_eq!(
        r.read("etc/.systemd-confext/confexts").as_deref(),
        Some("c\n")
    );
    let t = r.p("etc").to_string_lossy().into_owned();
    let mi = sysext::testing::mountinfo::read_self().unwrap();
    let m = mi
        .iter()
        .find(|m| m.mount_point == t && m.fstype == "overlay")
        .unwrap();
    for f in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(m.has_option(f), "{f} in {}", m.options);
    }
    assert_eq!(m.source, "confext");
    // A sysext is not affected.
    assert!(r
        .ctx(ImageClass::Sysext, MutableMode::Disabled)
        .status()
        .unwrap()
        .iter()
        .all(|s| s.extensions.is_none()));
    ctx.unmerge().unwrap();
    let mut o = sysext::Options::new(ImageClass::Confext);
    o.root = Some(r.path.to_string_lossy().into_owned());
    o.noexec = Some(false);
    o.hierarchies = Some(vec!["/etc".into()]);
    let ctx = sysext::Context::new(o).unwrap();
    ctx.merge().unwrap();
    let mi = sysext::testing::mountinfo::read_self().unwrap();
    let m = mi
        .iter()
        .find(|m| m.mount_point == t && m.fstype == "overlay")
        .unwrap();
    assert!(!m.has_option("noexec"), "{}", m.options);
    ctx.unmerge().unwrap();
}

#[test]
fn incompatible_extension_is_skipped_with_reason() {
    isolated!();
    let r = TestRoot::new("incompat");
    r.sysext_in(
        "var/lib/extensions",
        "old",
        "ID=debian\nVERSION_ID=11\n",
        &[("usr/bin/old", "o\n")],
    );
    r.sysext_in(
        "var/lib/extensions",
        "ok",
        "ID=debian\nVERSION_ID=12\n",
        &[("usr/bin/ok", "k\n")],
    );
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
    let rep = ctx.merge().unwrap();
    assert_eq!(rep.merged, vec!["ok"]);
    assert_eq!(rep.skipped.len(), 1);
    assert_eq!(rep.skipped[0].name, "old");
    assert!(
        rep.skipped[0].reason.contains("VERSION_ID=11"),
        "{}",
        rep.skipped[0].reason
    );
    assert!(
        rep.skipped[0].reason.contains("VERSION_ID=12"),
        "{}",
        rep.skipped[0].reason
    );
    ctx.unmerge().unwrap();
}

#[test]
fn merged_root_and_meta_dir_modes_do_not_depend_on_the_umask() {
    isolated!();
    // The merged root takes the host hierarchy's mode, the meta dir 0755, whatever the
    // umask of the merging process (the test runs alone in its own process).
    for (umask, host_mode) in [
        (0o022, 0o755),
        (0o077, 0o755),
        (0o022, 0o751),
        (0o027, 0o775),
    ] {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
        let r = std_root(&format!("umask{umask:o}-{host_mode:o}"));
        std::fs::set_permissions(r.p("usr"), std::fs::Permissions::from_mode(host_mode)).unwrap();
        let ctx = r.ctx(ImageClass::Sysext, MutableMode::Disabled);
        ctx.merge().unwrap();
        let mode = |p: &str| std::fs::metadata(r.p(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("usr"), host_mode, "umask {umask:o}");
        assert_eq!(mode("usr/.systemd-sysext"), 0o755, "umask {umask:o}");
        assert_eq!(
            r.read("usr/.systemd-sysext/extensions").as_deref(),
            Some("foo\n")
        );
        ctx.unmerge().unwrap();
        assert_eq!(mode("usr"), host_mode);
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
}

#[test]
fn unmerge_succeeds_with_a_warning_when_the_work_dir_is_stuck() {
    isolated!();
    let r = TestRoot::new("stuckwork");
    r.sysext("foo", &[("usr/bin/foo", "foo\n")]);
    let ctx = r.ctx(ImageClass::Sysext, MutableMode::Enabled);
    ctx.merge().unwrap();
    let work = r.p("var/lib/extensions.mutable/.systemd-usr-workdir");
    assert!(exists(&work));
    // A mount inside the work dir keeps it from being removed.
    let stuck = work.join("stuck");
    std::fs::create_dir(&stuck).unwrap();
    rustix::mount::mount(
        "none",
        &stuck,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    let rep = ctx.unmerge().expect("unmounted: the unmerge succeeded");
    // /usr and /opt: at the default level (262) `yes` merges every hierarchy.
    assert_eq!(rep.unmerged.len(), 2, "{rep:?}");
    assert_eq!(r.overlays_at("usr"), 0);
    assert!(exists(&work), "the stuck work dir is still there");
    rustix::mount::unmount(&stuck, rustix::mount::UnmountFlags::empty()).unwrap();
    // The next merge reuses it, the next unmerge removes it.
    ctx.merge().unwrap();
    assert_eq!(r.read("usr/bin/foo").as_deref(), Some("foo\n"));
    ctx.unmerge().unwrap();
    assert!(!exists(&work), "removed by the next unmerge");
}

/// A `work_dir` meta file planted in the routing dir shadows the meta layer's (the upper
/// layer wins). Whatever it names, unmerge never deletes anything but a work dir of that
/// hierarchy; level 262 refuses the unmerge where systemd 262 does (absolute or not
/// normalized), level 257 unmerges (as 257) but deletes nothing (257 deletes it).
#[test]
fn planted_work_dir_is_never_deleted() {
    isolated!();
    use sysext::Compat;
    for compat in Compat::ALL {
        for (planted, refused_at_262) in [
            ("/srv/victim", true),
            ("../../../srv/victim", true),
            (
                "var/lib/../lib/extensions.mutable/.systemd-usr-workdir",
                true,
            ),
            ("srv/victim", false),
            ("var/lib/extensions.mutable/.systemd-opt-workdir", false),
        ] {
            let r = std_root(&format!("planted-{compat}"));
            routing(&r, &[(".systemd-sysext/work_dir", &format!("{planted}\n"))]);
            r.put("srv/victim/sub/file", "precious\n");
            let mut o = r.options(ImageClass::Sysext, MutableMode::Enabled);
            o.compat = Some(compat);
            let ctx = sysext::Context::new(o).unwrap();
            ctx.merge().unwrap();
            assert_eq!(
                r.read("usr/.systemd-sysext/work_dir").as_deref(),
                Some(format!("{planted}\n").as_str())
            );
            let res = ctx.unmerge();
            let refused = compat == Compat::V262 && refused_at_262;
            assert_eq!(res.is_err(), refused, "{compat} {planted}: {res:?}");
            if refused {
                let msg = res.unwrap_err().to_string();
                assert_eq!(msg, format!("Invalid work directory path '{planted}'."));
                assert_eq!(r.overlays_at("usr"), 1, "/usr stays merged");
                assert_eq!(r.overlays_at("opt"), 0, "/opt is unmerged");
                // Level 257 takes it off.
                let mut o = r.options(ImageClass::Sysext, MutableMode::Enabled);
                o.compat = Some(Compat::V257);
                sysext::Context::new(o).unwrap().unmerge().unwrap();
            }
            assert_eq!(r.overlays_at("usr"), 0);
            assert_eq!(
                r.read("srv/victim/sub/file").as_deref(),
                Some("precious\n"),
                "{compat} {planted}"
            );
            assert!(exists(
                &r.p("var/lib/extensions.mutable/usr/.systemd-sysext/work_dir")
            ));
        }
    }
}
