//! For the `cli_args` target: the CLI is a binary crate, its argument parser private to
//! `cli/src/main.rs`. The target includes that file whole at its crate root (so that every
//! private item is in reach and the parser is always the current one); this writes the copy it
//! includes, `$OUT_DIR/cli_main.rs`, with the things that cannot be included changed: the
//! inner doc comments (`//!`) and inner attributes (`#![...]`) are dropped, and each
//! `mod NAME;` gets a `#[path]` to `cli/src/NAME.rs`.
use std::path::Path;

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/src");
    let src = src.canonicalize().expect("cli/src");
    let main_rs = src.join("main.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", main_rs.display());
    let text = std::fs::read_to_string(&main_rs).expect("cli/src/main.rs");
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        // Inner doc comments and inner attributes (the CLI's lints) stand only at a crate root.
        if t.starts_with("//!") || t.starts_with("#![") {
            out.push('\n'); // keeps the line numbers of panics right
            continue;
        }
        let module = t
            .strip_prefix("mod ")
            .or_else(|| t.strip_prefix("pub mod "))
            .or_else(|| t.strip_prefix("pub(crate) mod "))
            .and_then(|r| r.strip_suffix(';'))
            .filter(|m| m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match module {
            Some(m) => {
                let file = src.join(format!("{m}.rs"));
                let file = if file.exists() {
                    file
                } else {
                    src.join(m).join("mod.rs")
                };
                println!("cargo:rerun-if-changed={}", file.display());
                out.push_str(&format!(
                    "#[path = {:?}] {line}\n",
                    file.display().to_string()
                ));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("cli_main.rs");
    std::fs::write(dest, out).unwrap();
}
