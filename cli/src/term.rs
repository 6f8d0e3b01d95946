//! The terminal as systemd tools treat it: colours and the pager.
//!
//! Colours (measured against systemd-sysext 257 and 262):
//! - `$SYSTEMD_COLORS` decides when set: a false boolean turns them off, a true one or
//!   `256`/`24bit` turns them on in 256-colour style, `16` in 16-colour style, even when the
//!   output is not a terminal;
//! - otherwise `$NO_COLOR` turns them off; otherwise they are on when standard output is a
//!   terminal and `$TERM` is set and not `dumb`.
//!
//! The pager: only when standard output is a terminal and `--no-pager` is not given; the
//! command is `$SYSTEMD_PAGER`, else `$PAGER` (split into words as a shell would), then
//! `pager`, `less` and `more`, the first that starts (an empty value or
//! `cat` means none); `less` gets `$SYSTEMD_LESS`, else `FRSXMK`, as `$LESS`.

use std::io::{IsTerminal, Write};
use std::process::{Child, Command, Stdio};

/// Whether and how to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colors {
    on: bool,
    grey: &'static str,
}

#[allow(non_upper_case_globals)]
impl Colors {
    /// No colours.
    pub const Off: Colors = Colors {
        on: false,
        grey: "",
    };
    /// 16-colour style.
    pub const Ansi16: Colors = Colors {
        on: true,
        grey: "\x1b[0;90m",
    };
    /// 256-colour style.
    pub const Ansi256: Colors = Colors {
        on: true,
        grey: "\x1b[0;38:5:245m",
    };
    /// 256-colour style as systemd 262 writes it (its grey carries the 16-colour code first).
    pub const Ansi256Twice: Colors = Colors {
        on: true,
        grey: "\x1b[0;90m\x1b[0;38:5:245m",
    };

    pub fn on(self) -> bool {
        self.on
    }

    pub fn grey(self) -> &'static str {
        self.grey
    }

    /// The colours for standard output, from the environment. `grey_twice`: the level's
    /// systemd writes the 256-colour grey after the 16-colour one (262).
    pub fn detect(grey_twice: bool) -> Colors {
        Self::from_env(
            std::env::var("SYSTEMD_COLORS").ok().as_deref(),
            std::env::var_os("NO_COLOR").is_some(),
            std::env::var("TERM").ok().as_deref(),
            std::io::stdout().is_terminal(),
            grey_twice,
        )
    }

    fn from_env(
        systemd_colors: Option<&str>,
        no_color: bool,
        term: Option<&str>,
        tty: bool,
        grey_twice: bool,
    ) -> Colors {
        let full = if grey_twice {
            Colors::Ansi256Twice
        } else {
            Colors::Ansi256
        };
        if let Some(v) = systemd_colors {
            match v {
                "16" => return Colors::Ansi16,
                "256" | "24bit" => return full,
                v => {
                    if let Some(b) = sysext::release::parse_bool(v) {
                        return if b { full } else { Colors::Off };
                    }
                }
            }
        }
        if no_color {
            return Colors::Off;
        }
        match term {
            Some(t) if tty && !t.is_empty() && t != "dumb" => full,
            _ => Colors::Off,
        }
    }
}

/// A running pager; standard output goes into it until it is dropped.
pub struct Pager {
    child: Child,
    saved_stdout: std::os::fd::OwnedFd,
}

impl Pager {
    /// Starts the pager when systemd would (see the module docs).
    pub fn start(no_pager: bool) -> Option<Pager> {
        if no_pager || !std::io::stdout().is_terminal() {
            return None;
        }
        let mut cmds: Vec<Vec<String>> = Vec::new();
        match std::env::var("SYSTEMD_PAGER").or_else(|_| std::env::var("PAGER")) {
            Ok(p) if p.trim().is_empty() || p.trim() == "cat" => return None,
            Ok(p) => cmds.push(split_words(&p)),
            Err(_) => {}
        }
        // Then Debian's alternative, then less, then more, as systemd tries them.
        for p in ["pager", "less", "more"] {
            cmds.push(vec![p.to_string()]);
        }
        let less = std::env::var("SYSTEMD_LESS").unwrap_or_else(|_| "FRSXMK".into());
        for words in cmds {
            let Some((prog, args)) = words.split_first() else {
                continue;
            };
            let child = Command::new(prog)
                .args(args)
                .env("LESS", &less)
                .stdin(Stdio::piped())
                .spawn();
            let Ok(mut child) = child else { continue };
            let Some(stdin) = child.stdin.take() else {
                continue;
            };
            // Keep a copy of the terminal's stdout; stdout becomes the pager's pipe, and the
            // pipe's own descriptor is closed (dropped) so that only stdout holds it.
            let Ok(saved) = rustix::io::dup(rustix::stdio::stdout()) else {
                continue;
            };
            if rustix::stdio::dup2_stdout(&stdin).is_err() {
                continue;
            }
            drop(stdin);
            return Some(Pager {
                child,
                saved_stdout: saved,
            });
        }
        None
    }
}

/// Splits a command line into words as a shell would for plain words: whitespace separates,
/// single and double quotes group, a backslash escapes the next character.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.get_or_insert_with(String::new).push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.get_or_insert_with(String::new).push(n);
                }
            }
            (_, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    words
}

impl Drop for Pager {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        // stdout back to the terminal; that closes our end of the pipe, so the pager sees
        // the end of its input.
        let _ = rustix::stdio::dup2_stdout(&self.saved_stdout);
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_command_lines_split_like_a_shell() {
        assert_eq!(split_words("less -R"), ["less", "-R"]);
        assert_eq!(
            split_words("sh -c 'echo $LESS; cat'"),
            ["sh", "-c", "echo $LESS; cat"]
        );
        assert_eq!(split_words(r#"a "b c" d\ e ''"#), ["a", "b c", "d e", ""]);
    }

    #[test]
    fn systemd_colors_wins_then_no_color_then_the_terminal() {
        let f = Colors::from_env;
        assert_eq!(f(Some("16"), true, None, false, false), Colors::Ansi16);
        assert_eq!(f(Some("1"), false, None, false, false), Colors::Ansi256);
        assert_eq!(
            f(Some("yes"), false, None, false, true),
            Colors::Ansi256Twice
        );
        assert_eq!(f(Some("0"), false, Some("xterm"), true, false), Colors::Off);
        assert_eq!(f(None, true, Some("xterm"), true, false), Colors::Off);
        assert_eq!(f(None, false, Some("dumb"), true, false), Colors::Off);
        assert_eq!(f(None, false, None, true, false), Colors::Off);
        assert_eq!(f(None, false, Some("xterm"), false, false), Colors::Off);
        assert_eq!(f(None, false, Some("xterm"), true, false), Colors::Ansi256);
    }
}
