//! `sysext serve`: a Varlink server speaking systemd's `io.systemd.sysext` interface
//! (Merge, Unmerge, Refresh, List), so that `varlinkctl` and other clients of
//! systemd-sysext drive libsysext.
//!
//! The wire protocol: each message is one JSON object followed by a NUL byte. A call is
//! `{"method": "iface.Method", "parameters": {...}, "more": bool, "oneway": bool}`; a reply is
//! `{"parameters": {...}}` (with `"continues": true` on all but the last reply of a `more`
//! call) or `{"error": "iface.Error", "parameters": {...}}`.
//!
//! Listening: on a socket passed by the service manager (`$LISTEN_FDS`, as systemd's
//! `systemd-sysext.socket` does with `Accept=yes`, or a listening socket with `Accept=no`),
//! else on a unix socket bound at the address given (default
//! `/run/systemd/io.systemd.sysext`, where systemd's clients look). A socket file left by a
//! server that is gone is replaced; one with a live server behind it is refused.
//!
//! Merge, Unmerge and Refresh need the caller to be root (`SO_PEERCRED`); List does not.
//! The options of the command line (`--root=`, `--mutable=`, `--compat=`, ...) are the
//! defaults of every call; a call's `class` picks sysext or confext.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde_json::{json, Map, Value};
use sysext::{Context, Error, Extension, ImageClass, ImageKind, Options};

/// Where systemd-sysext's socket unit listens, and so where its clients connect.
pub const DEFAULT_ADDRESS: &str = "/run/systemd/io.systemd.sysext";

/// The largest message accepted (as sd-varlink's limit).
const MAX_MESSAGE: u64 = 16 * 1024 * 1024;

/// The interfaces served, as `GetInterfaceDescription` returns them (the methods, types and
/// errors of systemd 262's definitions; the comments are ours).
const IO_SYSTEMD_SYSEXT: &str = "\
interface io.systemd.sysext

# Which kind of extension image a call is about.
type ImageClass(
\tsysext,
\tconfext
)

# How an image is stored.
type ImageType(
\tdirectory,
\tsubvolume,
\traw,
\tblock,
\tmstack
)

# Merge all found, compatible images (fails if a hierarchy is merged already).
method Merge(
\tclass: ?ImageClass,
\tforce: ?bool,
\tnoReload: ?bool,
\tnoexec: ?bool,
\t# Accepted and ignored: this server has no interactive authentication.
\tallowInteractiveAuthentication: ?bool
) -> ()

# Take the merge off every hierarchy.
method Unmerge(
\tclass: ?ImageClass,
\tnoReload: ?bool,
\t# Accepted and ignored.
\tallowInteractiveAuthentication: ?bool
) -> ()

# Merge again so that changed images take effect (gap-free where the kernel allows).
method Refresh(
\tclass: ?ImageClass,
\tforce: ?bool,
\tnoReload: ?bool,
\talwaysRefresh: ?bool,
\tnoexec: ?bool,
\t# Accepted and ignored.
\tallowInteractiveAuthentication: ?bool
) -> ()

# [Requires 'more' flag]
# One reply per image found.
method List(
\tclass: ?ImageClass,
\t# Accepted and ignored.
\tallowInteractiveAuthentication: ?bool
) -> (
\tClass: ImageClass,
\tType: ImageType,
\tName: string,
\tPath: ?string,
\tReadOnly: bool,
\tCreationTimestamp: ?int,
\tModificationTimestamp: ?int,
\tUsage: ?int,
\tUsageExclusive: ?int,
\tLimit: ?int,
\tLimitExclusive: ?int
)

# List found no image of the class.
error NoImagesFound()

# Merge found this hierarchy merged already.
error AlreadyMerged(
\thierarchy: string
)
";

const IO_SYSTEMD: &str = "\
interface io.systemd

# A system call failed: the Linux error number and its name.
error System(
\torigin: ?string,
\terrnoName: ?string,
\terrno: ?int
)
";

const ORG_VARLINK_SERVICE: &str = "\
interface org.varlink.service

# Who serves this socket, and which interfaces.
method GetInfo() -> (
\tvendor: string,
\tproduct: string,
\tversion: string,
\turl: string,
\tinterfaces: []string
)

# The definition of one interface.
method GetInterfaceDescription(
\tinterface: string
) -> (
\tdescription: string
)

error InterfaceNotFound(interface: string)

error MethodNotFound(method: string)

error MethodNotImplemented(method: string)

error InvalidParameter(parameter: string)

error PermissionDenied()

error ExpectedMore()
";

const INTERFACES: [(&str, &str); 3] = [
    ("io.systemd", IO_SYSTEMD),
    ("io.systemd.sysext", IO_SYSTEMD_SYSEXT),
    ("org.varlink.service", ORG_VARLINK_SERVICE),
];

/// One reply: parameters or an error with its parameters (serialized in the given order).
enum Reply {
    Ok(String),
    Err(&'static str, String),
}

fn obj(fields: &[(&str, Value)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&Value::String((*k).into()).to_string());
        s.push(':');
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

fn error(name: &'static str, fields: &[(&str, Value)]) -> Reply {
    Reply::Err(name, obj(fields))
}

fn invalid(parameter: &str) -> Reply {
    error(
        "org.varlink.service.InvalidParameter",
        &[("parameter", json!(parameter))],
    )
}

/// A library error as systemd-sysext's server reports it.
fn library_error(e: &Error) -> Reply {
    if let Error::AlreadyMerged { hierarchy, .. } = e {
        return error(
            "io.systemd.sysext.AlreadyMerged",
            &[("hierarchy", json!(hierarchy))],
        );
    }
    let errno = e.errno();
    let mut fields = vec![("origin", json!("linux"))];
    if let Some(name) = errno_name(errno) {
        fields.push(("errnoName", json!(name)));
    }
    fields.push(("errno", json!(errno)));
    error("io.systemd.System", &fields)
}

fn errno_name(e: i32) -> Option<&'static str> {
    use libc::*;
    Some(match e {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EIO => "EIO",
        ENXIO => "ENXIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EXDEV => "EXDEV",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        EMFILE => "EMFILE",
        ENOSPC => "ENOSPC",
        EROFS => "EROFS",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ELOOP => "ELOOP",
        ENODATA => "ENODATA",
        EPROTO => "EPROTO",
        EBADMSG => "EBADMSG",
        EOVERFLOW => "EOVERFLOW",
        EOPNOTSUPP => "EOPNOTSUPP",
        ETIMEDOUT => "ETIMEDOUT",
        ESTALE => "ESTALE",
        ENOMEDIUM => "ENOMEDIUM",
        EMEDIUMTYPE => "EMEDIUMTYPE",
        EKEYREJECTED => "EKEYREJECTED",
        ENOKEY => "ENOKEY",
        ENOTRECOVERABLE => "ENOTRECOVERABLE",
        _ => return None,
    })
}

/// The parameters of one call, checked against the method's inputs: known names only,
/// each a boolean (or null) except `class`, a string naming a class (or null).
struct Params {
    class: Option<ImageClass>,
    force: Option<bool>,
    no_reload: Option<bool>,
    noexec: Option<bool>,
    always_refresh: Option<bool>,
}

fn parse_params(params: &Map<String, Value>, allowed: &[&str]) -> Result<Params, Reply> {
    let mut p = Params {
        class: None,
        force: None,
        no_reload: None,
        noexec: None,
        always_refresh: None,
    };
    for (k, v) in params {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid(k));
        }
        if k == "class" {
            // As systemd-sysext 262: a null class is refused like an unknown one.
            p.class = match v {
                Value::String(s) if s == "sysext" => Some(ImageClass::Sysext),
                Value::String(s) if s == "confext" => Some(ImageClass::Confext),
                _ => return Err(invalid(k)),
            };
            continue;
        }
        let b = match v {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            _ => return Err(invalid(k)),
        };
        match k.as_str() {
            "force" => p.force = b,
            "noReload" => p.no_reload = b,
            "noexec" => p.noexec = b,
            "alwaysRefresh" => p.always_refresh = b,
            _ => {} // allowInteractiveAuthentication
        }
    }
    Ok(p)
}

/// The options of one call: the server's, with the call's parameters on top.
fn call_options(base: &Options, p: &Params) -> Options {
    let mut o = base.clone();
    if let Some(c) = p.class {
        o.class = c;
    }
    if let Some(f) = p.force {
        o.force = f;
    }
    if let Some(n) = p.no_reload {
        o.no_reload = n;
    }
    if let Some(n) = p.noexec {
        o.noexec = Some(n);
    }
    if let Some(a) = p.always_refresh {
        o.always_refresh = a;
    }
    o
}

fn micros(t: std::io::Result<std::time::SystemTime>) -> Option<u64> {
    let d = t.ok()?.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_micros()).ok()
}

/// One image as systemd-sysext's List reports it (its field order; null fields left out).
fn image_reply(class: ImageClass, img: &Extension, root: Option<&str>) -> String {
    let mut fields: Vec<(&str, Value)> = vec![
        ("Type", json!(img.kind.as_str())),
        ("Class", json!(class.info().short)),
        ("Name", json!(img.name)),
        ("Path", json!(img.path)),
    ];
    // The path as the library prints it; below --root it may be relative to the root.
    let on_disk = match root {
        Some(r) if !img.path.starts_with(r) => format!("{}{}", r.trim_end_matches('/'), img.path),
        _ => img.path.clone(),
    };
    let meta = std::fs::metadata(&on_disk).ok();
    let read_only = meta.as_ref().is_some_and(|m| {
        let no_write_bits = m.permissions().mode() & 0o222 == 0;
        let ro_fs = rustix::fs::statvfs(on_disk.as_str())
            .map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
            .unwrap_or(false);
        let immutable = std::fs::File::open(&on_disk)
            .ok()
            .and_then(|f| rustix::fs::ioctl_getflags(f.as_fd()).ok())
            .is_some_and(|fl| fl.contains(rustix::fs::IFlags::IMMUTABLE));
        (img.kind == ImageKind::Raw && no_write_bits) || ro_fs || immutable
    });
    fields.push(("ReadOnly", json!(read_only)));
    if let Some(m) = &meta {
        if let Some(c) = micros(m.created()) {
            fields.push(("CreationTimestamp", json!(c)));
        }
        if img.kind == ImageKind::Raw {
            if let Some(t) = micros(m.modified()) {
                fields.push(("ModificationTimestamp", json!(t)));
            }
            let usage = m.blocks() * 512;
            fields.push(("Usage", json!(usage)));
            fields.push(("UsageExclusive", json!(usage)));
            fields.push(("Limit", json!(m.size())));
            fields.push(("LimitExclusive", json!(m.size())));
        }
    }
    obj(&fields)
}

/// What the peer is: root may change the merge, anyone may list.
fn peer_is_root(s: &UnixStream) -> bool {
    rustix::net::sockopt::socket_peercred(s).is_ok_and(|c| c.uid.is_root())
}

/// The replies to one call: a method of the varlink service itself, or one of
/// io.systemd.sysext's, checked (parameters, `more`, the peer's rights) before it runs.
fn dispatch(base: &Options, call: &Map<String, Value>, more: bool, root_peer: bool) -> Vec<Reply> {
    let method = call.get("method").and_then(Value::as_str).unwrap_or("");
    let empty = Map::new();
    let params = match call.get("parameters") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return vec![invalid("parameters")],
    };
    let Some(verb_params) = sysext_parameters(method) else {
        return service_method(method, params);
    };
    if method == "io.systemd.sysext.List" && !more {
        return vec![error("org.varlink.service.ExpectedMore", &[])];
    }
    let p = match parse_params(params, verb_params) {
        Ok(p) => p,
        Err(r) => return vec![r],
    };
    if method != "io.systemd.sysext.List" && !root_peer {
        return vec![error("org.varlink.service.PermissionDenied", &[])];
    }
    run_sysext_method(method, call_options(base, &p))
}

/// The parameters an io.systemd.sysext method takes; `None` for any other method.
fn sysext_parameters(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "io.systemd.sysext.Merge" => &[
            "class",
            "force",
            "noReload",
            "noexec",
            "allowInteractiveAuthentication",
        ],
        "io.systemd.sysext.Unmerge" => &["class", "noReload", "allowInteractiveAuthentication"],
        "io.systemd.sysext.Refresh" => &[
            "class",
            "force",
            "noReload",
            "alwaysRefresh",
            "noexec",
            "allowInteractiveAuthentication",
        ],
        "io.systemd.sysext.List" => &["class", "allowInteractiveAuthentication"],
        _ => return None,
    })
}

/// org.varlink.service's GetInfo and GetInterfaceDescription; MethodNotFound for anything
/// else.
fn service_method(method: &str, params: &Map<String, Value>) -> Vec<Reply> {
    match method {
        "org.varlink.service.GetInfo" => {
            if let Some(k) = params.keys().next() {
                return vec![invalid(k)];
            }
            let names: Vec<&str> = INTERFACES.iter().map(|(n, _)| *n).collect();
            vec![Reply::Ok(obj(&[
                ("vendor", json!("libsysext")),
                ("product", json!("libsysext (sysext serve)")),
                ("version", json!(sysext::VERSION)),
                ("url", json!("https://docs.rs/sysext-core")),
                ("interfaces", json!(names)),
            ]))]
        }
        "org.varlink.service.GetInterfaceDescription" => {
            let Some(name) = params.get("interface").and_then(Value::as_str) else {
                return vec![invalid("interface")];
            };
            if let Some(k) = params.keys().find(|k| *k != "interface") {
                return vec![invalid(k)];
            }
            match INTERFACES.iter().find(|(n, _)| *n == name) {
                Some((_, d)) => vec![Reply::Ok(obj(&[("description", json!(d))]))],
                None => vec![error(
                    "org.varlink.service.InterfaceNotFound",
                    &[("interface", json!(name))],
                )],
            }
        }
        _ => vec![error(
            "org.varlink.service.MethodNotFound",
            &[("method", json!(method))],
        )],
    }
}

/// Merge, Unmerge, Refresh (one empty reply) or List (one reply per image) with `opts`.
fn run_sysext_method(method: &str, opts: Options) -> Vec<Reply> {
    let class = opts.class;
    let root = opts.root.clone();
    let ctx = match Context::new(opts) {
        Ok(c) => c,
        Err(e) => return vec![library_error(&e)],
    };
    let result = match method {
        "io.systemd.sysext.Merge" => ctx.merge(),
        "io.systemd.sysext.Unmerge" => ctx.unmerge(),
        "io.systemd.sysext.Refresh" => ctx.refresh(),
        _ => {
            return match ctx.list() {
                Err(e) => vec![library_error(&e)],
                Ok(imgs) if imgs.is_empty() => {
                    vec![error("io.systemd.sysext.NoImagesFound", &[])]
                }
                Ok(imgs) => imgs
                    .iter()
                    .map(|i| Reply::Ok(image_reply(class, i, root.as_deref())))
                    .collect(),
            };
        }
    };
    match result {
        Ok(_) => vec![Reply::Ok("{}".into())],
        Err(e) => {
            eprintln!("{method}: {e}");
            vec![library_error(&e)]
        }
    }
}

/// Serve one connection until the peer closes it or breaks the protocol.
fn serve_connection(stream: UnixStream, base: &Options) {
    let root_peer = peer_is_root(&stream);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    loop {
        let mut buf = Vec::new();
        match reader.by_ref().take(MAX_MESSAGE).read_until(0, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.pop() != Some(0) {
            // Too long, or the peer went away mid-message.
            return;
        }
        let Ok(Value::Object(call)) = serde_json::from_slice::<Value>(&buf) else {
            eprintln!("varlink: a message that is not a JSON object; closing the connection");
            return;
        };
        let more = call.get("more").and_then(Value::as_bool).unwrap_or(false);
        let oneway = call.get("oneway").and_then(Value::as_bool).unwrap_or(false);
        let replies = dispatch(base, &call, more, root_peer);
        if oneway {
            continue;
        }
        let n = replies.len();
        let mut wire = Vec::new();
        for (i, r) in replies.into_iter().enumerate() {
            let msg = match r {
                Reply::Ok(p) if more && i + 1 < n => {
                    format!("{{\"parameters\":{p},\"continues\":true}}")
                }
                Reply::Ok(p) => format!("{{\"parameters\":{p}}}"),
                Reply::Err(name, p) => format!("{{\"error\":\"{name}\",\"parameters\":{p}}}"),
            };
            wire.extend_from_slice(msg.as_bytes());
            wire.push(0);
        }
        if out.write_all(&wire).is_err() {
            return;
        }
    }
}

/// The socket passed by the service manager, if any (sd_listen_fds semantics: fd 3, when
/// `$LISTEN_PID` is this process).
fn inherited_socket() -> Result<Option<OwnedFd>, String> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if !pid_ok || n == 0 {
        return Ok(None);
    }
    if n > 1 {
        return Err(format!(
            "Expected one socket from the service manager, got {n}."
        ));
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    take_fd3().map(Some)
}

/// Take ownership of fd 3, checking first that it is an open socket.
#[allow(unsafe_code)]
fn take_fd3() -> Result<OwnedFd, String> {
    // SAFETY: borrowed only for fstat(2); a closed fd makes fstat fail.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(3) };
    let st = rustix::fs::fstat(borrowed).map_err(|e| format!("Inherited fd 3: {e}"))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        return Err("Inherited fd 3 is not a socket.".into());
    }
    // SAFETY: $LISTEN_PID names this process, so the service manager passed fd 3 to it and
    // nothing else in the process owns it; it is open (fstat succeeded).
    Ok(unsafe { OwnedFd::from_raw_fd(3) })
}

/// Bind a unix socket at `path`, replacing a stale socket file, refusing a live one.
fn bind(path: &str) -> Result<UnixListener, String> {
    let p = Path::new(path);
    if let Ok(m) = std::fs::symlink_metadata(p) {
        if !m.file_type().is_socket() {
            return Err(format!(
                "Failed to listen on {path}: exists and is not a socket."
            ));
        }
        if UnixStream::connect(p).is_ok() {
            return Err(format!(
                "Failed to listen on {path}: a server answers there already."
            ));
        }
        std::fs::remove_file(p)
            .map_err(|e| format!("Failed to remove stale socket {path}: {e}"))?;
    }
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("Failed to create {}: {e}", dir.display()))?;
    }
    let l = UnixListener::bind(p).map_err(|e| format!("Failed to listen on {path}: {e}"))?;
    // As systemd-sysext.socket: anyone may connect (List); changes need root.
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("Failed to chmod {path}: {e}"))?;
    Ok(l)
}

fn accept_loop(l: UnixListener, base: &Options) -> Result<(), String> {
    std::thread::scope(|s| {
        for conn in l.incoming() {
            match conn {
                Ok(c) => {
                    s.spawn(move || serve_connection(c, base));
                }
                Err(e) => eprintln!("varlink: accept: {e}"),
            }
        }
    });
    Ok(())
}

/// `sysext serve [ADDRESS]`: serve until killed (or, on a connection passed by the service
/// manager, until the peer hangs up).
pub fn serve(base: Options, address: Option<&str>) -> Result<(), String> {
    if let Some(fd) = inherited_socket()? {
        let listening = rustix::net::sockopt::socket_acceptconn(&fd).unwrap_or(false);
        if listening {
            return accept_loop(UnixListener::from(fd), &base);
        }
        serve_connection(UnixStream::from(fd), &base);
        return Ok(());
    }
    let addr = address.unwrap_or(DEFAULT_ADDRESS);
    let path = addr.strip_prefix("unix:").unwrap_or(addr);
    if !path.starts_with('/') {
        return Err(format!(
            "Varlink address must be an absolute socket path: {addr}"
        ));
    }
    let l = bind(path)?;
    eprintln!("Listening on {path} (io.systemd.sysext).");
    accept_loop(l, &base)
}
