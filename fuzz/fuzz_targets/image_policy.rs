//! The image policy parser (`--image-policy=`).
//! Invariants: no panic; the canonical form of a parsed policy parses to an equivalent
//! policy and is a fixed point of formatting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysext::image::{ImagePolicy, PartitionDesignator, PolicyFlags};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = PolicyFlags::parse(s);
    let Ok(p) = ImagePolicy::parse(s) else { return };
    for d in PartitionDesignator::ALL {
        let _ = p.effective(d);
        let _ = p.may_use(d);
    }
    let canon = p.to_string();
    let q = ImagePolicy::parse(&canon).unwrap_or_else(|e| panic!("canonical form {canon:?} of {s:?} does not parse: {e}"));
    assert!(q.equivalent(&p), "{s:?} -> {canon:?} is not equivalent");
    assert_eq!(q.to_string(), canon, "formatting is not a fixed point for {s:?}");
});
