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

/// Run the calling test (`name`, as given to libtest) in a private mount namespace.
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
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NS, "1")
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed in its namespace:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} did not run in its namespace:\n{stdout}\n{stderr}");
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
        self.put(&format!("{base}/usr/lib/extension-release.d/extension-release.{name}"), release);
        for (f, c) in files {
            self.put(&format!("{base}/{f}"), c);
        }
    }

    /// Create a confext directory image in `var/lib/confexts`.
    pub fn confext(&self, name: &str, files: &[(&str, &str)]) {
        let base = format!("var/lib/confexts/{name}");
        self.put(&format!("{base}/etc/extension-release.d/extension-release.{name}"), "ID=_any\n");
        for (f, c) in files {
            self.put(&format!("{base}/{f}"), c);
        }
    }

    /// A context on this root.
    pub fn ctx(&self, class: ImageClass, mode: MutableMode) -> Context {
        let mut o = Options::new(class);
        o.root = Some(self.path.to_string_lossy().into_owned());
        o.mutable = Some(mode);
        o.hierarchies = Some(class.info().default_hierarchies.iter().map(|s| s.to_string()).collect());
        Context::new(o).expect("context")
    }

    /// Overlay mounts at `rel` (from mountinfo).
    pub fn overlays_at(&self, rel: &str) -> usize {
        let target = self.p(rel);
        let t = target.to_string_lossy();
        sysext::mountinfo::read_self().unwrap().iter().filter(|m| m.mount_point == t && m.fstype == "overlay").count()
    }

    /// Mounts anywhere below the root.
    pub fn mounts_below(&self) -> usize {
        let t = self.path.to_string_lossy().into_owned();
        sysext::mountinfo::read_self().unwrap().iter().filter(|m| m.mount_point.starts_with(&t)).count()
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
    if !p.exists() {
        let st = Command::new(env!("CARGO")).args(["build", "-p", "sysext-cli"]).status().unwrap();
        assert!(st.success());
    }
    p
}

/// Whether `p` exists (without following a final symlink).
pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
