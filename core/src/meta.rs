//! The meta dir (`.systemd-sysext` / `.systemd-confext`) inside a merged hierarchy:
//! `extensions` (names, one per line), `dev` (`MAJOR:MINOR` of the overlay) and
//! `work_dir` (root-relative, C-escaped). Pure encoders and decoders.

/// Contents of a meta dir.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MetaDir {
    /// Names of all merged extensions, ascending version order.
    pub extensions: Vec<String>,
    /// Device number of the overlay root.
    pub dev: Option<(u32, u32)>,
    /// Work dir relative to the root, without leading slash.
    pub work_dir: Option<String>,
}

/// Encode the `extensions` file.
pub fn encode_extensions(names: &[String]) -> String {
    let mut s = String::new();
    for n in names {
        s.push_str(n);
        s.push('\n');
    }
    s
}

/// Decode the `extensions` file (one name per line, empty lines dropped). As systemd's
/// `strv_split_newlines()`, both `\n` and `\r` separate names.
pub fn decode_extensions(text: &str) -> Vec<String> {
    text.split(['\n', '\r'])
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Encode the `dev` file.
pub fn encode_dev(major: u32, minor: u32) -> String {
    format!("{major}:{minor}\n")
}

/// Decode the first line of the `dev` file.
pub fn decode_dev(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().next()?.trim();
    let (a, b) = line.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// C-escape a string the way systemd's `cescape` does.
pub fn cescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'\x07' => out.push_str("\\a"),
            b'\x08' => out.push_str("\\b"),
            b'\x0c' => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'\x0b' => out.push_str("\\v"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(b as char),
            // Any other byte in octal, as systemd (and glib's g_strescape) write it.
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    // Multi-byte UTF-8 sequences were escaped byte by byte above; that is what
    // systemd does too (cescape works on bytes).
    out
}

/// Undo [`cescape`]. Returns `None` on a malformed escape, and on a NUL, escaped or not:
/// systemd's `cunescape()` works on C strings, no NUL goes in or comes out.
pub fn cunescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            return None;
        }
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1)?;
        i += 2;
        let v = match c {
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'\\' | b'"' | b'\'' | b'?' => c,
            b's' => b' ',
            b'x' => {
                let h = b.get(i..i + 2)?;
                if !h.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                i += 2;
                u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?
            }
            b'0'..=b'7' => {
                let o = std::str::from_utf8(b.get(i - 1..i + 2)?).ok()?;
                i += 2;
                u8::from_str_radix(o, 8).ok()?
            }
            _ => return None,
        };
        if v == 0 {
            return None;
        }
        out.push(v);
    }
    String::from_utf8(out).ok()
}

/// Encode the `work_dir` file.
pub fn encode_work_dir(rel: &str) -> String {
    format!("{}\n", cescape(rel.trim_start_matches('/')))
}

/// Decode the `work_dir` file: its first line, unescaped. As systemd's
/// `read_one_line_file()`, the line ends at the first `\n`, `\r` or NUL (so a `\r\n` ends
/// it too) and nothing else is stripped: a name ending in a space or tab (which
/// [`cescape`] leaves as it is) survives the round trip.
pub fn decode_work_dir(text: &str) -> Option<String> {
    let line = text.split(['\n', '\r', '\0']).next()?;
    if line.is_empty() {
        return None;
    }
    cunescape(line)
}

/// Whether a `work_dir` value is well-formed as systemd 262 requires: relative and
/// normalized (no `.`, `..` or empty components). 262 refuses to unmerge a hierarchy whose
/// meta dir says otherwise.
pub fn work_dir_is_well_formed(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Whether the work dir named by the meta dir of hierarchy `hier` (root-relative, `usr`)
/// may be removed: well-formed and named as a work dir of that hierarchy
/// (`…/.systemd-<h>-workdir`). Anything else is never deleted: the meta dir's files can be
/// shadowed from the upper layer, so their content is not to be trusted with `rm -rf`.
pub fn work_dir_removable(rel: &str, hier: &str) -> bool {
    let name = format!(
        ".systemd-{}-workdir",
        hier.trim_matches('/').replace('/', ".")
    );
    work_dir_is_well_formed(rel) && rel.rsplit('/').next() == Some(name.as_str())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_relative_clean_workdir_of_the_hierarchy_is_removable() {
        use super::*;
        for ok in [
            "var/lib/extensions.mutable/.systemd-usr-workdir",
            ".systemd-usr-workdir",
            "var/other/.systemd-usr-workdir",
        ] {
            assert!(work_dir_removable(ok, "usr"), "{ok}");
        }
        for bad in [
            "/var/lib/extensions.mutable/.systemd-usr-workdir",
            "var/lib/../lib/extensions.mutable/.systemd-usr-workdir",
            "var/./.systemd-usr-workdir",
            "var//.systemd-usr-workdir",
            "srv/victim",
            "var/lib/extensions.mutable/.systemd-opt-workdir",
            "",
        ] {
            assert!(!work_dir_removable(bad, "usr"), "{bad}");
        }
        assert!(work_dir_removable(
            "x/.systemd-usr.local-workdir",
            "usr/local"
        ));
        assert!(work_dir_is_well_formed("srv/victim"));
        assert!(!work_dir_is_well_formed("/srv/victim"));
        assert!(!work_dir_is_well_formed("../srv"));
    }

    use super::*;

    #[test]
    fn dev_round_trip() {
        assert_eq!(encode_dev(0, 45), "0:45\n");
        assert_eq!(decode_dev("0:45\n"), Some((0, 45)));
        assert_eq!(decode_dev("garbage"), None);
        assert_eq!(decode_dev("1:x"), None);
        assert_eq!(decode_dev(""), None);
    }

    #[test]
    fn extensions_round_trip() {
        let n = vec!["bar".to_string(), "foo".to_string()];
        assert_eq!(encode_extensions(&n), "bar\nfoo\n");
        assert_eq!(decode_extensions("bar\nfoo\n"), n);
        // CR separates names too (systemd's NEWLINE is "\n\r"), also on a last line without
        // a line break, so decoding is stable through the encoder (found by fuzzing).
        assert_eq!(decode_extensions("bar\r\n\nfoo\r"), n);
        assert_eq!(decode_extensions("bar\rfoo"), n);
        assert_eq!(
            decode_extensions(&encode_extensions(&decode_extensions("bar\r"))),
            ["bar"]
        );
    }

    #[test]
    fn cescape_round_trips_and_cunescape_refuses_nul() {
        for s in [
            "var/lib/extensions.mutable/.systemd-usr-workdir",
            "a b",
            "tab\there",
            "q'\"\\",
            "ünï",
        ] {
            assert_eq!(cunescape(&cescape(s)).as_deref(), Some(s), "{s}");
        }
        assert_eq!(encode_work_dir("/var/x"), "var/x\n");
        assert_eq!(
            decode_work_dir(".systemd-opt-workdir\n").as_deref(),
            Some(".systemd-opt-workdir")
        );
        assert_eq!(cunescape("\\101"), Some("A".into()));
        assert_eq!(cunescape("bad\\"), None);
        // No NUL comes out, escaped or raw (found by the meta fuzz target: a raw NUL in the
        // note's `ephemeral=` gave a path that no longer round-trips).
        assert_eq!(cunescape("a\\x00"), None);
        assert_eq!(cunescape("a\0b"), None);
    }

    #[test]
    fn control_characters_and_quotes_escape_as_systemds_cescape_writes_them() {
        // Each in its short form (not as \xNN), as systemd writes them into the work dir file.
        assert_eq!(
            cescape("\x07\x08\x0c\n\r\t\x0b\\\"'"),
            "\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\\'"
        );
        // Every other byte outside printable ASCII in octal (systemd's cescape_char()), also
        // each byte of a multi-byte UTF-8 character.
        assert_eq!(cescape("\x01\x1f~\x7f\u{e9}"), "\\001\\037~\\177\\303\\251");
        assert_eq!(cunescape("\\303\\251\\x41").as_deref(), Some("\u{e9}A"));
        // ... and each short form is read back, also where systemd writes the long one.
        assert_eq!(
            cunescape("\\a\\b\\f\\n\\r\\t\\v\\s\\?").as_deref(),
            Some("\x07\x08\x0c\n\r\t\x0b ?")
        );
        // Octal escapes after other text: three digits, whatever comes before or after.
        assert_eq!(cunescape("ab\\101cd\\102").as_deref(), Some("abAcdB"));
        assert_eq!(cunescape("xyz\\1017").as_deref(), Some("xyzA7"));
        assert_eq!(cunescape("xyz\\10"), None);
        // Hex escapes likewise: two digits, with text before and after.
        assert_eq!(cunescape("a\\x41b\\x42c").as_deref(), Some("aAbBc"));
        assert_eq!(cunescape("a\\x4"), None);
        assert_eq!(cunescape("a\\x4g"), None);
    }

    #[test]
    fn work_dir_trailing_whitespace_round_trips() {
        // cescape leaves spaces as they are (and a tab becomes `\t`): only the line ending
        // may be stripped when decoding, not the whitespace before it.
        for s in [
            "var/lib/extensions.mutable/.systemd-usr-workdir ",
            "x/y  ",
            "x/y\t",
            "x/y \t ",
            " leading and trailing ",
            "   ",
        ] {
            let enc = encode_work_dir(s);
            assert_eq!(decode_work_dir(&enc).as_deref(), Some(s), "{enc:?}");
            // As written by systemd (`\n`), and with DOS or no line ending.
            let line = enc.strip_suffix('\n').unwrap();
            for text in [
                format!("{line}\r\n"),
                line.to_string(),
                format!("{line}\nrest\n"),
            ] {
                assert_eq!(decode_work_dir(&text).as_deref(), Some(s), "{text:?}");
            }
        }
        // The line ends at the first CR or NUL too, as in systemd's read_line().
        assert_eq!(decode_work_dir("a b\rc\n").as_deref(), Some("a b"));
        assert_eq!(decode_work_dir("a b\0c").as_deref(), Some("a b"));
        assert_eq!(decode_work_dir("\n"), None);
        assert_eq!(decode_work_dir(""), None);
    }
}
