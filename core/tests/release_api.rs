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
