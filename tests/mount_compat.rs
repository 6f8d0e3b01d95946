//! Root tests of the post-257 features of the compatibility work (issue 18): overlayfs mount
//! options chosen by the caller (systemd 259's `$SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS`) on
//! every kernel path, and nested sub-mounts below a hierarchy (on private and on shared
//! mounts).

use sysext::{Context, ImageClass, KernelFeatures, MutableMode};
use sysext_tests::{isolated, TestRoot};

/// The top mount on `rel`: per-mount and super options.
fn top_options(r: &TestRoot, rel: &str) -> (String, String) {
    let t = r.p(rel).to_string_lossy().into_owned();
    let m = sysext::testing::mountinfo::read_self().unwrap();
    let top = m
        .iter()
        .rfind(|m| m.mount_point == t)
        .unwrap_or_else(|| panic!("nothing mounted on {t}"));
    (top.options.clone(), top.super_options.clone())
}

fn has(list: &str, word: &str) -> bool {
    list.split(',').any(|w| w == word)
}

/// Whether the running kernel's overlayfs refuses an unknown option in `fsconfig` (6.5+).
fn overlay_parses_options() -> bool {
    let fs = rustix::mount::fsopen("overlay", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC)
        .expect("fsopen overlay");
    rustix::mount::fsconfig_set_string(&fs, "frobnicate", "3").is_err()
}

fn overlay_options_on(name: &str, kernel: KernelFeatures) {
    let r = TestRoot::new(name);
    r.sysext("foo", &[("usr/share/foo/file", "foo\n")]);
    for (mode, given, per_mount_has, per_mount_lacks, super_has) in [
        // Read-only merges get no option by default; given ones are added.
        (
            MutableMode::Disabled,
            Some("noatime,xino=on"),
            "noatime",
            "",
            "xino=on",
        ),
        // Writable merges have defaults ...
        (
            MutableMode::Ephemeral,
            None,
            "noatime",
            "",
            "redirect_dir=on",
        ),
        // ... which a list given replaces, even an empty one.
        (MutableMode::Ephemeral, Some(""), "", "noatime", ""),
        (
            MutableMode::Enabled,
            Some("xino=on,nosuid"),
            "nosuid",
            "noatime",
            "xino=on",
        ),
    ] {
        let mut o = r.options(ImageClass::Sysext, mode);
        o.kernel = kernel;
        o.overlay_options = given.map(str::to_string);
        let ctx = Context::new(o).unwrap();
        ctx.merge().unwrap();
        let (pm, sup) = top_options(&r, "usr");
        let what = format!("{mode} {given:?}: per-mount {pm}, super {sup}");
        assert!(
            per_mount_has.is_empty() || has(&pm, per_mount_has),
            "{what}"
        );
        assert!(
            per_mount_lacks.is_empty() || !has(&pm, per_mount_lacks),
            "{what}"
        );
        assert!(super_has.is_empty() || has(&sup, super_has), "{what}");
        assert_eq!(
            r.read("usr/share/foo/file").as_deref(),
            Some("foo\n"),
            "{what}"
        );
        ctx.unmerge().unwrap();
        assert_eq!(r.mounts_below(), 0, "{what}");
    }
    // An option the kernel refuses: the error names it and carries the kernel's words;
    // nothing is left mounted.
    let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
    o.kernel = kernel;
    o.overlay_options = Some("noatime,frobnicate=3".into());
    let e = Context::new(o).unwrap().merge().unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.errno(), libc::EINVAL, "{msg}");
    assert!(msg.contains("'frobnicate=3'"), "{msg}");
    // The kernel's words where it has some: overlayfs parses its options in the fs context
    // from Linux 6.5 on; before, it refuses them only when mounting, in the kernel log alone.
    if overlay_parses_options() {
        assert!(
            msg.contains("overlay: Unknown parameter 'frobnicate'"),
            "{msg}"
        );
    }
    assert_eq!(r.mounts_below(), 0);
    // A changed option list is a change: refresh rebuilds (at 262 an unchanged one is skipped).
    let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
    o.kernel = kernel;
    let ctx = Context::new(o.clone()).unwrap();
    ctx.merge().unwrap();
    o.overlay_options = Some("xino=on".into());
    Context::new(o).unwrap().refresh().unwrap();
    assert!(has(&top_options(&r, "usr").1, "xino=on"));
    ctx.unmerge().unwrap();
    assert_eq!(r.mounts_below(), 0);
}

#[test]
fn overlay_options_reach_the_overlay() {
    isolated!();
    overlay_options_on("ovlopts", KernelFeatures::all());
}

/// The same on the oldest path: staged layers, one `lowerdir=` option of `mount(2)` (Linux
/// before 6.8, which keeps no fs context log: the refused option is found by trying each).
#[test]
fn overlay_options_reach_the_overlay_by_legacy_mount() {
    isolated!();
    overlay_options_on("ovlopts-legacy", KernelFeatures::empty());
}

fn mount_tmpfs(path: &std::path::Path) {
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs"])
        .arg(path)
        .status()
        .unwrap()
        .success());
}

/// A tmpfs inside a tmpfs below `/opt` (and one more below `/usr`): both stay visible over
/// the merge, through refreshes in every kind of mode, and after the unmerge, each once.
fn nested_submounts_in(name: &str, kernel: KernelFeatures) {
    let r = TestRoot::new(name);
    r.sysext(
        "foo",
        &[("usr/share/foo/file", "foo\n"), ("opt/foo/file", "foo\n")],
    );
    r.mkdir("opt/outer");
    mount_tmpfs(&r.p("opt/outer"));
    std::fs::write(r.p("opt/outer/o"), "outer\n").unwrap();
    std::fs::create_dir(r.p("opt/outer/inner")).unwrap();
    mount_tmpfs(&r.p("opt/outer/inner"));
    std::fs::write(r.p("opt/outer/inner/i"), "inner\n").unwrap();
    std::fs::create_dir(r.p("opt/outer/inner/deep")).unwrap();
    mount_tmpfs(&r.p("opt/outer/inner/deep"));
    std::fs::write(r.p("opt/outer/inner/deep/d"), "deep\n").unwrap();
    r.mkdir("usr/share/s1");
    mount_tmpfs(&r.p("usr/share/s1"));
    std::fs::create_dir(r.p("usr/share/s1/s2")).unwrap();
    mount_tmpfs(&r.p("usr/share/s1/s2"));
    std::fs::write(r.p("usr/share/s1/s2/x"), "x\n").unwrap();
    let count = |rel: &str| {
        let t = r.p(rel).to_string_lossy().into_owned();
        sysext::testing::mountinfo::read_self()
            .unwrap()
            .iter()
            .filter(|m| m.mount_point == t)
            .count()
    };
    let check = |what: &str| {
        for (rel, content) in [
            ("opt/outer/o", "outer\n"),
            ("opt/outer/inner/i", "inner\n"),
            ("opt/outer/inner/deep/d", "deep\n"),
            ("usr/share/s1/s2/x", "x\n"),
        ] {
            assert_eq!(r.read(rel).as_deref(), Some(content), "{what}: {rel}");
        }
        for rel in [
            "opt/outer",
            "opt/outer/inner",
            "opt/outer/inner/deep",
            "usr/share/s1",
            "usr/share/s1/s2",
        ] {
            assert_eq!(count(rel), 1, "{what}: mounts on {rel}");
        }
    };
    check("before");
    for mode in [
        MutableMode::Disabled,
        MutableMode::Enabled,
        MutableMode::Ephemeral,
    ] {
        let mut o = r.options(ImageClass::Sysext, mode);
        o.kernel = kernel;
        o.always_refresh = true;
        let ctx = Context::new(o).unwrap();
        ctx.merge().unwrap();
        assert_eq!(r.read("opt/foo/file").as_deref(), Some("foo\n"));
        check(&format!("{mode}: merged"));
        ctx.refresh().unwrap();
        check(&format!("{mode}: refreshed"));
        // Nested mounts made on top of the merge (on a directory of the extension) are
        // carried into the next merge as well.
        let late = r.p("opt/foo");
        mount_tmpfs(&late);
        std::fs::create_dir(late.join("in")).unwrap();
        mount_tmpfs(&late.join("in"));
        std::fs::write(late.join("in/l"), "late\n").unwrap();
        ctx.refresh().unwrap();
        check(&format!("{mode}: refreshed with late mounts"));
        assert_eq!(r.read("opt/foo/in/l").as_deref(), Some("late\n"), "{mode}");
        assert_eq!(count("opt/foo"), 1, "{mode}");
        assert_eq!(count("opt/foo/in"), 1, "{mode}");
        ctx.unmerge().unwrap();
        check(&format!("{mode}: unmerged"));
        assert_eq!(r.overlays_at("opt"), 0);
        // Nothing is left stashed: the late mounts' mount point went with the merge, and the
        // other hierarchy's copies did not keep the rescue directory (or a stale one) alive.
        let root = sysext::testing::root::Root::open(Some(r.path.to_str().unwrap())).unwrap();
        let rescue = sysext::testing::lock::path_for(&root, ImageClass::Sysext)
            .unwrap()
            .with_extension("rescue");
        assert!(!rescue.exists(), "{mode}: {} left", rescue.display());
    }
}

#[test]
fn nested_submounts_stay_visible_over_merges() {
    isolated!();
    nested_submounts_in("nested", KernelFeatures::all());
}

/// The same through the staging namespace of kernels before 6.15, and without listmount.
#[test]
fn nested_submounts_staged_stay_visible() {
    isolated!();
    nested_submounts_in("nested-staged", KernelFeatures::empty());
}

/// Make every mount of the test's namespace shared, as `/` is on a systemd host and in the
/// oracle's harness (`mount --make-rshared /`), where the CLI met it: a copy of a shared mount
/// is a peer of the original, and unmounting the original took the copy's nested mounts along
/// (umount propagation) until the copies were made private. Only inside the test's own
/// namespace.
fn make_rshared() {
    assert!(std::process::Command::new("mount")
        .args(["--make-rshared", "/"])
        .status()
        .unwrap()
        .success());
}

/// Nested sub-mounts on a shared hierarchy (the CLI's case on a systemd host).
#[test]
fn nested_submounts_shared_stay_visible() {
    isolated!();
    make_rshared();
    nested_submounts_in("nested-shared", KernelFeatures::all());
}

/// The same through the staging namespace of kernels before 6.15, and without listmount.
#[test]
fn nested_submounts_shared_staged_stay_visible() {
    isolated!();
    make_rshared();
    nested_submounts_in("nested-shared-staged", KernelFeatures::empty());
}

/// Image-policy file system flags (systemd 259/260): an erofs and a squashfs image under
/// policies that name file systems; at level 257 such a policy does not parse.
#[test]
fn file_system_flags_admit_only_named_image_types_at_level_262() {
    isolated!();
    let r = TestRoot::new("polfs");
    let ext = r.p("var/lib/extensions");
    for (name, fs) in [("ero", "erofs"), ("squ", "squashfs")] {
        let src = r.p(&format!("src-{name}"));
        std::fs::create_dir_all(src.join("usr/lib/extension-release.d")).unwrap();
        std::fs::create_dir_all(src.join("usr/bin")).unwrap();
        std::fs::write(
            src.join(format!(
                "usr/lib/extension-release.d/extension-release.{name}"
            )),
            "ID=_any\n",
        )
        .unwrap();
        std::fs::write(src.join(format!("usr/bin/{name}")), format!("{name}\n")).unwrap();
        let img = ext.join(format!("{name}.raw"));
        let ok = match fs {
            "erofs" => std::process::Command::new("mkfs.erofs")
                .arg("--quiet")
                .arg(&img)
                .arg(&src)
                .status(),
            _ => std::process::Command::new("mksquashfs")
                .arg(&src)
                .arg(&img)
                .args(["-quiet", "-noappend", "-all-root"])
                .status(),
        }
        .unwrap()
        .success();
        assert!(ok, "making {fs} image");
        std::fs::remove_dir_all(&src).unwrap();
    }
    let merge = |policy: &str, compat: sysext::Compat| {
        let mut o = r.options(ImageClass::Sysext, MutableMode::Disabled);
        o.image_policy = Some(policy.into());
        o.compat = Some(compat);
        Context::new(o).and_then(|c| {
            let rep = c.merge()?;
            c.unmerge()?;
            Ok(rep.merged)
        })
    };
    let v262 = sysext::Compat::V262;
    assert_eq!(merge("root=erofs+squashfs", v262).unwrap(), ["ero", "squ"]);
    assert_eq!(
        merge("root=unprotected+erofs+squashfs+ext4", v262).unwrap(),
        ["ero", "squ"]
    );
    // Naming only one fails the whole merge on the other image (as every policy violation).
    for (policy, bad, fs) in [
        ("root=erofs", "squ", "squashfs"),
        ("root=squashfs:=absent", "ero", "erofs"),
    ] {
        let e = merge(policy, v262).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.errno(), libc::ERFKILL, "{msg}");
        assert!(msg.contains(bad), "{policy}: {msg}");
        assert!(
            msg.contains(&format!("partition 'root' has a {fs} file system")),
            "{policy}: {msg}"
        );
        assert_eq!(r.mounts_below(), 0);
    }
    // Level 257 does not know the flags.
    let e = merge("root=erofs+squashfs", sysext::Compat::V257).unwrap_err();
    assert!(
        e.to_string().starts_with("Failed to parse image policy"),
        "{e}"
    );
    assert_eq!(
        merge("root=unprotected", sysext::Compat::V257).unwrap(),
        ["ero", "squ"]
    );
}
