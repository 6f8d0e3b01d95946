//! Side-by-side benchmark of merge, refresh and unmerge:
//! our CLI, our library, the syscall floor (the same overlay from a minimal sequence of
//! mount calls), and systemd-sysext 257 from the oracle chroot — all in one run, on the
//! same tree, in a private mount namespace.
//!
//! `cargo run --release -p sysext-bench -- [--reps N] [--out DIR] [--only 64,16e,16s]` (as
//! root; `--only` takes workloads: a count, `e` for erofs images, `s` for squashfs images).
//! `--profile lib|floor|floor-meta` runs only that tool's merge and unmerge `--reps` times
//! (for `perf`);
//! `--cold` adds a process run before each merge, as in the full run.
//! `--intent-cost` measures the library with and without its intent record, side by side
//! (ABBA order), and prints the ratio of the medians.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use sysext::{Context, ImageClass, MutableMode, Options};

const ORACLE: &str = "/var/cache/sysext-oracle/trixie";

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "failed: {cmd}");
}

fn put(p: &Path, content: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// What the extensions of a workload are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Erofs,
    Squashfs,
}

impl Kind {
    /// The filesystem of an image kind.
    fn fstype(self) -> Option<&'static str> {
        match self {
            Kind::Dir => None,
            Kind::Erofs => Some("erofs"),
            Kind::Squashfs => Some("squashfs"),
        }
    }

    /// The suffix of the workload's name for `--only` (`64`, `16e`, `16s`).
    fn suffix(self) -> &'static str {
        match self {
            Kind::Dir => "",
            Kind::Erofs => "e",
            Kind::Squashfs => "s",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Dir => "directories",
            Kind::Erofs => "erofs images",
            Kind::Squashfs => "squashfs images",
        }
    }

    fn csv(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Erofs => "erofs",
            Kind::Squashfs => "squashfs",
        }
    }
}

/// Build the sandbox root with `n` directory extensions or `n` images of `kind`.
fn build_root(sb: &Path, n: usize, kind: Kind) {
    let image = kind.fstype().is_some();
    sh(&format!(
        "rm -rf {0}/* {0}/.[!.]* 2>/dev/null; true",
        sb.display()
    ));
    put(&sb.join("usr/lib/os-release"), "ID=debian\nVERSION_ID=13\n");
    put(&sb.join("usr/bin/base"), "base\n");
    std::fs::create_dir_all(sb.join("opt")).unwrap();
    let stage = sb.join("stage");
    for i in 0..n {
        let name = format!("e{i:03}");
        let dir = if image {
            stage.join(&name)
        } else {
            sb.join("var/lib/extensions").join(&name)
        };
        put(
            &dir.join(format!(
                "usr/lib/extension-release.d/extension-release.{name}"
            )),
            "ID=_any\n",
        );
        put(&dir.join(format!("usr/share/{name}/file")), "x\n");
        put(&dir.join(format!("usr/bin/{name}")), "#!/bin/sh\n");
        if image {
            std::fs::create_dir_all(sb.join("var/lib/extensions")).unwrap();
            let img = sb.join(format!("var/lib/extensions/{name}.raw"));
            sh(&if kind == Kind::Erofs {
                format!(
                    "mkfs.erofs --quiet {} {} >/dev/null",
                    img.display(),
                    dir.display()
                )
            } else {
                format!(
                    "mksquashfs {} {} -quiet -noappend -all-root >/dev/null",
                    dir.display(),
                    img.display()
                )
            });
        }
    }
    if image {
        sh(&format!("rm -rf {}", stage.display()));
    }
}

fn time<F: FnMut() -> bool>(mut f: F) -> Option<Duration> {
    let t = Instant::now();
    if f() {
        Some(t.elapsed())
    } else {
        None
    }
}

/// CPU time of this process so far (user + system, every thread).
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    Some(v[v.len() / 2])
}

#[derive(Default, Clone)]
struct Row {
    merge: Option<Duration>,
    refresh: Option<Duration>,
    unmerge: Option<Duration>,
}

trait Tool {
    fn name(&self) -> &'static str;
    fn merge(&mut self) -> bool;
    fn refresh(&mut self) -> bool;
    fn unmerge(&mut self) -> bool;
}

struct Cli {
    bin: PathBuf,
    root: PathBuf,
}

impl Tool for Cli {
    fn name(&self) -> &'static str {
        "libsysext CLI"
    }
    fn merge(&mut self) -> bool {
        self.run("merge")
    }
    fn refresh(&mut self) -> bool {
        self.run("refresh")
    }
    fn unmerge(&mut self) -> bool {
        self.run("unmerge")
    }
}

impl Cli {
    fn run(&self, verb: &str) -> bool {
        Command::new(&self.bin)
            .arg(format!("--root={}", self.root.display()))
            .arg("--always-refresh=yes")
            .arg(verb)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

struct Lib {
    ctx: Context,
}

impl Tool for Lib {
    fn name(&self) -> &'static str {
        "libsysext library"
    }
    fn merge(&mut self) -> bool {
        self.ctx.merge().is_ok()
    }
    fn refresh(&mut self) -> bool {
        self.ctx.refresh().is_ok()
    }
    fn unmerge(&mut self) -> bool {
        self.ctx.unmerge().is_ok()
    }
}

/// The same read-only overlay on /usr (same layers: a meta layer on a detached tmpfs, a
/// private read-only bind of each image, the host /usr) from the fewest system calls, with
/// no discovery, no release-file parsing and no checks. Unmerge is one umount2.
///
/// With `meta`, the meta layer also gets the two files of systemd's on-disk contract,
/// `.systemd-sysext/extensions` and `.systemd-sysext/dev` (the overlay's device), as
/// systemd-sysext 257 and the library write them: then the result is a merge that
/// `systemd-sysext status` and `unmerge` recognize, the same overlay with the same content
/// (the library adds one file of its own).
struct Floor {
    root: PathBuf,
    n: usize,
    kind: Kind,
    meta: bool,
}

impl Floor {
    fn build(&self) -> rustix::io::Result<rustix::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        use rustix::mount::*;
        use std::os::fd::{AsFd, AsRawFd};
        let ws = {
            let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
            fsconfig_set_string(&fs, "mode", "0700")?;
            fsconfig_create(&fs)?;
            fsmount(
                &fs,
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::MOUNT_ATTR_NODEV,
            )?
        };
        rustix::fs::mkdirat(&ws, "meta", Mode::from_raw_mode(0o755))?;
        let meta = rustix::fs::openat(&ws, "meta", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        fsconfig_set_string(
            &fs,
            "lowerdir+",
            format!("/proc/self/fd/{}", meta.as_raw_fd()).as_str(),
        )?;
        let mut keep = Vec::new();
        for i in (0..self.n).rev() {
            let name = format!("e{i:03}");
            let m = if let Some(fstype) = self.kind.fstype() {
                // Straight from the file where the kernel can (erofs on 6.12 and newer, not for
                // files on tmpfs, as here: ENOTBLK), else through a loop device — what the
                // library does too.
                let img = self.root.join(format!("var/lib/extensions/{name}.raw"));
                let f = rustix::fs::open(&img, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
                let mount_fs = |source: &str| -> rustix::io::Result<rustix::fd::OwnedFd> {
                    let efs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
                    fsconfig_set_string(&efs, "source", source)?;
                    fsconfig_set_flag(&efs, "ro")?;
                    fsconfig_create(&efs)?;
                    fsmount(
                        &efs,
                        FsMountFlags::FSMOUNT_CLOEXEC,
                        MountAttrFlags::MOUNT_ATTR_RDONLY,
                    )
                };
                let direct = if self.kind == Kind::Erofs {
                    mount_fs(&format!("/proc/self/fd/{}", f.as_raw_fd())).ok()
                } else {
                    None
                };
                match direct {
                    Some(m) => m,
                    None => {
                        let opts = sysext::testing::sys::loopdev::LoopOptions {
                            direct_io: true,
                            ..Default::default()
                        };
                        let dev =
                            sysext::testing::sys::loopdev::LoopDevice::attach(&f, 0, 0, &opts)
                                .map_err(|e| {
                                    rustix::io::Errno::from_raw_os_error(
                                        e.raw_os_error().unwrap_or(5),
                                    )
                                })?;
                        let m = mount_fs(&dev.path().to_string_lossy())?;
                        drop(dev.into_owned_fd());
                        m
                    }
                }
            } else {
                let m = open_tree(
                    rustix::fs::CWD,
                    self.root
                        .join(format!("var/lib/extensions/{name}"))
                        .to_str()
                        .unwrap(),
                    OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
                )?;
                sysext::testing::sys::mountattr::mount_setattr(
                    m.as_fd(),
                    true,
                    MountAttrFlags::MOUNT_ATTR_RDONLY,
                    MountAttrFlags::empty(),
                )
                .map_err(|e| rustix::io::Errno::from_raw_os_error(e.raw_os_error().unwrap_or(5)))?;
                m
            };
            fsconfig_set_string(
                &fs,
                "lowerdir+",
                format!("/proc/self/fd/{}/usr", m.as_raw_fd()).as_str(),
            )?;
            keep.push(m);
        }
        fsconfig_set_string(&fs, "lowerdir+", self.root.join("usr").to_str().unwrap())?;
        fsconfig_create(&fs)?;
        let m = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV,
        )?;
        if self.meta {
            let st = rustix::fs::fstat(&m)?;
            rustix::fs::mkdirat(&meta, ".systemd-sysext", Mode::from_raw_mode(0o755))?;
            let names: String = (0..self.n).map(|i| format!("e{i:03}\n")).collect();
            let dev = format!(
                "{}:{}\n",
                rustix::fs::major(st.st_dev),
                rustix::fs::minor(st.st_dev)
            );
            for (file, text) in [("extensions", names), ("dev", dev)] {
                let f = rustix::fs::openat(
                    &meta,
                    format!(".systemd-sysext/{file}").as_str(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )?;
                rustix::io::write(&f, text.as_bytes())?;
            }
        }
        Ok(m)
    }
}

impl Tool for Floor {
    fn name(&self) -> &'static str {
        if self.meta {
            "syscall floor + meta files"
        } else {
            "syscall floor"
        }
    }
    fn merge(&mut self) -> bool {
        use rustix::mount::*;
        match self.build() {
            Ok(m) => move_mount(
                &m,
                "",
                rustix::fs::CWD,
                self.root.join("usr").to_str().unwrap(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .is_ok(),
            Err(e) => {
                eprintln!("floor: {e}");
                false
            }
        }
    }
    fn refresh(&mut self) -> bool {
        use rustix::mount::*;
        let usr = self.root.join("usr");
        let Ok(m) = self.build() else { return false };
        move_mount(
            &m,
            "",
            rustix::fs::CWD,
            usr.to_str().unwrap(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_BENEATH,
        )
        .is_ok()
            && unmount(usr.to_str().unwrap(), UnmountFlags::DETACH).is_ok()
    }
    fn unmerge(&mut self) -> bool {
        rustix::mount::unmount(
            self.root.join("usr").to_str().unwrap(),
            rustix::mount::UnmountFlags::DETACH,
        )
        .is_ok()
    }
}

struct Systemd;

impl Systemd {
    fn run(&self, verb: &str) -> bool {
        Command::new("chroot")
            .args([ORACLE, "/usr/bin/systemd-sysext", "--root=/sb", verb])
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Tool for Systemd {
    fn name(&self) -> &'static str {
        "systemd-sysext 257"
    }
    fn merge(&mut self) -> bool {
        // 257 exits 0 but mounts nothing when its option string overflows: check.
        self.run("merge") && overlays_at(&Path::new(ORACLE).join("sb/usr")) > 0
    }
    fn refresh(&mut self) -> bool {
        self.run("refresh") && overlays_at(&Path::new(ORACLE).join("sb/usr")) > 0
    }
    fn unmerge(&mut self) -> bool {
        self.run("unmerge")
    }
}

fn overlays_at(p: &Path) -> usize {
    let t = p.to_string_lossy();
    sysext::testing::mountinfo::read_self()
        .unwrap()
        .iter()
        .filter(|m| m.mount_point == t && m.fstype == "overlay")
        .count()
}

/// One merge/refresh/unmerge round of a tool; `None` where a step failed.
fn round(tool: &mut dyn Tool, usr: &Path) -> [Option<Duration>; 3] {
    let Some(dm) = time(|| tool.merge()) else {
        let _ = tool.unmerge();
        return [None, None, None];
    };
    let dr = time(|| tool.refresh());
    let du = time(|| tool.unmerge());
    assert_eq!(
        overlays_at(usr),
        0,
        "{} left an overlay behind",
        tool.name()
    );
    [Some(dm), dr, du]
}

/// Orders of `n` tools (a Williams design: `n` rows for even `n`, `2n` for odd) in which,
/// within rows, each tool immediately follows each other tool equally often.
fn williams(n: usize) -> Vec<Vec<usize>> {
    // First row 0, 1, n-1, 2, n-2, …; the others add 1, 2, … (mod n).
    let mut first = Vec::with_capacity(n);
    let (mut lo, mut hi) = (0usize, n);
    for j in 0..n {
        if j % 2 == 0 {
            first.push(lo);
            lo += 1;
        } else {
            hi -= 1;
            first.push(hi);
        }
    }
    let mut rows: Vec<Vec<usize>> = (0..n)
        .map(|r| first.iter().map(|&t| (t + r) % n).collect())
        .collect();
    if n % 2 == 1 {
        let mirrored: Vec<Vec<usize>> = rows
            .iter()
            .map(|r| r.iter().rev().copied().collect())
            .collect();
        rows.extend(mirrored);
    }
    rows
}

/// Measure all tools interleaved (one round of each tool per repetition), so that load
/// changes on a noisy machine hit every tool alike.
fn measure_all(tools: &mut [Box<dyn Tool>], reps: usize, usr: &Path) -> Vec<Row> {
    let mut samples: Vec<[Vec<Duration>; 3]> = tools
        .iter()
        .map(|_| [Vec::new(), Vec::new(), Vec::new()])
        .collect();
    let mut failed = vec![false; tools.len()];
    let n = tools.len();
    // What ran just before a tool (a process that was spawned, mounts taken down) affects
    // its caches and the deferred work it meets: the orders come from a Williams design, in
    // which every tool follows every other one equally often.
    let orders = williams(n);
    for rep in 0..reps {
        for &i in &orders[rep % orders.len()] {
            if failed[i] {
                continue;
            }
            let r = round(tools[i].as_mut(), usr);
            if r[0].is_none() {
                failed[i] = true;
            }
            for k in 0..3 {
                if let Some(d) = r[k] {
                    samples[i][k].push(d);
                }
            }
        }
    }
    samples
        .into_iter()
        .zip(failed)
        .map(|(s, f)| {
            if f {
                Row::default()
            } else {
                let [m, r, u] = s;
                Row {
                    merge: median(m),
                    refresh: median(r),
                    unmerge: median(u),
                }
            }
        })
        .collect()
}

/// Milliseconds with `decimals` places (2 in the table, 3 — microseconds — in the CSV).
fn ms(d: Option<Duration>, decimals: usize) -> String {
    d.map(|d| format!("{:.*}", decimals, d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "fails".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("benches/results"));
    if std::env::var_os("SYSEXT_BENCH_IN_NS").is_none() {
        assert!(rustix::process::geteuid().is_root(), "run as root");
        let st = Command::new("unshare")
            .args(["-m", "--propagation", "private"])
            .arg(std::env::current_exe().unwrap())
            .args(&args[1..])
            .env("SYSEXT_BENCH_IN_NS", "1")
            .status()
            .unwrap();
        std::process::exit(st.code().unwrap_or(1));
    }
    // The oracle's set-up: shared propagation, the chroot's own mounts, a tmpfs sandbox.
    let o = Path::new(ORACLE);
    let have_systemd = o.join("usr/bin/systemd-sysext").exists();
    // Without the chroot, the sandbox is a directory of our own in $TMPDIR, never a path
    // below ORACLE (an empty one there makes setup-oracle refuse to build the chroot).
    let sb = if have_systemd {
        o.join("sb")
    } else {
        std::env::temp_dir().join(format!("sysext-bench.{}", std::process::id()))
    };
    if have_systemd {
        sh("mount --make-rshared /");
        sh(&format!("mount --bind {0} {0}", o.display()));
        sh(&format!("mount -t tmpfs tmpfs {}", sb.display()));
        for (what, args) in [
            ("proc", "-t proc proc"),
            ("sys", "--rbind /sys"),
            ("dev", "--bind /dev"),
            ("run", "-t tmpfs tmpfs"),
        ] {
            sh(&format!("mount {args} {}", o.join(what).display()));
        }
    } else {
        eprintln!("note: no oracle chroot at {ORACLE}; systemd-sysext column skipped (run tests/conformance/oracle/setup-oracle)");
        std::fs::create_dir_all(&sb).unwrap();
        sh(&format!("mount -t tmpfs tmpfs {}", sb.display()));
    }
    let cli = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("sysext");
    assert!(
        cli.exists(),
        "build the CLI first: cargo build --release -p sysext-cli"
    );
    let kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let date = String::from_utf8(
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut table = format!(
        "Machine: Linux {kernel}, {cpus} CPUs; {} UTC; median of {reps} runs, times in ms.\n\n| workload | tool | merge | refresh | unmerge | merge+unmerge vs systemd |\n|---|---|---|---|---|---|\n",
        date.trim()
    );
    let mut csv = String::from("workload,n,tool,merge_ms,refresh_ms,unmerge_ms\n");
    // Library merge against each floor, from the unrounded medians.
    let mut ratios = String::from(
        "\nLibrary merge against the floors:\n\n| workload | against the syscall floor | against the floor + meta files |\n|---|---|---|\n",
    );
    let workloads: Vec<(usize, Kind)> = vec![
        (1, Kind::Dir),
        (16, Kind::Dir),
        (64, Kind::Dir),
        (256, Kind::Dir),
        (1, Kind::Erofs),
        (16, Kind::Erofs),
        (16, Kind::Squashfs),
    ];
    // `--only 64,16e,16s` measures those workloads (erofs: `e`, squashfs: `s`).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_string).collect());
    let profile = args
        .iter()
        .position(|a| a == "--profile")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let phases: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>> =
        Default::default();
    for (n, kind) in workloads {
        if let Some(o) = &only {
            if !o.contains(&format!("{n}{}", kind.suffix())) {
                continue;
            }
        }
        build_root(&sb, n, kind);
        let label = format!("{n} {}", kind.label());
        let mut o = Options::new(ImageClass::Sysext);
        o.root = Some(sb.to_string_lossy().into_owned());
        o.mutable = Some(MutableMode::Disabled);
        o.always_refresh = true;
        o.hierarchies = Some(vec!["/usr".into(), "/opt".into()]);
        if args.iter().any(|a| a == "--intent-cost") {
            // The library with and without its intent record, side by side: ABBA order
            // per repetition, merge and unmerge timed; medians and their ratio.
            let mut with = o.clone();
            with.intent_record = true;
            let mut without = o;
            without.intent_record = false;
            let mut tools = [
                Lib {
                    ctx: Context::new(with).unwrap(),
                },
                Lib {
                    ctx: Context::new(without).unwrap(),
                },
            ];
            // Per run: wall time, and the CPU time of this process (user + system, all
            // threads). On a loaded machine the wall median moves with the neighbours; the
            // wall minimum and the CPU time move much less, so all three are printed.
            let mut merge: [Vec<(Duration, Duration)>; 2] = Default::default();
            let mut both: [Vec<(Duration, Duration)>; 2] = Default::default();
            for r in 0..reps {
                let order = if r % 2 == 0 {
                    [0, 1, 1, 0]
                } else {
                    [1, 0, 0, 1]
                };
                for &i in &order {
                    let (t0, c0) = (std::time::Instant::now(), cpu_time());
                    assert!(tools[i].merge(), "merge failed");
                    let (m, mc) = (t0.elapsed(), cpu_time() - c0);
                    assert!(tools[i].unmerge(), "unmerge failed");
                    merge[i].push((m, mc));
                    both[i].push((t0.elapsed(), cpu_time() - c0));
                }
            }
            let stats = |v: &[(Duration, Duration)]| -> [f64; 3] {
                let wall: Vec<Duration> = v.iter().map(|p| p.0).collect();
                let cpu: Vec<Duration> = v.iter().map(|p| p.1).collect();
                let us = |d: Duration| d.as_secs_f64() * 1e6;
                [
                    us(median(wall.clone()).unwrap()),
                    us(*wall.iter().min().unwrap()),
                    us(median(cpu).unwrap()),
                ]
            };
            for (what, runs) in [("merge", &merge), ("merge+unmerge", &both)] {
                let [w, o] = [stats(&runs[0]), stats(&runs[1])];
                println!(
                    "{label}: {what} with/without the intent record: wall median {:.0}/{:.0} µs \
                     {:.3}x, wall min {:.0}/{:.0} µs {:.3}x, CPU median {:.0}/{:.0} µs {:.3}x \
                     ({} runs each)",
                    w[0],
                    o[0],
                    w[0] / o[0],
                    w[1],
                    o[1],
                    w[1] / o[1],
                    w[2],
                    o[2],
                    w[2] / o[2],
                    2 * reps
                );
            }
            continue;
        }
        if let Some(which) = &profile {
            // `--profile lib|floor`: only that tool's merge and unmerge, `reps` times, for
            // `perf record`; prints the median merge time.
            let mut t: Box<dyn Tool> = if which == "floor" || which == "floor-meta" {
                Box::new(Floor {
                    root: sb.clone(),
                    n,
                    kind,
                    meta: which == "floor-meta",
                })
            } else {
                // With SYSEXT_BENCH_PHASES=1, sum the library's phase timings (debug events).
                let mut o = o;
                if std::env::var_os("SYSEXT_BENCH_PHASES").is_some() {
                    let sums = phases.clone();
                    o.sink = std::sync::Arc::new(move |e: &sysext::Event| {
                        if let sysext::Event::Message(_, m) = e {
                            if let Some((what, rest)) = m.split_once(" took ") {
                                if let Some(us) =
                                    rest.strip_suffix(" µs").and_then(|v| v.parse::<u64>().ok())
                                {
                                    let mut s = sums.lock().unwrap();
                                    let e = s.entry(what.to_string()).or_insert((0u64, 0u64));
                                    e.0 += us;
                                    e.1 += 1;
                                }
                            }
                        }
                    });
                }
                Box::new(Lib {
                    ctx: Context::new(o).unwrap(),
                })
            };
            // `--cold`: run a process before every merge, as the full run does between tools
            // (caches and branch predictors lose what the merge needs).
            let cold = args.iter().any(|a| a == "--cold");
            let mut m = Vec::new();
            for _ in 0..reps {
                if cold {
                    sh("true");
                }
                m.extend(time(|| t.merge()));
                assert!(t.unmerge(), "unmerge failed");
            }
            println!(
                "{label}: {} merge {:.1} µs",
                t.name(),
                median(m).map(|d| d.as_secs_f64() * 1e6).unwrap_or(f64::NAN)
            );
            for (what, (us, n)) in phases.lock().unwrap().drain() {
                println!("  {what}: {:.0} µs on average", us as f64 / n as f64);
            }
            continue;
        }
        let mut tools: Vec<Box<dyn Tool>> = vec![
            Box::new(Cli {
                bin: cli.clone(),
                root: sb.clone(),
            }),
            Box::new(Lib {
                ctx: Context::new(o).unwrap(),
            }),
            Box::new(Floor {
                root: sb.clone(),
                n,
                kind,
                meta: false,
            }),
            Box::new(Floor {
                root: sb.clone(),
                n,
                kind,
                meta: true,
            }),
        ];
        if have_systemd {
            tools.push(Box::new(Systemd));
        }
        let measured = measure_all(&mut tools, reps, &sb.join("usr"));
        let rows: Vec<(String, Row)> = tools
            .iter()
            .map(|t| t.name().to_string())
            .zip(measured)
            .collect();
        let sd = rows
            .iter()
            .find(|(n, _)| n.starts_with("systemd"))
            .map(|(_, r)| r.clone());
        for (name, r) in &rows {
            let ratio = match (&sd, r.merge, r.unmerge) {
                (Some(s), Some(m), Some(u)) if !name.starts_with("systemd") => {
                    match (s.merge, s.unmerge) {
                        (Some(sm), Some(su)) => {
                            format!("{:.2}×", (m + u).as_secs_f64() / (sm + su).as_secs_f64())
                        }
                        _ => "systemd fails".into(),
                    }
                }
                _ => "".into(),
            };
            table.push_str(&format!(
                "| {label} | {name} | {} | {} | {} | {ratio} |\n",
                ms(r.merge, 2),
                ms(r.refresh, 2),
                ms(r.unmerge, 2)
            ));
            csv.push_str(&format!(
                "{},{n},{name},{},{},{}\n",
                kind.csv(),
                ms(r.merge, 3),
                ms(r.refresh, 3),
                ms(r.unmerge, 3)
            ));
        }
        let merge_of = |tool: &str| {
            rows.iter()
                .find(|(n, _)| n == tool)
                .and_then(|(_, r)| r.merge)
        };
        let ratio = |floor: &str| match (merge_of("libsysext library"), merge_of(floor)) {
            (Some(l), Some(f)) => format!("{:.2}×", l.as_secs_f64() / f.as_secs_f64()),
            _ => "fails".into(),
        };
        ratios.push_str(&format!(
            "| {label} | {} | {} |\n",
            ratio("syscall floor"),
            ratio("syscall floor + meta files")
        ));
        eprintln!("done: {label}");
    }
    if !have_systemd {
        let _ = rustix::mount::unmount(&sb, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&sb);
    }
    if profile.is_some() || args.iter().any(|a| a == "--intent-cost") {
        return;
    }
    std::fs::create_dir_all(&out).unwrap();
    table.push_str(&ratios);
    std::fs::write(out.join("results.md"), &table).unwrap();
    std::fs::write(out.join("results.csv"), &csv).unwrap();
    print!("{table}");
}

#[cfg(test)]
mod tests {
    use super::williams;

    #[test]
    fn every_tool_follows_every_other_one_equally_often() {
        for n in 1..=7 {
            let rows = williams(n);
            let mut follows = vec![vec![0usize; n]; n];
            for r in &rows {
                let mut sorted = r.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
                for w in r.windows(2) {
                    follows[w[1]][w[0]] += 1;
                }
            }
            let counts: Vec<usize> = (0..n)
                .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
                .map(|(a, b)| follows[a][b])
                .collect();
            assert!(
                counts.windows(2).all(|w| w[0] == w[1]),
                "n = {n}: {follows:?}"
            );
        }
    }
}
