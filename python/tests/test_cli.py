"""The Python and CLI views of the same root agree."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from support import cli_binary

import sysext


def cli(root: Path, *args: str) -> Any:
    out = subprocess.run([str(cli_binary()), f"--root={root}", *args, "--json=short"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def status_view(ctx: sysext.Context) -> list[dict[str, Any]]:
    return [
        {
            "hierarchy": s.hierarchy,
            "merged": s.merged,
            "extensionList": s.extensions,
            "since": s.since_usec,
            "mutable": None if s.mutable is None else s.mutable.value,
            # As the CLI's JSON has it: {"kind", "path"}, or null when read-only or not known.
            "upper": None if s.upper_kind is None else {"kind": s.upper_kind.value, "path": s.upper_dir},
        }
        for s in ctx.status()
    ]


def cli_status_view(root: Path) -> list[dict[str, Any]]:
    keys = ["hierarchy", "merged", "extensionList", "since", "mutable", "upper"]
    return [{k: row[k] for k in keys} for row in cli(root, "status")]


def test_list_agrees(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("bar", "ID=fedora\n")
    exts = sysext.Context(root=root).list()
    # "verity" (where verity is checked) is a CLI-only extra of list --json.
    assert [{k: v for k, v in row.items() if k != "verity"} for row in cli(root, "list")] == [
        {"name": e.name, "type": e.kind.value, "path": e.path, "time": e.time_usec,
         "state": e.state, "reason": e.reason, "shadows": e.shadows}
        for e in exts
    ]
    assert [(e.name, e.state) for e in exts] == [("bar", "incompatible"), ("foo", "would-merge")]
    assert exts[0].skipped_reason == exts[0].reason  # plan and list agree on why


def test_plan_agrees(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("bar", "ID=fedora\n")
    plan = sysext.Context(root=root, mutable="ephemeral").plan()
    c = cli(root, "--mutable=ephemeral", "plan")
    assert c["mutable"] == plan.mutable.value
    assert c["extensions"] == plan.extensions
    assert c["skipped"] == [{"name": s.name, "reason": s.reason} for s in plan.skipped]
    assert [(h["hierarchy"], h["target"], h["readOnly"], len(h["layers"])) for h in c["hierarchies"]] == \
        [(h.hierarchy, h.target, h.read_only, len(h.layers)) for h in plan.hierarchies]


def test_status_agrees_unmerged(root: Path) -> None:
    assert status_view(sysext.Context(root=root)) == cli_status_view(root)


@pytest.mark.root
@pytest.mark.parametrize("mode", ["no", "ephemeral", "yes"])
def test_status_agrees_merged(root: Path, mode: str) -> None:
    ctx = sysext.Context(root=root, mutable=mode)
    with ctx.merged():
        view = status_view(ctx)
        assert view == cli_status_view(root)
        assert view[1]["merged"] and view[1]["mutable"] == mode


@pytest.mark.root
def test_list_agrees_merged(root: Path) -> None:
    ctx = sysext.Context(root=root)
    with ctx.merged():
        [foo] = ctx.list()
        assert foo.state == "merged"
        [row] = cli(root, "list")
        assert (row["state"], row["reason"]) == (foo.state, foo.reason)


@pytest.mark.root
def test_cli_merge_seen_by_python(root: Path) -> None:
    subprocess.run([str(cli_binary()), f"--root={root}", "--mutable=ephemeral", "merge"],
                   check=True, capture_output=True)
    ctx = sysext.Context(root=root)
    try:
        [_, usr] = ctx.status()
        assert (usr.merged, usr.extensions, usr.mutable) == (True, ["foo"], sysext.MutableMode.EPHEMERAL)
        with pytest.raises(sysext.AlreadyMergedError):
            ctx.merge()
    finally:
        ctx.unmerge()
    assert status_view(ctx) == cli_status_view(root)
