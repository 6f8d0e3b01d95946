//! Link settings of the shared library: its SONAME and the symbols it exports.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The SONAME carries the ABI major number; any ABI break bumps it (no promise before 1.0).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsysext.so.0");
    // Export only the C API: everything else (Rust std, core internals) stays local. (The
    // installed libsysext.so.0 is not this cdylib: capi/install.sh links it from the static
    // library with the versioned symbols of libsysext.map, because rustc gives a cdylib an
    // anonymous version script of its own, which overrides any named version node.)
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("libsysext.map");
    std::fs::write(&script, "{\n  global: sysext_*;\n  local: *;\n};\n")
        .expect("write the linker version script");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
}
