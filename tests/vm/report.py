#!/usr/bin/env python3
"""report.py OUT SUITE QEMU_RC SECONDS: reads what one guest left in OUT/out (see guest.sh)
and prints its results: per test binary and per oracle scenario, failures grouped by reason,
the 500-layer and refresh-gap checks, the benchmark ratios, the time per phase. Writes
"PASSED FAILED" into OUT/counts."""
import os
import re
import sys

out, suite, qemu_rc, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
g = os.path.join(out, 'out')


def read(*p):
    try:
        with open(os.path.join(*p), errors='replace') as f:
            return f.read()
    except OSError:
        return None


def short(s, n=240):
    s = re.sub(r'/tmp/sysext-test-[^\s/:"]*', '/tmp/sysext-test-…', s)
    s = re.sub(r'\s+', ' ', s).strip()
    return s if len(s) <= n else s[:n - 1] + '…'


def reason_of(section):
    """The innermost panic of a failed test's output: the child's, not the parent's."""
    lines = section.splitlines()
    idx = [i for i, l in enumerate(lines) if re.search(r"^thread '.*panicked at ", l)]
    if not idx:
        return short(' '.join(lines[-3:])) or 'no output'
    inner = [i for i in idx if 'tests/support/mod.rs' not in lines[i]]
    i = (inner or idx)[-1]
    where = re.sub(r".*panicked at ", '', lines[i]).rstrip(':')
    msg = []
    for l in lines[i + 1:]:
        if not l.strip() or l.startswith('note: run with') or l.startswith('stack backtrace'):
            break
        msg.append(l)
    return short(' '.join(msg) + ' (' + where + ')')


results = []   # (group, name, 'pass'|'fail'|'skip', reason)
console = (read(out, 'console.log') or '').replace('\r', '')
finished = '@vm end' in console
kernel = (read(g, 'kernel') or '?').strip()

# Root integration tests.
gap = layers = None
for lst in sorted(f for f in os.listdir(out) if f.endswith('.list') and f != 'oracle.list'):
    binname = lst[:-5]
    names = (read(out, lst) or '').split()
    log = read(g, 'tests', binname + '.log')
    rc = (read(g, 'tests', binname + '.rc') or '').strip()
    status, sections = {}, {}
    if log:
        for m in re.finditer(r'^test (\S+) \.\.\. (ok|FAILED|ignored)', log, re.M):
            status[m.group(1)] = m.group(2)
        # A section runs to the next one: the child's output inside has its own "failures:".
        for m in re.finditer(r'^---- (\S+) stdout ----\n(.*?)(?=^---- \S+ stdout ----$|\Z)', log,
                             re.M | re.S):
            sections[m.group(1)] = m.group(2)
    for n in names:
        st = status.get(n)
        if st == 'ok':
            results.append(('tests', f'{binname}::{n}', 'pass', ''))
        elif st == 'ignored':
            results.append(('tests', f'{binname}::{n}', 'skip', ''))
        elif st == 'FAILED':
            results.append(('tests', f'{binname}::{n}', 'fail', reason_of(sections.get(n, ''))))
        else:
            why = 'timeout' if rc == '124' else f'no result (binary rc={rc or "none"}: guest stopped or crashed)'
            results.append(('tests', f'{binname}::{n}', 'fail', why))
        if n == 'refresh_has_no_gap_for_readers':
            sec = sections.get(n, '')
            m = re.search(r'gap-free refresh: (\d+) probes over (\d+) refreshes, (\d+) misses', sec)
            skip = re.search(r'^skipping: (.*)$', sec, re.M)
            gap = (results[-1], m, skip.group(1) if skip else None)
        if n == 'five_hundred_layers':
            layers = results[-1]

# Oracle scenarios.
olog = read(g, 'oracle.log')
if olog is not None:
    cur = None
    for line in olog.splitlines():
        m = re.match(r'^(PASS|FAIL) (\S+)', line)
        if m:
            cur = [('oracle', m.group(2), 'pass' if m.group(1) == 'PASS' else 'fail', '')]
            results.append(cur[0])
            cur.append([])
            continue
        if cur and cur[0][2] == 'fail' and line.startswith('  ') and len(cur[1]) < 4:
            cur[1].append(line.strip())
            i = results.index(cur[0])
            results[i] = cur[0] = ('oracle', cur[0][1], 'fail', short(' | '.join(cur[1]), 300))
seen = set(r[1] for r in results if r[0] == 'oracle')
orc = (read(g, 'oracle.rc') or '').strip()
for n in (read(out, 'oracle.scenarios') or read(out, 'oracle.list') or '').split():
    if n not in seen:
        results.append(('oracle', n, 'fail', 'not run (compare rc=%s%s)' % (
            orc or 'none', ': timeout' if orc == '124' else ', guest stopped' if not orc else '')))
if olog is not None and not any(r[0] == 'oracle' for r in results):
    results.append(('oracle', 'compare', 'fail', 'no scenario result: ' + short(olog[-400:])))

# The verity group (tests/vm/verity.sh): "PASS name ..." / "FAIL name: why" lines.
vlog = read(g, 'verity.log')
if vlog is not None:
    for line in vlog.splitlines():
        m = re.match(r'^(PASS|FAIL) (\S+?):? ?(.*)$', line)
        if m:
            results.append(('verity', m.group(2),
                            'pass' if m.group(1) == 'PASS' else 'fail', short(m.group(3), 300)))
    vrc = (read(g, 'verity.rc') or '').strip()
    if vrc not in ('0', '1'):
        results.append(('verity', 'verity.sh', 'fail', 'exit %s%s' % (vrc or 'none', ': timeout' if vrc == '124' else '')))

# Benchmark.
bench = []
brc = (read(g, 'bench.rc') or '').strip()
md = read(g, 'bench', 'results.md')
if brc:
    if brc == '0' and md:
        results.append(('bench', 'sysext-bench', 'pass', ''))
    else:
        results.append(('bench', 'sysext-bench', 'fail',
                        f'rc={brc}: ' + short((read(g, 'bench.log') or '')[-400:])))
if md:
    rows = {}
    for line in md.splitlines():
        c = [x.strip() for x in line.strip().strip('|').split('|')]
        if len(c) == 6 and c[0] not in ('workload', '---'):
            rows.setdefault(c[0], {})[c[1]] = c
    for wl, tools in rows.items():
        lib = tools.get('libsysext library')
        cli = tools.get('libsysext CLI')
        sd = tools.get('systemd-sysext 257')
        bench.append('%s: library %s, CLI %s (systemd %s + %s ms, library %s + %s ms)' % (
            wl, lib[5] or lib[2] if lib else '?', cli[5] or cli[2] if cli else '?',
            sd[2] if sd else '-', sd[4] if sd else '-', lib[2] if lib else '-', lib[4] if lib else '-'))

src = (read(g, 'script.rc') or '').strip()
if src:
    results.append(('script', 'script', 'pass' if src == '0' else 'fail', '' if src == '0' else f'rc={src}'))
    script_log = read(g, 'script.log') or ''

if not finished:
    tail = [l for l in console.splitlines() if l.strip()][-3:]
    results.append(('guest', 'run', 'fail', 'guest did not finish (qemu rc=%d%s): %s' % (
        qemu_rc, ', timeout' if qemu_rc == 124 else '', short(' | '.join(tail)))))

# Known failures (tests/vm/known-failures: "SUITE-GLOB NAME-GLOB reason"): shown as such and
# not fatal; everything else that fails is.
import fnmatch
known = []
kf = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'known-failures')
for line in (read(kf) or '').splitlines():
    w = line.split(None, 2)
    if len(w) >= 2 and not w[0].startswith('#'):
        known.append((w[0], w[1], w[2] if len(w) > 2 else ''))


def known_reason(grp, name):
    for sg, ng, why in known:
        if fnmatch.fnmatch(suite, sg) and fnmatch.fnmatch(f'{grp}/{name}', ng):
            return why or 'listed'
    return None


results = [(g_, n, 'known', f'{why} [known failure; the test says: {r}]')
           if st == 'fail' and (why := known_reason(g_, n)) else (g_, n, st, r)
           for g_, n, st, r in results]

phases = {}
for line in (read(g, 'phases') or '').splitlines():
    k, _, v = line.partition(' ')
    phases[k] = int(v) // 1000 if v.isdigit() else v
npass = sum(r[2] == 'pass' for r in results)
nfail = sum(r[2] == 'fail' for r in results)
nskip = sum(r[2] == 'skip' for r in results)
nknown = sum(r[2] == 'known' for r in results)
ph = ', '.join(f'{k} {v} s' for k, v in phases.items())
print(f'== {suite}: Linux {kernel}: {npass} passed, {nfail} failed, {nknown} known failures, {nskip} skipped '
      f'({secs} s under TCG{": " + ph if ph else ""})')
for grp, title in (('tests', 'root integration tests'),
                   ('oracle', 'oracle scenarios against systemd-sysext 257 in the guest'),
                   ('verity', 'verity and signed images against systemd-sysext 257, real dm-verity'),
                   ('bench', 'benchmark'), ('script', 'SYSEXT_VM_SCRIPT'), ('guest', 'guest')):
    rs = [r for r in results if r[0] == grp]
    if not rs:
        continue
    p = sum(r[2] == 'pass' for r in rs)
    print(f'  {title}: {p}/{len(rs)} passed')
    byreason = {}
    for r in rs:
        if r[2] in ('fail', 'known'):
            byreason.setdefault((r[2], r[3]), []).append(r[1])
    for (st, why), names in sorted(byreason.items(), key=lambda kv: (kv[0][0] == 'known', -len(kv[1]))):
        shown = ', '.join(names[:6]) + (f', … ({len(names) - 6} more)' if len(names) > 6 else '')
        print(f'    {"FAIL" if st == "fail" else "KNOWN"} {len(names)}× {why}\n         {shown}')
if layers:
    print(f'  500 layers: {layers[2].upper()} {layers[3]}'.rstrip())
if gap:
    r, m, skip = gap
    probes = f' ({m.group(1)} probes over {m.group(2)} refreshes, {m.group(3)} misses)' if m else ''
    if skip and r[2] == 'pass':
        probes = f' but not measured: the test skips it ({skip})'
    print(f'  refresh gap: {r[2].upper()}{probes} {r[3]}'.rstrip())
if src:
    print('  script output (out/script.log):')
    for line in script_log.splitlines():
        print('    ' + line)
for b in bench:
    print(f'  bench merge+unmerge vs systemd-sysext 257, {b}')
with open(os.path.join(out, 'counts'), 'w') as f:
    f.write(f'{npass} {nfail} {nknown}\n')
