//! The C library as a C program sees it: installed with `capi/install.sh` into a temporary
//! prefix, found through pkg-config, linked dynamically (and once statically), and run
//! under valgrind (zero errors, zero definite leaks). Programs that mount run in a private
//! mount namespace (`unshare -m --propagation private`), so the host's mount table is
//! never touched; the tests check that it did not change.
//!
//! Needs gcc, pkg-config, util-linux `unshare`, binutils, and a valgrind that knows
//! openat2() and the new mount API (see `tests/c/build-valgrind.sh`; Debian 12's 3.19 does
//! not). Environment:
//! - `SYSEXT_SKIP_ROOT_TESTS=1`: skip (instead of failing) the tests that need root;
//! - `SYSEXT_VALGRIND=/path/to/valgrind`: the valgrind to use;
//! - `SYSEXT_SKIP_VALGRIND=1`: run the programs without valgrind if no suitable one exists.
#![allow(unsafe_code)] // geteuid()
#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("capi/ has a parent")
        .to_path_buf()
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).map(|v| v == value).unwrap_or(false)
}

/// Whether to go on with a test that needs root: true as root; false (skip) when not root
/// and `SYSEXT_SKIP_ROOT_TESTS=1`; otherwise the test fails.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid() has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if env_is("SYSEXT_SKIP_ROOT_TESTS", "1") {
        eprintln!("{test}: skipped: needs root (SYSEXT_SKIP_ROOT_TESTS=1)");
        return false;
    }
    panic!("{test} needs root (CAP_SYS_ADMIN in a private mount namespace); run as root or set SYSEXT_SKIP_ROOT_TESTS=1");
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed\n{}", show(&out));
    out
}

/// Overlay mounts in the host's mount table (this test process's namespace).
fn host_overlays() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .filter(|l| l.contains(" - overlay "))
        .count()
}

/// The library installed into a temporary prefix.
struct Installed {
    prefix: PathBuf,
    /// Where the test programs are built.
    bin: PathBuf,
}

impl Installed {
    fn libdir(&self) -> PathBuf {
        self.prefix.join("lib")
    }

    fn pkg_config(&self, args: &[&str]) -> Vec<String> {
        let out = run(Command::new("pkg-config")
            .args(args)
            .env("PKG_CONFIG_PATH", self.libdir().join("pkgconfig")));
        String::from_utf8(out.stdout)
            .expect("pkg-config prints UTF-8")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// Remove prefixes of earlier runs whose process is gone.
fn remove_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("c-tests-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(tmp);
        let base = tmp.join(format!("c-tests-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let prefix = base.join("prefix");
        let bin = base.join("bin");
        fs::create_dir_all(&bin).expect("create the build directory");
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        run(Command::new("sh")
            .arg(workspace().join("capi/install.sh"))
            .arg(&prefix)
            .env("CARGO", cargo));
        Installed { prefix, bin }
    })
}

/// Compile a C program against the installed library with the flags pkg-config gives.
fn compile(inst: &Installed, src: &Path, name: &str) -> PathBuf {
    let out = inst.bin.join(name);
    let flags = inst.pkg_config(&["--cflags", "--libs", "libsysext"]);
    run(Command::new("gcc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
            "-O1",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .args(&flags)
        .arg("-lpthread"));
    out
}

const VALGRIND_ARGS: &[&str] = &[
    "--error-exitcode=99",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite",
    "--show-leak-kinds=definite",
    "--track-origins=yes",
];

/// A valgrind that knows the system calls of the library, or `None` to run without one
/// (only with `SYSEXT_SKIP_VALGRIND=1`).
fn valgrind() -> Option<&'static Path> {
    static VG: OnceLock<Option<PathBuf>> = OnceLock::new();
    VG.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(v) = std::env::var_os("SYSEXT_VALGRIND") {
            candidates.push(v.into());
        }
        candidates.push("/opt/valgrind/bin/valgrind".into());
        candidates.push("valgrind".into());
        let probe_dir = tempfile::tempdir().expect("temp dir");
        let probe = probe_dir.path().join("valgrind-probe");
        run(Command::new("gcc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&probe)
            .arg(workspace().join("tests/c/valgrind-probe.c")));
        let mut rejected = Vec::new();
        for vg in candidates {
            let Ok(out) = Command::new(&vg)
                .args(["-q", "--error-exitcode=99"])
                .arg(&probe)
                .output()
            else {
                continue;
            };
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() && !stderr.contains("unhandled") && !stderr.contains("==") {
                let version = Command::new(&vg)
                    .arg("--version")
                    .output()
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                eprintln!(
                    "using {} ({})",
                    vg.display(),
                    String::from_utf8_lossy(&version).trim()
                );
                return Some(vg);
            }
            rejected.push(format!(
                "{}: {}",
                vg.display(),
                stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
            ));
        }
        if env_is("SYSEXT_SKIP_VALGRIND", "1") {
            eprintln!(
                "no suitable valgrind ({rejected:?}); SYSEXT_SKIP_VALGRIND=1: running without"
            );
            return None;
        }
        panic!(
            "no valgrind that knows openat2(), the new mount API and mount_setattr() was found \
             (rejected: {rejected:?}); build one with tests/c/build-valgrind.sh (installs to \
             /opt/valgrind), point SYSEXT_VALGRIND at one, or set SYSEXT_SKIP_VALGRIND=1"
        )
    })
    .as_deref()
}

/// What valgrind said at the end of a run.
fn check_valgrind_summary(name: &str, stderr: &str) {
    if valgrind().is_none() {
        return;
    }
    let summaries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR SUMMARY:"))
        .collect();
    assert!(
        !summaries.is_empty(),
        "{name}: no valgrind summary in\n{stderr}"
    );
    for s in &summaries {
        assert!(
            s.contains("ERROR SUMMARY: 0 errors"),
            "{name}: {s}\n{stderr}"
        );
    }
    for l in stderr.lines().filter(|l| l.contains("definitely lost:")) {
        assert!(
            l.contains("definitely lost: 0 bytes"),
            "{name}: {l}\n{stderr}"
        );
    }
    // The parent's summary is the last one; forked children print their own before it.
    let heap = stderr
        .lines()
        .filter(|l| l.contains("total heap usage") || l.contains("All heap blocks"))
        .collect::<Vec<_>>();
    println!(
        "{name}: valgrind: {} | {}",
        summaries.last().map(|s| s.trim()).unwrap_or(""),
        heap.join(" | ")
    );
}

/// Run a C program (under valgrind, in a private mount namespace if `mount`), with a fresh
/// scratch directory as its argument; returns its output.
fn run_c(inst: &Installed, bin: &Path, mount: bool, args: &[&OsStr]) -> Output {
    let before = host_overlays();
    let mut cmd = if mount {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private"]);
        c
    } else {
        Command::new("env")
    };
    if let Some(vg) = valgrind() {
        cmd.arg(vg).args(VALGRIND_ARGS);
    }
    cmd.arg(bin)
        .args(args)
        .env("LD_LIBRARY_PATH", inst.libdir())
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_eq!(
        host_overlays(),
        before,
        "{} changed the host's mount table",
        bin.display()
    );
    out
}

fn run_test_program(name: &str, mount: bool) {
    let inst = installed();
    let bin = compile(inst, &workspace().join(format!("tests/c/{name}.c")), name);
    let scratch = tempfile::tempdir().expect("scratch dir");
    let out = run_c(inst, &bin, mount, &[scratch.path().as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed\n{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("all checks passed"),
        "{name}\n{}",
        show(&out)
    );
    check_valgrind_summary(name, &stderr);
}

#[test]
fn installed_library_exports_only_sysext_symbols() {
    let inst = installed();
    let lib = inst.libdir();
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    // Files and symlinks.
    let real = format!("libsysext.so.{version}");
    assert!(lib.join(&real).is_file());
    assert_eq!(
        fs::read_link(lib.join(format!("libsysext.so.{major}"))).unwrap(),
        Path::new(&real)
    );
    assert_eq!(
        fs::read_link(lib.join("libsysext.so")).unwrap(),
        Path::new(&format!("libsysext.so.{major}"))
    );
    assert!(lib.join("libsysext.a").is_file());
    assert_eq!(
        fs::read(inst.prefix.join("include/sysext.h")).unwrap(),
        fs::read(workspace().join("include/sysext.h")).unwrap()
    );

    // SONAME.
    let out = run(Command::new("readelf")
        .arg("-d")
        .arg(lib.join(format!("libsysext.so.{major}"))));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        dynamic.contains(&format!("Library soname: [libsysext.so.{major}]")),
        "{dynamic}"
    );

    // Exported symbols: only sysext_*, and every function of the header.
    let out = run(Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib.join(format!("libsysext.so.{major}"))));
    let nm = String::from_utf8_lossy(&out.stdout);
    // Each symbol carries the version node of capi/libsysext.map (`name@@LIBSYSEXT_0`); the
    // node itself shows as an absolute symbol.
    let mut symbols: Vec<&str> = Vec::new();
    for l in nm.lines() {
        let mut w = l.split_whitespace();
        let (Some(_addr), Some(kind), Some(sym)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if kind == "A" && sym.trim_end_matches('@') == format!("LIBSYSEXT_{major}") {
            continue;
        }
        let (name, node) = sym.split_once("@@").unwrap_or((sym, ""));
        assert_eq!(
            node,
            format!("LIBSYSEXT_{major}"),
            "{sym} has no symbol version or another one"
        );
        symbols.push(name);
    }
    let foreign: Vec<&&str> = symbols
        .iter()
        .filter(|s| !s.starts_with("sysext_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "exported symbols outside sysext_*: {foreign:?}"
    );
    let header = fs::read_to_string(workspace().join("include/sysext.h")).unwrap();
    let declared: Vec<&str> = header
        .lines()
        .filter(|l| {
            // Not comments, nor the static inline _freep() helpers (not exported).
            !l.starts_with(' ')
                && !l.starts_with('#')
                && !l.starts_with('/')
                && !l.starts_with("static inline")
                && !l.starts_with("typedef")
                && l.contains("sysext_")
                && l.contains('(')
        })
        .filter_map(|l| l.split('(').next()?.split_whitespace().last())
        .map(|s| s.trim_start_matches('*'))
        .collect();
    assert!(declared.len() > 80, "{declared:?}");
    for f in &declared {
        assert!(
            symbols.contains(f),
            "{f} is declared in sysext.h but not exported"
        );
    }
    assert_eq!(
        symbols.len(),
        declared.len(),
        "exports: {symbols:?}\ndeclared: {declared:?}"
    );
    println!(
        "libsysext.so.{major}: {} exported symbols, all sysext_*",
        symbols.len()
    );

    // Every exported function is exercised by a C program.
    let mut c_sources = String::new();
    for dir in ["tests/c", "examples/c"] {
        for e in fs::read_dir(workspace().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if matches!(p.extension().and_then(OsStr::to_str), Some("c" | "h")) {
                c_sources.push_str(&fs::read_to_string(&p).unwrap());
            }
        }
    }
    let unused: Vec<&&str> = symbols
        .iter()
        .filter(|s| !c_sources.contains(&format!("{s}(")))
        .collect();
    assert!(
        unused.is_empty(),
        "exported but called by no C test: {unused:?}"
    );

    // pkg-config.
    assert_eq!(inst.pkg_config(&["--modversion", "libsysext"]), [version]);
    let flags = inst.pkg_config(&["--cflags", "--libs", "libsysext"]);
    assert_eq!(
        flags,
        [
            format!("-I{}", inst.prefix.join("include").display()),
            format!("-L{}", lib.display()),
            "-lsysext".to_string()
        ]
    );
    let private = inst.pkg_config(&["--static", "--libs", "libsysext"]);
    for l in ["-lpthread", "-ldl", "-lm"] {
        assert!(
            private.iter().any(|f| f == l),
            "Libs.private lacks {l}: {private:?}"
        );
    }
}

#[test]
fn c_api_without_mounting() {
    // Runs as any user; as root it also checks -EPERM in a child without capabilities.
    run_test_program("test_api", false);
}

#[test]
fn c_api_linked_statically() {
    let inst = installed();
    let out = inst.bin.join("test_api_static");
    let cflags = inst.pkg_config(&["--cflags", "libsysext"]);
    let libs: Vec<String> = inst
        .pkg_config(&["--static", "--libs-only-l", "libsysext"])
        .into_iter()
        .filter(|l| l != "-lsysext")
        .collect();
    run(Command::new("gcc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O1",
            "-o",
        ])
        .arg(&out)
        .arg(workspace().join("tests/c/test_api.c"))
        .args(&cflags)
        .arg(inst.libdir().join("libsysext.a"))
        .args(&libs)
        .arg("-lpthread"));
    // No libsysext.so is needed at run time.
    let ldd = run(Command::new("ldd").arg(&out));
    assert!(
        !String::from_utf8_lossy(&ldd.stdout).contains("libsysext"),
        "{}",
        String::from_utf8_lossy(&ldd.stdout)
    );
    let scratch = tempfile::tempdir().unwrap();
    let res = run(Command::new(&out).arg(scratch.path()));
    assert!(String::from_utf8_lossy(&res.stdout).contains("all checks passed"));
}

#[test]
fn c_merge_unmerge_errors_and_callback() {
    if !root_or_skip("c_merge_unmerge_errors_and_callback") {
        return;
    }
    run_test_program("test_merge", true);
}

#[test]
fn c_all_six_mutable_modes_and_symlink_trick() {
    if !root_or_skip("c_all_six_mutable_modes_and_symlink_trick") {
        return;
    }
    run_test_program("test_modes", true);
}

/// A root for mini-init: os-release, /usr, /etc, a sysext "foo" and a confext "cfg".
fn mini_init_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let files: &[(&str, &str)] = &[
        ("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n"),
        ("usr/bin/base", "base"),
        ("etc/hostname", "test"),
        (
            "var/lib/extensions/foo/usr/lib/extension-release.d/extension-release.foo",
            "ID=_any\n",
        ),
        ("var/lib/extensions/foo/usr/bin/foo", "foo"),
        (
            "var/lib/extensions/old/usr/lib/extension-release.d/extension-release.old",
            "ID=debian\nVERSION_ID=11\n",
        ),
        ("var/lib/extensions/old/usr/bin/old", "old"),
        (
            "var/lib/confexts/cfg/etc/extension-release.d/extension-release.cfg",
            "ID=_any\n",
        ),
        ("var/lib/confexts/cfg/etc/cfg.conf", "cfg"),
    ];
    for (rel, content) in files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    fs::create_dir_all(root.join("opt")).unwrap();
    root
}

#[test]
fn mini_init_example() {
    if !root_or_skip("mini_init_example") {
        return;
    }
    let inst = installed();
    let bin = compile(
        inst,
        &workspace().join("examples/c/mini-init.c"),
        "mini-init",
    );
    let scratch = tempfile::tempdir().unwrap();
    let root = mini_init_root(scratch.path());
    let vg: Vec<String> = match valgrind() {
        Some(v) => std::iter::once(v.display().to_string())
            .chain(VALGRIND_ARGS.iter().map(|s| s.to_string()))
            .collect(),
        None => Vec::new(),
    };

    // Boot: merge both classes; then a second start in the same namespace finds them
    // merged (-EBUSY) and refreshes instead, with the mode from the environment.
    let before = host_overlays();
    let script = r#"set -e
"$@" --root="$ROOT" --mutable=ephemeral
SYSEXT_MUTABLE=import "$@" --root="$ROOT"
"#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .args(&vg)
        .arg(&bin)
        .env("ROOT", &root)
        .env("LD_LIBRARY_PATH", inst.libdir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        host_overlays(),
        before,
        "mini-init changed the host's mount table"
    );
    assert!(out.status.success(), "mini-init failed\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("sysext /usr: foo [mutable=ephemeral, writes to ephemeral]"),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("confext /etc: cfg [mutable=ephemeral, writes to ephemeral]"),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("sysext /usr: foo [mutable=import, writes to none]"),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("sysext /opt: (not merged)"),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains(&format!(
            "<6>mini-init: Merged extensions into '{}/usr'.",
            root.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("<4>mini-init: sysext 'old' not merged:"),
        "{stderr}"
    );
    let v = env!("CARGO_PKG_VERSION");
    assert!(
        stderr.contains(&format!("<6>mini-init: libsysext {v} (built against {v})")),
        "{stderr}"
    );
    check_valgrind_summary("mini-init (merge, then refresh)", &stderr);

    // Failures exit non-zero with the error's details.
    let missing = scratch.path().join("missing");
    let out = Command::new("env")
        .args(&vg)
        .arg(&bin)
        .arg(format!("--root={}", missing.display()))
        .env("LD_LIBRARY_PATH", inst.libdir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sysext failed") && stderr.contains("errno 2"),
        "{stderr}"
    );
    check_valgrind_summary("mini-init (missing root)", &stderr);

    let out = Command::new(&bin)
        .arg(format!("--root={}", root.display()))
        .arg("--mutable=sometimes")
        .env("LD_LIBRARY_PATH", inst.libdir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("errno 22"),
        "{}",
        show(&out)
    );
}

/// The ```` ```c ```` examples of the header's comments (one per verb), in header order.
fn header_examples() -> Vec<(String, String)> {
    let header = fs::read_to_string(workspace().join("include/sysext.h")).expect("read the header");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut pending: Vec<String> = Vec::new();
    for line in header.lines() {
        let text = line
            .trim_start()
            .strip_prefix('*')
            .map(|t| t.strip_prefix(' ').unwrap_or(t));
        match (&mut current, text) {
            (None, Some(t)) if t.trim() == "```c" => current = Some(String::new()),
            (Some(code), Some(t)) if t.trim() == "```" => {
                pending.push(std::mem::take(code));
                current = None;
            }
            (Some(code), Some(t)) => {
                code.push_str(t);
                code.push('\n');
            }
            _ => {}
        }
        // The function the comment documents follows it.
        if !pending.is_empty()
            && !line.starts_with(' ')
            && line.contains("sysext_")
            && line.contains('(')
        {
            let name = line
                .split('(')
                .next()
                .unwrap()
                .rsplit([' ', '*'])
                .next()
                .unwrap()
                .to_string();
            for code in pending.drain(..) {
                out.push((name.clone(), code));
            }
        }
    }
    out
}

#[test]
fn header_examples_compile_and_run() {
    if !root_or_skip("header_examples_compile_and_run") {
        return;
    }
    let examples = header_examples();
    let verbs: Vec<&str> = examples.iter().map(|(f, _)| f.as_str()).collect();
    for verb in ["list", "plan", "merge", "refresh", "unmerge", "status"] {
        assert!(
            verbs.contains(&format!("sysext_context_{verb}").as_str()),
            "no example for sysext_context_{verb} in the header: {verbs:?}"
        );
    }
    // Each example is the body of a function of `ctx`; main runs them in header order
    // (list, plan, merge, refresh, unmerge, status) on a test root holding "foo".
    let mut src = format!(
        "#include \"{}\"\n\n",
        workspace().join("tests/c/common.h").display()
    );
    for (i, (f, code)) in examples.iter().enumerate() {
        src.push_str(&format!(
            "/* from the comment of {f}() */\nstatic int example_{i}(const sysext_context *ctx) {{\n{code}}}\n\n"
        ));
    }
    src.push_str(
        "int main(int argc, char **argv) {\n    test_init(argc, argv);\n    \
         const char *root = make_root(\"examples\");\n    \
         sysext_context *ctx = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);\n",
    );
    for (i, (f, _)) in examples.iter().enumerate() {
        src.push_str(&format!(
            "    printf(\"== {f}\\n\");\n    CHECK(example_{i}(ctx) == 0);\n"
        ));
        if f == "sysext_context_merge" {
            src.push_str("    CHECK_STR(read_file(pathf(\"%s/usr/bin/foo\", root)), \"foo\");\n");
        }
        if f == "sysext_context_unmerge" {
            src.push_str("    CHECK(!exists(pathf(\"%s/usr/bin/foo\", root)));\n");
        }
    }
    src.push_str(
        "    sysext_context_free(ctx);\n    return test_finish(\"header examples\");\n}\n",
    );
    let inst = installed();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("header_examples.c");
    fs::write(&file, &src).expect("write the examples");
    let bin = compile(inst, &file, "header_examples");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let out = run_c(inst, &bin, true, &[scratch.path().as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "header examples failed\n{}\n{src}",
        show(&out)
    );
    assert!(stdout.contains("all checks passed"), "{}", show(&out));
    // What the examples print is what happened.
    assert!(stdout.contains("foo would-merge"), "{stdout}");
    assert!(
        stdout.contains("/var/lib/extensions/foo/usr (foo)"),
        "{stdout}"
    );
    assert!(stdout.contains("merged /usr at "), "{stdout}");
    assert!(stdout.contains("unmerged /usr"), "{stdout}");
    check_valgrind_summary("header_examples", &String::from_utf8_lossy(&out.stderr));
}
