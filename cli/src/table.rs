//! Tables laid out as systemd's `format-table` lays them out, byte for byte.
//!
//! The rules, measured against systemd-sysext 257 and 262:
//! - a column is as wide as its widest line, the header counted only when it is shown;
//! - cells are left-aligned, padded with spaces, one space between columns;
//! - a cell holding several lines (a list) takes one output line per entry, the other cells of
//!   those lines being empty (but padded);
//! - the last column drops its trailing padding, except with colours on, in the header row
//!   and in coloured cells;
//! - with colours on, each header cell and each space between header cells is underlined
//!   separately; a coloured cell is wrapped in its colour, padding included.

use crate::term::Colors;

/// The colour of a cell. systemd's tables use grey for "nothing here" values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tint {
    Plain,
    Grey,
}

/// One cell: its lines (a list has one per entry) and its colour.
#[derive(Debug, Clone)]
pub struct Cell {
    lines: Vec<String>,
    tint: Tint,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell {
            lines: vec![s.into()],
            tint: Tint::Plain,
        }
    }

    pub fn grey(s: impl Into<String>) -> Cell {
        Cell {
            lines: vec![s.into()],
            tint: Tint::Grey,
        }
    }

    /// A list: one line per entry (an empty list is one empty line).
    pub fn lines(v: &[String]) -> Cell {
        Cell {
            lines: if v.is_empty() {
                vec![String::new()]
            } else {
                v.to_vec()
            },
            tint: Tint::Plain,
        }
    }
}

const UNDERLINE: &str = "\x1b[4m";
const NORMAL: &str = "\x1b[0m";

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    let mut o = String::with_capacity(w.max(s.len()));
    o.push_str(s);
    for _ in width(s)..w {
        o.push(' ');
    }
    o
}

/// Appends `text`, wrapped in the escape code `code` (and back to normal) when given.
fn push(line: &mut String, code: Option<&str>, text: &str) {
    match code {
        Some(c) => {
            line.push_str(c);
            line.push_str(text);
            line.push_str(NORMAL);
        }
        None => line.push_str(text),
    }
}

/// Renders `header` (shown when `legend`) and `rows` as text ending in a newline per line.
pub fn render(header: &[&str], rows: &[Vec<Cell>], legend: bool, colors: Colors) -> String {
    let n = header.len();
    let mut w = vec![0usize; n];
    if legend {
        for (j, h) in header.iter().enumerate() {
            w[j] = width(h);
        }
    }
    for r in rows {
        for (j, c) in r.iter().enumerate() {
            for l in &c.lines {
                w[j] = w[j].max(width(l));
            }
        }
    }
    let mut out = String::new();
    if legend {
        let mut line = String::new();
        for (j, h) in header.iter().enumerate() {
            let text = if colors.on() || j + 1 < n {
                pad(h, w[j])
            } else {
                h.to_string()
            };
            let underline = colors.on().then_some(UNDERLINE);
            if j > 0 {
                push(&mut line, underline, " ");
            }
            push(&mut line, underline, &text);
        }
        out.push_str(&line);
        out.push('\n');
    }
    for r in rows {
        let height = r.iter().map(|c| c.lines.len()).max().unwrap_or(1);
        for k in 0..height {
            let mut line = String::new();
            for (j, c) in r.iter().enumerate() {
                if j > 0 {
                    line.push(' ');
                }
                let s = c.lines.get(k).map(String::as_str).unwrap_or("");
                let tinted = colors.on() && c.tint != Tint::Plain;
                let mut text = pad(s, w[j]);
                if j + 1 == n && !tinted {
                    text.truncate(text.trim_end_matches(' ').len());
                }
                push(&mut line, tinted.then_some(colors.grey()), &text);
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::Colors;

    fn rows() -> Vec<Vec<Cell>> {
        vec![
            vec![
                Cell::text("/opt"),
                Cell::lines(&["o".into(), "u".into(), "uo".into()]),
                Cell::text("Tue 2026-12-01 23:36:14 UTC"),
            ],
            vec![Cell::text("/usr"), Cell::grey("none"), Cell::grey("-")],
        ]
    }

    // Byte for byte what systemd-sysext 257 printed for these rows.
    #[test]
    fn plain_pads_all_but_the_last_column() {
        let t = render(
            &["HIERARCHY", "EXTENSIONS", "SINCE"],
            &rows(),
            true,
            Colors::Off,
        );
        assert_eq!(
            t,
            "HIERARCHY EXTENSIONS SINCE\n\
             /opt      o          Tue 2026-12-01 23:36:14 UTC\n\
             \x20         u          \n\
             \x20         uo         \n\
             /usr      none       -\n"
        );
    }

    #[test]
    fn without_legend_the_header_does_not_widen_columns() {
        let r = vec![
            vec![Cell::text("bar"), Cell::text("directory")],
            vec![Cell::text("longer"), Cell::text("raw")],
        ];
        let t = render(&["NAME", "TYPE"], &r, false, Colors::Off);
        assert_eq!(t, "bar    directory\nlonger raw\n");
        let t = render(&["A-LONG-NAME", "TYPE"], &r[..1], false, Colors::Off);
        assert_eq!(t, "bar directory\n");
    }

    #[test]
    fn colours_underline_the_header_and_tint_empty_values() {
        let r = vec![vec![
            Cell::text("/opt"),
            Cell::grey("none"),
            Cell::grey("-"),
        ]];
        let t = render(
            &["HIERARCHY", "EXTENSIONS", "SINCE"],
            &r,
            true,
            Colors::Ansi256,
        );
        assert_eq!(
            t,
            "\x1b[4mHIERARCHY\x1b[0m\x1b[4m \x1b[0m\x1b[4mEXTENSIONS\x1b[0m\x1b[4m \x1b[0m\x1b[4mSINCE\x1b[0m\n\
             /opt      \x1b[0;38:5:245mnone      \x1b[0m \x1b[0;38:5:245m-    \x1b[0m\n"
        );
        let t = render(&["H", "E", "S"], &r, false, Colors::Ansi16);
        assert_eq!(t, "/opt \x1b[0;90mnone\x1b[0m \x1b[0;90m-\x1b[0m\n");
    }
}
