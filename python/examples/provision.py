#!/usr/bin/env python3
"""Provision a system with extension images using libsysext.

Lists the extension images of a root, shows what a merge would do, then either
merges them persistently (replacing an existing merge) or, with ``--run``, merges
them only for the duration of a command and unmerges afterwards — also if the
command fails.

Examples::

    # What would be merged, and how (needs no privileges)
    provision.py --root /srv/image --dry-run

    # Merge all compatible extensions, writable through a tmpfs
    provision.py --root /srv/image --mutable ephemeral

    # Merge just "tools", run a command inside the root, unmerge again
    provision.py --root /srv/image --name tools --run chroot /srv/image tools --selftest

Exit status: 0 on success, 1 if libsysext reported an error, else the command's.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Sequence
from typing import Optional

import sysext


def show_images(ctx: sysext.Context) -> None:
    """Print the images found and whether a merge would use them."""
    images = ctx.list()
    if not images:
        print("No extension images found.")
    for ext in images:
        state = f"skipped: {ext.skipped_reason}" if ext.skipped_reason else "usable"
        version = ext.release.get("VERSION_ID") or ext.release.get("SYSEXT_LEVEL") or "-"
        print(f"{ext.name:20} {ext.kind.value:9} {version:8} {ext.path}  ({state})")


def show_plan(plan: sysext.Plan) -> None:
    """Print the overlays a merge would build."""
    print(f"mutable mode: {plan.mutable.value}; would merge: {', '.join(plan.extensions) or 'nothing'}")
    for h in plan.hierarchies:
        writes = {
            None: "read-only",
            sysext.UpperKind.EPHEMERAL: "writes go to a tmpfs",
            sysext.UpperKind.HOST: f"writes go to the host's own directory {h.upper_dir}",
            sysext.UpperKind.MUTABLE_DIR: f"writes go to {h.upper_dir}",
        }[h.upper_kind]
        print(f"  {h.hierarchy} -> {h.target} ({writes})")
        for layer in h.layers:
            print(f"      {layer.kind.value:9} {layer.path or ''}")


def merge_persistently(ctx: sysext.Context, names: Optional[Sequence[str]]) -> sysext.Report:
    """Merge, or replace the current merge if there is one."""
    try:
        return ctx.merge(names=names)
    except sysext.AlreadyMergedError as e:
        logging.info("%s Refreshing instead.", e)
        return ctx.refresh()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse arguments and provision; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="operate on this directory instead of /")
    p.add_argument("--confext", action="store_true", help="handle configuration extensions (/etc)")
    p.add_argument("--mutable", default="no", help="mutable mode: no, yes, auto, import, ephemeral, ephemeral-import")
    p.add_argument("--name", action="append", dest="names", help="merge only this extension (repeatable)")
    p.add_argument("--force", action="store_true", help="ignore release data mismatches")
    p.add_argument("--dry-run", action="store_true", help="only show images and the plan")
    p.add_argument("--run", nargs=argparse.REMAINDER, help="merge, run this command, unmerge")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")

    try:
        ctx = sysext.Context(
            root=args.root,
            image_class=sysext.ImageClass.CONFEXT if args.confext else sysext.ImageClass.SYSEXT,
            mutable=sysext.MutableMode(args.mutable),
            force=args.force,
            lock_timeout=60,
        )
        show_images(ctx)
        show_plan(ctx.plan())
        if args.dry_run:
            return 0

        if args.run:
            with ctx.merged(names=args.names) as report:
                print(f"merged {', '.join(report.merged)}; running {' '.join(args.run)}")
                return subprocess.call(args.run)

        report = merge_persistently(ctx, args.names)
        for s in report.skipped:
            print(f"ignored {s.name}: {s.reason}")
        for st in ctx.status():
            mode = st.mutable.value if st.mutable else "-"
            print(f"{st.hierarchy:8} {', '.join(st.extensions) or 'none':30} mutable={mode}")
        if report.needs_reload:
            print("an extension asks for a service manager reload: run 'systemctl daemon-reload'")
        return 0
    except sysext.SysextError as e:
        where = f" ({e.path})" if e.path else ""
        print(f"error: {e}{where} [errno {e.errno}, {type(e).__name__}]", file=sys.stderr)
        return 1
    except ValueError as e:  # a bad --mutable value
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
