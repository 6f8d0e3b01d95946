//! `sysext`: a systemd-sysext compatible command line tool on top of libsysext.
//! Invoked as `confext` or `systemd-confext` (or with `--confext`) it handles confexts.

// Functions short enough to read at once (the threshold is in clippy.toml).
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

mod args;
mod output;
mod table;
mod term;
mod varlink;

use args::{parse_args, Args, Json};
use std::process::ExitCode;
use std::sync::Arc;
use sysext::{Context, Event, Level, Options};

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
    let opts = options_for(&a, verbose);
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
    if matches!(a.verb.as_str(), "list" | "status" | "merge" | "refresh") && missing_root(&a) {
        if let Some(answer) = answer_for_missing_root(&a, json, look) {
            return answer;
        }
    }
    let ctx = Context::new(opts).map_err(|e| e.to_string())?;
    let pager = || {
        json.is_none()
            .then(|| term::Pager::start(a.no_pager))
            .flatten()
    };
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
            let _pager = pager();
            output::status(&rows, a.compat.status_lists_unmerged_as_empty(), json, look);
        }
        "list" => {
            let imgs = ctx.list().map_err(|e| e.to_string())?;
            let _pager = pager();
            output::list(&imgs, json, look);
        }
        "plan" => {
            let p = ctx.plan().map_err(|e| e.to_string())?;
            output::plan(&p, json);
        }
        "merge" | "refresh" | "unmerge" | "add" | "remove" => change(&ctx, &a, verbose)?,
        _ => unreachable!(),
    }
    Ok(())
}

/// The library's options from the command line (and, where the level reads it, the overlay
/// options' environment variable); events go to stderr, debug ones only when `verbose`.
fn options_for(a: &Args, verbose: bool) -> Options {
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
    opts
}

/// What the level's systemd answers for a `--root` that does not exist, for the verbs
/// where that differs from going on: `None` to go on.
fn answer_for_missing_root(
    a: &Args,
    json: Option<bool>,
    look: output::Look,
) -> Option<Result<(), String>> {
    let discovery_fails = || {
        Err(format!(
            "Failed to discover images: {}",
            os_text(libc::ENOENT)
        ))
    };
    match a.verb.as_str() {
        // 257 lists nothing for a root that does not exist; 262 fails discovery.
        "list" if !a.compat.fails_list_of_missing_root() => {
            output::list(&[], json, look);
            Some(Ok(()))
        }
        "list" => Some(discovery_fails()),
        // Both systemds show an empty status for a root that does not exist (262 after its
        // config-file warnings).
        "status" => {
            if a.compat.reads_config_files() {
                warn_missing_root(a);
            }
            output::status(&[], a.compat.status_lists_unmerged_as_empty(), json, look);
            Some(Ok(()))
        }
        // 262 goes on after its warnings and fails discovery on a merge or refresh.
        "merge" | "refresh" if a.compat.reads_config_files() => {
            warn_missing_root(a);
            Some(discovery_fails())
        }
        _ => None,
    }
}

/// A merge, refresh or unmerge (`add` and `remove` for named extensions), then the service
/// manager's reload and the extensions' units, as systemd does them after a change.
fn change(ctx: &Context, a: &Args, verbose: bool) -> Result<(), String> {
    let r = match a.verb.as_str() {
        "merge" => ctx.merge(),
        "add" => ctx.merge_names(&a.names),
        "refresh" => ctx.refresh(),
        "unmerge" => ctx.unmerge(),
        _ => ctx.unmerge_names(&a.names),
    };
    let r = r.map_err(|e| change_error_message(e, a, verbose))?;
    let reload_allowed = !a.no_reload && a.root.is_none();
    if r.needs_reload && reload_allowed && systemd_is_pid1() {
        reload_manager()?;
        if a.compat.restarts_extension_units() {
            restart_units(&r.units, a.verb == "unmerge")?;
        }
    }
    Ok(())
}

/// systemd's words for a failed change (with ours before them when `verbose`, where they
/// say more).
fn change_error_message(e: sysext::Error, a: &Args, verbose: bool) -> String {
    match e {
        sysext::Error::AlreadyMerged { .. } | sysext::Error::NotPrivileged => e.to_string(),
        sysext::Error::Metadata {
            ref image, errno, ..
        } => {
            // systemd's words: the errno's text; ours (which names the file and the
            // fields) before it when verbose.
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
            let systemd =
                format!("{image}: Image does not match image policy.\nFailed to merge hierarchies");
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
    }
}

/// 262's two warnings for a `--root` that does not exist (it goes on after them).
fn warn_missing_root(a: &Args) {
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
    match parse_args(std::env::args_os()) {
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
