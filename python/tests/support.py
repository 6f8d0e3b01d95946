"""Helpers shared by the tests: mount bookkeeping, test roots, the CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest

HOST_NS_ENV = "SYSEXT_HOST_MNTNS"
REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO / "python"


def _mnt_ns(pid: str = "self") -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def in_private_namespace() -> bool:
    """Whether this process is in a mount namespace other than the host's."""
    me = _mnt_ns()
    host = os.environ.get(HOST_NS_ENV) or _mnt_ns("1")
    return me is not None and host is not None and me != host


# --- mount bookkeeping -------------------------------------------------------------

def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount in this namespace."""
    result = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            result.append((_unescape(left.split()[4]), right.split()[0]))
    return result


def mounts_under(path: Path) -> list[tuple[str, str]]:
    p = str(path)
    return [(m, t) for m, t in mounts() if m == p or m.startswith(p + "/")]


def is_overlay(path: Path) -> bool:
    return any(t == "overlay" for m, t in mounts() if m == str(path))


# --- test roots --------------------------------------------------------------------

def write(path: Path, text: str, mode: Optional[int] = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def mkdir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def add_extension(root: Path, name: str, release: str = "ID=_any\n",
                  files: Optional[dict[str, str]] = None) -> Path:
    """A directory sysext in var/lib/extensions with the given release data and files."""
    ext = root / "var/lib/extensions" / name
    write(ext / f"usr/lib/extension-release.d/extension-release.{name}", release)
    for rel, text in (files or {f"usr/bin/{name}": f"{name}\n"}).items():
        write(ext / rel, text)
    for d in [ext, *[p for p in ext.rglob("*") if p.is_dir()]]:
        d.chmod(0o755)
    return ext


def build_root(base: Path) -> Path:
    """The standard test root: a Debian 12 os-release, usr/bin/base, opt/, and the
    extension foo (ID=_any) carrying usr/bin/foo."""
    root = base / "root"
    mkdir(root)
    write(root / "usr/lib/os-release", "ID=debian\nVERSION_ID=12\n")
    write(root / "usr/bin/base", "base\n")
    mkdir(root / "opt")
    add_extension(root, "foo")
    for d in ["usr", "usr/lib", "usr/bin", "var", "var/lib", "var/lib/extensions"]:
        (root / d).chmod(0o755)
    return root


def cli_binary() -> Path:
    """The CLI (``SYSEXT_CLI``, else ``target/debug/sysext`` of this workspace)."""
    path = Path(os.environ.get("SYSEXT_CLI") or REPO / "target/debug/sysext")
    if not os.access(path, os.X_OK):
        pytest.fail(f"CLI not found at {path}: run `cargo build -p sysext-cli` or set SYSEXT_CLI",
                    pytrace=False)
    return path
