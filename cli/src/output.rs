//! Tables and JSON in systemd-sysext's formats.

use crate::table::{self, Cell};
use crate::term::Colors;
use sysext::image::VerityCheck;
use sysext::plan::{Layer, Upper, WorkDir};
use sysext::{Extension, HierarchyStatus, PlanReport, UpperKind};

/// A tiny JSON value, enough for our output.
#[derive(Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl J {
    fn write(&self, out: &mut String, pretty: bool, depth: usize) {
        let ind = |out: &mut String, d: usize| {
            if pretty {
                out.push('\n');
                for _ in 0..d {
                    out.push('\t');
                }
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(&n.to_string()),
            J::Str(s) => out.push_str(&esc(s)),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ind(out, depth + 1);
                    x.write(out, pretty, depth + 1);
                }
                if !v.is_empty() {
                    ind(out, depth);
                }
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ind(out, depth + 1);
                    out.push_str(&esc(k));
                    out.push_str(if pretty { " : " } else { ":" });
                    x.write(out, pretty, depth + 1);
                }
                if !v.is_empty() {
                    ind(out, depth);
                }
                out.push('}');
            }
        }
    }

    /// Serialise.
    pub fn render(&self, pretty: bool) -> String {
        let mut s = String::new();
        self.write(&mut s, pretty, 0);
        s
    }
}

fn strs(v: &[String]) -> J {
    J::Arr(v.iter().map(|s| J::Str(s.clone())).collect())
}

/// `Thu 2026-11-26 10:30:37 UTC` from µs since the epoch.
pub fn format_timestamp(usec: u64) -> String {
    let secs = (usec / 1_000_000) as i64;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    format!(
        "{wd} {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// How tables are printed: colours, the header, and our extra columns.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    /// Colours (systemd's rules, see [`crate::term`]).
    pub colors: Colors,
    /// Print the header (`--no-legend` turns it off).
    pub legend: bool,
    /// Our extra columns (`--long`): the mutable mode in `status`, what a merge does with
    /// each image in `list`.
    pub long: bool,
}

fn print(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed pager or pipe is no reason to fail, as with systemd.
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// `status`.
/// `empty_list`: an unmerged hierarchy shows an empty list (`[]`, `-`) instead of `none`
/// ([`sysext::Compat::status_lists_unmerged_as_empty`]).
pub fn status(rows: &[HierarchyStatus], empty_list: bool, json: Option<bool>, look: Look) {
    let none = || {
        if empty_list {
            J::Arr(Vec::new())
        } else {
            J::Str("none".into())
        }
    };
    if let Some(pretty) = json {
        let v = J::Arr(
            rows.iter()
                .map(|r| {
                    let mut fields = vec![
                        ("hierarchy", J::Str(r.hierarchy.clone())),
                        (
                            "extensions",
                            r.extensions.as_ref().map(|e| strs(e)).unwrap_or_else(none),
                        ),
                        ("since", r.since_usec.map(J::Num).unwrap_or(J::Null)),
                        ("merged", J::Bool(r.extensions.is_some())),
                        (
                            "extensionList",
                            strs(r.extensions.as_deref().unwrap_or(&[])),
                        ),
                        (
                            "mutable",
                            r.mutable.map(|m| J::Str(m.to_string())).unwrap_or(J::Null),
                        ),
                        ("upper", status_upper_json(r.upper, r.upper_dir.as_deref())),
                    ];
                    // Only while an interrupted operation waits to be repaired.
                    if let Some(v) = &r.interrupted {
                        fields.push(("interrupted", J::Str(v.clone())));
                    }
                    J::Obj(fields)
                })
                .collect(),
        );
        print(&(v.render(pretty) + "\n"));
        return;
    }
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                Cell::text(r.hierarchy.clone()),
                match &r.extensions {
                    Some(e) if e.is_empty() => Cell::grey("-"),
                    Some(e) => Cell::lines(e),
                    None if empty_list => Cell::grey("-"),
                    None => Cell::grey("none"),
                },
                match r.since_usec {
                    Some(t) => Cell::text(format_timestamp(t)),
                    None => Cell::grey("-"),
                },
            ];
            if look.long {
                row.push(match (&r.mutable, r.upper, &r.upper_dir) {
                    (Some(m), Some(UpperKind::MutableDir), Some(dir)) => {
                        Cell::text(format!("{m} ({dir})"))
                    }
                    (Some(m), Some(UpperKind::Host), _) => Cell::text(format!("{m} (host)")),
                    (Some(m), _, _) => Cell::text(m.to_string()),
                    _ => Cell::grey("-"),
                });
            }
            row
        })
        .collect();
    let header: &[&str] = if look.long {
        &["HIERARCHY", "EXTENSIONS", "SINCE", "MUTABLE"]
    } else {
        &["HIERARCHY", "EXTENSIONS", "SINCE"]
    };
    print(&table::render(header, &rows, look.legend, look.colors));
}

/// The upper layer of a merged hierarchy as typed JSON: `null` when the merge is read-only
/// or the mode is unknown, else `{"kind": "ephemeral" | "host" | "mutable-dir", "path": …}`.
fn status_upper_json(kind: Option<UpperKind>, dir: Option<&str>) -> J {
    match kind {
        None | Some(UpperKind::None) => J::Null,
        Some(k) => J::Obj(vec![
            ("kind", J::Str(k.as_str().into())),
            ("path", dir.map_or(J::Null, |p| J::Str(p.to_string()))),
        ]),
    }
}

/// `list`.
pub fn list(imgs: &[Extension], json: Option<bool>, look: Look) {
    if let Some(pretty) = json {
        let v = J::Arr(
            imgs.iter()
                .map(|i| {
                    J::Obj(vec![
                        ("name", J::Str(i.name.clone())),
                        ("type", J::Str(i.kind.as_str().into())),
                        ("path", J::Str(i.path.clone())),
                        ("time", J::Num(i.time_usec)),
                        ("state", J::Str(i.state.as_str().into())),
                        ("reason", i.reason.clone().map(J::Str).unwrap_or(J::Null)),
                        ("shadows", strs(&i.shadows)),
                        (
                            "verity",
                            i.verity
                                .map(|v| J::Str(v.as_str().into()))
                                .unwrap_or(J::Null),
                        ),
                    ])
                })
                .collect(),
        );
        print(&(v.render(pretty) + "\n"));
        return;
    }
    if imgs.is_empty() {
        eprintln!("No OS extensions found.");
        return;
    }
    let rows: Vec<Vec<Cell>> = imgs
        .iter()
        .map(|i| {
            let mut row = vec![
                Cell::text(i.name.clone()),
                Cell::text(i.kind.as_str()),
                Cell::text(i.path.clone()),
                Cell::text(format_timestamp(i.time_usec)),
            ];
            if look.long {
                let mut state = vec![match &i.reason {
                    Some(r) => format!("{}: {r}", i.state.as_str()),
                    None => i.state.as_str().to_string(),
                }];
                state.extend(i.shadows.iter().map(|s| format!("shadows {s}")));
                // Where a merge checks the image's verity data.
                state.extend(i.verity.map(|v| {
                    match v {
                        VerityCheck::Kernel => {
                            "verity: dm-verity (the kernel checks every read)".to_string()
                        }
                        VerityCheck::Userspace => {
                            "verity: userspace (checked once before mounting; no device-mapper)"
                                .to_string()
                        }
                    }
                }));
                row.push(Cell::lines(&state));
            }
            row
        })
        .collect();
    let header: &[&str] = if look.long {
        &["NAME", "TYPE", "PATH", "TIME", "STATE"]
    } else {
        &["NAME", "TYPE", "PATH", "TIME"]
    };
    print(&table::render(header, &rows, look.legend, look.colors));
}

/// `plan`; JSON is typed data (kinds, paths, `null`), the text is for people.
pub fn plan(p: &PlanReport, json: Option<bool>) {
    match json {
        Some(pretty) => print(&(plan_json(p).render(pretty) + "\n")),
        None => print_plan_text(p),
    }
}

/// The plan for people: the mode, the extensions, and per hierarchy its layers.
fn print_plan_text(p: &PlanReport) {
    println!("Mutable mode: {}", p.plan.mode);
    if !p.using.is_empty() {
        println!("Using extensions: {}", p.using.join(", "));
    }
    for s in &p.skipped {
        println!("Skipping {}: {}", s.name, s.reason);
    }
    if p.plan.hierarchies.is_empty() {
        println!("Nothing would be merged.");
    }
    for h in &p.plan.hierarchies {
        println!(
            "\n{} -> {}{}",
            h.hierarchy,
            h.target,
            if h.create_target { " (created)" } else { "" }
        );
        println!("  upper:   {}", upper_text(&h.upper));
        println!("  workdir: {}", work_dir_text(&h.work_dir));
        println!("  layers (top to bottom):");
        for l in &h.lower {
            println!("    {}", layer_text(l));
        }
    }
}

fn layer_text(l: &Layer) -> String {
    match l {
        Layer::Meta => "(meta)".to_string(),
        Layer::Import(p) => format!("{p} (import)"),
        Layer::Extension { name, path } => format!("{path} ({name})"),
        Layer::Host(p) => format!("{p} (host)"),
    }
}

fn upper_text(u: &Option<Upper>) -> String {
    match u {
        None => "none (read-only)".to_string(),
        Some(Upper::Ephemeral) => "ephemeral (tmpfs)".into(),
        Some(Upper::Host { path, .. }) => format!("{path} (host)"),
        Some(Upper::MutableDir {
            path, create: true, ..
        }) => format!("{path} (created)"),
        Some(Upper::MutableDir { path, .. }) => path.clone(),
    }
}

fn work_dir_text(w: &Option<WorkDir>) -> String {
    match w {
        None => "-".to_string(),
        Some(WorkDir::Ephemeral) => "ephemeral (tmpfs)".into(),
        Some(WorkDir::Beside { path, .. }) => path.clone(),
    }
}

/// The plan as JSON: the mode, the extensions, the skipped ones with why, the hierarchies.
fn plan_json(p: &PlanReport) -> J {
    let skipped = p.skipped.iter().map(|s| {
        J::Obj(vec![
            ("name", J::Str(s.name.clone())),
            ("reason", J::Str(s.reason.clone())),
        ])
    });
    let hierarchies = p.plan.hierarchies.iter().map(|h| {
        J::Obj(vec![
            ("hierarchy", J::Str(h.hierarchy.to_string())),
            ("target", J::Str(h.target.clone())),
            ("createTarget", J::Bool(h.create_target)),
            ("layers", J::Arr(h.lower.iter().map(layer_json).collect())),
            ("upper", upper_json(&h.upper)),
            ("workDir", work_dir_json(&h.work_dir)),
            ("readOnly", J::Bool(h.flags.read_only)),
        ])
    });
    J::Obj(vec![
        ("mutable", J::Str(p.plan.mode.to_string())),
        ("extensions", strs(&p.plan.extensions)),
        ("skipped", J::Arr(skipped.collect())),
        ("hierarchies", J::Arr(hierarchies.collect())),
    ])
}

fn kind(k: &str) -> (&'static str, J) {
    ("kind", J::Str(k.into()))
}

fn layer_json(l: &Layer) -> J {
    match l {
        Layer::Meta => J::Obj(vec![kind("meta"), ("name", J::Null), ("path", J::Null)]),
        Layer::Import(p) => J::Obj(vec![
            kind("import"),
            ("name", J::Null),
            ("path", J::Str(p.clone())),
        ]),
        Layer::Extension { name, path } => J::Obj(vec![
            kind("extension"),
            ("name", J::Str(name.clone())),
            ("path", J::Str(path.clone())),
        ]),
        Layer::Host(p) => J::Obj(vec![
            kind("host"),
            ("name", J::Null),
            ("path", J::Str(p.clone())),
        ]),
    }
}

fn upper_json(u: &Option<Upper>) -> J {
    let (k, path, create) = match u {
        None => return J::Null,
        Some(Upper::Ephemeral) => ("ephemeral", J::Null, false),
        Some(Upper::Host { path, .. }) => ("host", J::Str(path.clone()), false),
        Some(Upper::MutableDir { path, create, .. }) => {
            ("mutable-dir", J::Str(path.clone()), *create)
        }
    };
    J::Obj(vec![kind(k), ("path", path), ("create", J::Bool(create))])
}

fn work_dir_json(w: &Option<WorkDir>) -> J {
    match w {
        None => J::Null,
        Some(WorkDir::Ephemeral) => J::Obj(vec![kind("ephemeral"), ("path", J::Null)]),
        Some(WorkDir::Beside { path, .. }) => {
            J::Obj(vec![kind("directory"), ("path", J::Str(path.clone()))])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_systemd_formats_them() {
        assert_eq!(format_timestamp(0), "Thu 1970-01-01 00:00:00 UTC");
        assert_eq!(
            format_timestamp(1_115_251_200_000_000),
            "Thu 2005-05-05 00:00:00 UTC"
        );
        assert_eq!(
            format_timestamp(978_307_200_000_000),
            "Mon 2001-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn json_renders_objects_arrays_and_escapes() {
        let v = J::Arr(vec![J::Obj(vec![
            ("a", J::Str("x\"y".into())),
            ("b", J::Null),
            ("c", J::Arr(vec![])),
        ])]);
        assert_eq!(v.render(false), r#"[{"a":"x\"y","b":null,"c":[]}]"#);
        assert_eq!(J::Arr(vec![]).render(true), "[]");
    }
}
