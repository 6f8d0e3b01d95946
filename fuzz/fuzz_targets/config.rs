//! The `sysext.conf` / `confext.conf` parser (`sysext::testing::config::parse_into`), on one file.
//! Invariants: no panic; every warning names the file and a line that exists; an
//! `ImagePolicy=` that is kept parses as a policy; applying the same file twice is the same
//! as once (later assignments win); the settings found, written as a canonical file, parse
//! to the same settings without warnings; the file read as the other class, its section
//! headers swapped, gives the same settings and as many warnings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysext::testing::config::{parse_into, ClassConfig};
use sysext::image::ImagePolicy;
use sysext::ImageClass;

const SHOWN: &str = "/etc/systemd/sysext.conf.d/fuzz.conf";

fn parse(class: ImageClass, text: &str) -> ClassConfig {
    let mut c = ClassConfig::default();
    parse_into(&mut c, class, SHOWN, text);
    c
}

/// The text with its `[SysExt]` and `[ConfExt]` section headers swapped, nothing else.
fn swap_sections(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(match line.trim() {
            "[SysExt]" => "[ConfExt]",
            "[ConfExt]" => "[SysExt]",
            _ => line,
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    let c = parse(ImageClass::Sysext, text);

    for w in &c.warnings {
        let rest = w
            .strip_prefix(SHOWN)
            .and_then(|r| r.strip_prefix(':'))
            .unwrap_or_else(|| panic!("warning without the file name: {w:?}"));
        let n: usize = rest
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("warning without a line number: {w:?}"));
        assert!((1..=lines).contains(&n), "line {n} of {lines}: {w:?}");
    }
    assert!(c.warnings.len() <= lines);
    if let Some(p) = &c.image_policy {
        assert!(
            ImagePolicy::parse(p).is_ok(),
            "kept policy {p:?} does not parse"
        );
        assert!(!p.is_empty() && p.trim() == p, "{p:?}");
    }

    // Idempotent: the settings after the file twice are those after it once.
    let mut twice = c.clone();
    parse_into(&mut twice, ImageClass::Sysext, SHOWN, text);
    assert_eq!(
        (twice.mutable, &twice.image_policy),
        (c.mutable, &c.image_policy)
    );
    assert_eq!(twice.warnings.len(), 2 * c.warnings.len());

    // Canonical form.
    let mut canon = String::from("[SysExt]\n");
    if let Some(m) = c.mutable {
        canon.push_str(&format!("Mutable={m}\n"));
    }
    if let Some(p) = &c.image_policy {
        canon.push_str(&format!("ImagePolicy={p}\n"));
    }
    let d = parse(ImageClass::Sysext, &canon);
    assert_eq!(
        (d.mutable, &d.image_policy, d.warnings.len()),
        (c.mutable, &c.image_policy, 0),
        "{canon:?}"
    );

    // The same file as a confext configuration.
    let e = parse(ImageClass::Confext, &swap_sections(text));
    assert_eq!(
        (e.mutable, &e.image_policy, e.warnings.len()),
        (c.mutable, &c.image_policy, c.warnings.len()),
        "as confext.conf"
    );
});
