//! Test support: private mount namespaces and throw-away roots.
//!
//! Every test that mounts calls [`isolated`]: the test binary re-runs just that test under
//! `unshare -m --propagation private`, so the host's mount table is never touched; when the
//! namespace ends, everything mounted in it is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use sysext::{Context, ImageClass, MutableMode, Options};

const IN_NS: &str = "SYSEXT_TEST_IN_NS";

/// Whether we are root (tests that mount need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Run the rest of the calling test in a private mount namespace (as root): the first line
/// of such a test. In the parent the test binary is re-run for just this test under
/// `unshare -m --propagation private` and the test returns when it has passed there; in
/// that child the body runs. The test's name comes from the function it stands in.
///
/// ```ignore
/// #[test]
/// fn merges_in_private() {
///     isolated!();
///     // ... mounts, seen only in this test's namespace
/// }
/// ```
#[macro_export]
macro_rules! isolated {
    () => {{
        fn here() {}
        fn path_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        // `crate::module::test::here` -> `module::test`, as libtest names the test.
        let path = path_of(here);
        let path = path.strip_suffix("::here").unwrap_or(path);
        let test = path.split_once("::").map_or(path, |(_, t)| t);
        if !$crate::isolated(test) {
            return;
        }
    }};
}

/// Run the calling test (`name`, as given to libtest) in a private mount namespace
/// ([`isolated!`] names it).
/// Returns `true` in the child (run the test body), `false` in the parent (done).
pub fn isolated(name: &str) -> bool {
    if std::env::var_os(IN_NS).is_some() {
        return true;
    }
    if !is_root() {
        if std::env::var_os("SYSEXT_SKIP_ROOT_TESTS").is_some() {
            eprintln!("skipping {name}: needs root");
            return false;
        }
        panic!("{name} needs root (run as root, or set SYSEXT_SKIP_ROOT_TESTS=1 to skip)");
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(exe)
        .args([
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(IN_NS, "1")
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its namespace:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run in its namespace:\n{stdout}\n{stderr}"
    );
    // What the test printed (measurements, notes on skipped parts) shows with `--show-output`;
    // tests/vm reads it.
    print!("{stdout}");
    eprint!("{stderr}");
    false
}

/// A throw-away root tree: `usr/lib/os-release` (`ID=debian VERSION_ID=12`),
/// `usr/bin/base`, `usr/share/base/data`, `opt/`, `etc/`, `var/lib/extensions/`.
#[derive(Debug)]
pub struct TestRoot {
    /// Its path.
    pub path: PathBuf,
}

impl TestRoot {
    /// Create a new root under the temp dir.
    pub fn new(tag: &str) -> TestRoot {
        let path = std::env::temp_dir().join(format!("sysext-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let r = TestRoot { path };
        r.put("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n");
        r.put("usr/bin/base", "base\n");
        r.put("usr/share/base/data", "data\n");
        r.put("etc/base.conf", "base\n");
        r.mkdir("opt");
        r.mkdir("var/lib/extensions");
        r.mkdir("var/lib/confexts");
        r
    }

    /// `root/rel`.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    /// Write a file (parents created).
    pub fn put(&self, rel: &str, content: &str) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Create a directory (and parents).
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.p(rel)).unwrap();
    }

    /// Read a file; `None` if it cannot be read.
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.p(rel)).ok()
    }

    /// Try to write a file; returns the errno on failure.
    pub fn try_write(&self, rel: &str, content: &str) -> Result<(), i32> {
        std::fs::write(self.p(rel), content).map_err(|e| e.raw_os_error().unwrap_or(-1))
    }

    /// Create a sysext directory image in `var/lib/extensions` with `ID=_any` and `files`.
    pub fn sysext(&self, name: &str, files: &[(&str, &str)]) {
        self.sysext_in("var/lib/extensions", name, "ID=_any\n", files)
    }

    /// Create a sysext directory image in `dir` with the given release text.
    pub fn sysext_in(&self, dir: &str, name: &str, release: &str, files: &[(&str, &str)]) {
        let base = format!("{dir}/{name}");
        self.put(
            &format!("{base}/usr/lib/extension-release.d/extension-release.{name}"),
            release,
        );
        for (f, c) in files {
            self.put(&format!("{base}/{f}"), c);
        }
    }

    /// Create a confext directory image in `var/lib/confexts`.
    pub fn confext(&self, name: &str, files: &[(&str, &str)]) {
        let base = format!("var/lib/confexts/{name}");
        self.put(
            &format!("{base}/etc/extension-release.d/extension-release.{name}"),
            "ID=_any\n",
        );
        for (f, c) in files {
            self.put(&format!("{base}/{f}"), c);
        }
    }

    /// Options for this root: the class's default hierarchies (not the environment's).
    pub fn options(&self, class: ImageClass, mode: MutableMode) -> Options {
        let mut o = Options::new(class);
        o.root = Some(self.path.to_string_lossy().into_owned());
        o.mutable = Some(mode);
        o.hierarchies = Some(
            class
                .info()
                .default_hierarchies
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        o
    }

    /// A context on this root.
    pub fn ctx(&self, class: ImageClass, mode: MutableMode) -> Context {
        Context::new(self.options(class, mode)).expect("context")
    }

    /// Overlay mounts at `rel` (from mountinfo).
    pub fn overlays_at(&self, rel: &str) -> usize {
        let target = self.p(rel);
        let t = target.to_string_lossy();
        sysext::testing::mountinfo::read_self()
            .unwrap()
            .iter()
            .filter(|m| m.mount_point == t && m.fstype == "overlay")
            .count()
    }

    /// Mounts anywhere below the root.
    pub fn mounts_below(&self) -> usize {
        let t = self.path.to_string_lossy().into_owned();
        sysext::testing::mountinfo::read_self()
            .unwrap()
            .iter()
            .filter(|m| m.mount_point.starts_with(&t))
            .count()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        // Only clean up when nothing is mounted below (a failed test keeps its evidence).
        if self.mounts_below() == 0 {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Path of a workspace binary built by cargo (`sysext`).
pub fn cli() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("sysext");
    // Built once per test process when asked (scripts/mutants-core: each mutant's CLI must
    // be its own), else only when missing (the test command builds it first).
    static FRESH: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let fresh = std::env::var_os("SYSEXT_TESTS_BUILD_CLI").is_some();
    if fresh {
        FRESH.get_or_init(|| {
            let st = Command::new(env!("CARGO"))
                .args(["build", "-q", "-p", "sysext-cli"])
                .status()
                .unwrap();
            assert!(st.success());
        });
    }
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "sysext-cli"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    p
}

/// Whether `p` exists (without following a final symlink).
/// Run `cmd` and fail the test, with its stderr, unless it succeeds.
pub fn sh(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The visible tree below the root (inputs in `var/lib/extensions` left out), one line per entry.
pub fn tree_snapshot(r: &TestRoot) -> Vec<String> {
    fn walk(base: &std::path::Path, p: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        let mut v: Vec<_> = rd.flatten().collect();
        v.sort_by_key(|e| e.file_name());
        for e in v {
            let path = e.path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = std::fs::symlink_metadata(&path).unwrap();
            if md.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &path, out);
            } else {
                out.push(format!(
                    "{rel} {}",
                    std::fs::read_to_string(&path).unwrap_or_default().trim()
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(&r.path, &r.path, &mut out);
    out.retain(|l| !l.starts_with("var/lib/extensions/"));
    out
}

/// Mounts below the root: mount point, type and options.
pub fn mount_table(r: &TestRoot) -> Vec<String> {
    let t = r.path.to_string_lossy().into_owned();
    let mut v: Vec<String> = sysext::testing::mountinfo::read_self()
        .unwrap()
        .iter()
        .filter(|m| m.mount_point.starts_with(&t))
        .map(|m| format!("{} {} {}", m.mount_point, m.fstype, m.options))
        .collect();
    v.sort();
    v
}

/// Run `op` with the N-th mount-related step failing, for every N until it succeeds, and
/// check after each failure that mounts, the visible tree, loop devices and ephemeral dirs
/// are as before. Returns the number of faults injected.
pub fn inject_everywhere(
    r: &TestRoot,
    name: &str,
    op: &dyn Fn(&Context) -> sysext::Result<sysext::Report>,
    opts: &dyn Fn(MutableMode) -> Options,
    mode: MutableMode,
) -> u64 {
    let mut n = 1;
    loop {
        let (mounts, tree, loops, eph) = (
            mount_table(r),
            tree_snapshot(r),
            loops_of(r),
            ephemeral_dirs(),
        );
        std::env::set_var("SYSEXT_FAULT_INJECT", n.to_string());
        let mut o = opts(mode);
        o.always_refresh = true;
        let ctx = Context::new(o).unwrap();
        let res = op(&ctx);
        std::env::remove_var("SYSEXT_FAULT_INJECT");
        match res {
            Err(e) => {
                // A step that fails on its own (a kernel that cannot do it) would make this loop
                // run forever: only injected faults count.
                assert!(
                    is_injected(&e),
                    "{name}: with a fault injected at step {n}, it failed on its own: {e}"
                );
                assert_eq!(
                    mount_table(r),
                    mounts,
                    "{name}: fault at step {n} ({e}) changed the mounts"
                );
                assert_eq!(
                    tree_snapshot(r),
                    tree,
                    "{name}: fault at step {n} ({e}) changed the tree"
                );
                assert_eq!(
                    loops_of(r),
                    loops,
                    "{name}: fault at step {n} ({e}) left loop devices"
                );
                assert_eq!(
                    ephemeral_dirs(),
                    eph,
                    "{name}: fault at step {n} ({e}) left ephemeral dirs"
                );
                n += 1;
            }
            Ok(_) => {
                println!(
                    "{name}: {} faults injected, each left the previous state intact",
                    n - 1
                );
                assert!(n > 3, "{name}: the operation has mount steps");
                return n - 1;
            }
        }
    }
}

/// Whether an error comes from the fault injector (anywhere in its chain of sources).
fn is_injected(e: &sysext::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(x) = cur {
        if x.to_string().contains("injected fault at step") {
            return true;
        }
        cur = x.source();
    }
    false
}

/// Loop devices whose backing file lies below the root.
pub fn loops_of(r: &TestRoot) -> Vec<String> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return v;
    };
    let root = r.path.to_string_lossy().into_owned();
    for e in rd.flatten() {
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
            if b.trim().starts_with(&root) {
                v.push(format!("{} {}", e.file_name().to_string_lossy(), b.trim()));
            }
        }
    }
    v.sort();
    v
}

/// [`loops_of`] once the kernel has cleared what it is clearing: an auto-clearing loop
/// device goes away after its last user (the image's mount), and the kernel does that from a
/// work queue, so it can outlive an unmerge that has returned by a few milliseconds. Waits
/// up to two seconds for none to be left; what is left then is left.
pub fn settled_loops_of(r: &TestRoot) -> Vec<String> {
    let t = std::time::Instant::now();
    loop {
        let v = loops_of(r);
        if v.is_empty() || t.elapsed() > std::time::Duration::from_secs(2) {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits up to 5 s for `done` (device-mapper's deferred removals, loop devices going with
/// them), then asserts it.
pub fn wait_until(done: impl Fn() -> bool, what: &str) {
    for _ in 0..100 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(done(), "{what}: still there after 5 s");
}

/// Ephemeral dirs of this process below /run/libsysext/ephemeral.
pub fn ephemeral_dirs() -> Vec<String> {
    let tag = format!("-{}-", std::process::id());
    let mut v: Vec<String> = std::fs::read_dir(sysext::testing::state::EPHEMERAL_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&tag))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The running kernel's release as uname gives it, and its (major, minor).
pub fn kernel_release() -> (String, (u32, u32)) {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let rel = rel.trim().to_string();
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    let major = it.next().unwrap().parse().unwrap();
    let minor = it.next().unwrap().parse().unwrap();
    (rel, (major, minor))
}
