#!/usr/bin/env python3
"""Run one scenario and print one JSON observation per step.

Must be started by run-scenario inside `unshare -m --propagation private`;
refuses to run otherwise (it mounts things).  Usage:

    driver.py SCENARIO_FILE (oracle|tut)

Layout inside the private mount namespace:
    $ORACLE_ROOT/sb            fresh tmpfs: the sandbox root (shared propagation,
                               as systemd-sysext needs), identical path for both sides
    $ORACLE_ROOT/.conformance  private tmpfs with
        peek/                  private non-recursive bind of the sandbox root: shows the
                               underlying directories even while overlays sit on top
        stage/                 scratch space for building images ($STAGE)
oracle side: proc, sysfs, /dev (bind) and a tmpfs /run are mounted into the chroot and the
reference runs as `chroot $ORACLE_ROOT systemd-sysext --root=/sb ...`.
tut side: a tmpfs is mounted on the host's /run (in the namespace only) and the tool
runs as `$TUT --root=$ORACLE_ROOT/sb ...`.
"""
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HIERS = ('usr', 'opt', 'etc')
META_NAMES = ('.systemd-sysext', '.systemd-confext')
# sandbox-relative directories whose contents are input, not output: listed as the
# directory only in the root listing
PRUNE = ('var/lib/extensions', 'var/lib/confexts')
# overlayfs work directories (".systemd-usr-workdir" etc.): kernel-internal contents
# (temporary whiteouts named after inode numbers), so only their existence is recorded
WORKDIR_RE = re.compile(r'(.*/)?\.systemd-[^/]*-workdir')
CMD_TIMEOUT = int(os.environ.get('CONFORMANCE_CMD_TIMEOUT', '60'))


def die(msg):
    sys.stderr.write('driver: %s\n' % msg)
    sys.exit(2)


ORACLE_ROOT = os.path.realpath(os.environ.get('ORACLE_ROOT', '/var/cache/sysext-oracle/trixie'))
SB = os.path.join(ORACLE_ROOT, 'sb')
WORK = os.path.join(ORACLE_ROOT, '.conformance')
PEEK = os.path.join(WORK, 'peek')
STAGE = os.path.join(WORK, 'stage')

LOG = None
# Whether the tools' messages are compared too (a scenario says `stderr_compare=no`, with its
# reason, where they cannot match; CONFORMANCE_STDERR=0 turns it off for a run).
COMPARE_STDERR = True
ORIG_CWD = os.getcwd()


def log(msg):
    if LOG:
        LOG.write(msg if msg.endswith('\n') else msg + '\n')
        LOG.flush()


# CONFORMANCE_FAST=1 (`compare --fast`, the VM tier): as few processes as possible, for
# guests under TCG where every exec costs (python3 seconds, bash 2 s, mount 0.7 s): mounts,
# unmounts and loop devices through the syscalls, one bash per run for the scenario's shell
# functions, the reference started in its chroot without chroot(1). What is observed is the
# same; the transcript says "(fast)" where a command was not run.
FAST = os.environ.get('CONFORMANCE_FAST') == '1'
_libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
MS_PRIVATE, MS_SHARED = 1 << 18, 1 << 20
MNT_DETACH = 2


def _enc(x):
    return None if x is None else x.encode()


def sys_mount(src, target, fstype, flags, data=None):
    if _libc.mount(_enc(src), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), target)


def sys_umount_detach(target):
    if _libc.umount2(_enc(target), MNT_DETACH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), target)


def mount_cmd(*argv):
    """`mount ARGV...` for the forms this harness uses; with FAST through mount(2)."""
    if not FAST:
        return sh('mount', *argv)
    a = list(argv)
    try:
        if a[0] in ('--make-rshared', '--make-private', '--make-shared'):
            flags = {'--make-rshared': MS_SHARED | MS_REC, '--make-private': MS_PRIVATE,
                     '--make-shared': MS_SHARED}[a[0]]
            sys_mount(None, a[1], None, flags)
        elif a[0] == '--bind':
            sys_mount(a[1], a[2], None, MS_BIND)
        elif a[0] == '-o' and a[1] == 'remount,bind,ro':
            sys_mount(None, a[2], None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        elif a[0] == '-t':
            fstype, rest = a[1], a[2:]
            data = None
            if rest[0] == '-o':
                data, rest = rest[1], rest[2:]
            sys_mount(rest[0], rest[1], fstype, 0, data)
        else:
            return sh('mount', *argv)
    except OSError as e:
        die('mount %s failed: %s' % (' '.join(argv), e))
    return 0


def sh(*argv, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.stdout:
        log('[harness] %s: %s' % (' '.join(argv), p.stdout.strip()))
    if check and p.returncode != 0:
        die('%s failed (%d): %s' % (' '.join(argv), p.returncode, p.stdout.strip()))
    return p.returncode


# ---------------------------------------------------------------- mountinfo

def _unescape(s):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), s)


def mountinfo():
    res = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            a, b = line.rstrip('\n').split(' - ', 1)
            fa = a.split(' ')
            fb = b.split(' ')
            res.append({
                'id': fa[0], 'parent': fa[1], 'mp': _unescape(fa[4]),
                'mopts': set(fa[5].split(',')), 'fstype': fb[0],
                'sopts': set(fb[2].split(',')) if len(fb) > 2 else set(),
            })
    return res


# ---------------------------------------------------------------- tree listing

def _content(path, size):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return '!' + errno.errorcode.get(e.errno, str(e.errno))
    if len(data) <= 80:
        try:
            txt = data.decode('ascii')
            if all(32 <= ord(c) < 127 or c == '\n' for c in txt):
                return repr(txt)
        except UnicodeDecodeError:
            pass
    return 'sha256:%s/%d' % (hashlib.sha256(data).hexdigest()[:16], len(data))


def listing(top, skip_top=(), prune=()):
    """Sorted list of 'relpath TYPE detail' strings for everything below top."""
    out = []

    def rec(d, rel):
        try:
            names = sorted(os.listdir(d))
        except OSError as e:
            out.append('%s !%s' % (rel or '.', errno.errorcode.get(e.errno, e.errno)))
            return
        for n in names:
            if not rel and n in skip_top:
                continue
            r = rel + n
            p = os.path.join(d, n)
            try:
                st = os.lstat(p)
            except OSError as e:
                out.append('%s !%s' % (r, errno.errorcode.get(e.errno, e.errno)))
                continue
            m = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out.append('%s/ d%04o' % (r, m))
                if r not in prune and not WORKDIR_RE.fullmatch(r):
                    rec(p, r + '/')
            elif stat.S_ISREG(st.st_mode):
                out.append('%s f%04o %s' % (r, m, _content(p, st.st_size)))
            elif stat.S_ISLNK(st.st_mode):
                out.append('%s -> %s' % (r, os.readlink(p)))
            elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append('%s whiteout' % r)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append('%s %s %d:%d' % (r, 'c' if stat.S_ISCHR(st.st_mode) else 'b',
                                            os.major(st.st_rdev), os.minor(st.st_rdev)))
            elif stat.S_ISFIFO(st.st_mode):
                out.append('%s fifo' % r)
            else:
                out.append('%s other' % r)

    rec(top, '')
    return out


def observe_hier(h, mi):
    p = os.path.join(SB, h)
    o = {}
    at = [m for m in mi if m['mp'] == p]
    if at:
        parents = {m['parent'] for m in at}
        tops = [m for m in at if m['id'] not in parents] or at
        t = tops[-1]
        o['mount'] = t['fstype']
        o['stack'] = len(at)
        o['ro'] = 'ro' in t['mopts'] or 'ro' in t['sopts']
        o['flags'] = sorted(t['mopts'] & {'nodev', 'noexec', 'nosuid'})
    else:
        o['mount'] = None
    sub = sorted(m['mp'][len(p):] for m in mi if m['mp'].startswith(p + '/'))
    if sub:
        o['submounts'] = sub
    if os.path.islink(p):
        o['tree'] = 'symlink -> ' + os.readlink(p)
    elif not os.path.exists(p):
        o['tree'] = 'absent'
    elif not os.path.isdir(p):
        o['tree'] = 'not a directory'
    else:
        o['meta'] = [n for n in META_NAMES if os.path.lexists(os.path.join(p, n))]
        o['mode'] = '%04o' % stat.S_IMODE(os.stat(p).st_mode)   # the hierarchy dir itself
        o['tree'] = listing(p, skip_top=META_NAMES)
    return o


def observe(extra):
    obs = dict(extra)
    if obs.pop('setup_step', False):
        return obs
    mi = mountinfo()
    obs['hier'] = {h: observe_hier(h, mi) for h in HIERS}
    # mounts inside the sandbox other than the hierarchies themselves
    others = []
    for m in mi:
        if m['mp'].startswith(SB + '/'):
            rel = m['mp'][len(SB) + 1:]
            if rel.split('/')[0] in HIERS:
                continue
            others.append('%s %s' % (rel, m['fstype']))
    if others:
        obs['other_mounts'] = sorted(others)
    # the underlying sandbox (no overlays), minus extension inputs
    obs['root'] = listing(PEEK, prune=PRUNE)
    return obs


# ---------------------------------------------------------------- commands

def clean_env(side):
    env = {k: v for k, v in os.environ.items() if not k.startswith('SYSTEMD_')}
    env.update(SYSTEMD_PAGER='cat', PAGER='cat', SYSTEMD_COLORS='0', LC_ALL='C.UTF-8')
    if side == 'tut':
        env['TMPDIR'] = '/run/tmp'   # / (and so /tmp) is read-only in the namespace
    if os.environ.get('CONFORMANCE_DEBUG'):
        env['SYSTEMD_LOG_LEVEL'] = 'debug'
    return env


def tool_cmd(side, kind, args):
    if side == 'oracle':
        return ['chroot', ORACLE_ROOT, '/usr/bin/systemd-' + kind, '--root=/sb'] + args
    tut = os.environ.get('TUT')
    if not tut:
        die('TUT is not set')
    if kind == 'sysext':
        base = shlex.split(tut)
    else:
        base = shlex.split(os.environ.get('TUT_CONFEXT') or (tut + ' --confext'))
    if '/' in base[0] and not base[0].startswith('/'):
        base[0] = os.path.join(ORIG_CWD, base[0])   # commands run with cwd=/
    return base + ['--root=' + SB] + args


def _enter_oracle_root():
    os.chroot(ORACLE_ROOT)
    os.chdir('/')


def run_tool(side, kind, args):
    cmd = tool_cmd(side, kind, args)
    log('$ ' + ' '.join(shlex.quote(c) for c in cmd))
    pre = None
    if FAST and cmd[0] == 'chroot':
        # chroot(1)'s work, done in the child before the exec.
        cmd, pre = cmd[2:], _enter_oracle_root
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=clean_env(side), timeout=CMD_TIMEOUT,
                           cwd='/', preexec_fn=pre)
    except subprocess.TimeoutExpired:
        log('  -> TIMEOUT')
        return 'timeout', b'', b''
    except OSError as e:
        log('  -> cannot execute: %s' % e)
        return 'exec-error', b'', b''
    if p.stdout:
        log('  stdout: ' + p.stdout.decode(errors='replace').rstrip().replace('\n', '\n          '))
    if p.stderr:
        log('  stderr: ' + p.stderr.decode(errors='replace').rstrip().replace('\n', '\n          '))
    log('  -> rc=%d' % p.returncode)
    return (0 if p.returncode == 0 else 'nonzero'), p.stdout, p.stderr


class Shell:
    """FAST: one bash for the whole run. It loads lib/common.sh and the scenario, runs
    setup() (in itself: setup may set `steps`), reports the step list and the functions
    defined, then runs each requested function in a subshell of its own (cd'ed to the
    sandbox, `set -e`, as a fresh `bash -c` would), its output into a file, and answers
    with the status."""
    SCRIPT = r'''
source "$HERE/lib/common.sh"; source "$1"
exec 4>&1 1>&2
setup >&2
__s=${steps:?scenario has no steps}
printf '%s\n' "${stderr_compare:-yes}" "${__s//$'\n'/ }" >&4
__f=$(compgen -A function)
printf '%s\n' "${__f//$'\n'/ }" >&4
set +e
while IFS= read -r __line; do
    eval "set -- $__line"
    ( cd "$R" || exit 1; set -e; "$@" ) >"$SHELL_OUT" 2>&1 </dev/null
    printf 'rc %d\n' $? >&4
done
'''

    def __init__(self, scen, env):
        self.out = os.path.join(WORK, '.shell-out')
        err = os.path.join(WORK, '.shell-setup')
        self.errf = open(err, 'w+')
        self.p = subprocess.Popen(['bash', '-c', self.SCRIPT, 'scenario', scen],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.errf, text=True, cwd=SB,
                                  env=dict(env, SHELL_OUT=self.out))

    def setup(self):
        """(rc, stderr of setup, words of the two first lines, set of function names)."""
        lines = [self.p.stdout.readline() for _ in range(3)]
        self.errf.seek(0)
        err = self.errf.read()
        if not lines[2].endswith('\n'):
            self.p.wait()
            return self.p.returncode or 1, err, [], set()
        return 0, err, (lines[0] + lines[1]).split(), set(lines[2].split())

    def call(self, fn, *args):
        self.p.stdin.write(' '.join(shlex.quote(a) for a in (fn,) + args) + '\n')
        self.p.stdin.flush()
        ans = self.p.stdout.readline()
        try:
            with open(self.out) as f:
                out = f.read()
        except OSError:
            out = ''
        if not ans.startswith('rc '):
            die('the scenario shell ended while running %s' % fn)
        return int(ans.split()[1]), out

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait()


SHELL = None
FUNCS = None


def bash_fn(scen, fn, *args):
    """Run a shell function from the scenario file (with lib/common.sh loaded)."""
    if SHELL:
        rc, out = SHELL.call(fn, *args)
        if out:
            log('[%s] %s' % (fn, out.strip()))
        return rc
    script = 'source "$HERE/lib/common.sh"; source "$1"; shift; "$@"'
    env = dict(os.environ, R=SB, STAGE=STAGE, HERE=HERE, PYTHON=sys.executable)
    p = subprocess.run(['bash', '-c', script, 'scenario', scen, fn] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=SB)
    if p.stdout:
        log('[%s] %s' % (fn, p.stdout.strip()))
    return p.returncode


def fn_exists(scen, fn):
    if FUNCS is not None:
        return fn in FUNCS
    script = 'source "$HERE/lib/common.sh"; source "$1"; declare -F "$2" >/dev/null'
    env = dict(os.environ, R=SB, STAGE=STAGE, HERE=HERE, PYTHON=sys.executable)
    return subprocess.run(['bash', '-c', script, 'scenario', scen, fn], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def fs_op(kind, path, marker):
    p = os.path.join(SB, path.lstrip('/'))
    try:
        if kind == 'write':
            with open(p, 'w') as f:
                f.write(marker + '\n')
        elif kind == 'append':
            with open(p, 'a') as f:
                f.write(marker + '\n')
        elif kind == 'mkdir':
            os.mkdir(p)
        elif kind == 'rm':
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        elif kind == 'exec':
            r = subprocess.run([p], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)
            return 'ok' if r.returncode == 0 else 'rc=%d' % r.returncode
        return 'ok'
    except OSError as e:
        return errname(e)
    except subprocess.TimeoutExpired:
        return 'timeout'


def parse_list(out):
    try:
        data = json.loads(out.decode() or 'null')
        return sorted({e['name'] for e in data})
    except Exception:
        return 'invalid-json'


# Fields libsysext adds to systemd's JSON (documented in its README); dropped before the byte
# comparison of the TUT's JSON, everything else must match systemd's bytes.
TUT_EXTRA_JSON = {'state', 'reason', 'shadows', 'merged', 'extensionList', 'mutable', 'upper', 'verity'}
TIME_RE = re.compile(rb'(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC')
JSON_TIME_RE = re.compile(rb'"(time|since)":\d+')


def normalise_out(side, out):
    """stdout as bytes to compare: the sandbox path and timestamps (which differ between the
    two runs by nature) replaced; the TUT's extra JSON fields dropped."""
    if side == 'tut':
        # The TUT's --root is SB, the reference's /sb: every path the TUT prints is longer by
        # `extra`, and so is a column of paths; the paths shrink back here, the header of
        # such a column too (its padding is the only part not made of paths).
        extra = len(SB) - len('/sb')
        lines = out.split(b'\n')
        if lines and lines[0].startswith(b'NAME ') and b' PATH ' + b' ' * extra in lines[0]:
            lines[0] = lines[0].replace(b' PATH ' + b' ' * extra, b' PATH ', 1)
        out = b'\n'.join(lines)
        out = out.replace(SB.encode() + b'/', b'/sb/').replace(SB.encode(), b'/sb')
        if out.startswith(b'['):
            try:
                data = json.loads(out.decode())
                dropped = [e.pop(k) for e in data for k in TUT_EXTRA_JSON if k in e]
                if dropped:   # else the raw bytes are compared
                    out = (json.dumps(data, separators=(',', ':'), ensure_ascii=False)
                           + '\n').encode()
            except Exception:
                pass
    out = TIME_RE.sub(b'<timestamp>', out)
    out = JSON_TIME_RE.sub(lambda m: b'"' + m.group(1) + b'":<usec>', out)
    return out.decode(errors='replace')


def parse_status(out):
    try:
        data = json.loads(out.decode() or 'null')
        res = {}
        for e in data:
            ex = e.get('extensions')
            res[e['hierarchy']] = ex if isinstance(ex, list) else (ex or 'none')
        return res
    except Exception:
        return 'invalid-json'


# steps that only change the input (extensions, tree) between tool invocations: their
# observation is just the step itself (the tree right after e.g. deleting a merged
# extension's lower directory is kernel-specific noise); the next step observes
SETUP_STEPS = ('addext', 'addcext', 'rmext', 'rmcext', 'sh')

TOOL_STEPS = {
    # step kind: (tool, verb, takes mode)
    'merge': ('sysext', 'merge', True), 'refresh': ('sysext', 'refresh', True),
    'unmerge': ('sysext', 'unmerge', False), 'status': ('sysext', 'status', False),
    'list': ('sysext', 'list', False), 'statusj': ('sysext', 'status', False),
    'cmerge': ('confext', 'merge', True), 'crefresh': ('confext', 'refresh', True),
    'cunmerge': ('confext', 'unmerge', False), 'cstatus': ('confext', 'status', False),
    'clist': ('confext', 'list', False), 'cstatusj': ('confext', 'status', False),
    'hlist': ('sysext', 'list', False), 'hclist': ('confext', 'list', False),
}



def run_step(scen, name, side, i, tok):
    parts = tok.split(':')
    kind = parts[0]
    obs = {'i': i, 'step': tok}
    if kind in TOOL_STEPS:
        tool, verb, takes_mode = TOOL_STEPS[kind]
        args = []
        rest = parts[1:]
        if takes_mode:
            mode = rest[0] if rest else ''
            rest = rest[1:]
            if mode not in ('', '-'):
                args.append('--mutable=' + mode)
        args += [a for a in rest if a]
        if kind in ('list', 'clist', 'statusj', 'cstatusj'):
            args.append('--json=short')
        args.append(verb)
        rc, out, err = run_tool(side, tool, args)
        obs['rc'] = rc
        obs['stdout'] = normalise_out(side, out)   # every verb's, byte for byte
        if COMPARE_STDERR:
            obs['stderr'] = normalise_out(side, err)
        if kind in ('list', 'clist'):
            obs['names'] = parse_list(out) if rc == 0 else None
        elif kind in ('statusj', 'cstatusj'):
            obs['status'] = parse_status(out) if rc == 0 else None
    elif kind in ('write', 'append', 'mkdir', 'rm', 'exec'):
        obs['op'] = fs_op(kind, parts[1], 'conformance %s step %d' % (name, i))
        log('[%s] %s -> %s' % (kind, parts[1], obs['op']))
    elif kind in ('addext', 'addcext'):
        n = parts[1]
        fn = '%s_%s' % (kind, n.replace('-', '_').replace('.', '_'))
        if fn_exists(scen, fn):
            rc = bash_fn(scen, fn)
        elif kind == 'addext':
            rc = bash_fn(scen, 'sysext', n)
        else:
            rc = bash_fn(scen, 'confext', n)
        if rc != 0:
            die('step %s failed in setup code' % tok)
    elif kind in ('rmext', 'rmcext'):
        d = 'var/lib/extensions' if kind == 'rmext' else 'var/lib/confexts'
        for suffix in ('', '.raw'):
            p = os.path.join(SB, d, parts[1] + suffix)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
    elif kind == 'sh':
        rc = bash_fn(scen, parts[1], *parts[2:])
        if rc != 0:
            die('step %s: shell function failed (rc=%d)' % (tok, rc))
    else:
        die('unknown step kind %r' % tok)
    if kind in SETUP_STEPS:
        obs['setup_step'] = True   # observe() records nothing else for these
    return obs


# ---------------------------------------------------------------- setup / teardown

def setup_namespace(side):
    # refuse to mount anything unless we are in our own mount namespace
    outer = os.environ.get('CONFORMANCE_OUTER_MNTNS')
    if not outer or os.readlink('/proc/self/ns/mnt') == outer:
        die('not in a private mount namespace; use run-scenario')
    mount_cmd('--make-rshared', '/')
    # The chroot's / must be a mount point: the reference's image dissection does
    # mount(NULL, "/", MS_SLAVE|MS_REC) in a child and fails with EINVAL otherwise.
    # Done for both sides so that the mount layout around the sandbox is identical.
    mount_cmd('--bind', ORACLE_ROOT, ORACLE_ROOT)
    mount_cmd('--make-private', ORACLE_ROOT)   # own peer group (no double propagation)
    mount_cmd('--make-shared', ORACLE_ROOT)
    for d in (SB, WORK):
        os.makedirs(d, exist_ok=True)
    mount_cmd('-t', 'tmpfs', '-o', 'mode=0755', 'conformance-work', WORK)
    mount_cmd('--make-private', WORK)
    os.makedirs(PEEK)
    os.makedirs(STAGE)
    if os.environ.get('CONFORMANCE_SANDBOX') == 'disk':
        # debugging aid: sandbox on the disk below ORACLE_ROOT (not concurrency safe)
        for n in os.listdir(SB):
            p = os.path.join(SB, n)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        mount_cmd('--bind', SB, SB)
        mount_cmd('--make-private', SB)   # own peer group, like the tmpfs
        mount_cmd('--make-shared', SB)
    else:
        mount_cmd('-t', 'tmpfs', '-o', 'mode=0755', 'conformance-sandbox', SB)
    mount_cmd('--bind', SB, PEEK)
    mount_cmd('--make-private', PEEK)
    if side == 'oracle':
        mount_cmd('-t', 'proc', 'proc', os.path.join(ORACLE_ROOT, 'proc'))
        mount_cmd('--bind', '/dev', os.path.join(ORACLE_ROOT, 'dev'))
        # sysfs is needed by the reference for loop devices (sd_device), i.e. .raw images
        mount_cmd('-t', 'sysfs', 'sysfs', os.path.join(ORACLE_ROOT, 'sys'))
        mount_cmd('-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', os.path.join(ORACLE_ROOT, 'run'))
    else:
        mount_cmd('-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', '/run')
        os.mkdir('/run/tmp')
        os.chmod('/run/tmp', 0o1777)
    if os.environ.get('CONFORMANCE_RO_HOST', '1') != '0':
        # Nothing outside the tmpfs mounts may be modified: the chroot (ORACLE_ROOT bind)
        # and the host root become read-only in this namespace.  The reference has --root
        # escapes (e.g. --mutable=yes with an absolute var/lib/extensions.mutable symlink
        # creates the target in the chroot's real root), which would otherwise pollute
        # ORACLE_ROOT and make later runs nondeterministic; a tool under test with the
        # same bug would write to the host.
        mount_cmd('-o', 'remount,bind,ro', ORACLE_ROOT)
        mount_cmd('-o', 'remount,bind,ro', '/')
    st = os.stat(SB)
    return os.major(st.st_dev), os.minor(st.st_dev)


LOOP_GET_STATUS64, LOOP_CLR_FD = 0x4C05, 0x4C01


def loops_on(dev):
    if FAST:
        # The bound loop devices (sysfs has loop/ for them) whose backing file lies on dev:
        # LOOP_GET_STATUS64's lo_device, as losetup's BACK-MAJ:MIN.
        res = []
        for n in sorted(os.listdir('/sys/block')):
            if not n.startswith('loop') or not os.path.exists('/sys/block/%s/loop' % n):
                continue
            try:
                fd = os.open('/dev/' + n, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                buf = bytearray(232)
                fcntl.ioctl(fd, LOOP_GET_STATUS64, buf)
                d = int.from_bytes(buf[0:8], 'little')
                if (os.major(d), os.minor(d)) == dev:
                    res.append('/dev/' + n)
            except OSError:
                pass
            finally:
                os.close(fd)
        return res
    p = subprocess.run(['losetup', '-l', '-n', '--raw', '-O', 'NAME,BACK-MAJ:MIN'],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    res = []
    for line in p.stdout.splitlines():
        f = line.replace('\\x20', ' ').split()   # --raw pads columns with escaped blanks
        if len(f) == 2 and f[1] == '%d:%d' % dev:
            res.append(f[0])
    return res


def teardown(dev):
    # unmount everything in the sandbox, deepest first, then our helper mounts
    for _ in range(3):
        mps = sorted({m['mp'] for m in mountinfo()
                      if m['mp'] == SB or m['mp'].startswith(SB + '/')
                      or m['mp'] == WORK or m['mp'].startswith(WORK + '/')},
                     key=lambda s: -s.count('/'))
        if not mps:
            break
        for mp in mps:
            if FAST:
                try:
                    sys_umount_detach(mp)
                except OSError:
                    pass
                continue
            subprocess.run(['umount', '-l', mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # loop devices backed by files in our sandbox tmpfs: wait for autoclear, then detach
    deadline = time.time() + 3
    while loops_on(dev) and time.time() < deadline:
        time.sleep(0.1)
    left = loops_on(dev)
    for l in left:
        log('[harness] detaching leftover loop device %s' % l)
        if FAST:
            try:
                fd = os.open(l, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fcntl.ioctl(fd, LOOP_CLR_FD, 0)
                finally:
                    os.close(fd)
            except OSError:
                pass
            continue
        subprocess.run(['losetup', '-d', l], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return left


def load_steps(scen):
    global COMPARE_STDERR, SHELL, FUNCS
    if FAST:
        env = dict(os.environ, R=SB, STAGE=STAGE, HERE=HERE, PYTHON=sys.executable)
        SHELL = Shell(scen, env)
        rc, err, words, FUNCS = SHELL.setup()
        if err:
            log('[setup] ' + err.strip())
        if rc != 0:
            die('setup of %s failed (rc=%d): %s' % (scen, rc, err.strip()[-2000:]))
        COMPARE_STDERR = (words[0] != 'no' and os.environ.get('CONFORMANCE_STDERR', '1') != '0')
        return words[1:]
    script = ('source "$HERE/lib/common.sh"; source "$1"; setup >&2; '
              'printf "%s\\n" "${stderr_compare:-yes}" "${steps:?scenario has no steps}"')
    env = dict(os.environ, R=SB, STAGE=STAGE, HERE=HERE, PYTHON=sys.executable)
    p = subprocess.run(['bash', '-c', script, 'scenario', scen], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=env, cwd=SB)
    if p.stderr:
        log('[setup] ' + p.stderr.strip())
    if p.returncode != 0:
        die('setup of %s failed (rc=%d): %s' % (scen, p.returncode, p.stderr.strip()[-2000:]))
    words = p.stdout.split()
    COMPARE_STDERR = (words[0] != 'no' and os.environ.get('CONFORMANCE_STDERR', '1') != '0')
    return words[1:]


def main():
    global LOG
    if len(sys.argv) != 3 or sys.argv[2] not in ('oracle', 'tut'):
        die('usage: driver.py SCENARIO_FILE (oracle|tut)')
    scen, side = os.path.abspath(sys.argv[1]), sys.argv[2]
    name = os.path.basename(scen)[:-3] if scen.endswith('.sh') else os.path.basename(scen)
    # the transcript is opened by run-scenario *outside* the namespace and passed as an fd:
    # a file opened for writing through this namespace's copy of / would keep the
    # read-only remount below from succeeding (EBUSY)
    logfd = os.environ.get('CONFORMANCE_LOG_FD')
    if logfd:
        LOG = os.fdopen(int(logfd), 'w')
        log('# scenario %s, side %s' % (name, side))
    os.umask(0o022)
    dev = setup_namespace(side)
    try:
        steps = load_steps(scen)
        print(json.dumps(observe({'i': 0, 'step': 'setup'}), sort_keys=True), flush=True)
        for i, tok in enumerate(steps, 1):
            obs = run_step(scen, name, side, i, tok)
            print(json.dumps(observe(obs), sort_keys=True), flush=True)
    finally:
        if SHELL:
            SHELL.close()
        left = teardown(dev)
    if left and side == 'tut':
        # only devices backed by this run's own sandbox tmpfs (by device number) count
        die('the tool left loop devices attached to sandbox files: %s' % ' '.join(left))


if __name__ == '__main__':
    main()
