//! The command line, read the way the compatibility level's systemd-sysext reads it.
//!
//! Both systemds take long options by any unambiguous prefix (`--mut=yes`, `--no-p`) and act
//! on each option where it stands: `--help`, `--version`, `--json=help` and (262)
//! `--mutable=help` print and end the parse, and the first bad option or value is the one
//! reported. 257 parses with glibc's `getopt_long`, 262 with systemd's own parser, and their
//! error messages differ (see [`Messages`]). Our own options ([`OURS`]) are matched only where
//! none of the level's systemd options matches, so that every abbreviation systemd takes
//! means here what it means there. lexopt splits the words; the option tables, the prefix
//! matching and the messages are ours.

use lexopt::Arg;
use std::ffi::OsString;
use sysext::{Compat, ImageClass, MutableMode};

/// `--json=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Json {
    Off,
    Short,
    Pretty,
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) class: ImageClass,
    pub(crate) root: Option<String>,
    pub(crate) force: bool,
    pub(crate) no_reload: bool,
    pub(crate) noexec: Option<bool>,
    pub(crate) image_policy: Option<String>,
    pub(crate) mutable: Option<MutableMode>,
    pub(crate) json: Json,
    pub(crate) no_legend: bool,
    pub(crate) no_pager: bool,
    pub(crate) long: bool,
    pub(crate) verbose: bool,
    pub(crate) always_refresh: bool,
    pub(crate) allow_block_devices: bool,
    pub(crate) compat: Compat,
    pub(crate) verb: String,
    pub(crate) names: Vec<String>,
}

/// What an option stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Help,
    Version,
    NoPager,
    NoLegend,
    Root,
    Json,
    Force,
    ImagePolicy,
    Noexec,
    NoReload,
    Mutable,
    AlwaysRefresh,
    IntrospectCli,
    Long,
    AllowBlockDevices,
    Compat,
    Confext,
    Sysext,
    Verbose,
}

/// A long option: its name, whether it takes a value, what it stands for.
#[derive(Debug)]
struct Opt {
    name: &'static str,
    value: bool,
    id: Id,
}

const fn opt(name: &'static str, value: bool, id: Id) -> Opt {
    Opt { name, value, id }
}

/// systemd-sysext 257's long options, in the order of its table (getopt lists the
/// candidates of an ambiguous prefix in this order).
const SYSTEMD_257: &[Opt] = &[
    opt("help", false, Id::Help),
    opt("version", false, Id::Version),
    opt("no-pager", false, Id::NoPager),
    opt("no-legend", false, Id::NoLegend),
    opt("root", true, Id::Root),
    opt("json", true, Id::Json),
    opt("force", false, Id::Force),
    opt("image-policy", true, Id::ImagePolicy),
    opt("noexec", true, Id::Noexec),
    opt("no-reload", false, Id::NoReload),
    opt("mutable", true, Id::Mutable),
];

/// systemd-sysext 262's, in the order of its table (as its `--introspect-cli` lists them).
const SYSTEMD_262: &[Opt] = &[
    opt("help", false, Id::Help),
    opt("version", false, Id::Version),
    opt("root", true, Id::Root),
    opt("mutable", true, Id::Mutable),
    opt("image-policy", true, Id::ImagePolicy),
    opt("noexec", true, Id::Noexec),
    opt("force", false, Id::Force),
    opt("no-reload", false, Id::NoReload),
    opt("always-refresh", true, Id::AlwaysRefresh),
    opt("no-pager", false, Id::NoPager),
    opt("no-legend", false, Id::NoLegend),
    opt("json", true, Id::Json),
    opt("introspect-cli", false, Id::IntrospectCli),
];

/// libsysext's own (`--help --verbose` lists them).
const OURS: &[Opt] = &[
    opt("long", false, Id::Long),
    opt("always-refresh", true, Id::AlwaysRefresh),
    opt("allow-block-devices", false, Id::AllowBlockDevices),
    opt("compat", true, Id::Compat),
    opt("confext", false, Id::Confext),
    opt("sysext", false, Id::Sysext),
    opt("verbose", false, Id::Verbose),
];

fn systemd_options(level: Compat) -> &'static [Opt] {
    match level {
        Compat::V257 => SYSTEMD_257,
        Compat::V262 => SYSTEMD_262,
    }
}

/// What a long option's name (or a prefix of it) matches in a table.
#[derive(Debug)]
enum Found {
    One(&'static Opt),
    Ambiguous(Vec<&'static Opt>),
    Nothing,
}

/// The option `name` names in `table`: an exact name first, else the one option it is a
/// prefix of. An empty name is a prefix of every option for getopt (257), of none for 262.
fn find(table: &'static [Opt], name: &str, empty_is_prefix: bool) -> Found {
    if let Some(o) = table.iter().find(|o| o.name == name) {
        return Found::One(o);
    }
    if name.is_empty() && !empty_is_prefix {
        return Found::Nothing;
    }
    let m: Vec<&'static Opt> = table.iter().filter(|o| o.name.starts_with(name)).collect();
    match m.as_slice() {
        [] => Found::Nothing,
        [o] => Found::One(o),
        _ => Found::Ambiguous(m),
    }
}

/// The level's messages for a command line it cannot read. 257's are glibc getopt's: the
/// program as invoked (`argv[0]`), the whole word of an unknown option, the option's full
/// name where one was found. 262's name the program by its file name and repeat what was
/// typed.
struct Messages<'a> {
    level: Compat,
    argv0: &'a str,
    prog: &'a str,
}

impl Messages<'_> {
    fn unknown_long(&self, name: &str, attached: Option<&str>) -> String {
        match self.level {
            Compat::V257 => {
                let attached = attached.map(|v| format!("={v}")).unwrap_or_default();
                format!("{}: unrecognized option '--{name}{attached}'", self.argv0)
            }
            Compat::V262 => format!("{}: unrecognized option '--{name}'", self.prog),
        }
    }

    fn ambiguous(&self, name: &str, attached: Option<&str>, candidates: &[&Opt]) -> String {
        match self.level {
            Compat::V257 => {
                let attached = attached.map(|v| format!("={v}")).unwrap_or_default();
                let list: String = candidates
                    .iter()
                    .map(|o| format!(" '--{}'", o.name))
                    .collect();
                format!(
                    "{}: option '--{name}{attached}' is ambiguous; possibilities:{list}",
                    self.argv0
                )
            }
            Compat::V262 => {
                let list: Vec<String> =
                    candidates.iter().map(|o| format!("--{}", o.name)).collect();
                format!(
                    "{}: option '--{name}' is ambiguous; possibilities: {}",
                    self.prog,
                    list.join(", ")
                )
            }
        }
    }

    /// `what`: "doesn't allow an argument" or "requires an argument".
    fn about(&self, given: &str, o: &Opt, what: &str) -> String {
        match self.level {
            Compat::V257 => format!("{}: option '--{}' {what}", self.argv0, o.name),
            Compat::V262 => format!("{}: option '--{given}' {what}", self.prog),
        }
    }

    fn unknown_short(&self, c: char) -> String {
        match self.level {
            Compat::V257 => format!("{}: invalid option -- '{c}'", self.argv0),
            Compat::V262 => format!("{}: unrecognized option '-{c}'", self.prog),
        }
    }

    fn bad_bool(&self, option: &str, v: &str) -> String {
        match self.level {
            Compat::V257 => format!("Failed to parse boolean argument to --{option}: {v}."),
            Compat::V262 => format!("Failed to parse boolean argument to '--{option}': {v}"),
        }
    }
}

/// `--help` as the level's systemd prints it (`{prog}`, `{what}` filled in).
const HELP_257: &str = "\
{prog} [OPTIONS...] COMMAND

{what}

Commands:
  status                  Show current merge status (default)
  merge                   Merge extensions into relevant hierarchies
  unmerge                 Unmerge extensions from relevant hierarchies
  refresh                 Unmerge/merge extensions again
  list                    List installed extensions
  -h --help               Show this help
     --version            Show package version

Options:
     --mutable=yes|no|auto|import|ephemeral|ephemeral-import
                          Specify a mutability mode of the merged hierarchy
     --no-pager           Do not pipe output into a pager
     --no-legend          Do not show the headers and footers
     --root=PATH          Operate relative to root path
     --json=pretty|short|off
                          Generate JSON output
     --force              Ignore version incompatibilities
     --no-reload          Do not reload the service manager
     --image-policy=POLICY
                          Specify disk image dissection policy
     --noexec=BOOL        Whether to mount extension overlay with noexec

See the {prog}(8) man page for details.
";

const HELP_262: &str = "\
> {prog} [OPTION\u{2026}] COMMAND \u{2026}

{what}

Commands:
  [status]                 Show current merge status (default)
  merge                    Merge extensions into relevant hierarchies
  unmerge                  Unmerge extensions from relevant hierarchies
  refresh                  Unmerge/merge extensions again
  list                     List installed extensions

Options:
  -h --help                Show this help
     --version             Show package version
     --root=PATH           Operate relative to root PATH
     --mutable=MODE        Specify a mutability mode (yes, no, auto, import,
                           ephemeral, ephemeral-import, help)
     --image-policy=POLICY Specify disk image dissection policy
     --noexec=BOOL         Whether to mount extension overlay with noexec
     --force               Ignore version incompatibilities
     --no-reload           Do not reload the service manager
     --always-refresh=BOOL Whether to refresh when no changes were found
     --no-pager            Do not start a pager
     --no-legend           Do not show headers and footers
     --json=FORMAT         Generate JSON output (pretty, short, or off)

See the {prog}(8) man page for details.
";

/// What libsysext adds to systemd's command line (`--help --verbose` lists it).
const HELP_OURS: &str = "
libsysext additions:
  add NAME...             Merge these extensions too, keeping the merged ones
  remove NAME...          Unmerge only these extensions, keeping the others
  plan                    Show what a merge would do, mounting nothing
  serve [ADDRESS]         Answer io.systemd.sysext Varlink calls on a socket
     --long               Also show the mutable mode (status) and what a merge
                          does with each image (list)
     --always-refresh=BOOL
                          Rebuild on refresh even if nothing changed
     --allow-block-devices
                          Use block devices in the search directories of --root
     --compat=257|262     Follow this systemd release where releases differ
                          (default: $LIBSYSEXT_COMPAT, else 262)
     --confext            Operate on confexts (same as invoking as 'confext')
     --sysext             Operate on sysexts
  -v --verbose            Also print why images were skipped
";

/// The help text: systemd's of the level, word for word; ours after it when verbose.
pub(crate) fn help_text(compat: Compat, class: ImageClass, prog: &str, verbose: bool) -> String {
    let what = match class {
        ImageClass::Sysext => "Merge system extension images into /usr/ and /opt/.",
        ImageClass::Confext => "Merge configuration extension images into /etc/.",
    };
    let base = match compat {
        Compat::V257 => HELP_257,
        Compat::V262 => HELP_262,
    };
    let mut out = base.replace("{prog}", prog).replace("{what}", what);
    if verbose {
        out.push_str(HELP_OURS);
    }
    out
}

/// The level from `--compat=` or the environment; `Err` for a bad `--compat=`.
fn level_of(compat_raw: Option<&str>) -> Result<Compat, String> {
    match compat_raw {
        Some(c) => Compat::parse(c)
            .ok_or_else(|| format!("Failed to parse argument to --compat=: {c} (known: 257, 262)")),
        None => match Compat::from_env() {
            Ok(c) => Ok(c.unwrap_or(Compat::NEWEST)),
            Err(v) => {
                eprintln!(
                    "Failed to parse {} environment variable value '{v}'. Ignoring.",
                    sysext::level::ENV
                );
                Ok(Compat::NEWEST)
            }
        },
    }
}

/// `--compat`'s value, found before the parse proper: the level decides which systemd's
/// options and messages apply. The words are read with the options of `level` (the
/// environment's), so that a value like the `--compat` of `--root --compat` stays a value.
fn compat_word(words: &[OsString], level: Compat) -> Option<String> {
    let mut p = lexopt::Parser::from_iter(words.iter().cloned());
    let mut found = None;
    while let Ok(Some(arg)) = p.next() {
        let Arg::Long(name) = arg else { continue };
        let name = name.to_string();
        let o = match find(systemd_options(level), &name, level == Compat::V257) {
            Found::One(o) => Some(o),
            Found::Ambiguous(_) => None,
            Found::Nothing => match find(OURS, &name, false) {
                Found::One(o) => Some(o),
                _ => None,
            },
        };
        match o {
            Some(o) if o.value => {
                let Ok(v) = p.value() else { break };
                if o.id == Id::Compat {
                    found = Some(v.to_string_lossy().into_owned());
                }
            }
            _ => {
                let _ = p.optional_value();
            }
        }
    }
    found
}

/// A word as UTF-8 (our options and paths are strings).
fn utf8(prog: &str, w: OsString) -> Result<String, String> {
    w.into_string().map_err(|w| {
        format!(
            "{prog}: argument is not valid UTF-8: {}",
            w.to_string_lossy()
        )
    })
}

/// Parse the command line (`argv[0]` first). `Ok(None)`: the command line was answered
/// already (help, version, a list of values); `Err`: the message to print, exit status 1.
pub(crate) fn parse_args<I>(argv: I) -> Result<Option<Args>, String>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let words: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let argv0 = words
        .first()
        .map(|w| w.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prog = argv0.rsplit('/').next().unwrap_or(&argv0).to_string();
    let class = if prog.contains("systemd-confext") || prog == "confext" {
        ImageClass::Confext
    } else {
        ImageClass::Sysext
    };
    // The words are read for --compat with the environment's level (a bad value is
    // reported by level_of, only if no --compat overrides it).
    let env_level = Compat::from_env().ok().flatten().unwrap_or(Compat::NEWEST);
    let compat = level_of(compat_word(&words, env_level).as_deref())?;
    let msg = Messages {
        level: compat,
        argv0: &argv0,
        prog: &prog,
    };
    let mut a = Args::defaults(class, compat);
    let mut positional = Vec::new();
    let mut p = lexopt::Parser::from_iter(words);
    loop {
        let arg = match p.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            // Only a value left unread after `-x=...`: getopt reads `=` as the next short
            // option (and knows none by that name).
            Err(_) => return Err(msg.unknown_short('=')),
        };
        match arg {
            Arg::Value(w) => positional.push(utf8(&prog, w)?),
            Arg::Short('h') => return help(&a, &prog),
            Arg::Short('v') => a.verbose = true,
            Arg::Short(c) => return Err(msg.unknown_short(c)),
            Arg::Long(name) => {
                let name = name.to_string();
                let (o, value) = long_option(&mut p, &name, &msg, &prog)?;
                if let Some(done) = apply(&mut a, o.id, value.unwrap_or_default(), &msg, &prog)? {
                    return done;
                }
            }
        }
    }
    let mut pos = positional.into_iter();
    a.verb = pos.next().unwrap_or_else(|| "status".into());
    a.names = pos.collect();
    check_verb(&a)?;
    if a.verb == "help" {
        return help(&a, &prog);
    }
    Ok(Some(a))
}

/// The long option `name` (the level's systemd's, by any unambiguous prefix, else ours by
/// its full name) and its value, read as systemd reads them; `Err`: systemd's message.
fn long_option(
    p: &mut lexopt::Parser,
    name: &str,
    msg: &Messages,
    prog: &str,
) -> Result<(&'static Opt, Option<String>), String> {
    let compat = msg.level;
    let o = match find(systemd_options(compat), name, compat == Compat::V257) {
        Found::One(o) => o,
        Found::Ambiguous(c) => {
            let attached = p.optional_value().map(|v| v.to_string_lossy().into_owned());
            return Err(msg.ambiguous(name, attached.as_deref(), &c));
        }
        Found::Nothing => match find(OURS, name, false) {
            Found::One(o) => o,
            _ => {
                let attached = p.optional_value().map(|v| v.to_string_lossy().into_owned());
                return Err(msg.unknown_long(name, attached.as_deref()));
            }
        },
    };
    let value = if o.value {
        match p.value() {
            Ok(v) => Some(utf8(prog, v)?),
            Err(_) => return Err(msg.about(name, o, "requires an argument")),
        }
    } else {
        if p.optional_value().is_some() {
            return Err(msg.about(name, o, "doesn't allow an argument"));
        }
        None
    };
    Ok((o, value))
}

impl Args {
    /// Every option at its default, before the words are read (no verb yet).
    fn defaults(class: ImageClass, compat: Compat) -> Args {
        Args {
            class,
            root: None,
            force: false,
            no_reload: false,
            noexec: None,
            image_policy: None,
            mutable: None,
            json: Json::Off,
            no_legend: false,
            no_pager: false,
            long: false,
            verbose: false,
            always_refresh: false,
            allow_block_devices: false,
            compat,
            verb: String::new(),
            names: Vec::new(),
        }
    }
}

fn help(a: &Args, prog: &str) -> Result<Option<Args>, String> {
    print!("{}", help_text(a.compat, a.class, prog, a.verbose));
    Ok(None)
}

/// One option, where it stands. `Ok(Some(result))` ends the parse with that result.
#[allow(clippy::type_complexity)]
fn apply(
    a: &mut Args,
    id: Id,
    v: String,
    msg: &Messages,
    prog: &str,
) -> Result<Option<Result<Option<Args>, String>>, String> {
    match id {
        Id::Help => return Ok(Some(help(a, prog))),
        Id::Version => {
            // systemd's first line, which scripts parse for the version number, with the
            // level's number and our own name and version where systemd has its package's.
            println!(
                "systemd {} (libsysext {})",
                a.compat.version(),
                sysext::VERSION
            );
            return Ok(Some(Ok(None)));
        }
        Id::IntrospectCli => {
            return Err(format!(
                "{prog}: option '--introspect-cli' is not implemented by libsysext"
            ))
        }
        Id::Root => a.root = Some(v),
        Id::Force => a.force = true,
        Id::NoReload => a.no_reload = true,
        Id::NoPager => a.no_pager = true,
        Id::NoLegend => a.no_legend = true,
        Id::Long => a.long = true,
        Id::Confext => a.class = ImageClass::Confext,
        Id::Sysext => a.class = ImageClass::Sysext,
        Id::Verbose => a.verbose = true,
        Id::AllowBlockDevices => a.allow_block_devices = true,
        Id::Compat => {} // read before the parse (compat_word)
        Id::ImagePolicy => {
            check_image_policy(&v, a.compat)?;
            a.image_policy = Some(v);
        }
        Id::Noexec => {
            a.noexec =
                Some(sysext::release::parse_bool(&v).ok_or_else(|| msg.bad_bool("noexec", &v))?)
        }
        Id::AlwaysRefresh => {
            a.always_refresh =
                sysext::release::parse_bool(&v).ok_or_else(|| msg.bad_bool("always-refresh", &v))?
        }
        Id::Json => {
            a.json = match v.as_str() {
                "short" => Json::Short,
                "pretty" => Json::Pretty,
                "off" => Json::Off,
                "help" => {
                    println!("pretty\nshort\noff");
                    return Ok(Some(Ok(None)));
                }
                _ => return Err(format!("Unknown argument to --json= switch: {v}")),
            }
        }
        Id::Mutable => {
            if v == "help" && a.compat.has_mutable_help() {
                println!("Known mutability modes:");
                for mode in MutableMode::ALL {
                    println!("{mode}");
                }
                return Ok(Some(Ok(None)));
            }
            a.mutable = Some(
                MutableMode::parse_systemd(&v)
                    .ok_or_else(|| format!("Failed to parse argument to --mutable=: {v}"))?,
            );
        }
    }
    Ok(None)
}

/// An `--image-policy=` value that the level's systemd refuses, refused where it stands and
/// in its words (which name the kind of fault, not the rule: `--verbose` on a merge says more).
fn check_image_policy(v: &str, level: Compat) -> Result<(), String> {
    use sysext::image::PolicyParseErrorKind as K;
    let kind = match sysext::image::ImagePolicy::parse(v) {
        Ok(p) if p.uses_post_257_flags() && !level.knows_policy_fs_flags() => {
            "Unknown partition policy flag in"
        }
        Ok(_) => return Ok(()),
        Err(e) => match e.kind {
            K::DuplicateDesignator(_) | K::DuplicateDefault => "Duplicate rule in",
            K::UnknownDesignator(_) => "Unknown partition type in",
            K::UnknownFlag(_) => "Unknown partition policy flag in",
            K::MissingEquals(_) => "Failed to parse",
        },
    };
    Err(format!("{kind} image policy: {v}"))
}

/// The verb and the number of names it takes.
fn check_verb(a: &Args) -> Result<(), String> {
    match a.verb.as_str() {
        "status" | "list" | "refresh" | "plan" | "help" | "merge" | "unmerge" => {
            if !a.names.is_empty() {
                return Err("Too many arguments.".into());
            }
        }
        "serve" => {
            if a.names.len() > 1 {
                return Err("Too many arguments.".into());
            }
        }
        "add" | "remove" => {
            if a.names.is_empty() {
                return Err("Too few arguments.".into());
            }
        }
        v => {
            return Err(match closest_verb(v) {
                Some(c) => format!("Unknown command verb '{v}', did you mean '{c}'?"),
                None => format!("Unknown command verb '{v}'."),
            })
        }
    }
    Ok(())
}

/// systemd-sysext's verbs, in the order of its table, then ours.
const SYSTEMD_VERBS: [&str; 6] = ["status", "merge", "unmerge", "refresh", "list", "help"];
const OUR_VERBS: [&str; 4] = ["add", "remove", "plan", "serve"];

/// The verb a mistyped one probably meant, as systemd suggests it (the shortest verb that
/// starts with it, else the nearest by edit distance when at most 5 edits away), among
/// systemd's verbs first, so that the suggestion is systemd's where it has one.
fn closest_verb(v: &str) -> Option<&'static str> {
    closest_in(&SYSTEMD_VERBS, v).or_else(|| closest_in(&OUR_VERBS, v))
}

fn closest_in(verbs: &[&'static str], v: &str) -> Option<&'static str> {
    if let Some(p) = verbs
        .iter()
        .filter(|c| c.starts_with(v))
        .min_by_key(|c| c.len())
    {
        return Some(p);
    }
    let mut best: Option<(usize, &'static str)> = None;
    for &c in verbs {
        let d = edit_distance(c, v);
        if d <= 5 && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance (insertions, deletions and substitutions cost 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(level: &str, words: &[&str]) -> Result<Option<Args>, String> {
        // The level comes from --compat here, so that the tests do not depend on the
        // environment's LIBSYSEXT_COMPAT.
        let mut argv = vec!["/usr/bin/sysext".to_string(), format!("--compat={level}")];
        argv.extend(words.iter().map(|w| w.to_string()));
        parse_args(argv)
    }

    fn parsed(level: &str, words: &[&str]) -> Args {
        at(level, words).unwrap().unwrap()
    }

    #[test]
    fn long_options_take_any_unambiguous_prefix() {
        for level in ["257", "262"] {
            let a = parsed(
                level,
                &["--mut=ephemeral", "--no-p", "--ro", "/r", "--f", "merge"],
            );
            assert_eq!(a.mutable, Some(MutableMode::Ephemeral));
            // Values are not abbreviated.
            assert!(at(level, &["--mut=eph"]).is_err());
            assert!(a.no_pager && a.force);
            assert_eq!(a.root.as_deref(), Some("/r"));
            assert_eq!(a.verb, "merge");
        }
        // Ours only where no option of systemd's matches: --l is --long, --al... is
        // systemd's --always-refresh at 262 and ambiguous among ours at 257.
        assert!(parsed("257", &["--l"]).long);
        assert!(parsed("262", &["--al=yes"]).always_refresh);
        assert_eq!(
            at("257", &["--al=yes"]).unwrap_err(),
            "/usr/bin/sysext: unrecognized option '--al=yes'"
        );
    }

    #[test]
    fn messages_are_the_levels() {
        // (words, 257's message, 262's), as systemd-sysext 257.13 and 262.1 print them.
        let cases: &[(&[&str], &str, &str)] = &[
            (
                &["--frob=1"],
                "/usr/bin/sysext: unrecognized option '--frob=1'",
                "sysext: unrecognized option '--frob'",
            ),
            (
                &["--no=1"],
                "/usr/bin/sysext: option '--no=1' is ambiguous; possibilities: '--no-pager' '--no-legend' '--noexec' '--no-reload'",
                "sysext: option '--no' is ambiguous; possibilities: --noexec, --no-reload, --no-pager, --no-legend",
            ),
            (
                &["--f=1"],
                "/usr/bin/sysext: option '--force' doesn't allow an argument",
                "sysext: option '--f' doesn't allow an argument",
            ),
            (
                &["--r"],
                "/usr/bin/sysext: option '--root' requires an argument",
                "sysext: option '--r' requires an argument",
            ),
            (
                &["-x"],
                "/usr/bin/sysext: invalid option -- 'x'",
                "sysext: unrecognized option '-x'",
            ),
            (
                &["--noexec=maybe"],
                "Failed to parse boolean argument to --noexec: maybe.",
                "Failed to parse boolean argument to '--noexec': maybe",
            ),
            (
                &["--image-policy=root=verity:"],
                "Failed to parse image policy: root=verity:",
                "Failed to parse image policy: root=verity:",
            ),
            (
                &["--image-policy=root=erofs"],
                "Unknown partition policy flag in image policy: root=erofs",
                "",
            ),
        ];
        for (words, m257, m262) in cases {
            assert_eq!(at("257", words).unwrap_err(), *m257, "{words:?}");
            match at("262", words) {
                Err(e) => assert_eq!(e, *m262, "{words:?}"),
                Ok(_) => assert!(m262.is_empty(), "{words:?} accepted at 262"),
            }
        }
        // --=x: an empty name is a prefix of every option for getopt, of none for 262.
        assert!(at("257", &["--=x"])
            .unwrap_err()
            .ends_with("is ambiguous; possibilities: '--help' '--version' '--no-pager' '--no-legend' '--root' '--json' '--force' '--image-policy' '--noexec' '--no-reload' '--mutable'"));
        assert_eq!(
            at("262", &["--=x"]).unwrap_err(),
            "sysext: unrecognized option '--'"
        );
    }

    #[test]
    fn options_act_where_they_stand() {
        for level in ["257", "262"] {
            // The first fault is the one reported; help ends the parse before later faults.
            assert!(at(level, &["--json=bad", "--frob"])
                .unwrap_err()
                .starts_with("Unknown argument to --json= switch"));
            assert!(at(level, &["--frob", "--json=bad"])
                .unwrap_err()
                .contains("unrecognized option '--frob"));
            assert!(at(level, &["--help", "--frob"]).unwrap().is_none());
            assert!(at(level, &["-h=3"]).unwrap().is_none());
            assert!(at(level, &["--image-policy=x", "-x"])
                .unwrap_err()
                .starts_with("Failed to parse image policy: x"));
        }
        // After --, everything is a verb or a name.
        assert_eq!(
            at("262", &["--", "--help"]).unwrap_err(),
            "Unknown command verb '--help', did you mean 'help'?"
        );
        assert_eq!(parsed("257", &["--", "add", "--x"]).names, ["--x"]);
    }
}
