#!/usr/bin/env python3
"""Plot merge time against the number of directory extensions for libsysext (CLI and
library), the syscall floor and systemd-sysext 257, from benches/results/results.csv.
Writes benches/results/merge.svg. Python standard library only."""
import csv, math, os, sys

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, 'results', 'results.csv')
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(src), 'merge.svg')
series = {}
with open(src) as f:
    for row in csv.DictReader(f):
        if row['workload'] != 'dir':
            continue
        try:
            ms = float(row['merge_ms'])
        except ValueError:
            continue  # "fails"
        series.setdefault(row['tool'], []).append((int(row['n']), ms))

W, H, L, B, T, R = 720, 440, 70, 50, 30, 190
xs = sorted({n for s in series.values() for n, _ in s})
ymax = max(ms for s in series.values() for _, ms in s)
ymin = min(ms for s in series.values() for _, ms in s)
lx = lambda n: L + (math.log2(n) - math.log2(xs[0])) / max(1e-9, math.log2(xs[-1]) - math.log2(xs[0])) * (W - L - R)
ly0, ly1 = math.log10(max(ymin / 1.5, 1e-3)), math.log10(ymax * 1.5)
ly = lambda v: H - B - (math.log10(v) - ly0) / (ly1 - ly0) * (H - B - T)
colors = ['#1f77b4', '#2ca02c', '#7f7f7f', '#d62728', '#9467bd']
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{L}" y="18" font-size="14">merge time vs. number of directory extensions (log-log)</text>',
       f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>']
for n in xs:
    svg.append(f'<text x="{lx(n):.1f}" y="{H-B+16}" text-anchor="middle">{n}</text>')
e = math.floor(ly0)
while e <= ly1:
    for m in (1, 2, 5):
        v = m * 10 ** e
        if ly0 <= math.log10(v) <= ly1:
            y = ly(v)
            svg.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W-R}" y2="{y:.1f}" stroke="#eee"/>')
            svg.append(f'<text x="{L-6}" y="{y+4:.1f}" text-anchor="end">{v:g}</text>')
    e += 1
svg.append(f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">extensions</text>')
svg.append(f'<text x="16" y="{(T+H-B)/2}" transform="rotate(-90 16 {(T+H-B)/2})" text-anchor="middle">ms</text>')
for i, (tool, pts) in enumerate(sorted(series.items())):
    c = colors[i % len(colors)]
    pts.sort()
    d = ' '.join(f'{lx(n):.1f},{ly(v):.1f}' for n, v in pts)
    svg.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
    for n, v in pts:
        svg.append(f'<circle cx="{lx(n):.1f}" cy="{ly(v):.1f}" r="3" fill="{c}"/>')
    y = T + 20 + 20 * i
    svg.append(f'<line x1="{W-R+15}" y1="{y}" x2="{W-R+35}" y2="{y}" stroke="{c}" stroke-width="2"/>')
    svg.append(f'<text x="{W-R+40}" y="{y+4}">{tool}</text>')
svg.append(f'<text x="{W-R+15}" y="{T + 30 + 20 * len(series)}" font-size="11">systemd-sysext 257 fails</text>')
svg.append(f'<text x="{W-R+15}" y="{T + 44 + 20 * len(series)}" font-size="11">at 256 (option page full)</text>')
svg.append('</svg>')
with open(out, 'w') as f:
    f.write('\n'.join(svg) + '\n')
print(out)
