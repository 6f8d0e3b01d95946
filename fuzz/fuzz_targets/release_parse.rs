//! The env-file parser of os-release / extension-release files.
//! Invariants: no panic; valid UTF-8 without NUL is accepted; every parsed pair survives
//! re-serialisation as a double-quoted assignment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysext::release::{parse, parse_bool, parse_str};

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    let text = std::str::from_utf8(data);
    match (&parsed, text) {
        (Ok(_), Err(_)) => panic!("invalid UTF-8 accepted"),
        (Err(_), Ok(t)) => assert!(t.contains('\0'), "valid text without NUL rejected"),
        _ => {}
    }
    let Ok(data) = parsed else { return };
    let mut again = String::new();
    for (k, v) in data.iter() {
        let _ = parse_bool(v);
        // As in systemd, the first character of a line always starts the key, even a `=`;
        // after it the key ends at the first `=` or line break.
        let rest = k.char_indices().nth(1).map(|(i, _)| &k[i..]).unwrap_or("");
        assert!(!k.is_empty() && !k.contains(['\n', '\r']) && !rest.contains('='), "key {k:?}");
        again.push_str(&format!("{k}={}\n", sysext::release::quote(v)));
    }
    let re = parse_str(&again).expect("re-serialised text parses");
    assert_eq!(re, data, "round trip of {again:?}");
});
