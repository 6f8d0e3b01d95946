//! Root tests of the post-257 features of the compatibility work (issue 18): overlayfs mount
//! options chosen by the caller (systemd 259's `$SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS`) on
//! every kernel path, and nested sub-mounts below a hierarchy.

use sysext::{Context, ImageClass, KernelFeatures, MutableMode};
use sysext_tests::{isolated, TestRoot};

/// The top mount on `rel`: per-mount and super options.
fn top_options(r: &TestRoot, rel: &str) -> (String, String) {
    let t = r.p(rel).to_string_lossy().into_owned();
    let m = sysext::mountinfo::read_self().unwrap();
    let top = m
        .iter()
        .filter(|m| m.mount_point == t)
        .last()
        .unwrap_or_else(|| panic!("nothing mounted on {t}"));
    (top.options.clone(), top.super_options.clone())
}

fn has(list: &str, word: &str) -> bool {
    list.split(',').any(|w| w == word)
}

fn overlay_options_on(name: &str, kernel: KernelFeatures) {
    let r = TestRoot::new(name);
    r.sysext("foo", &[("usr/share/foo/file", "foo\n")]);
    for (mode, given, per_mount_has, per_mount_lacks, super_has) in [
        // Read-only merges get no option by default; given ones are added.
        (MutableMode::Disabled, Some("noatime,xino=on"), "noatime", "", "xino=on"),
        // Writable merges have defaults ...
        (MutableMode::Ephemeral, None, "noatime", "", "redirect_dir=on"),
        // ... which a list given replaces, even an empty one.
        (MutableMode::Ephemeral, Some(""), "", "noatime", ""),
        (MutableMode::Enabled, Some("xino=on,nosuid"), "nosuid", "noatime", "xino=on"),
    ] {
        let mut o = r.options(ImageClass::Sysext, mode);
        o.kernel = kernel;
        o.overlay_options = given.map(str::to_string);
        let ctx = Context::new(o).unwrap();
        ctx.merge().unwrap();
        let (pm, sup) = top_options(&r, "usr");
        let what = format!("{mode} {given:?}: per-mount {pm}, super {sup}");
        assert!(per_mount_has.is_empty() || has(&pm, per_mount_has), "{what}");
        assert!(per_mount_lacks.is_empty() || !has(&pm, per_mount_lacks), "{what}");
        assert!(super_has.is_empty() || has(&sup, super_has), "{what}");
        assert_eq!(r.read("usr/share/foo/file").as_deref(), Some("foo\n"), "{what}");
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
    assert!(msg.contains("overlay: Unknown parameter 'frobnicate'"), "{msg}");
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
fn overlay_options() {
    if !isolated("overlay_options") {
        return;
    }
    overlay_options_on("ovlopts", KernelFeatures::all());
}

/// The same on the oldest path: staged layers, one `lowerdir=` option of `mount(2)` (Linux
/// before 6.8, which keeps no fs context log: the refused option is found by trying each).
#[test]
fn overlay_options_legacy_mount() {
    if !isolated("overlay_options_legacy_mount") {
        return;
    }
    overlay_options_on("ovlopts-legacy", KernelFeatures::empty());
}
