//! `include/sysext.h` is what cbindgen generates from this crate, and it compiles.
//!
//! To regenerate the header after changing the API:
//! `SYSEXT_BLESS=1 cargo test -p sysext-capi --test header`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../include/sysext.h")
}

fn generate() -> String {
    let dir = crate_dir();
    let config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read capi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let fresh = generate();
    let path = header_path();
    if std::env::var_os("SYSEXT_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/sysext.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()));
        panic!(
            "include/sysext.h is stale (first difference at line {}); regenerate it with \
             `SYSEXT_BLESS=1 cargo test -p sysext-capi --test header`",
            first + 1
        );
    }
}

fn header_text() -> String {
    std::fs::read_to_string(header_path()).expect("read include/sysext.h")
}

fn define(text: &str, name: &str) -> u64 {
    let prefix = format!("#define {name} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{name} is not defined in include/sysext.h"));
    line[prefix.len()..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {line}"))
}

#[test]
fn version_macros_match_cargo() {
    let text = header_text();
    let want = |v: &str| v.parse::<u64>().unwrap();
    assert_eq!(
        define(&text, "SYSEXT_VERSION_MAJOR"),
        want(env!("CARGO_PKG_VERSION_MAJOR"))
    );
    assert_eq!(
        define(&text, "SYSEXT_VERSION_MINOR"),
        want(env!("CARGO_PKG_VERSION_MINOR"))
    );
    assert_eq!(
        define(&text, "SYSEXT_VERSION_PATCH"),
        want(env!("CARGO_PKG_VERSION_PATCH"))
    );
}

/// Every function and every enum value carries a doc comment, and so do the handle types.
#[test]
fn everything_is_documented() {
    let text = header_text();
    let lines: Vec<&str> = text.lines().collect();
    let mut undocumented = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let is_decl = (t.starts_with("SYSEXT_") && t.contains(" = ") && t.ends_with(','))
            || (!l.starts_with(' ')
                && l.contains("sysext_")
                && l.contains('(')
                && !t.starts_with('*')
                && !t.starts_with("/*")
                && !t.starts_with("typedef"))
            || t.starts_with("typedef struct ")
            || t.starts_with("typedef void (*");
        if !is_decl {
            continue;
        }
        // Continuation lines of a multi-line prototype are not declarations.
        if i > 0 && lines[i - 1].trim_end().ends_with(',') && !t.starts_with("SYSEXT_") {
            continue;
        }
        let prev = lines[..i]
            .iter()
            .rev()
            .find(|p| !p.trim().is_empty())
            .map(|p| p.trim())
            .unwrap_or("");
        if !prev.ends_with("*/") {
            undocumented.push(format!("{}: {}", i + 1, l));
        }
    }
    assert!(
        undocumented.is_empty(),
        "undocumented declarations in include/sysext.h:\n{}",
        undocumented.join("\n")
    );
}

/// Exported functions in the header equal the `#[no_mangle]` functions of the crate.
#[test]
fn header_declares_every_export() {
    let text = header_text();
    let mut src_fns = Vec::new();
    for entry in std::fs::read_dir(crate_dir().join("src")).unwrap() {
        let p = entry.unwrap().path();
        let s = std::fs::read_to_string(&p).unwrap();
        let mut after_no_mangle = false;
        for l in s.lines() {
            let t = l.trim();
            if t == "#[no_mangle]" {
                after_no_mangle = true;
                continue;
            }
            if after_no_mangle {
                let name = t
                    .split("fn ")
                    .nth(1)
                    .and_then(|r| r.split('(').next())
                    .expect("fn after #[no_mangle]");
                src_fns.push(name.to_string());
                after_no_mangle = false;
            }
        }
    }
    src_fns.sort();
    let mut missing: Vec<&String> = src_fns
        .iter()
        .filter(|f| !text.contains(&format!("{f}(")))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "not in the header: {missing:?}");
    assert!(
        src_fns.iter().all(|f| f.starts_with("sysext_")),
        "{src_fns:?}"
    );
    assert!(src_fns.len() > 80, "found only {} exports", src_fns.len());
}

fn compile(compiler: &str, std: &str, lang: &str, source: &str, dir: &Path) {
    let src = dir.join(format!("use-header.{lang}"));
    std::fs::write(&src, source).unwrap();
    let include = crate_dir().join("../include");
    let out = Command::new(compiler)
        .args([
            std,
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
            "-I",
        ])
        .arg(&include)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
    assert!(
        out.status.success(),
        "{compiler} {std} rejects include/sysext.h:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn header_compiles_as_c99_and_cxx() {
    let dir = std::env::temp_dir().join(format!("sysext-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = r#"
#include <sysext.h>
#include <sysext.h> /* the include guard works */
int main(void) {
    sysext_options *o = sysext_options_new(SYSEXT_IMAGE_CLASS_SYSEXT);
    sysext_mutable_mode m = SYSEXT_MUTABLE_MODE_EPHEMERAL_IMPORT;
    sysext_log_callback cb = 0;
    enum sysext_error_kind k = SYSEXT_ERROR_KIND_PANIC;
    (void) m; (void) cb; (void) k;
    sysext_options_free(o);
    return SYSEXT_VERSION_MAJOR + SYSEXT_VERSION_MINOR + SYSEXT_VERSION_PATCH > 1000;
}
"#;
    compile("gcc", "-std=c99", "c", body, &dir);
    compile("gcc", "-std=c11", "c", body, &dir);
    compile(
        "g++",
        "-std=c++11",
        "cc",
        &body.replace("(void) m;", "static_cast<void>(m);"),
        &dir,
    );
    compile("g++", "-std=c++17", "cc", body, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
}
