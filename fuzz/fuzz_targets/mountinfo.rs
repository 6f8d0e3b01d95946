//! The `/proc/self/mountinfo` parser.
//! Invariants: no panic; every parsed line's helpers work; `stack_at` returns a stack no
//! longer than the mount table, also for (corrupt) tables whose parent ids form a cycle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysext::testing::mountinfo;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = mountinfo::unescape(line);
    }
    let mounts = mountinfo::parse(&text);
    for m in &mounts {
        let _ = m.overlay_lower_count();
        let _ = m.has_option("ro");
        let stack = mountinfo::stack_at(&mounts, &m.mount_point);
        assert!(stack.len() <= mounts.len());
    }
});
