//! Properties of the small parsers and codecs: the env-file parser (`release`), mountinfo
//! lines, the meta dir's C escaping, and the version order.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::cmp::Ordering;
use sysext::release::{parse, parse_str};
use sysext::testing::meta::{cescape, cunescape};
use sysext::testing::mountinfo::{parse_line, unescape};
use sysext::testing::version::strverscmp_improved;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text rich in the characters the env-file grammar cares about.
fn env_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec!['A', 'B', '_', '=', ' ', '\t', '\n', '\r', '"', '\'', '\\', '#', ';', '$', '`', 'x', 'é', '\u{feff}']),
            1 => any::<char>(),
        ],
        0..64,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn key() -> impl Strategy<Value = String> {
    "[A-Z_][A-Z0-9_]{0,12}"
}

/// Values without NUL (a NUL rejects the whole file).
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec!['a', ' ', '\t', '\n', '\r', '"', '\'', '\\', '#', '$', '`', '=', ';', 'ü']),
            1 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
        ],
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// The kernel's escaping of mountinfo fields (`show_path`/`mangle`: space, tab, newline, backslash).
fn kernel_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// systemd's `cunescape()` without flags, for the escapes `cescape()` produces and the
/// common ones: a reference written from systemd's `cunescape_one()`.
fn reference_cunescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    let oct = |c: u8| (c as char).to_digit(8);
    while i < b.len() {
        if b[i] == 0 {
            return None; // a C string ends there: no NUL goes in
        }
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1)?;
        let (v, len) = match c {
            b'a' => (7, 2),
            b'b' => (8, 2),
            b'f' => (12, 2),
            b'n' => (b'\n', 2),
            b'r' => (b'\r', 2),
            b't' => (b'\t', 2),
            b'v' => (11, 2),
            b'\\' | b'"' | b'\'' | b'?' => (c, 2),
            b's' => (b' ', 2),
            b'x' => {
                let v = hex(*b.get(i + 2)?)? * 16 + hex(*b.get(i + 3)?)?;
                (v as u8, 4)
            }
            b'0'..=b'7' => {
                let v = oct(c)? * 64 + oct(*b.get(i + 2)?)? * 8 + oct(*b.get(i + 3)?)?;
                if v > 255 {
                    return None;
                }
                (v as u8, 4)
            }
            _ => return None,
        };
        if v == 0 {
            return None;
        }
        out.push(v);
        i += len;
    }
    String::from_utf8(out).ok()
}

fn escape_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec!['\\', 'x', '0', '1', '3', '7', '8', 'f', 'F', 'g', 'n', 's', 'u', '+', '-', ' ', 'é']),
            1 => any::<char>(),
        ],
        0..16,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Whether no separator `~ - ^ .` is directly followed by a character systemd skips.
fn transitive_domain(s: &str) -> bool {
    let b = s.as_bytes();
    !b.windows(2).any(|w| {
        b"~-^.".contains(&w[0]) && !(w[1].is_ascii_alphanumeric() || b"~-^.".contains(&w[1]))
    })
}

/// Version strings inside [`transitive_domain`]: a skipped character right after a separator
/// is dropped.
fn transitive_version_string() -> impl Strategy<Value = String> {
    version_string().prop_map(|s| {
        let mut out = String::new();
        for c in s.chars() {
            let after_sep = out.chars().last().is_some_and(|p| "~-^.".contains(p));
            if after_sep && !(c.is_ascii_alphanumeric() || "~-^.".contains(c)) {
                continue;
            }
            out.push(c);
        }
        out
    })
}

fn version_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'b', 'Z', '0', '1', '9', '~', '-', '^', '.', '_', '+',
        ]),
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    // -- release ------------------------------------------------------------------------

    #[test]
    fn release_parse_str_never_panics(text in env_text()) {
        let _ = parse_str(&text);
    }

    #[test]
    fn release_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        match (parse(&bytes), std::str::from_utf8(&bytes)) {
            (Ok(a), Ok(t)) => prop_assert_eq!(Some(a), parse_str(t).ok()),
            (Err(_), Ok(t)) => prop_assert!(t.contains('\0')),
            (Ok(_), Err(_)) => prop_assert!(false, "invalid UTF-8 accepted"),
            (Err(_), Err(_)) => {}
        }
    }

    /// Double-quoted values with `"` `\` `` ` `` `$` escaped come back exactly; so do
    /// single-quoted values without `'`; the last assignment of a key wins.
    #[test]
    fn release_quoted_values_round_trip(pairs in prop::collection::vec((key(), value(), any::<bool>()), 1..6)) {
        let mut text = String::new();
        let mut want = std::collections::BTreeMap::new();
        for (k, v, single) in &pairs {
            let quoted = if *single && !v.contains('\'') { format!("'{v}'") } else { sysext::release::quote(v) };
            text.push_str(&format!("{k}={quoted}\n"));
            want.insert(k.clone(), v.clone());
        }
        let got = parse_str(&text).unwrap();
        prop_assert_eq!(got.len(), want.len());
        for (k, v) in &want {
            prop_assert_eq!(got.get(k), Some(v.as_str()), "key {} in {:?}", k, text);
        }
    }

    /// Plain values survive unquoted, with blanks around `=` and at the end of the line.
    #[test]
    fn release_plain_values(k in key(), v in "[A-Za-z0-9._:/-]{0,16}", pad in "[ \t]{0,3}") {
        let text = format!("{pad}{k}{pad}={pad}{v}{pad}\n# {k}=comment\n");
        let got = parse_str(&text).unwrap();
        prop_assert_eq!(got.get(&k), Some(v.as_str()));
    }

    // -- mountinfo ----------------------------------------------------------------------

    #[test]
    fn mountinfo_parse_line_never_panics(line in ".{0,120}") {
        let _ = parse_line(&line);
    }

    #[test]
    fn mountinfo_parse_line_never_panics_on_near_lines(
        fields in prop::collection::vec(prop_oneof![Just("-".to_string()), "[0-9:]{0,6}", "[ -~]{0,8}", "\\\\[0-9]{0,4}"], 0..14)
    ) {
        let _ = parse_line(&fields.join(" "));
    }

    /// The kernel's octal escapes are undone exactly.
    #[test]
    fn mountinfo_unescape_round_trips(s in any::<String>()) {
        prop_assert_eq!(unescape(&kernel_escape(&s)), s);
    }

    /// A whole line built from fields parses back into them.
    #[test]
    fn mountinfo_line_round_trips(
        id in any::<u64>(), parent in any::<u64>(), ma in any::<u32>(), mi in any::<u32>(),
        root in "/[^\0]{0,12}", mp in "/[^\0]{0,12}", opts in "[a-z,]{1,12}",
        optional in prop::collection::vec("[a-z]{1,6}:[0-9]{1,3}", 0..3),
        fstype in "[a-z0-9]{1,8}", source in "[^\0 ]{1,12}", sopts in "[a-z=,:/]{0,20}",
    ) {
        let mut line = format!("{id} {parent} {ma}:{mi} {} {} {opts}", kernel_escape(&root), kernel_escape(&mp));
        for o in &optional {
            line.push(' ');
            line.push_str(o);
        }
        line.push_str(&format!(" - {fstype} {} {sopts}", kernel_escape(&source)));
        let m = parse_line(&line).unwrap();
        prop_assert_eq!((m.id, m.parent, m.dev), (id, parent, (ma, mi)));
        prop_assert_eq!(&m.root, &root);
        prop_assert_eq!(&m.mount_point, &mp);
        prop_assert_eq!(&m.options, &opts);
        prop_assert_eq!(&m.optional, &optional);
        prop_assert_eq!(&m.fstype, &fstype);
        prop_assert_eq!(&m.source, &source);
        prop_assert_eq!(&m.super_options, &sopts);
    }

    // -- meta: C escaping ---------------------------------------------------------------

    #[test]
    fn cescape_round_trips(s in any::<String>()) {
        let e = cescape(&s);
        prop_assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)), "printable ASCII only: {:?}", e);
        if s.contains('\0') {
            // systemd's cunescape() refuses NUL bytes.
            prop_assert_eq!(cunescape(&e), None);
        } else {
            prop_assert_eq!(cunescape(&e), Some(s));
        }
    }

    /// `cunescape` never panics and agrees with systemd's rules on escape-rich input
    /// (`\x+f` excluded: known bug 2, see `cunescape_rejects_signed_hex`).
    #[test]
    fn cunescape_matches_systemd(s in escape_text()) {
        prop_assume!(!s.contains("\\x+"));
        prop_assert_eq!(cunescape(&s), reference_cunescape(&s), "input {:?}", s);
    }

    // -- version order ------------------------------------------------------------------

    #[test]
    fn strverscmp_is_reflexive_and_antisymmetric(a in version_string(), b in version_string()) {
        prop_assert_eq!(strverscmp_improved(&a, &a), Ordering::Equal);
        prop_assert_eq!(strverscmp_improved(&a, &b), strverscmp_improved(&b, &a).reverse());
    }

    /// Transitive wherever systemd's ordering is: not after a separator (`~ - ^ .`) that is
    /// directly followed by a skipped character (`_`, `+`), where systemd does not skip it
    /// (e.g. `^Z` < `^0a` < `^_1` but `^Z` > `^_1`; see `version::sort_by_version`).
    #[test]
    fn strverscmp_is_transitive(a in transitive_version_string(), b in transitive_version_string(), c in transitive_version_string()) {
        prop_assert!([&a, &b, &c].iter().all(|s| transitive_domain(s)));
        let ab = strverscmp_improved(&a, &b);
        let bc = strverscmp_improved(&b, &c);
        let ac = strverscmp_improved(&a, &c);
        if ab != Ordering::Greater && bc != Ordering::Greater {
            prop_assert_ne!(ac, Ordering::Greater, "{:?} <= {:?} <= {:?}", a, b, c);
        }
        if ab == Ordering::Equal && bc == Ordering::Equal {
            prop_assert_eq!(ac, Ordering::Equal);
        }
    }

    /// Sorting never panics, keeps every neighbouring pair in order on any names, and every
    /// pair where the ordering is transitive.
    #[test]
    fn strverscmp_sorts_consistently(mut v in prop::collection::vec(version_string(), 0..12)) {
        sysext::testing::version::sort_names(&mut v);
        for w in v.windows(2) {
            prop_assert_ne!(strverscmp_improved(&w[0], &w[1]), Ordering::Greater, "{:?} before {:?} in {:?}", w[0], w[1], v);
        }
        if v.iter().all(|s| transitive_domain(s)) {
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    prop_assert_ne!(strverscmp_improved(&v[i], &v[j]), Ordering::Greater, "{:?} before {:?} in {:?}", v[i], v[j], v);
                }
            }
        }
    }
}

/// Known bug 2: `meta::cunescape` parses `\xHH` with `u8::from_str_radix`, which accepts a
/// leading `+`, so `\x+f` is taken as byte 0x0f. systemd's `cunescape()` requires two hex
/// digits and fails. Remove the `ignore` once fixed.
#[test]
fn cunescape_rejects_signed_hex() {
    assert_eq!(reference_cunescape("\\x+f"), None);
    assert_eq!(cunescape("\\x+f"), None);
}

/// Known bug 3: `mountinfo::stack_at` never ends (and grows its result without bound) when
/// the parent ids of the mounts at one mount point form a cycle below the top one: the walk
/// from the top follows `parent` without remembering where it has been. The kernel does not
/// produce such tables, but `parse` accepts them (found by the `mountinfo` fuzz target).
/// The walk runs on a thread and is given 300 ms. Remove the `ignore` once fixed.
#[test]
fn stack_at_terminates_on_parent_cycles() {
    let text = "1 2 0:1 / /a rw - t s o\n2 3 0:1 / /a rw - t s o\n3 2 0:1 / /a rw - t s o\n";
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mounts = sysext::testing::mountinfo::parse(text);
        let n = sysext::testing::mountinfo::stack_at(&mounts, "/a").len();
        let _ = tx.send(n);
    });
    let n = rx
        .recv_timeout(std::time::Duration::from_millis(300))
        .expect("stack_at did not return within 300 ms");
    assert!(n <= 3);
}
