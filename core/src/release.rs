//! Parser for `os-release` and `extension-release` files.
//!
//! Release files use systemd's "environment file" dialect, which looks like shell
//! assignments but is parsed by a small state machine of its own.  This module
//! reproduces that state machine exactly, because whether an extension is merged
//! depends on byte-exact values (an `ID=_any # comment` line yields the value
//! `_any # comment`, not `_any`).
//!
//! Summary of the dialect:
//!
//! * Whitespace is space, tab, CR and LF; both LF and CR end a line.
//! * `#` and `;` start a comment only when they are the first non-blank character of
//!   a line.  A comment never continues onto the next line.
//! * The key is everything before `=`, with trailing blanks removed.  A line without
//!   `=` is ignored (and does not reset an earlier value of that key).
//! * After `=`, leading blanks are skipped.  The value then consists of segments:
//!   single-quoted (literal), double-quoted (backslash only escapes `"` `\` `` ` ``
//!   `$` and a newline; other backslashes are kept), or unquoted (backslash escapes
//!   any character; backslash-newline continues the line; trailing blanks dropped).
//!   Quotes only open a segment at the start of the value or right after a closing
//!   quote; blanks after a closing quote are skipped.
//! * The last assignment of a key wins.  There is no variable expansion.
//! * Invalid UTF-8 or a NUL byte anywhere rejects the whole file.
//! * A UTF-8 byte-order mark is not stripped: it becomes part of the first key.

use std::collections::HashMap;

/// Why a release file could not be parsed at all.
///
/// Any of these makes the whole file unusable; systemd then treats the image as
/// carrying no release data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file is not valid UTF-8; `offset` is the byte offset of the first bad byte.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first byte that is not part of valid UTF-8.
        offset: usize,
    },
    /// The file contains a NUL byte at byte `offset`.
    #[error("NUL byte at byte {offset}")]
    NulByte {
        /// Byte offset of the first NUL byte.
        offset: usize,
    },
    /// The file assigns more than [`MAX_KEYS`] distinct keys (a real release file has a few
    /// dozen): refused, so that the memory of parsing stays small.
    #[error("more than {max} distinct keys")]
    TooManyKeys {
        /// The limit, [`MAX_KEYS`].
        max: usize,
    },
}

/// The most distinct keys [`parse`] and [`parse_str`] accept in one file. Each key costs
/// about 150 bytes of memory beyond its text, so this bounds parsing to about 0.6 MiB
/// beside the file itself; release files in the wild have a few dozen keys.
pub const MAX_KEYS: usize = 4096;

/// The key/value pairs of a parsed release file.
///
/// Keys keep the order of their first appearance; assigning a key again replaces its
/// value in place (the later assignment wins).  Keys are case-sensitive and values
/// are stored exactly as parsed (an assignment with an empty value stores `""`).
#[derive(Debug, Clone, Default)]
pub struct ReleaseData {
    entries: Vec<(String, String)>,
    /// Key positions, kept only once there are more than [`INDEX_FROM`] keys: a release file
    /// has a handful, found faster by a look along `entries` than by hashing.
    index: HashMap<String, usize>,
}

/// From this many keys on, [`ReleaseData`] indexes them.
const INDEX_FROM: usize = 24;

impl PartialEq for ReleaseData {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for ReleaseData {}

impl ReleaseData {
    /// Whether the extension asks for a reload of the service manager after it is merged,
    /// refreshed or unmerged (`EXTENSION_RELOAD_MANAGER=` true, as [`parse_bool`] reads it).
    pub fn asks_manager_reload(&self) -> bool {
        self.get("EXTENSION_RELOAD_MANAGER").and_then(parse_bool) == Some(true)
    }

    /// An empty set of release data.
    pub fn new() -> ReleaseData {
        ReleaseData::default()
    }

    fn position(&self, key: &str) -> Option<usize> {
        if self.index.is_empty() {
            self.entries.iter().position(|(k, _)| k == key)
        } else {
            self.index.get(key).copied()
        }
    }

    /// The value of `key`, if the file assigned it (possibly the empty string).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.entries[i].1.as_str())
    }

    /// The value of `key` if it is assigned a non-empty value.
    ///
    /// systemd treats an empty value like an absent key in most checks.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Whether no key was assigned at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The pairs in order of first appearance of each key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Assigns `value` to `key`; an existing key keeps its position and gets the new value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Some(i) => self.entries[i].1 = value,
            None => {
                let i = self.entries.len();
                if !self.index.is_empty() {
                    self.index.insert(key.clone(), i);
                }
                self.entries.push((key, value));
                if self.index.is_empty() && self.entries.len() > INDEX_FROM {
                    self.index = self
                        .entries
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect();
                }
            }
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ReleaseData {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut data = ReleaseData::new();
        for (k, v) in iter {
            data.insert(k, v);
        }
        data
    }
}

/// Parses the raw bytes of a release file.
///
/// Fails if the bytes are not valid UTF-8 or contain a NUL byte anywhere (the error
/// reports whichever problem comes first); otherwise behaves like [`parse_str`].
pub fn parse(bytes: &[u8]) -> Result<ReleaseData, ParseError> {
    parse_keeping(bytes, None)
}

/// [`parse`], keeping only the assignments of `keys` (all others are read and dropped, so
/// the result holds at most `keys.len()` entries whatever the file holds; no
/// [`ParseError::TooManyKeys`]). For files of which a fixed set of keys matters, such as
/// the host's os-release.
pub fn parse_only(bytes: &[u8], keys: &[&str]) -> Result<ReleaseData, ParseError> {
    parse_keeping(bytes, Some(keys))
}

fn parse_keeping(bytes: &[u8], keep: Option<&[&str]>) -> Result<ReleaseData, ParseError> {
    let nul = bytes.iter().position(|&b| b == 0);
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_text(text, keep),
        Err(e) => {
            let bad = e.valid_up_to();
            match nul {
                Some(n) if n < bad => Err(ParseError::NulByte { offset: n }),
                _ => Err(ParseError::InvalidUtf8 { offset: bad }),
            }
        }
    }
}

/// Parser states of the env-file state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a line, skipping blanks.
    LineStart,
    /// Inside a key, before `=`.
    Key,
    /// After `=` or after a closing quote, skipping blanks.
    ValueStart,
    /// Inside an unquoted segment.
    Bare,
    /// After a backslash in an unquoted segment (or at the start of the value).
    BareBackslash,
    /// Inside `'…'`.
    Single,
    /// Inside `"…"`.
    Double,
    /// After a backslash inside `"…"`.
    DoubleBackslash,
    /// Inside a comment line.
    Comment,
    /// After a backslash inside a comment line.
    CommentBackslash,
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_newline(c: char) -> bool {
    matches!(c, '\n' | '\r')
}

/// Accumulates one assignment while it is being parsed.
#[derive(Default)]
struct Pending {
    key: String,
    /// Byte length of `key` before its trailing run of blanks, if it has one.
    key_trim: Option<usize>,
    value: String,
    /// Byte length of `value` before the trailing run of blanks of the final
    /// unquoted segment, if there is one.
    value_trim: Option<usize>,
}

/// Where parsed assignments go: all of them (up to [`MAX_KEYS`] distinct keys), or only
/// those of a list of keys.
struct Out<'k> {
    data: ReleaseData,
    keep: Option<&'k [&'k str]>,
}

impl Out<'_> {
    fn put(&mut self, key: String, value: String) -> Result<(), ParseError> {
        match self.keep {
            Some(keys) if !keys.contains(&key.as_str()) => return Ok(()),
            Some(_) => {}
            None if self.data.len() >= MAX_KEYS && self.data.get(&key).is_none() => {
                return Err(ParseError::TooManyKeys { max: MAX_KEYS })
            }
            None => {}
        }
        self.data.insert(key, value);
        Ok(())
    }
}

impl Pending {
    fn commit(&mut self, out: &mut Out<'_>, chomp_value: bool) -> Result<(), ParseError> {
        let mut key = std::mem::take(&mut self.key);
        let mut value = std::mem::take(&mut self.value);
        if let Some(n) = self.key_trim.take() {
            key.truncate(n);
        }
        if let Some(n) = self.value_trim.take() {
            if chomp_value {
                value.truncate(n);
            }
        }
        out.put(key, value)
    }
}

/// Parses the text of a release file.
///
/// Fails only if the text contains a NUL character or more than [`MAX_KEYS`] distinct
/// keys.  Lines that are not assignments are ignored silently.
pub fn parse_str(text: &str) -> Result<ReleaseData, ParseError> {
    parse_text(text, None)
}

fn parse_text(text: &str, keep: Option<&[&str]>) -> Result<ReleaseData, ParseError> {
    if let Some(offset) = text.find('\0') {
        return Err(ParseError::NulByte { offset });
    }
    let mut out = Out {
        data: ReleaseData::new(),
        keep,
    };
    // Most lines are plain `KEY=value` (or empty, or comments): taken whole. From the first
    // other line on, the state machine reads the rest; it starts at a line start, where
    // every line taken whole leaves it.
    let mut rest = text;
    while !rest.is_empty() {
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        match plain_line(line) {
            Some(Some((key, value))) => out.put(key.to_string(), value.to_string())?,
            Some(None) => {}
            None => break,
        }
        rest = next;
    }
    machine(rest, out)
}

/// A line (without its LF) the state machine would read as exactly one assignment of its
/// text before and after the first `=`: `Some(Some((key, value)))`; as nothing (empty, or a
/// comment): `Some(None)`; `None` for any other line (blanks, quotes, backslashes, CRs).
fn plain_line(line: &str) -> Option<Option<(&str, &str)>> {
    let b = line.as_bytes();
    match b.first() {
        None => return Some(None),
        Some(b'#') | Some(b';') if !b.contains(&b'\r') => return Some(None),
        _ => {}
    }
    let eq = b.iter().position(|&c| c == b'=')?;
    let special = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\\' | b'\'' | b'"');
    if eq == 0 || b[..eq].iter().any(special) || b[eq + 1..].iter().any(special) {
        return None;
    }
    Some(Some((&line[..eq], &line[eq + 1..])))
}

/// The env-file state machine over `text`, which starts at a line start, adding to `out`.
fn machine(text: &str, mut out: Out<'_>) -> Result<ReleaseData, ParseError> {
    let mut cur = Pending::default();
    let mut state = State::LineStart;

    for c in text.chars() {
        state = match state {
            State::LineStart => line_start(c, &mut cur),
            State::Key => in_key(c, &mut cur),
            State::ValueStart => value_start(c, &mut cur, &mut out)?,
            State::Bare => in_bare(c, &mut cur, &mut out)?,
            State::BareBackslash => bare_escape(c, &mut cur),
            State::Single => in_single(c, &mut cur),
            State::Double => in_double(c, &mut cur),
            State::DoubleBackslash => double_escape(c, &mut cur),
            State::Comment => in_comment(c),
            State::CommentBackslash => comment_escape(c),
        };
    }

    match state {
        State::ValueStart
        | State::Bare
        | State::BareBackslash
        | State::Single
        | State::Double
        | State::DoubleBackslash => cur.commit(&mut out, state == State::Bare)?,
        State::LineStart | State::Key | State::Comment | State::CommentBackslash => {}
    }

    Ok(out.data)
}

/// At the start of a line: a comment, blanks, or the first character of a key.
fn line_start(c: char, cur: &mut Pending) -> State {
    if c == '#' || c == ';' {
        State::Comment
    } else if is_blank(c) {
        State::LineStart
    } else {
        cur.key.clear();
        cur.key_trim = None;
        cur.key.push(c);
        State::Key
    }
}

/// In a key: up to `=` (a line without one is forgotten); trailing blanks are noted.
fn in_key(c: char, cur: &mut Pending) -> State {
    if is_newline(c) {
        // No `=` on this line: forget the key.
        cur.key.clear();
        cur.key_trim = None;
        State::LineStart
    } else if c == '=' {
        cur.value.clear();
        cur.value_trim = None;
        State::ValueStart
    } else {
        if !is_blank(c) {
            cur.key_trim = None;
        } else if cur.key_trim.is_none() {
            cur.key_trim = Some(cur.key.len());
        }
        cur.key.push(c);
        State::Key
    }
}

/// After `=` or a closing quote: a quote, an escape, blanks, or bare text; a line break
/// ends the value.
fn value_start(c: char, cur: &mut Pending, out: &mut Out<'_>) -> Result<State, ParseError> {
    Ok(if is_newline(c) {
        cur.commit(out, false)?;
        State::LineStart
    } else if c == '\'' {
        State::Single
    } else if c == '"' {
        State::Double
    } else if c == '\\' {
        State::BareBackslash
    } else if is_blank(c) {
        State::ValueStart
    } else {
        cur.value.push(c);
        State::Bare
    })
}

/// In bare text: trailing blanks are noted (and trimmed when the line ends), `\` escapes.
fn in_bare(c: char, cur: &mut Pending, out: &mut Out<'_>) -> Result<State, ParseError> {
    Ok(if is_newline(c) {
        cur.commit(out, true)?;
        State::LineStart
    } else if c == '\\' {
        cur.value_trim = None;
        State::BareBackslash
    } else {
        if !is_blank(c) {
            cur.value_trim = None;
        } else if cur.value_trim.is_none() {
            cur.value_trim = Some(cur.value.len());
        }
        cur.value.push(c);
        State::Bare
    })
}

/// After `\` in bare text.
fn bare_escape(c: char, cur: &mut Pending) -> State {
    // An escaped line break is a continuation and disappears entirely;
    // any other character is taken literally (and is never trimmed).
    if !is_newline(c) {
        cur.value.push(c);
    }
    State::Bare
}

/// Inside single quotes: everything literal up to the closing quote.
fn in_single(c: char, cur: &mut Pending) -> State {
    if c == '\'' {
        State::ValueStart
    } else {
        cur.value.push(c);
        State::Single
    }
}

/// Inside double quotes: up to the closing quote, `\` escapes.
fn in_double(c: char, cur: &mut Pending) -> State {
    if c == '"' {
        State::ValueStart
    } else if c == '\\' {
        State::DoubleBackslash
    } else {
        cur.value.push(c);
        State::Double
    }
}

/// After `\` inside double quotes.
fn double_escape(c: char, cur: &mut Pending) -> State {
    if matches!(c, '"' | '\\' | '`' | '$') {
        cur.value.push(c);
    } else if c != '\n' {
        // Like the shell, keep the backslash of an unknown escape.  Only an
        // LF (not a CR) forms a continuation here, as in systemd.
        cur.value.push('\\');
        cur.value.push(c);
    }
    State::Double
}

/// In a comment, up to the end of the line.
fn in_comment(c: char) -> State {
    if c == '\\' {
        State::CommentBackslash
    } else if is_newline(c) {
        State::LineStart
    } else {
        State::Comment
    }
}

/// After `\` in a comment.
fn comment_escape(c: char) -> State {
    // The escaped character is swallowed, but an escaped line break still
    // ends the comment (systemd >= 254).
    if is_newline(c) {
        State::LineStart
    } else {
        State::Comment
    }
}

/// Units an extension asks to have restarted and reloaded-or-restarted after it is merged,
/// refreshed or unmerged (`EXTENSION_RESTART_UNITS=`, `EXTENSION_RELOAD_OR_RESTART_UNITS=`,
/// whitespace-separated unit names; systemd 259).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitRequests {
    /// `EXTENSION_RESTART_UNITS=`.
    pub restart: Vec<String>,
    /// `EXTENSION_RELOAD_OR_RESTART_UNITS=`, minus those also to be restarted.
    pub reload_or_restart: Vec<String>,
}

impl UnitRequests {
    /// Add what one extension's release data asks for (each unit once; a unit in both lists
    /// is restarted).
    pub fn add(&mut self, data: &ReleaseData) {
        for (key, list) in [
            ("EXTENSION_RESTART_UNITS", &mut self.restart),
            (
                "EXTENSION_RELOAD_OR_RESTART_UNITS",
                &mut self.reload_or_restart,
            ),
        ] {
            for u in data.get(key).unwrap_or("").split_whitespace() {
                if !list.iter().any(|x| x == u) {
                    list.push(u.to_string());
                }
            }
        }
        let restart = &self.restart;
        self.reload_or_restart.retain(|u| !restart.contains(u));
    }

    /// Whether no unit is asked for.
    pub fn is_empty(&self) -> bool {
        self.restart.is_empty() && self.reload_or_restart.is_empty()
    }
}

/// Quotes a value for a release file: double quotes, with `"`, `\`, `` ` `` and `$` escaped,
/// so that [`parse_str`] reads `KEY=<quoted>` back as exactly `v` (line breaks included).
///
/// ```
/// let line = format!("VERSION={}\n", sysext::release::quote("1 \"beta\""));
/// assert_eq!(line, "VERSION=\"1 \\\"beta\\\"\"\n");
/// assert_eq!(sysext::release::parse_str(&line).unwrap().get("VERSION"), Some("1 \"beta\""));
/// ```
pub fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '`' | '$') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Parses a boolean the way systemd's `parse_boolean()` does.
///
/// Accepts (ASCII case-insensitively) `1`, `yes`, `y`, `true`, `t`, `on` as true and
/// `0`, `no`, `n`, `false`, `f`, `off` as false; anything else (including the empty
/// string and values with surrounding blanks) gives `None`.
pub fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: &[&str] = &["1", "yes", "y", "true", "t", "on"];
    const FALSE: &[&str] = &["0", "no", "n", "false", "f", "off"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(s)) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_str(text)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn many_keys_are_indexed_and_reassigned_in_place() {
        // Past INDEX_FROM keys lookups go through the index: the same answers.
        let mut text: String = (0..100).map(|i| format!("K{i}=v{i}\n")).collect();
        text.push_str("K5=again\nK90=late\n");
        let d = parse_str(&text).unwrap();
        assert_eq!(d.len(), 100);
        assert_eq!(d.get("K5"), Some("again"));
        assert_eq!(d.get("K90"), Some("late"));
        assert_eq!(d.get("K99"), Some("v99"));
        assert_eq!(d.get("K100"), None);
        let keys: Vec<&str> = d.iter().map(|(k, _)| k).collect();
        assert_eq!(keys[5], "K5");
        assert_eq!(keys[90], "K90");
        let small = parse_str("A=1\nB=2\nA=3\n").unwrap();
        assert_eq!(small.get("A"), Some("3"));
        assert_eq!(small.iter().next(), Some(("A", "3")));
    }

    #[test]
    fn the_index_is_built_once_past_index_from_keys_and_kept_up_to_date() {
        let mut d = ReleaseData::new();
        for i in 0..INDEX_FROM {
            d.insert(format!("K{i}"), "v");
        }
        assert!(
            d.index.is_empty(),
            "{} keys are looked up along the entries",
            INDEX_FROM
        );
        d.insert("K0", "again");
        assert!(d.index.is_empty(), "a reassignment adds no key");
        d.insert("ONE_MORE", "v");
        assert_eq!(d.index.len(), INDEX_FROM + 1);
        d.insert("AND_ANOTHER", "w");
        assert_eq!(d.index.get("AND_ANOTHER"), Some(&(INDEX_FROM + 1)));
        assert_eq!(d.get("AND_ANOTHER"), Some("w"));
        assert_eq!(d.get("K0"), Some("again"));
    }

    #[test]
    fn plain_lines_are_taken_whole_and_others_left_to_the_state_machine() {
        assert_eq!(plain_line(""), Some(None));
        assert_eq!(plain_line("# a comment"), Some(None));
        assert_eq!(plain_line("; a comment"), Some(None));
        assert_eq!(plain_line("ID=debian"), Some(Some(("ID", "debian"))));
        assert_eq!(plain_line("A=b=c"), Some(Some(("A", "b=c"))));
        assert_eq!(plain_line("EMPTY="), Some(Some(("EMPTY", ""))));
        for other in [
            "=x",
            "no assignment",
            "ID = debian",
            "ID=\"debian\"",
            "ID='debian'",
            "ID=deb\\ian",
            "ID=debian\r",
            "#comment\r",
            " ID=debian",
        ] {
            assert_eq!(plain_line(other), None, "{other:?}");
        }
    }

    #[test]
    fn more_than_max_keys_is_refused_and_reassignments_do_not_count() {
        let at_limit: String = (0..MAX_KEYS).map(|i| format!("K{i}=v\n")).collect();
        let d = parse_str(&at_limit).unwrap();
        assert_eq!(d.len(), MAX_KEYS);
        // Assigning a known key again past the limit is fine; a new key is not.
        let again = format!("{at_limit}K7=w\n");
        assert_eq!(parse_str(&again).unwrap().get("K7"), Some("w"));
        let over = format!("{at_limit}NEW=x\n");
        assert_eq!(
            parse(over.as_bytes()),
            Err(ParseError::TooManyKeys { max: MAX_KEYS })
        );
        // Also through the state machine (quoted values).
        let quoted: String = (0..=MAX_KEYS).map(|i| format!("K{i}='v'\n")).collect();
        assert_eq!(
            parse_str(&quoted),
            Err(ParseError::TooManyKeys { max: MAX_KEYS })
        );
        assert!(ParseError::TooManyKeys { max: MAX_KEYS }
            .to_string()
            .contains("4096 distinct keys"));
    }

    #[test]
    fn parse_only_keeps_the_listed_keys_whatever_the_file_holds() {
        // 200,000 keys (far past MAX_KEYS), the wanted ones among them, one reassigned
        // at the end through the state machine.
        let mut text: String = (0..200_000).map(|i| format!("K{i}=v{i}\n")).collect();
        text.insert_str(0, "ID=debian\nVERSION_ID=12\n");
        text.push_str("VERSION_ID='13'\n");
        let d = parse_only(text.as_bytes(), &["ID", "VERSION_ID", "ID_LIKE"]).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get("ID"), Some("debian"));
        assert_eq!(d.get("VERSION_ID"), Some("13"));
        assert_eq!(d.get("K5"), None);
        // The same file parsed whole is refused.
        assert!(matches!(
            parse(text.as_bytes()),
            Err(ParseError::TooManyKeys { .. })
        ));
        // Invalid bytes still reject the file.
        assert!(matches!(
            parse_only(b"ID=a\nX=\xff\n", &["ID"]),
            Err(ParseError::InvalidUtf8 { .. })
        ));
    }

    fn id_of(text: &str) -> Option<String> {
        parse_str(text).unwrap().get("ID").map(str::to_owned)
    }

    /// Every example of spec §3.2 "Observed": the files that make an extension with
    /// `ID=_any` merge, i.e. that yield exactly `ID` = `_any`.
    #[test]
    fn observed_merged_cases_give_any() {
        let cases: &[&str] = &[
            "ID='_any'\n",
            "ID=_any   \n",
            "  ID = _any\n",
            "# ID=x\nID=_any\n",
            "; comment\nID=_any\n",
            "ID=\"_a\"ny\n",
            "ID=other\nID=_any\n",
            "ID=_a\\\nny\n",
            "ID=\"_a\\\nny\"\n",
            "garbage line\nID=_any\n",
            "ID=_any\r\n",
            "FOO=bar\r\nID=_any\r\nBAR=baz\r\n",
            "ID=\"_any",
            "ID=\\_any\n",
            "ID=_any",
        ];
        for text in cases {
            assert_eq!(id_of(text).as_deref(), Some("_any"), "input {text:?}");
        }
    }

    /// Every "Ignored" example of spec §3.2, with the exact value systemd sees.
    #[test]
    fn observed_ignored_cases_give_the_value_systemd_sees() {
        let cases: &[(&str, Option<&str>)] = &[
            ("ID=\"_any\"  # c\n", Some("_any# c")),
            ("ID=_a\"ny\"\n", Some("_a\"ny\"")),
            ("ID=_any\nID=other\n", Some("other")),
            ("ID=\"\\_any\"\n", Some("\\_any")),
            ("ID=_any # trailing\n", Some("_any # trailing")),
            ("id=_any\n", None),
            ("export ID=_any\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(id_of(text).as_deref(), *want, "input {text:?}");
        }
        let data = parse_str("export ID=_any\n").unwrap();
        assert_eq!(data.get("export ID"), Some("_any"));
        let data = parse_str("id=_any\n").unwrap();
        assert_eq!(data.get("id"), Some("_any"));
    }

    #[test]
    fn invalid_utf8_rejects_whole_file() {
        assert_eq!(
            parse(b"FOO=\xff\nID=_any\n"),
            Err(ParseError::InvalidUtf8 { offset: 4 })
        );
        assert_eq!(
            parse(b"ID=_any\n# comment \xc3\n"),
            Err(ParseError::InvalidUtf8 { offset: 18 })
        );
        assert_eq!(
            ParseError::InvalidUtf8 { offset: 12 }.to_string(),
            "invalid UTF-8 at byte 12"
        );
    }

    #[test]
    fn nul_rejects_whole_file() {
        assert_eq!(parse(b"ID=\0x"), Err(ParseError::NulByte { offset: 3 }));
        assert_eq!(
            parse(b"ID=x\n#\0\n"),
            Err(ParseError::NulByte { offset: 6 })
        );
        assert_eq!(parse_str("A=1\n\0"), Err(ParseError::NulByte { offset: 4 }));
        // Whichever comes first is reported.
        assert_eq!(parse(b"A\0=\xff"), Err(ParseError::NulByte { offset: 1 }));
        assert_eq!(
            parse(b"A\xff=\0"),
            Err(ParseError::InvalidUtf8 { offset: 1 })
        );
        assert_eq!(
            ParseError::NulByte { offset: 3 }.to_string(),
            "NUL byte at byte 3"
        );
    }

    #[test]
    fn parse_accepts_utf8_bytes_and_empty_input() {
        let d = parse("ID=caf\u{e9}\n".as_bytes()).unwrap();
        assert_eq!(d.get("ID"), Some("caf\u{e9}"));
        assert!(parse(b"").unwrap().is_empty());
    }

    /// Table of (input, expected key/value pairs in order).
    #[test]
    fn release_files_parse_as_systemds_env_file_dialect() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            // empty and blank inputs
            ("", &[]),
            ("\n\n  \t\r\n", &[]),
            // basic
            ("A=1\nB=2\n", &[("A", "1"), ("B", "2")]),
            ("A=1\rB=2", &[("A", "1"), ("B", "2")]),
            // duplicates: later wins, position of first appearance kept
            ("A=1\nB=2\nA=3\n", &[("A", "3"), ("B", "2")]),
            // a bare key does not reset an earlier value
            ("A=1\nA\n", &[("A", "1")]),
            // empty values
            ("A=\n", &[("A", "")]),
            ("A=", &[("A", "")]),
            ("A=   \n", &[("A", "")]),
            ("A=''\n", &[("A", "")]),
            ("A=\"\"", &[("A", "")]),
            // key trimming; inner blanks in keys are kept
            ("A \t = x\n", &[("A", "x")]),
            ("A B=x\n", &[("A B", "x")]),
            ("\tA=x\n", &[("A", "x")]),
            // keys are case-sensitive
            ("a=1\nA=2\n", &[("a", "1"), ("A", "2")]),
            // `=x` has no key: `=` starts the key, then the line ends
            ("=x\nB=1\n", &[("B", "1")]),
            ("=x=y\n", &[("=x", "y")]),
            // line without `=`
            ("garbage\nB=1", &[("B", "1")]),
            ("garbage", &[]),
            // comments
            ("#A=1\n", &[]),
            (";A=1\n", &[]),
            ("   # A=1\nB=2\n", &[("B", "2")]),
            ("A=x#y\n", &[("A", "x#y")]),
            ("A=#y\n", &[("A", "#y")]),
            ("A#=1\n", &[("A#", "1")]),
            // backslash-newline does not continue a comment
            ("# comment \\\nA=1\n", &[("A", "1")]),
            ("# comment \\\rA=1\n", &[("A", "1")]),
            ("# comment \\\\\nA=1\n", &[("A", "1")]),
            ("# a\\x\nA=1", &[("A", "1")]),
            // a comment ends at CR too
            ("#x\rA=1", &[("A", "1")]),
            // value leading blanks skipped, inner kept, trailing dropped
            ("A=  a  b  \n", &[("A", "a  b")]),
            ("A=a\t\n", &[("A", "a")]),
            ("A=a \r\n", &[("A", "a")]),
            // single quotes are literal
            ("A='a\\b \"c\" $d'\n", &[("A", "a\\b \"c\" $d")]),
            ("A='  x  '\n", &[("A", "  x  ")]),
            ("A='a\nb'\n", &[("A", "a\nb")]),
            // double quotes
            ("A=\"a b\"\n", &[("A", "a b")]),
            ("A=\"\\\"\\\\\\`\\$\"\n", &[("A", "\"\\`$")]),
            ("A=\"\\n\\t\\x\"\n", &[("A", "\\n\\t\\x")]),
            ("A=\"a\\\nb\"\n", &[("A", "ab")]),
            ("A=\"a\nb\"\n", &[("A", "a\nb")]),
            ("A=\"a\\'b\"\n", &[("A", "a\\'b")]),
            ("A=\"'\"\n", &[("A", "'")]),
            // backslash-CR inside double quotes is kept (only LF continues)
            ("A=\"a\\\rb\"", &[("A", "a\\\rb")]),
            // unquoted escapes
            ("A=a\\ b\n", &[("A", "a b")]),
            ("A=\\ a\n", &[("A", " a")]),
            ("A=a\\ \n", &[("A", "a ")]),
            ("A=a  \\ \n", &[("A", "a   ")]),
            ("A=a\\\\b\n", &[("A", "a\\b")]),
            ("A=a\\\"b\n", &[("A", "a\"b")]),
            ("A=a\\#b\n", &[("A", "a#b")]),
            ("A=\\\"x\"\n", &[("A", "\"x\"")]),
            // backslash-LF and backslash-CR are continuations in unquoted text
            ("A=a\\\nb\n", &[("A", "ab")]),
            ("A=a\\\rb\n", &[("A", "ab")]),
            ("A=\\\nb\n", &[("A", "b")]),
            ("A=\\\n  b\n", &[("A", "  b")]),
            ("A=a\\\nB=1\n", &[("A", "aB=1")]),
            // backslash-CR-LF: CR eaten, LF ends the line
            ("A=a\\\r\nB=1\n", &[("A", "a"), ("B", "1")]),
            // concatenation after a closing quote (blanks skipped)
            ("A=\"x\" 'y'z\n", &[("A", "xyz")]),
            ("A=\"deb\" \"ian\"\n", &[("A", "debian")]),
            ("A='a''b'\n", &[("A", "ab")]),
            ("A=\"a\"'b'\"c\"\n", &[("A", "abc")]),
            ("A='a'  b  c  \n", &[("A", "ab  c")]),
            ("A='a ' b  \n", &[("A", "a b")]),
            ("A=\"a \"  \n", &[("A", "a ")]),
            ("A='x'\\'y'\n", &[("A", "x'y'")]),
            // quotes in the middle of unquoted text are literal
            ("A=x\"y\"\n", &[("A", "x\"y\"")]),
            ("A=x'y\n", &[("A", "x'y")]),
            ("A=x 'y z'\n", &[("A", "x 'y z'")]),
            // unterminated quotes at EOF keep what was read
            ("A=\"abc", &[("A", "abc")]),
            ("A='abc  ", &[("A", "abc  ")]),
            ("A=\"abc\\", &[("A", "abc")]),
            ("A=\"a\nB=1\n", &[("A", "a\nB=1\n")]),
            // trailing backslash at EOF in unquoted text
            ("A=abc\\", &[("A", "abc")]),
            ("A=abc  \\", &[("A", "abc  ")]),
            // EOF without newline chomps the trailing unquoted blanks
            ("A=abc  ", &[("A", "abc")]),
            // key pending at EOF without `=` is dropped
            ("A=1\nB", &[("A", "1")]),
            // BOM is not stripped
            ("\u{feff}ID=x\n", &[("\u{feff}ID", "x")]),
            // multi-byte characters everywhere
            (
                "\u{e9}=\u{263a} \u{1f600}  \n",
                &[("\u{e9}", "\u{263a} \u{1f600}")],
            ),
            // `export` is not understood
            ("export A=1\n", &[("export A", "1")]),
            // no variable expansion
            ("A=1\nB=$A\n", &[("A", "1"), ("B", "$A")]),
            // CRLF files
            ("A=1\r\nB=\"2\"\r\n", &[("A", "1"), ("B", "2")]),
        ];
        for (text, want) in cases {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(pairs(text), want, "input {text:?}");
        }
    }

    #[test]
    fn release_data_keeps_a_keys_first_place_and_last_value() {
        let mut d = ReleaseData::default();
        assert!(d.is_empty());
        assert_eq!(d.len(), 0);
        d.insert("A", "1");
        d.insert("B", "");
        d.insert("A", "2");
        assert_eq!(d.len(), 2);
        assert!(!d.is_empty());
        assert_eq!(d.get("A"), Some("2"));
        assert_eq!(d.get("B"), Some(""));
        assert_eq!(d.get_nonempty("B"), None);
        assert_eq!(d.get_nonempty("A"), Some("2"));
        assert_eq!(d.get("C"), None);
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![("A", "2"), ("B", "")]);
        let e: ReleaseData = [("A", "2"), ("B", "")].into_iter().collect();
        assert_eq!(d, e);
    }

    #[test]
    fn unit_requests_collect_sorted_unique_names() {
        let mut u = UnitRequests::default();
        assert!(u.is_empty());
        u.add(&parse_str("EXTENSION_RESTART_UNITS=\"a.service  b.service\"\nEXTENSION_RELOAD_OR_RESTART_UNITS='b.service c.service a.service'\n").unwrap());
        u.add(&parse_str("EXTENSION_RESTART_UNITS=a.service\nEXTENSION_RELOAD_OR_RESTART_UNITS=d.service c.service\n").unwrap());
        u.add(&parse_str("ID=_any\n").unwrap());
        assert_eq!(u.restart, ["a.service", "b.service"]);
        assert_eq!(u.reload_or_restart, ["c.service", "d.service"]);
        assert!(!u.is_empty());
    }

    #[test]
    fn parse_bool_accepts_only_systemds_boolean_words() {
        let cases: &[(&str, Option<bool>)] = &[
            ("1", Some(true)),
            ("yes", Some(true)),
            ("YES", Some(true)),
            ("y", Some(true)),
            ("Y", Some(true)),
            ("true", Some(true)),
            ("True", Some(true)),
            ("t", Some(true)),
            ("on", Some(true)),
            ("ON", Some(true)),
            ("0", Some(false)),
            ("no", Some(false)),
            ("NO", Some(false)),
            ("n", Some(false)),
            ("false", Some(false)),
            ("f", Some(false)),
            ("off", Some(false)),
            ("Off", Some(false)),
            ("", None),
            ("2", None),
            ("bogus", None),
            (" 1", None),
            ("1 ", None),
            ("yess", None),
            ("maybe", None),
            ("auto", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_bool(s), *want, "input {s:?}");
        }
    }

    /// Escapes `v` (which must not contain CR or LF) as an unquoted value.
    fn escape_bare(v: &str) -> String {
        let mut s = String::new();
        for c in v.chars() {
            s.push('\\');
            s.push(c);
        }
        s
    }

    /// Single-quotes `v` (which must not contain `'`).
    fn quote_single(v: &str) -> String {
        format!("'{v}'")
    }

    #[test]
    fn quote_makes_values_parse_back_exactly() {
        for v in ["", " a b ", "\"$`\\", "x\ny", "'"] {
            let text = format!("K={}\n", quote(v));
            assert_eq!(parse_str(&text).unwrap().get("K"), Some(v), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            let _ = parse_str(&s);
        }

        #[test]
        fn never_panics_on_special_chars(s in "[a=#; \t\r\n'\"\\\\`$x\u{feff}\u{e9}]{0,60}") {
            let _ = parse_str(&s);
        }

        #[test]
        fn whole_lines_read_as_the_state_machine_reads_them(
            lines in proptest::collection::vec(
                "[a=#; \t\r'\"\\\\`$x\u{e9}]{0,12}", 0..8),
            end in "\n?",
        ) {
            let text = lines.join("\n") + &end;
            let fast = parse_str(&text).unwrap();
            let slow = machine(&text, Out { data: ReleaseData::new(), keep: None }).unwrap();
            prop_assert_eq!(
                fast.iter().collect::<Vec<_>>(),
                slow.iter().collect::<Vec<_>>()
            );
        }

        #[test]
        fn never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&b);
        }

        #[test]
        fn double_quoted_round_trip(
            key in "[A-Za-z_][A-Za-z0-9_]{0,12}",
            value in "[^\u{0}]{0,40}",
            junk in "[ \t]{0,3}",
        ) {
            let text = format!("# c\n{key}{junk}={junk}{}{junk}\nOTHER=1\n", quote(&value));
            let data = parse_str(&text).unwrap();
            prop_assert_eq!(data.get(&key), Some(value.as_str()));
        }

        #[test]
        fn bare_escaped_round_trip(
            key in "[A-Za-z_][A-Za-z0-9_]{0,12}",
            value in "[^\u{0}\r\n]{0,40}",
        ) {
            let text = format!("{key}={}", escape_bare(&value));
            let data = parse_str(&text).unwrap();
            prop_assert_eq!(data.get(&key), Some(value.as_str()));
        }

        #[test]
        fn single_quoted_round_trip(
            key in "[A-Za-z_][A-Za-z0-9_]{0,12}",
            value in "[^\u{0}']{0,40}",
        ) {
            let text = format!("{key}={}\r\n", quote_single(&value));
            let data = parse_str(&text).unwrap();
            prop_assert_eq!(data.get(&key), Some(value.as_str()));
        }

        #[test]
        fn simple_values_round_trip_unquoted(
            key in "[A-Za-z_][A-Za-z0-9_]{0,12}",
            value in "[A-Za-z0-9_.+-]([A-Za-z0-9_. +-]{0,20}[A-Za-z0-9_.+-])?",
        ) {
            let text = format!("{key}={value}   \n");
            let data = parse_str(&text).unwrap();
            prop_assert_eq!(data.get(&key), Some(value.as_str()));
        }
    }
}
