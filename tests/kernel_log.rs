//! A merge that succeeds writes nothing into the kernel log.
//!
//! The kernel probes of `core/src/kernel.rs` once looked up `lowerdir+=/proc/self/fd/-1` and
//! built an overlay from detached layers on every kernel: overlayfs printed "failed to
//! resolve '/proc/self/fd/-1'" (and, before 6.15, "failed to clone lowerpath") for every CLI
//! call. This test runs the CLI, a new process that probes afresh, and reads `/dev/kmsg`
//! around it. Its own test binary, so no other test of ours writes to the log meanwhile; a
//! line from somebody else's overlay would have to come during both rounds to fail it.

use sysext_tests::*;

/// The `overlayfs:` records written to the kernel log after `kmsg` was opened (and read).
fn overlayfs_records(kmsg: &std::fs::File) -> Vec<String> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        // One record per read; EAGAIN at the end, EPIPE when records were overwritten.
        match (&*kmsg).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                let text = rec.split_once(';').map_or(&*rec, |(_, t)| t);
                let line = text.lines().next().unwrap_or("");
                if line.starts_with("overlayfs:") {
                    out.push(line.to_string());
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    out
}

#[test]
fn successful_cli_merge_and_unmerge_log_nothing() {
    isolated!();
    use std::os::unix::fs::OpenOptionsExt;
    let r = TestRoot::new("kmsg");
    r.sysext("a", &[("usr/share/a/file", "a\n")]);
    let root = format!("--root={}", r.path.display());
    let mut seen = Vec::new();
    for _round in 0..2 {
        let kmsg = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("open /dev/kmsg");
        // lseek(SEEK_END) on /dev/kmsg skips every record written so far.
        rustix::fs::seek(&kmsg, rustix::fs::SeekFrom::End(0)).expect("seek /dev/kmsg");
        for verb in ["merge", "unmerge"] {
            sh(std::process::Command::new(cli()).args([root.as_str(), verb]));
        }
        let recs = overlayfs_records(&kmsg);
        if recs.is_empty() {
            return;
        }
        seen.push(recs);
    }
    panic!("each round of merge + unmerge wrote overlayfs lines into the kernel log: {seen:?}");
}
