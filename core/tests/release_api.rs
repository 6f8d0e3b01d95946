//! The release data's public helpers, as callers see them (what the whole-core mutation run
//! found untested in `core/src/release.rs`).

use sysext::release::{parse_str, UnitRequests};

#[test]
fn release_data_with_other_values_differ() {
    let a = parse_str("ID=debian\nVERSION_ID=13\n").unwrap();
    let b = parse_str("ID=debian\nVERSION_ID=12\n").unwrap();
    assert_ne!(a, b);
    assert_eq!(a, parse_str("ID=debian\nVERSION_ID=13\n").unwrap());
}

#[test]
fn unit_requests_are_empty_only_without_any_unit() {
    assert!(UnitRequests::default().is_empty());
    let restart = parse_str("EXTENSION_RESTART_UNITS=a.service\n").unwrap();
    let reload = parse_str("EXTENSION_RELOAD_OR_RESTART_UNITS=b.service\n").unwrap();
    for data in [&restart, &reload] {
        let mut u = UnitRequests::default();
        u.add(data);
        assert!(!u.is_empty(), "{u:?}");
    }
}

#[test]
fn manager_reload_is_asked_only_by_a_true_extension_reload_manager() {
    for (text, asks) in [
        ("EXTENSION_RELOAD_MANAGER=1\n", true),
        ("EXTENSION_RELOAD_MANAGER=yes\n", true),
        ("EXTENSION_RELOAD_MANAGER=0\n", false),
        ("EXTENSION_RELOAD_MANAGER=maybe\n", false),
        ("ID=_any\n", false),
    ] {
        assert_eq!(
            parse_str(text).unwrap().asks_manager_reload(),
            asks,
            "{text}"
        );
    }
}
