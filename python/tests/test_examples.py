"""The example provisioning script works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import PYTHON_DIR, mounts_under

EXAMPLE = PYTHON_DIR / "examples/provision.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True)


def test_dry_run(root: Path) -> None:
    out = run("--root", str(root), "--mutable", "ephemeral", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would merge: foo" in out.stdout
    assert "writes go to a tmpfs" in out.stdout


def test_error_exit(tmp_path: Path) -> None:
    out = run("--root", str(tmp_path / "missing"), "--dry-run")
    assert out.returncode == 1
    assert "SysextOSError" in out.stderr


@pytest.mark.root
def test_run_command_inside_merge(root: Path) -> None:
    out = run("--root", str(root), "--mutable", "ephemeral", "--run", "cat", str(root / "usr/bin/foo"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "foo"
    assert mounts_under(root) == []


@pytest.mark.root
def test_persistent_merge_then_refresh(root: Path) -> None:
    try:
        for _ in range(2):  # the second run finds the merge and refreshes
            out = run("--root", str(root), "--mutable", "ephemeral")
            assert out.returncode == 0, out.stderr
            assert "/usr     foo" in out.stdout
        assert (root / "usr/bin/foo").exists()
    finally:
        subprocess.run([sys.executable, "-c", f"import sysext; sysext.Context(root={str(root)!r}).unmerge()"],
                       check=True)
    assert mounts_under(root) == []
