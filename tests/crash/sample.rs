//! The crash test's sample (`tests/crash/run.py --sample 6`: the CLI killed by SIGKILL at its
//! system calls, the next call must repair) as a cargo test, against the debug CLI, for runs
//! that can only start cargo tests: `scripts/mutants-core` runs it for the files whose job is
//! crash safety (the intent record, the journal, the rescue, the publishing of overlays).
//! The test command runs `run.py` itself, with the release CLI (`scripts/test`), so this
//! test is ignored unless asked for (`--include-ignored`).
//!
//! `LIBSYSEXT_KERNEL_DISABLE` is passed on as `run.py --disable` (the kernel paths of older
//! kernels); `SYSEXT_CRASH_SAMPLE` sets the sample's divisor (default 6).

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "scripts/test runs tests/crash/run.py itself, with the release CLI; scripts/mutants-core runs this"]
fn sampled_kill_points_are_repaired_by_the_next_call() {
    assert!(
        sysext_tests::is_root(),
        "the crash sample needs root (its kill points run in namespaces of their own)"
    );
    let cli = sysext_tests::cli();
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("crash/run.py");
    let sample = std::env::var("SYSEXT_CRASH_SAMPLE").unwrap_or_else(|_| "6".to_string());
    let mut cmd = Command::new("python3");
    cmd.arg(&run).args(["--sample", &sample, "--bin"]).arg(&cli);
    match std::env::var("LIBSYSEXT_KERNEL_DISABLE") {
        Ok(k) if !k.is_empty() => {
            cmd.args(["--disable", &k]);
        }
        _ => {}
    }
    let out = cmd.output().expect("run tests/crash/run.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: kill points failed:\n{stdout}\n{stderr}",
        run.display()
    );
    // run.py ends with "crash: N passed, 0 failed"; a run that tested nothing is no pass.
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("crash: "))
        .unwrap_or_else(|| panic!("no summary from run.py:\n{stdout}\n{stderr}"));
    let passed: u32 = last
        .trim_start_matches("crash: ")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed > 0 && last.ends_with(" 0 failed"), "run.py: {last}");
    println!("{last}");
}
