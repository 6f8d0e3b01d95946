#!/usr/bin/python3
"""Crash test: SIGKILL the `sysext` CLI at its system calls and check the next call repairs.

For every verb (merge, refresh with a changed extension set, refresh --always-refresh,
unmerge, selective `merge NAME`) and mutable mode (no, yes, ephemeral, import), the CLI is
run under `strace -f -e inject=SYSCALL:signal=KILL:when=N`: the N-th call of
SYSCALL (counted per thread, as strace does; the staging thread of old kernels is traced
too) kills the whole process. N runs from 1 until the verb completes without reaching the
N-th call (mount-related calls), or over a sample of N (openat, write, unlinkat, flock, and
the mount-related calls too beyond --max-points; `--full` takes every N of every call).

After each kill the same verb runs again, untraced: it must succeed (or say the hierarchy
is already merged) and leave exactly the state a clean run leaves (the reference, taken
once per verb and mode by an untraced run): one overlay of ours per merged hierarchy (none
after unmerge), the foreign tmpfs below usr/share/sub mounted once with its file readable,
the routing dir's data and mode intact, no loop device backed by a file of the test root
that the reference does not have, no left-over work dirs or ephemeral dirs, and `sysext
status` exiting 0.

Every kill point runs in its own `unshare -m --propagation private` namespace with a tmpfs
on /run and a tmpfs holding the root, so the host is never touched; loop devices that a
kill leaks are detached at the end of the point.

Usage: tests/crash/run.py [--full] [--sample D] [--bin PATH] [-j JOBS] [--verbs V,..]
                          [--modes M,..] [--syscalls S,..] [--n N] [--disable FEATURES]
                          [--progress]
`--sample D` keeps a deterministic 1/D of the default points (by a hash of verb, mode,
syscall and N; the test command runs `--sample 6`, about 150 points).
A single point, printed in full: --verbs unmerge --modes yes --syscalls move_mount --n 3
Exit status: 0 if every point passed, 1 otherwise.
"""

import argparse
import collections
import zlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

MOUNT_CALLS = ["fsopen", "fsconfig", "fsmount", "move_mount", "open_tree", "umount2",
               "mount_setattr", "mount", "mkdirat", "unshare"]
SAMPLED_CALLS = ["openat", "write", "unlinkat", "flock"]
VERBS = ["merge", "refresh", "refresh-always", "unmerge", "merge-name"]
MODES = ["no", "yes", "ephemeral", "import"]
HIERARCHIES = ["usr", "opt"]

SUB_FILE = "usr/share/sub/f"
SUB_TEXT = "sub\n"
ROUTING = "var/lib/extensions.mutable/usr"
ROUTING_FILE = ROUTING + "/keep"
ROUTING_TEXT = "keep\n"


# ---------------------------------------------------------------------------------------
# Inside one point's namespace
# ---------------------------------------------------------------------------------------

def put(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def dir_ext(root, name, files):
    base = f"{root}/var/lib/extensions/{name}"
    put(f"{base}/usr/lib/extension-release.d/extension-release.{name}", "ID=_any\n")
    for rel, text in files.items():
        put(f"{base}/{rel}", text)


def build_root(root, images):
    """The scenario: os-release, a directory extension (usr and opt), a squashfs extension,
    a routing dir with data, and a foreign tmpfs below usr/share/sub."""
    put(f"{root}/usr/lib/os-release", "ID=debian\nVERSION_ID=12\n")
    put(f"{root}/usr/bin/base", "base\n")
    put(f"{root}/usr/share/base/data", "data\n")
    os.makedirs(f"{root}/opt", exist_ok=True)
    os.makedirs(f"{root}/etc", exist_ok=True)
    dir_ext(root, "a", {"usr/bin/a": "a\n", "opt/a/f": "a\n"})
    shutil.copy(f"{images}/b.raw", f"{root}/var/lib/extensions/b.raw")
    put(f"{root}/{ROUTING_FILE}", ROUTING_TEXT)
    os.chmod(f"{root}/{ROUTING}", 0o755)
    os.chmod(f"{root}/var/lib/extensions.mutable", 0o755)
    os.makedirs(f"{root}/usr/share/sub", exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "crash-sub", f"{root}/usr/share/sub")
    put(f"{root}/{SUB_FILE}", SUB_TEXT)


def cli(p, root, mode, *args):
    return [p["bin"], f"--root={root}", f"--mutable={mode}", "--no-reload", *args]


def verb_args(verb):
    return {
        "merge": ["merge"],
        "refresh": ["refresh"],
        "refresh-always": ["--always-refresh=yes", "refresh"],
        "unmerge": ["unmerge"],
        "merge-name": ["add", "c"],
    }[verb]


def prepare(p, root, env):
    """The state before the verb under test."""
    verb, mode = p["verb"], p["mode"]
    if verb == "merge":
        return
    r = subprocess.run(cli(p, root, mode, "merge"), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"preparing merge failed: {r.stdout.strip()}")
    # Something written into the merged /usr (lands in the upper layer where there is one).
    try:
        put(f"{root}/usr/share/userdata", "user\n")
    except OSError:
        pass
    if verb in ("refresh", "merge-name"):
        dir_ext(root, "c", {"usr/bin/c": "c\n"})


def mounts_below(root):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4].replace("\\040", " ")
            fstype = fields[fields.index("-") + 1]
            if mp == root or mp.startswith(root + "/"):
                out.append((os.path.relpath(mp, root), fstype))
    return out


def loops_in(prefix):
    r = sh("losetup", "-l", "-n", "--raw", "-O", "NAME,BACK-FILE", check=False)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            back = parts[1].replace("\\x20", " ")
            if back.startswith(prefix + "/"):
                out.append((parts[0], back))
    return out


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"<{e.strerror}>"


def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def fingerprint(p, root, env):
    """What is observable after the verb: compared against the clean run's."""
    fp = {}
    m = mounts_below(root)
    fp["mounts"] = sorted(f"{mp}:{t}" for mp, t in m)
    for h in HIERARCHIES:
        fp[f"overlays {h}"] = sum(1 for mp, t in m if mp == h and t == "overlay")
    fp["sub mounts"] = sum(1 for mp, t in m if mp == "usr/share/sub")
    fp["sub file"] = read(f"{root}/{SUB_FILE}")
    fp["routing data"] = read(f"{root}/{ROUTING_FILE}")
    for h in HIERARCHIES:
        d = f"{root}/var/lib/extensions.mutable/{h}"
        fp[f"routing mode {h}"] = oct(stat.S_IMODE(os.stat(d).st_mode)) if os.path.isdir(d) else None
    fp["mutable dir"] = listing(f"{root}/var/lib/extensions.mutable")
    eph = listing("/run/libsysext/ephemeral")
    fp["ephemeral dirs"] = len(eph) if eph else 0
    fp["loops"] = len(loops_in(root))
    for rel in ["usr/bin/a", "usr/bin/b", "usr/bin/c", "opt/a/f", "usr/share/userdata",
                "usr/bin/base"]:
        fp[f"file {rel}"] = read(f"{root}/{rel}")
    for h in HIERARCHIES:
        fp[f"meta {h}"] = listing(f"{root}/{h}/.systemd-sysext")
        fp[f"meta {h} extensions"] = read(f"{root}/{h}/.systemd-sysext/extensions")
    st = subprocess.run(cli(p, root, p["mode"], "--json=short", "status"), env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fp["status rc"] = st.returncode
    try:
        fp["status"] = [{k: v for k, v in e.items() if k != "since"}
                        for e in json.loads(st.stdout.replace(root, "ROOT"))]
    except ValueError:
        fp["status"] = st.stdout.strip() + st.stderr.strip()
    return fp


def cleanup(scratch):
    subprocess.run(["umount", "-R", "-l", scratch], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    for dev, _ in loops_in(scratch):
        subprocess.run(["losetup", "-d", dev], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def run_point(p):
    """One kill point (or the reference run when p["syscall"] is None). Runs in its own
    mount namespace; returns a dict."""
    sh("mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "crash-run", "/run")
    scratch = p["scratch"]
    os.makedirs(scratch, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=64m", "crash-root", scratch)
    root = f"{scratch}/root"
    env = dict(os.environ)
    env.pop("SYSEXT_CRASH_POINT", None)
    if p.get("disable"):
        env["LIBSYSEXT_KERNEL_DISABLE"] = p["disable"]
    res = {"point": {k: p[k] for k in ("verb", "mode", "syscall", "n")}}
    try:
        build_root(root, p["images"])
        prepare(p, root, env)
        args = cli(p, root, p["mode"], *verb_args(p["verb"]))
        trace = f"{scratch}/trace"
        if p["syscall"] is None:
            calls = ",".join(MOUNT_CALLS + SAMPLED_CALLS)
            cmd = ["strace", "-f", "-qq", "-o", trace, "-e", f"trace={calls}"]
        else:
            s, n = p["syscall"], p["n"]
            cmd = ["strace", "-f", "-qq", "-o", "/dev/null",
                   "-e", f"trace={s}", "-e", f"inject={s}:signal=KILL:when={n}"]
        r = subprocess.run(cmd + args, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        res["rc"] = r.returncode
        res["output"] = r.stdout[-2000:]
        killed = r.returncode in (-9, 137)
        res["killed"] = killed
        if p["syscall"] is None:
            # Reference: calls per thread (strace prefixes lines with the tid).
            per = collections.defaultdict(collections.Counter)
            with open(trace) as f:
                for line in f:
                    mt = re.match(r"(\d+)\s+([a-z_0-9]+)\(", line)
                    if mt:
                        per[mt.group(2)][mt.group(1)] += 1
            res["counts"] = {s: max(c.values()) for s, c in per.items()}
            res["fp"] = fingerprint(p, root, env)
            return res
        if killed:
            again = subprocess.run(args, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
            res["again rc"] = again.returncode
            res["again output"] = again.stdout[-2000:]
        res["fp"] = fingerprint(p, root, env)
    except Exception as e:  # noqa: BLE001 - reported as a harness error of this point
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        res["leaked loops"] = len(loops_in(scratch))
        cleanup(scratch)
    return res


# ---------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------

def in_namespace(p):
    env = dict(os.environ, SYSEXT_CRASH_POINT=json.dumps(p))
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                        os.path.abspath(__file__)], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"point": p, "error": f"harness failed (rc {r.returncode}): {r.stderr[-1500:]}"}


ALREADY = re.compile(r"already merged", re.I)


def judge(res, ref):
    """Problems of one kill point, as (class, detail) pairs."""
    pt = res["point"]
    if "error" in res:
        return [("harness error", res["error"])]
    probs = []
    if res["killed"]:
        rc = res["again rc"]
        if rc != 0 and not (pt["verb"] == "merge" and rc == 1 and ALREADY.search(res["again output"])):
            probs.append(("next call failed", f"rc {rc}: {res['again output'].strip()}"))
    elif res["rc"] != 0:
        probs.append(("verb failed without a kill", f"rc {res['rc']}: {res['output'].strip()}"))
    fp, rf = res["fp"], ref["fp"]
    for h in HIERARCHIES:
        if fp[f"overlays {h}"] > 1:
            probs.append(("stacked overlays", f"{fp[f'overlays {h}']} overlays on /{h}"))
        elif fp[f"overlays {h}"] != rf[f"overlays {h}"]:
            probs.append(("hierarchy merge state wrong",
                          f"/{h}: {fp[f'overlays {h}']} overlays, clean run {rf[f'overlays {h}']}"))
    if fp["sub file"] != SUB_TEXT:
        probs.append(("sub-mount lost", f"{SUB_FILE}: {fp['sub file']!r}"))
    if fp["sub mounts"] != rf["sub mounts"]:
        probs.append(("sub-mount duplicated" if fp["sub mounts"] > rf["sub mounts"] else "sub-mount lost",
                      f"{fp['sub mounts']} mounts at usr/share/sub, clean run {rf['sub mounts']}"))
    if fp["routing data"] != ROUTING_TEXT:
        probs.append(("routing data lost", f"{ROUTING_FILE}: {fp['routing data']!r}"))
    for h in HIERARCHIES:
        k = f"routing mode {h}"
        if fp[k] != rf[k]:
            probs.append(("routing dir mode", f"{k}: {fp[k]}, clean run {rf[k]}"))
    if fp["loops"] > rf["loops"]:
        probs.append(("leftover loop devices", f"{fp['loops']} loop devices, clean run {rf['loops']}"))
    if fp["mutable dir"] != rf["mutable dir"]:
        probs.append(("leftover work dirs", f"extensions.mutable: {fp['mutable dir']}, clean run {rf['mutable dir']}"))
    if fp["ephemeral dirs"] != rf["ephemeral dirs"]:
        probs.append(("leftover ephemeral dirs", f"{fp['ephemeral dirs']} in /run/libsysext/ephemeral, clean run {rf['ephemeral dirs']}"))
    if fp["status rc"] != 0:
        probs.append(("status failed", f"rc {fp['status rc']}: {fp['status']}"))
    seen = {c for c, _ in probs}
    rest = []
    for k in fp:
        if k.startswith(("file ", "meta ", "mounts")) or k == "status":
            if fp[k] != rf[k]:
                rest.append(f"{k}: {fp[k]!r}, clean run {rf[k]!r}")
    if rest and not seen & {"stacked overlays", "hierarchy merge state wrong", "sub-mount lost",
                            "sub-mount duplicated"}:
        probs.append(("state differs from a clean run", "; ".join(rest)))
    elif rest:
        probs[-1] = (probs[-1][0], probs[-1][1] + " (also: " + "; ".join(rest) + ")")
    return probs


def sample(count, k):
    """k points spread over 1..count (always 1 and count)."""
    if count <= k:
        return list(range(1, count + 1))
    return sorted({1 + round(i * (count - 1) / (k - 1)) for i in range(k)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="every N of every syscall")
    ap.add_argument("--bin", help="the sysext CLI (default: target/release/sysext, else debug)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--verbs", default=",".join(VERBS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--syscalls", default=",".join(MOUNT_CALLS + SAMPLED_CALLS))
    ap.add_argument("--disable", default="", help="LIBSYSEXT_KERNEL_DISABLE for the CLI")
    ap.add_argument("--max-points", type=int, default=5,
                    help="without --full: N sampled this many times per syscall where a "
                         "verb makes more calls (mount calls), 2 for openat/write/unlinkat/flock")
    ap.add_argument("--n", type=int, help="only this N (a reproduction; prints each point in full)")
    ap.add_argument("--sample", type=int, default=0,
                    help="keep 1 in D of the points (deterministic), the clean runs' counts "
                         "giving the points of each syscall")
    ap.add_argument("--progress", action="store_true", help="a line on stderr every 100 points")
    ap.add_argument("--list-failures", type=int, default=1000, help="failures printed in full")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("crash: run as root (every point runs in a private mount namespace)")
    for tool in ("strace", "unshare", "mksquashfs", "losetup"):
        if not shutil.which(tool):
            sys.exit(f"crash: {tool} missing (apt-get install strace util-linux squashfs-tools)")
    binary = a.bin
    if not binary:
        for c in ("target/release/sysext", "target/debug/sysext"):
            if os.access(os.path.join(REPO, c), os.X_OK):
                binary = os.path.join(REPO, c)
                break
    if not binary:
        sys.exit("crash: no sysext binary; cargo build --release -p sysext-cli")
    binary = os.path.abspath(binary)
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="sysext-crash.")
    try:
        images = f"{work}/images"
        src = f"{work}/b"
        put(f"{src}/usr/lib/extension-release.d/extension-release.b", "ID=_any\n")
        put(f"{src}/usr/bin/b", "b\n")
        os.makedirs(images)
        sh("mksquashfs", src, f"{images}/b.raw", "-quiet", "-noappend", "-all-root")
        counter = iter(range(1 << 30))

        def point(verb, mode, syscall, n):
            i = next(counter)
            if i and i % 100 == 0 and a.progress:
                print(f"crash: {i} points run, {time.monotonic() - t0:.0f} s", file=sys.stderr,
                      flush=True)
            return in_namespace({"bin": binary, "images": images, "verb": verb, "mode": mode,
                                 "syscall": syscall, "n": n, "disable": a.disable,
                                 "scratch": f"{work}/p{i}"})

        verbs, modes = a.verbs.split(","), a.modes.split(",")
        syscalls = a.syscalls.split(",")
        combos = [(v, m) for v in verbs for m in modes]
        results = []
        failures = []
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            refs = dict(zip(combos, pool.map(lambda c: point(c[0], c[1], None, 0), combos)))
            for c, ref in refs.items():
                if "error" in ref or ref["rc"] != 0:
                    sys.exit(f"crash: the clean run of {c} failed: {ref.get('error') or ref['output']}")

            def series(v, m, s):
                """Kill points of one syscall: N = 1, 2, ... until the verb completes
                (or the sample of N taken from the clean run's count)."""
                count = refs[(v, m)]["counts"].get(s, 0)
                out = []
                if a.n:
                    return [point(v, m, s, a.n)]
                if a.sample:
                    if a.full or (s in MOUNT_CALLS and count <= a.max_points):
                        ns = list(range(1, count + 1))
                    else:
                        ns = sample(count, a.max_points if s in MOUNT_CALLS else 2)
                    keep = [n for n in ns
                            if zlib.crc32(f"{v}/{m}/{s}/{n}".encode()) % a.sample == 0]
                    return [point(v, m, s, n) for n in keep]
                if a.full or (s in MOUNT_CALLS and count <= a.max_points):
                    n = 1
                    while True:
                        r = point(v, m, s, n)
                        out.append(r)
                        if "error" in r or not r["killed"]:
                            break
                        n += 1
                else:
                    k = a.max_points if s in MOUNT_CALLS else 2
                    for n in sample(count, k):
                        out.append(point(v, m, s, n))
                return out

            jobs = [pool.submit(series, v, m, s) for v, m in combos for s in syscalls]
            # Series run in parallel over the pool's threads, each one a subprocess at a time.
            for j in jobs:
                results.extend(j.result())
        passed = 0
        classes = collections.Counter()
        examples = {}
        for r in results:
            pt = r["point"]
            probs = judge(r, refs[(pt["verb"], pt["mode"])])
            if not probs:
                passed += 1
                continue
            failures.append((pt, probs))
            for c, d in probs:
                examples.setdefault(c, (pt, d))
            for c in {c for c, _ in probs}:
                classes[c] += 1
        kills = sum(1 for r in results if r.get("killed"))
        if a.n:
            for r in results:
                print(json.dumps(r, indent=1))
        for pt, probs in failures[: a.list_failures]:
            what = "; ".join(f"{c}: {d}" for c, d in probs)
            print(f"FAIL {pt['verb']} --mutable={pt['mode']} {pt['syscall']} N={pt['n']}: {what}")
        if classes:
            print("\ndefect classes (failed points with each; a point may have several):")
            for c, k in classes.most_common():
                pt, d = examples[c]
                print(f"  {k:5d} {c}  e.g. {pt['verb']} --mutable={pt['mode']} "
                      f"{pt['syscall']} N={pt['n']}: {d[:300]}")
        took = time.monotonic() - t0
        print(f"\n{len(results)} points ({kills} kills) over {len(combos)} verb/mode pairs "
              f"in {took:.0f} s{' (full)' if a.full else ''}"
              f"{', LIBSYSEXT_KERNEL_DISABLE=' + a.disable if a.disable else ''}")
        print(f"crash: {passed} passed, {len(failures)} failed")
        return 0 if not failures else 1
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", work])


if __name__ == "__main__":
    if "SYSEXT_CRASH_POINT" in os.environ:
        print(json.dumps(run_point(json.loads(os.environ["SYSEXT_CRASH_POINT"]))))
        sys.exit(0)
    sys.exit(main())
