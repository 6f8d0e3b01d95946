//! systemd architecture names (`x86-64`, `arm64`, …).
//!
//! The `ARCHITECTURE=` field of an extension-release file uses these names; it is
//! compared exactly against the host's name (so `x86_64` never matches).

/// Every architecture name systemd knows, in systemd's table order.
pub const ALL: &[&str] = &[
    "arm64",
    "arm64-be",
    "arm",
    "arm-be",
    "alpha",
    "arc",
    "arc-be",
    "cris",
    "x86-64",
    "x86",
    "ia64",
    "loongarch64",
    "m68k",
    "mips64-le",
    "mips64",
    "mips-le",
    "mips",
    "nios2",
    "parisc64",
    "parisc",
    "ppc64-le",
    "ppc64",
    "ppc",
    "ppc-le",
    "riscv32",
    "riscv64",
    "s390x",
    "s390",
    "sh64",
    "sh",
    "sparc64",
    "sparc",
    "tilegx",
];

/// Whether `machine` looks like `armv<digit>…<suffix>` (e.g. `armv7l`, `armv5tejb`).
fn is_armv(machine: &str, suffix: char) -> bool {
    machine
        .strip_prefix("armv")
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|mid| mid.starts_with(|c: char| c.is_ascii_digit()))
}

/// Maps a kernel machine name (`uname -m`) to the systemd architecture name.
///
/// Returns `None` for unknown machine names.  The bare `riscv` is mapped by the
/// pointer width of this build, as systemd does.  Note that `mips`/`mips64` map to the
/// big-endian names regardless of the actual endianness, like systemd's table.
pub fn from_uname_machine(machine: &str) -> Option<&'static str> {
    let name = match machine {
        "x86_64" => "x86-64",
        "i386" | "i486" | "i586" | "i686" => "x86",
        "aarch64" => "arm64",
        "aarch64_be" => "arm64-be",
        m if is_armv(m, 'l') => "arm",
        m if is_armv(m, 'b') => "arm-be",
        "ppc64le" => "ppc64-le",
        "ppc64" => "ppc64",
        "ppcle" => "ppc-le",
        "ppc" => "ppc",
        "s390x" => "s390x",
        "s390" => "s390",
        "riscv64" => "riscv64",
        "riscv32" => "riscv32",
        "riscv" => {
            if cfg!(target_pointer_width = "32") {
                "riscv32"
            } else {
                "riscv64"
            }
        }
        "loongarch64" => "loongarch64",
        "mips64" => "mips64",
        "mips" => "mips",
        "parisc64" => "parisc64",
        "parisc" => "parisc",
        "sparc64" => "sparc64",
        "sparc" => "sparc",
        "alpha" => "alpha",
        "arc" => "arc",
        "arceb" => "arc-be",
        "crisv32" => "cris",
        "ia64" => "ia64",
        "m68k" => "m68k",
        "nios2" => "nios2",
        "sh5" => "sh64",
        "sh4a" | "sh4" | "sh3" | "sh2a" | "sh2" => "sh",
        "tilegx" => "tilegx",
        _ => return None,
    };
    Some(name)
}

/// The architecture this library was compiled for, as a systemd name.
///
/// This is what systemd itself compares `ARCHITECTURE=` against (its
/// `native_architecture()` is a compile-time constant).  Unknown targets give the
/// Rust architecture name unchanged.
pub fn compiled() -> &'static str {
    let little = cfg!(target_endian = "little");
    let pick = |le: &'static str, be: &'static str| if little { le } else { be };
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" => pick("arm64", "arm64-be"),
        "arm" => pick("arm", "arm-be"),
        "powerpc64" => pick("ppc64-le", "ppc64"),
        "powerpc" => pick("ppc-le", "ppc"),
        "mips64" | "mips64r6" => pick("mips64-le", "mips64"),
        "mips" | "mips32r6" => pick("mips-le", "mips"),
        "riscv64" => "riscv64",
        "riscv32" => "riscv32",
        "s390x" => "s390x",
        "loongarch64" => "loongarch64",
        "sparc64" => "sparc64",
        "sparc" => "sparc",
        "m68k" => "m68k",
        other => other,
    }
}

/// The host architecture name: the kernel's machine name mapped with
/// [`from_uname_machine`], or [`compiled`] if that name is unknown.
pub fn native() -> &'static str {
    // The machine does not change while we run: ask the kernel once.
    static NATIVE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    NATIVE.get_or_init(|| {
        let uts = rustix::system::uname();
        uts.machine()
            .to_str()
            .ok()
            .and_then(from_uname_machine)
            .unwrap_or_else(compiled)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_machines_map_to_dps_architectures() {
        let cases: &[(&str, Option<&str>)] = &[
            ("x86_64", Some("x86-64")),
            ("i386", Some("x86")),
            ("i486", Some("x86")),
            ("i586", Some("x86")),
            ("i686", Some("x86")),
            ("aarch64", Some("arm64")),
            ("aarch64_be", Some("arm64-be")),
            ("armv4l", Some("arm")),
            ("armv4tl", Some("arm")),
            ("armv5tel", Some("arm")),
            ("armv5tejl", Some("arm")),
            ("armv6l", Some("arm")),
            ("armv7l", Some("arm")),
            ("armv7ml", Some("arm")),
            ("armv8l", Some("arm")),
            ("armv4b", Some("arm-be")),
            ("armv5tejb", Some("arm-be")),
            ("armv7b", Some("arm-be")),
            ("armv8b", Some("arm-be")),
            ("ppc64le", Some("ppc64-le")),
            ("ppc64", Some("ppc64")),
            ("ppcle", Some("ppc-le")),
            ("ppc", Some("ppc")),
            ("s390x", Some("s390x")),
            ("s390", Some("s390")),
            ("riscv64", Some("riscv64")),
            ("riscv32", Some("riscv32")),
            ("loongarch64", Some("loongarch64")),
            ("mips64", Some("mips64")),
            ("mips", Some("mips")),
            ("parisc64", Some("parisc64")),
            ("parisc", Some("parisc")),
            ("sparc64", Some("sparc64")),
            ("sparc", Some("sparc")),
            ("alpha", Some("alpha")),
            ("arc", Some("arc")),
            ("arceb", Some("arc-be")),
            ("crisv32", Some("cris")),
            ("ia64", Some("ia64")),
            ("m68k", Some("m68k")),
            ("nios2", Some("nios2")),
            ("sh5", Some("sh64")),
            ("sh4a", Some("sh")),
            ("sh4", Some("sh")),
            ("sh3", Some("sh")),
            ("sh2a", Some("sh")),
            ("sh2", Some("sh")),
            ("tilegx", Some("tilegx")),
            // unknown / not machine names
            ("", None),
            ("x86-64", None),
            ("X86_64", None),
            ("amd64", None),
            ("arm64", None),
            ("armvl", None),
            ("armv", None),
            ("armvxl", None),
            ("i786", None),
        ];
        for (m, want) in cases {
            assert_eq!(from_uname_machine(m), *want, "machine {m:?}");
        }
    }

    #[test]
    fn riscv_by_pointer_width() {
        let want = if cfg!(target_pointer_width = "32") {
            "riscv32"
        } else {
            "riscv64"
        };
        assert_eq!(from_uname_machine("riscv"), Some(want));
    }

    #[test]
    fn every_mapping_is_a_known_name() {
        let machines = [
            "x86_64",
            "i686",
            "aarch64",
            "aarch64_be",
            "armv7l",
            "armv7b",
            "ppc64le",
            "ppc64",
            "ppcle",
            "ppc",
            "s390x",
            "s390",
            "riscv",
            "riscv64",
            "riscv32",
            "loongarch64",
            "mips64",
            "mips",
            "parisc64",
            "parisc",
            "sparc64",
            "sparc",
            "alpha",
            "arc",
            "arceb",
            "crisv32",
            "ia64",
            "m68k",
            "nios2",
            "sh5",
            "sh4",
            "tilegx",
        ];
        for m in machines {
            let name = from_uname_machine(m).unwrap();
            assert!(ALL.contains(&name), "{m} -> {name} not in ALL");
        }
    }

    #[test]
    fn all_names_unique() {
        assert_eq!(ALL.len(), 33);
        for (i, a) in ALL.iter().enumerate() {
            assert!(!ALL[i + 1..].contains(a), "duplicate {a}");
        }
        assert!(!ALL.contains(&"_any"));
        assert!(!ALL.contains(&"x86_64"));
    }

    #[test]
    fn native_is_known_on_common_targets() {
        let n = native();
        assert!(!n.is_empty());
        if cfg!(any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "s390x",
            target_arch = "powerpc64",
            target_arch = "loongarch64"
        )) {
            assert!(ALL.contains(&n), "{n}");
            assert!(ALL.contains(&compiled()), "{}", compiled());
        }
        if cfg!(target_arch = "x86_64") {
            assert_eq!(compiled(), "x86-64");
        }
    }
}
