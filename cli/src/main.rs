//! `sysext`: a systemd-sysext compatible command line tool on top of libsysext.
//! Invoked as `confext` or `systemd-confext` (or with `--confext`) it handles confexts.

mod output;
mod table;
mod term;
mod varlink;

use std::process::ExitCode;
use std::sync::Arc;
use sysext::{Compat, Context, Event, ImageClass, Level, MutableMode, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Json {
    Off,
    Short,
    Pretty,
}

#[derive(Debug)]
struct Args {
    class: ImageClass,
    root: Option<String>,
    force: bool,
    no_reload: bool,
    noexec: Option<bool>,
    image_policy: Option<String>,
    mutable: Option<MutableMode>,
    json: Json,
    no_legend: bool,
    no_pager: bool,
    long: bool,
    verbose: bool,
    always_refresh: bool,
    allow_block_devices: bool,
    compat: Compat,
    verb: String,
    names: Vec<String>,
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
fn help_text(compat: Compat, class: ImageClass, prog: &str, verbose: bool) -> String {
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
fn level_of(compat_raw: Option<String>) -> Result<Compat, String> {
    match compat_raw {
        Some(c) => Compat::parse(&c)
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

fn parse_args(argv: Vec<String>) -> Result<Option<Args>, String> {
    let prog = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let class = if prog.contains("systemd-confext") || prog == "confext" {
        ImageClass::Confext
    } else {
        ImageClass::Sysext
    };
    let mut a = Args {
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
        compat: Compat::NEWEST,
        verb: String::new(),
        names: Vec::new(),
    };
    let mut positional = Vec::new();
    let mut i = 1;
    let mut help = false;
    let mut version = false;
    let mut mutable_raw: Option<String> = None;
    let mut compat_raw: Option<String> = None;
    let mut always_refresh_raw: Option<String> = None;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            positional.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            // Options with a required argument take the next word when not inline.
            let needs = matches!(
                name,
                "root"
                    | "noexec"
                    | "image-policy"
                    | "mutable"
                    | "json"
                    | "compat"
                    | "always-refresh"
            );
            let value = if needs {
                match inline {
                    Some(v) => Some(v),
                    None if i < argv.len() => {
                        i += 1;
                        Some(argv[i - 1].clone())
                    }
                    None => return Err(format!("{prog}: option '--{name}' requires an argument")),
                }
            } else {
                if inline.is_some() {
                    return Err(format!(
                        "{prog}: option '--{name}' doesn't allow an argument"
                    ));
                }
                None
            };
            match name {
                "help" => help = true,
                "version" => version = true,
                "root" => a.root = value,
                "force" => a.force = true,
                "no-reload" => a.no_reload = true,
                "no-pager" => a.no_pager = true,
                "long" => a.long = true,
                "no-legend" => a.no_legend = true,
                "confext" => a.class = ImageClass::Confext,
                "sysext" => a.class = ImageClass::Sysext,
                "verbose" => a.verbose = true,
                "always-refresh" => always_refresh_raw = value,
                "allow-block-devices" => a.allow_block_devices = true,
                "compat" => compat_raw = value,
                "noexec" => {
                    let v = value.unwrap_or_default();
                    a.noexec = Some(
                        sysext::release::parse_bool(&v)
                            .ok_or_else(|| format!("Failed to parse --noexec= argument: {v}"))?,
                    );
                }
                "image-policy" => a.image_policy = value,
                "mutable" => mutable_raw = value,
                "json" => {
                    a.json = match value.as_deref().unwrap_or("") {
                        "short" => Json::Short,
                        "pretty" => Json::Pretty,
                        "off" => Json::Off,
                        "help" => {
                            println!("pretty\nshort\noff");
                            return Ok(None);
                        }
                        v => return Err(format!("Unknown argument to --json= switch: {v}")),
                    }
                }
                _ => return Err(format!("{prog}: unrecognized option '--{name}'")),
            }
        } else if arg.starts_with('-') && arg.len() > 1 {
            for c in arg[1..].chars() {
                match c {
                    'h' => help = true,
                    'v' => a.verbose = true,
                    _ => return Err(format!("{prog}: invalid option -- '{c}'")),
                }
            }
        } else {
            positional.push(arg.clone());
        }
    }
    // The level first: it decides how the other options read, and which help is shown.
    // The flag wins over the environment.
    a.compat = level_of(compat_raw)?;
    if help {
        print!("{}", help_text(a.compat, a.class, &prog, a.verbose));
        return Ok(None);
    }
    if version {
        // systemd's first line, which scripts parse for the version number, with the
        // level's number and our own name and version where systemd has its package's.
        println!(
            "systemd {} (libsysext {})",
            a.compat.version(),
            sysext::VERSION
        );
        return Ok(None);
    }
    if let Some(v) = always_refresh_raw {
        a.always_refresh = sysext::release::parse_bool(&v).ok_or_else(|| {
            format!("Failed to parse boolean argument to '--always-refresh': {v}")
        })?;
    }
    if let Some(m) = mutable_raw {
        if m == "help" && a.compat.has_mutable_help() {
            println!("Known mutability modes:");
            for mode in MutableMode::ALL {
                println!("{mode}");
            }
            return Ok(None);
        }
        a.mutable = Some(
            MutableMode::parse_systemd(&m)
                .ok_or_else(|| format!("Failed to parse argument to --mutable=: {m}"))?,
        );
    }
    let mut pos = positional.into_iter();
    a.verb = pos.next().unwrap_or_else(|| "status".into());
    a.names = pos.collect();
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
    if a.verb == "help" {
        print!("{}", help_text(a.compat, a.class, &prog, a.verbose));
        return Ok(None);
    }
    Ok(Some(a))
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

fn systemd_is_pid1() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

fn reload_manager() -> Result<(), String> {
    let st = std::process::Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .map_err(|e| {
            format!(
                "Failed to run systemctl daemon-reload: {}",
                os_text(e.raw_os_error().unwrap_or(libc::EIO))
            )
        })?;
    if st.success() {
        Ok(())
    } else {
        Err("Failed to reload the service manager.".into())
    }
}

/// Restart (and reload-or-restart) the units the extensions ask for, after the manager
/// reload; on unmerge a unit whose file went away with the extension is stopped instead.
fn restart_units(units: &sysext::release::UnitRequests, unmerge: bool) -> Result<(), String> {
    let systemctl = |args: &[&str]| -> Result<(), String> {
        let st = std::process::Command::new("systemctl")
            .args(args)
            .status()
            .map_err(|e| format!("Failed to run systemctl: {e}"))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("Failed to {} unit(s).", args[0]))
        }
    };
    let gone = |u: &str| {
        unmerge
            && std::process::Command::new("systemctl")
                .args(["show", "--property=LoadState", "--value", u])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "not-found")
                .unwrap_or(false)
    };
    let mut first_err = Ok(());
    for (verb, list) in [
        ("restart", &units.restart),
        ("reload-or-restart", &units.reload_or_restart),
    ] {
        for u in list {
            let r = if gone(u) {
                systemctl(&["stop", "--", u])
            } else {
                systemctl(&[verb, "--", u])
            };
            if first_err.is_ok() {
                first_err = r;
            }
        }
    }
    first_err
}

fn run(a: Args) -> Result<(), String> {
    let verbose = a.verbose
        || std::env::var("SYSTEMD_LOG_LEVEL")
            .map(|v| v == "debug")
            .unwrap_or(false);
    let mut opts = Options::new(a.class);
    opts.root = a.root.clone();
    opts.mutable = a.mutable;
    opts.force = a.force;
    opts.noexec = a.noexec;
    opts.image_policy = a.image_policy.clone();
    opts.always_refresh = a.always_refresh;
    opts.no_reload = a.no_reload;
    opts.allow_block_devices = a.allow_block_devices;
    opts.compat = Some(a.compat);
    if a.compat.reads_overlayfs_mount_options_env() {
        // Set, even to nothing, it replaces the default options (as in systemd).
        opts.overlay_options = std::env::var(sysext::overlayopts::env_name(a.class)).ok();
    }
    opts.sink = Arc::new(move |e: &Event| {
        if e.level() >= Level::Info || verbose {
            eprintln!("{e}");
        }
    });
    if a.verb == "serve" {
        // The options are the defaults of every call (see varlink.rs).
        return varlink::serve(opts, a.names.first().map(String::as_str));
    }
    let json = match a.json {
        Json::Off => None,
        Json::Short => Some(false),
        Json::Pretty => Some(true),
    };
    let look = output::Look {
        colors: term::Colors::detect(a.compat.writes_grey_twice()),
        legend: !a.no_legend,
        long: a.long,
    };
    // 257 lists nothing for a root that does not exist; 262 fails discovery.
    if a.verb == "list" && missing_root(&a) {
        if !a.compat.fails_list_of_missing_root() {
            output::list(&[], json, look);
            return Ok(());
        }
        return Err(format!(
            "Failed to discover images: {}",
            os_text(libc::ENOENT)
        ));
    }
    // Both systemds show an empty status for a root that does not exist (262 after its
    // config-file warnings).
    if a.verb == "status" && missing_root(&a) {
        if a.compat.reads_config_files() {
            eprintln!(
                "Failed to open root directory '{}': {}",
                a.root.as_deref().unwrap_or_default(),
                os_text(libc::ENOENT)
            );
            eprintln!(
                "Failed to parse {} config file, ignoring: {}",
                a.class.info().short,
                os_text(libc::ENOENT)
            );
        }
        output::status(&[], a.compat.status_lists_unmerged_as_empty(), json, look);
        return Ok(());
    }
    let ctx = Context::new(opts).map_err(|e| e.to_string())?;
    let reload_allowed = !a.no_reload && a.root.is_none();
    match a.verb.as_str() {
        "status" => {
            let rows = ctx.status().map_err(|e| e.to_string())?;
            // An interrupted operation is reported on stderr (stdout stays systemd's).
            if let Some(v) = rows.iter().find_map(|r| r.interrupted.clone()) {
                eprintln!(
                    "Warning: an interrupted {v} left this root half-done; the next merge, \
                     refresh or unmerge repairs it first."
                );
            }
            let _pager = json
                .is_none()
                .then(|| term::Pager::start(a.no_pager))
                .flatten();
            output::status(&rows, a.compat.status_lists_unmerged_as_empty(), json, look);
        }
        "list" => {
            let imgs = ctx.list().map_err(|e| e.to_string())?;
            let _pager = json
                .is_none()
                .then(|| term::Pager::start(a.no_pager))
                .flatten();
            output::list(&imgs, json, look);
        }
        "plan" => {
            let p = ctx.plan().map_err(|e| e.to_string())?;
            output::plan(&p, json);
        }
        "merge" | "refresh" | "unmerge" | "add" | "remove" => {
            let r = match a.verb.as_str() {
                "merge" => ctx.merge(),
                "add" => ctx.merge_names(&a.names),
                "refresh" => ctx.refresh(),
                "unmerge" => ctx.unmerge(),
                _ => ctx.unmerge_names(&a.names),
            };
            let r = r.map_err(|e| match e {
                sysext::Error::AlreadyMerged { .. } | sysext::Error::NotPrivileged => e.to_string(),
                sysext::Error::Metadata {
                    ref image, errno, ..
                } => {
                    // systemd's words: the errno's text; ours (which names the file and
                    // the fields) before it when verbose.
                    let systemd = format!(
                        "Failed to read metadata for image {image}: {}",
                        os_text(errno)
                    );
                    if verbose && e.to_string() != systemd {
                        format!("{e}\n{systemd}")
                    } else {
                        systemd
                    }
                }
                sysext::Error::Image { .. } => image_message(&e, verbose),
                sysext::Error::ImagePolicy { ref image, .. } => {
                    // systemd's words; ours (which part, which policy) before them when verbose.
                    let systemd = format!(
                        "{image}: Image does not match image policy.\nFailed to merge hierarchies"
                    );
                    if verbose {
                        format!("{e}\n{systemd}")
                    } else {
                        systemd
                    }
                }
                sysext::Error::HierarchyNotDirectory {
                    ref hierarchy,
                    ref image,
                } => {
                    // systemd names the paths in its own staging directory.
                    let ws = format!("/run/systemd/{}/extensions", a.class.info().short);
                    format!(
                        "Failed to check if hierarchy '{ws}/{hierarchy}' in extension \
                         '{ws}/{image}' is empty: Not a directory\nFailed to merge hierarchies"
                    )
                }
                e => format!(
                    "{e}\nFailed to {} hierarchies",
                    if a.verb == "unmerge" || a.verb == "remove" {
                        "unmerge"
                    } else {
                        "merge"
                    }
                ),
            })?;
            if r.needs_reload && reload_allowed && systemd_is_pid1() {
                reload_manager()?;
                if a.compat.restarts_extension_units() {
                    restart_units(&r.units, a.verb == "unmerge")?;
                }
            }
        }
        _ => unreachable!(),
    }
    Ok(())
}

/// Whether `--root` names a directory that does not exist.
fn missing_root(a: &Args) -> bool {
    a.root.as_deref().is_some_and(
        |r| matches!(std::fs::metadata(r), Err(e) if e.kind() == std::io::ErrorKind::NotFound),
    )
}

/// An errno's text as C's strerror gives it (and systemd prints it).
fn os_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

/// A broken image, in systemd's words where systemd fails such an image alike ("Failed to
/// read metadata for image NAME: " and the errno's text), with our account of the part at
/// fault after it when verbose; in ours where systemd would not fail.
fn image_message(e: &sysext::Error, verbose: bool) -> String {
    let sysext::Error::Image { name, source, .. } = e else {
        return e.to_string();
    };
    if !source.systemd_fails_alike() {
        return format!("Failed to read metadata for image {name}: {e}");
    }
    let text = os_text(source.errno());
    let systemd = format!("Failed to read metadata for image {name}: {text}");
    if verbose {
        format!("{e}\n{systemd}")
    } else {
        systemd
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    match parse_args(argv) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(a)) => match run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(m) => {
                eprintln!("{m}");
                ExitCode::FAILURE
            }
        },
        Err(m) => {
            eprintln!("{m}");
            ExitCode::FAILURE
        }
    }
}
