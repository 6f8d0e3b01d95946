//! The CLI prints what systemd-sysext prints: tables, `--no-legend`, parse errors, the
//! version line, the pager and colours. The expected bytes are what systemd-sysext 257 and 262
//! printed for the same input (the conformance tests compare against the real ones too).
//! Nothing here mounts.

use std::process::{Command, Output};
use sysext_tests::TestRoot;

fn run(root: Option<&TestRoot>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(sysext_tests::cli());
    if let Some(r) = root {
        c.arg(format!("--root={}", r.path.display()));
    }
    c.args(args)
        .env_remove("LIBSYSEXT_COMPAT")
        .env_remove("SYSTEMD_COLORS")
        .env_remove("NO_COLOR")
        .env_remove("SYSTEMD_SYSEXT_HIERARCHIES");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Two directory extensions whose names differ in length, with a fixed mtime.
fn two_extensions(tag: &str) -> TestRoot {
    let r = TestRoot::new(tag);
    r.sysext("barbaz", &[("usr/bin/barbaz", "b\n")]);
    r.sysext("foo", &[("usr/bin/foo", "f\n")]);
    for n in ["barbaz", "foo"] {
        let p = r.path.join("var/lib/extensions").join(n);
        let st = Command::new("touch")
            .args(["-d", "2026-12-01 23:36:14 UTC"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
    }
    r
}

#[test]
fn list_prints_systemds_four_columns() {
    let r = two_extensions("out-list");
    let p = r.path.display();
    let o = run(Some(&r), &["list"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let want = format!(
        "NAME   TYPE      PATH{pad} TIME\n\
         barbaz directory {p}/var/lib/extensions/barbaz TIME\n\
         foo    directory {p}/var/lib/extensions/foo    TIME\n",
        pad = " ".repeat(format!("{p}/var/lib/extensions/barbaz").len() - 4)
    );
    // The TIME column is the time of the directory; it is the last column.
    let got = text(&o.stdout);
    let re_time = |s: &str| {
        s.lines()
            .map(|l| match l.rfind(" UTC") {
                Some(i) if i >= 24 => format!("{}TIME\n", &l[..i - 23]),
                _ => format!("{l}\n"),
            })
            .collect::<String>()
    };
    assert_eq!(re_time(&got), want, "{got}");
}

#[test]
fn no_legend_columns_are_as_wide_as_their_data() {
    let r = two_extensions("out-nolegend");
    let o = run(Some(&r), &["--no-legend", "list"], &[]);
    let got = text(&o.stdout);
    let first = got.lines().next().unwrap();
    // `cut -d' ' -f1,2` of 257's output gives "barbaz directory".
    assert!(first.starts_with("barbaz directory "), "{got}");
    assert!(
        got.lines().nth(1).unwrap().starts_with("foo    directory "),
        "{got}"
    );
    let o = run(Some(&r), &["--no-legend", "status"], &[]);
    assert_eq!(
        text(&o.stdout),
        "/opt none -\n/usr none -\n".replace("none", "-")
    );
}

#[test]
fn status_has_systemds_three_columns_and_long_adds_ours() {
    let r = two_extensions("out-status");
    let o = run(Some(&r), &["status"], &[]);
    assert_eq!(
        text(&o.stdout),
        "HIERARCHY EXTENSIONS SINCE\n/opt      -          -\n/usr      -          -\n"
    );
    let o = run(Some(&r), &["--compat=257", "status"], &[]);
    assert_eq!(
        text(&o.stdout),
        "HIERARCHY EXTENSIONS SINCE\n/opt      none       -\n/usr      none       -\n"
    );
    // LIBSYSEXT_COMPAT names the level where --compat= does not; --compat= wins.
    let o = run(Some(&r), &["status"], &[("LIBSYSEXT_COMPAT", "257")]);
    assert_eq!(
        text(&o.stdout),
        "HIERARCHY EXTENSIONS SINCE\n/opt      none       -\n/usr      none       -\n"
    );
    let o = run(
        Some(&r),
        &["--compat=262", "status"],
        &[("LIBSYSEXT_COMPAT", "257")],
    );
    assert!(text(&o.stdout).contains("/usr      -          -\n"));
    let o = run(Some(&r), &["--long", "status"], &[]);
    assert_eq!(
        text(&o.stdout).lines().next().unwrap(),
        "HIERARCHY EXTENSIONS SINCE MUTABLE"
    );
    let o = run(Some(&r), &["--long", "list"], &[]);
    let got = text(&o.stdout);
    assert!(got.lines().next().unwrap().ends_with(" STATE"), "{got}");
    assert!(got.contains(" would-merge"), "{got}");
}

#[test]
fn colours_as_systemd_colours_them() {
    let r = TestRoot::new("out-colour");
    std::fs::create_dir_all(r.path.join("var/lib/extensions")).unwrap();
    for (level, grey) in [
        ("257", "\x1b[0;38:5:245m"),
        ("262", "\x1b[0;90m\x1b[0;38:5:245m"),
    ] {
        let o = run(
            Some(&r),
            &[&format!("--compat={level}"), "status"],
            &[("SYSTEMD_COLORS", "1")],
        );
        let none = if level == "257" {
            "none      "
        } else {
            "-         "
        };
        assert_eq!(
            text(&o.stdout),
            format!(
                "\x1b[4mHIERARCHY\x1b[0m\x1b[4m \x1b[0m\x1b[4mEXTENSIONS\x1b[0m\x1b[4m \x1b[0m\x1b[4mSINCE\x1b[0m\n\
                 /opt      {grey}{none}\x1b[0m {grey}-    \x1b[0m\n\
                 /usr      {grey}{none}\x1b[0m {grey}-    \x1b[0m\n"
            ),
            "level {level}"
        );
    }
    let o = run(Some(&r), &["status"], &[("SYSTEMD_COLORS", "16")]);
    assert!(text(&o.stdout).contains("\x1b[0;90m-         \x1b[0m"));
    // NO_COLOR and a pipe: no escapes.
    let o = run(Some(&r), &["status"], &[("NO_COLOR", "1")]);
    assert!(!text(&o.stdout).contains('\x1b'));
}

#[test]
fn parse_errors_read_like_systemds() {
    let cases: &[(&[&str], &str)] = &[
        (&["merge", "foo"], "Too many arguments.\n"),
        (&["unmerge", "foo"], "Too many arguments.\n"),
        (
            &["lsit"],
            "Unknown command verb 'lsit', did you mean 'list'?\n",
        ),
        (
            &["st"],
            "Unknown command verb 'st', did you mean 'status'?\n",
        ),
        (&["xyzzyplugh"], "Unknown command verb 'xyzzyplugh'.\n"),
        // systemd's verbs are suggested first, as systemd suggests them.
        (&["zz"], "Unknown command verb 'zz', did you mean 'list'?\n"),
        (
            &["bogus"],
            "Unknown command verb 'bogus', did you mean 'status'?\n",
        ),
        (
            &["--mutable=bogus", "merge"],
            "Failed to parse argument to --mutable=: bogus\n",
        ),
        (&["add"], "Too few arguments.\n"),
    ];
    for (args, err) in cases {
        let o = run(None, args, &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&o.stderr), *err, "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let o = run(None, &["--json=help"], &[]);
    assert_eq!(text(&o.stdout), "pretty\nshort\noff\n");
}

#[test]
fn version_line_is_systemds_with_our_name() {
    for (level, want) in [
        ("257", "systemd 257 (libsysext "),
        ("262", "systemd 262 (libsysext "),
    ] {
        let o = run(None, &[&format!("--compat={level}"), "--version"], &[]);
        let out = text(&o.stdout);
        assert!(out.starts_with(want), "{out}");
        // Scripts take the second word of the first line as the version number.
        assert_eq!(out.split_whitespace().nth(1), Some(level));
    }
}

#[test]
fn list_of_a_missing_root_per_level() {
    let o = Command::new(sysext_tests::cli())
        .args(["--root=/nonexistent-libsysext-root", "--compat=257", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stderr), "No OS extensions found.\n");
    let o = Command::new(sysext_tests::cli())
        .args(["--root=/nonexistent-libsysext-root", "--compat=262", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "Failed to discover images: No such file or directory\n"
    );
}

#[test]
fn status_of_a_missing_root_per_level() {
    let run_at = |level: &str, json: bool| {
        let mut c = Command::new(sysext_tests::cli());
        c.args([
            "--root=/nonexistent-libsysext-root",
            &format!("--compat={level}"),
        ]);
        if json {
            c.arg("--json=short");
        }
        c.arg("status").output().unwrap()
    };
    for level in ["257", "262"] {
        let o = run_at(level, false);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(text(&o.stdout), "HIERARCHY EXTENSIONS SINCE\n");
        let o = run_at(level, true);
        assert_eq!(text(&o.stdout), "[]\n");
    }
    assert!(text(&run_at("257", false).stderr).is_empty());
    assert_eq!(
        text(&run_at("262", false).stderr),
        "Failed to open root directory '/nonexistent-libsysext-root': No such file or directory\n\
         Failed to parse sysext config file, ignoring: No such file or directory\n"
    );
}

#[test]
fn messages_carry_no_rust_errno_suffix() {
    let r = TestRoot::new("out-errno");
    // An os-release that is a directory: reading it fails with an errno.
    r.sysext("foo", &[("usr/bin/foo", "f\n")]);
    let osr = r.path.join("usr/lib/os-release");
    let _ = std::fs::remove_file(&osr);
    std::fs::create_dir_all(&osr).unwrap();
    let o = run(Some(&r), &["plan"], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("os-release"), "{err}");
    assert!(!err.contains("os error"), "{err}");
}

/// Runs the CLI on a pseudo-terminal (util-linux `script`), so that it pages and colours.
fn on_a_terminal(r: &TestRoot, args: &str, env: &[(&str, &str)]) -> String {
    let cmd = format!(
        "{} --root={} {args}",
        sysext_tests::cli().display(),
        r.path.display()
    );
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("SYSTEMD_COLORS")
        .env_remove("PAGER")
        .env_remove("LESS")
        .env("TERM", "xterm");
    for (k, v) in env {
        c.env(k, v);
    }
    text(&c.output().unwrap().stdout).replace("\r\n", "\n")
}

#[test]
fn on_a_terminal_output_goes_through_the_pager() {
    let r = two_extensions("out-pager");
    let seen = r.path.join("paged");
    let pager = format!("tee '{}'", seen.display());
    let shown = on_a_terminal(&r, "status", &[("SYSTEMD_PAGER", &pager)]);
    let paged = std::fs::read_to_string(&seen).expect("the pager ran");
    assert!(paged.contains("\x1b[4mHIERARCHY\x1b[0m"), "{paged:?}");
    assert!(shown.contains("HIERARCHY"), "{shown:?}");
    std::fs::remove_file(&seen).unwrap();
    on_a_terminal(&r, "--no-pager status", &[("SYSTEMD_PAGER", &pager)]);
    assert!(!seen.exists(), "--no-pager started the pager");
    // JSON is not paged.
    on_a_terminal(&r, "--json=short status", &[("SYSTEMD_PAGER", &pager)]);
    assert!(!seen.exists(), "JSON went through the pager");
    // The pager gets systemd's options for less; $PAGER is used without $SYSTEMD_PAGER.
    let shown = on_a_terminal(&r, "list", &[("PAGER", "sh -c 'echo LESS=$LESS; cat'")]);
    assert!(shown.contains("LESS=FRSXMK"), "{shown:?}");
    assert!(shown.contains("barbaz"), "{shown:?}");
}
