//! Root tests of selective merge/unmerge (`merge NAME`, `unmerge NAME`) in every mode:
//! the other extensions, the mode and the upper layer stay; a reader polling another
//! extension's file never misses.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use sysext::{Context, ImageClass, MutableMode, Options};
use sysext_tests::{isolated, TestRoot};

fn ctx(r: &TestRoot, mode: Option<MutableMode>) -> Context {
    let mut o = Options::new(ImageClass::Sysext);
    o.root = Some(r.path.to_string_lossy().into_owned());
    o.mutable = mode;
    o.hierarchies = Some(vec!["/usr".into(), "/opt".into()]);
    // At 257 /opt is merged only while an extension has content for it; 262 merges it in
    // every mutable mode (and, like systemd 262, fails in `auto` on an empty /opt without a
    // routing dir: a read-only overlay of the meta layer alone).
    o.compat = Some(sysext::Compat::V257);
    Context::new(o).unwrap()
}

#[test]
fn add_and_remove_single_extensions_in_every_mode() {
    isolated!();
    for mode in MutableMode::ALL {
        let r = TestRoot::new(&format!("sel-{mode}"));
        r.sysext("a", &[("usr/share/a/file", "a\n")]);
        r.sysext("b", &[("usr/share/b/file", "b\n"), ("opt/b/f", "ob\n")]);
        r.sysext("c", &[("usr/share/c/file", "c\n")]);
        if mode == MutableMode::Auto
            || mode == MutableMode::Import
            || mode == MutableMode::EphemeralImport
        {
            r.mkdir("var/lib/extensions.mutable/usr");
            r.put("var/lib/extensions.mutable/usr/share/routed", "r\n");
            std::fs::set_permissions(
                r.p("var/lib/extensions.mutable/usr"),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        ctx(&r, Some(mode))
            .merge_names(&["a".into(), "b".into()])
            .unwrap();
        assert_eq!(r.read("usr/share/c/file"), None, "{mode}: c not merged yet");
        let writable = mode.may_be_writable();
        if writable {
            r.try_write("usr/share/written", "w\n")
                .unwrap_or_else(|e| panic!("{mode}: write failed: {e}"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (probes, misses) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let reader = {
            let (stop, probes, misses) = (stop.clone(), probes.clone(), misses.clone());
            let p = r.p("usr/share/a/file");
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    probes.fetch_add(1, Ordering::Relaxed);
                    if std::fs::read(&p).map(|c| c != b"a\n").unwrap_or(true) {
                        misses.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        // No mode given: the recorded one is kept.
        let plain = ctx(&r, None);
        for _ in 0..5 {
            plain.merge_names(&["c".into()]).unwrap();
            assert_eq!(r.read("usr/share/c/file").as_deref(), Some("c\n"), "{mode}");
            plain.unmerge_names(&["b".into()]).unwrap();
            assert_eq!(r.read("usr/share/b/file"), None, "{mode}");
            assert_eq!(
                r.overlays_at("opt"),
                0,
                "{mode}: /opt lost its only extension"
            );
            plain.merge_names(&["b".into()]).unwrap();
            plain.unmerge_names(&["c".into()]).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        assert!(probes.load(Ordering::Relaxed) > 100, "{mode}: reader ran");
        // Gap-free only where the kernel can put a mount beneath another (6.5+).
        let kernel = sysext::Kernel::new(Options::new(ImageClass::Sysext).kernel);
        if kernel.has(sysext::KernelFeatures::MOVE_BENEATH) {
            assert_eq!(
                misses.load(Ordering::Relaxed),
                0,
                "{mode}: the reader missed a's file"
            );
        }
        let st = plain.status().unwrap();
        let usr = st.iter().find(|s| s.hierarchy == "/usr").unwrap();
        assert_eq!(usr.mutable, Some(mode), "mode kept");
        assert_eq!(
            usr.extensions.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        if writable {
            assert_eq!(
                r.read("usr/share/written").as_deref(),
                Some("w\n"),
                "{mode}: the upper layer survives"
            );
        } else {
            assert_eq!(r.try_write("usr/share/x", "x"), Err(libc::EROFS), "{mode}");
        }
        if mode.imports() || mode == MutableMode::Auto {
            assert_eq!(r.read("usr/share/routed").as_deref(), Some("r\n"), "{mode}");
        }
        plain.unmerge().unwrap();
        assert_eq!(r.mounts_below(), 0, "{mode}");
        let persistent = matches!(mode, MutableMode::Auto | MutableMode::Enabled);
        assert_eq!(
            r.read("var/lib/extensions.mutable/usr/share/written")
                .is_some(),
            persistent,
            "{mode}: writes persist exactly in auto/yes"
        );
        if mode.is_ephemeral() {
            let left: Vec<_> = std::fs::read_dir(sysext::testing::state::EPHEMERAL_DIR)
                .map(|d| d.flatten().collect())
                .unwrap_or_default();
            assert!(
                left.iter().all(|e| !e
                    .file_name()
                    .to_string_lossy()
                    .contains(&format!("-{}-", std::process::id()))),
                "{mode}: ephemeral dirs removed: {left:?}"
            );
        }
    }
}
