//! The CLI's argument parser (`parse_args` of `cli/src/main.rs`, which `build.rs` copies in
//! whole; see there). The input is the argument vector, its words separated by NUL bytes,
//! the first being the program name.
//!
//! Invariants: no panic; the same words give the same result; an accepted command line has
//! a known verb with the right number of names; `--NAME=VALUE` and `--NAME VALUE` are the
//! same for the options that take a value (checked up to the first abbreviated option); the
//! parsed arguments, written as a canonical
//! command line (every setting explicit, the verb and names after `--`), parse to the same.
//!
//! `--help`, `--version`, `--json=help` and `--mutable=help` print to stdout; `scripts/fuzz`
//! runs this target with `-close_fd_mask=1`.
#![no_main]
#![allow(dead_code, unused_imports, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/cli_main.rs"));
use sysext::ImageClass;

const VALUE_OPTIONS: [&str; 7] = [
    "root",
    "noexec",
    "image-policy",
    "mutable",
    "json",
    "compat",
    "always-refresh",
];

const FLAG_OPTIONS: [&str; 12] = [
    "help",
    "version",
    "force",
    "no-reload",
    "no-legend",
    "no-pager",
    "long",
    "verbose",
    "allow-block-devices",
    "confext",
    "sysext",
    "introspect-cli",
];

fn canonical(a: &Args) -> Vec<String> {
    let mut v = vec!["sysext".to_string()];
    v.push(match a.class {
        ImageClass::Sysext => "--sysext".into(),
        ImageClass::Confext => "--confext".into(),
    });
    v.push(format!("--compat={}", a.compat.version()));
    if let Some(r) = &a.root {
        v.push(format!("--root={r}"));
    }
    if let Some(b) = a.noexec {
        v.push(format!("--noexec={}", if b { "yes" } else { "no" }));
    }
    if let Some(p) = &a.image_policy {
        v.push(format!("--image-policy={p}"));
    }
    if let Some(m) = a.mutable {
        v.push(format!("--mutable={m}"));
    }
    v.push(
        match a.json {
            Json::Off => "--json=off",
            Json::Short => "--json=short",
            Json::Pretty => "--json=pretty",
        }
        .into(),
    );
    v.push(format!(
        "--always-refresh={}",
        if a.always_refresh { "yes" } else { "no" }
    ));
    for (on, flag) in [
        (a.force, "--force"),
        (a.no_reload, "--no-reload"),
        (a.no_legend, "--no-legend"),
        (a.no_pager, "--no-pager"),
        (a.long, "--long"),
        (a.verbose, "--verbose"),
        (a.allow_block_devices, "--allow-block-devices"),
    ] {
        if on {
            v.push(flag.into());
        }
    }
    v.push("--".into());
    v.push(a.verb.clone());
    v.extend(a.names.iter().cloned());
    v
}

fn result(argv: &[String]) -> String {
    format!("{:?}", parse_args(argv.to_vec()))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let argv: Vec<String> = data
        .split(|&b| b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let r = parse_args(argv.clone());
    let shown = format!("{r:?}");
    assert_eq!(result(&argv), shown, "not deterministic");

    // Inline and separate option values: the first `--NAME=VALUE` that is an option (not the
    // value of the option before it, nor after `--`) split in two words.
    let mut i = 1;
    let mut found = None;
    while i < argv.len() && argv[i] != "--" {
        if let Some(long) = argv[i].strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            // An abbreviation may take the next word as its value (`--noe --root=`): the
            // check is made only up to the first option not written out in full.
            if !VALUE_OPTIONS.contains(&name) && !FLAG_OPTIONS.contains(&name) {
                break;
            }
            if VALUE_OPTIONS.contains(&name) {
                match inline {
                    Some(v) => {
                        found = Some((i, format!("--{name}"), v.to_string()));
                        break;
                    }
                    None => i += 1,
                }
            }
        }
        i += 1;
    }
    if let Some((i, name, value)) = found {
        let mut split = argv.clone();
        split.splice(i..=i, [name, value]);
        assert_eq!(result(&split), shown, "{:?} vs {split:?}", argv[i]);
    }

    let Ok(Some(a)) = r else { return };
    let n = a.names.len();
    match a.verb.as_str() {
        "status" | "list" | "refresh" | "plan" | "merge" | "unmerge" => assert_eq!(n, 0),
        "serve" => assert!(n <= 1),
        "add" | "remove" => assert!(n >= 1),
        v => panic!("verb {v:?} accepted"),
    }
    let canon = canonical(&a);
    match parse_args(canon.clone()) {
        Ok(Some(b)) => assert_eq!(format!("{b:?}"), format!("{a:?}"), "{canon:?}"),
        other => panic!("canonical {canon:?} of {argv:?}: {other:?}"),
    }
});
