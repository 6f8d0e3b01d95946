//! Version-aware name ordering (systemd's `strverscmp_improved()`).
//!
//! Extension names are stacked in this order: the image that sorts highest ends up
//! as the topmost lower layer.  The ordering is similar to RPM version comparison:
//! letters sort before digits, numbers compare numerically, and `~`, `-`, `^` and `.`
//! mark older versions at the position where they occur.

use std::cmp::Ordering;

/// Whether `c` takes part in the comparison; everything else only separates runs.
fn is_version_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'~' | b'-' | b'^' | b'.')
}

/// Length of the run at the start of `s` whose bytes satisfy `pred`.
fn run_len(s: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    s.iter().take_while(|&&c| pred(c)).count()
}

/// Compares two version strings the way systemd's `strverscmp_improved()` does.
///
/// `Less` means `a` is older than `b`.  Rules, applied position by position:
///
/// * If either string is empty, the strings are compared bytewise (the empty one
///   first).
/// * Characters other than ASCII letters, digits and `~ - ^ .` are skipped (so `_` and
///   `+` only separate runs: `foo_1` and `foo1` compare equal).
/// * `~`: the string that has it here is older; if both do, it is skipped.
/// * A string that has run out is older than one that has not.
/// * `-`, then `^`, then `.`: the string that has it here is older; if both, skipped.
/// * If either side is at a digit: leading zeros are skipped, the longer digit run is
///   newer (so a letter, an empty run, is older than any number), equal lengths are
///   compared bytewise.
/// * Otherwise runs of ASCII letters are compared bytewise over their common length
///   (case-sensitive: `Z` < `a`), then the longer run is newer.
pub fn strverscmp_improved(a: &str, b: &str) -> Ordering {
    let a = a.as_bytes();
    let b = b.as_bytes();
    if a.is_empty() || b.is_empty() {
        return a.cmp(b);
    }

    let (mut i, mut j) = (0usize, 0usize);
    loop {
        while i < a.len() && !is_version_char(a[i]) {
            i += 1;
        }
        while j < b.len() && !is_version_char(b[j]) {
            j += 1;
        }

        // Pre-release marker.
        if a.get(i) == Some(&b'~') || b.get(j) == Some(&b'~') {
            let r = (a.get(i) != Some(&b'~')).cmp(&(b.get(j) != Some(&b'~')));
            if r != Ordering::Equal {
                return r;
            }
            i += 1;
            j += 1;
        }

        // End of either string: the exhausted one is older.
        match (a.get(i), b.get(j)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(_), Some(_)) => {}
        }

        // Version/release separator, patch marker, point release: in this order,
        // the string that has the marker here is older.
        for marker in [b'-', b'^', b'.'] {
            let (ma, mb) = (a.get(i) == Some(&marker), b.get(j) == Some(&marker));
            if ma || mb {
                let r = (!ma).cmp(&!mb);
                if r != Ordering::Equal {
                    return r;
                }
                i += 1;
                j += 1;
            }
        }

        let digit_here = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
        if digit_here(a, i) || digit_here(b, j) {
            i += run_len(&a[i..], |c| c == b'0');
            j += run_len(&b[j..], |c| c == b'0');
            let la = run_len(&a[i..], |c| c.is_ascii_digit());
            let lb = run_len(&b[j..], |c| c.is_ascii_digit());
            let r = la.cmp(&lb).then_with(|| a[i..i + la].cmp(&b[j..j + lb]));
            if r != Ordering::Equal {
                return r;
            }
            i += la;
            j += lb;
        } else {
            let la = run_len(&a[i..], |c| c.is_ascii_alphabetic());
            let lb = run_len(&b[j..], |c| c.is_ascii_alphabetic());
            let n = la.min(lb);
            let r = a[i..i + n].cmp(&b[j..j + n]).then(la.cmp(&lb));
            if r != Ordering::Equal {
                return r;
            }
            i += la;
            j += lb;
        }
    }
}

/// Sorts `names` from oldest to newest with [`strverscmp_improved`].
///
/// The sort is stable: names that compare equal (e.g. `foo_1` and `foo1`) keep their
/// relative order.  (systemd uses an unstable sort, so their order is unspecified
/// there.)
pub fn sort_names(names: &mut [String]) {
    sort_by_version(names, |n| n.as_str());
}

/// Sort ascending by [`strverscmp_improved`] of `key`, stably (equal names keep their order;
/// sort bytewise first for a deterministic tie-break).
///
/// systemd's ordering is not transitive for some names (a skipped `_` or `+` right after
/// `~ - ^ .`: `^Z` < `^0a` < `^_1` but `^Z` > `^_1`), and the standard library's sort may
/// panic on a comparison that is not a total order. This insertion sort never panics; on
/// such names it still leaves every neighbouring pair in order. Names are few (at most a
/// few hundred), so its quadratic worst case does not matter.
pub fn sort_by_version<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    let cmp = |a: &T, b: &T| strverscmp_improved(key(a), key(b));
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && cmp(&items[j - 1], &items[j]) == std::cmp::Ordering::Greater {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod sort_tests {
    use super::*;

    #[test]
    fn non_transitive_names_sort_without_panic() {
        // systemd's comparison itself: ^Z < ^0a < ^_1, yet ^Z > ^_1.
        assert_eq!(strverscmp_improved("^Z", "^0a"), std::cmp::Ordering::Less);
        assert_eq!(strverscmp_improved("^0a", "^_1"), std::cmp::Ordering::Less);
        assert_eq!(
            strverscmp_improved("^Z", "^_1"),
            std::cmp::Ordering::Greater
        );
        let mut v: Vec<String> = ["^0a", "^Z", "^_1"].iter().map(|s| s.to_string()).collect();
        sort_names(&mut v);
        for w in v.windows(2) {
            assert_ne!(
                strverscmp_improved(&w[0], &w[1]),
                std::cmp::Ordering::Greater,
                "{v:?}"
            );
        }
        let mut v: Vec<String> = ["b", "a", "foo-10", "foo-2", "Z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_names(&mut v);
        assert_eq!(v, ["Z", "a", "b", "foo-2", "foo-10"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Ordering::{Equal, Greater, Less};

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        sort_names(&mut v);
        v
    }

    #[test]
    fn versions_compare_as_the_uapi_version_format_spec() {
        let cases: &[(&str, &str, Ordering)] = &[
            // spec §4.8 examples
            ("a", "b", Less),
            ("foo-2", "foo-10", Less),
            ("1.9", "1.10", Less),
            ("1~rc1", "1", Less),
            ("Z", "a", Less),
            // empty strings: plain comparison
            ("", "", Equal),
            ("", "a", Less),
            ("a", "", Greater),
            ("", "~", Less),
            ("", "_", Less),
            // equal and equivalent strings
            ("a", "a", Equal),
            ("foo_1", "foo1", Equal),
            ("foo+1", "foo1", Equal),
            ("001", "1", Equal),
            ("1.01", "1.1", Equal),
            ("_", "+", Equal),
            ("a_", "a", Equal),
            // letters before digits
            ("z", "1", Less),
            ("a", "10", Less),
            // a lone zero is an empty number after skipping leading zeros, so the
            // letter then meets the end of the other string and is newer
            ("zz", "0", Greater),
            ("a", "0", Greater),
            ("a", "00", Greater),
            // numbers compare numerically
            ("9", "10", Less),
            ("10", "9", Greater),
            ("2", "10", Less),
            ("100", "99", Greater),
            ("007", "10", Less),
            // case-sensitive letter runs; longer run newer
            ("B", "a", Less),
            ("foo", "foobar", Less),
            ("foobar", "foz", Less),
            ("abc", "abd", Less),
            // exhausted string is older
            ("1", "1.0", Less),
            ("1", "1a", Less),
            ("foo", "foo-bar", Less),
            ("z_", "z-", Less),
            ("1", "1_", Equal),
            // '~' is older, even than the end
            ("1~", "1", Less),
            ("1~rc1", "1~rc2", Less),
            // after a shared '~', the string that still has characters is newer
            ("1~~", "1~", Greater),
            ("1~rc1", "1-1", Less),
            // '-' older than other markers and chars
            ("123-9", "123.1-1", Less),
            ("foo-bar", "foo.bar", Less),
            ("foo-10", "foo_1", Less),
            ("1-1", "1^1", Less),
            ("1-1", "1-1", Equal),
            // '^' older than '.'
            ("1^1", "1.1", Less),
            ("1^1", "1", Greater),
            ("1.0^1", "1.0.1", Less),
            // '.' older than letters and digits
            ("foo.bar", "foo_bar", Less),
            ("z.10", "zz", Less),
            ("1.9", "19", Less),
            ("1.", "1.5", Less),
            // after a '.' a letter is older than a number
            ("1.a", "1.1", Less),
            // RPM-like
            ("1.2.3-1.fc33", "1.2.3-2.fc33", Less),
            ("2.3~rc1", "2.3", Less),
            ("5.10.0", "5.9.12", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(strverscmp_improved(a, b), *want, "{a:?} vs {b:?}");
            assert_eq!(strverscmp_improved(b, a), want.reverse(), "{b:?} vs {a:?}");
        }
    }

    /// Spec §4.8, observed order of experiment E49.
    #[test]
    fn e49_names_sort_as_systemd_stacks_them() {
        let input = [
            "foo-2", "foo-10", "a", "b", "Z", "foo_1", "1.9", "1.10", "1~rc1", "1",
        ];
        let want = [
            "Z", "a", "b", "foo-2", "foo-10", "foo_1", "1~rc1", "1", "1.9", "1.10",
        ];
        assert_eq!(sorted(&input), want);
        let mut rev = input;
        rev.reverse();
        assert_eq!(sorted(&rev), want);
    }

    /// Stacking order observed by the oracle ("Discovery and ordering").
    #[test]
    fn names_stack_in_the_order_the_oracle_observed() {
        let want = [
            "B", "Z", "a", "b", "e9", "e10", "foo", "foo-bar", "foo.bar", "foo_bar", "z_", "z-",
            "z.1", "z.9", "z.10", "zz", "1", "9", "10",
        ];
        let mut input = want;
        input.reverse();
        assert_eq!(sorted(&input), want);
        input.sort();
        assert_eq!(sorted(&input), want);
    }

    #[test]
    fn sort_is_stable_for_equal_names() {
        assert_eq!(sorted(&["foo_1", "foo1"]), ["foo_1", "foo1"]);
        assert_eq!(sorted(&["foo1", "foo_1"]), ["foo1", "foo_1"]);
    }

    proptest! {
        #[test]
        fn version_comparison_is_reflexive_and_antisymmetric(a in "[a-zA-Z0-9~^._+-]{0,8}", b in "[a-zA-Z0-9~^._+-]{0,8}") {
            prop_assert_eq!(strverscmp_improved(&a, &a), Equal);
            prop_assert_eq!(strverscmp_improved(&a, &b), strverscmp_improved(&b, &a).reverse());
        }

        #[test]
        fn version_comparison_never_panics(a in any::<String>(), b in any::<String>()) {
            let _ = strverscmp_improved(&a, &b);
        }
    }
}
